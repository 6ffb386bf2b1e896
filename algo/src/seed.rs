//! Seed derivation: every random draw of the project comes from a seed derived from the run
//! seed and a path such as `[salt, step, query, rollout, call]`, so a draw does not depend on the
//! order in which work arrives or on which node does it.

/// Salts that keep independent streams apart (the first element of a path by convention).
pub mod salt {
    /// Which questions a step trains on.
    pub const QUESTIONS: u64 = 0x5155_4553;
    /// Main-agent sampling: `[MAIN, step, query, rollout, turn]`.
    pub const MAIN: u64 = 0x4d41_494e;
    /// Sub-agent sampling: `[SUB, step, query, rollout, call, turn]`.
    pub const SUB: u64 = 0x0053_5542;
    /// Trajectory alignment: `[ALIGN, step, query, rollout]`.
    pub const ALIGN: u64 = 0x414c_4947;
    /// Model initialisation and warm-start data.
    pub const INIT: u64 = 0x494e_4954;
    /// A scripted expert serving a swapped role: `[EXPERT, step, query, rollout(, call)]`.
    pub const EXPERT: u64 = 0x4558_5052;
    /// Which variant of the world an RL query is asked in: `[FACTS, step, query]`.
    pub const FACTS: u64 = 0x4641_4354;
}

/// SplitMix64's finaliser: a bijective, well-mixing hash of one `u64`.
pub fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// The seed at `path` under `run_seed`. Stable across versions and platforms: changing it
/// changes every run's results, so it is pinned by a test.
pub fn derive_seed(run_seed: u64, path: &[u64]) -> u64 {
    path.iter().fold(splitmix64(run_seed), |h, &p| {
        splitmix64(h ^ splitmix64(p.wrapping_add(0x632B_E59B_D9B4_E019)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pinned_values_and_path_sensitivity() {
        assert_eq!(derive_seed(0, &[]), splitmix64(0));
        let a = derive_seed(42, &[1, 2, 3]);
        assert_eq!(a, derive_seed(42, &[1, 2, 3]));
        assert_ne!(a, derive_seed(42, &[1, 3, 2]));
        assert_ne!(a, derive_seed(43, &[1, 2, 3]));
        assert_ne!(derive_seed(42, &[1]), derive_seed(42, &[1, 0]));
        assert_eq!(splitmix64(0), 0xE220_A839_7B1D_CDAF);
    }

    /// The fold itself, pinned against an independent implementation: these constants were
    /// computed once with a few lines of Python (SplitMix64 over Python integers masked to 64
    /// bits, the same fold written out by hand), so a change to `derive_seed` — the salt
    /// constant, the order of the xor and the hash, the fold's start — fails here even though
    /// every end-to-end test compares two runs of the same binary.
    #[test]
    fn derive_seed_matches_an_independent_implementation() {
        let cases: [(u64, &[u64], u64); 5] = [
            (0, &[], 0xE220_A839_7B1D_CDAF),
            (42, &[1, 2, 3], 0x104B_26D6_25F9_D598),
            (42, &[salt::MAIN, 7, 3, 1, 0], 0xE978_AEEA_02FC_8BF0),
            (7, &[u64::MAX], 0x621C_AD6A_5E65_EAB5),
            (
                123_456_789,
                &[salt::SUB, 199, 3, 7, 2, 5],
                0x8587_2909_7CEF_0064,
            ),
        ];
        for (seed, path, want) in cases {
            assert_eq!(
                derive_seed(seed, path),
                want,
                "derive_seed({seed}, {path:?})"
            );
        }
    }
}

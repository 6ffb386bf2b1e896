//! The process's allocator: mimalloc, told to keep the memory it has.
//!
//! The flex backend allocates a fresh, zeroed buffer for nearly every tensor op. Under glibc's
//! malloc the large ones were mmap/munmap'ed each time, so every training step paid for page
//! faults, zeroed pages and TLB shootdowns (≈ 20 % of a learner update on 2 cores). mimalloc
//! reuses them, but still hands idle memory back to the OS after its purge delay and takes it
//! back as freshly faulted, kernel-zeroed huge pages: 51,000–80,000 page faults and ≈ 1 s of
//! `sys` time over the 20 updates of `mgrpo bench models --only updates --presets small`, ≈ 9 %
//! of the samples in `clear_page_erms`. A learner's working set is the same every step, so
//! purging is off: 700 page faults, 0.1–0.4 s `sys` (docs/results.md "Performance"). The cost:
//! the resident size stays at its peak.
use libmimalloc_sys as ffi;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc v3's `mi_option_e` (libmimalloc-sys 0.1.49, pinned in
/// Cargo.toml; its Rust bindings name only some of the options): milliseconds before idle
/// memory goes back to the OS, `-1` for never.
const PURGE_DELAY: ffi::mi_option_t = 15;

/// Applies the option; call first thing in `main`. `MIMALLOC_PURGE_DELAY` in the environment
/// still wins, for experiments.
pub fn configure() {
    apply(std::env::var_os("MIMALLOC_PURGE_DELAY").is_some());
}

/// Turns purging off unless the environment set the delay.
fn apply(set_by_environment: bool) {
    if !set_by_environment {
        // SAFETY: mi_option_set only stores the value in mimalloc's option table; the index is
        // an option of the pinned mimalloc version (checked by the test below).
        unsafe { ffi::mi_option_set(PURGE_DELAY, -1) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The index names the option we mean: the purge delay — 1000 ms by default in this
    /// mimalloc, or what `MIMALLOC_PURGE_DELAY` says when the environment sets it (mimalloc
    /// reads it there) — and setting it reads back. Runs whatever the environment holds.
    #[test]
    fn the_option_index_is_the_purge_delay() {
        assert_eq!(
            ffi::_mi_option_last,
            47,
            "mimalloc's option table changed: recheck the index"
        );
        let from_env = std::env::var("MIMALLOC_PURGE_DELAY").ok();
        let expected: std::ffi::c_long = from_env.as_deref().map_or(1000, |v| {
            v.trim().parse().expect("MIMALLOC_PURGE_DELAY is a number")
        });
        // SAFETY: reads and writes of mimalloc's option table.
        unsafe {
            assert_eq!(ffi::mi_option_get(PURGE_DELAY), expected, "{from_env:?}");
            apply(true);
            assert_eq!(
                ffi::mi_option_get(PURGE_DELAY),
                expected,
                "the environment wins"
            );
            apply(false);
            assert_eq!(ffi::mi_option_get(PURGE_DELAY), -1);
        }
    }
}

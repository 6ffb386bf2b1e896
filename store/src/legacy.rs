//! Reading values written by an older format version (see `codec::FORMAT_VERSION`): each stored
//! type names the layout it had in format 1, and how it becomes today's.
//!
//! Format 1 → 2: group records gained `role_generation` on main rollouts and on sub calls (0:
//! no swap existed), and sub calls' `role_version` became real (format 1 wrote 0 for every call;
//! the value is kept as it was written).
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::codec::{self, CodecError, FORMAT_VERSION, OLDEST_READABLE};
use crate::records::{
    self, CheckpointEntry, Event, GroupToolCalls, RoleVersion, StepRecord, SubSlot, SwapRecord,
};

/// A type the store keeps, with its format-1 layout.
pub(crate) trait Stored: DeserializeOwned {
    /// The layout format 1 wrote.
    type V1: DeserializeOwned + Into<Self>;
}

/// Decodes a stored value of any readable format version.
pub(crate) fn decode_stored<T: Stored>(bytes: &[u8]) -> Result<T, CodecError> {
    match codec::split_version(bytes)? {
        (FORMAT_VERSION, body) => codec::decode_body(body),
        (OLDEST_READABLE, body) => Ok(codec::decode_body::<T::V1>(body)?.into()),
        (version, _) => Err(CodecError::Version(version)),
    }
}

macro_rules! unchanged {
    ($($t:ty),*) => {$(
        impl Stored for $t {
            type V1 = $t;
        }
    )*};
}

// Tool calls exist since format 2: no format-1 layout was ever written.
unchanged!(
    StepRecord,
    RoleVersion,
    CheckpointEntry,
    Event,
    SwapRecord,
    GroupToolCalls
);

impl Stored for records::GroupRecord {
    type V1 = GroupRecord;
}

#[derive(Serialize, Deserialize)]
pub(crate) struct MainRolloutEntry {
    rollout: u32,
    format: bool,
    correct: bool,
    reward: f32,
    advantage: f32,
    calls: u32,
    role_version: u64,
}

#[derive(Serialize, Deserialize)]
pub(crate) struct SubCallEntry {
    rollout: u32,
    call: u32,
    format: bool,
    expert: f32,
    reward: f32,
    role_version: u64,
}

#[derive(Serialize, Deserialize)]
pub(crate) struct GroupRecord {
    step: u64,
    query: u32,
    question_id: String,
    main: Vec<MainRolloutEntry>,
    calls: Vec<SubCallEntry>,
    alignment: Vec<Vec<SubSlot>>,
    sub_advantages: Vec<Vec<f32>>,
    main_mean: f32,
    main_std: f32,
    sub_mean: f32,
    sub_std: f32,
    sub_count: u32,
}

impl From<GroupRecord> for records::GroupRecord {
    fn from(g: GroupRecord) -> Self {
        Self {
            step: g.step,
            query: g.query,
            question_id: g.question_id,
            main: g
                .main
                .into_iter()
                .map(|m| records::MainRolloutEntry {
                    rollout: m.rollout,
                    format: m.format,
                    correct: m.correct,
                    reward: m.reward,
                    advantage: m.advantage,
                    calls: m.calls,
                    role_version: m.role_version,
                    role_generation: 0,
                })
                .collect(),
            calls: g
                .calls
                .into_iter()
                .map(|c| records::SubCallEntry {
                    rollout: c.rollout,
                    call: c.call,
                    format: c.format,
                    expert: c.expert,
                    reward: c.reward,
                    role_version: c.role_version,
                    role_generation: 0,
                })
                .collect(),
            alignment: g.alignment,
            sub_advantages: g.sub_advantages,
            main_mean: g.main_mean,
            main_std: g.main_std,
            sub_mean: g.sub_mean,
            sub_std: g.sub_std,
            sub_count: g.sub_count,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_format_1_group_record_reads_with_generation_0() {
        let old = GroupRecord {
            step: 3,
            query: 1,
            question_id: "q7".into(),
            main: vec![MainRolloutEntry {
                rollout: 0,
                format: true,
                correct: true,
                reward: 1.5,
                advantage: 0.5,
                calls: 1,
                role_version: 3,
            }],
            calls: vec![SubCallEntry {
                rollout: 0,
                call: 0,
                format: true,
                expert: 1.0,
                reward: 1.2,
                role_version: 0,
            }],
            alignment: vec![vec![SubSlot::Call(0)]],
            sub_advantages: vec![vec![0.0]],
            main_mean: 1.5,
            main_std: 0.0,
            sub_mean: 1.2,
            sub_std: 0.0,
            sub_count: 1,
        };
        let mut bytes = vec![OLDEST_READABLE];
        bytes.extend(bincode::serde::encode_to_vec(&old, bincode::config::standard()).unwrap());
        let new: records::GroupRecord = decode_stored(&bytes).unwrap();
        assert_eq!((new.step, new.main[0].role_version), (3, 3));
        assert_eq!(new.main[0].role_generation, 0);
        assert_eq!(
            (new.calls[0].reward, new.calls[0].role_generation),
            (1.2, 0)
        );
        // Today's encoding of the same record reads back unchanged.
        let again: records::GroupRecord = decode_stored(&codec::encode(&new).unwrap()).unwrap();
        assert_eq!(again, new);
        assert!(matches!(
            decode_stored::<records::GroupRecord>(&[9, 0]),
            Err(CodecError::Version(9))
        ));
    }
}

//! Key layout of the single sled tree. Keys are ASCII with zero-padded numbers so that sled's
//! byte order is the natural order (steps ascending, groups by step then query).

pub(crate) const CONFIG: &[u8] = b"config";
pub(crate) const STEP_PREFIX: &str = "step/";
pub(crate) const GROUP_PREFIX: &str = "group/";
pub(crate) const ROLE_PREFIX: &str = "role/";
pub(crate) const CHECKPOINT_PREFIX: &str = "ckpt/";
pub(crate) const EVENT_PREFIX: &str = "event/";
pub(crate) const SWAP_PREFIX: &str = "swap/";
pub(crate) const TOOLS_PREFIX: &str = "tools/";

pub(crate) fn step(step: u64) -> String {
    format!("{STEP_PREFIX}{step:020}")
}

pub(crate) fn group_prefix(step: u64) -> String {
    format!("{GROUP_PREFIX}{step:020}/")
}

pub(crate) fn group(step: u64, query: u32) -> String {
    format!("{}{query:010}", group_prefix(step))
}

pub(crate) fn tools_prefix(step: u64) -> String {
    format!("{TOOLS_PREFIX}{step:020}/")
}

pub(crate) fn tools(step: u64, query: u32) -> String {
    format!("{}{query:010}", tools_prefix(step))
}

pub(crate) fn role(role: &str) -> String {
    format!("{ROLE_PREFIX}{role}")
}

pub(crate) fn checkpoint_prefix(role: &str) -> String {
    format!("{CHECKPOINT_PREFIX}{role}/")
}

pub(crate) fn checkpoint(role: &str, version: u64) -> String {
    format!("{}{version:020}", checkpoint_prefix(role))
}

pub(crate) fn event(seq: u64) -> String {
    format!("{EVENT_PREFIX}{seq:020}")
}

/// A swap, by role and the generation it starts (so a replayed swap lands on its own key).
pub(crate) fn swap(role: &str, generation: u64) -> String {
    format!("{SWAP_PREFIX}{role}/{generation:020}")
}

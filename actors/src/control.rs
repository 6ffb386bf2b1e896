//! What a control client asks a running cluster: `mgrpo status` ([`status`]). The CLI only
//! prints what these functions return.
pub mod status;

pub use status::{ClusterStatus, status};

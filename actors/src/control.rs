//! Control of a running training run from outside: the endpoint every run exposes next to its
//! coordinator ([`endpoint`]; for a one-process run reached through `RUN/control.json`,
//! [`control_file`]), and the short-lived clients of `mgrpo status` ([`status`]) and
//! `mgrpo swap` ([`swap_client`]), which join through [`client`]. The CLI only prints what
//! these functions return.
pub mod client;
pub mod control_file;
pub mod endpoint;
pub mod status;
pub mod swap_client;

pub use client::Target;
pub use status::{ClusterStatus, status};
pub use swap_client::swap;

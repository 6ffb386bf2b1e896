//! Joining a cluster over `ractor_cluster`: this node's `NodeServer` and the links to its peers
//! ([`link`]), who is there and waiting for every placed role ([`membership`]), what crossed
//! between nodes ([`bytes`]), the node agent every node runs ([`agent`]), TLS ([`tls`]), the
//! accept loop ([`accept`]), the watchdog that drops silent links ([`watchdog`]) and loopback ports
//! for nodes started later ([`ports`]).
pub mod accept;
pub mod agent;
pub mod bytes;
pub mod link;
pub mod membership;
pub mod ports;
pub mod tls;
pub mod watchdog;

pub use link::{ClusterError, ClusterLink, join};

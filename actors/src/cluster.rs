//! Joining a cluster over `ractor_cluster`: this node's `NodeServer` and the links to its peers
//! ([`link`]), who is there and waiting for every placed role ([`membership`]), what crossed
//! between nodes ([`bytes`]), the node agent every node runs ([`agent`]), and TLS ([`tls`]).
pub mod agent;
pub mod bytes;
pub mod link;
pub mod membership;
pub mod tls;

pub use link::{ClusterError, ClusterLink, join};

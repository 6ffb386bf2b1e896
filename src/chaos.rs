//! `mgrpo chaos`: fault-injection testing as a feature. A plan ([`plan`]) names a cluster
//! config, the steps and the faults; each run ([`run`]) starts real `mgrpo node` processes
//! ([`nodes`]) with a fault proxy on every link ([`proxy`]), injects the faults on schedule
//! ([`inject`]) —
//! actor kills and stalls and fail points through the node agents, SIGKILLs, cut, slow, corrupt
//! and closed links, bad clients, killed and stopped tool servers and scorers ([`children`]) —
//! records what happened ([`history`]) and checks the
//! invariants against the fault-free reference ([`reference`], [`check`]); [`report`] sums the
//! runs up. Jepsen's and FoundationDB's lesson: a seeded schedule, a recorded history, an
//! invariant checker, and a seed that reproduces a failure.
pub mod check;
pub mod children;
pub mod history;
pub mod inject;
pub mod nodes;
pub mod plan;
pub mod proxy;
pub mod reference;
pub mod report;
pub mod run;

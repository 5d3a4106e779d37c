//! The node: everything behind the `inferadb` binary. Configuration, the root supervisor and
//! the node's actors (storage, vault registry and vault state, evaluator pool, raft groups),
//! the HTTP client the operator commands use, the load generator, and the local tools.
//!
//! This crate owns how a node is assembled and run; it must not hold domain logic (that is
//! in the pure cores: storage, ipl, evaluator, vault, raft) or the HTTP contract (gateway).

pub mod actors;
pub mod bench;
pub mod client;
pub mod config;
pub mod context;
pub mod local;
pub mod server;

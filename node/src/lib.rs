//! The node: everything behind the `inferadb` binary. Configuration, the root supervisor and
//! the node's actors (storage, the shard and its raft member, vault registry and vault
//! actors, evaluator pool), the node's side of the cluster transport, the HTTP client the
//! operator commands use, the load generator, and the local tools.
//!
//! This crate owns how a node is assembled and run; it must not hold domain logic (that is
//! in the pure cores: storage, ipl, evaluator, vault, raft) or the HTTP contract (gateway).

pub mod actors;
pub mod bench;
pub mod client;
pub mod cluster;
pub mod config;
pub mod context;
pub mod local;
pub mod server;

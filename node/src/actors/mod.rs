//! The node's actors (thin shells over the pure cores): the root supervisor, storage, the
//! shard (its raft group member, with the publisher of its vaults' snapshots), the vault
//! registry and vault actors, the leader-election actor and the singleton jobs it runs, and
//! the evaluator pool. The gateway tree lives in
//! `inferadb-gateway`.

pub mod balance;
pub mod files;
pub mod jobs;
pub mod log_io;
pub mod pool;
pub mod publish;
pub mod raft;
pub mod registry;
pub mod root;
pub mod shard;
pub mod storage;
pub mod vault;

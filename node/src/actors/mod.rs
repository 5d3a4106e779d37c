//! The node's actors (thin shells over the pure cores): the root supervisor, storage, the
//! vault registry and vault state actors, the evaluator pool and raft group members. The
//! gateway tree lives in
//! `inferadb-gateway`.

pub mod pool;
pub mod raft;
pub mod registry;
pub mod root;
pub mod storage;
pub mod vault;

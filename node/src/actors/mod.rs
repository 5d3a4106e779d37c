//! The node's actors (thin shells over the pure cores): the root supervisor, storage, the
//! vault registry and vault state actors, and the evaluator pool. The gateway tree lives in
//! `inferadb-gateway`.

pub mod pool;
pub mod registry;
pub mod root;
pub mod storage;
pub mod vault;

//! [`StorageMsg`]: the protocol of the storage actor, which owns the node's database file.

use inferadb_storage::{DatabaseStats, StorageError, VerifyReport};
use ractor::RpcReplyPort;

/// Messages to the storage actor.
pub enum StorageMsg {
    /// Make every deferred commit durable (used at shutdown).
    Sync {
        /// Answered once synced, or with the error that poisoned the database.
        reply: RpcReplyPort<Result<(), StorageError>>,
    },
    /// File, page and reader statistics.
    Stats {
        /// The statistics.
        reply: RpcReplyPort<Result<DatabaseStats, StorageError>>,
    },
    /// Re-check every page and the whole page accounting of the file.
    Verify {
        /// The report.
        reply: RpcReplyPort<Result<VerifyReport, StorageError>>,
    },
}

// Local only: never sent to another node (ractor's `cluster` feature needs the impl spelled out).
impl ractor::Message for StorageMsg {}

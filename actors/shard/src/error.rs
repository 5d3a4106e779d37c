//! [`ShardError`]: why a shard machine could not open, sync, snapshot or restore.

use inferadb_protocols::VaultId;
use inferadb_storage::StorageError;
use inferadb_vault::{CatalogError, DatabaseError, VaultError};

use crate::wire::DecodeError;

/// A shard machine operation failed for a reason of this replica's (never a refusal).
#[derive(Debug, thiserror::Error)]
pub enum ShardError {
    /// Opening a database failed.
    #[error(transparent)]
    Database(#[from] DatabaseError),
    /// The catalog failed.
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    /// A vault failed.
    #[error(transparent)]
    Vault(#[from] VaultError),
    /// The storage engine failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// A vault file could not be listed or removed.
    #[error("vault files: {what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The catalog names a vault whose file is missing.
    #[error("vault {id} is in the catalog but its file is missing")]
    VaultFileMissing {
        /// The vault.
        id: VaultId,
    },
    /// Stored or received bytes are not what this version writes.
    #[error("corrupt shard data: {what}")]
    Corrupt {
        /// What was malformed.
        what: String,
    },
    /// A snapshot could not be decoded.
    #[error("snapshot: {0}")]
    Snapshot(#[from] DecodeError),
    /// An earlier failure stopped the machine; it must be reopened.
    #[error("the machine stopped after a fatal failure: {message}")]
    Stopped {
        /// The first failure.
        message: String,
    },
}

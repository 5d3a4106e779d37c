//! Typed errors of the storage engine, one enum per operation family.

use crate::page::PageId;

/// A failure of the underlying [`PageIo`](crate::io::PageIo).
#[derive(Debug, thiserror::Error)]
pub enum IoError {
    /// The operating system reported an error.
    #[error("{operation} failed: {source}")]
    Os {
        /// What the engine was doing (`write`, `sync`, `grow`, `map`, `open`).
        operation: &'static str,
        /// The operating system error.
        #[source]
        source: std::io::Error,
    },
    /// An injected fault of the in-memory simulator (tests only reach this).
    #[error("injected fault: {0}")]
    Injected(&'static str),
}

/// Errors returned when opening or creating a database file.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The file could not be read, written or mapped.
    #[error("I/O error while opening: {0}")]
    Io(#[from] IoError),
    /// Neither meta page holds a valid InferaDB header: not a database, or both slots
    /// are damaged.
    #[error("not an InferaDB storage file (or both meta pages are corrupt): {0}")]
    NotADatabase(String),
    /// The file was written by an unsupported format version.
    #[error("unsupported storage format version {found} (this build reads version {supported})")]
    UnsupportedVersion {
        /// Version found in the meta page.
        found: u32,
        /// Version this build understands.
        supported: u32,
    },
    /// A configuration value broke its rule.
    #[error("invalid option `{field}`: {rule}")]
    InvalidOption {
        /// The option's name.
        field: &'static str,
        /// The rule it broke.
        rule: String,
    },
    /// Another process holds the file lock.
    #[error("database file is locked by another process")]
    Locked,
    /// A page reachable from the chosen meta page is damaged.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// Errors returned by transactions, tables, commits and integrity checks.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The underlying I/O failed. After a failed commit the database refuses further
    /// writes (see [`StorageError::Poisoned`]).
    #[error("I/O error: {0}")]
    Io(#[from] IoError),
    /// A page failed its checksum or holds an impossible structure. The engine never
    /// returns data read from such a page.
    #[error("corruption in page {page}: {reason}")]
    Corruption {
        /// The damaged page.
        page: PageId,
        /// What is wrong with it.
        reason: String,
    },
    /// A key is longer than the page size allows.
    #[error("key of {length} bytes exceeds the limit of {limit} bytes (key_size_max)")]
    KeyTooLarge {
        /// Length of the rejected key.
        length: usize,
        /// The configured limit.
        limit: usize,
    },
    /// A value is longer than the configured limit.
    #[error("value of {length} bytes exceeds the limit of {limit} bytes (value_size_max)")]
    ValueTooLarge {
        /// Length of the rejected value.
        length: usize,
        /// The configured limit.
        limit: usize,
    },
    /// A table name broke its rule.
    #[error("invalid table name {name:?}: {rule}")]
    TableNameInvalid {
        /// The rejected name.
        name: String,
        /// The rule it broke.
        rule: &'static str,
    },
    /// The table does not exist in this snapshot.
    #[error("table {0:?} does not exist")]
    TableNotFound(String),
    /// An operation of this transaction failed after it began changing the trees; the
    /// transaction can only be aborted.
    #[error("an earlier operation of this transaction failed; it can only be aborted")]
    TransactionFailed,
    /// An earlier commit failed part-way; the on-disk state is only known after a reopen.
    #[error("database refuses writes after a failed commit; reopen it to recover")]
    Poisoned,
}

impl StorageError {
    /// Builds a [`StorageError::Corruption`] for `page`.
    pub(crate) fn corruption(page: PageId, reason: impl Into<String>) -> Self {
        StorageError::Corruption {
            page,
            reason: reason.into(),
        }
    }
}

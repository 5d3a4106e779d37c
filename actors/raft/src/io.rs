//! The `LogIo` seam: the durable Raft log ([`crate::log`]) never touches the file system
//! directly, only [`LogIo`], a flat directory of named, append-only files.
//!
//! Two implementations, mirroring the storage engine's `PageIo` seam:
//!
//! - [`FileLogIo`]: a real directory (std::fs, no `unsafe`). Appends go to the end of the
//!   file, `sync` is `fdatasync`, `sync_dir` fsyncs the directory so that creations,
//!   deletions and renames survive a power cut. The directory is locked (advisory `flock`)
//!   so two processes never write the same log.
//! - [`MemoryLogIo`]: an in-memory directory that models what survives a power failure.
//!   Every file keeps its *durable* bytes (as of its last `sync`) apart from the appends and
//!   truncations issued since; the directory keeps its durable name table (as of the last
//!   `sync_dir`) apart from the creations, deletions and renames issued since. A
//!   [`LogFaultPlan`] crashes the power at a numbered operation or fails one append or one
//!   sync; [`MemoryLogIo::crash_image`] gives the directory a power cut would leave under a
//!   [`LogCrashMode`], and [`MemoryLogIo::flip_bit`] damages stored bytes.
//!
//! # Model of a power failure
//!
//! - Directory operations not yet followed by `sync_dir` survive as a *prefix* of their
//!   issue order (file systems journal metadata in order): none under
//!   [`LogCrashMode::LoseUnsynced`], all under `KeepUnsynced` and `TearLast`, a seeded random
//!   prefix under `Random`.
//! - File operations not yet followed by `sync` of that file: each append is lost, kept, or
//!   torn at 512-byte sector granularity (sectors aligned on the file offset, a lost sector
//!   before a kept one reads as zeros); each truncation is lost or kept. `TearLast` keeps
//!   everything except the last append issued (over all files), of which only the first half
//!   of its sectors survive.
//! - A file's length after `create` is zero; its bytes are those of its own inode, so a
//!   deleted and re-created name never resurrects old bytes.

mod file;
mod memory;

pub use file::FileLogIo;
pub use memory::{LogCrashMode, LogFaultPlan, LogImage, MemoryLogIo};

/// Why a [`LogIo`] operation failed.
#[derive(Debug, thiserror::Error)]
pub enum LogIoError {
    /// The operating system reported an error.
    #[error("{operation} of `{name}` failed: {source}")]
    Os {
        /// What the log was doing (`append`, `sync`, `truncate`, ...).
        operation: &'static str,
        /// The file (or directory) concerned.
        name: String,
        /// The operating system error.
        #[source]
        source: std::io::Error,
    },
    /// The named file does not exist.
    #[error("no file `{0}` in the log directory")]
    NotFound(String),
    /// A file name that is not a plain name (empty, or contains `/`, or `.`/`..`).
    #[error("invalid log file name `{0}`")]
    InvalidName(String),
    /// A read past the end of the file.
    #[error("read of `{name}` at {offset}+{len} is past its end ({file_len})")]
    ShortRead {
        /// The file.
        name: String,
        /// Where the read started.
        offset: u64,
        /// How many bytes were asked for.
        len: usize,
        /// The file's length.
        file_len: u64,
    },
    /// An injected fault of [`MemoryLogIo`] (tests only reach this).
    #[error("injected fault: {0}")]
    Injected(&'static str),
}

/// A flat directory of append-only files: what the durable Raft log needs from storage.
///
/// Nothing is durable until synced: file bytes by [`LogIo::sync`] of that file, the
/// existence of files (create, delete, rename) by [`LogIo::sync_dir`].
pub trait LogIo: Send + Sync + 'static {
    /// Names of the files in the directory, sorted.
    fn list(&self) -> Result<Vec<String>, LogIoError>;
    /// Creates `name` empty (an existing file of that name is emptied).
    fn create(&self, name: &str) -> Result<(), LogIoError>;
    /// Current length of `name` in bytes.
    fn len(&self, name: &str) -> Result<u64, LogIoError>;
    /// Appends `bytes` at the end of `name`.
    fn append(&self, name: &str, bytes: &[u8]) -> Result<(), LogIoError>;
    /// Reads exactly `len` bytes of `name` from `offset`.
    fn read(&self, name: &str, offset: u64, len: usize) -> Result<Vec<u8>, LogIoError>;
    /// Makes every earlier append and truncation of `name` durable (fdatasync).
    fn sync(&self, name: &str) -> Result<(), LogIoError>;
    /// Shortens `name` to `len` bytes (no-op if already that short).
    fn truncate(&self, name: &str, len: u64) -> Result<(), LogIoError>;
    /// Removes `name`.
    fn delete(&self, name: &str) -> Result<(), LogIoError>;
    /// Renames `from` to `to`, replacing `to` atomically if it exists.
    fn rename(&self, from: &str, to: &str) -> Result<(), LogIoError>;
    /// Makes every earlier create, delete and rename durable (fsync of the directory).
    fn sync_dir(&self) -> Result<(), LogIoError>;

    /// The whole content of `name`.
    fn read_all(&self, name: &str) -> Result<Vec<u8>, LogIoError> {
        let len = self.len(name)?;
        self.read(name, 0, usize::try_from(len).unwrap_or(usize::MAX))
    }
}

/// Rejects names that are not a single plain path component.
pub(crate) fn check_name(name: &str) -> Result<(), LogIoError> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') || name.contains('\0') {
        return Err(LogIoError::InvalidName(name.to_owned()));
    }
    Ok(())
}

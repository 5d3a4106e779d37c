//! The I/O seam: the pager never touches files or mappings directly, only [`PageIo`].
//!
//! Two implementations: [`FileIo`] (a real file, read through a memmap2 mapping, written
//! with positioned writes, made durable with fsync) and [`MemoryIo`] (an in-memory image
//! that models the difference between written and durable bytes and injects faults:
//! crashes at any operation, torn and lost writes, write and sync errors, bit flips).

mod file;
mod memory;

pub use file::FileIo;
pub use memory::{CrashMode, FaultPlan, MemoryIo};

use crate::error::IoError;
use std::sync::Arc;

/// Where the pager's bytes live. Implementations must be safe to share between the
/// writer and any number of readers.
pub trait PageIo: Send + Sync + 'static {
    /// Current size of the backing store in bytes.
    fn len_bytes(&self) -> Result<u64, IoError>;
    /// Grows the store to `len_bytes` (never shrinks). New bytes read as zero.
    fn grow(&self, len_bytes: u64) -> Result<(), IoError>;
    /// Writes `bytes` at `offset`. Not durable until [`PageIo::sync`] returns.
    fn write(&self, offset: u64, bytes: &[u8]) -> Result<(), IoError>;
    /// Makes every earlier write durable.
    fn sync(&self) -> Result<(), IoError>;
    /// A read-only view of the current contents. Bytes of the view that the engine does
    /// not rewrite stay valid for the view's lifetime; the engine only rewrites pages
    /// that no live view can reach.
    fn view(&self) -> Result<Arc<dyn PageView>, IoError>;
}

/// A read-only window on the store's bytes (a memory mapping for files).
pub trait PageView: Send + Sync {
    /// Bytes in the view.
    fn bytes(&self) -> &[u8];
}

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
    /// Writes `length_bytes` at `offset` (within the store's length), produced by `fill`
    /// into a buffer whose prior contents are unspecified: `fill` must set every byte.
    /// Not durable until [`PageIo::sync`] returns. The default fills a fresh buffer and
    /// calls [`PageIo::write`]; a file fills its writable mapping in place, which spares a
    /// buffer and the kernel's copy into the page cache (a third of a replica's apply).
    fn write_with(
        &self,
        offset: u64,
        length_bytes: usize,
        fill: &mut dyn FnMut(&mut [u8]),
    ) -> Result<(), IoError> {
        write_through_buffer(self, offset, length_bytes, fill)
    }
    /// Makes every earlier write durable.
    fn sync(&self) -> Result<(), IoError>;
    /// A read-only view of the current contents. Bytes of the view that the engine does
    /// not rewrite stay valid for the view's lifetime; the engine only rewrites pages
    /// that no live view can reach.
    fn view(&self) -> Result<Arc<dyn PageView>, IoError>;
}

/// [`PageIo::write_with`] through a fresh buffer and [`PageIo::write`].
fn write_through_buffer<I: PageIo + ?Sized>(
    io: &I,
    offset: u64,
    length_bytes: usize,
    fill: &mut dyn FnMut(&mut [u8]),
) -> Result<(), IoError> {
    let mut buffer = vec![0u8; length_bytes];
    fill(&mut buffer);
    io.write(offset, &buffer)
}

/// A read-only window on the store's bytes (a memory mapping for files).
pub trait PageView: Send + Sync {
    /// Bytes in the view.
    fn bytes(&self) -> &[u8];
}

//! Named, configurable limits of the storage engine.

/// Smallest page size accepted at creation.
pub const PAGE_SIZE_MIN: usize = 512;
/// Largest page size accepted at creation.
pub const PAGE_SIZE_MAX: usize = 65_536;
/// Default page size.
pub const PAGE_SIZE_DEFAULT: usize = 4096;

/// Limits chosen when a database is created or opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageLimits {
    /// Page size in bytes, a power of two in `[PAGE_SIZE_MIN, PAGE_SIZE_MAX]`. Fixed at
    /// creation; an existing file keeps its own.
    pub page_size: usize,
    /// Largest value accepted by `insert`; larger values get
    /// [`StorageError::ValueTooLarge`](crate::StorageError::ValueTooLarge).
    pub value_size_max: usize,
    /// Minimum number of bytes the file grows by when it runs out of pages, so that
    /// growth (a remap) is rare.
    pub growth_bytes_min: u64,
}

impl Default for StorageLimits {
    fn default() -> Self {
        StorageLimits {
            page_size: PAGE_SIZE_DEFAULT,
            value_size_max: 16 * 1024 * 1024,
            growth_bytes_min: 1024 * 1024,
        }
    }
}

/// Largest key a page of `page_size` bytes holds: a node must fit at least two entries
/// of maximal size (and a branch three separators), so keys and inline values are each
/// capped at a quarter page minus entry overhead.
pub const fn key_size_max(page_size: usize) -> usize {
    page_size / 4 - 16
}

/// Largest value stored inline in a leaf; longer values go to overflow pages.
pub const fn inline_value_max(page_size: usize) -> usize {
    page_size / 4 - 16
}

//! Pages: the fixed-size unit of the file, its common header and checksum, and the
//! checked read path every other layer goes through.
//!
//! Header layout (32 bytes, little-endian):
//! `[0..16)` XXH3-128 of bytes `[16..page_size)` seeded with the page id — the page id is
//! hashed in so that a page written to the wrong place is detected. A checksum detects
//! torn writes, misplaced writes and bit rot, none of them adversarial, so it need not be
//! cryptographic; XXH3 hashes a 4 KiB page about ten times faster than BLAKE3, whose SIMD
//! lanes a single page cannot fill (docs/adr/0003-page-checksums.md);
//! `[16]` kind; `[17]` reserved; `[18..20)` entry count; `[20..24)` kind-specific;
//! `[24..32)` id of the transaction that wrote the page.

use crate::error::StorageError;
use crate::io::PageView;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Index of a page in the file (byte offset = id × page size).
pub type PageId = u64;

/// Bytes of the common page header.
pub(crate) const HEADER_BYTES: usize = 32;
const CHECKSUM_BYTES: usize = 16;

/// What a page holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum PageKind {
    Meta = 1,
    Branch = 2,
    Leaf = 3,
    Overflow = 4,
    FreeList = 5,
}

impl PageKind {
    fn from_byte(byte: u8) -> Option<PageKind> {
        match byte {
            1 => Some(PageKind::Meta),
            2 => Some(PageKind::Branch),
            3 => Some(PageKind::Leaf),
            4 => Some(PageKind::Overflow),
            5 => Some(PageKind::FreeList),
            _ => None,
        }
    }
}

pub(crate) fn read_u16(bytes: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([bytes[at], bytes[at + 1]])
}

pub(crate) fn read_u32(bytes: &[u8], at: usize) -> u32 {
    let mut word = [0u8; 4];
    word.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(word)
}

pub(crate) fn read_u64(bytes: &[u8], at: usize) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(word)
}

pub(crate) fn write_u16(bytes: &mut [u8], at: usize, value: u16) {
    bytes[at..at + 2].copy_from_slice(&value.to_le_bytes());
}

pub(crate) fn write_u32(bytes: &mut [u8], at: usize, value: u32) {
    bytes[at..at + 4].copy_from_slice(&value.to_le_bytes());
}

pub(crate) fn write_u64(bytes: &mut [u8], at: usize, value: u64) {
    bytes[at..at + 8].copy_from_slice(&value.to_le_bytes());
}

/// Kind byte of a page.
pub(crate) fn kind_byte(page: &[u8]) -> u8 {
    page[16]
}

/// Entry count of a page.
pub(crate) fn count(page: &[u8]) -> usize {
    read_u16(page, 18) as usize
}

fn checksum(page_id: PageId, page: &[u8]) -> [u8; CHECKSUM_BYTES] {
    xxhash_rust::xxh3::xxh3_128_with_seed(&page[CHECKSUM_BYTES..], page_id).to_le_bytes()
}

/// Fills in the header fields shared by every page kind and seals it with its checksum.
pub(crate) fn seal(page_id: PageId, page: &mut [u8], kind: PageKind, entries: usize, txn: u64) {
    assert!(
        entries <= u16::MAX as usize,
        "page entry count overflows its field"
    );
    page[16] = kind as u8;
    page[17] = 0;
    write_u16(page, 18, entries as u16);
    write_u64(page, 24, txn);
    let sum = checksum(page_id, page);
    page[..CHECKSUM_BYTES].copy_from_slice(&sum);
    debug_assert!(checksum_valid(page_id, page));
}

/// Whether the page's stored checksum matches its contents.
pub(crate) fn checksum_valid(page_id: PageId, page: &[u8]) -> bool {
    page.len() > HEADER_BYTES && page[..CHECKSUM_BYTES] == checksum(page_id, page)
}

/// Two bits per page, learned once per process. *Verified*: the page's checksum matched.
/// *Trusted*: this process wrote the page, or checked a leaf's structure (keys in order,
/// sizes within limits) before modifying it. Pages are immutable while reachable
/// (copy-on-write), and a reused id holds a page this process wrote, so one check per page
/// suffices and the hot paths pay a bit test instead of a hash or a scan.
pub(crate) struct VerifiedPages {
    verified: Box<[AtomicU64]>,
    trusted: Box<[AtomicU64]>,
}

impl VerifiedPages {
    pub(crate) fn new(capacity_pages: u64) -> VerifiedPages {
        let words = capacity_pages.div_ceil(64) as usize;
        VerifiedPages {
            verified: (0..words).map(|_| AtomicU64::new(0)).collect(),
            trusted: (0..words).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    pub(crate) fn capacity_pages(&self) -> u64 {
        self.verified.len() as u64 * 64
    }

    /// A larger set that keeps the bits already learned.
    pub(crate) fn grown(&self, capacity_pages: u64) -> VerifiedPages {
        let grown = VerifiedPages::new(capacity_pages.max(self.capacity_pages()));
        let copy = |from: &[AtomicU64], to: &[AtomicU64]| {
            for (old, new) in from.iter().zip(to) {
                new.store(old.load(Ordering::Relaxed), Ordering::Relaxed);
            }
        };
        copy(&self.verified, &grown.verified);
        copy(&self.trusted, &grown.trusted);
        grown
    }

    fn bit(words: &[AtomicU64], page: PageId) -> bool {
        words
            .get((page / 64) as usize)
            .is_some_and(|word| word.load(Ordering::Relaxed) & (1 << (page % 64)) != 0)
    }

    fn set_bit(words: &[AtomicU64], page: PageId) {
        if let Some(word) = words.get((page / 64) as usize) {
            word.fetch_or(1 << (page % 64), Ordering::Relaxed);
        }
    }

    fn is_set(&self, page: PageId) -> bool {
        Self::bit(&self.verified, page)
    }

    pub(crate) fn set(&self, page: PageId) {
        Self::set_bit(&self.verified, page);
    }

    pub(crate) fn is_trusted(&self, page: PageId) -> bool {
        Self::bit(&self.trusted, page)
    }

    /// Marks `page` as written by this process: verified and trusted.
    pub(crate) fn set_written(&self, page: PageId) {
        Self::set_bit(&self.verified, page);
        Self::set_bit(&self.trusted, page);
    }

    pub(crate) fn set_trusted(&self, page: PageId) {
        Self::set_bit(&self.trusted, page);
    }
}

/// Checked access to the committed pages of one snapshot.
#[derive(Clone)]
pub(crate) struct Pages {
    pub(crate) view: Arc<dyn PageView>,
    pub(crate) verified: Arc<VerifiedPages>,
    pub(crate) page_size: usize,
    /// Pages `[0, page_count)` belong to the snapshot; anything beyond is not reachable.
    pub(crate) page_count: u64,
}

impl Pages {
    /// The bytes of `page`, checksum-verified (once per process), of kind `kind`.
    pub(crate) fn page(&self, page: PageId, kind: PageKind) -> Result<&[u8], StorageError> {
        let bytes = self.raw(page)?;
        let checked = self.verified.is_set(page);
        if !checked {
            if !checksum_valid(page, bytes) {
                return Err(StorageError::corruption(page, "checksum mismatch"));
            }
            self.verified.set(page);
        }
        if PageKind::from_byte(kind_byte(bytes)) != Some(kind) {
            return Err(StorageError::corruption(
                page,
                format!(
                    "expected a {kind:?} page, found kind byte {}",
                    kind_byte(bytes)
                ),
            ));
        }
        Ok(bytes)
    }

    /// The kind of a page (verifying it), for walkers that accept several kinds.
    pub(crate) fn kind(&self, page: PageId) -> Result<PageKind, StorageError> {
        let bytes = self.raw(page)?;
        if !checksum_valid(page, bytes) {
            return Err(StorageError::corruption(page, "checksum mismatch"));
        }
        PageKind::from_byte(kind_byte(bytes))
            .ok_or_else(|| StorageError::corruption(page, "unknown page kind"))
    }

    /// `page` (already read through [`Self::page`]) as a base a dirty leaf reads in place.
    pub(crate) fn base(&self, page: PageId) -> crate::node::BasePage {
        crate::node::BasePage::new(
            Arc::clone(&self.view),
            page as usize * self.page_size,
            self.page_size,
        )
    }

    /// Bytes of `page` without any check (bounds aside).
    pub(crate) fn raw(&self, page: PageId) -> Result<&[u8], StorageError> {
        if page < 2 || page >= self.page_count {
            return Err(StorageError::corruption(
                page,
                format!("page id out of range [2, {})", self.page_count),
            ));
        }
        let start = page as usize * self.page_size;
        self.view
            .bytes()
            .get(start..start + self.page_size)
            .ok_or_else(|| StorageError::corruption(page, "page lies beyond the end of the file"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::{MemoryIo, PageIo};

    fn pages_with(pages: &[(PageId, PageKind)]) -> (Pages, MemoryIo) {
        let page_size = 512;
        let io = MemoryIo::default();
        io.grow(8 * page_size as u64).unwrap();
        for (id, kind) in pages {
            let mut page = vec![0u8; page_size];
            page[100] = *id as u8;
            seal(*id, &mut page, *kind, 0, 1);
            io.write(*id * page_size as u64, &page).unwrap();
        }
        let pages = Pages {
            view: io.view().unwrap(),
            verified: Arc::new(VerifiedPages::new(8)),
            page_size,
            page_count: 6,
        };
        (pages, io)
    }

    #[test]
    fn reads_check_range_checksum_and_kind() {
        let (pages, _io) = pages_with(&[(2, PageKind::Leaf), (3, PageKind::Branch)]);
        assert_eq!(pages.page(2, PageKind::Leaf).unwrap()[100], 2);
        assert!(matches!(
            pages.page(1, PageKind::Leaf),
            Err(StorageError::Corruption { page: 1, .. })
        ));
        assert!(matches!(
            pages.page(6, PageKind::Leaf),
            Err(StorageError::Corruption { page: 6, .. })
        ));
        let wrong_kind = pages.page(3, PageKind::Leaf).unwrap_err().to_string();
        assert!(wrong_kind.contains("expected a Leaf page"), "{wrong_kind}");
        assert_eq!(pages.kind(3).unwrap(), PageKind::Branch);
        let never_written = pages.page(4, PageKind::Leaf).unwrap_err().to_string();
        assert!(
            never_written.contains("checksum mismatch"),
            "{never_written}"
        );
    }

    #[test]
    fn a_page_is_verified_once_and_the_set_grows_keeping_its_bits() {
        let (pages, _io) = pages_with(&[(2, PageKind::Leaf)]);
        assert!(!pages.verified.is_set(2));
        pages.page(2, PageKind::Leaf).unwrap();
        assert!(
            pages.verified.is_set(2),
            "the first read records the verification"
        );
        let grown = pages.verified.grown(1000);
        assert!(grown.capacity_pages() >= 1000);
        assert!(grown.is_set(2) && !grown.is_set(3));
        grown.set(999);
        assert!(grown.is_set(999));
    }

    #[test]
    fn checksums_cover_the_page_id_and_every_byte_after_the_checksum() {
        let mut page = vec![0u8; 512];
        seal(7, &mut page, PageKind::Overflow, 3, 9);
        assert!(checksum_valid(7, &page));
        assert!(
            !checksum_valid(8, &page),
            "a page at the wrong place is detected"
        );
        for offset in [16, 17, 200, 511] {
            let mut damaged = page.clone();
            damaged[offset] ^= 1;
            assert!(!checksum_valid(7, &damaged), "flip at {offset} undetected");
        }
        assert_eq!(count(&page), 3);
        assert_eq!(read_u64(&page, 24), 9);
    }
}

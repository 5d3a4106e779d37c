//! The two meta pages (page 0 and page 1) and the dual-slot commit record they hold.
//!
//! Layout after the page header: magic `INFERADB` `[32..40)`, format version `[40..44)`,
//! page size `[44..48)`, transaction id `[48..56)`, catalog root `[56..64)` (0 = none),
//! free-list head `[64..72)` (0 = none), page count `[72..80)`.

use crate::error::OpenError;
use crate::limits::{PAGE_SIZE_MAX, PAGE_SIZE_MIN};
use crate::page::{checksum_valid, read_u32, read_u64, seal, write_u32, write_u64};
use crate::page::{PageId, PageKind};

const MAGIC: &[u8; 8] = b"INFERADB";
/// On-disk format version this build reads and writes.
/// Version 2: page checksums are XXH3-128 (version 1 used BLAKE3).
pub(crate) const FORMAT_VERSION: u32 = 2;

/// A commit record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Meta {
    pub(crate) txn: u64,
    pub(crate) page_size: usize,
    pub(crate) catalog_root: Option<PageId>,
    pub(crate) freelist_head: Option<PageId>,
    pub(crate) page_count: u64,
}

impl Meta {
    /// The encoded, sealed meta page for `slot` (0 or 1).
    pub(crate) fn encode(&self, slot: u64) -> Vec<u8> {
        let mut page = vec![0u8; self.page_size];
        page[32..40].copy_from_slice(MAGIC);
        write_u32(&mut page, 40, FORMAT_VERSION);
        write_u32(&mut page, 44, self.page_size as u32);
        write_u64(&mut page, 48, self.txn);
        write_u64(&mut page, 56, self.catalog_root.unwrap_or(0));
        write_u64(&mut page, 64, self.freelist_head.unwrap_or(0));
        write_u64(&mut page, 72, self.page_count);
        seal(slot, &mut page, PageKind::Meta, 0, self.txn);
        page
    }

    /// Decodes the meta page in `slot` from `bytes` (the file's start), if it is valid.
    pub(crate) fn decode(bytes: &[u8], slot: u64, page_size: usize) -> Result<Meta, String> {
        if !(PAGE_SIZE_MIN..=PAGE_SIZE_MAX).contains(&page_size) {
            return Err(format!("unsupported page size {page_size}"));
        }
        let start = slot as usize * page_size;
        let page = bytes
            .get(start..start + page_size)
            .ok_or("file too short for the meta page")?;
        if &page[32..40] != MAGIC {
            return Err("bad magic".into());
        }
        // The version comes before the checksum: another format may checksum differently,
        // and its files must be refused as such, not as damaged.
        let version = read_u32(page, 40);
        if version != FORMAT_VERSION {
            return Err(format!("version {version}"));
        }
        if !checksum_valid(slot, page) {
            return Err("meta checksum mismatch".into());
        }
        if page[16] != PageKind::Meta as u8 || read_u32(page, 44) as usize != page_size {
            return Err("meta page kind or page size mismatch".into());
        }
        let optional = |at| Some(read_u64(page, at)).filter(|page| *page != 0);
        Ok(Meta {
            txn: read_u64(page, 48),
            page_size,
            catalog_root: optional(56),
            freelist_head: optional(64),
            page_count: read_u64(page, 72),
        })
    }
}

/// The transaction id a slot claims (unverified: only to compare with a valid slot's).
fn claimed_txn(bytes: &[u8], slot: u64, page_size: usize) -> Option<u64> {
    let at = slot as usize * page_size + 48;
    Some(u64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
}

/// The page size slot 0 claims, if its magic is present and the size is one we support.
/// The slot's checksum is not known yet, so the value is only a hint.
fn claimed_page_size(bytes: &[u8]) -> Option<usize> {
    (bytes.get(32..40)? == MAGIC).then_some(())?;
    let size = u32::from_le_bytes(bytes.get(44..48)?.try_into().ok()?) as usize;
    (size.is_power_of_two() && (PAGE_SIZE_MIN..=PAGE_SIZE_MAX).contains(&size)).then_some(size)
}

/// Picks the newest valid meta page, and which slot holds it. A torn or corrupt slot
/// falls back to the other one.
pub(crate) fn choose(bytes: &[u8]) -> Result<(Meta, u64), OpenError> {
    let mut sizes: Vec<usize> = claimed_page_size(bytes).into_iter().collect();
    sizes.extend((9..=16).map(|shift| 1usize << shift));
    let mut errors = Vec::new();
    let mut unsupported = None;
    // A slot of a newer format claiming a newer commit: opening the older slot would drop
    // that commit (and the next meta write would overwrite it), so the file is refused.
    let mut newer: Option<(u32, u64)> = None;
    let mut best: Option<(Meta, u64)> = None;
    for page_size in sizes {
        for slot in 0..2u64 {
            match Meta::decode(bytes, slot, page_size) {
                Ok(meta) if best.is_none_or(|(found, _)| meta.txn > found.txn) => {
                    best = Some((meta, slot));
                }
                Ok(_) => {}
                // Unverified: a damaged slot may claim any version, so the other slot
                // still gets its chance.
                Err(reason) if reason.starts_with("version") => {
                    let found: u32 = reason[8..].parse().unwrap_or(0);
                    unsupported = Some(found);
                    if found > FORMAT_VERSION {
                        let claimed_txn = claimed_txn(bytes, slot, page_size).unwrap_or(0);
                        newer = newer.max(Some((found, claimed_txn)));
                    }
                }
                Err(reason) => {
                    errors.push(format!("slot {slot} at page size {page_size}: {reason}"))
                }
            }
        }
        if best.is_some() {
            break;
        }
    }
    if let Some((found, claimed_txn)) = newer {
        if best.is_none_or(|(meta, _)| claimed_txn > meta.txn) {
            return Err(OpenError::UnsupportedVersion {
                found,
                supported: FORMAT_VERSION,
            });
        }
    }
    if let (None, Some(found)) = (best, unsupported) {
        return Err(OpenError::UnsupportedVersion {
            found,
            supported: FORMAT_VERSION,
        });
    }
    best.ok_or_else(|| {
        OpenError::NotADatabase(errors.into_iter().take(2).collect::<Vec<_>>().join("; "))
    })
}

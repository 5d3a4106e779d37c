//! [`FileIo`]: a real file, mapped with memmap2 for reads, and written through a second,
//! writable mapping when its blocks are reserved. This is the only module of the workspace
//! that contains `unsafe` code.
#![allow(unsafe_code)]

use super::{PageIo, PageView};
use crate::error::IoError;
use memmap2::{Mmap, MmapMut};
use parking_lot::Mutex;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

/// A database file: writes in place through a writable mapping (positioned writes when
/// the file system cannot reserve blocks), fsync, reads through a shared read-only mapping.
pub struct FileIo {
    file: File,
    /// The mapping of the file's current length, replaced when the file grows. Older
    /// mappings stay alive while a snapshot holds them.
    mapping: Mutex<Option<Arc<MappedView>>>,
    writable: Mutex<WritableMapping>,
}

/// The mapping [`PageIo::write_with`] fills pages in. A store into a mapped page whose
/// block the file system must still allocate raises SIGBUS when the disk is full, where a
/// positioned write returns `ENOSPC`: so pages are written in place only while every byte
/// of the file has its block reserved (`fallocate` at open and at each growth).
struct WritableMapping {
    map: Option<MmapMut>,
    blocks_reserved: bool,
}

struct MappedView {
    map: Option<Mmap>,
}

impl PageView for MappedView {
    fn bytes(&self) -> &[u8] {
        match &self.map {
            Some(map) => map,
            None => &[],
        }
    }
}

fn os(operation: &'static str) -> impl FnOnce(std::io::Error) -> IoError {
    move |source| IoError::Os { operation, source }
}

impl FileIo {
    /// Opens (creating if `create`) the file at `path` and takes an exclusive advisory
    /// lock on it, so two processes never write the same database.
    pub fn open(path: &Path, create: bool) -> Result<FileIo, IoError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(create)
            .truncate(false)
            .open(path)
            .map_err(os("open"))?;
        file.try_lock().map_err(|error| match error {
            std::fs::TryLockError::WouldBlock => IoError::Os {
                operation: "lock",
                source: std::io::Error::new(std::io::ErrorKind::WouldBlock, "locked"),
            },
            std::fs::TryLockError::Error(source) => IoError::Os {
                operation: "lock",
                source,
            },
        })?;
        let length = file.metadata().map_err(os("stat"))?.len();
        // Files written by older versions, or copied, may be sparse.
        let blocks_reserved =
            overwrites_in_place(&file) && (length == 0 || preallocate(&file, 0, length));
        Ok(FileIo {
            file,
            mapping: Mutex::new(None),
            writable: Mutex::new(WritableMapping {
                map: None,
                blocks_reserved,
            }),
        })
    }

    fn map_current(&self) -> Result<Arc<MappedView>, IoError> {
        let length = self.len_bytes()?;
        if length == 0 {
            return Ok(Arc::new(MappedView { map: None }));
        }
        // SAFETY: the mapping is read-only. The engine only writes (through `write`)
        // pages that no live snapshot can reach, and the file is locked against other
        // processes, so no byte a reader looks at changes under it. Truncation never
        // happens (`grow` only extends).
        let map = unsafe { Mmap::map(&self.file) }.map_err(os("map"))?;
        Ok(Arc::new(MappedView { map: Some(map) }))
    }
}

impl PageIo for FileIo {
    fn len_bytes(&self) -> Result<u64, IoError> {
        Ok(self.file.metadata().map_err(os("stat"))?.len())
    }

    fn grow(&self, len_bytes: u64) -> Result<(), IoError> {
        let current = self.len_bytes()?;
        if len_bytes > current {
            if !preallocate(&self.file, current, len_bytes - current) {
                self.writable.lock().blocks_reserved = false;
            }
            self.file.set_len(len_bytes).map_err(os("grow"))?;
        }
        Ok(())
    }

    fn write(&self, offset: u64, bytes: &[u8]) -> Result<(), IoError> {
        self.file.write_all_at(bytes, offset).map_err(os("write"))
    }

    fn write_with(
        &self,
        offset: u64,
        length_bytes: usize,
        fill: &mut dyn FnMut(&mut [u8]),
    ) -> Result<(), IoError> {
        let mut writable = self.writable.lock();
        let end = offset as usize + length_bytes;
        if writable.blocks_reserved && writable.map.as_ref().is_none_or(|map| map.len() < end) {
            // SAFETY: the engine writes (through here or `write`) only pages that no live
            // snapshot can reach, one writer at a time (this mutex), so no byte a reader
            // looks at changes under it; readers use their own read-only mappings, which
            // share the page cache with this one. The file is locked against other
            // processes and never truncated, and its blocks are reserved
            // (`blocks_reserved`), so a store cannot fault for want of disk space.
            writable.map = Some(unsafe { MmapMut::map_mut(&self.file) }.map_err(os("map"))?);
        }
        let mapped =
            writable.blocks_reserved && writable.map.as_ref().is_some_and(|map| map.len() >= end);
        if !mapped {
            drop(writable);
            return super::write_through_buffer(self, offset, length_bytes, fill);
        }
        let map = writable.map.as_mut().expect("invariant: mapped just above");
        fill(&mut map[offset as usize..end]);
        Ok(())
    }

    fn sync(&self) -> Result<(), IoError> {
        self.file.sync_data().map_err(os("sync"))
    }

    fn view(&self) -> Result<Arc<dyn PageView>, IoError> {
        let mut current = self.mapping.lock();
        let length = self.len_bytes()? as usize;
        if let Some(view) = current.as_ref() {
            if view.bytes().len() == length {
                return Ok(view.clone());
            }
        }
        let view = self.map_current()?;
        *current = Some(view.clone());
        Ok(view)
    }
}

/// Reserves the file's blocks in `[offset, offset + len)` (Linux `fallocate`), so the page
/// writes that fill them later neither allocate blocks one by one nor run out of space.
/// Returns whether the blocks are reserved: a file system without the call grows sparse,
/// as `set_len` alone would, and pages are then written with positioned writes.
#[cfg(target_os = "linux")]
fn preallocate(file: &File, offset: u64, len: u64) -> bool {
    use std::os::fd::AsRawFd;
    let (Ok(offset), Ok(len)) = (libc::off_t::try_from(offset), libc::off_t::try_from(len)) else {
        return false;
    };
    // SAFETY: a plain system call on a file descriptor this `File` owns and keeps open for
    // the call's duration; no memory is passed.
    unsafe { libc::fallocate(file.as_raw_fd(), 0, offset, len) == 0 }
}

#[cfg(not(target_os = "linux"))]
fn preallocate(_file: &File, _offset: u64, _len: u64) -> bool {
    false
}

/// Whether the file system overwrites a reserved block in place. A copy-on-write file
/// system (btrfs, ZFS, bcachefs) allocates a new block for every overwrite, so a reserved
/// block does not protect a store into the mapping from running out of space (btrfs then
/// raises SIGBUS at the page fault); pages there are written with positioned writes, which
/// report the error instead.
#[cfg(target_os = "linux")]
fn overwrites_in_place(file: &File) -> bool {
    use std::os::fd::AsRawFd;
    const EXT4: i64 = 0xEF53;
    const XFS: i64 = 0x5846_5342;
    const TMPFS: i64 = 0x0102_1994;
    // SAFETY: `fstatfs` fills the zeroed struct it is given, on a descriptor this `File`
    // owns and keeps open for the call's duration.
    let mut stats: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: as above: a valid descriptor and a pointer to a live, writable struct.
    if unsafe { libc::fstatfs(file.as_raw_fd(), &mut stats) } != 0 {
        return false;
    }
    #[allow(clippy::unnecessary_cast, reason = "f_type's width differs by target")]
    let kind = stats.f_type as i64;
    matches!(kind, EXT4 | XFS | TMPFS)
}

#[cfg(not(target_os = "linux"))]
fn overwrites_in_place(_file: &File) -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pages filled in place are what the read-only view and a reopen see; a write past
    /// the mapped length falls back to a positioned write (which extends the file).
    #[test]
    fn writes_in_place_are_read_back_and_a_write_past_the_end_falls_back() {
        let directory = tempfile::tempdir().expect("temporary directory");
        let path = directory.path().join("io.db");
        let io = FileIo::open(&path, true).expect("open");
        io.grow(8192).expect("grow");
        io.write_with(4096, 4096, &mut |bytes| bytes.fill(7))
            .expect("write in place");
        assert!(
            io.writable.lock().map.is_some(),
            "written through the mapping"
        );
        io.write_with(8192, 512, &mut |bytes| bytes.fill(9))
            .expect("write past the end");
        assert_eq!(io.len_bytes().expect("length"), 8192 + 512);
        let view = io.view().expect("view");
        assert!(view.bytes()[4096..8192].iter().all(|byte| *byte == 7));
        assert!(view.bytes()[8192..].iter().all(|byte| *byte == 9));
        io.sync().expect("sync");
        drop((view, io));
        let bytes = std::fs::read(&path).expect("read back");
        assert!(bytes[..4096].iter().all(|byte| *byte == 0));
        assert!(bytes[4096..8192].iter().all(|byte| *byte == 7));
    }
}

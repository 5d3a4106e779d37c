//! [`FileIo`]: a real file, mapped with memmap2 for reads. This is the only module of the
//! workspace that contains `unsafe` code.
#![allow(unsafe_code)]

use super::{PageIo, PageView};
use crate::error::IoError;
use memmap2::Mmap;
use parking_lot::Mutex;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

/// A database file: positioned writes, fsync, reads through a shared read-only mapping.
pub struct FileIo {
    file: File,
    /// The mapping of the file's current length, replaced when the file grows. Older
    /// mappings stay alive while a snapshot holds them.
    mapping: Mutex<Option<Arc<MappedView>>>,
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
        Ok(FileIo {
            file,
            mapping: Mutex::new(None),
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
            preallocate(&self.file, current, len_bytes - current);
            self.file.set_len(len_bytes).map_err(os("grow"))?;
        }
        Ok(())
    }

    fn write(&self, offset: u64, bytes: &[u8]) -> Result<(), IoError> {
        self.file.write_all_at(bytes, offset).map_err(os("write"))
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

/// Reserves the file's new blocks at once (Linux `fallocate`), so the page writes that fill
/// them later do not each allocate blocks in the file system. Best effort: a file system
/// without the call just grows sparse, as `set_len` alone would.
#[cfg(target_os = "linux")]
fn preallocate(file: &File, offset: u64, len: u64) {
    use std::os::fd::AsRawFd;
    let (Ok(offset), Ok(len)) = (libc::off_t::try_from(offset), libc::off_t::try_from(len)) else {
        return;
    };
    // SAFETY: a plain system call on a file descriptor this `File` owns and keeps open for
    // the call's duration; no memory is passed.
    let _ = unsafe { libc::fallocate(file.as_raw_fd(), 0, offset, len) };
}

#[cfg(not(target_os = "linux"))]
fn preallocate(_file: &File, _offset: u64, _len: u64) {}

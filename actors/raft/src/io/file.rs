//! [`FileLogIo`]: the log directory on a real file system (std::fs only).

use super::{check_name, LogIo, LogIoError};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A directory of log files. Open handles are cached (one per file, opened for reading and
/// appending); the directory itself is held open, locked exclusively, and fsynced by
/// [`LogIo::sync_dir`].
pub struct FileLogIo {
    path: PathBuf,
    dir: File,
    handles: Mutex<HashMap<String, Arc<File>>>,
}

fn os(operation: &'static str, name: &str) -> impl FnOnce(std::io::Error) -> LogIoError {
    let name = name.to_owned();
    move |source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            LogIoError::NotFound(name)
        } else {
            LogIoError::Os {
                operation,
                name,
                source,
            }
        }
    }
}

impl FileLogIo {
    /// Opens (creating it and its parents if missing) the directory at `path` and locks it
    /// exclusively, so two processes never write the same log.
    pub fn open(path: &Path) -> Result<FileLogIo, LogIoError> {
        let display = path.display().to_string();
        std::fs::create_dir_all(path).map_err(os("create directory", &display))?;
        let dir = File::open(path).map_err(os("open directory", &display))?;
        dir.try_lock().map_err(|error| LogIoError::Os {
            operation: "lock directory",
            name: display.clone(),
            source: match error {
                std::fs::TryLockError::WouldBlock => {
                    std::io::Error::new(std::io::ErrorKind::WouldBlock, "locked by another process")
                }
                std::fs::TryLockError::Error(source) => source,
            },
        })?;
        Ok(FileLogIo {
            path: path.to_owned(),
            dir,
            handles: Mutex::new(HashMap::new()),
        })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn handle(&self, name: &str) -> Result<Arc<File>, LogIoError> {
        check_name(name)?;
        let mut handles = self.handles.lock();
        if let Some(file) = handles.get(name) {
            return Ok(file.clone());
        }
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .open(self.path.join(name))
            .map_err(os("open", name))?;
        let file = Arc::new(file);
        handles.insert(name.to_owned(), file.clone());
        Ok(file)
    }
}

impl LogIo for FileLogIo {
    fn list(&self) -> Result<Vec<String>, LogIoError> {
        let display = self.path.display().to_string();
        let mut names = Vec::new();
        for entry in std::fs::read_dir(&self.path).map_err(os("list", &display))? {
            let entry = entry.map_err(os("list", &display))?;
            if entry.file_type().map_err(os("list", &display))?.is_file() {
                if let Some(name) = entry.file_name().to_str() {
                    names.push(name.to_owned());
                }
            }
        }
        names.sort();
        Ok(names)
    }

    fn create(&self, name: &str) -> Result<(), LogIoError> {
        check_name(name)?;
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(self.path.join(name))
            .map_err(os("create", name))?;
        file.set_len(0).map_err(os("create", name))?;
        self.handles.lock().insert(name.to_owned(), Arc::new(file));
        Ok(())
    }

    fn len(&self, name: &str) -> Result<u64, LogIoError> {
        let file = self.handle(name)?;
        Ok(file.metadata().map_err(os("stat", name))?.len())
    }

    fn append(&self, name: &str, bytes: &[u8]) -> Result<(), LogIoError> {
        use std::io::Write;
        let file = self.handle(name)?;
        (&*file).write_all(bytes).map_err(os("append", name))
    }

    fn read(&self, name: &str, offset: u64, len: usize) -> Result<Vec<u8>, LogIoError> {
        let file = self.handle(name)?;
        let mut bytes = vec![0u8; len];
        file.read_exact_at(&mut bytes, offset).map_err(|source| {
            if source.kind() == std::io::ErrorKind::UnexpectedEof {
                LogIoError::ShortRead {
                    name: name.to_owned(),
                    offset,
                    len,
                    file_len: file.metadata().map(|m| m.len()).unwrap_or(0),
                }
            } else {
                os("read", name)(source)
            }
        })?;
        Ok(bytes)
    }

    fn sync(&self, name: &str) -> Result<(), LogIoError> {
        self.handle(name)?.sync_data().map_err(os("sync", name))
    }

    fn truncate(&self, name: &str, len: u64) -> Result<(), LogIoError> {
        let file = self.handle(name)?;
        if file.metadata().map_err(os("stat", name))?.len() > len {
            file.set_len(len).map_err(os("truncate", name))?;
        }
        Ok(())
    }

    fn delete(&self, name: &str) -> Result<(), LogIoError> {
        check_name(name)?;
        self.handles.lock().remove(name);
        std::fs::remove_file(self.path.join(name)).map_err(os("delete", name))
    }

    fn rename(&self, from: &str, to: &str) -> Result<(), LogIoError> {
        check_name(from)?;
        check_name(to)?;
        let mut handles = self.handles.lock();
        handles.remove(from);
        handles.remove(to);
        std::fs::rename(self.path.join(from), self.path.join(to)).map_err(os("rename", from))
    }

    fn sync_dir(&self) -> Result<(), LogIoError> {
        let display = self.path.display().to_string();
        self.dir.sync_all().map_err(os("sync directory", &display))
    }
}

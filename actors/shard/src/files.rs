//! [`VaultFiles`]: where a shard keeps its vaults' database files. [`DirVaultFiles`] uses
//! one file per vault in a directory (`<dir>/<id>.db`, as the node does);
//! [`MemoryVaultFiles`] keeps each file in a [`MemoryIo`], so tests can model crashes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use inferadb_protocols::VaultId;
use inferadb_storage::io::{CrashMode, MemoryIo};
use inferadb_storage::Database;
use inferadb_vault::{open_database, open_database_with_io};

use crate::error::ShardError;

/// Opens, creates and removes the database file of each vault of a shard. The handles are
/// shared (`Arc`): an implementation may keep them open across machines (a node reopens
/// its shard after a restart of the raft member while readers still hold snapshots).
pub trait VaultFiles: Send {
    /// Opens a vault's existing file; `None` when there is none.
    fn open(&mut self, id: VaultId) -> Result<Option<Arc<Database>>, ShardError>;
    /// Creates an empty file for a vault, replacing any file it had (a leftover of a
    /// creation that the catalog never recorded).
    fn create(&mut self, id: VaultId) -> Result<Arc<Database>, ShardError>;
    /// Removes a vault's file; removing a missing file is no error.
    fn remove(&mut self, id: VaultId) -> Result<(), ShardError>;
    /// Every vault that has a file, by id.
    fn list(&self) -> Result<Vec<VaultId>, ShardError>;
}

/// One file per vault, `<dir>/<16 hex digits of the id>.db`.
pub struct DirVaultFiles {
    dir: PathBuf,
}

impl DirVaultFiles {
    /// Files under `dir`, which is created if missing.
    pub fn new(dir: impl Into<PathBuf>) -> Result<Self, ShardError> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir).map_err(|source| ShardError::Io {
            what: format!("creating `{}`", dir.display()),
            source,
        })?;
        Ok(Self { dir })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, id: VaultId) -> PathBuf {
        self.dir.join(format!("{id}.db"))
    }
}

impl VaultFiles for DirVaultFiles {
    fn open(&mut self, id: VaultId) -> Result<Option<Arc<Database>>, ShardError> {
        let path = self.path(id);
        if !path.exists() {
            return Ok(None);
        }
        Ok(Some(Arc::new(open_database(&path)?)))
    }

    fn create(&mut self, id: VaultId) -> Result<Arc<Database>, ShardError> {
        self.remove(id)?;
        Ok(Arc::new(open_database(self.path(id))?))
    }

    fn remove(&mut self, id: VaultId) -> Result<(), ShardError> {
        let path = self.path(id);
        match std::fs::remove_file(&path) {
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => Err(ShardError::Io {
                what: format!("removing `{}`", path.display()),
                source: error,
            }),
            _ => Ok(()),
        }
    }

    fn list(&self) -> Result<Vec<VaultId>, ShardError> {
        let io_error = |source| ShardError::Io {
            what: format!("listing `{}`", self.dir.display()),
            source,
        };
        let mut ids = Vec::new();
        for entry in std::fs::read_dir(&self.dir).map_err(io_error)? {
            let name = entry.map_err(io_error)?.file_name();
            let name = name.to_string_lossy();
            if let Some(id) = name.strip_suffix(".db").and_then(|stem| stem.parse().ok()) {
                ids.push(id);
            }
        }
        ids.sort();
        Ok(ids)
    }
}

/// Vault files in memory. Clones share the files (a test keeps one to inspect or crash
/// them while the machine owns another); [`Self::crash_copy`] makes independent copies as
/// a power failure would leave them.
#[derive(Clone, Default)]
pub struct MemoryVaultFiles {
    files: Arc<Mutex<BTreeMap<VaultId, Arc<MemoryIo>>>>,
}

impl MemoryVaultFiles {
    /// No files.
    pub fn new() -> Self {
        Self::default()
    }

    fn files(&self) -> std::sync::MutexGuard<'_, BTreeMap<VaultId, Arc<MemoryIo>>> {
        self.files.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The file of a vault, if it has one.
    pub fn io(&self, id: VaultId) -> Option<Arc<MemoryIo>> {
        self.files().get(&id).cloned()
    }

    /// Independent files holding what a power failure now would leave (see
    /// [`MemoryIo::crash_image`]).
    pub fn crash_copy(&self, mode: CrashMode) -> MemoryVaultFiles {
        let files = self
            .files()
            .iter()
            .map(|(id, io)| (*id, Arc::new(MemoryIo::from_image(io.crash_image(mode)))))
            .collect();
        MemoryVaultFiles {
            files: Arc::new(Mutex::new(files)),
        }
    }
}

impl VaultFiles for MemoryVaultFiles {
    fn open(&mut self, id: VaultId) -> Result<Option<Arc<Database>>, ShardError> {
        let Some(io) = self.io(id) else {
            return Ok(None);
        };
        Ok(Some(Arc::new(open_database_with_io(io)?)))
    }

    fn create(&mut self, id: VaultId) -> Result<Arc<Database>, ShardError> {
        let io = Arc::new(MemoryIo::default());
        self.files().insert(id, Arc::clone(&io));
        Ok(Arc::new(open_database_with_io(io)?))
    }

    fn remove(&mut self, id: VaultId) -> Result<(), ShardError> {
        self.files().remove(&id);
        Ok(())
    }

    fn list(&self) -> Result<Vec<VaultId>, ShardError> {
        Ok(self.files().keys().copied().collect())
    }
}

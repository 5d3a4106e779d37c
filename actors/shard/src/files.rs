//! [`VaultFiles`]: where a shard keeps its vaults' database files. [`DirVaultFiles`] uses
//! one file per vault in a directory (`<dir>/<id>.db`, as the node does);
//! [`MemoryVaultFiles`] keeps each file in a [`MemoryIo`], so tests can model crashes.
//!
//! Next to the files, each implementation keeps this replica's durable **stale markers**:
//! a vault marked stale was quarantined once (its file failed to open, so this replica
//! skipped committed commands for it), and stays quarantined on every later open even if
//! its file opens again, until a snapshot restore rebuilds it or the vault is deleted (see
//! `ShardMachine::quarantined`). The markers are this replica's own knowledge, never
//! replicated state: they live outside the catalog and are not part of snapshots.

use std::collections::{BTreeMap, BTreeSet};
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
    /// Durably marks a vault as stale on this replica (see the module documentation): once
    /// this returns, [`Self::is_stale`] says so after any crash. Marking a marked vault is
    /// no error. Independent of the vault's file: it neither needs nor touches it.
    fn mark_stale(&mut self, id: VaultId) -> Result<(), ShardError>;
    /// Whether a vault is marked stale.
    fn is_stale(&self, id: VaultId) -> Result<bool, ShardError>;
    /// Removes a vault's stale marker, durably; clearing an unmarked vault is no error.
    fn clear_stale(&mut self, id: VaultId) -> Result<(), ShardError>;
}

/// One file per vault, `<dir>/<16 hex digits of the id>.db`, and a stale marker as an
/// empty file `<dir>/<id>.stale` beside it (which [`VaultFiles::list`] ignores).
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

    fn stale_path(&self, id: VaultId) -> PathBuf {
        self.dir.join(format!("{id}.stale"))
    }

    /// Makes the directory's entries (a marker created or removed) durable.
    fn sync_dir(&self) -> Result<(), ShardError> {
        let io_error = |source| ShardError::Io {
            what: format!("syncing `{}`", self.dir.display()),
            source,
        };
        std::fs::File::open(&self.dir)
            .map_err(io_error)?
            .sync_all()
            .map_err(io_error)
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

    fn mark_stale(&mut self, id: VaultId) -> Result<(), ShardError> {
        let path = self.stale_path(id);
        let io_error = |source| ShardError::Io {
            what: format!("marking `{}`", path.display()),
            source,
        };
        // The marker's existence is its content; syncing the file and then the directory
        // makes both the inode and its name survive a power failure.
        std::fs::File::create(&path)
            .map_err(io_error)?
            .sync_all()
            .map_err(io_error)?;
        self.sync_dir()
    }

    fn is_stale(&self, id: VaultId) -> Result<bool, ShardError> {
        let path = self.stale_path(id);
        path.try_exists().map_err(|source| ShardError::Io {
            what: format!("reading `{}`", path.display()),
            source,
        })
    }

    fn clear_stale(&mut self, id: VaultId) -> Result<(), ShardError> {
        let path = self.stale_path(id);
        match std::fs::remove_file(&path) {
            Ok(()) => self.sync_dir(),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(ShardError::Io {
                what: format!("removing `{}`", path.display()),
                source,
            }),
        }
    }
}

/// Vault files in memory. Clones share the files and the stale markers (a test keeps one
/// to inspect or crash them while the machine owns another); [`Self::crash_copy`] makes
/// independent copies as a power failure would leave them.
#[derive(Clone, Default)]
pub struct MemoryVaultFiles {
    files: Arc<Mutex<BTreeMap<VaultId, Arc<MemoryIo>>>>,
    /// The vaults marked stale; a marker is durable at once, as `DirVaultFiles`' are.
    stale: Arc<Mutex<BTreeSet<VaultId>>>,
}

impl MemoryVaultFiles {
    /// No files.
    pub fn new() -> Self {
        Self::default()
    }

    fn files(&self) -> std::sync::MutexGuard<'_, BTreeMap<VaultId, Arc<MemoryIo>>> {
        self.files.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn stale(&self) -> std::sync::MutexGuard<'_, BTreeSet<VaultId>> {
        self.stale.lock().unwrap_or_else(PoisonError::into_inner)
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
            stale: Arc::new(Mutex::new(self.stale().clone())),
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

    fn mark_stale(&mut self, id: VaultId) -> Result<(), ShardError> {
        self.stale().insert(id);
        Ok(())
    }

    fn is_stale(&self, id: VaultId) -> Result<bool, ShardError> {
        Ok(self.stale().contains(&id))
    }

    fn clear_stale(&mut self, id: VaultId) -> Result<(), ShardError> {
        self.stale().remove(&id);
        Ok(())
    }
}

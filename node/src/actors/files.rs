//! [`NodeVaultFiles`]: a shard machine's vault files on a node (`vaults/<id>.db` for shard
//! 0, `shards/<n>/vaults/<id>.db` for data shard `n`).
//!
//! A database file can be opened once per process, and readers may still hold snapshots of
//! a vault when its shard's raft member restarts; so the open handles are kept in the
//! node's context, and a restarted member gets the same handle back.

use std::sync::Arc;

use inferadb_protocols::VaultId;
use inferadb_shard::{DirVaultFiles, ShardError, VaultFiles};
use inferadb_storage::Database;

use crate::context::NodeContext;

/// Vault files under the node's data directory, opened once per process.
pub struct NodeVaultFiles {
    context: Arc<NodeContext>,
    directory: DirVaultFiles,
}

impl NodeVaultFiles {
    /// The files of shard `shard`'s vaults directory (created if missing).
    pub fn new(context: Arc<NodeContext>, shard: u64) -> Result<NodeVaultFiles, ShardError> {
        let directory = DirVaultFiles::new(context.config.shard_vaults_dir(shard))?;
        Ok(NodeVaultFiles { context, directory })
    }
}

impl VaultFiles for NodeVaultFiles {
    fn open(&mut self, id: VaultId) -> Result<Option<Arc<Database>>, ShardError> {
        if let Some(database) = self.context.vault_files.lock().get(&id) {
            return Ok(Some(Arc::clone(database)));
        }
        let opened = self.directory.open(id)?;
        if let Some(database) = &opened {
            self.context
                .vault_files
                .lock()
                .insert(id, Arc::clone(database));
        }
        Ok(opened)
    }

    fn create(&mut self, id: VaultId) -> Result<Arc<Database>, ShardError> {
        // A handle still open here belongs to a creation the catalog lost: replace it.
        self.context.vault_files.lock().remove(&id);
        let database = self.directory.create(id)?;
        self.context
            .vault_files
            .lock()
            .insert(id, Arc::clone(&database));
        Ok(database)
    }

    fn remove(&mut self, id: VaultId) -> Result<(), ShardError> {
        // Readers still holding a snapshot keep the mapping alive; the file's name goes now.
        self.context.vault_files.lock().remove(&id);
        self.directory.remove(id)
    }

    fn list(&self) -> Result<Vec<VaultId>, ShardError> {
        self.directory.list()
    }

    fn mark_stale(&mut self, id: VaultId) -> Result<(), ShardError> {
        self.directory.mark_stale(id)
    }

    fn is_stale(&self, id: VaultId) -> Result<bool, ShardError> {
        self.directory.is_stale(id)
    }

    fn clear_stale(&mut self, id: VaultId) -> Result<(), ShardError> {
        self.directory.clear_stale(id)
    }
}

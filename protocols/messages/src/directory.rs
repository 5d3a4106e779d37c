//! The published routes to each vault: its actor and its latest read snapshot.
//!
//! The vault registry is the only writer; request handlers read. Snapshots travel through a
//! `tokio::sync::watch` channel per vault, so a reader that needs a newer revision (a check
//! `at_least_as_fresh` a token) waits on the channel instead of polling.

use std::collections::HashMap;
use std::sync::Arc;

use inferadb_protocols::VaultId;
use inferadb_vault::{VaultRecord, VaultSnapshot};
use parking_lot::RwLock;
use tokio::sync::watch;

use crate::mailbox::Mailbox;
use crate::vault::VaultMsg;

/// How many recent snapshots a vault keeps reachable for lookups that continue a cursor
/// issued at an older revision. Each pins the pages of its commit until it falls out.
pub const SNAPSHOT_HISTORY_MAX: usize = 16;

/// The most recent snapshots of a vault, newest last (published by the vault actor).
#[derive(Clone, Default)]
pub struct SnapshotHistory {
    snapshots: Arc<RwLock<std::collections::VecDeque<Arc<VaultSnapshot>>>>,
}

impl SnapshotHistory {
    /// Records a newly published snapshot, forgetting the oldest beyond
    /// [`SNAPSHOT_HISTORY_MAX`].
    pub fn push(&self, snapshot: Arc<VaultSnapshot>) {
        let mut snapshots = self.snapshots.write();
        if snapshots.len() == SNAPSHOT_HISTORY_MAX {
            snapshots.pop_front();
        }
        snapshots.push_back(snapshot);
    }

    /// The retained snapshot at exactly `revision`.
    pub fn at(&self, revision: inferadb_protocols::Revision) -> Option<Arc<VaultSnapshot>> {
        self.snapshots
            .read()
            .iter()
            .rev()
            .find(|snapshot| snapshot.revision() == revision)
            .cloned()
    }
}

/// How to reach one active vault.
#[derive(Clone)]
pub struct VaultRoute {
    /// The vault's catalog record.
    pub record: VaultRecord,
    /// The vault state actor.
    pub mailbox: Mailbox<VaultMsg>,
    /// The latest published snapshot (`None` while the vault actor first opens the vault);
    /// the vault actor sends a new one after every group commit.
    pub snapshots: watch::Receiver<Option<Arc<VaultSnapshot>>>,
    /// Recent snapshots, for cursors issued at an older revision.
    pub history: SnapshotHistory,
    /// The vault's own database file (for statistics; only the vault actor writes it).
    pub database: Arc<inferadb_storage::Database>,
}

/// Routes to every active vault of the node.
#[derive(Clone, Default)]
pub struct VaultDirectory {
    routes: Arc<RwLock<HashMap<VaultId, VaultRoute>>>,
}

impl VaultDirectory {
    /// An empty directory.
    pub fn new() -> VaultDirectory {
        VaultDirectory::default()
    }

    /// The route to `id`, if the vault exists.
    pub fn get(&self, id: VaultId) -> Option<VaultRoute> {
        self.routes.read().get(&id).cloned()
    }

    /// Publishes the route to a vault (registry only).
    pub fn insert(&self, id: VaultId, route: VaultRoute) {
        self.routes.write().insert(id, route);
    }

    /// Withdraws the route to a deleted vault (registry only).
    pub fn remove(&self, id: VaultId) -> Option<VaultRoute> {
        self.routes.write().remove(&id)
    }

    /// Every route.
    pub fn routes(&self) -> Vec<VaultRoute> {
        self.routes.read().values().cloned().collect()
    }
}

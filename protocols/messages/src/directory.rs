//! The published routes to each vault: its actor and its latest read snapshot.
//!
//! The shard that holds the vault is the only writer: it inserts a route when the vault
//! appears in its applied state, publishes a snapshot after every drain that changed the
//! vault, and removes the route when the vault is deleted. Request handlers read. Snapshots
//! travel through a `tokio::sync::watch` channel per vault, so a reader that needs a newer
//! revision (a check `at_least_as_fresh` a token) waits on the channel instead of polling.

use std::collections::HashMap;
use std::sync::Arc;

use inferadb_protocols::VaultId;
use inferadb_vault::{VaultRecord, VaultSnapshot};
use parking_lot::RwLock;
use tokio::sync::watch;

use crate::mailbox::Mailbox;
use crate::vault::VaultMsg;

/// How many snapshots a vault keeps for unfinished lookups (each pins the pages of its
/// commit while it is kept).
pub const SNAPSHOT_HISTORY_MAX: usize = 16;

/// How long a snapshot is kept for a lookup's next page.
pub const CURSOR_SNAPSHOT_TTL_MS: u64 = 60_000;

/// Snapshots kept because a lookup page was served from them with a cursor: the next page
/// must read the same revision. Only such snapshots are kept (and only for
/// [`CURSOR_SNAPSHOT_TTL_MS`]), because every kept snapshot holds back page reuse in its
/// vault's file.
#[derive(Clone, Default)]
pub struct SnapshotHistory {
    snapshots: Arc<RwLock<KeptSnapshots>>,
}

/// Kept snapshots with the time each was kept, oldest first.
type KeptSnapshots = std::collections::VecDeque<(Arc<VaultSnapshot>, u64)>;

impl SnapshotHistory {
    /// Keeps `snapshot` (served at `now_ms`) for the lookups continuing from it, forgetting
    /// the oldest beyond [`SNAPSHOT_HISTORY_MAX`].
    pub fn retain(&self, snapshot: &Arc<VaultSnapshot>, now_ms: u64) {
        let mut snapshots = self.snapshots.write();
        snapshots.retain(|(kept, kept_at_ms)| {
            kept.revision() != snapshot.revision()
                && now_ms.saturating_sub(*kept_at_ms) < CURSOR_SNAPSHOT_TTL_MS
        });
        if snapshots.len() == SNAPSHOT_HISTORY_MAX {
            snapshots.pop_front();
        }
        snapshots.push_back((Arc::clone(snapshot), now_ms));
    }

    /// The kept snapshot at exactly `revision`, unless it expired.
    pub fn at(
        &self,
        revision: inferadb_protocols::Revision,
        now_ms: u64,
    ) -> Option<Arc<VaultSnapshot>> {
        self.snapshots
            .read()
            .iter()
            .rev()
            .find(|(snapshot, kept_at_ms)| {
                snapshot.revision() == revision
                    && now_ms.saturating_sub(*kept_at_ms) < CURSOR_SNAPSHOT_TTL_MS
            })
            .map(|(snapshot, _)| Arc::clone(snapshot))
    }
}

/// How to reach one active vault.
#[derive(Clone)]
pub struct VaultRoute {
    /// The vault's catalog record.
    pub record: VaultRecord,
    /// The shard (raft group) that holds the vault.
    pub shard: u64,
    /// The vault state actor.
    pub mailbox: Mailbox<VaultMsg>,
    /// The latest published snapshot; the shard sends a new one after every drain of its
    /// raft group that changed the vault.
    pub snapshots: watch::Receiver<Option<Arc<VaultSnapshot>>>,
    /// The sending side of `snapshots` (the shard's).
    pub publisher: Arc<watch::Sender<Option<Arc<VaultSnapshot>>>>,
    /// Snapshots kept for unfinished lookups.
    pub history: SnapshotHistory,
    /// The vault's own database file (for statistics; only the shard writes it).
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

    /// The shard that holds `id`, without cloning its route (revision tokens name it on
    /// every answer).
    pub fn shard_of(&self, id: VaultId) -> Option<u64> {
        self.routes.read().get(&id).map(|route| route.shard)
    }

    /// Publishes the route to a vault (the shard only).
    pub fn insert(&self, id: VaultId, route: VaultRoute) {
        self.routes.write().insert(id, route);
    }

    /// Withdraws the route to a deleted vault (the shard only).
    pub fn remove(&self, id: VaultId) -> Option<VaultRoute> {
        self.routes.write().remove(&id)
    }

    /// Every route.
    pub fn routes(&self) -> Vec<VaultRoute> {
        self.routes.read().values().cloned().collect()
    }
}

//! What every actor of a node shares: configuration, the clock, the database, the live
//! actor records and the published vault routes, and the stable names.

use std::sync::Arc;

use inferadb_messages::{ActorDirectory, VaultDirectory};
use inferadb_protocols::{Clock, VaultId};
use inferadb_storage::Database;

use crate::config::NodeConfig;

/// The wall clock. The only place a node reads the system time.
pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods)] // the shell's one wall-clock read, injected everywhere
    fn now_ms(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_millis() as u64)
    }
}

/// Stable actor names: `node/<id>/…`.
#[derive(Clone, Debug)]
pub struct Names {
    node_id: u64,
}

impl Names {
    /// The names of node `node_id`.
    pub fn new(node_id: u64) -> Names {
        Names { node_id }
    }

    /// The root supervisor.
    pub fn root(&self) -> String {
        format!("node/{}", self.node_id)
    }

    /// A direct child of the root.
    pub fn child(&self, leaf: &str) -> String {
        format!("node/{}/{leaf}", self.node_id)
    }

    /// A vault state actor.
    pub fn vault(&self, id: VaultId) -> String {
        format!("node/{}/vault/{id}", self.node_id)
    }

    /// An evaluator worker.
    pub fn worker(&self, index: usize) -> String {
        format!("node/{}/evaluator/worker/{index}", self.node_id)
    }
}

/// Everything the actors of one node share.
pub struct NodeContext {
    /// The validated configuration.
    pub config: NodeConfig,
    /// The clock.
    pub clock: Arc<dyn Clock>,
    /// The node's catalog database (`node.db`: vault records, the token key). Each vault
    /// has its own database file, owned by its vault actor.
    pub database: Arc<Database>,
    /// Live actor records.
    pub actors: ActorDirectory,
    /// Published vault routes.
    pub vaults: VaultDirectory,
    /// Stable names.
    pub names: Names,
    /// The node catalog (vault records, the token key), opened once at start.
    pub catalog: inferadb_vault::NodeCatalog,
    /// The key revision tokens are authenticated with.
    pub token_secret: [u8; 32],
    /// Open vault files, by vault: a database file can be opened once per process, and
    /// the handles outlive a restarted registry.
    pub vault_files: parking_lot::Mutex<std::collections::HashMap<VaultId, Arc<Database>>>,
    /// Open catalog files of the data shards, by shard (shard 0's is `database`): opened
    /// once per process, so a restarted raft member gets the same handle.
    pub shard_catalogs: parking_lot::Mutex<std::collections::HashMap<u64, Arc<Database>>>,
    /// Every vault's placement (which data shard holds it), as shard 0 last published it.
    pub placements:
        parking_lot::RwLock<std::collections::BTreeMap<VaultId, inferadb_shard::Placement>>,
    /// The Prometheus exporter's handle (renders `/metrics`).
    pub metrics: metrics_exporter_prometheus::PrometheusHandle,
}

impl NodeContext {
    /// Milliseconds since the Unix epoch.
    pub fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    /// The catalog database of `shard`, opened (created if missing) the first time.
    pub fn shard_catalog(&self, shard: u64) -> Result<Arc<Database>, String> {
        if shard == 0 {
            return Ok(Arc::clone(&self.database));
        }
        let mut catalogs = self.shard_catalogs.lock();
        if let Some(database) = catalogs.get(&shard) {
            return Ok(Arc::clone(database));
        }
        let path = self.config.shard_catalog_file(shard);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|error| format!("`{}`: {error}", parent.display()))?;
        }
        let database = inferadb_vault::open_database(&path)
            .map_err(|error| format!("shard catalog `{}`: {error}", path.display()))?;
        let database = Arc::new(database);
        catalogs.insert(shard, Arc::clone(&database));
        Ok(database)
    }

    /// Every open catalog database: shard 0's first.
    pub fn catalogs(&self) -> Vec<Arc<Database>> {
        let mut all = vec![Arc::clone(&self.database)];
        let catalogs = self.shard_catalogs.lock();
        let mut shards: Vec<&u64> = catalogs.keys().collect();
        shards.sort();
        all.extend(shards.into_iter().map(|shard| Arc::clone(&catalogs[shard])));
        all
    }
}

//! The storage actor: the node's storage in the supervision tree. It owns the catalog file
//! (`node.db`) and reports on every file of the node (the catalog and each vault's file,
//! which its vault actor writes): statistics, integrity checks, and the final sync.

use std::sync::Arc;

use inferadb_messages::StorageMsg;
use inferadb_storage::{Database, DatabaseStats, StorageError};
use ractor::{Actor, ActorProcessingErr, ActorRef};

use crate::context::NodeContext;

/// The storage actor.
pub struct StorageActor;

impl Actor for StorageActor {
    type Msg = StorageMsg;
    type State = Arc<NodeContext>;
    type Arguments = Arc<NodeContext>;

    async fn pre_start(
        &self,
        myself: ActorRef<StorageMsg>,
        context: Arc<NodeContext>,
    ) -> Result<Arc<NodeContext>, ActorProcessingErr> {
        let name = context.names.child("storage");
        let record = context
            .actors
            .record(&name, Some(&context.names.root()), "storage");
        record.started(myself.get_id().pid(), context.now_ms());
        Ok(context)
    }

    async fn handle(
        &self,
        _myself: ActorRef<StorageMsg>,
        message: StorageMsg,
        context: &mut Arc<NodeContext>,
    ) -> Result<(), ActorProcessingErr> {
        if let Some(record) = context.actors.get(&context.names.child("storage")) {
            record.handled_one();
        }
        let database = Arc::clone(&context.database);
        // Syncs and page walks block on the disk: keep them off the async workers' hot path.
        match message {
            StorageMsg::Sync { reply } => {
                let synced = tokio::task::block_in_place(|| sync_vaults_then_catalog(context));
                let _ = reply.send(synced);
            }
            StorageMsg::Stats { reply } => {
                let _ = reply.send(node_stats(context));
            }
            StorageMsg::Verify { reply } => {
                let _ = reply.send(tokio::task::block_in_place(|| database.verify()));
            }
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<StorageMsg>,
        context: &mut Arc<NodeContext>,
    ) -> Result<(), ActorProcessingErr> {
        // The last thing a node does: make every deferred commit durable, the vault files
        // before the catalog (whose applied index must never name a vault commit that could
        // still be lost).
        tokio::task::block_in_place(|| sync_vaults_then_catalog(context))?;
        Ok(())
    }
}

/// Syncs every open vault file, then the catalog.
pub fn sync_vaults_then_catalog(context: &NodeContext) -> Result<(), StorageError> {
    let vaults: Vec<Arc<Database>> = context.vault_files.lock().values().cloned().collect();
    for vault in vaults {
        vault.sync()?;
    }
    for catalog in context.catalogs() {
        catalog.sync()?;
    }
    Ok(())
}

/// Every file of the node, the catalog first.
fn databases(context: &NodeContext) -> Vec<Arc<Database>> {
    let mut all = vec![Arc::clone(&context.database)];
    all.extend(
        context
            .vaults
            .routes()
            .into_iter()
            .map(|route| route.database),
    );
    all
}

/// The statistics of every file of the node, added up.
fn node_stats(context: &NodeContext) -> Result<DatabaseStats, StorageError> {
    let mut total: Option<DatabaseStats> = None;
    for database in databases(context) {
        let stats = database.stats()?;
        total = Some(match total {
            None => stats,
            Some(sum) => add(sum, &stats),
        });
    }
    total.ok_or(StorageError::Poisoned)
}

fn add(mut sum: DatabaseStats, stats: &DatabaseStats) -> DatabaseStats {
    sum.file_size_bytes += stats.file_size_bytes;
    sum.page_count += stats.page_count;
    sum.used_pages += stats.used_pages;
    sum.free_pages += stats.free_pages;
    sum.pending_pages += stats.pending_pages;
    sum.live_readers += stats.live_readers;
    sum
}

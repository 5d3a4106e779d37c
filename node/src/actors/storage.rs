//! The storage actor: owns the node's database file for the supervision tree. Statistics,
//! integrity checks and the final sync at shutdown go through it; vault actors write through
//! their own transactions on the shared handle (the engine serialises writers).

use std::sync::Arc;

use inferadb_messages::StorageMsg;
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
                let _ = reply.send(tokio::task::block_in_place(|| database.sync()));
            }
            StorageMsg::Stats { reply } => {
                let _ = reply.send(database.stats());
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
        // The last thing a node does: make every deferred commit durable.
        let database = Arc::clone(&context.database);
        tokio::task::block_in_place(|| database.sync())?;
        Ok(())
    }
}

//! The vault registry: the catalog of the node's vaults and the supervisor of one vault state
//! actor per vault. It publishes each vault's route (actor + snapshot channel) in the
//! [`VaultDirectory`](inferadb_messages::VaultDirectory) and restarts a failed vault actor
//! under the node's restart intensity.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use inferadb_messages::{
    Mailbox, RegistryError, RegistryMsg, RestartDecision, RestartTracker, SnapshotHistory,
    VaultRoute,
};
use inferadb_protocols::VaultId;
use inferadb_vault::{NodeCatalog, VaultRecord};
use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, SupervisionEvent};
use tokio::sync::watch;

use crate::actors::root::abnormal_stop;
use crate::actors::vault::{VaultActor, VaultArguments};
use crate::context::NodeContext;

/// How long a deletion waits for the vault actor to stop.
const VAULT_STOP_WAIT_MS: u64 = 10_000;

/// One supervised vault actor.
struct Child {
    arguments: VaultArguments,
    tracker: RestartTracker,
}

/// The registry's state.
pub struct RegistryState {
    context: Arc<NodeContext>,
    catalog: NodeCatalog,
    children: HashMap<VaultId, Child>,
}

/// The vault registry actor.
pub struct VaultRegistry;

impl Actor for VaultRegistry {
    type Msg = RegistryMsg;
    type State = RegistryState;
    type Arguments = Arc<NodeContext>;

    async fn pre_start(
        &self,
        myself: ActorRef<RegistryMsg>,
        context: Arc<NodeContext>,
    ) -> Result<RegistryState, ActorProcessingErr> {
        let catalog = NodeCatalog::open(Arc::clone(&context.database), rand::random())?;
        let mut state = RegistryState {
            context: Arc::clone(&context),
            catalog,
            children: HashMap::new(),
        };
        for record in state.catalog.list_vaults()? {
            start_vault(&mut state, record, myself.get_cell()).await?;
        }
        let name = context.names.child("vaults");
        context
            .actors
            .record(&name, Some(&context.names.root()), "vault_registry")
            .started(myself.get_id().pid(), context.now_ms());
        Ok(state)
    }

    async fn handle(
        &self,
        myself: ActorRef<RegistryMsg>,
        message: RegistryMsg,
        state: &mut RegistryState,
    ) -> Result<(), ActorProcessingErr> {
        let name = state.context.names.child("vaults");
        if let Some(record) = state.context.actors.get(&name) {
            record.handled_one();
        }
        match message {
            RegistryMsg::Create { name, reply } => {
                let _ = reply.send(create(state, &name, myself.get_cell()).await);
            }
            RegistryMsg::List { reply } => {
                let _ = reply.send(state.catalog.list_vaults().map_err(RegistryError::from));
            }
            RegistryMsg::Delete { id, reply } => {
                let _ = reply.send(delete(state, id).await);
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<RegistryMsg>,
        event: SupervisionEvent,
        state: &mut RegistryState,
    ) -> Result<(), ActorProcessingErr> {
        let Some((cell, reason)) = abnormal_stop(event) else {
            return Ok(());
        };
        let Some(id) = vault_of(state, &cell) else {
            return Ok(());
        };
        restart_vault(state, id, reason, myself.get_cell()).await
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<RegistryMsg>,
        state: &mut RegistryState,
    ) -> Result<(), ActorProcessingErr> {
        // Children stop with us; their routes must not outlive them.
        for id in state.children.keys() {
            state.context.vaults.remove(*id);
        }
        Ok(())
    }
}

fn vault_of(state: &RegistryState, cell: &ActorCell) -> Option<VaultId> {
    let name = cell.get_name()?;
    state
        .children
        .keys()
        .copied()
        .find(|id| state.context.names.vault(*id) == name)
}

/// Spawns the actor of `record` (which publishes the first snapshot) and its route.
async fn start_vault(
    state: &mut RegistryState,
    record: VaultRecord,
    supervisor: ActorCell,
) -> Result<(), ActorProcessingErr> {
    let context = Arc::clone(&state.context);
    let id = record.id;
    let name = context.names.vault(id);
    // `None` until the actor has opened the vault (it publishes before it is running).
    let (sender, receiver) = watch::channel(None);
    let history = SnapshotHistory::default();
    let arguments = VaultArguments {
        context: Arc::clone(&context),
        id,
        snapshots: Arc::new(sender),
        history: history.clone(),
    };
    Actor::spawn_linked(
        Some(name.clone()),
        VaultActor,
        arguments.clone(),
        supervisor,
    )
    .await?;
    let actor_record = context
        .actors
        .record(&name, Some(&context.names.child("vaults")), "vault");
    context.vaults.insert(
        id,
        VaultRoute {
            record,
            mailbox: Mailbox::new(actor_record),
            snapshots: receiver,
            history,
        },
    );
    let supervision = &context.config.supervision;
    let tracker = RestartTracker::with_intensity(supervision.intensity("vault"));
    state.children.insert(id, Child { arguments, tracker });
    Ok(())
}

async fn create(
    state: &mut RegistryState,
    name: &str,
    supervisor: ActorCell,
) -> Result<VaultRecord, RegistryError> {
    let now_ms = state.context.now_ms();
    let record = loop {
        let id = VaultId(rand::random());
        match state.catalog.create_vault(id, name, now_ms) {
            Err(inferadb_vault::CatalogError::IdTaken { .. }) => continue,
            other => break other?,
        }
    };
    let id = record.id;
    start_vault(state, record.clone(), supervisor)
        .await
        .map_err(|error| RegistryError::SpawnFailed {
            id,
            message: error.to_string(),
        })?;
    Ok(record)
}

async fn delete(state: &mut RegistryState, id: VaultId) -> Result<(), RegistryError> {
    if state.catalog.get(id)?.is_none() {
        return Err(RegistryError::NotFound { id });
    }
    // Withdraw the route first so no new request reaches the vault, then stop its actor
    // (which answers the writes it holds), then delete the data.
    let context = Arc::clone(&state.context);
    context.vaults.remove(id);
    state.children.remove(&id);
    let name = context.names.vault(id);
    if let Some(cell) = ractor::registry::where_is(name.clone()) {
        let wait = Some(Duration::from_millis(VAULT_STOP_WAIT_MS));
        cell.stop_and_wait(Some("vault deleted".to_string()), wait)
            .await
            .map_err(|error| RegistryError::SpawnFailed {
                id,
                message: format!("stopping the vault actor: {error}"),
            })?;
    }
    let catalog = &state.catalog;
    tokio::task::block_in_place(|| catalog.delete_vault(id))?;
    context.actors.remove_subtree(&name);
    Ok(())
}

async fn restart_vault(
    state: &mut RegistryState,
    id: VaultId,
    reason: String,
    supervisor: ActorCell,
) -> Result<(), ActorProcessingErr> {
    let context = Arc::clone(&state.context);
    let name = context.names.vault(id);
    let record = context
        .actors
        .record(&name, Some(&context.names.child("vaults")), "vault");
    let Some(child) = state.children.get_mut(&id) else {
        return Ok(());
    };
    match child.tracker.on_failure(context.now_ms()) {
        RestartDecision::Restart => {
            tracing::warn!(actor = %name, %reason, "restarting vault actor");
            record.restarting(reason);
            record.reset_mailbox();
            let arguments = child.arguments.clone();
            Actor::spawn_linked(Some(name), VaultActor, arguments, supervisor).await?;
            Ok(())
        }
        RestartDecision::Escalate => {
            record.failed_for_good(reason.clone());
            context.vaults.remove(id);
            Err(format!("vault actor `{name}` failed too often (last: {reason})").into())
        }
    }
}

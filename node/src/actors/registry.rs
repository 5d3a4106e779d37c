//! The vault registry (`node/<id>/vaults`): creates and deletes vaults by proposing the
//! commands to the shard, and supervises one vault actor per vault the shard holds on this
//! node.
//!
//! The shard's applied state is the truth: its [`Publisher`](crate::actors::publish) inserts
//! and removes each vault's route, and tells the registry (`Reconcile`) when the set of
//! vaults changed, whichever node proposed the change. The registry then starts the vault
//! actors the routes name and stops those whose vault is gone. A vault actor that fails is
//! restarted under its restart intensity; one that fails too often is taken out of service
//! alone (its route is withdrawn; every other vault keeps serving).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use inferadb_messages::supervision::spawn_under_name;
use inferadb_messages::{
    Mailbox, ProposalFailure, RegistryError, RegistryMsg, RestartDecision, RestartTracker, ShardMsg,
};
use inferadb_protocols::VaultId;
use inferadb_shard::{ShardAnswer, ShardCommand};
use inferadb_vault::{CatalogError, NodeCatalog, VaultRecord};
use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, SpawnErr, SupervisionEvent};

use crate::actors::root::abnormal_stop;
use crate::actors::shard::SYSTEM_SHARD;
use crate::actors::vault::{VaultActor, VaultArguments};
use crate::context::NodeContext;

/// How long a deletion waits for the vault actor to stop.
const VAULT_STOP_WAIT_MS: u64 = 10_000;
/// How many fresh ids a creation tries when the drawn one is taken.
const CREATE_ATTEMPTS: u32 = 3;

/// One supervised vault actor.
struct Child {
    arguments: VaultArguments,
    tracker: RestartTracker,
}

/// The registry's state.
pub struct RegistryState {
    context: Arc<NodeContext>,
    /// Each shard's catalog database (vault records), for listing.
    catalogs: Vec<Arc<inferadb_storage::Database>>,
    children: HashMap<VaultId, Child>,
    /// Vaults taken out of service on this node (they failed too often): not restarted by
    /// a reconcile.
    out_of_service: HashMap<VaultId, String>,
}

/// The vault registry actor.
pub struct VaultRegistry;

/// The mailbox of shard `shard`'s actor on this node.
pub fn shard_mailbox(context: &NodeContext, shard: u64) -> Mailbox<ShardMsg> {
    let names = &context.names;
    Mailbox::new(context.actors.record(
        &names.child(&format!("shard/{shard}")),
        Some(&names.root()),
        "shard",
    ))
}

impl Actor for VaultRegistry {
    type Msg = RegistryMsg;
    type State = RegistryState;
    type Arguments = Arc<NodeContext>;

    async fn pre_start(
        &self,
        myself: ActorRef<RegistryMsg>,
        context: Arc<NodeContext>,
    ) -> Result<RegistryState, ActorProcessingErr> {
        let mut catalogs = Vec::new();
        for shard in context.config.shards() {
            // Read-only: a commit here would make the shard's deferred applied index durable
            // ahead of its vault files.
            catalogs.push(context.shard_catalog(shard)?);
        }
        let mut state = RegistryState {
            catalogs,
            context: Arc::clone(&context),
            children: HashMap::new(),
            out_of_service: HashMap::new(),
        };
        reconcile(&mut state, myself.get_cell()).await;
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
                let created = create(state, &name).await;
                if created.is_ok() {
                    reconcile(state, myself.get_cell()).await;
                }
                let _ = reply.send(created);
            }
            RegistryMsg::List { reply } => {
                let _ = reply.send(list(state));
            }
            RegistryMsg::Reconcile => reconcile(state, myself.get_cell()).await,
            RegistryMsg::Delete { id, reply } => {
                let deleted = delete(state, id).await;
                reconcile(state, myself.get_cell()).await;
                let _ = reply.send(deleted);
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
}

/// Starts an actor for every route without one, stops the actors whose route is gone.
async fn reconcile(state: &mut RegistryState, supervisor: ActorCell) {
    let context = Arc::clone(&state.context);
    let routes = context.vaults.routes();
    for route in &routes {
        let id = route.record.id;
        if state.children.contains_key(&id) || state.out_of_service.contains_key(&id) {
            continue;
        }
        if let Err(error) = start_vault(state, id, route.shard, supervisor.clone()).await {
            out_of_service(state, id, format!("failed to start: {error}"));
        }
    }
    let gone: Vec<VaultId> = state
        .children
        .keys()
        .copied()
        .filter(|id| context.vaults.get(*id).is_none())
        .collect();
    for id in gone {
        state.children.remove(&id);
        stop_vault_actor(&context, id).await;
    }
}

/// Stops a deleted vault's actor (it proposes what it holds first) and forgets its record.
async fn stop_vault_actor(context: &NodeContext, id: VaultId) {
    let name = context.names.vault(id);
    if let Some(cell) = ractor::registry::where_is(name.clone()) {
        let wait = Some(Duration::from_millis(VAULT_STOP_WAIT_MS));
        if let Err(error) = cell
            .stop_and_wait(Some("vault deleted".to_string()), wait)
            .await
        {
            tracing::warn!(vault = %id, %error, "the vault actor did not stop in time");
        }
    }
    context.actors.remove_subtree(&name);
}

/// Takes a vault out of service on this node: no route, its record says why.
fn out_of_service(state: &mut RegistryState, id: VaultId, reason: String) {
    let context = &state.context;
    let name = context.names.vault(id);
    tracing::error!(vault = %id, %reason, "vault out of service");
    context.vaults.remove(id);
    context
        .actors
        .record(&name, Some(&context.names.child("vaults")), "vault")
        .failed_for_good(reason.clone());
    state.out_of_service.insert(id, reason);
}

fn vault_of(state: &RegistryState, cell: &ActorCell) -> Option<VaultId> {
    let name = cell.get_name()?;
    state
        .children
        .keys()
        .copied()
        .find(|id| state.context.names.vault(*id) == name)
}

/// Spawns a vault actor under its stable name (see [`spawn_under_name`]).
async fn spawn_vault_actor(
    name: &str,
    arguments: &VaultArguments,
    supervisor: &ActorCell,
) -> Result<(), SpawnErr> {
    spawn_under_name(name, || {
        Actor::spawn_linked(
            Some(name.to_string()),
            VaultActor,
            arguments.clone(),
            supervisor.clone(),
        )
    })
    .await
    .map(|_| ())
}

async fn start_vault(
    state: &mut RegistryState,
    id: VaultId,
    shard: u64,
    supervisor: ActorCell,
) -> Result<(), SpawnErr> {
    let context = Arc::clone(&state.context);
    let arguments = VaultArguments {
        context: Arc::clone(&context),
        id,
        shard: shard_mailbox(&context, shard),
    };
    spawn_vault_actor(&context.names.vault(id), &arguments, &supervisor).await?;
    let intensity = context.config.supervision.intensity("vault");
    let tracker = RestartTracker::with_intensity(intensity);
    state.children.insert(id, Child { arguments, tracker });
    Ok(())
}

/// Proposes a command to shard `shard` and decodes its answer.
async fn propose(
    state: &RegistryState,
    shard: u64,
    command: &ShardCommand,
) -> Result<ShardAnswer, RegistryError> {
    let timeout = state.context.config.cluster.forward_timeout_ms
        + state.context.config.raft.tick_ms * state.context.config.raft.request_timeout_ticks;
    let encoded = shard_mailbox(&state.context, shard)
        .call(
            |reply| ShardMsg::Propose {
                data: command.encode(),
                reply,
            },
            timeout,
        )
        .await??;
    ShardAnswer::decode(&encoded).map_err(|error| {
        RegistryError::Proposal(ProposalFailure::OutcomeUnknown {
            reason: format!("the shard's answer is malformed: {error}"),
        })
    })
}

/// The error a command's unexpected answer means.
fn unexpected(answer: &ShardAnswer) -> RegistryError {
    match answer.catalog_error() {
        Some(error) => RegistryError::Catalog(error),
        None => RegistryError::Proposal(ProposalFailure::OutcomeUnknown {
            reason: format!("unexpected answer: {answer:?}"),
        }),
    }
}

/// Every vault of every shard, by id.
fn list(state: &RegistryState) -> Result<Vec<VaultRecord>, RegistryError> {
    let mut records = Vec::new();
    for catalog in &state.catalogs {
        records.extend(NodeCatalog::read_vaults(catalog)?);
    }
    records.sort_by_key(|record| record.id);
    Ok(records)
}

/// Places a new vault in shard 0 (which keeps names unique and picks the data shard), then
/// creates it in its data shard.
async fn create(state: &RegistryState, name: &str) -> Result<VaultRecord, RegistryError> {
    inferadb_vault::validate_vault_name(name)?;
    let data_shards = u32::try_from(state.context.config.cluster.data_shards).unwrap_or(1);
    for _ in 0..CREATE_ATTEMPTS {
        let id = VaultId(rand::random());
        let place = ShardCommand::PlaceVault {
            id,
            name: name.to_string(),
            data_shards,
        };
        match propose(state, SYSTEM_SHARD, &place).await? {
            ShardAnswer::VaultPlaced { id, shard } => {
                return create_in(state, shard, id, name).await
            }
            // A random 64-bit id is taken: draw another.
            ShardAnswer::Refused { ref kind, .. } if kind == "vault_id_taken" => continue,
            other => return Err(unexpected(&other)),
        }
    }
    Err(RegistryError::Catalog(CatalogError::Corrupt {
        what: format!("{CREATE_ATTEMPTS} random vault ids in a row were taken"),
    }))
}

/// Creates a placed vault in its data shard; a refusal there frees the name again.
async fn create_in(
    state: &RegistryState,
    shard: u64,
    id: VaultId,
    name: &str,
) -> Result<VaultRecord, RegistryError> {
    let command = ShardCommand::CreateVault {
        id,
        name: name.to_string(),
        now_ms: state.context.now_ms(),
    };
    match propose(state, shard, &command).await? {
        ShardAnswer::VaultCreated {
            id,
            name,
            created_at_ms,
        } => Ok(VaultRecord {
            id,
            name,
            created_at_ms,
        }),
        refused @ ShardAnswer::Refused { .. } => {
            let _ = propose(state, SYSTEM_SHARD, &ShardCommand::UnplaceVault { id }).await;
            Err(unexpected(&refused))
        }
        other => Err(unexpected(&other)),
    }
}

/// Deletes a vault from its data shard, then its placement. A placement whose creation
/// never finished (the answer was lost) is removed the same way.
async fn delete(state: &RegistryState, id: VaultId) -> Result<(), RegistryError> {
    let shard = state
        .context
        .vaults
        .get(id)
        .map(|route| route.shard)
        .or_else(|| {
            state
                .context
                .placements
                .read()
                .get(&id)
                .map(|placement| placement.shard)
        });
    let mut deleted = false;
    if let Some(shard) = shard {
        match propose(state, shard, &ShardCommand::DeleteVault { id }).await? {
            ShardAnswer::VaultDeleted { .. } => deleted = true,
            ShardAnswer::Refused { ref kind, .. } if kind == "vault_not_found" => {}
            other => return Err(unexpected(&other)),
        }
    }
    match propose(state, SYSTEM_SHARD, &ShardCommand::UnplaceVault { id }).await? {
        ShardAnswer::VaultUnplaced { .. } => Ok(()),
        // A vault of shard 0 from before placements existed has none.
        ShardAnswer::Refused { ref kind, .. } if kind == "vault_not_found" && deleted => Ok(()),
        ShardAnswer::Refused { ref kind, .. } if kind == "vault_not_found" => {
            Err(RegistryError::NotFound { id })
        }
        other => Err(unexpected(&other)),
    }
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
            spawn_vault_actor(&name, &child.arguments, &supervisor).await?;
            Ok(())
        }
        RestartDecision::Escalate => {
            // Contained: this vault goes out of service, the registry and the other vaults
            // carry on.
            state.children.remove(&id);
            out_of_service(state, id, format!("failed too often (last: {reason})"));
            Ok(())
        }
    }
}

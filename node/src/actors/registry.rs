//! The vault registry: the catalog of the node's vaults and the supervisor of one vault state
//! actor per vault. It publishes each vault's route (actor, snapshot channel, database) in
//! the [`VaultDirectory`](inferadb_messages::VaultDirectory) and restarts a failed vault
//! actor under its restart intensity.
//!
//! Each vault lives in its own file, `vaults/<id>.db`, which describes itself (it holds the
//! vault's record too); the node catalog (`node.db`) lists the vaults. A vault is created
//! file first, then catalog record; deleted catalog record first, then file. So a crash
//! between the two steps leaves at most a file no record names, which the next start
//! removes.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use inferadb_messages::supervision::wait_until_unregistered;
use inferadb_messages::{
    Mailbox, RegistryError, RegistryMsg, RestartDecision, RestartTracker, SnapshotHistory,
    VaultRoute,
};
use inferadb_protocols::VaultId;
use inferadb_storage::Database;
use inferadb_vault::{CatalogError, NodeCatalog, VaultRecord};
use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, SpawnErr, SupervisionEvent};
use tokio::sync::watch;

use crate::actors::root::abnormal_stop;
use crate::actors::vault::{VaultActor, VaultArguments};
use crate::context::NodeContext;

/// How long a deletion waits for the vault actor to stop.
const VAULT_STOP_WAIT_MS: u64 = 10_000;
/// How often, and how far apart, a vault actor's start is retried while a dead incarnation
/// still holds its name.
const SPAWN_ATTEMPTS: u32 = 200;
const SPAWN_RETRY_MS: u64 = 5;

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
        let catalog = context.catalog.clone();
        let mut state = RegistryState {
            context: Arc::clone(&context),
            catalog,
            children: HashMap::new(),
        };
        let records = state.catalog.list_vaults()?;
        remove_orphan_files(&context, &records);
        for record in records {
            // One vault that cannot open (damaged file, a schema this version rejects) must
            // not keep the node, and every other vault, down: it stays out of service.
            let id = record.id;
            let started = match open_vault_file(&context, id) {
                Ok(database) => start_vault(&mut state, record, database, myself.get_cell()).await,
                Err(error) => Err(error),
            };
            if let Err(error) = started {
                out_of_service(&context, id, format!("failed to start: {error}"));
            }
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

/// The handle on a vault's own database file, opening (creating if missing) the file the
/// first time in this process.
fn open_vault_file(
    context: &NodeContext,
    id: VaultId,
) -> Result<Arc<Database>, ActorProcessingErr> {
    let mut files = context.vault_files.lock();
    if let Some(database) = files.get(&id) {
        return Ok(Arc::clone(database));
    }
    let path = context.config.vault_file(id);
    let database = inferadb_vault::open_database(&path)
        .map_err(|error| format!("vault file `{}`: {error}", path.display()))?;
    let database = Arc::new(database);
    files.insert(id, Arc::clone(&database));
    Ok(database)
}

/// Forgets a deleted vault's file handle and removes the file.
fn close_vault_file(context: &NodeContext, id: VaultId) {
    context.vault_files.lock().remove(&id);
    // Readers still holding a snapshot keep the mapping alive; the file's name goes now.
    let _ = std::fs::remove_file(context.config.vault_file(id));
}

/// Deletes vault files that no catalog record names (a crash between a file's creation and
/// its record, or between a record's deletion and its file's).
fn remove_orphan_files(context: &NodeContext, records: &[VaultRecord]) {
    let known: HashSet<String> = records
        .iter()
        .map(|record| format!("{}.db", record.id))
        .collect();
    let Ok(entries) = std::fs::read_dir(context.config.vaults_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let file_name = entry.file_name().to_string_lossy().into_owned();
        if file_name.ends_with(".db") && !known.contains(&file_name) {
            tracing::warn!(file = %file_name, "removing a vault file no catalog record names");
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Takes a vault out of service: no route, its record says why.
fn out_of_service(context: &NodeContext, id: VaultId, reason: String) {
    let name = context.names.vault(id);
    tracing::error!(vault = %id, %reason, "vault out of service");
    context.vaults.remove(id);
    context
        .actors
        .record(&name, Some(&context.names.child("vaults")), "vault")
        .failed_for_good(reason);
}

fn vault_of(state: &RegistryState, cell: &ActorCell) -> Option<VaultId> {
    let name = cell.get_name()?;
    state
        .children
        .keys()
        .copied()
        .find(|id| state.context.names.vault(*id) == name)
}

/// Spawns a vault actor, retrying (bounded) while a dead incarnation still holds the name.
async fn spawn_vault_actor(
    name: &str,
    arguments: &VaultArguments,
    supervisor: &ActorCell,
) -> Result<(), SpawnErr> {
    let mut attempt = 1;
    loop {
        wait_until_unregistered(name).await;
        let spawned = Actor::spawn_linked(
            Some(name.to_string()),
            VaultActor,
            arguments.clone(),
            supervisor.clone(),
        )
        .await;
        match spawned {
            Err(SpawnErr::ActorAlreadyRegistered(_)) if attempt < SPAWN_ATTEMPTS => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(SPAWN_RETRY_MS)).await;
            }
            other => return other.map(|_| ()),
        }
    }
}

/// Spawns the actor of `record` (which publishes the first snapshot) and its route.
async fn start_vault(
    state: &mut RegistryState,
    record: VaultRecord,
    database: Arc<Database>,
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
        database: Arc::clone(&database),
    };
    spawn_vault_actor(&name, &arguments, &supervisor).await?;
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
            database,
        },
    );
    let intensity = context.config.supervision.intensity("vault");
    let tracker = RestartTracker::with_intensity(intensity);
    state.children.insert(id, Child { arguments, tracker });
    Ok(())
}

/// A fresh id no vault has.
fn fresh_id(catalog: &NodeCatalog) -> Result<VaultId, CatalogError> {
    loop {
        let id = VaultId(rand::random());
        if catalog.get(id)?.is_none() {
            return Ok(id);
        }
    }
}

/// Creates the vault's file (with its own record), then the catalog record.
fn create_files(
    context: &NodeContext,
    catalog: &NodeCatalog,
    name: &str,
) -> Result<(VaultRecord, Arc<Database>), RegistryError> {
    inferadb_vault::validate_vault_name(name)?;
    if let Some(existing) = catalog
        .list_vaults()?
        .into_iter()
        .find(|record| record.name == name)
    {
        return Err(CatalogError::NameTaken {
            name: name.to_string(),
            existing: existing.id,
        }
        .into());
    }
    let id = fresh_id(catalog)?;
    let now_ms = context.now_ms();
    let database = open_vault_file(context, id).map_err(|error| RegistryError::SpawnFailed {
        id,
        message: error.to_string(),
    })?;
    NodeCatalog::open(Arc::clone(&database), [0; 32])?.create_vault(id, name, now_ms)?;
    database.sync().map_err(CatalogError::from)?;
    match catalog.create_vault(id, name, now_ms) {
        Ok(record) => Ok((record, database)),
        Err(error) => {
            drop(database);
            close_vault_file(context, id);
            Err(error.into())
        }
    }
}

async fn create(
    state: &mut RegistryState,
    name: &str,
    supervisor: ActorCell,
) -> Result<VaultRecord, RegistryError> {
    let context = Arc::clone(&state.context);
    let (record, database) =
        tokio::task::block_in_place(|| create_files(&context, &state.catalog, name))?;
    let id = record.id;
    if let Err(error) = start_vault(state, record.clone(), database, supervisor).await {
        // Undo, so no vault is listed that nothing serves.
        let catalog = &state.catalog;
        let _ = tokio::task::block_in_place(|| catalog.delete_vault(id));
        close_vault_file(&context, id);
        return Err(RegistryError::SpawnFailed {
            id,
            message: error.to_string(),
        });
    }
    Ok(record)
}

async fn delete(state: &mut RegistryState, id: VaultId) -> Result<(), RegistryError> {
    if state.catalog.get(id)?.is_none() {
        return Err(RegistryError::NotFound { id });
    }
    // Withdraw the route first so no new request reaches the vault, then stop its actor
    // (which applies and answers the writes it holds), then delete the record and the file.
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
    close_vault_file(&context, id);
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
            spawn_vault_actor(&name, &child.arguments, &supervisor).await?;
            Ok(())
        }
        RestartDecision::Escalate => {
            // Contained: this vault goes out of service, the registry and the other vaults
            // carry on.
            state.children.remove(&id);
            out_of_service(&context, id, format!("failed too often (last: {reason})"));
            Ok(())
        }
    }
}

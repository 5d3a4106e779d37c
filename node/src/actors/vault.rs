//! The vault state actor: the only writer of one vault.
//!
//! Writes are group-committed. Each `Write` is validated and committed at once (deferred
//! durability, so later writes and preconditions see it), its reply is parked, and the first
//! parked write schedules a `Flush` to the actor's own mailbox. Writes that arrive before the
//! flush is handled join the same group. The flush makes the group durable with one sync,
//! publishes the new snapshot, and only then answers the writers: an acknowledged write is
//! durable and visible.

use std::sync::Arc;

use inferadb_messages::{ActorRecord, SnapshotHistory, VaultMsg};
use inferadb_protocols::VaultId;
use inferadb_storage::{Durability, StorageError};
use inferadb_vault::{
    SchemaDeployed, SchemaError, Vault, VaultOptions, VaultSnapshot, WriteError, WriteOutcome,
};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use tokio::sync::watch;

use crate::context::NodeContext;

/// Arguments of a vault actor (kept by the registry, reused on restart).
#[derive(Clone)]
pub struct VaultArguments {
    /// The node.
    pub context: Arc<NodeContext>,
    /// The vault.
    pub id: VaultId,
    /// Where new snapshots are published.
    pub snapshots: Arc<watch::Sender<Option<Arc<VaultSnapshot>>>>,
    /// Recent snapshots, for lookups continuing an older cursor.
    pub history: SnapshotHistory,
}

/// A reply waiting for its group's flush.
enum Parked {
    Write(RpcReplyPort<Result<WriteOutcome, WriteError>>, WriteOutcome),
    Schema(
        RpcReplyPort<Result<SchemaDeployed, SchemaError>>,
        SchemaDeployed,
    ),
}

/// The vault actor's state.
pub struct VaultState {
    arguments: VaultArguments,
    vault: Vault,
    record: Arc<ActorRecord>,
    parked: Vec<Parked>,
    flush_scheduled: bool,
}

/// The vault state actor.
pub struct VaultActor;

/// The options every vault of this node is opened with.
pub fn vault_options(context: &NodeContext) -> VaultOptions {
    VaultOptions {
        limits: context.config.vault.clone(),
        decision_cache_entries: context.config.evaluator.decision_cache_entries,
        // Group commit: the actor's flush makes each group durable with one sync.
        commit_durability: Durability::Deferred,
        ..VaultOptions::default()
    }
}

/// Makes `snapshot` the one new reads use, and keeps it for older cursors.
fn publish(arguments: &VaultArguments, snapshot: Arc<VaultSnapshot>) {
    arguments.history.push(Arc::clone(&snapshot));
    arguments.snapshots.send_replace(Some(snapshot));
}

/// Opens the vault and publishes its current snapshot.
fn open(arguments: &VaultArguments) -> Result<Vault, ActorProcessingErr> {
    let context = &arguments.context;
    let vault = Vault::open(
        Arc::clone(&context.database),
        arguments.id,
        vault_options(context),
    )?;
    publish(arguments, vault.snapshot()?);
    Ok(vault)
}

impl Actor for VaultActor {
    type Msg = VaultMsg;
    type State = VaultState;
    type Arguments = VaultArguments;

    async fn pre_start(
        &self,
        myself: ActorRef<VaultMsg>,
        arguments: VaultArguments,
    ) -> Result<VaultState, ActorProcessingErr> {
        let context = Arc::clone(&arguments.context);
        let vault = tokio::task::block_in_place(|| open(&arguments))?;
        let record = context.actors.record(
            &context.names.vault(arguments.id),
            Some(&context.names.child("vaults")),
            "vault",
        );
        record.started(myself.get_id().pid(), context.now_ms());
        Ok(VaultState {
            arguments,
            vault,
            record,
            parked: Vec::new(),
            flush_scheduled: false,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<VaultMsg>,
        message: VaultMsg,
        state: &mut VaultState,
    ) -> Result<(), ActorProcessingErr> {
        state.record.handled_one();
        let now_ms = state.arguments.context.now_ms();
        match message {
            VaultMsg::Write { batch, reply } => {
                match tokio::task::block_in_place(|| state.vault.write(batch, now_ms)) {
                    Ok(outcome) => park(&myself, state, Parked::Write(reply, outcome)),
                    Err(error) => {
                        let poisoned = is_poisoned_write(&error);
                        let _ = reply.send(Err(error));
                        if poisoned {
                            return Err("the database is poisoned by an I/O failure".into());
                        }
                    }
                }
            }
            VaultMsg::DeploySchema { text, reply } => {
                match tokio::task::block_in_place(|| state.vault.deploy_schema(&text, now_ms)) {
                    Ok(deployed) => park(&myself, state, Parked::Schema(reply, deployed)),
                    Err(error) => {
                        let _ = reply.send(Err(error));
                    }
                }
            }
            VaultMsg::SchemaVersions { reply } => {
                let _ = reply.send(state.vault.schema_versions().to_vec());
            }
            VaultMsg::Flush => flush(state)?,
            // A real panic, so the runtime's panic capture and the supervisor's restart path
            // run exactly as they would for a bug.
            VaultMsg::InjectFailure { reason } => panic!("injected failure: {reason}"),
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<VaultMsg>,
        state: &mut VaultState,
    ) -> Result<(), ActorProcessingErr> {
        // A normal stop (shutdown, vault deletion) still answers the writers it holds.
        flush(state)
    }
}

fn is_poisoned_write(error: &WriteError) -> bool {
    matches!(error, WriteError::Storage(StorageError::Poisoned))
}

fn park(myself: &ActorRef<VaultMsg>, state: &mut VaultState, parked: Parked) {
    state.parked.push(parked);
    if !state.flush_scheduled {
        state.flush_scheduled = true;
        // Behind every message already queued: those writes join this group.
        state.record.enqueued_one();
        if myself.send_message(VaultMsg::Flush).is_err() {
            state.flush_scheduled = false;
        }
    }
}

/// Makes the group durable, publishes the snapshot, answers the group.
fn flush(state: &mut VaultState) -> Result<(), ActorProcessingErr> {
    state.flush_scheduled = false;
    if state.parked.is_empty() {
        return Ok(());
    }
    let database = Arc::clone(&state.arguments.context.database);
    let synced = tokio::task::block_in_place(|| database.sync());
    let parked = std::mem::take(&mut state.parked);
    match synced {
        Ok(()) => {
            publish(&state.arguments, state.vault.snapshot()?);
            for reply in parked {
                answer(reply);
            }
            Ok(())
        }
        Err(error) => {
            // A failed sync poisons the engine, so every writer of the group learns that.
            for reply in parked {
                fail(reply);
            }
            // The engine is poisoned: fail, so the supervisor decides what happens next.
            Err(format!("group commit failed: {error}").into())
        }
    }
}

fn answer(parked: Parked) {
    match parked {
        Parked::Write(reply, outcome) => {
            let _ = reply.send(Ok(outcome));
        }
        Parked::Schema(reply, deployed) => {
            let _ = reply.send(Ok(deployed));
        }
    }
}

fn fail(parked: Parked) {
    match parked {
        Parked::Write(reply, _) => {
            let _ = reply.send(Err(WriteError::Storage(StorageError::Poisoned)));
        }
        Parked::Schema(reply, _) => {
            let _ = reply.send(Err(SchemaError::Storage(StorageError::Poisoned)));
        }
    }
}

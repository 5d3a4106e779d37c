//! The vault state actor: the only writer of one vault.
//!
//! Writes are group-committed, in both senses. A `Write` only queues its batch; the first
//! queued batch schedules a `Flush` to the actor's own mailbox, behind every message already
//! there, so writes that arrive meanwhile join the group. The flush applies the group in ONE
//! storage transaction (`Vault::write_group`: each batch atomic, with its own block, as if
//! applied one by one), makes it durable with one sync, publishes the new snapshot, and
//! only then answers the writers: an acknowledged write is durable and visible.

use std::sync::Arc;

use inferadb_messages::{ActorRecord, VaultMsg};
use inferadb_protocols::VaultId;
use inferadb_storage::{Database, Durability, StorageError};
use inferadb_vault::{
    SchemaDeployed, SchemaError, Vault, VaultOptions, VaultSnapshot, WriteBatch, WriteError,
    WriteOutcome,
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
    /// The vault's own database file.
    pub database: Arc<Database>,
}

type WriteReply = RpcReplyPort<Result<WriteOutcome, WriteError>>;

/// The vault actor's state.
pub struct VaultState {
    arguments: VaultArguments,
    vault: Vault,
    record: Arc<ActorRecord>,
    /// Batches waiting for the next flush, with their writers.
    queued: Vec<(WriteBatch, WriteReply)>,
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

/// Makes `snapshot` the one new reads use.
fn publish(arguments: &VaultArguments, snapshot: Arc<VaultSnapshot>) {
    arguments.snapshots.send_replace(Some(snapshot));
}

/// Opens the vault and publishes its current snapshot.
fn open(arguments: &VaultArguments) -> Result<Vault, ActorProcessingErr> {
    let context = &arguments.context;
    // Commits a previous incarnation made but did not flush are in the file's current
    // state: make them durable before anyone can read them, so nothing visible is ever lost.
    arguments.database.sync()?;
    let vault = Vault::open(
        Arc::clone(&arguments.database),
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
            queued: Vec::new(),
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
        match message {
            VaultMsg::Write { batch, reply } => queue(&myself, state, batch, reply),
            VaultMsg::DeploySchema { text, reply } => deploy(state, &text, reply)?,
            VaultMsg::SchemaVersions { reply } => {
                let _ = reply.send(state.vault.schema_versions().to_vec());
            }
            VaultMsg::Flush => {
                state.flush_scheduled = false;
                flush(state)?;
            }
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
        // A normal stop (shutdown, vault deletion) still applies and answers what it holds.
        flush(state)
    }
}

fn queue(
    myself: &ActorRef<VaultMsg>,
    state: &mut VaultState,
    batch: WriteBatch,
    reply: WriteReply,
) {
    state.queued.push((batch, reply));
    if !state.flush_scheduled {
        state.flush_scheduled = true;
        // Behind every message already queued: those writes join this group.
        state.record.enqueued_one();
        if myself.send_message(VaultMsg::Flush).is_err() {
            state.flush_scheduled = false;
        }
    }
}

/// Applies every queued batch, group by group, each group in one transaction made durable
/// by one sync; publishes the snapshot; answers the writers.
fn flush(state: &mut VaultState) -> Result<(), ActorProcessingErr> {
    let group_max = state.vault.options().limits.group_commit_batches_max.max(1);
    while !state.queued.is_empty() {
        let take = state.queued.len().min(group_max);
        let (batches, replies): (Vec<WriteBatch>, Vec<WriteReply>) =
            state.queued.drain(..take).unzip();
        let now_ms = state.arguments.context.now_ms();
        let results = tokio::task::block_in_place(|| state.vault.write_group(batches, now_ms));
        let poisoned = results.iter().any(|result| {
            matches!(
                result,
                Err(WriteError::Storage(_) | WriteError::GroupFailed { .. })
            )
        });
        let synced = make_durable(state);
        answer_group(replies, results, synced.is_ok());
        synced?;
        if poisoned {
            return Err("a group commit failed in the storage engine".into());
        }
    }
    Ok(())
}

/// Syncs and publishes the newest snapshot.
fn make_durable(state: &VaultState) -> Result<(), ActorProcessingErr> {
    let database = Arc::clone(&state.arguments.database);
    tokio::task::block_in_place(|| database.sync())?;
    publish(&state.arguments, state.vault.snapshot()?);
    Ok(())
}

/// Answers a group. When the sync failed, no success may be reported: the engine is
/// poisoned, and the writes may be lost.
fn answer_group(
    replies: Vec<WriteReply>,
    results: Vec<Result<WriteOutcome, WriteError>>,
    durable: bool,
) {
    for (reply, result) in replies.into_iter().zip(results) {
        let result = match result {
            Ok(_) if !durable => Err(WriteError::Storage(StorageError::Poisoned)),
            other => other,
        };
        let _ = reply.send(result);
    }
}

/// Deploys a schema after the queued writes (so their order is kept), durably.
fn deploy(
    state: &mut VaultState,
    text: &str,
    reply: RpcReplyPort<Result<SchemaDeployed, SchemaError>>,
) -> Result<(), ActorProcessingErr> {
    flush(state)?;
    let now_ms = state.arguments.context.now_ms();
    let deployed = tokio::task::block_in_place(|| state.vault.deploy_schema(text, now_ms));
    if deployed.is_err() {
        let _ = reply.send(deployed);
        return Ok(());
    }
    match make_durable(state) {
        Ok(()) => {
            let _ = reply.send(deployed);
            Ok(())
        }
        Err(error) => {
            let _ = reply.send(Err(SchemaError::Storage(StorageError::Poisoned)));
            Err(error)
        }
    }
}

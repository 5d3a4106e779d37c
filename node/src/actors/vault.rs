//! The vault actor (`node/<id>/vault/<vault>`): the front of one vault's write path on this
//! node.
//!
//! Writes are grouped. A `Write` only queues its batch; the first queued batch schedules a
//! `Flush` to the actor's own mailbox, behind every message already there, so writes that
//! arrive meanwhile join the group. The flush proposes the group to the vault's shard as
//! ONE `WriteGroup` command (applied on every replica in one storage transaction, each
//! batch atomic with its own block) and answers each writer from the command's answer,
//! which comes only after the entry is committed by a quorum and applied here, with the
//! new snapshot published: an acknowledged write is durable and visible on this node.
//!
//! The actor holds no vault state: the shard's machine owns it. So a restarted vault actor
//! loses only the writes still queued in its mailbox (their writers hear so), never data.

use std::sync::Arc;

use inferadb_messages::{
    ActorRecord, DeployFailure, Mailbox, ProposalFailure, ShardMsg, VaultMsg, WriteFailure,
};
use inferadb_protocols::VaultId;
use inferadb_shard::{GroupItem, ShardAnswer, ShardCommand};
use inferadb_storage::Durability;
use inferadb_vault::{SchemaDeployed, VaultOptions, WriteBatch, WriteOutcome};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

use crate::context::NodeContext;

/// Arguments of a vault actor (kept by the registry, reused on restart).
#[derive(Clone)]
pub struct VaultArguments {
    /// The node.
    pub context: Arc<NodeContext>,
    /// The vault.
    pub id: VaultId,
    /// The shard that holds the vault.
    pub shard: Mailbox<ShardMsg>,
}

type WriteReply = RpcReplyPort<Result<WriteOutcome, WriteFailure>>;

/// The vault actor's state.
pub struct VaultState {
    arguments: VaultArguments,
    record: Arc<ActorRecord>,
    /// Batches waiting for the next flush, with their writers.
    queued: Vec<(WriteBatch, WriteReply)>,
    flush_scheduled: bool,
}

/// The vault actor.
pub struct VaultActor;

/// The options every vault of this node is opened with.
pub fn vault_options(context: &NodeContext) -> VaultOptions {
    VaultOptions {
        limits: context.config.vault.clone(),
        decision_cache_entries: context.config.evaluator.decision_cache_entries,
        // The raft log is the durable record; the shard syncs vault files before compacting.
        commit_durability: Durability::Deferred,
        ..VaultOptions::default()
    }
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
        let record = context.actors.record(
            &context.names.vault(arguments.id),
            Some(&context.names.child("vaults")),
            "vault",
        );
        record.started(myself.get_id().pid(), context.now_ms());
        Ok(VaultState {
            arguments,
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
            VaultMsg::DeploySchema { text, reply } => {
                flush(state);
                deploy(state, text, reply);
            }
            VaultMsg::Flush => {
                state.flush_scheduled = false;
                flush(state);
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
        // A normal stop (shutdown, vault deletion) still proposes what it holds.
        flush(state);
        Ok(())
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

/// Proposes every queued batch, `group_commit_batches_max` per command, in order.
fn flush(state: &mut VaultState) {
    let group_max = state
        .arguments
        .context
        .config
        .vault
        .group_commit_batches_max
        .max(1);
    while !state.queued.is_empty() {
        let take = state.queued.len().min(group_max);
        let (batches, replies): (Vec<WriteBatch>, Vec<WriteReply>) =
            state.queued.drain(..take).unzip();
        let command = ShardCommand::WriteGroup {
            vault: state.arguments.id,
            batches,
            now_ms: state.arguments.context.now_ms(),
        };
        let answer = proposal(&state.arguments, command.encode());
        tokio::spawn(async move {
            answer_group(replies, answer.await);
        });
    }
}

/// Proposes `data` to the vault's shard now (so proposals keep their order) and returns
/// the future of its decoded answer.
fn proposal(
    arguments: &VaultArguments,
    data: Vec<u8>,
) -> impl std::future::Future<Output = Result<ShardAnswer, ProposalFailure>> + Send + 'static {
    let (port, answer) = ractor::concurrency::oneshot();
    let sent = arguments.shard.cast(ShardMsg::Propose {
        data,
        reply: port.into(),
    });
    async move {
        sent.map_err(|error| ProposalFailure::NotApplied {
            reason: error.to_string(),
        })?;
        let encoded = answer.await.map_err(|_| ProposalFailure::OutcomeUnknown {
            reason: "the shard stopped before answering".to_string(),
        })??;
        ShardAnswer::decode(&encoded).map_err(|error| ProposalFailure::OutcomeUnknown {
            reason: format!("the shard's answer is malformed: {error}"),
        })
    }
}

/// The failure every writer of a command hears when the command has no per-batch answer.
fn command_failure(answer: &ShardAnswer) -> ProposalFailure {
    match answer {
        // Refused by this replica alone: the others may have applied it.
        ShardAnswer::Refused { kind, message, .. } if kind == "vault_unavailable" => {
            ProposalFailure::OutcomeUnknown {
                reason: message.clone(),
            }
        }
        ShardAnswer::Refused { kind, message, .. } => ProposalFailure::NotApplied {
            reason: format!("{kind}: {message}"),
        },
        ShardAnswer::Fatal { message } => ProposalFailure::OutcomeUnknown {
            reason: format!("this node's replica failed: {message}"),
        },
        other => ProposalFailure::OutcomeUnknown {
            reason: format!("unexpected answer to a write: {other:?}"),
        },
    }
}

/// One batch's result from its item of the group's answer.
fn item_result(item: GroupItem) -> Result<WriteOutcome, WriteFailure> {
    let error = item.write_error();
    match (item, error) {
        (
            GroupItem::Written {
                revision,
                inserted,
                removed,
            },
            _,
        ) => Ok(WriteOutcome {
            revision,
            operations_applied: (inserted + removed) as usize,
            inserted: inserted as usize,
            removed: removed as usize,
        }),
        (GroupItem::Refused { .. }, Some(error)) => Err(WriteFailure::Refused(error)),
        (GroupItem::Refused { kind, message, .. }, None) => {
            Err(WriteFailure::Proposal(ProposalFailure::NotApplied {
                reason: format!("{kind}: {message}"),
            }))
        }
    }
}

/// Answers each writer of a group.
fn answer_group(replies: Vec<WriteReply>, answer: Result<ShardAnswer, ProposalFailure>) {
    match answer {
        Ok(ShardAnswer::WroteGroup { results }) if results.len() == replies.len() => {
            for (reply, item) in replies.into_iter().zip(results) {
                let _ = reply.send(item_result(item));
            }
        }
        Ok(other) => {
            let failure = command_failure(&other);
            for reply in replies {
                let _ = reply.send(Err(WriteFailure::Proposal(failure.clone())));
            }
        }
        Err(failure) => {
            for reply in replies {
                let _ = reply.send(Err(WriteFailure::Proposal(failure.clone())));
            }
        }
    }
}

/// Proposes a schema deploy (behind the writes flushed before it) and answers it.
fn deploy(
    state: &VaultState,
    text: String,
    reply: RpcReplyPort<Result<SchemaDeployed, DeployFailure>>,
) {
    let command = ShardCommand::DeploySchema {
        vault: state.arguments.id,
        text,
        now_ms: state.arguments.context.now_ms(),
    };
    let answer = proposal(&state.arguments, command.encode());
    tokio::spawn(async move {
        let result = match answer.await {
            Ok(ShardAnswer::SchemaDeployed { version, revision }) => {
                Ok(SchemaDeployed { version, revision })
            }
            Ok(refused @ ShardAnswer::Refused { .. }) => match refused.schema_error() {
                Some(error) => Err(DeployFailure::Refused(error)),
                None => Err(DeployFailure::Proposal(command_failure(&refused))),
            },
            Ok(other) => Err(DeployFailure::Proposal(command_failure(&other))),
            Err(failure) => Err(DeployFailure::Proposal(failure)),
        };
        let _ = reply.send(result);
    });
}

//! The shard actor (`node/<id>/shard/<n>`): owns this node's member of one shard's raft
//! group and routes the proposals made on this node.
//!
//! - It opens the member (the shard's raft log, its [`ShardMachine`] over the node catalog
//!   and the vault files, with a [`Publisher`] as observer) and runs it as a supervised
//!   raft actor (`…/shard/<n>/raft`), restarting it from disk under its restart intensity.
//! - A proposal goes to the local member first, in arrival order. When that member does
//!   not lead, the proposal is forwarded to the leader's node through the cluster
//!   transport ([`Forwarder`]); the answer comes back the same way. A read barrier is a
//!   raft read-index on the local member (raft-rs asks the leader when it must).
//! - On a first start, the log is seeded with the membership: this node alone, or this node
//!   and its configured peers, all voters.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use inferadb_messages::supervision::spawn_under_name;
use inferadb_messages::{
    ActorRecord, Applied, GroupStatus, ProposalFailure, ProposeError, RaftMsg, RestartDecision,
    RestartTracker, ShardMsg,
};
use inferadb_raft::core::{RaftConfig, RaftCore};
use inferadb_raft::group::RaftGroup;
use inferadb_raft::log::{DurableLog, LogOptions};
use inferadb_raft::logging::raft_logger;
use inferadb_raft::store::LogStore;
use inferadb_raft::transport::Transport;
use inferadb_shard::{LeaseLimits, MemberRecord, ShardMachine, ShardOptions};
use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use raft::eraftpb::ConfState;

use crate::actors::files::NodeVaultFiles;
use crate::actors::publish::Publisher;
use crate::actors::raft::{RaftActor, RaftArguments};
use crate::actors::root::abnormal_stop;
use crate::actors::vault::vault_options;
use crate::context::NodeContext;

/// The shard every vault lives in until data shards are placed (the system shard).
pub const SYSTEM_SHARD: u64 = 0;

/// How often, and how far apart, opening a member is tried before the failure counts.
const OPEN_ATTEMPTS: u32 = 50;
const OPEN_RETRY_MS: u64 = 20;
/// How long a shutdown waits for the raft member to persist and stop.
const RAFT_STOP_WAIT_MS: u64 = 30_000;

/// A future the forwarder returns.
pub type Forwarded<T> = Pin<Box<dyn Future<Output = Result<T, ProposalFailure>> + Send>>;

/// Reaches another node's member of a group (the cluster transport).
pub trait Forwarder: Send + Sync {
    /// Proposes `data` to group `group` on node `node`; its encoded answer.
    fn propose(&self, node: u64, group: u64, data: Vec<u8>) -> Forwarded<Applied>;
}

/// Keeps the transport's links in line with the replicated member registry.
pub trait PeerDirectory: Send + Sync {
    /// The registry changed: link to every member it names, unlink the removed ones.
    fn members_changed(&self, members: &std::collections::BTreeMap<u64, MemberRecord>);

    /// The peers with a live link now (a node that is down, partitioned or removed has
    /// none).
    fn linked(&self) -> Vec<u64>;
}

/// What the shard actor starts from.
#[derive(Clone)]
pub struct ShardArguments {
    /// The node.
    pub context: Arc<NodeContext>,
    /// The shard's id.
    pub shard: u64,
    /// Raft messages to other nodes.
    pub transport: Arc<dyn Transport>,
    /// Proposals to other nodes (`None` on a node without peers).
    pub forwarder: Option<Arc<dyn Forwarder>>,
    /// The transport's peer set (`None` on a node without peers).
    pub peers: Option<Arc<dyn PeerDirectory>>,
}

/// The shard actor's state.
pub struct ShardState {
    arguments: ShardArguments,
    raft: Option<ActorRef<RaftMsg>>,
    tracker: RestartTracker,
    record: Arc<ActorRecord>,
}

/// The shard actor.
pub struct ShardActor;

type Member = RaftGroup<DurableLog, ShardMachine>;

/// The stable name of a shard's raft actor.
fn raft_name(context: &NodeContext, shard: u64) -> String {
    format!("{}/raft", context.names.child(&format!("shard/{shard}")))
}

/// The mailbox of this node's member of `shard`.
pub fn raft_mailbox(context: &NodeContext, shard: u64) -> inferadb_messages::Mailbox<RaftMsg> {
    let name = raft_name(context, shard);
    let parent = context.names.child(&format!("shard/{shard}"));
    inferadb_messages::Mailbox::new(context.actors.record(&name, Some(&parent), "raft_group"))
}

/// The mailbox of this node's member of `shard`, if this node runs that shard (no record
/// is created for a shard it does not run).
pub fn existing_raft_mailbox(
    context: &NodeContext,
    shard: u64,
) -> Option<inferadb_messages::Mailbox<RaftMsg>> {
    context
        .actors
        .get(&raft_name(context, shard))
        .map(inferadb_messages::Mailbox::new)
}

/// Every voter of a new cluster: this node and its configured peers.
fn initial_voters(context: &NodeContext) -> Vec<u64> {
    let mut voters: Vec<u64> = context
        .config
        .cluster
        .peers
        .iter()
        .map(|peer| peer.id)
        .collect();
    voters.push(context.config.node_id);
    voters.sort_unstable();
    voters
}

/// Opens the raft log, seeding the membership on a first start (unless the node joins a
/// running cluster: then the leader's snapshot brings the membership).
fn open_log(context: &NodeContext, shard: u64) -> Result<DurableLog, ActorProcessingErr> {
    let directory = context.config.raft_dir(shard);
    let io = inferadb_raft::io::FileLogIo::open(&directory)
        .map_err(|error| format!("raft log `{}`: {error}", directory.display()))?;
    let io = Arc::new(crate::actors::log_io::MeteredLogIo::new(io, shard));
    let mut log = DurableLog::open(io, LogOptions::default())
        .map_err(|error| format!("raft log `{}`: {error}", directory.display()))?;
    let fresh = log.conf_state().voters.is_empty() && log.hard_state().term == 0;
    let me = context.config.node_id;
    let has_peers = !context.config.cluster.peers.is_empty();
    if !fresh && has_peers && log.conf_state().voters == [me] {
        // This data belongs to a group of one. Given peers, it would lead alone while the
        // peers elect a leader of their own: two histories, and lost writes when they meet.
        return Err(format!(
            "the data in `{}` is a single-node deployment's (its only voter is node {me}); it \
             cannot start with peers. Start the cluster from empty data directories, or add \
             nodes to this one with `--join` on each new node and POST /v1/cluster/members",
            context.config.data_dir.display()
        )
        .into());
    }
    if fresh && !context.config.cluster.join {
        let conf_state = ConfState {
            voters: initial_voters(context),
            ..ConfState::default()
        };
        log.set_conf_state(&conf_state)?;
        log.sync()?;
    }
    Ok(log)
}

/// Opens this node's member of `shard`: its log, its machine (publishing what it holds)
/// and the consensus core, restarted at the machine's durable applied index.
fn open_member(
    context: &Arc<NodeContext>,
    shard: u64,
    peers: Option<Arc<dyn PeerDirectory>>,
) -> Result<Member, ActorProcessingErr> {
    // A restart in this process reopens databases that may hold deferred commits of the
    // previous incarnation; opening the machine commits on its catalog, which would make
    // those durable too. Vault files first, so the catalog never runs ahead of them.
    crate::actors::storage::sync_vaults_then_catalog(context)?;
    let log = open_log(context, shard)?;
    let options = ShardOptions {
        vault: vault_options(context),
        token_secret: context.token_secret,
        lease: LeaseLimits::default(),
        // Bounded by the validated range, far below usize::MAX on every target.
        merge_batches_max: usize::try_from(context.config.raft.apply_merge_batches_max)
            .unwrap_or(usize::MAX),
    };
    let files = Box::new(NodeVaultFiles::new(Arc::clone(context), shard)?);
    let catalog = context.shard_catalog(shard)?;
    let mut machine = ShardMachine::open(catalog, files, options)?;
    // Only the system shard's member registry drives the transport's links.
    let peers = peers.filter(|_| shard == SYSTEM_SHARD);
    machine.set_observer(Box::new(Publisher::new(Arc::clone(context), shard, peers)));
    machine.publish();
    let applied = machine.applied_index();
    let settings = &context.config.raft;
    let mut config = RaftConfig::new(context.config.node_id, settings.seed);
    config.election_tick = settings.election_ticks as usize;
    config.heartbeat_tick = settings.heartbeat_ticks as usize;
    config.max_committed_size_per_ready = settings.apply_bytes_per_cycle;
    config.applied = applied;
    let core = RaftCore::new(&config, log, &raft_logger(&format!("shard-{shard}")))?;
    let mut group = RaftGroup::new(core, machine, applied);
    catch_up(context, &mut group)?;
    Ok(group)
}

/// Applies what the log already holds before the member serves anyone: the entries its
/// stored commit index covers, and — for a lone voter, which needs no one to lead — every
/// entry, after winning its election at once. So a restarted single node answers reads with
/// everything it acknowledged before the restart.
fn catch_up(context: &NodeContext, group: &mut Member) -> Result<(), ActorProcessingErr> {
    if group.core().store().conf_state().voters == [context.config.node_id] {
        group.core_mut().campaign()?;
    }
    // Messages from this first cycle are dropped: raft-rs sends them again (heartbeats,
    // appends) once the actor runs, and the peers may not be reachable yet anyway.
    let outputs = group.drain()?;
    tracing::info!(
        applied = group.applied(),
        entries = outputs.applied_entries,
        "shard member caught up with its log"
    );
    Ok(())
}

/// Opens the member, retrying (bounded) while the previous incarnation still holds its
/// files: ractor frees an actor's name before it drops the actor's state, so a restart can
/// see the old log's lock for a moment.
async fn open_member_retrying(arguments: &ShardArguments) -> Result<Member, ActorProcessingErr> {
    let mut attempt = 1;
    loop {
        let peers = arguments.peers.clone();
        let context = &arguments.context;
        match tokio::task::block_in_place(|| open_member(context, arguments.shard, peers)) {
            Ok(member) => return Ok(member),
            Err(error) if attempt < OPEN_ATTEMPTS => {
                tracing::debug!(%error, attempt, "the shard member did not open yet");
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(OPEN_RETRY_MS)).await;
            }
            Err(error) => return Err(error),
        }
    }
}

/// Opens the member and spawns its raft actor, retrying (bounded) while a dead
/// incarnation still holds the name. A lone voter campaigns at once: it needs no one.
async fn spawn_member(
    arguments: &ShardArguments,
    supervisor: ActorCell,
) -> Result<ActorRef<RaftMsg>, ActorProcessingErr> {
    let context = &arguments.context;
    let name = raft_name(context, arguments.shard);
    let actor = spawn_under_name(&name, || async {
        let group = open_member_retrying(arguments).await?;
        let raft_arguments = RaftArguments {
            group,
            group_id: arguments.shard,
            transport: Arc::clone(&arguments.transport),
            tick_ms: context.config.raft.tick_ms,
            request_timeout_ticks: context.config.raft.request_timeout_ticks,
            compact_after_entries: context.config.raft.compact_after_entries,
            persist_every_ticks: (context.config.raft.persist_interval_ms
                / context.config.raft.tick_ms.max(1))
            .max(1),
        };
        let (actor, _) = Actor::spawn_linked(
            Some(name.clone()),
            RaftActor::default(),
            raft_arguments,
            supervisor.clone(),
        )
        .await?;
        Ok::<_, ActorProcessingErr>(actor)
    })
    .await?;
    let parent = context.names.child(&format!("shard/{}", arguments.shard));
    context
        .actors
        .record(&name, Some(&parent), "raft_group")
        .started(actor.get_id().pid(), context.now_ms());
    Ok(actor)
}

impl Actor for ShardActor {
    type Msg = ShardMsg;
    type State = ShardState;
    type Arguments = ShardArguments;

    async fn pre_start(
        &self,
        myself: ActorRef<ShardMsg>,
        arguments: ShardArguments,
    ) -> Result<ShardState, ActorProcessingErr> {
        let context = Arc::clone(&arguments.context);
        let name = context.names.child(&format!("shard/{}", arguments.shard));
        let record = context
            .actors
            .record(&name, Some(&context.names.root()), "shard");
        let raft = spawn_member(&arguments, myself.get_cell()).await?;
        record.started(myself.get_id().pid(), context.now_ms());
        let intensity = context.config.supervision.intensity("raft_group");
        Ok(ShardState {
            arguments,
            raft: Some(raft),
            tracker: RestartTracker::with_intensity(intensity),
            record,
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<ShardMsg>,
        message: ShardMsg,
        state: &mut ShardState,
    ) -> Result<(), ActorProcessingErr> {
        state.record.handled_one();
        match message {
            ShardMsg::Propose { data, reply } => propose(state, data, reply),
            ShardMsg::ReadBarrier { reply } => read_barrier(state, reply),
            ShardMsg::Status { reply } => status(state, reply),
            ShardMsg::TransferLeader { to, reply } => {
                let passed = state
                    .raft
                    .as_ref()
                    .is_some_and(|raft| raft.cast(RaftMsg::TransferLeader { to }).is_ok());
                let _ = reply.send(passed);
            }
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<ShardMsg>,
        state: &mut ShardState,
    ) -> Result<(), ActorProcessingErr> {
        // Stop the member gracefully (its stop persists the state machine: vault files,
        // then the catalog); a parent's own stop would kill it without that.
        if let Some(raft) = state.raft.take() {
            let wait = Some(Duration::from_millis(RAFT_STOP_WAIT_MS));
            if let Err(error) = raft.stop_and_wait(Some("shutdown".to_string()), wait).await {
                tracing::warn!(%error, "the raft member did not stop in time");
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<ShardMsg>,
        event: SupervisionEvent,
        state: &mut ShardState,
    ) -> Result<(), ActorProcessingErr> {
        let Some((_, reason)) = abnormal_stop(event) else {
            return Ok(());
        };
        let context = Arc::clone(&state.arguments.context);
        let name = raft_name(&context, state.arguments.shard);
        state.raft = None;
        let record = context.actors.record(&name, None, "raft_group");
        match state.tracker.on_failure(context.now_ms()) {
            RestartDecision::Restart => {
                tracing::warn!(actor = %name, %reason, "restarting raft group member");
                record.restarting(reason);
                record.reset_mailbox();
                state.raft = Some(spawn_member(&state.arguments, myself.get_cell()).await?);
                Ok(())
            }
            RestartDecision::Escalate => {
                record.failed_for_good(reason.clone());
                Err(format!("raft group member failed too often (last: {reason})").into())
            }
        }
    }
}

/// A member that is restarting answers nothing: the proposal never reached it.
fn restarting() -> ProposalFailure {
    ProposalFailure::NotApplied {
        reason: "the shard's raft member is restarting".to_string(),
    }
}

/// Sends the proposal to the local member now (so proposals keep their order), then waits
/// for its answer off the mailbox, forwarding to the leader when the member does not lead.
fn propose(
    state: &ShardState,
    data: Vec<u8>,
    reply: RpcReplyPort<Result<Vec<u8>, ProposalFailure>>,
) {
    let Some(raft) = &state.raft else {
        let _ = reply.send(Err(restarting()));
        return;
    };
    let (port, answer) = ractor::concurrency::oneshot();
    let local = RaftMsg::Propose {
        data: data.clone(),
        reply: port.into(),
    };
    if raft.cast(local).is_err() {
        let _ = reply.send(Err(restarting()));
        return;
    }
    let forwarder = state.arguments.forwarder.clone();
    let shard = state.arguments.shard;
    let me = state.arguments.context.config.node_id;
    let raft = raft.clone();
    tokio::spawn(async move {
        let outcome = match answer.await {
            Ok(Ok(applied)) => Ok(applied.output),
            Ok(Err(ProposeError::NotLeader {
                leader_hint: Some(leader),
            })) if leader != me => match forwarder {
                Some(forwarder) => forward(&raft, forwarder.as_ref(), leader, shard, data).await,
                None => Err(ProposalFailure::from_propose_error(
                    &ProposeError::NotLeader {
                        leader_hint: Some(leader),
                    },
                )),
            },
            Ok(Err(error)) => Err(ProposalFailure::from_propose_error(&error)),
            // The member stopped with the proposal in hand: it may have been appended.
            Err(_) => Err(ProposalFailure::OutcomeUnknown {
                reason: "the shard's raft member stopped before answering".to_string(),
            }),
        };
        let _ = reply.send(outcome);
    });
}

/// Forwards a proposal to the leader's node; once the leader applied it, waits until this
/// replica has applied the same log index, so a read here right after sees the proposer's
/// own write (no round through the leader: the index is in the answer). A wait that fails
/// (this replica is far behind) only delays that: the write itself succeeded.
async fn forward(
    raft: &ActorRef<RaftMsg>,
    forwarder: &dyn Forwarder,
    leader: u64,
    shard: u64,
    data: Vec<u8>,
) -> Result<Vec<u8>, ProposalFailure> {
    let applied = forwarder.propose(leader, shard, data).await?;
    let (port, answer) = ractor::concurrency::oneshot();
    let wait = RaftMsg::WaitApplied {
        index: applied.index,
        reply: port.into(),
    };
    if raft.cast(wait).is_ok() {
        if let Ok(Err(error)) = answer.await {
            tracing::debug!(%error, "a forwarded proposal is not applied here yet");
        }
    }
    Ok(applied.output)
}

fn read_barrier(state: &ShardState, reply: RpcReplyPort<Result<u64, ProposalFailure>>) {
    let Some(raft) = &state.raft else {
        let _ = reply.send(Err(restarting()));
        return;
    };
    let (port, answer) = ractor::concurrency::oneshot();
    if raft
        .cast(RaftMsg::ReadBarrier { reply: port.into() })
        .is_err()
    {
        let _ = reply.send(Err(restarting()));
        return;
    }
    tokio::spawn(async move {
        let outcome = match answer.await {
            Ok(Ok(applied)) => Ok(applied),
            Ok(Err(error)) => Err(ProposalFailure::NotApplied {
                reason: error.to_string(),
            }),
            Err(_) => Err(restarting()),
        };
        let _ = reply.send(outcome);
    });
}

fn status(state: &ShardState, reply: RpcReplyPort<Option<GroupStatus>>) {
    let Some(raft) = state.raft.clone() else {
        let _ = reply.send(None);
        return;
    };
    tokio::spawn(async move {
        let called = raft
            .call(
                |port| RaftMsg::Status { reply: port },
                Some(Duration::from_secs(5)),
            )
            .await;
        let status = match called {
            Ok(ractor::rpc::CallResult::Success(status)) => Some(status),
            _ => None,
        };
        let _ = reply.send(status);
    });
}

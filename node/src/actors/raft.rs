//! The raft group actor: the shell around one [`RaftGroup`] member. It only decodes its
//! messages, steps the group, performs the effects (send through the [`Transport`], answer
//! the reply ports) and keeps time: a ractor interval sends it `Tick`s. Persistence and the
//! Ready order live in the pure core; its fsyncs run in `block_in_place`.
//!
//! **Group commit.** An input does not run a Ready cycle by itself: the first input after a
//! cycle schedules a `Drain` behind every message already in the mailbox, so all proposals
//! (and peer messages) that arrived meanwhile are persisted with one fsync. Read barriers
//! batch the same way: every barrier queued before a `Drain` shares one read-index round.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use inferadb_messages::{Applied, GroupStatus, ProposeError, RaftMsg};
use inferadb_raft::core::{CoreError, Proposed, Role};
use inferadb_raft::group::{Completion, Outputs, RaftGroup, StateMachine};
use inferadb_raft::store::LogStore;
use inferadb_raft::transport::{PeerEnvelope, Transport};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use raft::eraftpb::{ConfChangeSingle, ConfChangeType, ConfChangeV2, Message, MessageType};
use raft::{ProgressState, SnapshotStatus};

type ProposeReply = RpcReplyPort<Result<Applied, ProposeError>>;
type ReadReply = RpcReplyPort<Result<u64, ProposeError>>;

/// What a raft group actor starts from.
pub struct RaftArguments<S: LogStore, M: StateMachine> {
    /// The member (core over its store, and the state machine).
    pub group: RaftGroup<S, M>,
    /// The raft group (shard) id carried in envelopes.
    pub group_id: u64,
    /// Where outgoing messages go.
    pub transport: Arc<dyn Transport>,
    /// The period of the logical clock.
    pub tick_ms: u64,
    /// Ticks a proposal or read may wait before its client is told the outcome is unknown
    /// (a proposal) or to retry (a read): raft-rs drops some requests silently (a read on a
    /// leader that has not committed in its term, messages lost with a partition).
    pub request_timeout_ticks: u64,
    /// Applied entries after which the log is compacted behind a snapshot of the machine.
    pub compact_after_entries: u64,
    /// Ticks between two persists of the state machine: they bound what a restart after a
    /// crash replays from the log.
    pub persist_every_ticks: u64,
}

/// Ready cycles one Drain runs before it yields to the mailbox (see [`drain`]).
const READY_CYCLES_PER_DRAIN: usize = 1;

/// Ticks a snapshot may take to be acknowledged before it is reported failed.
const SNAPSHOT_DELIVERY_TICKS: u64 = 200;

/// The actor's state.
pub struct RaftState<S: LogStore, M: StateMachine> {
    group: RaftGroup<S, M>,
    group_id: u64,
    transport: Arc<dyn Transport>,
    proposals: BTreeMap<(u64, u64), (u64, ProposeReply)>,
    /// Read barriers asked for since the last Ready point: one read-index round at the next
    /// `Drain` confirms them all (see [`issue_reads`]).
    barriers_queued: Vec<ReadReply>,
    /// Read-index rounds under way, by request id: the tick they started and who waits.
    reads: BTreeMap<u64, (u64, Vec<ReadReply>)>,
    /// Requests waiting for this member to apply an index: index → (tick asked, reply).
    apply_waiters: BTreeMap<u64, Vec<(u64, ReadReply)>>,
    next_read_id: u64,
    /// Ticks since the actor started (the deadline clock of waiting requests).
    ticks: u64,
    request_timeout_ticks: u64,
    /// Whether a `Drain` is in the mailbox.
    drain_scheduled: bool,
    compact_after_entries: u64,
    /// The applied index of the last compaction (or of the start).
    compacted_at: u64,
    /// Whether a compaction's snapshot is being built off the actor.
    compaction_building: bool,
    /// Members this leader added that still need a snapshot: once their addition is
    /// applied, the log is compacted so the leader sends them one (raft-rs only installs a
    /// snapshot whose membership names the receiver).
    joining: std::collections::BTreeSet<u64>,
    /// The tick this member was first seen leading in its current leadership.
    leader_since: Option<u64>,
    /// Whether this leadership already looked for members waiting for a snapshot.
    joiners_adopted: bool,
    /// The index of the compaction started for the `joining` members, while it builds.
    joiner_snapshot: Option<u64>,
    /// The tick each peer was last heard from (any raft message).
    heard_at: BTreeMap<u64, u64>,
    persist_every_ticks: u64,
    /// The tick of the last persist.
    persisted_at: u64,
    /// Whether a periodic persist is running off the actor.
    persist_running: bool,
    /// Snapshots sent, by receiver, with the tick they left at: raft-rs waits for a
    /// delivery report before it sends another, and a lost one is never reported by the
    /// transport.
    snapshots_sent: BTreeMap<u64, u64>,
}

/// The raft group actor (generic over the log store and the state machine).
pub struct RaftActor<S, M>(std::marker::PhantomData<fn() -> (S, M)>);

impl<S, M> Default for RaftActor<S, M> {
    fn default() -> Self {
        RaftActor(std::marker::PhantomData)
    }
}

impl<S, M> Actor for RaftActor<S, M>
where
    S: LogStore + Send + 'static,
    M: StateMachine + Send + 'static,
{
    type Msg = RaftMsg;
    type State = RaftState<S, M>;
    type Arguments = RaftArguments<S, M>;

    async fn pre_start(
        &self,
        myself: ActorRef<RaftMsg>,
        arguments: RaftArguments<S, M>,
    ) -> Result<RaftState<S, M>, ActorProcessingErr> {
        myself.send_interval(Duration::from_millis(arguments.tick_ms), || RaftMsg::Tick);
        let compacted_at = arguments.group.applied();
        Ok(RaftState {
            group: arguments.group,
            group_id: arguments.group_id,
            transport: arguments.transport,
            proposals: BTreeMap::new(),
            barriers_queued: Vec::new(),
            reads: BTreeMap::new(),
            apply_waiters: BTreeMap::new(),
            next_read_id: 1,
            ticks: 0,
            request_timeout_ticks: arguments.request_timeout_ticks,
            drain_scheduled: false,
            compact_after_entries: arguments.compact_after_entries.max(1),
            compacted_at,
            compaction_building: false,
            joining: std::collections::BTreeSet::new(),
            leader_since: None,
            joiners_adopted: false,
            joiner_snapshot: None,
            heard_at: BTreeMap::new(),
            snapshots_sent: BTreeMap::new(),
            persist_every_ticks: arguments.persist_every_ticks.max(1),
            persisted_at: 0,
            persist_running: false,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<RaftMsg>,
        message: RaftMsg,
        state: &mut RaftState<S, M>,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            RaftMsg::Tick => {
                state.ticks += 1;
                expire_requests(state);
                expire_snapshots(state);
                persist_when_due(&myself, state)?;
                state.group.tick()?;
            }
            RaftMsg::Peer(envelope) => step(state, &envelope),
            RaftMsg::Propose { data, reply } => propose(state, data, reply),
            RaftMsg::ReadBarrier { reply } => state.barriers_queued.push(reply),
            RaftMsg::WaitApplied { index, reply } => wait_applied(state, index, reply),
            RaftMsg::Campaign => state.group.core_mut().campaign()?,
            RaftMsg::TransferLeader { to } => transfer_leader(state, to),
            RaftMsg::SnapshotBuilt { index, data } => finish_compaction(state, index, data),
            RaftMsg::Persisted { result } => {
                state.persist_running = false;
                result.map_err(|error| {
                    format!("raft group {}: persisting failed: {error}", state.group_id)
                })?;
            }
            RaftMsg::Status { reply } => {
                let _ = reply.send(status(&state.group));
                return Ok(());
            }
            RaftMsg::Drain => {
                state.drain_scheduled = false;
                return drain(&myself, state);
            }
        }
        // The input may have produced a Ready: run it behind the inputs already queued.
        if !state.drain_scheduled {
            state.drain_scheduled = myself.send_message(RaftMsg::Drain).is_ok();
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<RaftMsg>,
        state: &mut RaftState<S, M>,
    ) -> Result<(), ActorProcessingErr> {
        // A clean stop makes the state machine durable, so the next start replays nothing.
        if let Err(error) = tokio::task::block_in_place(|| state.group.persist()) {
            tracing::warn!(group = state.group_id, %error, "state machine not persisted at stop");
        }
        Ok(())
    }
}

/// One Ready point: persist (fsync) off the async workers, then send, apply and answer.
#[allow(clippy::disallowed_methods)] // a latency metric of the shell, never a decision
fn drain<S: LogStore, M: StateMachine>(
    myself: &ActorRef<RaftMsg>,
    state: &mut RaftState<S, M>,
) -> Result<(), ActorProcessingErr> {
    let started = std::time::Instant::now();
    issue_reads(state);
    // A bounded number of cycles per Drain: a long catch-up yields to the mailbox between
    // them, so ticks and heartbeats keep flowing and no election is caused by an apply.
    let RaftState {
        group,
        group_id,
        transport,
        ticks,
        snapshots_sent,
        ..
    } = state;
    let mut send = |messages: Vec<Message>| {
        send_messages(
            *group_id,
            transport.as_ref(),
            snapshots_sent,
            *ticks,
            &messages,
        );
    };
    let outputs =
        tokio::task::block_in_place(|| group.drain_sending(READY_CYCLES_PER_DRAIN, &mut send));
    match outputs {
        Ok(outputs) => {
            record_metrics(state, &outputs, started.elapsed().as_secs_f64());
            perform(state, outputs);
            compact_when_due(myself, state);
            drive_membership(myself, state);
            if state.group.has_ready() && !state.drain_scheduled {
                state.drain_scheduled = myself.send_message(RaftMsg::Drain).is_ok();
            }
            Ok(())
        }
        Err(error) => {
            fail_all(state, &error);
            Err(format!("raft group {} failed: {error}", state.group_id).into())
        }
    }
}

/// The member's figures for `/metrics`: where it stands, and what this cycle did.
fn record_metrics<S: LogStore, M: StateMachine>(
    state: &RaftState<S, M>,
    outputs: &Outputs,
    cycle_s: f64,
) {
    let group = state.group_id.to_string();
    let status = state.group.core().status();
    metrics::gauge!("inferadb_raft_term", "group" => group.clone()).set(status.term as f64);
    metrics::gauge!("inferadb_raft_commit_index", "group" => group.clone())
        .set(status.commit as f64);
    metrics::gauge!("inferadb_raft_applied_index", "group" => group.clone())
        .set(state.group.applied() as f64);
    metrics::gauge!("inferadb_raft_last_index", "group" => group.clone())
        .set(status.last_index as f64);
    let leading = if state.group.core().is_leader() {
        1.0
    } else {
        0.0
    };
    metrics::gauge!("inferadb_raft_is_leader", "group" => group.clone()).set(leading);
    metrics::counter!("inferadb_raft_entries_applied_total", "group" => group.clone())
        .increment(outputs.applied_entries);
    // A cycle that sent or applied something persisted first (append + fsync).
    if outputs.messages_sent > 0 || outputs.applied_entries > 0 {
        metrics::histogram!("inferadb_raft_ready_cycle_seconds", "group" => group.clone())
            .record(cycle_s);
    }
    if let Some(change) = &outputs.role_change {
        if change.role == Role::Candidate {
            metrics::counter!("inferadb_raft_elections_total", "group" => group.clone())
                .increment(1);
        }
        metrics::counter!("inferadb_raft_role_changes_total", "group" => group).increment(1);
    }
}

/// Ticks a leader waits before it treats the members that have matched nothing as joiners
/// still waiting for a snapshot: long enough for every live member to answer a heartbeat.
const JOINER_CHECK_TICKS: u64 = 20;

/// On the leader, compacts the log once members it must send a snapshot to are in the
/// configuration (raft-rs only installs a snapshot whose membership names the receiver,
/// and a joining member accepts no entry before its first snapshot).
///
/// The joiners a leader added are known to it; a member added under an earlier leader
/// that lost leadership before sending the snapshot is not, and would wait forever (a new
/// leader's log starts at index 1, so raft-rs keeps probing it with entries). So once per
/// leadership, after [`JOINER_CHECK_TICKS`], every member that answers but has matched
/// nothing yet is treated as joining: one compaction, then each is probed from index 1
/// (below the compacted log), so raft-rs sends it a snapshot. A member that is down
/// answers nothing and costs no compaction.
fn snapshot_joiners<S: LogStore, M: StateMachine>(
    myself: &ActorRef<RaftMsg>,
    state: &mut RaftState<S, M>,
) {
    let since = *state.leader_since.get_or_insert(state.ticks);
    let due = !state.joiners_adopted && state.ticks.saturating_sub(since) >= JOINER_CHECK_TICKS;
    // This runs after every drain: the usual answer costs no status.
    if !due && state.joining.is_empty() {
        return;
    }
    let status = state.group.core().status();
    if due {
        state.joiners_adopted = true;
        let heard_since = |id: &u64| state.heard_at.get(id).is_some_and(|at| *at >= since);
        // A member on its way out (still dialling in) needs no snapshot.
        let leaving = state.group.machine().membership_target().removed;
        let waiting: Vec<u64> = status
            .progress
            .iter()
            .filter(|(id, matched)| *id != status.id && *matched == 0 && heard_since(id))
            .map(|(id, _)| *id)
            .filter(|id| !leaving.contains(id))
            .collect();
        if !waiting.is_empty() {
            tracing::info!(
                group = state.group_id,
                ?waiting,
                "members without entries get a snapshot"
            );
            state.joining.extend(waiting);
        }
    }
    let members: std::collections::BTreeSet<u64> = status
        .voters
        .iter()
        .chain(&status.voters_outgoing)
        .chain(&status.learners)
        .copied()
        .collect();
    if state.joining.is_empty() || !state.joining.iter().all(|id| members.contains(id)) {
        return;
    }
    // One build at a time: a periodic compaction under way started before the joiners were
    // members, so its snapshot would not name them; the first drain after it starts theirs.
    // Kept until one succeeds (see `finish_compaction`).
    if !state.compaction_building {
        state.joiner_snapshot = start_compaction(myself, state);
    }
}

/// On the leader, moves the group's configuration one step toward the membership the
/// replicated state asks for: one configuration change at a time (several ids in one change
/// make it a joint-consensus change, left automatically), and a compaction once an added
/// member is in the configuration, so it is sent a snapshot to start from.
fn drive_membership<S: LogStore, M: StateMachine>(
    myself: &ActorRef<RaftMsg>,
    state: &mut RaftState<S, M>,
) {
    if !state.group.core().is_leader() {
        state.leader_since = None;
        state.joiners_adopted = false;
        return;
    }
    // Before the pending-change check: a joiner that accepts nothing can be what keeps a
    // new leader's first entry, and so any configuration change, from committing.
    snapshot_joiners(myself, state);
    let core = state.group.core();
    if core.has_pending_conf_change() {
        return;
    }
    let status = core.status();
    if !status.voters_outgoing.is_empty() {
        return; // a joint configuration: raft-rs leaves it on its own
    }
    let members: std::collections::BTreeSet<u64> = status
        .voters
        .iter()
        .chain(&status.learners)
        .copied()
        .collect();
    let target = state.group.machine().membership_target();
    let add: Vec<u64> = target
        .voters
        .iter()
        .copied()
        .filter(|id| !status.voters.contains(id))
        .collect();
    let remove: Vec<u64> = target
        .removed
        .iter()
        .copied()
        .filter(|id| members.contains(id))
        .collect();
    if add.is_empty() && remove.is_empty() {
        return;
    }
    if remove.contains(&status.id) {
        // A leader does not remove itself: it hands leadership to a voter that stays.
        if let Some(successor) = status.voters.iter().find(|id| !remove.contains(id)) {
            let _ = state.group.core_mut().transfer_leader(*successor);
        }
        return;
    }
    let change = membership_change(&add, &remove);
    match state.group.propose_conf_change(change) {
        Ok(_) => {
            tracing::info!(
                group = state.group_id,
                ?add,
                ?remove,
                "membership change proposed"
            );
            state.joining.extend(add);
        }
        Err(error) => tracing::warn!(group = state.group_id, %error, "membership change refused"),
    }
}

/// A configuration change adding `add` as voters and removing `remove`.
fn membership_change(add: &[u64], remove: &[u64]) -> ConfChangeV2 {
    let mut change = ConfChangeV2::default();
    let singles = add
        .iter()
        .map(|id| (ConfChangeType::AddNode, *id))
        .chain(remove.iter().map(|id| (ConfChangeType::RemoveNode, *id)));
    for (change_type, node_id) in singles {
        let mut single = ConfChangeSingle::default();
        single.set_change_type(change_type);
        single.node_id = node_id;
        change.mut_changes().push(single);
    }
    change
}

/// Compacts the log once `compact_after_entries` entries were applied since the last time
/// (the machine persists first, so no released entry is needed for a replay).
fn compact_when_due<S: LogStore, M: StateMachine>(
    myself: &ActorRef<RaftMsg>,
    state: &mut RaftState<S, M>,
) {
    let applied = state.group.applied();
    if state.compaction_building
        || applied.saturating_sub(state.compacted_at) < state.compact_after_entries
    {
        return;
    }
    start_compaction(myself, state);
}

/// Starts a compaction at the applied index; the snapshot is built off the actor and
/// [`finish_compaction`] records it. Returns that index, or `None` when none started.
fn start_compaction<S: LogStore, M: StateMachine>(
    myself: &ActorRef<RaftMsg>,
    state: &mut RaftState<S, M>,
) -> Option<u64> {
    // Retried after another `compact_after_entries` either way: a refused compaction (the
    // membership at that index is unknown) only keeps more log; a failed machine stops the
    // group at the next drain.
    state.compacted_at = state.group.applied();
    let job = match tokio::task::block_in_place(|| state.group.begin_compaction()) {
        Ok(job) => job,
        Err(error) => {
            tracing::warn!(group = state.group_id, %error, "raft log not compacted");
            return None;
        }
    };
    // The snapshot of a big state takes a while to read and encode: off the actor, so the
    // member keeps ticking, heartbeating and applying meanwhile.
    state.compaction_building = true;
    let myself = myself.clone();
    let index = job.index;
    tokio::task::spawn_blocking(move || {
        // A panic in the build must still end the compaction, or none would ever start again.
        let data = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job.build))
            .unwrap_or_else(|_| Err("the snapshot build panicked".to_string()));
        let _ = myself.send_message(RaftMsg::SnapshotBuilt { index, data });
    });
    Some(index)
}

/// Passes a leadership transfer request to raft (which ignores one to a non-member or to
/// the leader itself); a member that cannot take input now only logs it.
fn transfer_leader<S: LogStore, M: StateMachine>(state: &mut RaftState<S, M>, to: u64) {
    if let Err(error) = state.group.core_mut().transfer_leader(to) {
        tracing::warn!(group = state.group_id, to, %error, "leadership transfer not requested");
    }
}

/// Records a snapshot built off the actor and drops the log up to it.
fn finish_compaction<S: LogStore, M: StateMachine>(
    state: &mut RaftState<S, M>,
    index: u64,
    data: Result<Vec<u8>, String>,
) {
    state.compaction_building = false;
    let result = data.map_err(CoreError::Failed).and_then(|data| {
        tokio::task::block_in_place(|| state.group.finish_compaction(index, data))
    });
    let for_joiners = state.joiner_snapshot.take() == Some(index);
    match result {
        Ok(()) => {
            tracing::info!(group = state.group_id, index, "raft log compacted");
            if for_joiners {
                // Probed from index 1, below the compacted log: raft-rs sends the snapshot.
                for id in std::mem::take(&mut state.joining) {
                    state.group.core_mut().probe_from_start(id);
                }
            }
        }
        // The joiners keep waiting; the next drain starts another compaction for them.
        Err(error) => tracing::warn!(group = state.group_id, %error, "raft log not compacted"),
    }
}

fn step<S: LogStore, M: StateMachine>(state: &mut RaftState<S, M>, envelope: &PeerEnvelope) {
    match envelope.open() {
        // A message raft-rs refuses (a stale member, a removed peer) is dropped: peers
        // retry, and one bad peer must not stop the group.
        Ok(message) => {
            state.heard_at.insert(envelope.from, state.ticks);
            if let Err(error) = state.group.step(message) {
                tracing::debug!(%error, from = envelope.from, "raft message refused");
            }
        }
        Err(error) => tracing::warn!(%error, "raft envelope refused"),
    }
}

fn not_leader(group_leader: Option<u64>) -> ProposeError {
    ProposeError::NotLeader {
        leader_hint: group_leader,
    }
}

fn propose<S: LogStore, M: StateMachine>(
    state: &mut RaftState<S, M>,
    data: Vec<u8>,
    reply: ProposeReply,
) {
    match state.group.propose(data) {
        Ok(Proposed { index, term }) => {
            state.proposals.insert((index, term), (state.ticks, reply));
        }
        Err(CoreError::NotLeader { leader_hint }) => {
            let _ = reply.send(Err(not_leader(leader_hint)));
        }
        // Never appended (a leadership transfer is under way): safe to retry.
        Err(CoreError::ProposalDropped) => {
            let _ = reply.send(Err(ProposeError::Dropped));
        }
        Err(error) => {
            let _ = reply.send(Err(ProposeError::Failed(error.to_string())));
        }
    }
}

/// Starts one read-index round for every barrier queued since the last Ready point: each
/// of them arrived before the round starts, so the index it confirms is a valid read point
/// for all (like group commit, many reads share one heartbeat round).
fn issue_reads<S: LogStore, M: StateMachine>(state: &mut RaftState<S, M>) {
    if state.barriers_queued.is_empty() {
        return;
    }
    let waiting = std::mem::take(&mut state.barriers_queued);
    let id = state.next_read_id;
    state.next_read_id += 1;
    let error = match state.group.read_index(id) {
        Ok(()) => {
            state.reads.insert(id, (state.ticks, waiting));
            return;
        }
        Err(CoreError::NotLeader { leader_hint }) => not_leader(leader_hint),
        Err(error) => ProposeError::Failed(error.to_string()),
    };
    answer_reads(waiting, &Err(error));
}

/// Answers at once if this member has applied `index`, else when it does (or at the
/// request deadline).
fn wait_applied<S: LogStore, M: StateMachine>(
    state: &mut RaftState<S, M>,
    index: u64,
    reply: ReadReply,
) {
    let applied = state.group.applied();
    if applied >= index {
        let _ = reply.send(Ok(applied));
        return;
    }
    state
        .apply_waiters
        .entry(index)
        .or_default()
        .push((state.ticks, reply));
}

/// Answers every request waiting for an index at or below `applied`.
fn serve_apply_waiters<S: LogStore, M: StateMachine>(state: &mut RaftState<S, M>, applied: u64) {
    let still_waiting = state.apply_waiters.split_off(&(applied + 1));
    for (_, waiting) in std::mem::replace(&mut state.apply_waiters, still_waiting) {
        for (_, reply) in waiting {
            let _ = reply.send(Ok(applied));
        }
    }
}

/// Sends every waiting reader the same answer.
fn answer_reads(waiting: Vec<ReadReply>, answer: &Result<u64, ProposeError>) {
    for reply in waiting {
        let _ = reply.send(answer.clone());
    }
}

/// Sends the messages, answers finished proposals and served reads.
/// Seals and sends `messages`, noting when each snapshot went out.
fn send_messages(
    group_id: u64,
    transport: &dyn Transport,
    snapshots_sent: &mut BTreeMap<u64, u64>,
    ticks: u64,
    messages: &[Message],
) {
    for message in messages {
        if message.get_msg_type() == MessageType::MsgSnapshot {
            snapshots_sent.insert(message.to, ticks);
        }
        match PeerEnvelope::seal(group_id, message) {
            Ok(envelope) => transport.send(envelope),
            Err(error) => tracing::error!(%error, "raft message could not be sealed"),
        }
    }
}

fn perform<S: LogStore, M: StateMachine>(state: &mut RaftState<S, M>, outputs: Outputs) {
    send_messages(
        state.group_id,
        state.transport.as_ref(),
        &mut state.snapshots_sent,
        state.ticks,
        &outputs.messages,
    );
    for completion in outputs.completions {
        let (ticket, answer) = match completion {
            Completion::Applied { ticket, output } => (
                ticket,
                Ok(Applied {
                    index: ticket.index,
                    output,
                }),
            ),
            Completion::Dropped { ticket } => (ticket, Err(ProposeError::Dropped)),
            Completion::Unknown { ticket } => (ticket, Err(ProposeError::Unknown)),
        };
        if let Some((_, reply)) = state.proposals.remove(&(ticket.index, ticket.term)) {
            let _ = reply.send(answer);
        }
    }
    let applied = state.group.applied();
    serve_apply_waiters(state, applied);
    for id in outputs.reads {
        if let Some((_, waiting)) = state.reads.remove(&id) {
            answer_reads(waiting, &Ok(applied));
        }
    }
    if let Some(change) = outputs.role_change {
        // Reads waiting for a leadership confirmation this member no longer can give.
        if change.leader_id != Some(state.group.core().id()) {
            for (_, (_, waiting)) in std::mem::take(&mut state.reads) {
                answer_reads(waiting, &Err(not_leader(change.leader_id)));
            }
        }
    }
}

fn fail_all<S: LogStore, M: StateMachine>(state: &mut RaftState<S, M>, error: &CoreError) {
    for (_, (_, reply)) in std::mem::take(&mut state.proposals) {
        let _ = reply.send(Err(ProposeError::Failed(error.to_string())));
    }
    let failed = Err(ProposeError::Failed(error.to_string()));
    for (_, (_, waiting)) in std::mem::take(&mut state.reads) {
        answer_reads(waiting, &failed);
    }
    answer_reads(std::mem::take(&mut state.barriers_queued), &failed);
    for (_, waiting) in std::mem::take(&mut state.apply_waiters) {
        answer_reads(
            waiting.into_iter().map(|(_, reply)| reply).collect(),
            &failed,
        );
    }
}

/// Makes the state machine durable every `persist_every_ticks` ticks (vault files, then
/// the catalog), so a restart after a crash replays only the entries since. The fsyncs run
/// off the actor when the machine can (they take tens of milliseconds under load, and every
/// write of the group would wait for them); one persist runs at a time.
fn persist_when_due<S: LogStore, M: StateMachine>(
    myself: &ActorRef<RaftMsg>,
    state: &mut RaftState<S, M>,
) -> Result<(), ActorProcessingErr> {
    let due = state.ticks.saturating_sub(state.persisted_at) >= state.persist_every_ticks;
    if !due || state.persist_running {
        return Ok(());
    }
    state.persisted_at = state.ticks;
    let failed = |error| format!("raft group {}: persisting failed: {error}", state.group_id);
    let Some(job) = tokio::task::block_in_place(|| state.group.begin_persist()).map_err(failed)?
    else {
        tokio::task::block_in_place(|| state.group.persist()).map_err(failed)?;
        return Ok(());
    };
    state.persist_running = true;
    let myself = myself.clone();
    let group = state.group_id.to_string();
    tokio::task::spawn_blocking(move || {
        #[allow(clippy::disallowed_methods)] // a latency metric of the shell, never a decision
        let started = std::time::Instant::now();
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job))
            .unwrap_or_else(|_| Err("the persist panicked".to_string()));
        metrics::histogram!("inferadb_raft_persist_seconds", "group" => group)
            .record(started.elapsed().as_secs_f64());
        let _ = myself.send_message(RaftMsg::Persisted { result });
    });
    Ok(())
}

/// Reports a snapshot as failed when its receiver has not left the snapshot state within
/// `SNAPSHOT_DELIVERY_TICKS`, so the leader sends another instead of waiting forever.
fn expire_snapshots<S: LogStore, M: StateMachine>(state: &mut RaftState<S, M>) {
    let deadline = state.ticks.saturating_sub(SNAPSHOT_DELIVERY_TICKS);
    let overdue: Vec<u64> = state
        .snapshots_sent
        .iter()
        .filter(|(_, sent)| **sent < deadline)
        .map(|(to, _)| *to)
        .collect();
    for to in overdue {
        state.snapshots_sent.remove(&to);
        let waiting = state
            .group
            .core()
            .raw_node()
            .raft
            .prs()
            .get(to)
            .is_some_and(|progress| progress.state == ProgressState::Snapshot);
        if waiting {
            tracing::warn!(
                group = state.group_id,
                to,
                "snapshot not acknowledged: sending again"
            );
            state
                .group
                .core_mut()
                .report_snapshot(to, SnapshotStatus::Failure);
        }
    }
}

/// Answers the requests that waited longer than `request_timeout_ticks`: a proposal's
/// outcome is unknown (it may still commit), a read must be retried.
fn expire_requests<S: LogStore, M: StateMachine>(state: &mut RaftState<S, M>) {
    let deadline = state.ticks.saturating_sub(state.request_timeout_ticks);
    let leader_hint = state.group.core().status().leader_id;
    let expired: Vec<(u64, u64)> = state
        .proposals
        .iter()
        .filter(|(_, (since, _))| *since < deadline)
        .map(|(key, _)| *key)
        .collect();
    for key in expired {
        if let Some((_, reply)) = state.proposals.remove(&key) {
            let _ = reply.send(Err(ProposeError::Unknown));
        }
    }
    let expired: Vec<u64> = state
        .reads
        .iter()
        .filter(|(_, (since, _))| *since < deadline)
        .map(|(id, _)| *id)
        .collect();
    for id in expired {
        if let Some((_, waiting)) = state.reads.remove(&id) {
            answer_reads(waiting, &Err(not_leader(leader_hint)));
        }
    }
    let late = Err(ProposeError::Failed(
        "this member did not apply the index within the request timeout".to_string(),
    ));
    for waiting in state.apply_waiters.values_mut() {
        let (expired, kept): (Vec<_>, Vec<_>) =
            waiting.drain(..).partition(|(since, _)| *since < deadline);
        *waiting = kept;
        answer_reads(expired.into_iter().map(|(_, reply)| reply).collect(), &late);
    }
    state.apply_waiters.retain(|_, waiting| !waiting.is_empty());
}

fn status<S: LogStore, M: StateMachine>(group: &RaftGroup<S, M>) -> GroupStatus {
    let status = group.core().status();
    GroupStatus {
        id: status.id,
        term: status.term,
        is_leader: group.core().is_leader(),
        role: role_name(status.role),
        leader_id: status.leader_id,
        commit: status.commit,
        applied: group.applied(),
        last_index: status.last_index,
        voters: status.voters,
        voters_outgoing: status.voters_outgoing,
        learners: status.learners,
        progress: status.progress,
    }
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::Follower => "follower",
        Role::PreCandidate => "pre_candidate",
        Role::Candidate => "candidate",
        Role::Leader => "leader",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use inferadb_raft::core::{RaftConfig, RaftCore};
    use inferadb_raft::group::Journal;
    use inferadb_raft::log::{DurableLog, LogOptions};
    use inferadb_raft::logging::raft_logger;
    use parking_lot::RwLock;
    use raft::eraftpb::ConfState;
    use std::collections::HashMap;

    /// In-process transport: member id → actor; counts the read-index requests it carries.
    #[derive(Default)]
    struct Local {
        peers: RwLock<HashMap<u64, ActorRef<RaftMsg>>>,
        read_index_requests: std::sync::atomic::AtomicU64,
    }

    impl Transport for Local {
        fn send(&self, envelope: PeerEnvelope) {
            let read_index = envelope
                .open()
                .is_ok_and(|message| message.get_msg_type() == MessageType::MsgReadIndex);
            if read_index {
                self.read_index_requests
                    .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
            if let Some(peer) = self.peers.read().get(&envelope.to) {
                let _ = peer.cast(RaftMsg::Peer(envelope));
            }
        }
    }

    async fn start(
        id: u64,
        directory: &std::path::Path,
        transport: &Arc<Local>,
    ) -> ActorRef<RaftMsg> {
        start_with_timeout(id, directory, transport, 200).await
    }

    async fn start_with_timeout(
        id: u64,
        directory: &std::path::Path,
        transport: &Arc<Local>,
        request_timeout_ticks: u64,
    ) -> ActorRef<RaftMsg> {
        let mut store =
            DurableLog::open_dir(&directory.join(format!("n{id}")), LogOptions::default())
                .expect("the log opens");
        if store.conf_state().voters.is_empty() {
            let conf_state = ConfState {
                voters: vec![1, 2, 3],
                ..ConfState::default()
            };
            store.set_conf_state(&conf_state).expect("conf state");
            store.sync().expect("sync");
        }
        let core = RaftCore::new(&RaftConfig::new(id, 11), store, &raft_logger("test"))
            .expect("the core starts");
        let group = RaftGroup::new(core, Journal::default(), 0);
        let arguments = RaftArguments {
            group,
            group_id: 1,
            transport: Arc::clone(transport) as Arc<dyn Transport>,
            tick_ms: 10,
            request_timeout_ticks,
            compact_after_entries: 1_000,
            persist_every_ticks: 100,
        };
        let (actor, _) = Actor::spawn(None, RaftActor::default(), arguments)
            .await
            .expect("the actor starts");
        transport.peers.write().insert(id, actor.clone());
        actor
    }

    async fn leader(actors: &BTreeMap<u64, ActorRef<RaftMsg>>) -> Option<u64> {
        for (id, actor) in actors {
            if let Ok(status) = ractor::call!(actor, |reply| RaftMsg::Status { reply }) {
                if status.is_leader {
                    return Some(*id);
                }
            }
        }
        None
    }

    async fn wait_for_leader(actors: &BTreeMap<u64, ActorRef<RaftMsg>>) -> u64 {
        for _ in 0..500 {
            if let Some(id) = leader(actors).await {
                return id;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("no leader elected");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn three_actors_on_durable_logs_replicate_and_survive_the_loss_of_their_leader() {
        let directory = tempfile::tempdir().unwrap();
        let transport = Arc::new(Local::default());
        let mut actors = BTreeMap::new();
        for id in 1..=3 {
            actors.insert(id, start(id, directory.path(), &transport).await);
        }
        let first = wait_for_leader(&actors).await;
        let answer = ractor::call!(actors[&first], |reply| RaftMsg::Propose {
            data: b"one".to_vec(),
            reply
        })
        .unwrap();
        assert_eq!(
            answer.map(|applied| applied.output),
            Ok(1u64.to_be_bytes().to_vec())
        );
        let follower = *actors.keys().find(|id| **id != first).unwrap();
        let refused = ractor::call!(actors[&follower], |reply| RaftMsg::Propose {
            data: b"x".to_vec(),
            reply
        })
        .unwrap();
        assert!(
            matches!(refused, Err(ProposeError::NotLeader { .. })),
            "{refused:?}"
        );
        let barrier =
            ractor::call!(actors[&first], |reply| RaftMsg::ReadBarrier { reply }).unwrap();
        assert!(barrier.unwrap() >= 2);

        // The leader dies; the other two elect a new one and go on.
        actors[&first].stop(None);
        transport.peers.write().remove(&first);
        actors.remove(&first);
        let second = wait_for_leader(&actors).await;
        assert_ne!(second, first);
        let answer = ractor::call!(actors[&second], |reply| RaftMsg::Propose {
            data: b"two".to_vec(),
            reply
        })
        .unwrap();
        assert_eq!(
            answer.map(|applied| applied.output),
            Ok(2u64.to_be_bytes().to_vec())
        );

        // The old leader restarts from its log file and catches up.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let restarted = start(first, directory.path(), &transport).await;
        actors.insert(first, restarted);
        let mut caught_up = false;
        for _ in 0..300 {
            let status = ractor::call!(actors[&first], |reply| RaftMsg::Status { reply }).unwrap();
            if status.applied >= 4 && status.leader_id == Some(second) {
                caught_up = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(caught_up, "the restarted member caught up");
        for actor in actors.values() {
            actor.stop(None);
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn reads_that_cannot_be_confirmed_are_answered_not_left_waiting() {
        let directory = tempfile::tempdir().unwrap();
        let transport = Arc::new(Local::default());
        // A lone member knows no leader: refused at once.
        let lonely = start_with_timeout(9, directory.path(), &transport, 5).await;
        let answer = ractor::call!(lonely, |reply| RaftMsg::ReadBarrier { reply }).unwrap();
        assert!(
            matches!(answer, Err(ProposeError::NotLeader { .. })),
            "{answer:?}"
        );
        lonely.stop(None);
        // A follower whose leader is cut off forwards the read into the void: its deadline
        // (or the election that follows) answers it.
        let mut actors = BTreeMap::new();
        for id in 1..=3 {
            actors.insert(
                id,
                start_with_timeout(id, directory.path(), &transport, 5).await,
            );
        }
        let leader = wait_for_leader(&actors).await;
        transport.peers.write().remove(&leader);
        let follower = *actors.keys().find(|id| **id != leader).unwrap();
        // Several barriers share one round; every one of them is answered.
        let mut waiting = Vec::new();
        for _ in 0..5 {
            let (port, answer) = ractor::concurrency::oneshot();
            actors[&follower]
                .cast(RaftMsg::ReadBarrier { reply: port.into() })
                .unwrap();
            waiting.push(answer);
        }
        for answer in waiting {
            let answer = tokio::time::timeout(Duration::from_secs(5), answer)
                .await
                .expect("the read is answered")
                .unwrap();
            assert!(
                matches!(answer, Err(ProposeError::NotLeader { .. }) | Ok(_)),
                "{answer:?}"
            );
        }
        for actor in actors.values() {
            actor.stop(None);
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn read_barriers_that_arrive_together_share_one_read_index_round() {
        let directory = tempfile::tempdir().unwrap();
        let transport = Arc::new(Local::default());
        let mut actors = BTreeMap::new();
        for id in 1..=3 {
            actors.insert(id, start(id, directory.path(), &transport).await);
        }
        let leader = wait_for_leader(&actors).await;
        for item in [b"a", b"b", b"c"] {
            let answer = ractor::call!(actors[&leader], |reply| RaftMsg::Propose {
                data: item.to_vec(),
                reply
            })
            .unwrap();
            assert!(answer.is_ok(), "{answer:?}");
        }
        let follower = *actors.keys().find(|id| **id != leader).unwrap();
        let before = transport
            .read_index_requests
            .load(std::sync::atomic::Ordering::SeqCst);
        // 64 barriers queued behind one another in the follower's mailbox.
        let mut answers = Vec::new();
        for _ in 0..64 {
            let (port, answer) = ractor::concurrency::oneshot();
            actors[&follower]
                .cast(RaftMsg::ReadBarrier { reply: port.into() })
                .unwrap();
            answers.push(answer);
        }
        for answer in answers {
            let applied = answer.await.unwrap().unwrap();
            // The three proposals (after the leader's empty entry) are visible to each.
            assert!(applied >= 4, "{applied}");
        }
        let rounds = transport
            .read_index_requests
            .load(std::sync::atomic::Ordering::SeqCst)
            - before;
        assert!(
            (1..=8).contains(&rounds),
            "64 barriers took {rounds} read-index requests"
        );
        for actor in actors.values() {
            actor.stop(None);
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_follower_answers_once_it_has_applied_an_index_or_at_the_deadline() {
        let directory = tempfile::tempdir().unwrap();
        let transport = Arc::new(Local::default());
        let mut actors = BTreeMap::new();
        for id in 1..=3 {
            actors.insert(
                id,
                start_with_timeout(id, directory.path(), &transport, 20).await,
            );
        }
        let leader = wait_for_leader(&actors).await;
        let applied = ractor::call!(actors[&leader], |reply| RaftMsg::Propose {
            data: b"seen".to_vec(),
            reply
        })
        .unwrap()
        .unwrap();
        let follower = *actors.keys().find(|id| **id != leader).unwrap();
        let reached = ractor::call!(actors[&follower], |reply| RaftMsg::WaitApplied {
            index: applied.index,
            reply
        })
        .unwrap()
        .unwrap();
        assert!(reached >= applied.index, "{reached} < {}", applied.index);
        let status = ractor::call!(actors[&follower], |reply| RaftMsg::Status { reply }).unwrap();
        assert!(status.applied >= applied.index);
        // An index nobody will reach is answered at the deadline (20 ticks of 10 ms).
        let never = tokio::time::timeout(Duration::from_secs(5), async {
            ractor::call!(actors[&follower], |reply| RaftMsg::WaitApplied {
                index: 1_000_000,
                reply
            })
        })
        .await
        .expect("answered at the deadline")
        .unwrap();
        assert!(matches!(never, Err(ProposeError::Failed(_))), "{never:?}");
        for actor in actors.values() {
            actor.stop(None);
        }
    }
}

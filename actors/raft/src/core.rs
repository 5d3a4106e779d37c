//! [`RaftCore`]: one member of a Raft group as a pure, deterministic state machine around
//! raft-rs's `RawNode`. Inputs (ticks, messages, proposals, reads) go in; [`RaftCore::ready`]
//! runs one Ready cycle (persisting through the [`LogStore`]) and returns the [`Effects`]
//! the shell performs: send, apply, answer. No clock, thread, socket or OS randomness: the
//! shell ticks it, and the election timeouts come from a seeded generator.
//!
//! # The Ready cycle
//!
//! [`RaftCore::ready`] follows raft-rs's documented order (`RawNode::ready`, `advance_append`,
//! `advance_apply`):
//!
//! 1. `ready.messages()` go to [`Effects::messages_first`] (a leader's appends may leave
//!    before its own write: "Leader can send messages immediately to make replication
//!    concurrently", raft thesis §10.2.1);
//! 2. persist: the snapshot (`LogStore::apply_snapshot`), the entries (`append`), the hard
//!    state, then **one** `sync` when raft-rs says `must_sync` — every proposal since the
//!    previous cycle shares it (group commit);
//! 3. `ready.persisted_messages()` ("to be sent AFTER the HardState, Entries and Snapshot are
//!    persisted") go to [`Effects::messages_after_persist`];
//! 4. read states, the snapshot to restore, and the committed entries (never
//!    `ready.entries()`: those are only appended, not committed);
//! 5. `advance_append`: the light ready's messages and committed entries join the cycle (its
//!    commit index is written to the store, unsynced: the commit index need not be durable);
//! 6. configuration changes among the committed entries are applied (`apply_conf_change`) and
//!    the store's membership updated; then `advance_apply` (the shell applies everything
//!    handed out before its next input, so raft-rs may count it as applied).

mod config;
mod effects;

use raft::eraftpb::{
    ConfChange, ConfChangeV2, ConfState, Entry, EntryType, HardState, Message, MessageType,
    Snapshot,
};
use raft::{RawNode, ReadState, SnapshotStatus, StateRole, Storage};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::store::LogStore;

pub use config::{Canaries, RaftConfig};
pub use effects::{CoreError, Effects, Proposed, ReadAnswer, Role, RoleChange, Status};

/// One member of a Raft group: raft-rs's `RawNode` over the log store `S`, plus what raft-rs
/// leaves to its user (the Ready loop, seeded election timeouts, applying configuration
/// changes, compaction bookkeeping). See the module docs for the Ready order.
pub struct RaftCore<S: LogStore> {
    node: RawNode<S>,
    /// Draws the election timeouts (raft-rs would use `thread_rng`).
    rng: SmallRng,
    election_tick: usize,
    canaries: Canaries,
    /// The term / role / leader last reported in [`Effects::role_change`].
    reported: RoleChange,
    /// Membership by the index it took effect at (the oldest kept is the one in force at the
    /// last compaction), so a snapshot at an older applied index gets the right membership.
    conf_history: Vec<(u64, ConfState)>,
    /// The commit index found in the store at start: committed configuration changes up to
    /// it may already be reflected in the stored membership (the store does not record at
    /// which index its membership was set), so re-applying them may fail harmlessly.
    replayed_up_to: u64,
    /// Set when a store write failed mid-cycle: the core must be recreated from its store.
    failed: Option<String>,
}

impl<S: LogStore> RaftCore<S> {
    /// Starts (or restarts) a member from `store`: a new member of a new group needs the
    /// group's initial membership in the store; a member joining an existing group starts
    /// with an empty store and receives a snapshot; a restarting member finds its hard state,
    /// log and membership there and resumes after `config.applied`.
    pub fn new(
        config: &RaftConfig,
        mut store: S,
        logger: &slog::Logger,
    ) -> Result<Self, CoreError> {
        let mut raft_config = config.to_raft();
        raft_config
            .validate()
            .map_err(|e| CoreError::Config(e.to_string()))?;
        let mut state = store.initial_state()?;
        if config.canaries.forget_hard_state_on_restart {
            // The bug: the term and vote never made it to disk.
            state.hard_state = HardState {
                commit: state.hard_state.commit,
                ..HardState::default()
            };
            store.set_hard_state(&state.hard_state)?;
        }
        raft_config.applied = check_restart_point(config, &mut store, &state.hard_state)?;
        let node = RawNode::new(&raft_config, store, logger)?;
        let applied = node.raft.raft_log.applied;
        let conf_index = restart_conf_index(&node)?;
        let mut core = Self {
            rng: SmallRng::seed_from_u64(mix_seed(config.seed, config.id)),
            election_tick: config.election_tick,
            canaries: config.canaries,
            reported: role_of(&node),
            conf_history: vec![(conf_index.max(applied), state.conf_state)],
            replayed_up_to: node.raft.raft_log.committed,
            failed: None,
            node,
        };
        // `RawNode::new` drew a timeout from `thread_rng`; replace it.
        core.redraw_election_timeout();
        Ok(core)
    }

    /// This member's id.
    pub fn id(&self) -> u64 {
        self.node.raft.id
    }

    /// Whether this member is the leader of its current term.
    pub fn is_leader(&self) -> bool {
        self.node.raft.state == StateRole::Leader
    }

    /// Whether this leader is handing its leadership over (it refuses proposals meanwhile;
    /// raft-rs gives up after an election timeout).
    pub fn is_transferring(&self) -> bool {
        self.node.raft.lead_transferee.is_some()
    }

    /// The integration bugs this member reproduces on purpose (all off in production).
    pub fn canaries(&self) -> &Canaries {
        &self.canaries
    }

    /// Whether this member knows no configuration (no voters, learners or outgoing voters).
    fn unconfigured(&self) -> bool {
        let conf = self.node.raft.prs().conf().to_conf_state();
        conf.voters.is_empty() && conf.learners.is_empty() && conf.voters_outgoing.is_empty()
    }

    /// Whether a configuration change is proposed but not yet applied (raft-rs accepts one
    /// at a time).
    pub fn has_pending_conf_change(&self) -> bool {
        self.node.raft.has_pending_conf()
    }

    /// The log store (read-only: writes go through the Ready cycle).
    pub fn store(&self) -> &S {
        self.node.store()
    }

    /// The raft-rs node, read-only, for introspection and tests.
    pub fn raw_node(&self) -> &RawNode<S> {
        &self.node
    }

    /// Advances the logical clock by one tick (elections, heartbeats, check-quorum).
    pub fn tick(&mut self) -> Result<(), CoreError> {
        self.check_usable()?;
        self.node.tick();
        self.after_input();
        Ok(())
    }

    /// Steps a message received from another member. A response from a member that is no
    /// longer in the group is ignored.
    ///
    /// A member with no configuration at all (a node joining a running group, never given a
    /// snapshot) accepts no log entries: it waits for the leader's snapshot, which carries
    /// the membership. Applying the group's history from an empty configuration would make
    /// its own addition leave it the sole voter of a group of one, free to elect itself.
    /// A leader that did not add the member itself learns of it through
    /// [`Self::probe_from_start`].
    pub fn step(&mut self, message: Message) -> Result<(), CoreError> {
        self.check_usable()?;
        let kind = message.get_msg_type();
        if kind == MessageType::MsgAppend && !message.entries.is_empty() && self.unconfigured() {
            tracing::debug!(
                from = message.from,
                "entries refused before a first snapshot"
            );
            return Ok(());
        }
        if self.canaries.vote_twice
            && kind == MessageType::MsgRequestVote
            && message.term == self.node.raft.term
        {
            // The bug: the vote granted earlier in this term is forgotten (as if it was never
            // persisted), so a second candidate of the same term gets a vote too.
            self.node.raft.vote = raft::INVALID_ID;
        }
        let result = self.node.step(message);
        self.after_input();
        match result {
            Ok(()) | Err(raft::Error::StepPeerNotFound) => Ok(()),
            Err(raft::Error::StepLocalMsg) => Err(CoreError::LocalMessage(kind)),
            Err(e) => Err(CoreError::Raft(e)),
        }
    }

    /// On the leader, restarts replication to member `id` from index 1, so that with the
    /// log compacted past it raft-rs sends `id` a snapshot. For a member that accepts no
    /// entry before its first snapshot (see [`Self::step`]) and was added under an earlier
    /// leader: it answers heartbeats but never appends, so raft-rs alone would probe it at
    /// the leader's last index forever. The caller has heard from `id` recently. Returns
    /// whether this member leads and tracks `id`.
    pub fn probe_from_start(&mut self, id: u64) -> bool {
        if !self.is_leader() || id == self.id() {
            return false;
        }
        let Some(progress) = self.node.raft.mut_prs().get_mut(id) else {
            return false;
        };
        if progress.matched > 0 {
            return false;
        }
        // Probing from `matched + 1`: index 1.
        progress.become_probe();
        progress.recent_active = true;
        self.node.raft.send_append(id);
        self.after_input();
        true
    }

    /// Proposes `data` (with an opaque `context` carried alongside it in the entry). Only the
    /// leader accepts proposals; the answer says where the entry landed.
    pub fn propose(&mut self, data: Vec<u8>, context: Vec<u8>) -> Result<Proposed, CoreError> {
        self.check_leader()?;
        let result = self.node.propose(context, data);
        self.after_input();
        self.proposed(result)
    }

    /// Proposes a membership change. With several changes (or an explicit transition) it is a
    /// joint-consensus change: the group first runs under both configurations, then leaves
    /// the joint state (automatically, unless the transition is explicit, in which case the
    /// caller proposes an empty `ConfChangeV2` to leave).
    pub fn propose_conf_change(
        &mut self,
        change: ConfChangeV2,
        context: Vec<u8>,
    ) -> Result<Proposed, CoreError> {
        self.check_leader()?;
        let result = self.node.propose_conf_change(context, change);
        self.after_input();
        let proposed = self.proposed(result)?;
        // raft-rs does not fail a refused change: it appends an empty normal entry instead.
        let last = self.node.raft.raft_log.unstable_entries().last();
        match last {
            Some(e) if e.get_entry_type() == EntryType::EntryConfChangeV2 => Ok(proposed),
            _ => Err(CoreError::ConfChangeRejected),
        }
    }

    /// Asks for a linearizable read point: once leadership is confirmed by a quorum (a
    /// heartbeat round), an [`Effects::read_states`] answer carries `request_id` and the
    /// index the state machine must reach before serving the read. A follower forwards the
    /// request to its leader.
    pub fn read_index(&mut self, request_id: u64) -> Result<(), CoreError> {
        self.check_usable()?;
        let context = request_id.to_be_bytes().to_vec();
        if self.canaries.local_reads_without_read_index {
            // The bug: trust the local commit index without asking anyone.
            let index = self.node.raft.raft_log.committed;
            self.node.raft.read_states.push(ReadState {
                index,
                request_ctx: context,
            });
            return Ok(());
        }
        if !self.is_leader() && self.node.raft.leader_id == raft::INVALID_ID {
            return Err(CoreError::NotLeader { leader_hint: None });
        }
        self.node.read_index(context);
        self.after_input();
        Ok(())
    }

    /// Asks the leader to hand leadership to `to` (once `to` has caught up).
    pub fn transfer_leader(&mut self, to: u64) -> Result<(), CoreError> {
        self.check_usable()?;
        self.node.transfer_leader(to);
        self.after_input();
        Ok(())
    }

    /// Starts an election now (after a pre-vote round).
    pub fn campaign(&mut self) -> Result<(), CoreError> {
        self.check_usable()?;
        let result = self.node.campaign();
        self.after_input();
        result.map_err(CoreError::Raft)
    }

    /// Tells the leader that a message to `to` could not be delivered.
    pub fn report_unreachable(&mut self, to: u64) {
        self.node.report_unreachable(to);
        self.after_input();
    }

    /// Tells the leader whether the snapshot it sent to `to` was delivered (it stops sending
    /// to `to` until told, or until `to` acknowledges it).
    pub fn report_snapshot(&mut self, to: u64, status: SnapshotStatus) {
        self.node.report_snapshot(to, status);
        self.after_input();
    }

    /// Whether a Ready cycle is pending.
    pub fn has_ready(&self) -> bool {
        self.failed.is_none() && self.node.has_ready()
    }

    /// Runs one Ready cycle if there is work (see the module docs for its order) and returns
    /// what the shell must do. Call it after every input until it returns `None`. A store
    /// failure poisons the core: the error is returned now and on every later call.
    pub fn ready(&mut self) -> Result<Option<Effects>, CoreError> {
        self.check_usable()?;
        if !self.node.has_ready() {
            return Ok(None);
        }
        match self.run_cycle() {
            Ok(effects) => Ok(Some(effects)),
            Err(e) => {
                self.failed = Some(e.to_string());
                Err(e)
            }
        }
    }

    /// Records a snapshot of the state machine at `applied_index` (its serialized state in
    /// `state_machine`) and drops the log up to it. A follower too far behind receives this
    /// snapshot instead of the dropped entries.
    pub fn compact(&mut self, applied_index: u64, state_machine: Vec<u8>) -> Result<(), CoreError> {
        self.check_usable()?;
        let applied = self.node.raft.raft_log.applied;
        if applied_index > applied {
            return Err(CoreError::CompactBeyondApplied {
                index: applied_index,
                applied,
            });
        }
        let Some(at) = self
            .conf_history
            .iter()
            .rposition(|(index, _)| *index <= applied_index)
        else {
            return Err(CoreError::MembershipUnknown {
                index: applied_index,
                known_from: self.conf_history.first().map_or(0, |(index, _)| *index),
            });
        };
        let conf_state = self.conf_history[at].1.clone();
        let store = self.node.mut_store();
        store.compact(applied_index, &conf_state, state_machine)?;
        store.sync()?;
        // Older memberships can never be needed again: no later snapshot predates this one.
        self.conf_history.drain(..at);
        Ok(())
    }

    /// This member's view of the group.
    pub fn status(&self) -> Status {
        let raft = &self.node.raft;
        let conf = raft.prs().conf().to_conf_state();
        let sorted = |ids: &[u64]| {
            let mut ids = ids.to_vec();
            ids.sort_unstable();
            ids
        };
        Status {
            id: raft.id,
            term: raft.term,
            role: raft.state.into(),
            leader_id: known(raft.leader_id),
            commit: raft.raft_log.committed,
            applied: raft.raft_log.applied,
            last_index: raft.raft_log.last_index(),
            voters: sorted(&conf.voters),
            voters_outgoing: sorted(&conf.voters_outgoing),
            learners: sorted(&conf.learners),
            progress: self.progress(),
        }
    }

    /// Each member's matched index, by id, when this member leads.
    fn progress(&self) -> Vec<(u64, u64)> {
        if !self.is_leader() {
            return Vec::new();
        }
        let mut progress: Vec<(u64, u64)> = self
            .node
            .raft
            .prs()
            .iter()
            .map(|(id, progress)| (*id, progress.matched))
            .collect();
        progress.sort_unstable();
        progress
    }

    fn run_cycle(&mut self) -> Result<Effects, CoreError> {
        let mut ready = self.node.ready();
        let mut effects = Effects {
            number: ready.number(),
            messages_first: ready.take_messages(),
            ..Effects::default()
        };
        // The canary's shell applies what it appends, before it is even persisted.
        let appended = self
            .canaries
            .apply_unpersisted_entries
            .then(|| ready.entries().clone());
        effects.synced = self.persist(&ready)?;
        effects.messages_after_persist = ready.take_persisted_messages();
        effects.read_states = answers(ready.take_read_states());
        if !ready.snapshot().is_empty() {
            let snapshot = ready.snapshot().clone();
            self.conf_history = vec![(snapshot.get_metadata().index, conf_of(&snapshot))];
            effects.snapshot = Some(snapshot);
        }
        let mut committed = ready.take_committed_entries();
        let mut light = self.node.advance_append(ready);
        if light.commit_index().is_some() {
            let hard_state = self.node.raft.hard_state();
            self.node.mut_store().set_hard_state(&hard_state)?;
        }
        effects.messages_after_persist.extend(light.take_messages());
        committed.extend(light.take_committed_entries());
        effects.conf_state = self.apply_conf_changes(&committed)?;
        if let Some(conf_state) = &effects.conf_state {
            self.step_down_if_removed(conf_state);
        }
        if effects.conf_state.is_some() {
            // The new membership must be durable before the state machine (which may record
            // its applied index durably) is handed the entry: after a restart raft-rs does
            // not replay entries at or below the applied index, so an unsynced membership
            // would be lost for good. Conf changes are rare; the extra sync is cheap.
            self.node.mut_store().sync()?;
        }
        self.node.advance_apply();
        effects.committed_entries = appended.unwrap_or(committed);
        effects.role_change = self.role_change();
        self.after_input();
        Ok(effects)
    }

    /// Writes the Ready's snapshot, entries and hard state, then syncs once if raft-rs needs
    /// durability before the persisted messages go out. Returns whether it synced.
    fn persist(&mut self, ready: &raft::Ready) -> Result<bool, CoreError> {
        let store = self.node.mut_store();
        if !ready.snapshot().is_empty() {
            store.apply_snapshot(ready.snapshot())?;
        }
        if !ready.entries().is_empty() {
            store.append(ready.entries())?;
        }
        if let Some(hard_state) = ready.hs() {
            store.set_hard_state(hard_state)?;
        }
        // must_sync is false when only the commit index changed: it may reach disk later.
        if ready.must_sync() && !self.canaries.ack_before_sync {
            store.sync()?;
            return Ok(true);
        }
        Ok(false)
    }

    /// Applies the configuration changes among `committed` to the group and the store.
    fn apply_conf_changes(&mut self, committed: &[Entry]) -> Result<Option<ConfState>, CoreError> {
        let mut latest = None;
        for entry in committed {
            let applied = match entry.get_entry_type() {
                EntryType::EntryNormal => continue,
                EntryType::EntryConfChange => {
                    let change: ConfChange = decode(entry)?;
                    self.node.apply_conf_change(&change)
                }
                EntryType::EntryConfChangeV2 => {
                    let change: ConfChangeV2 = decode(entry)?;
                    self.node.apply_conf_change(&change)
                }
            };
            match applied {
                Ok(conf_state) => {
                    self.node.mut_store().set_conf_state(&conf_state)?;
                    self.conf_history.push((entry.index, conf_state.clone()));
                    latest = Some(conf_state);
                }
                Err(e) if entry.index <= self.replayed_up_to => {
                    // Replayed after a restart, and already part of the stored membership.
                    tracing::debug!(index = entry.index, error = %e, "conf change already applied");
                }
                Err(e) => {
                    return Err(CoreError::ConfChangeFailed {
                        index: entry.index,
                        reason: e.to_string(),
                    })
                }
            }
        }
        Ok(latest)
    }

    /// A leader that applied its own removal steps down. raft-rs leaves it leading (an
    /// untested branch of its `post_conf_change`), and its next commit panics looking up its
    /// own progress. Our shells never propose removing the leader, but a follower whose
    /// removal is pending can win an election and commit that removal itself.
    fn step_down_if_removed(&mut self, conf_state: &ConfState) {
        let id = self.node.raft.id;
        let member = [
            &conf_state.voters,
            &conf_state.learners,
            &conf_state.voters_outgoing,
            &conf_state.learners_next,
        ]
        .iter()
        .any(|ids| ids.contains(&id));
        if !member && self.node.raft.state == StateRole::Leader {
            let term = self.node.raft.term;
            tracing::warn!(
                id,
                term,
                "this leader applied its own removal: stepping down"
            );
            self.node.raft.become_follower(term, raft::INVALID_ID);
        }
    }

    fn role_change(&mut self) -> Option<RoleChange> {
        let now = role_of(&self.node);
        (now != self.reported).then(|| {
            self.reported = now;
            now
        })
    }

    /// raft-rs redraws the election timeout from `thread_rng` in `Raft::reset`, which every
    /// `become_follower` / `become_candidate` / `become_leader` calls (and `new`, through
    /// `become_follower`). `reset` also zeroes `election_elapsed`, and no input advances it
    /// after a reset within the same call (ticks count before they fire an election), so
    /// "`election_elapsed == 0` after an input" catches every reset. It also fires when a
    /// follower merely hears from its leader: redrawing then is harmless (the timer restarts
    /// anyway) and just as deterministic.
    fn after_input(&mut self) {
        if self.node.raft.election_elapsed == 0 {
            self.redraw_election_timeout();
        }
    }

    fn redraw_election_timeout(&mut self) {
        let timeout = self
            .rng
            .gen_range(self.election_tick..2 * self.election_tick);
        self.node.raft.set_randomized_election_timeout(timeout);
    }

    fn check_usable(&self) -> Result<(), CoreError> {
        match &self.failed {
            Some(reason) => Err(CoreError::Failed(reason.clone())),
            None => Ok(()),
        }
    }

    fn check_leader(&self) -> Result<(), CoreError> {
        self.check_usable()?;
        if self.is_leader() {
            return Ok(());
        }
        Err(CoreError::NotLeader {
            leader_hint: known(self.node.raft.leader_id),
        })
    }

    fn proposed(&self, result: raft::Result<()>) -> Result<Proposed, CoreError> {
        match result {
            Ok(()) => Ok(Proposed {
                index: self.node.raft.raft_log.last_index(),
                term: self.node.raft.term,
            }),
            Err(raft::Error::ProposalDropped) => Err(CoreError::ProposalDropped),
            Err(e) => Err(CoreError::Raft(e)),
        }
    }
}

/// The index the stored membership belongs to after a restart: the last configuration
/// change among the committed entries the state machine has not applied yet (the store
/// records a membership as soon as its change is applied to the group, which can be ahead
/// of the state machine's applied index), or 0 when there is none.
fn restart_conf_index<S: LogStore>(node: &RawNode<S>) -> Result<u64, CoreError> {
    let log = &node.raft.raft_log;
    if log.committed <= log.applied {
        return Ok(0);
    }
    let entries = node.store().entries(
        log.applied + 1,
        log.committed + 1,
        None,
        raft::GetEntriesContext::empty(false),
    )?;
    Ok(entries
        .iter()
        .rev()
        .find(|entry| entry.get_entry_type() != EntryType::EntryNormal)
        .map_or(0, |entry| entry.index))
}

/// Validates (and where safe repairs) the restart point before raft-rs asserts on it, and
/// returns the applied index raft-rs must start from. A state machine behind the stored
/// snapshot (it does not count raft's own entries, or it restarts empty) starts at the
/// snapshot's index: the caller restores the stored snapshot into it
/// (`RaftGroup::new` does).
fn check_restart_point<S: LogStore>(
    config: &RaftConfig,
    store: &mut S,
    hard_state: &HardState,
) -> Result<u64, CoreError> {
    if config.applied == 0 {
        // raft-rs starts right after the stored snapshot by itself.
        return Ok(0);
    }
    let snapshot_index = store.first_index()?.saturating_sub(1);
    let last_index = store.last_index()?;
    if config.applied > last_index {
        return Err(CoreError::Config(format!(
            "applied index {} beyond the stored log's last index {last_index}",
            config.applied
        )));
    }
    let applied = config.applied.max(snapshot_index);
    if applied > hard_state.commit {
        // The commit index is written unsynced, so it can lag what the state machine
        // applied; anything applied was committed, so raising it is safe (raft-rs would
        // otherwise refuse an applied index above the commit index).
        let raised = HardState {
            commit: applied,
            ..hard_state.clone()
        };
        store.set_hard_state(&raised)?;
        store.sync()?;
    }
    Ok(applied)
}

/// Mixes the node id into the seed so members sharing a seed draw different timeouts
/// (identical draws would make every election a split vote).
fn mix_seed(seed: u64, id: u64) -> u64 {
    seed ^ id.wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

fn known(id: u64) -> Option<u64> {
    (id != raft::INVALID_ID).then_some(id)
}

fn role_of<S: Storage>(node: &RawNode<S>) -> RoleChange {
    RoleChange {
        term: node.raft.term,
        role: node.raft.state.into(),
        leader_id: known(node.raft.leader_id),
    }
}

fn conf_of(snapshot: &Snapshot) -> ConfState {
    snapshot.get_metadata().get_conf_state().clone()
}

fn answers(states: Vec<ReadState>) -> Vec<ReadAnswer> {
    states
        .into_iter()
        .filter_map(|state| {
            // Every context is an id this crate encoded; anything else is not ours to answer.
            let id: [u8; 8] = state.request_ctx.as_slice().try_into().ok()?;
            Some(ReadAnswer {
                request_id: u64::from_be_bytes(id),
                index: state.index,
            })
        })
        .collect()
}

fn decode<M: protobuf::Message>(entry: &Entry) -> Result<M, CoreError> {
    M::parse_from_bytes(&entry.data).map_err(|e| CoreError::ConfChangeFailed {
        index: entry.index,
        reason: format!("undecodable: {e}"),
    })
}

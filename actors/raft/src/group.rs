//! [`RaftGroup`]: a [`RaftCore`] joined to its state machine, with client bookkeeping. This
//! is everything a raft group does besides moving bytes and keeping time, so the actor shell
//! and the simulator share it: the shell sends the messages it returns and answers the
//! completions; the simulator does the same over its simulated network.
//!
//! The rule it enforces: a client is answered only when its entry is committed **and
//! applied**. A proposal is identified by the (index, term) the leader appended it at; when
//! the entry applied at that index has another term, the proposal was overwritten by a later
//! leader and its client learns it was dropped (it never took effect).

use std::collections::BTreeMap;

use raft::eraftpb::{ConfChangeV2, Entry, EntryType, Message};

use crate::core::{CoreError, Effects, Proposed, RaftCore, RoleChange};
use crate::store::LogStore;

/// The replicated state machine a group applies committed entries to.
pub trait StateMachine {
    /// Applies the entry at `index` (every replica calls this with the same entries in the
    /// same order, so it must be deterministic) and returns the answer for its proposer.
    fn apply(&mut self, index: u64, data: &[u8]) -> Vec<u8>;

    /// Applies consecutive entries (`(index, data)`, in log order, each as [`Self::apply`]
    /// would) and returns one answer per entry. A state machine overrides this to apply
    /// them together (one storage transaction for many entries); the answers and the state
    /// must be exactly what applying them one by one gives, since each replica's batches
    /// are cut differently.
    fn apply_batch(&mut self, entries: &[(u64, &[u8])]) -> Vec<Vec<u8>> {
        entries
            .iter()
            .map(|(index, data)| self.apply(*index, data))
            .collect()
    }

    /// The state machine's bytes, for a snapshot at the last applied index.
    fn snapshot(&self) -> Vec<u8>;

    /// Replaces the state machine with a snapshot's bytes.
    fn restore(&mut self, data: &[u8]);

    /// Why the state machine stopped (a storage failure, a snapshot it could not take or
    /// restore), if it did. A stopped machine's answers and snapshots mean nothing: the group
    /// stops with it instead of applying further entries or compacting the log.
    fn failure(&self) -> Option<String> {
        None
    }

    /// Called once at the end of every [`RaftGroup::drain`] that applied entries or restored
    /// a snapshot, before the clients are answered: the place to publish what the applied
    /// entries changed in one go (one read view per drain, not per entry).
    fn drained(&mut self) {}

    /// Makes every applied entry durable in the state machine's own storage. Called before
    /// a compaction, which releases the log entries that could otherwise replay them; a
    /// failure must show in [`StateMachine::failure`], which then refuses the compaction.
    fn persist(&mut self) {}

    /// A [`Self::persist`] whose slow part (the fsyncs) runs off the member's thread: the
    /// cheap part (noting what to make durable) runs now, the returned job makes it durable
    /// while the member goes on applying. For the periodic persist, whose stall would
    /// otherwise hold up every write of the group. `None`, the default, has the caller
    /// persist at once.
    fn persist_in_background(&mut self) -> Option<PersistJob> {
        None
    }

    /// Why no snapshot can be taken now, if so (part of the state is unavailable on this
    /// replica): compaction is refused and the log kept, rather than snapshotting a part.
    fn snapshot_blocked(&self) -> Option<String> {
        None
    }

    /// The membership the replicated state asks for (see [`MembershipTarget`]); the leader's
    /// shell drives the group's configuration towards it with configuration changes.
    fn membership_target(&self) -> MembershipTarget {
        MembershipTarget::default()
    }

    /// A snapshot of the state at the applied index whose bytes can be produced off the
    /// member's thread (from a read view that later applies do not change), so a big state
    /// does not stall the member; `None`, the default, has [`Self::snapshot`] taken at once.
    fn snapshot_builder(&self) -> Option<SnapshotBuilder> {
        None
    }

    /// Why this replica must not lead, if so (part of its state is unavailable here, so as
    /// leader it could not answer the writes it commits): a leader whose machine says so
    /// hands leadership to another voter. `None`, the default, is fit.
    fn unfit_to_lead(&self) -> Option<String> {
        None
    }
}

/// Produces a snapshot's bytes, or says why it could not (see
/// [`StateMachine::snapshot_builder`]).
pub type SnapshotBuilder = Box<dyn FnOnce() -> Result<Vec<u8>, String> + Send>;

/// Makes noted state durable off the member's thread, or says why it could not (see
/// [`StateMachine::persist_in_background`]).
pub type PersistJob = Box<dyn FnOnce() -> Result<(), String> + Send>;

/// A compaction under way (see [`RaftGroup::begin_compaction`]): build the bytes anywhere,
/// then hand them to [`RaftGroup::finish_compaction`] with `index`.
pub struct CompactionJob {
    /// The applied index the snapshot is taken at.
    pub index: u64,
    /// Produces the snapshot's bytes.
    pub build: SnapshotBuilder,
}

/// A membership the replicated state asks for: `voters` must be voters, `removed` must not be
/// members at all; ids in neither keep whatever role they have (so the voters a group was
/// bootstrapped with need not be named).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MembershipTarget {
    /// Ids that must be voters.
    pub voters: std::collections::BTreeSet<u64>,
    /// Ids that must not be members.
    pub removed: std::collections::BTreeSet<u64>,
}

/// What happened to a proposal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Completion {
    /// Committed and applied; the state machine's answer.
    Applied {
        /// The proposal.
        ticket: Proposed,
        /// What [`StateMachine::apply`] returned.
        output: Vec<u8>,
    },
    /// Another entry was committed at its index: it never took effect.
    Dropped {
        /// The proposal.
        ticket: Proposed,
    },
    /// A snapshot from the leader covered its index: it may or may not have taken effect
    /// (the snapshot does not say which entries it holds). The client must read back.
    Unknown {
        /// The proposal.
        ticket: Proposed,
    },
}

/// Everything one [`RaftGroup::drain`] produced for the shell.
#[derive(Debug, Default)]
pub struct Outputs {
    /// Messages to send, in order (the core has already persisted what must precede them).
    pub messages: Vec<Message>,
    /// Proposals that finished.
    pub completions: Vec<Completion>,
    /// Read requests that may now be served from the state machine (leadership confirmed
    /// and the state machine has applied at least the read's index).
    pub reads: Vec<u64>,
    /// The latest role/term/leader change, if any.
    pub role_change: Option<RoleChange>,
    /// Entries applied by this drain.
    pub applied_entries: u64,
    /// Messages this drain produced (those handed to a `send` included).
    pub messages_sent: u64,
}

/// A raft group member: consensus core, state machine and the clients waiting on them.
pub struct RaftGroup<S: LogStore, M: StateMachine> {
    core: RaftCore<S>,
    machine: M,
    applied: u64,
    /// Proposals waiting for their index to be applied: index → term.
    waiting: BTreeMap<u64, u64>,
    /// Reads whose leadership was confirmed, waiting for the state machine: id → index.
    confirmed_reads: BTreeMap<u64, u64>,
    /// Answers given before their entry committed (the `answer_on_append` canary only).
    premature: Vec<Completion>,
    /// Hand-offs asked for by an unfit leader (see [`StateMachine::unfit_to_lead`]): picks
    /// the next voter in turn, so a voter that cannot take over is not asked forever.
    handoffs: usize,
}

impl<S: LogStore, M: StateMachine> RaftGroup<S, M> {
    /// A member over `core` whose state machine has applied up to `applied` (the core's
    /// `RaftConfig::applied`). A state machine behind the store's snapshot (it restarted
    /// empty, or it does not count raft's own entries) is first restored from that snapshot:
    /// raft-rs only hands out the entries after it.
    pub fn new(core: RaftCore<S>, mut machine: M, applied: u64) -> Self {
        let mut applied = applied;
        if let Ok(snapshot) = core.store().snapshot(applied + 1, 0) {
            let index = snapshot.get_metadata().index;
            if index > applied {
                machine.restore(snapshot.get_data());
                applied = index;
            }
        }
        RaftGroup {
            core,
            machine,
            applied,
            waiting: BTreeMap::new(),
            confirmed_reads: BTreeMap::new(),
            premature: Vec::new(),
            handoffs: 0,
        }
    }

    /// The consensus core.
    pub fn core(&self) -> &RaftCore<S> {
        &self.core
    }

    /// The consensus core, for inputs this type does not wrap (`campaign`,
    /// `transfer_leader`, membership changes).
    pub fn core_mut(&mut self) -> &mut RaftCore<S> {
        &mut self.core
    }

    /// The state machine.
    pub fn machine(&self) -> &M {
        &self.machine
    }

    /// The last applied index.
    pub fn applied(&self) -> u64 {
        self.applied
    }

    /// A logical clock tick.
    pub fn tick(&mut self) -> Result<(), CoreError> {
        self.core.tick()
    }

    /// A message from a peer.
    pub fn step(&mut self, message: Message) -> Result<(), CoreError> {
        self.core.step(message)
    }

    /// Proposes `data`; the ticket completes once the entry is applied (or dropped).
    pub fn propose(&mut self, data: Vec<u8>) -> Result<Proposed, CoreError> {
        let ticket = self.core.propose(data, Vec::new())?;
        if self.core.canaries().answer_on_append {
            // The bug: the client hears "applied" for an entry no quorum holds yet.
            self.premature.push(Completion::Applied {
                ticket,
                output: Vec::new(),
            });
            return Ok(ticket);
        }
        self.waiting.insert(ticket.index, ticket.term);
        Ok(ticket)
    }

    /// Proposes a membership change (see [`RaftCore::propose_conf_change`]). It completes no
    /// client: the caller watches the configuration (a control loop), not a ticket.
    pub fn propose_conf_change(&mut self, change: ConfChangeV2) -> Result<Proposed, CoreError> {
        self.core.propose_conf_change(change, Vec::new())
    }

    /// Asks to confirm leadership for read `request_id` (linearizable reads).
    pub fn read_index(&mut self, request_id: u64) -> Result<(), CoreError> {
        self.core.read_index(request_id)
    }

    /// Runs Ready cycles until none is pending; applies committed entries; returns what the
    /// shell must do.
    pub fn drain(&mut self) -> Result<Outputs, CoreError> {
        self.drain_at_most(usize::MAX)
    }

    /// Like [`Self::drain`], but stops after `cycles_max` Ready cycles (at least one), so a
    /// shell can let ticks and heartbeats through between cycles of a long catch-up; check
    /// [`Self::has_ready`] for what is left.
    pub fn drain_at_most(&mut self, cycles_max: usize) -> Result<Outputs, CoreError> {
        let mut sent = Vec::new();
        let mut outputs = self.drain_sending(cycles_max, &mut |messages| sent.extend(messages))?;
        outputs.messages = sent;
        Ok(outputs)
    }

    /// Like [`Self::drain_at_most`], but hands each cycle's messages to `send` as soon as
    /// the cycle has persisted what must precede them, before the cycle's committed entries
    /// are applied: replication (a leader's appends, a follower's acknowledgements) then
    /// never waits for the state machine, which would put every apply on the commit path
    /// of the next entries. `Outputs::messages` stays empty.
    pub fn drain_sending(
        &mut self,
        cycles_max: usize,
        send: &mut dyn FnMut(Vec<Message>),
    ) -> Result<Outputs, CoreError> {
        let mut outputs = Outputs {
            completions: std::mem::take(&mut self.premature),
            ..Outputs::default()
        };
        self.check_machine()?;
        let applied_before = self.applied;
        let mut cycles = 0;
        while cycles < cycles_max.max(1) {
            let Some(effects) = self.core.ready()? else {
                break;
            };
            cycles += 1;
            self.absorb(effects, &mut outputs, send);
            self.check_machine()?;
        }
        if self.applied != applied_before {
            self.machine.drained();
            self.check_machine()?;
        }
        self.hand_off_if_unfit()?;
        self.serve_reads(&mut outputs);
        Ok(outputs)
    }

    /// Whether a Ready cycle is pending (more to persist, send or apply).
    pub fn has_ready(&self) -> bool {
        self.core.has_ready()
    }

    /// Makes every applied entry durable in the state machine (a clean stop does this, so
    /// the next start replays nothing).
    pub fn persist(&mut self) -> Result<(), CoreError> {
        self.machine.persist();
        self.check_machine()
    }

    /// Starts a persist whose fsyncs run off the member's thread (see
    /// [`StateMachine::persist_in_background`]); `None` when the machine cannot, and the
    /// caller then calls [`Self::persist`].
    pub fn begin_persist(&mut self) -> Result<Option<PersistJob>, CoreError> {
        self.check_machine()?;
        let job = self.machine.persist_in_background();
        // Noting what to persist may itself have stopped the machine.
        self.check_machine()?;
        Ok(job)
    }

    /// Takes a snapshot of the state machine at the applied index and compacts the log
    /// (never from a stopped machine: its snapshot would replace the log with nothing).
    pub fn compact(&mut self) -> Result<(), CoreError> {
        let job = self.begin_compaction()?;
        let data = (job.build)().map_err(CoreError::Failed)?;
        self.finish_compaction(job.index, data)
    }

    /// The first half of [`Self::compact`]: makes the state machine durable through the
    /// applied index and starts its snapshot there. The log may grow and the machine apply
    /// further while the job builds the bytes.
    pub fn begin_compaction(&mut self) -> Result<CompactionJob, CoreError> {
        self.check_machine()?;
        if let Some(reason) = self.machine.snapshot_blocked() {
            return Err(CoreError::SnapshotBlocked(reason));
        }
        // The log entries up to the snapshot go: the machine must not need them to recover.
        self.machine.persist();
        self.check_machine()?;
        let index = self.applied;
        let build = match self.machine.snapshot_builder() {
            Some(build) => build,
            None => {
                let data = self.machine.snapshot();
                Box::new(move || Ok(data))
            }
        };
        self.check_machine()?;
        Ok(CompactionJob { index, build })
    }

    /// The second half of [`Self::compact`]: records the snapshot taken at `index` and drops
    /// the log up to it, unless the log already starts after `index` (a snapshot installed
    /// from the leader meanwhile is newer).
    pub fn finish_compaction(&mut self, index: u64, data: Vec<u8>) -> Result<(), CoreError> {
        self.check_machine()?;
        let first = raft::Storage::first_index(self.core.store())
            .map_err(|error| CoreError::Failed(error.to_string()))?;
        if index < first {
            return Ok(());
        }
        self.core.compact(index, data)
    }

    /// A leader whose machine is unfit to lead asks the next voter in turn to take over
    /// (unless a hand-off is already under way); its messages go out with the next cycle.
    fn hand_off_if_unfit(&mut self) -> Result<(), CoreError> {
        if !self.core.is_leader() || self.core.is_transferring() {
            return Ok(());
        }
        let Some(reason) = self.machine.unfit_to_lead() else {
            return Ok(());
        };
        let status = self.core.status();
        let others: Vec<u64> = status
            .voters
            .iter()
            .copied()
            .filter(|id| *id != status.id)
            .collect();
        if others.is_empty() {
            return Ok(());
        }
        let to = others[self.handoffs % others.len()];
        self.handoffs = self.handoffs.wrapping_add(1);
        tracing::warn!(to, %reason, "this replica is unfit to lead: handing leadership over");
        self.core.transfer_leader(to)
    }

    fn check_machine(&self) -> Result<(), CoreError> {
        match self.machine.failure() {
            Some(reason) => Err(CoreError::Failed(format!(
                "the state machine stopped: {reason}"
            ))),
            None => Ok(()),
        }
    }

    fn absorb(
        &mut self,
        effects: Effects,
        outputs: &mut Outputs,
        send: &mut dyn FnMut(Vec<Message>),
    ) {
        let Effects {
            messages_first,
            messages_after_persist,
            snapshot,
            committed_entries,
            read_states,
            role_change,
            ..
        } = effects;
        let mut messages = messages_first;
        messages.extend(messages_after_persist);
        if !messages.is_empty() {
            outputs.messages_sent += messages.len() as u64;
            send(messages);
        }
        if let Some(snapshot) = snapshot {
            let index = snapshot.get_metadata().index;
            if index > self.applied {
                self.machine.restore(snapshot.get_data());
                self.applied = index;
                self.settle_covered(index, outputs);
            }
        }
        self.apply_entries(&committed_entries, outputs);
        for answer in read_states {
            self.confirmed_reads.insert(answer.request_id, answer.index);
        }
        if role_change.is_some() {
            outputs.role_change = role_change;
        }
    }

    /// Applies committed entries in order: the state machine gets the entries that carry
    /// data in one [`StateMachine::apply_batch`] call (so it can share work across them).
    fn apply_entries(&mut self, entries: &[Entry], outputs: &mut Outputs) {
        // Entries at or below `applied` are already in the state machine (replayed after a
        // restart or a snapshot).
        let fresh: Vec<&Entry> = entries
            .iter()
            .filter(|entry| entry.index > self.applied)
            .collect();
        let batch: Vec<(u64, &[u8])> = fresh
            .iter()
            .filter(|entry| carries_data(entry))
            .map(|entry| (entry.index, entry.data.as_ref()))
            .collect();
        let mut answers = self.machine.apply_batch(&batch).into_iter();
        assert_eq!(
            answers.len(),
            batch.len(),
            "invariant: the state machine answers every entry it applies"
        );
        for entry in fresh {
            let output = match entry.get_entry_type() {
                EntryType::EntryNormal if carries_data(entry) => answers.next(),
                // A proposal of empty data completes with an empty answer.
                EntryType::EntryNormal => Some(Vec::new()),
                // Raft's own entries never reach the state machine and match no proposal.
                _ => None,
            };
            self.settle_applied(entry, output, outputs);
        }
    }

    /// Advances the applied index past `entry` and completes the proposals it settles.
    fn settle_applied(&mut self, entry: &Entry, output: Option<Vec<u8>>, outputs: &mut Outputs) {
        let index = entry.index;
        assert_eq!(
            index,
            self.applied + 1,
            "invariant: committed entries are applied in order without gaps"
        );
        self.applied = index;
        outputs.applied_entries += 1;
        self.settle_up_to(index, (entry.term, output), outputs);
    }

    /// Completes every proposal a restored snapshot covers: whether each took effect is
    /// unknown.
    fn settle_covered(&mut self, index: u64, outputs: &mut Outputs) {
        let covered: Vec<(u64, u64)> = self
            .waiting
            .range(..=index)
            .map(|(index, term)| (*index, *term))
            .collect();
        for (waiting_index, term) in covered {
            self.waiting.remove(&waiting_index);
            outputs.completions.push(Completion::Unknown {
                ticket: Proposed {
                    index: waiting_index,
                    term,
                },
            });
        }
    }

    /// Completes every proposal at or below `index`: the one at `index` with this entry's
    /// term is applied; any other was overwritten.
    fn settle_up_to(&mut self, index: u64, applied: (u64, Option<Vec<u8>>), outputs: &mut Outputs) {
        let settled: Vec<(u64, u64)> = self
            .waiting
            .range(..=index)
            .map(|(index, term)| (*index, *term))
            .collect();
        for (waiting_index, term) in settled {
            self.waiting.remove(&waiting_index);
            let ticket = Proposed {
                index: waiting_index,
                term,
            };
            let completion = match &applied {
                (applied_term, Some(output)) if waiting_index == index && *applied_term == term => {
                    Completion::Applied {
                        ticket,
                        output: output.clone(),
                    }
                }
                _ => Completion::Dropped { ticket },
            };
            outputs.completions.push(completion);
        }
    }

    fn serve_reads(&mut self, outputs: &mut Outputs) {
        let applied = self.applied;
        let ready: Vec<u64> = self
            .confirmed_reads
            .iter()
            .filter(|(_, index)| **index <= applied)
            .map(|(id, _)| *id)
            .collect();
        for id in ready {
            self.confirmed_reads.remove(&id);
            outputs.reads.push(id);
        }
    }
}

/// Whether the state machine applies `entry`: a normal entry with data (raft's own empty
/// entries, a new leader's first, and configuration changes never reach it).
fn carries_data(entry: &Entry) -> bool {
    entry.get_entry_type() == EntryType::EntryNormal && !entry.data.is_empty()
}

/// A reference state machine for tests and the simulator: it appends every payload and
/// answers with how many it holds. Its snapshot is the payloads joined by `\n`, so payloads
/// must not contain that byte.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Journal {
    /// The applied payloads, in order.
    pub items: Vec<Vec<u8>>,
}

impl StateMachine for Journal {
    fn apply(&mut self, _index: u64, data: &[u8]) -> Vec<u8> {
        self.items.push(data.to_vec());
        (self.items.len() as u64).to_be_bytes().to_vec()
    }

    fn snapshot(&self) -> Vec<u8> {
        self.items.join(&b'\n')
    }

    fn restore(&mut self, data: &[u8]) {
        self.items = if data.is_empty() {
            Vec::new()
        } else {
            data.split(|byte| *byte == b'\n')
                .map(<[u8]>::to_vec)
                .collect()
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::RaftConfig;
    use crate::logging::raft_logger;
    use crate::memory_store::MemoryStore;
    use raft::eraftpb::ConfState;

    fn group(id: u64, voters: &[u64]) -> RaftGroup<MemoryStore, Journal> {
        let conf_state = ConfState {
            voters: voters.to_vec(),
            ..ConfState::default()
        };
        let store = MemoryStore::new_with_conf_state(conf_state);
        let core = RaftCore::new(&RaftConfig::new(id, 7), store, &raft_logger("test")).unwrap();
        RaftGroup::new(core, Journal::default(), 0)
    }

    /// Delivers every message until the cluster is quiet; returns the completions.
    fn settle(groups: &mut [RaftGroup<MemoryStore, Journal>]) -> Vec<(u64, Completion)> {
        let mut completions = Vec::new();
        for _ in 0..100 {
            let mut inflight = Vec::new();
            for group in groups.iter_mut() {
                let outputs = group.drain().unwrap();
                inflight.extend(outputs.messages);
                let id = group.core().id();
                completions.extend(outputs.completions.into_iter().map(|c| (id, c)));
            }
            if inflight.is_empty() {
                return completions;
            }
            for message in inflight {
                let to = message.to as usize - 1;
                let _ = groups[to].step(message);
            }
        }
        panic!("the cluster did not settle");
    }

    #[test]
    fn a_proposal_completes_once_applied_on_its_leader_and_everyone_applies_it() {
        let mut groups: Vec<_> = (1..=3).map(|id| group(id, &[1, 2, 3])).collect();
        groups[0].core_mut().campaign().unwrap();
        settle(&mut groups);
        assert!(groups[0].core().is_leader());
        let ticket = groups[0].propose(b"first".to_vec()).unwrap();
        let completions = settle(&mut groups);
        assert_eq!(
            completions,
            vec![(
                1,
                Completion::Applied {
                    ticket,
                    output: 1u64.to_be_bytes().to_vec()
                }
            )]
        );
        for group in &groups {
            assert_eq!(group.machine().items, vec![b"first".to_vec()]);
        }
    }

    #[test]
    fn a_compaction_finished_after_more_entries_keeps_them_and_an_older_one_changes_nothing() {
        let mut groups: Vec<_> = (1..=3).map(|id| group(id, &[1, 2, 3])).collect();
        groups[0].core_mut().campaign().unwrap();
        settle(&mut groups);
        for item in [b"a", b"b"] {
            groups[0].propose(item.to_vec()).unwrap();
        }
        settle(&mut groups);
        let early = groups[0].begin_compaction().unwrap();
        let later = groups[0].begin_compaction().unwrap();
        assert_eq!(early.index, later.index);
        // Entries applied while the snapshot builds stay in the log.
        groups[0].propose(b"c".to_vec()).unwrap();
        settle(&mut groups);
        let index = early.index;
        groups[0]
            .finish_compaction(index, (early.build)().unwrap())
            .unwrap();
        let first = raft::Storage::first_index(groups[0].core().store()).unwrap();
        assert_eq!(first, index + 1);
        let snapshot = raft::Storage::snapshot(groups[0].core().store(), 0, 0).unwrap();
        assert_eq!(snapshot.get_data(), b"a\nb");
        assert!(groups[0].applied() > index);
        // A newer compaction, then an older one finishing late: the newer snapshot stays.
        let newer = groups[0].begin_compaction().unwrap();
        let newer_index = newer.index;
        groups[0]
            .finish_compaction(newer_index, (newer.build)().unwrap())
            .unwrap();
        groups[0]
            .finish_compaction(later.index, (later.build)().unwrap())
            .unwrap();
        let snapshot = raft::Storage::snapshot(groups[0].core().store(), 0, 0).unwrap();
        assert_eq!(snapshot.get_metadata().index, newer_index);
        assert_eq!(snapshot.get_data(), b"a\nb\nc");
    }

    #[test]
    fn an_overwritten_proposal_is_reported_dropped() {
        let mut groups: Vec<_> = (1..=3).map(|id| group(id, &[1, 2, 3])).collect();
        groups[0].core_mut().campaign().unwrap();
        settle(&mut groups);
        // Node 1 appends an entry but its messages are lost (partitioned).
        let lost = groups[0].propose(b"lost".to_vec()).unwrap();
        let _ = groups[0].drain().unwrap();
        // Nodes 2 and 3, cut off from node 1, time out and elect one of them, which commits
        // its own entry at the same index.
        let mut outputs = Vec::new();
        for _ in 0..60 {
            let mut inflight = Vec::new();
            for group in groups.iter_mut().skip(1) {
                group.tick().unwrap();
                inflight.extend(group.drain().unwrap().messages);
            }
            for message in inflight {
                if message.to != 1 {
                    let _ = groups[message.to as usize - 1].step(message);
                }
            }
        }
        let leader = (1..3)
            .find(|index| groups[*index].core().is_leader())
            .expect("nodes 2 and 3 elect a leader");
        let kept = groups[leader].propose(b"kept".to_vec()).unwrap();
        // The new leader's first entry (its term's empty entry) overwrites the lost one.
        assert!(kept.index > lost.index);
        outputs.extend(settle(&mut groups));
        // Heal: heartbeats reach node 1, which learns the new term and its lost entry's fate.
        for _ in 0..20 {
            for group in groups.iter_mut() {
                group.tick().unwrap();
            }
            outputs.extend(settle(&mut groups));
        }
        assert!(
            outputs.contains(&(1, Completion::Dropped { ticket: lost })),
            "{outputs:?}"
        );
        let leader_id = leader as u64 + 1;
        assert!(outputs.iter().any(|(id, completion)| *id == leader_id
            && matches!(completion, Completion::Applied { ticket, .. } if *ticket == kept)));
        for group in &groups {
            assert!(!group.machine().items.contains(&b"lost".to_vec()));
        }
    }

    #[test]
    fn a_confirmed_read_is_served_once_applied() {
        let mut groups: Vec<_> = (1..=3).map(|id| group(id, &[1, 2, 3])).collect();
        groups[0].core_mut().campaign().unwrap();
        settle(&mut groups);
        groups[0].propose(b"x".to_vec()).unwrap();
        settle(&mut groups);
        groups[0].read_index(42).unwrap();
        let first = groups[0].drain().unwrap();
        assert!(
            first.reads.is_empty(),
            "no answer before the heartbeat round"
        );
        for message in first.messages {
            let _ = groups[message.to as usize - 1].step(message);
        }
        let mut served = Vec::new();
        for _ in 0..10 {
            let mut inflight = Vec::new();
            for group in groups.iter_mut() {
                let outputs = group.drain().unwrap();
                served.extend(outputs.reads);
                inflight.extend(outputs.messages);
            }
            for message in inflight {
                let _ = groups[message.to as usize - 1].step(message);
            }
        }
        assert_eq!(served, vec![42]);
    }

    /// A machine that says it is unfit to lead while `unfit` is set.
    #[derive(Default)]
    struct Unfit {
        journal: Journal,
        unfit: bool,
    }

    impl StateMachine for Unfit {
        fn apply(&mut self, index: u64, data: &[u8]) -> Vec<u8> {
            self.journal.apply(index, data)
        }
        fn snapshot(&self) -> Vec<u8> {
            self.journal.snapshot()
        }
        fn restore(&mut self, data: &[u8]) {
            self.journal.restore(data);
        }
        fn unfit_to_lead(&self) -> Option<String> {
            self.unfit
                .then(|| "a vault is quarantined here".to_string())
        }
    }

    #[test]
    fn an_unfit_leader_hands_leadership_to_another_voter() {
        let conf_state = ConfState {
            voters: vec![1, 2, 3],
            ..ConfState::default()
        };
        let mut groups: Vec<RaftGroup<MemoryStore, Unfit>> = (1..=3)
            .map(|id| {
                let store = MemoryStore::new_with_conf_state(conf_state.clone());
                let core =
                    RaftCore::new(&RaftConfig::new(id, 7), store, &raft_logger("test")).unwrap();
                let machine = Unfit {
                    unfit: id == 1,
                    ..Unfit::default()
                };
                RaftGroup::new(core, machine, 0)
            })
            .collect();
        groups[0].core_mut().campaign().unwrap();
        // Deliver until quiet: node 1 wins, finds itself unfit and hands over.
        for _ in 0..100 {
            let mut inflight = Vec::new();
            for group in groups.iter_mut() {
                inflight.extend(group.drain().unwrap().messages);
            }
            if inflight.is_empty() {
                break;
            }
            for message in inflight {
                let _ = groups[message.to as usize - 1].step(message);
            }
        }
        assert!(!groups[0].core().is_leader());
        let leaders: Vec<u64> = groups
            .iter()
            .filter(|group| group.core().is_leader())
            .map(|group| group.core().id())
            .collect();
        assert_eq!(leaders.len(), 1, "{leaders:?}");
        assert_ne!(leaders[0], 1);
    }

    /// A machine that stops after its first entry.
    #[derive(Default)]
    struct Fragile {
        journal: Journal,
        stopped: bool,
    }

    impl StateMachine for Fragile {
        fn apply(&mut self, index: u64, data: &[u8]) -> Vec<u8> {
            self.stopped = true;
            self.journal.apply(index, data)
        }
        fn snapshot(&self) -> Vec<u8> {
            Vec::new()
        }
        fn restore(&mut self, data: &[u8]) {
            self.journal.restore(data);
        }
        fn failure(&self) -> Option<String> {
            self.stopped.then(|| "disk gone".to_string())
        }
    }

    #[test]
    fn a_stopped_state_machine_stops_the_group_and_is_never_compacted() {
        let conf_state = ConfState {
            voters: vec![1],
            ..ConfState::default()
        };
        let store = MemoryStore::new_with_conf_state(conf_state);
        let core = RaftCore::new(&RaftConfig::new(1, 7), store, &raft_logger("test")).unwrap();
        let mut group = RaftGroup::new(core, Fragile::default(), 0);
        group.core_mut().campaign().unwrap();
        group.drain().unwrap();
        group.propose(b"x".to_vec()).unwrap();
        let error = group.drain().unwrap_err();
        assert!(error.to_string().contains("disk gone"), "{error}");
        assert!(group.compact().is_err());
        assert!(group.drain().is_err(), "it stays stopped");
    }

    /// Records the order of sends and applies, shared with the `send` of a drain.
    struct Ordered {
        journal: Journal,
        events: std::sync::Arc<std::sync::Mutex<Vec<&'static str>>>,
    }

    impl StateMachine for Ordered {
        fn apply(&mut self, index: u64, data: &[u8]) -> Vec<u8> {
            self.events.lock().unwrap().push("apply");
            self.journal.apply(index, data)
        }
        fn snapshot(&self) -> Vec<u8> {
            self.journal.snapshot()
        }
        fn restore(&mut self, data: &[u8]) {
            self.journal.restore(data);
        }
    }

    /// A follower acknowledges new entries before it applies the committed ones in the same
    /// cycle, so an apply never delays the commit of what comes next.
    #[test]
    fn a_cycle_hands_its_messages_over_before_applying() {
        let mut groups: Vec<_> = (1..=3).map(|id| group(id, &[1, 2, 3])).collect();
        groups[0].core_mut().campaign().unwrap();
        settle(&mut groups);
        let events = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let store = groups[1].core().store().clone();
        let core = RaftCore::new(&RaftConfig::new(2, 7), store, &raft_logger("test")).unwrap();
        let applied = groups[1].applied();
        let mut follower = RaftGroup::new(
            core,
            Ordered {
                journal: groups[1].machine().clone(),
                events: events.clone(),
            },
            applied,
        );
        // "a" commits on the leader; the append that tells the follower so carries "b".
        groups[0].propose(b"a".to_vec()).unwrap();
        let appends = groups[0].drain().unwrap().messages;
        let mut acks = Vec::new();
        for message in appends {
            if message.to == 2 {
                follower.step(message).unwrap();
            }
        }
        follower
            .drain_sending(usize::MAX, &mut |messages| acks.extend(messages))
            .unwrap();
        for message in acks {
            groups[0].step(message).unwrap();
        }
        groups[0].propose(b"b".to_vec()).unwrap();
        for message in groups[0].drain().unwrap().messages {
            if message.to == 2 {
                follower.step(message).unwrap();
            }
        }
        events.lock().unwrap().clear();
        let log = events.clone();
        let outputs = follower
            .drain_sending(usize::MAX, &mut |_| log.lock().unwrap().push("send"))
            .unwrap();
        assert!(outputs.messages.is_empty() && outputs.messages_sent > 0);
        assert_eq!(outputs.applied_entries, 1, "\"a\" is applied in this drain");
        let events = events.lock().unwrap().clone();
        assert_eq!(events.first(), Some(&"send"), "{events:?}");
        assert!(events.contains(&"apply"), "{events:?}");
    }
}

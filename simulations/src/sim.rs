//! The simulation: nodes, network, clients and faults driven by one seeded scheduler, with
//! the checkers run after every event.
//!
//! - [`clients`]: invoking and completing the clients' operations.
//! - [`faults`]: injecting and healing faults, crashes and restarts, liveness.
//! - [`membership`]: replacing nodes through configuration changes.
//! - [`summary`]: what a run reports.

mod clients;
mod faults;
mod membership;
mod summary;

use std::collections::{BTreeMap, BTreeSet};

use inferadb_raft::core::{Canaries, CoreError};
use inferadb_raft::transport::{PeerEnvelope, Transport};
use raft::eraftpb::{Entry, MessageType};
use raft::{GetEntriesContext, SnapshotStatus, Storage};

use crate::checker::{Checker, Violation};
use crate::config::{inject, SimConfig};
use crate::network::NetworkModel;
use crate::node::{SimGroup, SimNode, GROUP};
use crate::scheduler::{Millis, Scheduler};
use crate::workload::Workload;

pub use summary::Summary;

/// Simulated milliseconds per raft tick on a node whose timer does not drift.
const TICK_MS: Millis = 10;
/// An operation is given up after this long (its outcome is then unknown).
const OP_TIMEOUT: Millis = 500;
/// Liveness is checked only if the run lasts this long after the faults heal.
const LIVENESS_WINDOW: Millis = 1000;
/// Clients invoke nothing in the run's last this-many ms, so that followers can learn the
/// commit index of the last acknowledged write before the liveness check.
const QUIESCE: Millis = 300;
/// About how often a node makes its state machine durable (and compacts its log when due).
const PERSIST_MS: Millis = 500;
/// How often the stored logs are compared (log matching).
const AUDIT_MS: Millis = 250;
/// A leader reports a snapshot it sent as failed when its receiver has not caught up this
/// long after (so it sends another instead of waiting forever), as the node's shell does.
const SNAPSHOT_DELIVERY_MS: Millis = 1000;

/// Something that happens at a simulated instant.
#[derive(Debug)]
enum Event {
    Tick(u64),
    Deliver(Vec<u8>),
    Client(u64),
    Expire(usize),
    Fault,
    Restart(u64),
    Heal,
    Audit,
    Persist(u64),
    Membership,
}

/// A simulated cluster.
pub struct Simulation {
    config: SimConfig,
    sched: Scheduler<Event>,
    nodes: BTreeMap<u64, SimNode>,
    net: NetworkModel,
    checker: Checker,
    workload: Workload,
    faults: BTreeMap<&'static str, u64>,
    heal_at: Millis,
    violation: Option<Violation>,
    next_read_id: u64,
    /// node → its tick interval (differs from [`TICK_MS`] under timer drift).
    tick_ms: BTreeMap<u64, Millis>,
    /// node → its clock's offset from true time, in ms (clock skew).
    skew_ms: BTreeMap<u64, i64>,
    /// node → the instant its pause ends.
    paused_until: BTreeMap<u64, Millis>,
    /// node → its disk's sync latency: it stalls that long after each drain that wrote its
    /// log, and everything it sends is delayed as much (what follows a sync waits for it).
    slow_disk_ms: BTreeMap<u64, Millis>,
    /// (leader, follower) → when the leader sent it a snapshot.
    snapshots_sent: BTreeMap<(u64, u64), Millis>,
    /// node → the applied index at its last compaction (or start).
    compacted_at: BTreeMap<u64, u64>,
    /// Snapshots delivered to a follower.
    snapshots_installed: u64,
    /// Nodes that stopped on detected storage corruption and cannot restart.
    stopped: BTreeMap<u64, String>,
    /// Whether every node ticks in lockstep.
    lockstep: bool,
    /// The bugs every node (a joining one too) runs with.
    canaries: Canaries,
    /// The id the next joining node gets.
    next_node_id: u64,
    /// Nodes created to join, not yet in the configuration.
    joining: BTreeSet<u64>,
    /// Nodes removed from the group and shut down for good.
    retired: BTreeSet<u64>,
    /// Membership changes proposed.
    membership_changes: u64,
    /// Nodes whose own configuration has named them (so a configuration that no longer
    /// does means they were removed).
    members_seen: BTreeSet<u64>,
}

/// Runs one simulation to its end (or its first violation).
pub fn run(config: SimConfig) -> Result<Summary, String> {
    let mut sim = Simulation::new(config)?;
    sim.start();
    while sim.violation.is_none() {
        let Some(event) = sim.sched.next_before(sim.config.ticks) else {
            break;
        };
        let step = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            sim.handle(event);
            sim.route();
        }));
        if let Err(panic) = step {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_string()))
                .unwrap_or_default();
            sim.fail(Violation {
                invariant: "no_panic",
                detail: format!("a node panicked: {message}"),
            });
        }
    }
    sim.sched.advance_to(sim.config.ticks);
    sim.finish();
    Ok(sim.summary())
}

impl Simulation {
    fn new(config: SimConfig) -> Result<Self, String> {
        if !(1..=7).contains(&config.nodes) {
            return Err(format!("--nodes must be 1 to 7, not {}", config.nodes));
        }
        let mut canaries = Canaries::default();
        if let Some(bug) = &config.bug {
            inject(&mut canaries, bug)?;
        }
        let voters: Vec<u64> = (1..=config.nodes).collect();
        let mut nodes = BTreeMap::new();
        for &id in &voters {
            nodes.insert(id, SimNode::create(id, &voters, config.seed, canaries)?);
            // Started by `start`, so that a node that cannot start is a violation.
        }
        let net = NetworkModel::with_latency(latency_ms(config.seed));
        let mut sched = Scheduler::new(config.seed);
        if config.full_trace {
            sched.keep_full_trace();
        }
        Ok(Simulation {
            heal_at: config.ticks * 2 / 3,
            sched,
            workload: Workload::new(config.workload.clients),
            config,
            nodes,
            net,
            checker: Checker::default(),
            faults: BTreeMap::new(),
            violation: None,
            next_read_id: 0,
            tick_ms: BTreeMap::new(),
            skew_ms: BTreeMap::new(),
            paused_until: BTreeMap::new(),
            slow_disk_ms: BTreeMap::new(),
            snapshots_sent: BTreeMap::new(),
            compacted_at: BTreeMap::new(),
            snapshots_installed: 0,
            stopped: BTreeMap::new(),
            lockstep: false,
            canaries,
            next_node_id: 0,
            joining: BTreeSet::new(),
            retired: BTreeSet::new(),
            membership_changes: 0,
            members_seen: BTreeSet::new(),
        })
    }

    fn start(&mut self) {
        self.next_node_id = self.config.nodes + 1;
        // Half of the seeds tick every node in lockstep (as a shared tick source would):
        // timers that expire on the same tick make concurrent candidacies more frequent.
        self.lockstep = self.sched.chance(50);
        let ids: Vec<u64> = self.nodes.keys().copied().collect();
        for id in ids {
            self.restart(id);
            self.schedule_node(id);
        }
        for client in 1..=self.config.workload.clients {
            let offset = self.sched.between(100, 200);
            self.sched.after(offset, Event::Client(client));
        }
        if !self.config.faults.names().is_empty() {
            self.sched.after(300, Event::Fault);
        }
        if self.config.workload.membership {
            let offset = self.sched.between(400, 800);
            self.sched.after(offset, Event::Membership);
        }
        self.sched.after(self.heal_at, Event::Heal);
        self.sched.after(AUDIT_MS, Event::Audit);
    }

    /// Starts node `id`'s timers: its ticks and its periodic persistence.
    fn schedule_node(&mut self, id: u64) {
        let offset = self.sched.between(PERSIST_MS / 2, PERSIST_MS * 3 / 2);
        self.sched.after(offset, Event::Persist(id));
        let offset = if self.lockstep {
            0
        } else {
            self.sched.between(0, TICK_MS - 1)
        };
        self.sched.after(offset, Event::Tick(id));
    }

    /// A random node that is still part of the cluster (not retired).
    fn random_node(&mut self) -> u64 {
        let ids: Vec<u64> = self
            .nodes
            .keys()
            .copied()
            .filter(|id| !self.retired.contains(id))
            .collect();
        let at = self.sched.between(0, ids.len().saturating_sub(1) as u64);
        ids.get(usize::try_from(at).unwrap_or(0))
            .copied()
            .unwrap_or(1)
    }

    /// When the node `id` is paused, the instant its pause ends.
    fn paused(&self, id: u64) -> Option<Millis> {
        self.paused_until
            .get(&id)
            .copied()
            .filter(|until| *until > self.sched.now())
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::Tick(id) => {
                let interval = self.tick_ms.get(&id).copied().unwrap_or(TICK_MS);
                match self.paused(id) {
                    Some(until) => self.sched.after(until - self.sched.now(), Event::Tick(id)),
                    None => {
                        self.tick(id);
                        self.sched.after(interval, Event::Tick(id));
                    }
                }
            }
            Event::Deliver(bytes) => self.deliver(bytes),
            Event::Client(client) => {
                self.client(client);
                let next = self.sched.between(10, 40);
                self.sched.after(next, Event::Client(client));
            }
            Event::Expire(op) => self.workload.expire(op, self.sched.now()),
            Event::Fault => {
                self.inject_fault();
                if self.sched.now() < self.heal_at {
                    let next = self.sched.between(100, 400);
                    self.sched.after(next, Event::Fault);
                }
            }
            Event::Restart(id) => self.restart(id),
            Event::Heal => self.heal(),
            Event::Persist(id) => {
                if self.paused(id).is_none() {
                    self.persist(id);
                }
                let next = self.sched.between(PERSIST_MS / 2, PERSIST_MS * 3 / 2);
                self.sched.after(next, Event::Persist(id));
            }
            Event::Audit => {
                self.audit_logs();
                self.sched.after(AUDIT_MS, Event::Audit);
            }
            Event::Membership => {
                self.membership_step();
                let next = self.sched.between(300, 800);
                self.sched.after(next, Event::Membership);
            }
        }
    }

    fn fail(&mut self, violation: Violation) {
        self.sched.record(format!(
            "VIOLATION {}: {}",
            violation.invariant, violation.detail
        ));
        if self.violation.is_none() {
            self.violation = Some(violation);
        }
    }

    fn tick(&mut self, id: u64) {
        let Some(group) = self.nodes.get_mut(&id).and_then(SimNode::group_mut) else {
            return;
        };
        if let Err(error) = group.tick() {
            self.sched.record(format!("n{id} tick failed: {error}"));
        }
        self.expire_snapshots(id);
        self.drain(id);
    }

    fn deliver(&mut self, bytes: Vec<u8>) {
        let message = match PeerEnvelope::decode(&bytes).and_then(|e| e.open()) {
            Ok(message) => message,
            Err(error) => {
                self.sched.record(format!("undecodable envelope: {error}"));
                return;
            }
        };
        let (from, to) = (message.from, message.to);
        if !self.net.connected(from, to) {
            return;
        }
        if let Some(until) = self.paused(to) {
            // A paused process reads its socket when it resumes.
            self.sched
                .after(until - self.sched.now(), Event::Deliver(bytes));
            return;
        }
        let Some(group) = self.nodes.get_mut(&to).and_then(SimNode::group_mut) else {
            return;
        };
        let kind = message.get_msg_type();
        self.sched.record(format!(
            "n{from}->n{to} {kind:?} term {} index {} log_term {} entries {} commit {}",
            message.term,
            message.index,
            message.log_term,
            message.entries.len(),
            message.commit
        ));
        let stepped = group.step(message);
        if let Err(error) = &stepped {
            self.sched.record(format!("n{to} step failed: {error}"));
        }
        self.drain(to);
        if kind == MessageType::MsgSnapshot && stepped.is_ok() {
            self.snapshot_delivered(from, to);
        }
    }

    /// Tells the leader its snapshot reached the follower (as a transport that saw the send
    /// succeed does). Without it a follower that was already caught up when the snapshot
    /// arrived acknowledges nothing new, and raft-rs keeps it paused in the snapshot state
    /// until the delivery deadline.
    fn snapshot_delivered(&mut self, leader: u64, to: u64) {
        self.snapshots_installed += 1;
        self.snapshots_sent.remove(&(leader, to));
        let Some(group) = self.nodes.get_mut(&leader).and_then(SimNode::group_mut) else {
            return;
        };
        group.core_mut().report_snapshot(to, SnapshotStatus::Finish);
        self.drain(leader);
    }

    /// Sends every node's outgoing envelopes into the network model.
    fn route(&mut self) {
        let mut envelopes = Vec::new();
        for node in self.nodes.values() {
            envelopes.extend(node.transport().take());
        }
        for envelope in envelopes {
            if !self.net.connected(envelope.from, envelope.to)
                || self.sched.chance(self.net.drop_percent)
            {
                continue;
            }
            let copies = if self.sched.chance(self.net.dup_percent) {
                2
            } else {
                1
            };
            let slow = self.slow_disk_ms.get(&envelope.from).copied().unwrap_or(0);
            for _ in 0..copies {
                let mut delay = self.sched.between(self.net.delay_min, self.net.delay_max);
                if self.sched.chance(self.net.reorder_percent) {
                    delay += self.sched.between(0, self.net.reorder_extra);
                }
                self.sched
                    .after(delay + slow, Event::Deliver(envelope.encode()));
            }
        }
    }

    /// Runs the node's Ready cycles, sends its messages, checks what it applied and
    /// answers its clients.
    fn drain(&mut self, id: u64) {
        let Some(node) = self.nodes.get_mut(&id) else {
            return;
        };
        let operations_before = node.log_operations();
        let Some(group) = node.group_mut() else {
            return;
        };
        let drained = group.drain();
        self.stall_on_slow_disk(id, operations_before);
        let Some(node) = self.nodes.get_mut(&id) else {
            return;
        };
        let outputs = match drained {
            Ok(outputs) => outputs,
            Err(error) => {
                self.sched.record(format!("n{id} stopped: {error}"));
                self.crash(id);
                return;
            }
        };
        let now = self.sched.now();
        for message in &outputs.messages {
            if message.get_msg_type() == MessageType::MsgSnapshot {
                self.snapshots_sent.insert((id, message.to), now);
            }
            match PeerEnvelope::seal(GROUP, message) {
                Ok(envelope) => node.transport().send(envelope),
                Err(error) => self.sched.record(format!("n{id} unsendable: {error}")),
            }
        }
        self.check_node(id);
        for completion in outputs.completions {
            self.complete(id, completion);
        }
        self.serve_reads(id, &outputs.reads);
        self.stop_if_removed(id);
    }

    /// A node with a slow disk that wrote its log in this drain is blocked in its sync for
    /// the disk's latency: it does nothing else until then.
    fn stall_on_slow_disk(&mut self, id: u64, operations_before: u64) {
        let Some(&latency) = self.slow_disk_ms.get(&id) else {
            return;
        };
        let wrote = self
            .nodes
            .get(&id)
            .is_some_and(|n| n.log_operations() > operations_before);
        if wrote {
            let until = self.sched.now() + latency;
            let paused = self.paused_until.entry(id).or_insert(until);
            *paused = (*paused).max(until);
        }
    }

    /// Election safety and state-machine safety for one node.
    fn check_node(&mut self, id: u64) {
        let Some(group) = self.nodes.get(&id).and_then(SimNode::group) else {
            return;
        };
        let mut result = self.checker.observe(id, group.machine().roots());
        if result.is_ok() && group.core().is_leader() {
            let term = group.core().raw_node().raft.term;
            result = self.checker.leader(id, term);
            if result.is_ok() && self.checker.needs_completeness(term) {
                let first = group.core().store().first_index().unwrap_or(0);
                let entries = stored_entries(group);
                result = self.checker.leader_completeness(id, term, first, &entries);
            }
        }
        if let Err(violation) = result {
            self.fail(violation);
        }
    }

    /// Reports the snapshots node `id` sent long ago to followers still waiting for one.
    fn expire_snapshots(&mut self, id: u64) {
        let deadline = self.sched.now().saturating_sub(SNAPSHOT_DELIVERY_MS);
        let overdue: Vec<u64> = self
            .snapshots_sent
            .iter()
            .filter(|((leader, _), sent)| *leader == id && **sent < deadline)
            .map(|((_, to), _)| *to)
            .collect();
        let Some(group) = self.nodes.get_mut(&id).and_then(SimNode::group_mut) else {
            return;
        };
        for to in overdue {
            self.snapshots_sent.remove(&(id, to));
            let waiting = group
                .core()
                .raw_node()
                .raft
                .prs()
                .get(to)
                .is_some_and(|p| p.state == raft::ProgressState::Snapshot);
            if waiting {
                group
                    .core_mut()
                    .report_snapshot(to, SnapshotStatus::Failure);
            }
        }
    }

    /// Makes the node's state machine durable, compacting its log when enough entries were
    /// applied since the last compaction.
    fn persist(&mut self, id: u64) {
        let Some(group) = self.nodes.get_mut(&id).and_then(SimNode::group_mut) else {
            return;
        };
        let applied = group.applied();
        let since = self.compacted_at.get(&id).copied().unwrap_or(0);
        let compact = self.config.compact_after > 0 && applied >= since + self.config.compact_after;
        let result = if compact {
            group.compact()
        } else {
            group.persist()
        };
        match result {
            Ok(()) if compact => {
                self.compacted_at.insert(id, applied);
                self.sched.record(format!("n{id} compacted at {applied}"));
            }
            Ok(()) => self.sched.record(format!("n{id} persisted")),
            Err(CoreError::SnapshotBlocked(reason)) => {
                // No snapshot now (a quarantined vault); the machine is still made durable.
                self.sched
                    .record(format!("n{id} compaction blocked: {reason}"));
                if let Err(error) = group.persist() {
                    self.sched
                        .record(format!("n{id} stopped: persist failed: {error}"));
                    self.crash(id);
                }
            }
            Err(error) => {
                // A storage failure: the node stops (and restarts from its disks).
                self.sched
                    .record(format!("n{id} stopped: persist failed: {error}"));
                self.crash(id);
            }
        }
    }

    /// Log matching between every pair of running nodes' stored logs.
    fn audit_logs(&mut self) {
        let logs: Vec<(u64, Vec<Entry>)> = self
            .nodes
            .values()
            .filter_map(|n| n.group().map(|g| (n.id(), stored_entries(g))))
            .collect();
        for (i, a) in logs.iter().enumerate() {
            for b in &logs[i + 1..] {
                let result = self
                    .checker
                    .log_matching((a.0, a.1.as_slice()), (b.0, b.1.as_slice()));
                if let Err(violation) = result {
                    self.fail(violation);
                    return;
                }
            }
        }
    }

    /// The end-of-run checks: liveness, then linearizability of the history.
    fn finish(&mut self) {
        if self.violation.is_none() {
            self.check_liveness();
        }
        if self.violation.is_none() {
            if let Err(violation) = self.checker.linearizability(&self.workload.history) {
                self.fail(violation);
            }
        }
    }
}

/// The seed's network latency profile: the largest one-way delay of a healthy link, in ms
/// (a LAN-like 5 ms, or 20 or 40 ms, a wide-area link against the 10 ms tick: election
/// rounds then overlap, and split votes become common).
fn latency_ms(seed: u64) -> Millis {
    [5, 20, 40][usize::try_from(seed % 3).unwrap_or(0)]
}

/// Every entry a running node's log store holds (after its snapshot).
fn stored_entries(group: &SimGroup) -> Vec<Entry> {
    let store = group.core().store();
    let (Ok(first), Ok(last)) = (store.first_index(), store.last_index()) else {
        return Vec::new();
    };
    store
        .entries(first, last + 1, None, GetEntriesContext::empty(false))
        .unwrap_or_default()
}

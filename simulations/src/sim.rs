//! The simulation: nodes, network, clients and faults driven by one seeded scheduler, with
//! the checkers run after every event.

use std::collections::BTreeMap;

use inferadb_raft::core::Canaries;
use inferadb_raft::group::Completion;
use inferadb_raft::transport::{PeerEnvelope, Transport};

use crate::checker::{Checker, Violation};
use crate::config::{inject, SimConfig};
use crate::network::NetworkModel;
use crate::node::{SimGroup, SimNode, GROUP};
use crate::scheduler::{Millis, Scheduler};
use crate::shard::write_command;
use crate::workload::{Outcome, Workload};
use raft::eraftpb::Entry;
use raft::{GetEntriesContext, Storage};

/// Simulated milliseconds per raft tick.
const TICK_MS: Millis = 10;
/// Simulated clients.
const CLIENTS: u64 = 3;
/// A client gives up on a write after this long (its outcome is then unknown).
const OP_TIMEOUT: Millis = 500;
/// Liveness is checked only if the run lasts this long after the faults heal.
const LIVENESS_WINDOW: Millis = 1000;
/// Clients invoke nothing in the run's last this-many ms, so that followers can learn the
/// commit index of the last acknowledged write before the liveness check.
const QUIESCE: Millis = 300;
/// About how often a node makes its state machine durable (the shell does so before each
/// compaction; without it the vaults' unsynced writes pile up in memory).
const PERSIST_MS: Millis = 500;
/// How often the stored logs are compared (log matching).
const AUDIT_MS: Millis = 250;

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
}

/// What a run did.
#[derive(Debug, Clone)]
pub struct Summary {
    /// The run's parameters.
    pub config: SimConfig,
    /// Trace records (events handled, messages delivered, writes applied).
    pub events: u64,
    /// Faults injected, by kind.
    pub faults: BTreeMap<&'static str, u64>,
    /// Terms in which a leader was elected.
    pub elections: usize,
    /// Writes acknowledged to clients.
    pub commits: usize,
    /// Writes invoked.
    pub writes: usize,
    /// Writes that failed (never took effect) and whose outcome is unknown.
    pub failed_unknown: (usize, usize),
    /// Individual invariant checks performed.
    pub checks: u64,
    /// Simulated milliseconds run.
    pub simulated_ms: Millis,
    /// The trace's hash: the same run has the same hash.
    pub trace_hash: String,
    /// The first broken invariant, if any.
    pub violation: Option<Violation>,
    /// The last trace records.
    pub recent: Vec<String>,
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
    if sim.violation.is_none() {
        sim.check_liveness();
    }
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
        Ok(Simulation {
            heal_at: config.ticks * 2 / 3,
            sched: Scheduler::new(config.seed),
            config,
            nodes,
            net: NetworkModel::healthy(),
            checker: Checker::default(),
            workload: Workload::new(CLIENTS),
            faults: BTreeMap::new(),
            violation: None,
        })
    }

    fn start(&mut self) {
        let ids: Vec<u64> = self.nodes.keys().copied().collect();
        for id in ids {
            self.restart(id);
            let offset = self.sched.between(PERSIST_MS / 2, PERSIST_MS * 3 / 2);
            self.sched.after(offset, Event::Persist(id));
            let offset = self.sched.between(0, TICK_MS - 1);
            self.sched.after(offset, Event::Tick(id));
        }
        for client in 1..=CLIENTS {
            let offset = self.sched.between(100, 200);
            self.sched.after(offset, Event::Client(client));
        }
        if !self.config.faults.names().is_empty() {
            self.sched.after(300, Event::Fault);
        }
        self.sched.after(self.heal_at, Event::Heal);
        self.sched.after(AUDIT_MS, Event::Audit);
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::Tick(id) => {
                self.tick(id);
                self.sched.after(TICK_MS, Event::Tick(id));
            }
            Event::Deliver(bytes) => self.deliver(&bytes),
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
                self.persist(id);
                let next = self.sched.between(PERSIST_MS / 2, PERSIST_MS * 3 / 2);
                self.sched.after(next, Event::Persist(id));
            }
            Event::Audit => {
                self.audit_logs();
                self.sched.after(AUDIT_MS, Event::Audit);
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
        self.drain(id);
    }

    fn deliver(&mut self, bytes: &[u8]) {
        let message = match PeerEnvelope::decode(bytes).and_then(|e| e.open()) {
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
        let Some(group) = self.nodes.get_mut(&to).and_then(SimNode::group_mut) else {
            return;
        };
        self.sched.record(format!(
            "n{from}->n{to} {:?} term {} index {} log_term {} entries {} commit {}",
            message.get_msg_type(),
            message.term,
            message.index,
            message.log_term,
            message.entries.len(),
            message.commit
        ));
        if let Err(error) = group.step(message) {
            self.sched.record(format!("n{to} step failed: {error}"));
        }
        self.drain(to);
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
            for _ in 0..copies {
                let mut delay = self.sched.between(self.net.delay_min, self.net.delay_max);
                if self.sched.chance(self.net.reorder_percent) {
                    delay += self.sched.between(0, self.net.reorder_extra);
                }
                self.sched.after(delay, Event::Deliver(envelope.encode()));
            }
        }
    }
}

impl Simulation {
    /// Runs the node's Ready cycles, sends its messages, checks what it applied and
    /// answers its clients.
    fn drain(&mut self, id: u64) {
        let Some(node) = self.nodes.get_mut(&id) else {
            return;
        };
        let Some(group) = node.group_mut() else {
            return;
        };
        let outputs = match group.drain() {
            Ok(outputs) => outputs,
            Err(error) => {
                self.sched.record(format!("n{id} failed: {error}"));
                self.crash(id);
                return;
            }
        };
        for message in &outputs.messages {
            match PeerEnvelope::seal(GROUP, message) {
                Ok(envelope) => node.transport().send(envelope),
                Err(error) => self.sched.record(format!("n{id} unsendable: {error}")),
            }
        }
        self.check_node(id);
        for completion in outputs.completions {
            self.complete(id, completion);
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
        }
        if let Err(violation) = result {
            self.fail(violation);
        }
    }

    fn complete(&mut self, id: u64, completion: Completion) {
        let now = self.sched.now();
        let (ticket, outcome) = match completion {
            Completion::Applied { ticket, output } => {
                let index = ticket.index;
                (ticket, Outcome::Ok { index, output })
            }
            Completion::Dropped { ticket } => (ticket, Outcome::Failed("overwritten".into())),
            Completion::Unknown { ticket } => (ticket, Outcome::Unknown("snapshot".into())),
        };
        let Some(op) = self.workload.take(id, ticket) else {
            return;
        };
        self.sched.record(format!("op{op} at n{id}: {outcome:?}"));
        let acked = matches!(outcome, Outcome::Ok { .. });
        let data = self.workload.complete(op, now, outcome);
        if acked {
            if let Err(violation) = self.checker.acknowledged(ticket.index, &data) {
                self.fail(violation);
            }
        }
    }

    fn client(&mut self, client: u64) {
        let Some(hint) = self.workload.idle(client) else {
            return;
        };
        if self.sched.now() + QUIESCE >= self.config.ticks {
            return;
        }
        let target = match hint {
            Some(node) => node,
            None => self.sched.between(1, self.config.nodes),
        };
        let now = self.sched.now();
        let relationship = self.workload.next_relationship(client);
        let data = match write_command(&relationship, now) {
            Ok(data) => data,
            Err(error) => {
                self.sched
                    .record(format!("client {client}: bad write: {error}"));
                return;
            }
        };
        let op = self.workload.invoke(client, now, data.clone());
        self.sched.after(OP_TIMEOUT, Event::Expire(op));
        let Some(group) = self.nodes.get_mut(&target).and_then(SimNode::group_mut) else {
            self.workload.hint(client, None);
            self.workload
                .complete(op, now, Outcome::Failed("node down".into()));
            return;
        };
        if !group.core().is_leader() {
            let leader = group.core().raw_node().raft.leader_id;
            self.workload.hint(client, (leader != 0).then_some(leader));
            self.workload
                .complete(op, now, Outcome::Failed("not leader".into()));
            return;
        }
        match group.propose(data) {
            Ok(ticket) => {
                self.sched
                    .record(format!("op{op} proposed at n{target} {ticket:?}"));
                self.workload.wait(op, target, ticket);
                self.drain(target);
            }
            Err(error) => {
                self.workload
                    .complete(op, now, Outcome::Failed(error.to_string()));
            }
        }
    }
}

impl Simulation {
    fn count_fault(&mut self, kind: &'static str) {
        *self.faults.entry(kind).or_default() += 1;
    }

    fn inject_fault(&mut self) {
        let kinds = self.config.faults.names();
        if kinds.is_empty() || self.sched.now() >= self.heal_at {
            return;
        }
        let pick = self.sched.between(0, kinds.len() as u64 - 1);
        let kind = kinds[usize::try_from(pick).unwrap_or(0)];
        match kind {
            "partition" => self.toggle_partition(),
            "drop" => {
                self.net.drop_percent = toggle(self.net.drop_percent, self.sched.between(5, 30));
            }
            "dup" => self.net.dup_percent = toggle(self.net.dup_percent, self.sched.between(5, 20)),
            "reorder" => {
                let percent = self.sched.between(10, 50);
                self.net.reorder_percent = toggle(self.net.reorder_percent, percent);
            }
            _ => self.crash_some_node(),
        }
        self.sched.record(format!(
            "fault {kind}: drop {}% dup {}% reorder {}% cut {:?}",
            self.net.drop_percent, self.net.dup_percent, self.net.reorder_percent, self.net.cut
        ));
        self.count_fault(kind);
    }

    /// Cuts a random minority-or-half off the rest, or heals the cut if there is one.
    fn toggle_partition(&mut self) {
        if !self.net.cut.is_empty() {
            self.net.cut.clear();
            return;
        }
        let mut ids: Vec<u64> = self.nodes.keys().copied().collect();
        let size = self.sched.between(1, (ids.len() as u64 / 2).max(1));
        let mut side = Vec::new();
        for _ in 0..size {
            let at = self.sched.between(0, ids.len() as u64 - 1);
            side.push(ids.remove(usize::try_from(at).unwrap_or(0)));
        }
        self.net.partition(&side, &ids);
    }

    fn crash_some_node(&mut self) {
        let up: Vec<u64> = self
            .nodes
            .iter()
            .filter(|(_, n)| n.is_up())
            .map(|(&id, _)| id)
            .collect();
        if up.is_empty() {
            return;
        }
        let at = self.sched.between(0, up.len() as u64 - 1);
        let id = up[usize::try_from(at).unwrap_or(0)];
        self.crash(id);
    }

    fn crash(&mut self, id: u64) {
        let Some(node) = self.nodes.get_mut(&id) else {
            return;
        };
        node.crash();
        self.sched.record(format!("n{id} crashed"));
        self.checker.restarted(id);
        self.workload.abandon(id, self.sched.now());
        let delay = self.sched.between(50, 600);
        self.sched.after(delay, Event::Restart(id));
    }

    fn restart(&mut self, id: u64) {
        let Some(node) = self.nodes.get_mut(&id) else {
            return;
        };
        if node.is_up() {
            return;
        }
        if let Err(error) = node.start() {
            self.fail(Violation {
                invariant: "recovery",
                detail: format!("node {id} does not restart: {error}"),
            });
            return;
        }
        self.sched.record(format!("n{id} restarted"));
        self.checker.restarted(id);
        self.drain(id);
    }

    /// The faults stop: links heal, the network behaves and every node restarts.
    fn heal(&mut self) {
        self.net.heal();
        self.sched.record("heal".into());
        let ids: Vec<u64> = self.nodes.keys().copied().collect();
        for id in ids {
            self.restart(id);
        }
    }

    /// After the faults heal: a leader leads, a write invoked since commits, and every
    /// node applied every acknowledged write.
    fn check_liveness(&mut self) {
        if self.config.ticks.saturating_sub(self.heal_at) < LIVENESS_WINDOW {
            return;
        }
        self.checker.checks += 1;
        let leaders = self.nodes.values().filter_map(SimNode::group);
        let has_leader = leaders.clone().any(|g| g.core().is_leader());
        let last_acked = self
            .checker
            .acked()
            .keys()
            .next_back()
            .copied()
            .unwrap_or(0);
        let behind: Vec<u64> = self
            .nodes
            .values()
            .filter(|n| n.group().is_none_or(|g| g.applied() < last_acked))
            .map(SimNode::id)
            .collect();
        let ok = self.workload.ok_since(self.heal_at);
        let detail = if !has_leader {
            format!(
                "no leader {} ms after the faults healed",
                self.config.ticks - self.heal_at
            )
        } else if ok == 0 {
            "no write committed after the faults healed".to_string()
        } else if !behind.is_empty() {
            format!("nodes {behind:?} have not applied acknowledged index {last_acked}")
        } else {
            return;
        };
        self.fail(Violation {
            invariant: "liveness",
            detail,
        });
    }

    fn summary(&self) -> Summary {
        let trace = self.sched.trace();
        Summary {
            config: self.config.clone(),
            events: trace.events(),
            faults: self.faults.clone(),
            elections: self.checker.elections(),
            commits: self.checker.acked().len(),
            writes: self.workload.history.len(),
            failed_unknown: self.workload.failed_unknown(),
            checks: self.checker.checks,
            simulated_ms: self.sched.now(),
            trace_hash: trace.hash(),
            violation: self.violation.clone(),
            recent: trace.recent().cloned().collect(),
        }
    }
}

impl Simulation {
    /// Makes the node's state machine durable (if it runs).
    fn persist(&mut self, id: u64) {
        let Some(group) = self.nodes.get_mut(&id).and_then(SimNode::group_mut) else {
            return;
        };
        if let Err(error) = group.persist() {
            self.sched.record(format!("n{id} persist failed: {error}"));
        } else {
            self.sched.record(format!("n{id} persisted"));
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

/// Off if on, else `on`.
fn toggle(current: u32, on: u64) -> u32 {
    if current > 0 {
        0
    } else {
        u32::try_from(on).unwrap_or(u32::MAX)
    }
}

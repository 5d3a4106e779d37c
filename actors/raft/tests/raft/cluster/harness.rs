//! A deterministic in-memory Raft cluster: `RaftCore`s over crashable memory stores, a
//! message queue delivered one message at a time in a seeded order (with partitions and
//! drops), a tick driver, a state machine per node, and the safety checker.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

use inferadb_raft::core::{Canaries, Effects, Proposed, RaftConfig, RaftCore, Role};
use inferadb_raft::logging::raft_logger;
use inferadb_raft::memory_store::MemoryStore;
use inferadb_raft::store::{LogError, LogStore};
use protobuf::Message as _;
use raft::eraftpb::{
    ConfChangeV2, ConfState, Entry, EntryType, HardState, Message, MessageType, Snapshot,
};
use raft::{GetEntriesContext, RaftState, SnapshotStatus, Storage};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// A store with a power-failure model: writes land in `live`; `sync` makes `durable` a copy
/// of `live`; a crash throws `live` away and restarts from `durable`. Handles share state.
#[derive(Clone)]
pub struct CrashStore(Rc<RefCell<Disk>>);

struct Disk {
    live: MemoryStore,
    durable: MemoryStore,
    syncs: u64,
}

impl CrashStore {
    fn new(store: MemoryStore) -> Self {
        let durable = store.fork();
        Self(Rc::new(RefCell::new(Disk {
            live: store,
            durable,
            syncs: 0,
        })))
    }

    /// Loses everything written since the last sync.
    fn crash(&self) {
        let mut disk = self.0.borrow_mut();
        disk.live = disk.durable.fork();
    }

    pub fn syncs(&self) -> u64 {
        self.0.borrow().syncs
    }

    pub fn entries(&self) -> Vec<Entry> {
        self.0.borrow().live.all_entries()
    }

    fn latest_snapshot(&self) -> Option<Snapshot> {
        self.0.borrow().live.latest_snapshot()
    }

    fn live(&self) -> MemoryStore {
        self.0.borrow().live.clone()
    }
}

impl Storage for CrashStore {
    fn initial_state(&self) -> raft::Result<RaftState> {
        self.live().initial_state()
    }
    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        self.live().entries(low, high, max_size, context)
    }
    fn term(&self, idx: u64) -> raft::Result<u64> {
        self.live().term(idx)
    }
    fn first_index(&self) -> raft::Result<u64> {
        self.live().first_index()
    }
    fn last_index(&self) -> raft::Result<u64> {
        self.live().last_index()
    }
    fn snapshot(&self, request_index: u64, to: u64) -> raft::Result<Snapshot> {
        self.live().snapshot(request_index, to)
    }
}

impl LogStore for CrashStore {
    fn append(&mut self, entries: &[Entry]) -> Result<(), LogError> {
        self.live().append(entries)
    }
    fn set_hard_state(&mut self, hard_state: &HardState) -> Result<(), LogError> {
        self.live().set_hard_state(hard_state)
    }
    fn set_conf_state(&mut self, conf_state: &ConfState) -> Result<(), LogError> {
        self.live().set_conf_state(conf_state)
    }
    fn apply_snapshot(&mut self, snapshot: &Snapshot) -> Result<(), LogError> {
        self.live().apply_snapshot(snapshot)
    }
    fn compact(&mut self, index: u64, cs: &ConfState, data: Vec<u8>) -> Result<(), LogError> {
        self.live().compact(index, cs, data)
    }
    fn sync(&mut self) -> Result<(), LogError> {
        let mut disk = self.0.borrow_mut();
        disk.live.sync()?;
        disk.durable = disk.live.fork();
        disk.syncs += 1;
        Ok(())
    }
}

/// A node's state machine: the payloads of the non-empty normal entries, in applied order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StateMachine {
    pub applied_index: u64,
    pub payloads: Vec<Vec<u8>>,
}

impl StateMachine {
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for p in &self.payloads {
            out.extend_from_slice(&(p.len() as u32).to_be_bytes());
            out.extend_from_slice(p);
        }
        out
    }

    fn decode(index: u64, mut bytes: &[u8]) -> Self {
        let mut payloads = Vec::new();
        while bytes.len() >= 4 {
            let len = u32::from_be_bytes(bytes[..4].try_into().unwrap()) as usize;
            payloads.push(bytes[4..4 + len].to_vec());
            bytes = &bytes[4 + len..];
        }
        Self {
            applied_index: index,
            payloads,
        }
    }
}

pub struct Node {
    pub core: Option<RaftCore<CrashStore>>,
    pub store: CrashStore,
    pub sm: StateMachine,
    pub snapshots_installed: u32,
    pub canaries: Canaries,
}

impl Node {
    pub fn core(&self) -> &RaftCore<CrashStore> {
        self.core.as_ref().expect("node is up")
    }
}

/// What every scenario checks, continuously.
#[derive(Default)]
pub struct Checker {
    /// term → the leader seen in it.
    leaders: BTreeMap<u64, u64>,
    /// index → (term, type, data) of every entry any node ever applied.
    applied: BTreeMap<u64, (u64, EntryType, Vec<u8>)>,
    /// (node, request) → the highest applied index anywhere when the read was asked.
    reads: BTreeMap<(u64, u64), u64>,
    /// (node, request, index) of every answered read.
    pub answered: Vec<(u64, u64, u64)>,
    pub violations: Vec<String>,
}

impl Checker {
    fn leader(&mut self, id: u64, term: u64) {
        let seen = *self.leaders.entry(term).or_insert(id);
        if seen != id {
            self.violations
                .push(format!("two leaders in term {term}: {seen} and {id}"));
        }
    }

    fn apply(&mut self, id: u64, sm: &mut StateMachine, entry: &Entry) {
        if entry.index != sm.applied_index + 1 {
            self.violations.push(format!(
                "node {id} applied index {} after {}",
                entry.index, sm.applied_index
            ));
        }
        let this = (entry.term, entry.get_entry_type(), entry.data.to_vec());
        match self.applied.get(&entry.index) {
            Some(seen) if *seen != this => self.violations.push(format!(
                "node {id} applied {} at index {} where {} was applied before",
                show(&this),
                entry.index,
                show(seen)
            )),
            Some(_) => {}
            None => {
                self.applied.insert(entry.index, this);
            }
        }
        sm.applied_index = entry.index;
        if entry.get_entry_type() == EntryType::EntryNormal && !entry.data.is_empty() {
            sm.payloads.push(entry.data.to_vec());
        }
    }

    fn restore(&mut self, id: u64, sm: &StateMachine) {
        let expected: Vec<Vec<u8>> = self
            .applied
            .range(..=sm.applied_index)
            .filter(|(_, (_, kind, data))| *kind == EntryType::EntryNormal && !data.is_empty())
            .map(|(_, (_, _, data))| data.clone())
            .collect();
        if expected != sm.payloads {
            self.violations.push(format!(
                "node {id} restored a snapshot at {} that differs from what was applied",
                sm.applied_index
            ));
        }
    }

    fn max_applied(&self) -> u64 {
        self.applied.keys().next_back().copied().unwrap_or(0)
    }
}

/// An applied entry for a violation message: term, type and payload as text.
fn show((term, kind, data): &(u64, EntryType, Vec<u8>)) -> String {
    format!("{kind:?}@{term} {:?}", String::from_utf8_lossy(data))
}

pub struct Cluster {
    pub nodes: BTreeMap<u64, Node>,
    queue: Vec<Message>,
    rng: SmallRng,
    blocked: BTreeSet<(u64, u64)>,
    /// Drop one message in this many (0: never).
    pub drop_one_in: u32,
    pub checker: Checker,
    trace: blake3::Hasher,
    seed: u64,
    logger: slog::Logger,
}

impl Cluster {
    /// `n` voters, all starting from the same bootstrap snapshot (index 1, term 1), so a
    /// node added later must catch up by snapshot.
    pub fn new(n: u64, seed: u64) -> Self {
        Self::with_canaries(n, seed, |_| Canaries::default())
    }

    pub fn with_canaries(n: u64, seed: u64, canaries: impl Fn(u64) -> Canaries) -> Self {
        let mut cluster = Cluster {
            nodes: BTreeMap::new(),
            queue: Vec::new(),
            rng: SmallRng::seed_from_u64(seed),
            blocked: BTreeSet::new(),
            drop_one_in: 0,
            checker: Checker::default(),
            trace: blake3::Hasher::new(),
            seed,
            logger: raft_logger("test"),
        };
        let mut bootstrap = Snapshot::default();
        bootstrap.mut_metadata().index = 1;
        bootstrap.mut_metadata().term = 1;
        bootstrap
            .mut_metadata()
            .set_conf_state(ConfState::from(((1..=n).collect::<Vec<_>>(), vec![])));
        for id in 1..=n {
            let mut store = MemoryStore::new();
            store.apply_snapshot(&bootstrap).unwrap();
            cluster.insert(id, store, canaries(id));
        }
        cluster
    }

    /// Adds a node with an empty store (not yet a member: add it with a conf change).
    pub fn add_node(&mut self, id: u64) {
        self.insert(id, MemoryStore::new(), Canaries::default());
    }

    fn insert(&mut self, id: u64, store: MemoryStore, canaries: Canaries) {
        let node = Node {
            core: None,
            store: CrashStore::new(store),
            sm: StateMachine::default(),
            snapshots_installed: 0,
            canaries,
        };
        self.nodes.insert(id, node);
        self.start(id);
    }

    /// (Re)starts a node from its store: the state machine comes back from the newest
    /// snapshot and the committed entries after it are replayed.
    fn start(&mut self, id: u64) {
        let node = self.nodes.get_mut(&id).unwrap();
        node.sm = match node.store.latest_snapshot() {
            Some(s) => StateMachine::decode(s.get_metadata().index, &s.data),
            None => StateMachine::default(),
        };
        let mut config = RaftConfig::new(id, self.seed);
        config.applied = node.sm.applied_index;
        config.canaries = node.canaries;
        let core = RaftCore::new(&config, node.store.clone(), &self.logger).unwrap();
        node.core = Some(core);
        self.drain(id);
    }

    pub fn node(&self, id: u64) -> &Node {
        &self.nodes[&id]
    }

    pub fn core(&mut self, id: u64) -> &mut RaftCore<CrashStore> {
        self.nodes
            .get_mut(&id)
            .unwrap()
            .core
            .as_mut()
            .expect("node is up")
    }

    pub fn is_up(&self, id: u64) -> bool {
        self.nodes.get(&id).is_some_and(|n| n.core.is_some())
    }

    /// Power failure: the node stops and loses what it did not sync.
    pub fn crash(&mut self, id: u64) {
        let node = self.nodes.get_mut(&id).unwrap();
        node.core = None;
        node.store.crash();
        node.sm = StateMachine::default();
    }

    pub fn restart(&mut self, id: u64) {
        assert!(!self.is_up(id));
        self.start(id);
    }

    /// Cuts every link between `id` and the others.
    pub fn isolate(&mut self, id: u64) {
        for &other in self.nodes.keys() {
            if other != id {
                self.blocked.insert((id, other));
                self.blocked.insert((other, id));
            }
        }
    }

    pub fn heal(&mut self) {
        self.blocked.clear();
    }

    /// The leader with the highest term among the nodes that are up.
    pub fn leader(&self) -> Option<u64> {
        self.nodes
            .iter()
            .filter_map(|(&id, n)| n.core.as_ref().map(|c| (id, c.status())))
            .filter(|(_, s)| s.role == Role::Leader)
            .max_by_key(|(_, s)| s.term)
            .map(|(id, _)| id)
    }

    pub fn run(&mut self, rounds: usize) {
        for _ in 0..rounds {
            self.tick_all();
            self.deliver_all();
        }
    }

    /// Runs rounds until `done` holds (or panics after `max` rounds).
    pub fn run_until(&mut self, max: usize, done: impl Fn(&Cluster) -> bool) {
        for _ in 0..max {
            if done(self) {
                return;
            }
            self.run(1);
        }
        assert!(done(self), "condition not reached in {max} rounds");
    }

    pub fn elect(&mut self) -> u64 {
        self.run_until(300, |c| c.leader().is_some());
        self.leader().unwrap()
    }

    pub fn tick_all(&mut self) {
        let ids: Vec<u64> = self.nodes.keys().copied().collect();
        for id in ids {
            if self.is_up(id) {
                self.core(id).tick().unwrap();
                self.drain(id);
            }
        }
    }

    pub fn deliver_all(&mut self) {
        let mut budget = 100_000;
        while budget > 0 && self.deliver_one() {
            budget -= 1;
        }
    }

    /// Delivers one message chosen by the seeded generator. Returns false if none is queued.
    pub fn deliver_one(&mut self) -> bool {
        if self.queue.is_empty() {
            return false;
        }
        let at = self.rng.gen_range(0..self.queue.len());
        let message = self.queue.swap_remove(at);
        let dropped = self.drop_one_in > 0 && self.rng.gen_range(0..self.drop_one_in) == 0;
        self.deliver(message, dropped);
        true
    }

    /// Delivers, in queue order, the queued messages matching `select` (scripted scenarios).
    pub fn deliver_where(&mut self, select: impl Fn(&Message) -> bool) -> usize {
        let (chosen, rest): (Vec<_>, Vec<_>) = self.queue.drain(..).partition(|m| select(m));
        self.queue = rest;
        let count = chosen.len();
        for message in chosen {
            self.deliver(message, false);
        }
        count
    }

    pub fn queued(&self) -> &[Message] {
        &self.queue
    }

    fn deliver(&mut self, message: Message, dropped: bool) {
        let (from, to) = (message.from, message.to);
        let lost = dropped || self.blocked.contains(&(from, to)) || !self.is_up(to);
        let snapshot = message.get_msg_type() == MessageType::MsgSnapshot;
        if lost {
            if snapshot && self.is_up(from) {
                self.core(from).report_snapshot(to, SnapshotStatus::Failure);
                self.drain(from);
            }
            return;
        }
        self.trace.update(&message.write_to_bytes().unwrap());
        self.core(to).step(message).unwrap();
        self.drain(to);
        if snapshot && self.is_up(from) {
            self.core(from).report_snapshot(to, SnapshotStatus::Finish);
            self.drain(from);
        }
    }

    /// Runs a node's Ready cycles until it has nothing left to do.
    pub fn drain(&mut self, id: u64) {
        while let Some(effects) = self.core(id).ready().unwrap() {
            self.perform(id, effects);
        }
    }

    fn perform(&mut self, id: u64, effects: Effects) {
        self.queue.extend(effects.all_messages().cloned());
        let node = self.nodes.get_mut(&id).unwrap();
        if let Some(snapshot) = &effects.snapshot {
            node.sm = StateMachine::decode(snapshot.get_metadata().index, &snapshot.data);
            node.snapshots_installed += 1;
            self.checker.restore(id, &node.sm);
        }
        for entry in &effects.committed_entries {
            self.trace.update(&entry.write_to_bytes().unwrap());
            self.checker.apply(id, &mut node.sm, entry);
        }
        for answer in &effects.read_states {
            let asked = self.checker.reads.get(&(id, answer.request_id)).copied();
            if asked.is_some_and(|min| answer.index < min) {
                self.checker.violations.push(format!(
                    "node {id} answered read {} at {} but {} was already applied",
                    answer.request_id,
                    answer.index,
                    asked.unwrap_or_default()
                ));
            }
            self.checker
                .answered
                .push((id, answer.request_id, answer.index));
        }
        if let Some(change) = effects.role_change {
            if change.role == Role::Leader {
                self.checker.leader(id, change.term);
            }
        }
    }

    pub fn propose(&mut self, id: u64, data: &[u8]) -> Proposed {
        let proposed = self.core(id).propose(data.to_vec(), vec![]).unwrap();
        self.drain(id);
        proposed
    }

    /// Proposes every payload before running a single Ready cycle (one group commit).
    pub fn propose_batch(&mut self, id: u64, payloads: &[&[u8]]) -> Vec<Proposed> {
        let core = self.core(id);
        let proposed = payloads
            .iter()
            .map(|p| core.propose(p.to_vec(), vec![]).unwrap())
            .collect();
        self.drain(id);
        proposed
    }

    pub fn propose_conf_change(&mut self, id: u64, change: ConfChangeV2) -> Proposed {
        let proposed = self.core(id).propose_conf_change(change, vec![]).unwrap();
        self.drain(id);
        proposed
    }

    /// Asks node `id` for a read point; false if it refused at once.
    pub fn read_index(&mut self, id: u64, request: u64) -> bool {
        let floor = self.checker.max_applied();
        self.checker.reads.insert((id, request), floor);
        let accepted = self.core(id).read_index(request).is_ok();
        self.drain(id);
        accepted
    }

    pub fn campaign(&mut self, id: u64) {
        self.core(id).campaign().unwrap();
        self.drain(id);
    }

    /// Snapshots node `id`'s state machine and compacts its log up to it.
    pub fn compact(&mut self, id: u64) {
        let node = self.nodes.get_mut(&id).unwrap();
        let (index, data) = (node.sm.applied_index, node.sm.encode());
        node.core.as_mut().unwrap().compact(index, data).unwrap();
    }

    pub fn payloads(&self, id: u64) -> &[Vec<u8>] {
        &self.nodes[&id].sm.payloads
    }

    /// The trace's hash: every delivered message and every applied entry, in order.
    pub fn trace_hash(&self) -> [u8; 32] {
        *self.trace.finalize().as_bytes()
    }

    /// The checker's violations, plus: every running node's applied payloads are a prefix of
    /// the longest.
    pub fn violations(&self) -> Vec<String> {
        let mut found = self.checker.violations.clone();
        let up = self.nodes.iter().filter(|(_, n)| n.core.is_some());
        let longest = up
            .clone()
            .map(|(_, n)| &n.sm.payloads)
            .max_by_key(|p| p.len())
            .cloned()
            .unwrap_or_default();
        for (id, node) in up {
            if !longest.starts_with(&node.sm.payloads) {
                found.push(format!("node {id}'s applied payloads are not a prefix"));
            }
        }
        found
    }

    pub fn assert_safe(&self) {
        let violations = self.violations();
        assert!(violations.is_empty(), "safety violations: {violations:#?}");
    }
}

//! A deterministic in-memory Raft cluster: `RaftCore`s over crashable [`Disk`]s (a memory
//! store with a power-failure model, [`CrashStore`], or the real durable log over a
//! `MemoryLogIo` reopened from its crash image, [`DurableDisk`]), a message queue delivered
//! one message at a time in a seeded order (with partitions and drops), a tick driver, a
//! state machine per node, and the safety checker.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use std::sync::Arc;

use inferadb_raft::core::{Canaries, Effects, Proposed, RaftConfig, RaftCore, Role};
use inferadb_raft::io::{LogCrashMode, LogFaultPlan, MemoryLogIo};
use inferadb_raft::log::{DurableLog, LogOptions};
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

/// A node's disk, as the cluster sees it: it makes the node's log store (at creation and
/// after every crash, from what survived), loses what was not synced on a power failure,
/// counts syncs (group commit), and lets the checks look at a running node's log.
pub trait Disk: Sized {
    /// The log store the node's `RaftCore` runs on.
    type Store: LogStore;
    /// How disks of this kind are made (and how they fail).
    type Config: Clone + Default;

    /// A new disk; `bootstrap`, if any, is installed and synced first.
    fn create(config: &Self::Config, bootstrap: Option<&Snapshot>) -> Self;
    /// The store over what is on the disk now.
    fn open(&mut self) -> Self::Store;
    /// Power failure: the node's store is gone; what survives is what `open` sees next.
    fn crash(&mut self);
    /// `LogStore::sync` calls so far (over every store of this disk).
    fn syncs(&self) -> u64;
    /// Every entry in the store (after its snapshot).
    fn stored_entries(store: &Self::Store) -> Vec<Entry>;
    /// The store's newest snapshot, if any.
    fn stored_snapshot(store: &Self::Store) -> Option<Snapshot>;
    /// Whether an injected power failure has cut this disk off (its store's writes fail
    /// until the node is crashed and restarted).
    fn power_failed(&self) -> bool {
        false
    }
}

/// A store with a power-failure model: writes land in `live`; `sync` makes `durable` a copy
/// of `live`; a crash throws `live` away and restarts from `durable`. Handles share state.
#[derive(Clone)]
pub struct CrashStore(Rc<RefCell<Platter>>);

struct Platter {
    live: MemoryStore,
    durable: MemoryStore,
    syncs: u64,
}

impl CrashStore {
    fn live(&self) -> MemoryStore {
        self.0.borrow().live.clone()
    }
}

impl Disk for CrashStore {
    type Store = CrashStore;
    type Config = ();

    fn create((): &(), bootstrap: Option<&Snapshot>) -> Self {
        let mut store = MemoryStore::new();
        if let Some(snapshot) = bootstrap {
            store.apply_snapshot(snapshot).unwrap();
        }
        let durable = store.fork();
        Self(Rc::new(RefCell::new(Platter {
            live: store,
            durable,
            syncs: 0,
        })))
    }

    fn open(&mut self) -> CrashStore {
        self.clone()
    }

    /// Loses everything written since the last sync.
    fn crash(&mut self) {
        let mut disk = self.0.borrow_mut();
        disk.live = disk.durable.fork();
    }

    fn syncs(&self) -> u64 {
        self.0.borrow().syncs
    }

    fn stored_entries(store: &CrashStore) -> Vec<Entry> {
        store.live().all_entries()
    }

    fn stored_snapshot(store: &CrashStore) -> Option<Snapshot> {
        store.live().latest_snapshot()
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

/// How a [`DurableDisk`] is made: the log's limits (small, so that segments roll, are
/// deleted by compaction and old entries are read back from their files) and what a power
/// failure leaves of the unsynced operations.
#[derive(Clone)]
pub struct DurableConfig {
    pub options: LogOptions,
    /// Under `Random`, each crash of a disk draws from its own seed (derived from this one).
    pub crash_mode: LogCrashMode,
}

impl Default for DurableConfig {
    fn default() -> Self {
        Self::crashing(LogCrashMode::LoseUnsynced)
    }
}

impl DurableConfig {
    pub fn crashing(crash_mode: LogCrashMode) -> Self {
        Self {
            options: LogOptions {
                segment_size_max: 1024,
                entry_cache_bytes_max: 256,
                state_file_size_max: 2048,
            },
            crash_mode,
        }
    }
}

/// The real durable log over a `MemoryLogIo`: a crash reopens the log from the directory's
/// crash image (recovery runs on every restart).
pub struct DurableDisk {
    io: Arc<MemoryLogIo>,
    config: DurableConfig,
    crashes: u64,
    syncs: Rc<Cell<u64>>,
}

/// A [`DurableLog`] that counts its syncs into its disk's counter.
pub struct DurableStore {
    log: DurableLog,
    syncs: Rc<Cell<u64>>,
}

impl DurableStore {
    pub fn log(&self) -> &DurableLog {
        &self.log
    }
}

impl DurableDisk {
    /// The power fails at the `operation`-th write-side I/O operation from now (0: the
    /// next): it and everything after fail, and the node crashes at the end of that Ready.
    pub fn fail_power_at(&self, operation: u64) {
        let at = self.io.operations() + operation;
        self.io.set_fault_plan(LogFaultPlan {
            crash_at_operation: Some(at),
            ..LogFaultPlan::default()
        });
    }
}

impl Disk for DurableDisk {
    type Store = DurableStore;
    type Config = DurableConfig;

    fn create(config: &DurableConfig, bootstrap: Option<&Snapshot>) -> Self {
        let io = Arc::new(MemoryLogIo::new());
        if let Some(snapshot) = bootstrap {
            let mut log = DurableLog::open(io.clone(), config.options.clone()).unwrap();
            log.apply_snapshot(snapshot).unwrap();
            log.sync().unwrap();
        }
        Self {
            io,
            config: config.clone(),
            crashes: 0,
            syncs: Rc::default(),
        }
    }

    fn open(&mut self) -> DurableStore {
        let log = DurableLog::open(self.io.clone(), self.config.options.clone())
            .unwrap_or_else(|e| panic!("the durable log does not reopen: {e}"));
        DurableStore {
            log,
            syncs: self.syncs.clone(),
        }
    }

    fn crash(&mut self) {
        self.crashes += 1;
        let mode = match self.config.crash_mode {
            LogCrashMode::Random { seed } => LogCrashMode::Random {
                seed: seed ^ self.crashes.wrapping_mul(0x9E37_79B9_7F4A_7C15),
            },
            mode => mode,
        };
        self.io = Arc::new(MemoryLogIo::from_image(self.io.crash_image(mode)));
    }

    fn syncs(&self) -> u64 {
        self.syncs.get()
    }

    fn power_failed(&self) -> bool {
        self.io.crashed()
    }

    fn stored_entries(store: &DurableStore) -> Vec<Entry> {
        let log = &store.log;
        let (first, last) = (log.first_index().unwrap(), log.last_index().unwrap());
        log.entries(first, last + 1, None, GetEntriesContext::empty(false))
            .unwrap()
    }

    fn stored_snapshot(store: &DurableStore) -> Option<Snapshot> {
        store.log.latest_snapshot().cloned()
    }
}

impl Storage for DurableStore {
    fn initial_state(&self) -> raft::Result<RaftState> {
        self.log.initial_state()
    }
    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        self.log.entries(low, high, max_size, context)
    }
    fn term(&self, idx: u64) -> raft::Result<u64> {
        self.log.term(idx)
    }
    fn first_index(&self) -> raft::Result<u64> {
        self.log.first_index()
    }
    fn last_index(&self) -> raft::Result<u64> {
        self.log.last_index()
    }
    fn snapshot(&self, request_index: u64, to: u64) -> raft::Result<Snapshot> {
        self.log.snapshot(request_index, to)
    }
}

impl LogStore for DurableStore {
    fn append(&mut self, entries: &[Entry]) -> Result<(), LogError> {
        self.log.append(entries)
    }
    fn set_hard_state(&mut self, hard_state: &HardState) -> Result<(), LogError> {
        self.log.set_hard_state(hard_state)
    }
    fn set_conf_state(&mut self, conf_state: &ConfState) -> Result<(), LogError> {
        self.log.set_conf_state(conf_state)
    }
    fn apply_snapshot(&mut self, snapshot: &Snapshot) -> Result<(), LogError> {
        self.log.apply_snapshot(snapshot)
    }
    fn compact(&mut self, index: u64, cs: &ConfState, data: Vec<u8>) -> Result<(), LogError> {
        self.log.compact(index, cs, data)
    }
    fn sync(&mut self) -> Result<(), LogError> {
        self.log.sync()?;
        self.syncs.set(self.syncs.get() + 1);
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

pub struct Node<D: Disk> {
    pub core: Option<RaftCore<D::Store>>,
    pub disk: D,
    pub sm: StateMachine,
    pub snapshots_installed: u32,
    pub canaries: Canaries,
}

impl<D: Disk> Node<D> {
    pub fn core(&self) -> &RaftCore<D::Store> {
        self.core.as_ref().expect("node is up")
    }

    /// The running node's stored entries.
    pub fn entries(&self) -> Vec<Entry> {
        D::stored_entries(self.core().store())
    }

    pub fn syncs(&self) -> u64 {
        self.disk.syncs()
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

pub struct Cluster<D: Disk> {
    pub nodes: BTreeMap<u64, Node<D>>,
    disk: D::Config,
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

impl<D: Disk> Cluster<D> {
    /// `n` voters, all starting from the same bootstrap snapshot (index 1, term 1), so a
    /// node added later must catch up by snapshot.
    pub fn new(n: u64, seed: u64, disk: D::Config) -> Self {
        Self::with_canaries(n, seed, disk, |_| Canaries::default())
    }

    pub fn with_canaries(
        n: u64,
        seed: u64,
        disk: D::Config,
        canaries: impl Fn(u64) -> Canaries,
    ) -> Self {
        let mut cluster = Cluster {
            nodes: BTreeMap::new(),
            disk,
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
            let disk = D::create(&cluster.disk, Some(&bootstrap));
            cluster.insert(id, disk, canaries(id));
        }
        cluster
    }

    /// Adds a node with an empty store (not yet a member: add it with a conf change).
    pub fn add_node(&mut self, id: u64) {
        let disk = D::create(&self.disk, None);
        self.insert(id, disk, Canaries::default());
    }

    fn insert(&mut self, id: u64, disk: D, canaries: Canaries) {
        let node = Node {
            core: None,
            disk,
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
        let store = node.disk.open();
        node.sm = match D::stored_snapshot(&store) {
            Some(s) => StateMachine::decode(s.get_metadata().index, &s.data),
            None => StateMachine::default(),
        };
        let mut config = RaftConfig::new(id, self.seed);
        config.applied = node.sm.applied_index;
        config.canaries = node.canaries;
        let core = RaftCore::new(&config, store, &self.logger).unwrap();
        node.core = Some(core);
        self.drain(id);
    }

    pub fn node(&self, id: u64) -> &Node<D> {
        &self.nodes[&id]
    }

    pub fn core(&mut self, id: u64) -> &mut RaftCore<D::Store> {
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
        node.disk.crash();
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
    pub fn run_until(&mut self, max: usize, done: impl Fn(&Cluster<D>) -> bool) {
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

    /// Runs a node's Ready cycles until it has nothing left to do. If an injected power
    /// failure makes a cycle fail, the node is down (crashed) afterwards.
    pub fn drain(&mut self, id: u64) {
        loop {
            match self.core(id).ready() {
                Ok(Some(effects)) => self.perform(id, effects),
                Ok(None) => return,
                Err(_) if self.nodes[&id].disk.power_failed() => {
                    self.crash(id);
                    return;
                }
                Err(e) => panic!("node {id}'s Ready cycle failed: {e}"),
            }
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

//! A simulated node: a raft group over the durable log on a crashable in-memory directory,
//! applying to a [`ShardReplica`] (catalog and vaults on crashable `MemoryIo`s), and its
//! outgoing [`SimTransport`].

use std::sync::Arc;

use inferadb_raft::core::{Canaries, RaftConfig, RaftCore};
use inferadb_raft::group::RaftGroup;
use inferadb_raft::io::{LogCrashMode, LogIo, MemoryLogIo};
use inferadb_raft::log::{DurableLog, LogOptions};
use inferadb_raft::store::LogStore;
use raft::eraftpb::{ConfState, Snapshot};

use crate::network::SimTransport;
use crate::shard::{ShardDisk, ShardReplica, BOOTSTRAP_INDEX};

/// The group every simulated node runs (one raft group per cluster for now).
pub const GROUP: u64 = 1;

/// A running node's group.
pub type SimGroup = RaftGroup<DurableLog, ShardReplica>;

/// One simulated node.
pub struct SimNode {
    id: u64,
    io: Arc<MemoryLogIo>,
    disk: ShardDisk,
    group: Option<SimGroup>,
    transport: SimTransport,
    canaries: Canaries,
    seed: u64,
    logger: slog::Logger,
}

impl SimNode {
    /// A node of a new cluster of `voters`: its shard holds the bootstrap vault and its log
    /// directory the bootstrap snapshot (index 2, term 1, the voters), synced; the node is down until [`SimNode::start`].
    pub fn create(id: u64, voters: &[u64], seed: u64, canaries: Canaries) -> Result<Self, String> {
        let io = Arc::new(MemoryLogIo::new());
        let mut bootstrap = Snapshot::default();
        bootstrap.mut_metadata().index = BOOTSTRAP_INDEX;
        bootstrap.mut_metadata().term = 1;
        bootstrap
            .mut_metadata()
            .set_conf_state(ConfState::from((voters.to_vec(), vec![])));
        let dyn_io: Arc<dyn LogIo> = io.clone();
        let mut log = DurableLog::open(dyn_io, LogOptions::default()).map_err(|e| e.to_string())?;
        log.apply_snapshot(&bootstrap).map_err(|e| e.to_string())?;
        log.sync().map_err(|e| e.to_string())?;
        Ok(SimNode {
            id,
            io,
            disk: ShardDisk::bootstrapped()?,
            group: None,
            transport: SimTransport::default(),
            canaries,
            seed,
            logger: slog::Logger::root(slog::Discard, slog::o!()),
        })
    }

    /// (Re)starts the node from what its disks hold: the log is recovered, the shard
    /// reopened, and raft replays the committed entries after the shard's applied index.
    pub fn start(&mut self) -> Result<(), String> {
        let dyn_io: Arc<dyn LogIo> = self.io.clone();
        let log = DurableLog::open(dyn_io, LogOptions::default()).map_err(|e| e.to_string())?;
        let machine = self.disk.open()?;
        let snapshot = log.latest_snapshot().map_or(0, |s| s.get_metadata().index);
        let applied = machine.applied_index().max(snapshot);
        let mut config = RaftConfig::new(self.id, self.seed);
        config.applied = applied;
        config.canaries = self.canaries;
        let core = RaftCore::new(&config, log, &self.logger).map_err(|e| e.to_string())?;
        self.group = Some(RaftGroup::new(core, ShardReplica::new(machine), applied));
        Ok(())
    }

    /// Power failure: the group and its memory are gone; the directory keeps only what was
    /// synced.
    pub fn crash(&mut self) {
        // The images are taken before the group drops: closing the files must not save them.
        let image = self.io.crash_image(LogCrashMode::LoseUnsynced);
        let disk = self.disk.crash_copy();
        self.group = None;
        self.transport.take();
        self.io = Arc::new(MemoryLogIo::from_image(image));
        self.disk = disk;
    }

    /// This node's id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Whether the node is running.
    pub fn is_up(&self) -> bool {
        self.group.is_some()
    }

    /// The running group.
    pub fn group(&self) -> Option<&SimGroup> {
        self.group.as_ref()
    }

    /// The running group, mutably.
    pub fn group_mut(&mut self) -> Option<&mut SimGroup> {
        self.group.as_mut()
    }

    /// The node's outgoing transport.
    pub fn transport(&self) -> &SimTransport {
        &self.transport
    }
}

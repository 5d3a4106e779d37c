//! A simulated node: a raft group over the durable log on a crashable in-memory directory,
//! applying to a [`ShardReplica`] (catalog and vaults on crashable `MemoryIo`s), and its
//! outgoing [`SimTransport`].

use std::sync::Arc;

use inferadb_raft::core::{Canaries, RaftConfig, RaftCore};
use inferadb_raft::group::RaftGroup;
use inferadb_raft::io::{LogCrashMode, LogFaultPlan, LogIo, MemoryLogIo};
use inferadb_raft::log::{DurableLog, LogOptions};
use inferadb_raft::store::LogStore;
use inferadb_storage::io::CrashMode;
use raft::eraftpb::{ConfState, Snapshot};

use crate::network::SimTransport;
use crate::shard::{ShardDisk, ShardReplica, BOOTSTRAP_INDEX};

/// The group every simulated node runs (one raft group per cluster for now).
pub const GROUP: u64 = 1;

/// A running node's group.
pub type SimGroup = RaftGroup<DurableLog, ShardReplica>;

/// What a power failure does to the writes a node had not synced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiskFault {
    /// They are lost.
    None,
    /// Each is lost, kept, or torn at sector granularity (seeded).
    Torn {
        /// Seed of the choices.
        seed: u64,
    },
}

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
    /// What was corrupted on its disks, if anything was.
    corruption: Option<String>,
    /// Whether the next start meets a (transient) read error of the log.
    read_error_armed: bool,
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
            corruption: None,
            read_error_armed: false,
        })
    }

    /// A node joining a running group: empty disks (no membership, no vault); it waits
    /// for the leader's snapshot. Down until [`SimNode::start`].
    pub fn join(id: u64, seed: u64, canaries: Canaries) -> Self {
        SimNode {
            id,
            io: Arc::new(MemoryLogIo::new()),
            disk: ShardDisk::default(),
            group: None,
            transport: SimTransport::default(),
            canaries,
            seed,
            logger: slog::Logger::root(slog::Discard, slog::o!()),
            corruption: None,
            read_error_armed: false,
        }
    }

    /// (Re)starts the node from what its disks hold: the log is recovered, the shard
    /// reopened, and raft replays the committed entries after the shard's applied index.
    pub fn start(&mut self) -> Result<(), String> {
        let dyn_io: Arc<dyn LogIo> = self.io.clone();
        let log = DurableLog::open(dyn_io, LogOptions::default()).map_err(|e| e.to_string())?;
        let machine = self.disk.open()?;
        // The machine's own durable index: when the log holds a newer snapshot (one received
        // and stored, whose restore a crash or a failure interrupted), `RaftGroup::new`
        // restores it into the machine; claiming the snapshot's index here would skip that
        // and apply the entries after it to a machine that lacks the snapshot's state.
        let applied = machine.applied_index();
        let mut config = RaftConfig::new(self.id, self.seed);
        config.applied = applied;
        config.canaries = self.canaries;
        let core = RaftCore::new(&config, log, &self.logger).map_err(|e| e.to_string())?;
        self.group = Some(RaftGroup::new(core, ShardReplica::new(machine), applied));
        Ok(())
    }

    /// Power failure: the group and its memory are gone; the directory keeps what was
    /// synced, and what `fault` lets through of what was not.
    pub fn crash(&mut self, fault: DiskFault) {
        let (log_mode, page_mode) = match fault {
            DiskFault::None => (LogCrashMode::LoseUnsynced, CrashMode::LoseUnsynced),
            DiskFault::Torn { seed } => (
                LogCrashMode::Random { seed },
                CrashMode::Random {
                    seed: seed.rotate_left(17),
                },
            ),
        };
        // The images are taken before the group drops: closing the files must not save them.
        let image = self.io.crash_image(log_mode);
        let disk = self.disk.crash_copy(page_mode);
        self.group = None;
        self.transport.take();
        self.io = Arc::new(MemoryLogIo::from_image(image));
        self.disk = disk;
    }

    /// Makes the first read of the log at the next start fail, as a transient disk read
    /// error would (call after [`SimNode::crash`], whose image replaces the log's I/O).
    pub fn arm_read_error(&mut self) {
        self.io.set_fault_plan(LogFaultPlan {
            fail_read_number: Some(0),
            ..LogFaultPlan::default()
        });
        self.read_error_armed = true;
    }

    /// Whether a read error was armed for the last start (and forgets it).
    pub fn take_read_error(&mut self) -> bool {
        std::mem::take(&mut self.read_error_armed)
    }

    /// Makes the next sync of the log (`log`) or of the shard's catalog fail.
    pub fn fail_next_sync(&self, log: bool) {
        if log {
            self.io.set_fault_plan(LogFaultPlan {
                fail_sync_number: Some(0),
                ..LogFaultPlan::default()
            });
        } else {
            self.disk.fail_next_sync();
        }
    }

    /// Flips one bit somewhere in the node's durable files, chosen by `pick`; says where.
    pub fn corrupt(&mut self, pick: u64) -> String {
        let image = self.io.image();
        let sizes: Vec<(String, u64)> = image
            .iter()
            .map(|(name, bytes)| (name.clone(), bytes.len() as u64))
            .filter(|(_, len)| *len > 0)
            .collect();
        let bit = u8::try_from(pick % 8).unwrap_or(0);
        let what = if pick.is_multiple_of(2) && !sizes.is_empty() {
            let (name, len) = &sizes[usize::try_from(pick / 2 % sizes.len() as u64).unwrap_or(0)];
            let offset = pick / 16 % len;
            self.io.flip_bit(name, offset, bit);
            format!("log file {name} byte {offset} bit {bit}")
        } else {
            self.disk.flip_bit(pick / 2, bit)
        };
        self.corruption = Some(what.clone());
        what
    }

    /// Operations its log directory has issued (appends, syncs, …) since it was created or
    /// last recovered: a change across a drain means the drain wrote the log.
    pub fn log_operations(&self) -> u64 {
        self.io.operations()
    }

    /// Whether the node's disks were ever corrupted.
    pub fn corrupted(&self) -> bool {
        self.corruption.is_some()
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

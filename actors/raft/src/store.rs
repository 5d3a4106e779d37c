//! [`LogStore`]: what the Ready loop needs from a Raft log store, beyond `raft::Storage`'s
//! reads. Both the durable log ([`crate::log`]) and the in-memory store
//! ([`crate::memory_store`]) implement it, and the same tests run against both.

use raft::eraftpb::{ConfState, Entry, HardState, Snapshot};

/// Why a log store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The I/O seam failed (the store is unusable until reopened: nothing after the failure
    /// may be acknowledged).
    #[error("raft log I/O failed: {0}")]
    Io(String),
    /// Stored bytes failed their checksum or do not decode.
    #[error("raft log corrupt at {location}: {reason}")]
    Corrupt {
        /// Which file / offset / record.
        location: String,
        /// What is wrong.
        reason: String,
    },
    /// A caller broke the store's contract (appending with a gap, compacting past the last
    /// index...): a bug in the Ready loop.
    #[error("raft log misuse: {0}")]
    Misuse(String),
}

/// The write side of a Raft log store. Reads are `raft::Storage` (which `RawNode` calls).
/// Writes are buffered until [`LogStore::sync`]: the Ready loop persists a whole `Ready`
/// (entries, hard state, snapshot) and then syncs once, so many proposals share one fsync.
pub trait LogStore: raft::Storage {
    /// Appends `entries` (consecutive indexes). An entry whose index is already stored
    /// replaces it and every later entry (a follower's conflicting suffix is truncated).
    fn append(&mut self, entries: &[Entry]) -> Result<(), LogError>;

    /// Records the hard state (term, vote, commit).
    fn set_hard_state(&mut self, hard_state: &HardState) -> Result<(), LogError>;

    /// Records the membership (after a configuration change is applied).
    fn set_conf_state(&mut self, conf_state: &ConfState) -> Result<(), LogError>;

    /// Replaces the log with a snapshot received from the leader: entries up to the
    /// snapshot's index are gone; its metadata gives the term, index and membership.
    fn apply_snapshot(&mut self, snapshot: &Snapshot) -> Result<(), LogError>;

    /// Records a snapshot of the state machine taken at the applied `index` (with the
    /// membership at that index and the state machine's bytes) and drops the entries up to
    /// it (log compaction). `raft::Storage::snapshot` serves the newest one.
    fn compact(
        &mut self,
        index: u64,
        conf_state: &ConfState,
        data: Vec<u8>,
    ) -> Result<(), LogError>;

    /// Makes everything recorded so far durable (fsync). Nothing that depends on a write may
    /// be acknowledged before this returns.
    fn sync(&mut self) -> Result<(), LogError>;
}

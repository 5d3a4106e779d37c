//! [`MemoryStore`]: an in-memory [`LogStore`] over raft-rs's `MemStorage`.
//!
//! It is the reference model for the durable log (the same contract tests run against both)
//! and the store of the in-memory cluster tests. Like `MemStorage`, a `MemoryStore` is a
//! handle: clones share the same state, so a test can keep a handle to a node's store while
//! the node's `RawNode` owns another. [`MemoryStore::fork`] makes an independent copy (what a
//! test keeps as "what reached the disk" to model a power failure).
//!
//! `MemStorage` keeps no snapshot data (its `snapshot()` only describes the commit index), so
//! this store keeps the newest snapshot itself (from [`LogStore::compact`] or
//! [`LogStore::apply_snapshot`]) and serves it from `raft::Storage::snapshot`.

use std::sync::Arc;

use parking_lot::Mutex;
use raft::eraftpb::{ConfState, Entry, HardState, Snapshot};
use raft::storage::MemStorage;
use raft::{GetEntriesContext, RaftState, Storage, StorageError};

use crate::store::{LogError, LogStore};

/// An in-memory [`LogStore`]: raft-rs's `MemStorage` plus the newest snapshot (with its
/// state-machine bytes) and a count of `sync` calls. `sync` is a no-op: memory is as
/// durable as it gets here.
#[derive(Clone, Default)]
pub struct MemoryStore {
    log: MemStorage,
    extra: Arc<Mutex<Extra>>,
}

#[derive(Default)]
struct Extra {
    /// The newest snapshot (index 0 = none), served to followers that fell behind.
    snapshot: Snapshot,
    /// How many times `sync` was called (tests check group commit with it).
    syncs: u64,
}

impl MemoryStore {
    /// An empty, uninitialised store (no membership): a node that joins an existing group and
    /// learns everything from the leader's snapshot.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty store whose membership is `conf_state` (a node of a new group: every initial
    /// member must start with the same membership).
    pub fn new_with_conf_state(conf_state: ConfState) -> Self {
        Self {
            log: MemStorage::new_with_conf_state(conf_state),
            extra: Arc::default(),
        }
    }

    /// How many times [`LogStore::sync`] was called on this store (any handle).
    pub fn sync_count(&self) -> u64 {
        self.extra.lock().syncs
    }

    /// The newest snapshot (from compaction or received from a leader), if any.
    pub fn latest_snapshot(&self) -> Option<Snapshot> {
        let extra = self.extra.lock();
        (extra.snapshot.get_metadata().index > 0).then(|| extra.snapshot.clone())
    }

    /// The stored hard state (term, vote, commit).
    pub fn hard_state(&self) -> HardState {
        self.log.rl().hard_state().clone()
    }

    /// Every stored entry (from the first index after the last snapshot to the last index).
    pub fn all_entries(&self) -> Vec<Entry> {
        let (first, last) = (self.first(), self.last());
        if last < first {
            return Vec::new();
        }
        self.log
            .entries(first, last + 1, None, GetEntriesContext::empty(false))
            .unwrap_or_default()
    }

    /// An independent copy of everything stored (sharing nothing with `self`). The sync
    /// counter starts again at zero.
    pub fn fork(&self) -> MemoryStore {
        // MemStorage's `initial_state` never fails (it clones its in-memory state).
        let state = self.log.initial_state().unwrap_or_default();
        let copy = MemStorage::new();
        {
            let mut core = copy.wl();
            let first = self.first();
            if first > 1 {
                // Recreate the compaction point: MemStorage only learns it from a snapshot.
                let mut base = Snapshot::default();
                base.mut_metadata().index = first - 1;
                base.mut_metadata().term = self.log.term(first - 1).unwrap_or_default();
                base.mut_metadata().set_conf_state(state.conf_state.clone());
                // Cannot fail: the copy is empty, and the entries follow the snapshot.
                let _ = core.apply_snapshot(base);
            }
            let _ = core.append(&self.all_entries());
            core.set_hardstate(state.hard_state);
            core.set_conf_state(state.conf_state);
        }
        let snapshot = self.extra.lock().snapshot.clone();
        MemoryStore {
            log: copy,
            extra: Arc::new(Mutex::new(Extra { snapshot, syncs: 0 })),
        }
    }

    fn first(&self) -> u64 {
        self.log.first_index().unwrap_or(1)
    }

    fn last(&self) -> u64 {
        self.log.last_index().unwrap_or(0)
    }

    /// Checks what `MemStorage::append` would panic on, so misuse is an error instead.
    fn check_append(&self, entries: &[Entry]) -> Result<(), LogError> {
        let Some(head) = entries.first() else {
            return Ok(());
        };
        if entries.windows(2).any(|w| w[1].index != w[0].index + 1) {
            return Err(LogError::Misuse(
                "appended entries are not consecutive".into(),
            ));
        }
        if head.index < self.first() {
            return Err(LogError::Misuse(format!(
                "append at {} overwrites compacted entries (first index {})",
                head.index,
                self.first()
            )));
        }
        if head.index > self.last() + 1 {
            return Err(LogError::Misuse(format!(
                "append at {} leaves a gap after the last index {}",
                head.index,
                self.last()
            )));
        }
        Ok(())
    }
}

impl raft::Storage for MemoryStore {
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

    fn snapshot(&self, request_index: u64, _to: u64) -> raft::Result<Snapshot> {
        let extra = self.extra.lock();
        let index = extra.snapshot.get_metadata().index;
        if index == 0 || index < request_index {
            // Nothing recent enough yet: raft-rs retries later (the shell compacts meanwhile).
            return Err(raft::Error::Store(
                StorageError::SnapshotTemporarilyUnavailable,
            ));
        }
        Ok(extra.snapshot.clone())
    }
}

fn misuse(err: raft::Error) -> LogError {
    LogError::Misuse(err.to_string())
}

impl LogStore for MemoryStore {
    fn append(&mut self, entries: &[Entry]) -> Result<(), LogError> {
        self.check_append(entries)?;
        self.log.wl().append(entries).map_err(misuse)
    }

    fn set_hard_state(&mut self, hard_state: &HardState) -> Result<(), LogError> {
        self.log.wl().set_hardstate(hard_state.clone());
        Ok(())
    }

    fn set_conf_state(&mut self, conf_state: &ConfState) -> Result<(), LogError> {
        self.log.wl().set_conf_state(conf_state.clone());
        Ok(())
    }

    fn apply_snapshot(&mut self, snapshot: &Snapshot) -> Result<(), LogError> {
        self.log
            .wl()
            .apply_snapshot(snapshot.clone())
            .map_err(misuse)?;
        self.extra.lock().snapshot = snapshot.clone();
        Ok(())
    }

    fn compact(
        &mut self,
        index: u64,
        conf_state: &ConfState,
        data: Vec<u8>,
    ) -> Result<(), LogError> {
        let (first, last) = (self.first(), self.last());
        if index < first {
            // Already compacted that far: nothing to drop, keep the newer snapshot.
            return Ok(());
        }
        let state = self.log.initial_state().map_err(misuse)?;
        if index > last || index > state.hard_state.commit {
            return Err(LogError::Misuse(format!(
                "compact at {index} beyond the last index {last} or the commit index {}",
                state.hard_state.commit
            )));
        }
        let term = self.log.term(index).map_err(misuse)?;
        let kept = self
            .log
            .entries(index + 1, last + 1, None, GetEntriesContext::empty(false))
            .unwrap_or_default();
        let mut snapshot = Snapshot {
            data: data.into(),
            ..Snapshot::default()
        };
        snapshot.mut_metadata().index = index;
        snapshot.mut_metadata().term = term;
        snapshot.mut_metadata().set_conf_state(conf_state.clone());

        // MemStorage only moves its compaction point (and remembers the term there) through
        // `apply_snapshot`, which also clears the log and overwrites the hard and conf states:
        // apply a metadata-only snapshot, then put back the suffix and both states.
        let mut base = snapshot.clone();
        base.data = Default::default();
        let mut core = self.log.wl();
        core.apply_snapshot(base).map_err(misuse)?;
        core.append(&kept).map_err(misuse)?;
        core.set_hardstate(state.hard_state);
        core.set_conf_state(state.conf_state);
        drop(core);
        self.extra.lock().snapshot = snapshot;
        Ok(())
    }

    fn sync(&mut self) -> Result<(), LogError> {
        self.extra.lock().syncs += 1;
        Ok(())
    }
}

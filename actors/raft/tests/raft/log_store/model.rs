//! The reference model: raft-rs's `MemStorage` plus the newest snapshot with its data (which
//! `MemStorage` does not keep), with the `LogStore` semantics the durable log promises.

use raft::eraftpb::{ConfState, Entry, HardState, Snapshot};
use raft::storage::MemStorage;
use raft::{GetEntriesContext, Storage, StorageError};

#[derive(Clone, Default)]
pub struct Model {
    pub log: MemStorage,
    pub snapshot: Snapshot,
}

impl Model {
    pub fn first(&self) -> u64 {
        self.log.first_index().unwrap()
    }

    pub fn last(&self) -> u64 {
        self.log.last_index().unwrap()
    }

    pub fn hard_state(&self) -> HardState {
        self.log.initial_state().unwrap().hard_state
    }

    pub fn conf_state(&self) -> ConfState {
        self.log.initial_state().unwrap().conf_state
    }

    pub fn all_entries(&self) -> Vec<Entry> {
        if self.last() < self.first() {
            return Vec::new();
        }
        self.log
            .entries(
                self.first(),
                self.last() + 1,
                None,
                GetEntriesContext::empty(false),
            )
            .unwrap()
    }

    /// A deep copy (MemStorage clones share their core).
    pub fn fork(&self) -> Model {
        let copy = Model {
            log: MemStorage::new(),
            snapshot: self.snapshot.clone(),
        };
        if self.first() > 1 {
            let mut base = Snapshot::default();
            base.mut_metadata().index = self.first() - 1;
            base.mut_metadata().term = self.log.term(self.first() - 1).unwrap();
            copy.log.wl().apply_snapshot(base).unwrap();
        }
        let mut core = copy.log.wl();
        core.append(&self.all_entries()).unwrap();
        core.set_hardstate(self.hard_state());
        core.set_conf_state(self.conf_state());
        drop(core);
        copy
    }

    pub fn append(&mut self, entries: &[Entry]) {
        self.log.wl().append(entries).unwrap();
    }

    pub fn set_hard_state(&mut self, hard_state: &HardState) {
        self.log.wl().set_hardstate(hard_state.clone());
    }

    pub fn set_conf_state(&mut self, conf_state: &ConfState) {
        self.log.wl().set_conf_state(conf_state.clone());
    }

    pub fn apply_snapshot(&mut self, snapshot: &Snapshot) {
        self.log.wl().apply_snapshot(snapshot.clone()).unwrap();
        self.snapshot = snapshot.clone();
    }

    pub fn compact(&mut self, index: u64, conf_state: &ConfState, data: &[u8]) {
        if index < self.first() {
            return;
        }
        let (hard_state, current) = (self.hard_state(), self.conf_state());
        let kept: Vec<Entry> = self
            .all_entries()
            .into_iter()
            .filter(|e| e.index > index)
            .collect();
        let mut snapshot = Snapshot {
            data: data.to_vec().into(),
            ..Snapshot::default()
        };
        snapshot.mut_metadata().index = index;
        snapshot.mut_metadata().term = self.log.term(index).unwrap();
        snapshot.mut_metadata().set_conf_state(conf_state.clone());
        let mut base = snapshot.clone();
        base.data = Default::default();
        let mut core = self.log.wl();
        core.apply_snapshot(base).unwrap();
        core.append(&kept).unwrap();
        core.set_hardstate(hard_state);
        core.set_conf_state(current);
        drop(core);
        self.snapshot = snapshot;
    }

    pub fn snapshot(&self, request_index: u64) -> raft::Result<Snapshot> {
        let index = self.snapshot.get_metadata().index;
        if index == 0 || index < request_index {
            return Err(raft::Error::Store(
                StorageError::SnapshotTemporarilyUnavailable,
            ));
        }
        Ok(self.snapshot.clone())
    }
}

pub fn entry(index: u64, term: u64, data: &[u8]) -> Entry {
    Entry {
        index,
        term,
        data: data.to_vec().into(),
        ..Entry::default()
    }
}

pub fn hard_state(term: u64, vote: u64, commit: u64) -> HardState {
    HardState {
        term,
        vote,
        commit,
        ..HardState::default()
    }
}

pub fn conf_state(voters: u64) -> ConfState {
    ConfState::from(((1..=voters).collect::<Vec<_>>(), Vec::<u64>::new()))
}

/// Every `raft::Storage` read of `log` equals the model's.
pub fn assert_same_reads(log: &impl Storage, model: &Model, context: &str) {
    let ctx = || GetEntriesContext::empty(false);
    assert_eq!(
        log.initial_state().unwrap().hard_state,
        model.hard_state(),
        "{context}: hard state"
    );
    assert_eq!(
        log.initial_state().unwrap().conf_state,
        model.conf_state(),
        "{context}: conf state"
    );
    let (first, last) = (model.first(), model.last());
    assert_eq!(log.first_index().unwrap(), first, "{context}: first index");
    assert_eq!(log.last_index().unwrap(), last, "{context}: last index");
    for index in first.saturating_sub(2)..=last + 2 {
        assert_eq!(
            log.term(index),
            model.log.term(index),
            "{context}: term({index})"
        );
    }
    for request in [0, first.saturating_sub(1), first, last + 1] {
        assert_eq!(
            log.snapshot(request, 2),
            model.snapshot(request),
            "{context}: snapshot({request})"
        );
    }
    assert_eq!(
        log.entries(first - 1, last + 1, None, ctx()),
        model.log.entries(first - 1, last + 1, None, ctx()),
        "{context}: entries below the first index are compacted"
    );
    if last < first {
        return;
    }
    for low in first..=last + 1 {
        for high in [low, low + 1, (low + last).div_ceil(2), last + 1] {
            if high < low || high > last + 1 {
                continue;
            }
            for max in [None, Some(0), Some(120), Some(raft::NO_LIMIT)] {
                assert_eq!(
                    log.entries(low, high, max, ctx()),
                    model.log.entries(low, high, max, ctx()),
                    "{context}: entries({low}, {high}, {max:?})"
                );
            }
        }
    }
}

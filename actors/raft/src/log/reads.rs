//! The read side: `raft::Storage` over the index, the entry cache and the segment files.

use super::record::{self, Kind};
use super::{segment_file_name, DurableLog, LogError};
use protobuf::Message as _;
use raft::eraftpb::{Entry, Snapshot};
use raft::{GetEntriesContext, RaftState, StorageError, NO_LIMIT};

fn storage_error(error: LogError) -> raft::Error {
    raft::Error::Store(StorageError::Other(Box::new(error)))
}

impl DurableLog {
    /// Entry `index` (which must be in `first()..=last()`): from the cache, or read back from
    /// its segment with its checksum verified.
    pub(super) fn entry_at(&self, index: u64) -> Result<Entry, LogError> {
        let cache_start = self.last() + 1 - self.cache.len() as u64;
        if index >= cache_start {
            return Ok(self.cache[(index - cache_start) as usize].clone());
        }
        let location = self.locations[(index - self.first()) as usize];
        let name = segment_file_name(location.segment);
        let bytes = self
            .io
            .read(&name, location.offset, location.len as usize)
            .map_err(super::io_error)?;
        let corrupt = |reason: String| LogError::Corrupt {
            location: format!("{name} at offset {}", location.offset),
            reason,
        };
        let record = record::decode(&bytes, location.offset).map_err(|bad| corrupt(bad.reason))?;
        if record.kind != Kind::Entry {
            return Err(corrupt(format!(
                "a {:?} record where an entry was",
                record.kind
            )));
        }
        let entry = Entry::parse_from_bytes(record.payload)
            .map_err(|error| corrupt(format!("entry does not decode: {error}")))?;
        if entry.index != index || entry.term != location.term {
            return Err(corrupt(format!(
                "entry {}/{} where {index}/{} was indexed",
                entry.index, entry.term, location.term
            )));
        }
        Ok(entry)
    }
}

impl raft::Storage for DurableLog {
    fn initial_state(&self) -> raft::Result<RaftState> {
        Ok(RaftState::new(
            self.state.hard_state.clone(),
            self.state.conf_state.clone(),
        ))
    }

    /// Entries `low..high`, at least one if any, then as many as fit in `max_size` (the rule
    /// of `raft::util::limit_size`). `Compacted` below the first index; `Unavailable` if
    /// `high` is past the last index + 1 (where `MemStorage` panics).
    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        _context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        if low < self.first() {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if high > self.last() + 1 {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        let max_size = max_size.into().filter(|&max| max != NO_LIMIT);
        let mut entries = Vec::with_capacity(high.saturating_sub(low).min(1024) as usize);
        let mut size = 0u64;
        for index in low..high {
            let entry = self.entry_at(index).map_err(storage_error)?;
            size += u64::from(entry.compute_size());
            if let Some(max) = max_size {
                if !entries.is_empty() && size > max {
                    break;
                }
            }
            entries.push(entry);
        }
        Ok(entries)
    }

    fn term(&self, index: u64) -> raft::Result<u64> {
        let metadata = self.snapshot.get_metadata();
        if index == metadata.index {
            return Ok(metadata.term);
        }
        if index < self.first() {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if index > self.last() {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        Ok(self.locations[(index - self.first()) as usize].term)
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(self.first())
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(self.last())
    }

    /// The newest snapshot (from `compact` or `apply_snapshot`), with its data.
    /// `SnapshotTemporarilyUnavailable` if there is none or it is older than
    /// `request_index` (raft-rs asks again later; the shell compacts meanwhile).
    fn snapshot(&self, request_index: u64, _to: u64) -> raft::Result<Snapshot> {
        let index = self.snapshot.get_metadata().index;
        if index == 0 || index < request_index {
            return Err(raft::Error::Store(
                StorageError::SnapshotTemporarilyUnavailable,
            ));
        }
        Ok(self.snapshot.clone())
    }
}

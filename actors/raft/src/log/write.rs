//! The write side: appends, suffix truncation, group-commit sync, state and snapshot files,
//! compaction.

use super::record::{self, Kind, HEADER_BYTES};
use super::state::{self, StateRecord};
use super::{
    io_error, segment_file_name, DurableLog, Location, LogError, Segment, SNAPSHOT_FILE,
    STATE_COPY_FILE, STATE_FILE, TMP_SUFFIX,
};
use protobuf::Message as _;
use raft::eraftpb::{ConfState, Entry, HardState, Snapshot};
use raft::Storage as _;

fn misuse(message: String) -> LogError {
    LogError::Misuse(message)
}

impl DurableLog {
    /// Rejects what `MemStorage::append` panics on, and what Raft never does: gaps,
    /// non-consecutive indexes, decreasing terms, replacing committed or compacted entries.
    fn check_append(&self, entries: &[Entry]) -> Result<(), LogError> {
        let Some(head) = entries.first() else {
            return Ok(());
        };
        if let Some(pair) = entries
            .windows(2)
            .find(|pair| pair[1].index != pair[0].index + 1 || pair[1].term < pair[0].term)
        {
            return Err(misuse(format!(
                "appended entries {}/{} then {}/{}: indexes must be consecutive, terms non-decreasing",
                pair[0].index, pair[0].term, pair[1].index, pair[1].term
            )));
        }
        if head.index < self.first() {
            return Err(misuse(format!(
                "append at {} overwrites compacted entries (first index {})",
                head.index,
                self.first()
            )));
        }
        if head.index > self.last() + 1 {
            return Err(misuse(format!(
                "append at {} leaves a gap after the last index {}",
                head.index,
                self.last()
            )));
        }
        if head.index <= self.state.hard_state.commit {
            return Err(misuse(format!(
                "append at {} replaces committed entries (commit {})",
                head.index, self.state.hard_state.commit
            )));
        }
        let previous = self.term(head.index - 1).unwrap_or(0);
        if head.term < previous {
            return Err(misuse(format!(
                "entry {} has term {} below the previous entry's {previous}",
                head.index, head.term
            )));
        }
        Ok(())
    }

    pub(super) fn append_entries(&mut self, entries: &[Entry]) -> Result<(), LogError> {
        self.check_append(entries)?;
        let Some(head) = entries.first() else {
            return Ok(());
        };
        if head.index <= self.last() {
            self.truncate_suffix(head.index)?;
        }
        let mut buffer = Vec::new();
        for entry in entries {
            let payload = entry.write_to_bytes().map_err(|error| {
                misuse(format!("entry {} does not encode: {error}", entry.index))
            })?;
            let record_len = (HEADER_BYTES + payload.len()) as u64;
            let roll = match self.segments.last() {
                None => true,
                Some(segment) => {
                    let used = segment.len + buffer.len() as u64;
                    used > 0 && used + record_len > self.options.segment_size_max
                }
            };
            if roll {
                self.flush(&mut buffer)?;
                self.roll(entry.index)?;
            }
            let segment = self
                .segments
                .last()
                .expect("invariant: a segment exists after rolling");
            let offset = segment.len + buffer.len() as u64;
            let segment = segment.first_index;
            record::encode(Kind::Entry, &payload, &mut buffer).map_err(misuse)?;
            self.locations.push_back(Location {
                term: entry.term,
                segment,
                offset,
                len: record_len,
            });
            self.cache.push_back(entry.clone());
            self.cache_bytes += payload.len() as u64;
        }
        self.flush(&mut buffer)?;
        self.evict_cache();
        Ok(())
    }

    /// Appends the buffered records to the last segment.
    fn flush(&mut self, buffer: &mut Vec<u8>) -> Result<(), LogError> {
        if buffer.is_empty() {
            return Ok(());
        }
        let segment = self
            .segments
            .last_mut()
            .expect("invariant: records are only buffered for an existing segment");
        self.io.append(&segment.name, buffer).map_err(io_error)?;
        segment.len += buffer.len() as u64;
        segment.dirty = true;
        buffer.clear();
        Ok(())
    }

    /// Makes the last segment durable and starts a new one at `first_index`.
    fn roll(&mut self, first_index: u64) -> Result<(), LogError> {
        if let Some(last) = self.segments.last_mut() {
            if last.dirty {
                self.io.sync(&last.name).map_err(io_error)?;
                last.dirty = false;
            }
        }
        let name = segment_file_name(first_index);
        self.io.create(&name).map_err(io_error)?;
        self.segments.push(Segment {
            first_index,
            name,
            len: 0,
            dirty: false,
        });
        self.dir_dirty = true;
        Ok(())
    }

    fn evict_cache(&mut self) {
        while self.cache_bytes > self.options.entry_cache_bytes_max {
            let Some(entry) = self.cache.pop_front() else {
                break;
            };
            self.cache_bytes = self.cache_bytes.saturating_sub(entry.compute_size().into());
        }
    }

    /// Removes entries `index..` (a follower's conflicting suffix), durably, before anything
    /// else is appended.
    fn truncate_suffix(&mut self, index: u64) -> Result<(), LogError> {
        let location = self.locations[(index - self.first()) as usize];
        self.delete_segments_after(location.segment)?;
        let segment = self
            .segments
            .last_mut()
            .expect("invariant: the segment holding an indexed entry exists");
        debug_assert_eq!(segment.first_index, location.segment);
        self.io
            .truncate(&segment.name, location.offset)
            .map_err(io_error)?;
        self.io.sync(&segment.name).map_err(io_error)?;
        segment.len = location.offset;
        segment.dirty = false;
        let kept = (index - self.first()) as usize;
        let removed = self.locations.len() - kept;
        self.locations.truncate(kept);
        let cached = self.cache.len().saturating_sub(removed);
        for entry in self.cache.drain(cached..) {
            self.cache_bytes = self.cache_bytes.saturating_sub(entry.compute_size().into());
        }
        if let Some((watermark_segment, watermark_len)) = self.state.watermark {
            if (watermark_segment, watermark_len) > (location.segment, location.offset) {
                // The durable watermark now points past the end of the log: lower it before
                // new (unsynced) records can land below it.
                self.write_state()?;
            }
        }
        Ok(())
    }

    /// Deletes every segment whose first index is above `first_index`, newest first, each
    /// deletion made durable before the next.
    fn delete_segments_after(&mut self, first_index: u64) -> Result<(), LogError> {
        while let Some(last) = self.segments.last() {
            if last.first_index <= first_index {
                break;
            }
            self.io.delete(&last.name).map_err(io_error)?;
            self.io.sync_dir().map_err(io_error)?;
            self.segments.pop();
        }
        Ok(())
    }

    pub(super) fn put_hard_state(&mut self, hard_state: &HardState) -> Result<(), LogError> {
        if hard_state.commit > self.last() {
            return Err(misuse(format!(
                "hard state commit {} beyond the last index {}",
                hard_state.commit,
                self.last()
            )));
        }
        if hard_state.term < self.state.hard_state.term {
            return Err(misuse(format!(
                "hard state term {} below the stored term {}",
                hard_state.term, self.state.hard_state.term
            )));
        }
        let stored = &self.state.hard_state;
        if hard_state.term != stored.term || hard_state.vote != stored.vote {
            self.critical_dirty = true;
        }
        self.state.hard_state = hard_state.clone();
        self.state_dirty = true;
        Ok(())
    }

    /// Group commit: every segment written since the last sync, the directory if needed,
    /// then the state if it changed.
    pub(super) fn sync_all(&mut self) -> Result<(), LogError> {
        // Entries synced now may be acknowledged: the watermark must move past them, or bit
        // rot in them would later pass for a torn tail and be cut off silently.
        let wrote_entries = self.segments.iter().any(|segment| segment.dirty);
        self.sync_segments()?;
        if self.state_dirty || wrote_entries {
            self.write_state()?;
        }
        Ok(())
    }

    fn sync_segments(&mut self) -> Result<(), LogError> {
        for segment in self.segments.iter_mut().filter(|segment| segment.dirty) {
            self.io.sync(&segment.name).map_err(io_error)?;
            segment.dirty = false;
        }
        if self.dir_dirty {
            self.io.sync_dir().map_err(io_error)?;
            self.dir_dirty = false;
        }
        Ok(())
    }

    /// The durable end of the log, once [`DurableLog::sync_segments`] returned.
    pub(super) fn synced_end(&self) -> Option<(u64, u64)> {
        self.segments.last().map(|s| (s.first_index, s.len))
    }

    /// Syncs the segments, then appends one state record (sequence + 1, watermark at the
    /// synced end) to the state file and syncs it (or rewrites the file when it is full).
    pub(super) fn write_state(&mut self) -> Result<(), LogError> {
        self.sync_segments()?;
        self.state.sequence += 1;
        self.state.watermark = self.synced_end();
        let mut bytes = Vec::new();
        record::encode(Kind::State, &self.state.encode()?, &mut bytes).map_err(misuse)?;
        self.state_file_len = self.append_state(STATE_FILE, self.state_file_len, &bytes)?;
        if self.critical_dirty {
            // After the first copy is durable: a torn write can hit one copy only.
            self.state_copy_len =
                self.append_state(STATE_COPY_FILE, self.state_copy_len, &bytes)?;
        }
        self.state_dirty = false;
        self.critical_dirty = false;
        Ok(())
    }

    /// Appends one state record to `name` (rewriting the file when it is full) and syncs;
    /// returns the file's new length.
    fn append_state(&mut self, name: &str, len: u64, bytes: &[u8]) -> Result<u64, LogError> {
        let added = bytes.len() as u64;
        if len == 0 || len + added > self.options.state_file_size_max {
            self.write_atomically(name, bytes)?;
            return Ok(added);
        }
        self.io.append(name, bytes).map_err(io_error)?;
        self.io.sync(name).map_err(io_error)?;
        Ok(len + added)
    }

    /// `name.tmp`, fsync, rename to `name`, fsync of the directory.
    fn write_atomically(&mut self, name: &str, bytes: &[u8]) -> Result<(), LogError> {
        let tmp = format!("{name}{TMP_SUFFIX}");
        self.io.create(&tmp).map_err(io_error)?;
        self.io.append(&tmp, bytes).map_err(io_error)?;
        self.io.sync(&tmp).map_err(io_error)?;
        self.io.rename(&tmp, name).map_err(io_error)?;
        self.io.sync_dir().map_err(io_error)?;
        self.dir_dirty = false;
        Ok(())
    }

    /// Writes the snapshot file with `state` embedded (sequence + 1).
    fn write_snapshot_file(
        &mut self,
        snapshot: &Snapshot,
        state: StateRecord,
    ) -> Result<(), LogError> {
        let mut state = state;
        state.sequence = self.state.sequence + 1;
        let mut bytes = Vec::new();
        record::encode(
            Kind::Snapshot,
            &state::encode_snapshot(&state, snapshot)?,
            &mut bytes,
        )
        .map_err(misuse)?;
        self.write_atomically(SNAPSHOT_FILE, &bytes)?;
        self.state = state;
        self.state_dirty = false;
        Ok(())
    }

    pub(super) fn install_snapshot(&mut self, snapshot: &Snapshot) -> Result<(), LogError> {
        let metadata = snapshot.get_metadata();
        if metadata.index < self.first() {
            return Err(misuse(format!(
                "snapshot at {} is out of date (first index {})",
                metadata.index,
                self.first()
            )));
        }
        let mut state = self.state.clone();
        state.hard_state.term = state.hard_state.term.max(metadata.term);
        state.hard_state.commit = metadata.index;
        state.conf_state = metadata.get_conf_state().clone();
        state.watermark = None;
        self.write_snapshot_file(snapshot, state)?;
        self.delete_segments_after(0)?;
        self.locations.clear();
        self.cache.clear();
        self.cache_bytes = 0;
        self.snapshot = snapshot.clone();
        Ok(())
    }

    pub(super) fn compact_to(
        &mut self,
        index: u64,
        conf_state: &ConfState,
        data: Vec<u8>,
    ) -> Result<(), LogError> {
        if index < self.first() {
            return Ok(());
        }
        if index > self.last() || index > self.state.hard_state.commit {
            return Err(misuse(format!(
                "compact at {index} beyond the last index {} or the commit index {}",
                self.last(),
                self.state.hard_state.commit
            )));
        }
        self.sync_all()?;
        let mut snapshot = Snapshot {
            data: data.into(),
            ..Snapshot::default()
        };
        snapshot.mut_metadata().index = index;
        snapshot.mut_metadata().term = self.locations[(index - self.first()) as usize].term;
        snapshot.mut_metadata().set_conf_state(conf_state.clone());
        let mut state = self.state.clone();
        state.watermark = self.synced_end();
        self.write_snapshot_file(&snapshot, state)?;
        let dropped = (index + 1 - self.first()) as usize;
        self.locations.drain(..dropped);
        let cached_dropped = self.cache.len().saturating_sub(self.locations.len());
        for entry in self.cache.drain(..cached_dropped) {
            self.cache_bytes = self.cache_bytes.saturating_sub(entry.compute_size().into());
        }
        self.snapshot = snapshot;
        self.delete_obsolete_segments()
    }

    /// Deletes the segments all of whose entries are at or below the snapshot index.
    fn delete_obsolete_segments(&mut self) -> Result<(), LogError> {
        let snapshot_index = self.snapshot.get_metadata().index;
        let last = self.last();
        let obsolete = (0..self.segments.len())
            .take_while(|&at| match self.segments.get(at + 1) {
                Some(next) => next.first_index <= snapshot_index + 1,
                None => last <= snapshot_index,
            })
            .count();
        if obsolete == 0 {
            return Ok(());
        }
        for segment in self.segments[..obsolete].iter().rev() {
            self.io.delete(&segment.name).map_err(io_error)?;
        }
        self.io.sync_dir().map_err(io_error)?;
        self.segments.drain(..obsolete);
        Ok(())
    }
}

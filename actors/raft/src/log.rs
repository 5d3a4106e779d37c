//! [`DurableLog`]: the durable Raft log, a `raft::Storage` and [`LogStore`] over a directory
//! of append-only, checksummed files behind the [`LogIo`] seam.
//!
//! # Files
//!
//! | name | content | written |
//! |---|---|---|
//! | `log-<first index, 20 digits>.seg` | entry records, consecutive indexes from the name's | appended; rolled at [`LogOptions::segment_size_max`] |
//! | `state` | state records (hard state, conf state, sync watermark); the newest valid one wins | appended at `sync` when the state changed or entries were written (the watermark moves); rewritten through `state.tmp` when over [`LogOptions::state_file_size_max`] |
//! | `state.copy` | a second copy of every state record that changed the term, the vote or the membership, written after the first is durable | as `state`; recovery takes the newest valid record of both files, so bit rot in one copy of a vote cannot roll it back |
//! | `snapshot` | one snapshot record: the state at that moment + protobuf `Snapshot` (metadata and data) | `snapshot.tmp`, fsync, rename, fsync of the directory |
//! | `*.tmp` | an interrupted atomic write | deleted on open |
//!
//! Every file is a sequence of records (`log/record.rs`): `payload length: u32 LE ‖
//! checksum: u64 LE ‖ kind: u8 ‖ payload`, the checksum being the first 8 bytes of
//! BLAKE3(length ‖ kind ‖ payload). Kinds: 1 = entry (payload: protobuf `Entry`), 2 = state
//! (`sequence u64 ‖ watermark segment u64 ‖ watermark length u64 ‖ hard state length u32 ‖
//! protobuf HardState ‖ protobuf ConfState`), 3 = snapshot (`state length u32 ‖ state
//! payload ‖ protobuf Snapshot`). All integers are little-endian.
//!
//! The first index of the log is the snapshot's index + 1 (0 + 1 with no snapshot): the
//! snapshot file is the compaction marker. Segments are not rewritten by compaction, so the
//! first segment may still hold entries at or below the snapshot index; they are ignored.
//!
//! # Write protocol
//!
//! - `append` encodes the entries and appends them to the last segment (one `append` call
//!   per segment touched). When a record would take a non-empty segment past
//!   `segment_size_max`, that segment is fsynced and a new one is created: every segment
//!   but the last is therefore complete and durable.
//! - An append that starts at or before the last index first truncates the suffix: later
//!   segments are deleted newest first, each deletion followed by an fsync of the directory,
//!   then the segment holding the first replaced entry is truncated at that entry's record
//!   and fsynced (so no later append can land in front of a truncation a power cut undid).
//! - `set_hard_state` / `set_conf_state` only change memory. `sync` (group commit) fsyncs
//!   every segment written since the last sync, then the directory if a segment was created,
//!   then — if the state changed — appends one state record carrying the whole state, a
//!   sequence number and the *watermark* (the last segment and its now-durable length) and
//!   fsyncs the state file. A state record is never half of one state and half of another.
//! - `compact` syncs, writes the snapshot file atomically (with the current state embedded),
//!   then deletes the segments whose entries are all at or below the snapshot index.
//!   `apply_snapshot` writes the snapshot file (with the state `MemStorage` would have:
//!   commit = snapshot index, term raised to the snapshot's, its membership), then deletes
//!   every segment newest first, fsyncing the directory after each deletion.
//!
//! # Recovery rules (on open)
//!
//! 1. `*.tmp` files are deleted. The state is the valid state record with the highest
//!    sequence, from both state files' records or the snapshot file's embedded state. A bad
//!    record at the end of a state file (nothing after it) is a torn append and is ignored; a
//!    bad record followed by more records is corruption; the snapshot file
//!    must be valid (it was renamed into place only once durable).
//! 2. Each segment is scanned. A bad record (incomplete, checksum mismatch) in the **last**
//!    segment at or after the watermark is a torn tail: the file is truncated there (it was
//!    never synced, so never acknowledged). A bad record in any other segment, or before the
//!    watermark, and any record that passes its checksum but does not decode or has an
//!    unexpected index, is [`LogError::Corrupt`] naming the file and offset.
//! 3. If a segment holds the snapshot's index with a different term, the segments are a
//!    history the snapshot replaced (a crash during `apply_snapshot`): all are deleted.
//!    Otherwise segments whose entries are all at or below the snapshot index are deleted
//!    (a crash during compaction), and an empty last segment is deleted.
//! 4. What remains must be contiguous (each segment starting right after the previous one's
//!    last entry, the first at or before the snapshot index + 1), with terms non-decreasing
//!    from the snapshot's term, and the commit index must not exceed the last index:
//!    otherwise [`LogError::Corrupt`].
//!
//! Reads are served from memory for the newest entries (up to
//! [`LogOptions::entry_cache_bytes_max`] of encoded entries) and from the segment files
//! (checksums verified on every read) for older ones. After an I/O error the log refuses
//! every further write until it is reopened (the disk may hold either outcome).

mod reads;
mod record;
mod recovery;
mod state;
mod write;

use crate::io::{FileLogIo, LogIo, LogIoError};
use crate::store::{LogError, LogStore};
use raft::eraftpb::{ConfState, Entry, HardState, Snapshot};
use state::StateRecord;
use std::collections::VecDeque;
use std::path::Path;
use std::sync::Arc;

/// Default [`LogOptions::segment_size_max`]: 64 MiB.
pub const DEFAULT_SEGMENT_SIZE_MAX: u64 = 64 << 20;
/// Default [`LogOptions::entry_cache_bytes_max`]: 64 MiB.
pub const DEFAULT_ENTRY_CACHE_BYTES_MAX: u64 = 64 << 20;
/// Default [`LogOptions::state_file_size_max`]: 1 MiB.
pub const DEFAULT_STATE_FILE_SIZE_MAX: u64 = 1 << 20;

/// Name of the state file.
pub const STATE_FILE: &str = "state";
/// Name of the second copy of the state records that change the term, the vote or the
/// membership: bit rot in the newest such record of one file must not roll a vote back.
pub const STATE_COPY_FILE: &str = "state.copy";
/// Name of the snapshot file.
pub const SNAPSHOT_FILE: &str = "snapshot";
const TMP_SUFFIX: &str = ".tmp";

/// Limits of a [`DurableLog`]. Changing them between opens is allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogOptions {
    /// A segment is rolled when the next record would take it past this many bytes (a
    /// single record larger than this gets a segment of its own).
    pub segment_size_max: u64,
    /// Encoded bytes of the newest entries kept in memory; older entries are read back from
    /// their segment.
    pub entry_cache_bytes_max: u64,
    /// The state file is rewritten (atomically, with one record) when an append would take
    /// it past this many bytes.
    pub state_file_size_max: u64,
}

impl Default for LogOptions {
    fn default() -> Self {
        LogOptions {
            segment_size_max: DEFAULT_SEGMENT_SIZE_MAX,
            entry_cache_bytes_max: DEFAULT_ENTRY_CACHE_BYTES_MAX,
            state_file_size_max: DEFAULT_STATE_FILE_SIZE_MAX,
        }
    }
}

/// The file name of the segment whose first entry has index `first_index`.
pub fn segment_file_name(first_index: u64) -> String {
    format!("log-{first_index:020}.seg")
}

/// The first index encoded in a segment file name, if `name` is one.
pub fn parse_segment_file_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("log-")?.strip_suffix(".seg")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// A segment file of the open log.
#[derive(Debug, Clone)]
struct Segment {
    first_index: u64,
    name: String,
    len: u64,
    /// Appended or truncated since its last fsync.
    dirty: bool,
}

/// Where an entry is stored.
#[derive(Debug, Clone, Copy)]
struct Location {
    term: u64,
    /// First index of its segment.
    segment: u64,
    offset: u64,
    len: u64,
}

/// The durable, segmented Raft log. See the module documentation for the format and the
/// recovery rules.
pub struct DurableLog {
    io: Arc<dyn LogIo>,
    options: LogOptions,
    segments: Vec<Segment>,
    /// Locations of the entries `first_index()..=last_index()`.
    locations: VecDeque<Location>,
    /// The newest `cache.len()` entries.
    cache: VecDeque<Entry>,
    cache_bytes: u64,
    /// The newest snapshot (index 0: none).
    snapshot: Snapshot,
    /// The current state (memory); `sequence` and `watermark` are those of the last write.
    state: StateRecord,
    state_dirty: bool,
    /// Whether the term, vote or membership changed since the last state record (such a
    /// record is written to both state files).
    critical_dirty: bool,
    state_file_len: u64,
    state_copy_len: u64,
    dir_dirty: bool,
    failed: bool,
}

fn io_error(error: LogIoError) -> LogError {
    LogError::Io(error.to_string())
}

impl DurableLog {
    /// Opens the log stored behind `io`, recovering it (see the module documentation); an
    /// empty directory is an empty log.
    pub fn open(io: Arc<dyn LogIo>, options: LogOptions) -> Result<DurableLog, LogError> {
        recovery::open(io, options)
    }

    /// Opens (creating it if missing) the log in the directory `path`, through
    /// [`FileLogIo`].
    pub fn open_dir(path: &Path, options: LogOptions) -> Result<DurableLog, LogError> {
        let io = FileLogIo::open(path).map_err(io_error)?;
        DurableLog::open(Arc::new(io), options)
    }

    /// The limits in force.
    pub fn options(&self) -> &LogOptions {
        &self.options
    }

    /// The stored hard state (as set; durable once synced).
    pub fn hard_state(&self) -> &HardState {
        &self.state.hard_state
    }

    /// The stored membership (as set; durable once synced).
    pub fn conf_state(&self) -> &ConfState {
        &self.state.conf_state
    }

    /// The newest snapshot, if any.
    pub fn latest_snapshot(&self) -> Option<&Snapshot> {
        (self.snapshot.get_metadata().index > 0).then_some(&self.snapshot)
    }

    /// Names of the segment files, oldest first.
    pub fn segment_names(&self) -> Vec<String> {
        self.segments.iter().map(|s| s.name.clone()).collect()
    }

    /// Whether an I/O error made the log refuse writes until reopened.
    pub fn is_failed(&self) -> bool {
        self.failed
    }

    fn first(&self) -> u64 {
        self.snapshot.get_metadata().index + 1
    }

    fn last(&self) -> u64 {
        self.snapshot.get_metadata().index + self.locations.len() as u64
    }

    /// Runs a write, refusing it after an earlier I/O failure and recording a new one.
    fn guarded<T>(
        &mut self,
        write: impl FnOnce(&mut DurableLog) -> Result<T, LogError>,
    ) -> Result<T, LogError> {
        if self.failed {
            return Err(LogError::Io(
                "an earlier I/O error made the log read-only until reopened".to_owned(),
            ));
        }
        let result = write(self);
        if let Err(LogError::Io(_)) = &result {
            self.failed = true;
        }
        result
    }
}

impl LogStore for DurableLog {
    fn append(&mut self, entries: &[Entry]) -> Result<(), LogError> {
        self.guarded(|log| log.append_entries(entries))
    }

    fn set_hard_state(&mut self, hard_state: &HardState) -> Result<(), LogError> {
        self.guarded(|log| log.put_hard_state(hard_state))
    }

    fn set_conf_state(&mut self, conf_state: &ConfState) -> Result<(), LogError> {
        self.guarded(|log| {
            log.state.conf_state = conf_state.clone();
            log.state_dirty = true;
            log.critical_dirty = true;
            Ok(())
        })
    }

    fn apply_snapshot(&mut self, snapshot: &Snapshot) -> Result<(), LogError> {
        self.guarded(|log| log.install_snapshot(snapshot))
    }

    fn compact(
        &mut self,
        index: u64,
        conf_state: &ConfState,
        data: Vec<u8>,
    ) -> Result<(), LogError> {
        self.guarded(|log| log.compact_to(index, conf_state, data))
    }

    fn sync(&mut self) -> Result<(), LogError> {
        self.guarded(DurableLog::sync_all)
    }
}

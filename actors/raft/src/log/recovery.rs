//! Opening a log: reading the state and snapshot files, scanning the segments, repairing a
//! torn tail, and applying the recovery rules of the module documentation.

use super::record::{self, Kind};
use super::state::{self, StateRecord};
use super::{
    io_error, parse_segment_file_name, DurableLog, Location, LogError, LogOptions, Segment,
    SNAPSHOT_FILE, STATE_COPY_FILE, STATE_FILE, TMP_SUFFIX,
};
use crate::io::LogIo;
use protobuf::Message as _;
use raft::eraftpb::{Entry, Snapshot};
use std::collections::VecDeque;
use std::sync::Arc;

fn corrupt(location: String, reason: String) -> LogError {
    LogError::Corrupt { location, reason }
}

/// A scanned segment: the file and the `(index, location)` of each of its entries.
struct Scanned {
    segment: Segment,
    entries: Vec<(u64, Location)>,
}

impl Scanned {
    fn last_index(&self) -> Option<u64> {
        self.entries.last().map(|(index, _)| *index)
    }
}

pub(super) fn open(io: Arc<dyn LogIo>, options: LogOptions) -> Result<DurableLog, LogError> {
    let names = io.list().map_err(io_error)?;
    let tmp: Vec<&String> = names.iter().filter(|n| n.ends_with(TMP_SUFFIX)).collect();
    for name in &tmp {
        io.delete(name).map_err(io_error)?;
    }
    if !tmp.is_empty() {
        io.sync_dir().map_err(io_error)?;
    }
    let (primary, state_file_len) = load_state_file(&*io, &names, STATE_FILE)?;
    let (copy, state_copy_len) = load_state_file(&*io, &names, STATE_COPY_FILE)?;
    // The copy holds only the records that changed the term, vote or membership; the newest
    // of the two is the state.
    let file_state = if copy.sequence > primary.sequence {
        copy
    } else {
        primary
    };
    let (state, snapshot) = match load_snapshot_file(&*io, &names)? {
        Some((embedded, snapshot)) if embedded.sequence > file_state.sequence => {
            (embedded, snapshot)
        }
        Some((_, snapshot)) => (file_state, snapshot),
        None => (file_state, Snapshot::default()),
    };
    let mut cache = VecDeque::new();
    let mut scanned = scan_segments(&*io, &names, state.watermark, &options, &mut cache)?;
    settle(&*io, &mut scanned, &snapshot)?;
    let mut log = DurableLog {
        io,
        options,
        segments: Vec::new(),
        locations: VecDeque::new(),
        cache: VecDeque::new(),
        cache_bytes: 0,
        snapshot,
        state,
        state_dirty: false,
        critical_dirty: false,
        state_file_len,
        state_copy_len,
        dir_dirty: false,
        failed: false,
    };
    assemble(&mut log, scanned, cache)?;
    if log.state.watermark > log.synced_end() {
        // The recorded watermark is past the recovered end (a truncation or a repair whose
        // state record was lost): lower it before new records land below it.
        log.write_state()?;
    }
    Ok(log)
}

/// The newest valid record of the state file (a bad record ends the file: it is a torn
/// append, cut off) and the file's valid length.
fn load_state_file(
    io: &dyn LogIo,
    names: &[String],
    file: &str,
) -> Result<(StateRecord, u64), LogError> {
    if !names.iter().any(|n| n == file) {
        return Ok((StateRecord::default(), 0));
    }
    let bytes = io.read_all(file).map_err(io_error)?;
    let (records, bad) = record::scan(&bytes);
    let mut newest = StateRecord::default();
    for record in &records {
        let location = format!("{file} at offset {}", record.offset);
        if record.kind != Kind::State {
            return Err(corrupt(location, format!("a {:?} record", record.kind)));
        }
        let state = StateRecord::decode(record.payload, &location)?;
        if state.sequence > newest.sequence {
            newest = state;
        }
    }
    let mut len = bytes.len() as u64;
    if let Some(bad) = bad {
        if record::is_followed(&bytes, &bad) {
            // Newer state records follow the bad one: cutting it off would roll the term and
            // the vote back. Refuse instead.
            return Err(corrupt(
                format!("{file} at offset {}", bad.offset),
                format!("{} before newer state records", bad.reason),
            ));
        }
        tracing::warn!(offset = bad.offset, reason = %bad.reason, "raft log: torn state record cut off");
        io.truncate(file, bad.offset).map_err(io_error)?;
        io.sync(file).map_err(io_error)?;
        len = bad.offset;
    }
    Ok((newest, len))
}

fn load_snapshot_file(
    io: &dyn LogIo,
    names: &[String],
) -> Result<Option<(StateRecord, Snapshot)>, LogError> {
    if !names.iter().any(|n| n == SNAPSHOT_FILE) {
        return Ok(None);
    }
    let bytes = io.read_all(SNAPSHOT_FILE).map_err(io_error)?;
    let record = record::decode(&bytes, 0).map_err(|bad| {
        corrupt(
            format!("{SNAPSHOT_FILE} at offset {}", bad.offset),
            bad.reason,
        )
    })?;
    if record.kind != Kind::Snapshot || record.len != bytes.len() as u64 {
        return Err(corrupt(
            SNAPSHOT_FILE.to_owned(),
            "not exactly one snapshot record".to_owned(),
        ));
    }
    state::decode_snapshot(record.payload, SNAPSHOT_FILE).map(Some)
}

/// Scans every segment, oldest first, keeping the newest entries in `cache`.
fn scan_segments(
    io: &dyn LogIo,
    names: &[String],
    watermark: Option<(u64, u64)>,
    options: &LogOptions,
    cache: &mut VecDeque<(Entry, u64)>,
) -> Result<Vec<Scanned>, LogError> {
    let mut firsts: Vec<(u64, &String)> = names
        .iter()
        .filter_map(|name| parse_segment_file_name(name).map(|first| (first, name)))
        .collect();
    firsts.sort();
    let count = firsts.len();
    let mut cache_bytes = 0u64;
    let mut scanned = Vec::with_capacity(count);
    for (position, (first_index, name)) in firsts.into_iter().enumerate() {
        let is_last = position + 1 == count;
        let segment = scan_segment(
            io,
            name,
            first_index,
            is_last,
            watermark,
            cache,
            &mut cache_bytes,
        )?;
        while cache_bytes > options.entry_cache_bytes_max {
            let Some((_, size)) = cache.pop_front() else {
                break;
            };
            cache_bytes -= size;
        }
        scanned.push(segment);
    }
    Ok(scanned)
}

fn scan_segment(
    io: &dyn LogIo,
    name: &str,
    first_index: u64,
    is_last: bool,
    watermark: Option<(u64, u64)>,
    cache: &mut VecDeque<(Entry, u64)>,
    cache_bytes: &mut u64,
) -> Result<Scanned, LogError> {
    let bytes = io.read_all(name).map_err(io_error)?;
    let (records, bad) = record::scan(&bytes);
    let mut entries = Vec::with_capacity(records.len());
    for (position, record) in records.iter().enumerate() {
        let location = format!("{name} at offset {}", record.offset);
        let expected = first_index + position as u64;
        if record.kind != Kind::Entry {
            return Err(corrupt(
                location,
                format!("a {:?} record in a segment", record.kind),
            ));
        }
        let entry = Entry::parse_from_bytes(record.payload).map_err(|error| {
            corrupt(location.clone(), format!("entry does not decode: {error}"))
        })?;
        if entry.index != expected {
            return Err(corrupt(
                location,
                format!("entry {} where {expected} was expected", entry.index),
            ));
        }
        entries.push((
            expected,
            Location {
                term: entry.term,
                segment: first_index,
                offset: record.offset,
                len: record.len,
            },
        ));
        *cache_bytes += record.payload.len() as u64;
        cache.push_back((entry, record.payload.len() as u64));
    }
    let len = match bad {
        Some(bad) => cut_torn_tail(io, name, (first_index, is_last), watermark, &bytes, &bad)?,
        None => bytes.len() as u64,
    };
    let segment = Segment {
        first_index,
        name: name.to_owned(),
        len,
        dirty: false,
    };
    Ok(Scanned { segment, entries })
}

/// A bad record in a segment: only a torn tail (in the last segment, after the synced
/// watermark, with nothing after it) is cut off; anything else is corruption. Returns the
/// segment's length after the cut.
fn cut_torn_tail(
    io: &dyn LogIo,
    name: &str,
    (first_index, is_last): (u64, bool),
    watermark: Option<(u64, u64)>,
    bytes: &[u8],
    bad: &record::BadRecord,
) -> Result<u64, LogError> {
    let location = format!("{name} at offset {}", bad.offset);
    if !is_last {
        return Err(corrupt(
            location,
            format!("{} in a segment that is not the last", bad.reason),
        ));
    }
    if record::is_followed(bytes, bad) {
        return Err(corrupt(
            location,
            format!("{} before further records: not a torn tail", bad.reason),
        ));
    }
    if let Some((segment, synced)) = watermark.filter(|(segment, _)| *segment == first_index) {
        if bad.offset < synced {
            return Err(corrupt(
                location,
                format!(
                    "{} below the synced length {synced} of log-{segment}",
                    bad.reason
                ),
            ));
        }
    }
    tracing::warn!(file = name, offset = bad.offset, reason = %bad.reason, "raft log: torn tail cut off");
    io.truncate(name, bad.offset).map_err(io_error)?;
    io.sync(name).map_err(io_error)?;
    Ok(bad.offset)
}

/// Recovery rule 3: segments of a history the snapshot replaced, segments wholly below the
/// snapshot, and an empty last segment are deleted.
fn settle(io: &dyn LogIo, scanned: &mut Vec<Scanned>, snapshot: &Snapshot) -> Result<(), LogError> {
    let (index, term) = (snapshot.get_metadata().index, snapshot.get_metadata().term);
    let stale = index > 0
        && scanned.iter().any(|s| {
            s.entries
                .iter()
                .any(|(at, location)| *at == index && location.term != term)
        });
    if stale {
        tracing::warn!(
            snapshot_index = index,
            "raft log: segments replaced by the snapshot deleted"
        );
        while let Some(segment) = scanned.pop() {
            io.delete(&segment.segment.name).map_err(io_error)?;
            io.sync_dir().map_err(io_error)?;
        }
        return Ok(());
    }
    let count = scanned.len();
    if let Some(empty) = scanned[..count.saturating_sub(1)]
        .iter()
        .find(|s| s.entries.is_empty())
    {
        return Err(corrupt(
            empty.segment.name.clone(),
            "empty segment that is not the last".to_owned(),
        ));
    }
    let doomed: Vec<bool> = scanned
        .iter()
        .map(|s| s.last_index().is_none_or(|last| last <= index))
        .collect();
    if !doomed.iter().any(|d| *d) {
        return Ok(());
    }
    for (segment, _) in scanned.iter().zip(&doomed).rev().filter(|(_, d)| **d) {
        io.delete(&segment.segment.name).map_err(io_error)?;
    }
    io.sync_dir().map_err(io_error)?;
    let mut doomed = doomed.into_iter();
    scanned.retain(|_| !doomed.next().unwrap_or(false));
    Ok(())
}

/// Recovery rule 4: contiguity, terms, commit; then the index and the cache.
fn assemble(
    log: &mut DurableLog,
    scanned: Vec<Scanned>,
    cache: VecDeque<(Entry, u64)>,
) -> Result<(), LogError> {
    let (index, mut term) = (
        log.snapshot.get_metadata().index,
        log.snapshot.get_metadata().term,
    );
    let mut previous_last: Option<u64> = None;
    for segment in scanned {
        let first = segment.segment.first_index;
        let expected = previous_last.map_or(index + 1, |last| last + 1);
        let starts_right = match previous_last {
            Some(_) => first == expected,
            None => first <= expected,
        };
        if !starts_right {
            return Err(corrupt(
                segment.segment.name,
                format!("starts at {first}, {expected} expected"),
            ));
        }
        for (at, location) in segment.entries.iter().filter(|(at, _)| *at > index) {
            if location.term < term {
                return Err(corrupt(
                    format!("{} at offset {}", segment.segment.name, location.offset),
                    format!(
                        "entry {at} has term {} below the previous {term}",
                        location.term
                    ),
                ));
            }
            term = location.term;
            log.locations.push_back(*location);
        }
        previous_last = segment.last_index();
        log.segments.push(segment.segment);
    }
    if log.state.hard_state.commit > log.last() {
        return Err(corrupt(
            STATE_FILE.to_owned(),
            format!(
                "commit {} beyond the last index {}",
                log.state.hard_state.commit,
                log.last()
            ),
        ));
    }
    let (first, last) = (log.first(), log.last());
    let kept = cache
        .into_iter()
        .filter(|(entry, _)| (first..=last).contains(&entry.index));
    for (entry, size) in kept {
        log.cache.push_back(entry);
        log.cache_bytes += size;
    }
    Ok(())
}

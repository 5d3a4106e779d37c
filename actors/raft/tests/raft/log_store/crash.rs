//! Power failures at every operation of a small workload under every crash mode, and media
//! corruption.

use super::model::{conf_state, entry, hard_state, Model};
use super::{open, small_options};
use inferadb_raft::io::{LogCrashMode, LogFaultPlan, LogIo, MemoryLogIo};
use inferadb_raft::log::{segment_file_name, DurableLog, LogOptions};
use inferadb_raft::store::{LogError, LogStore};
use raft::eraftpb::{Entry, Snapshot};
use raft::{GetEntriesContext, Storage};
use std::sync::Arc;

enum Step {
    Append(Vec<Entry>),
    HardState(u64, u64, u64),
    Compact(u64),
    ApplySnapshot(u64, u64),
    Sync,
}

fn run(from: u64, to: u64, term: u64) -> Step {
    Step::Append(
        (from..=to)
            .map(|i| entry(i, term, &[i as u8; 30]))
            .collect(),
    )
}

/// Appends (with conflicting suffixes), hard states, syncs, a compaction and a snapshot from
/// a leader, with segments of 256 bytes so that it rolls, truncates and deletes segments.
fn workload() -> Vec<Step> {
    vec![
        run(1, 5, 1),
        Step::HardState(1, 1, 0),
        Step::Sync,
        run(6, 12, 1),
        Step::HardState(1, 1, 5),
        Step::Sync,
        run(10, 14, 2),
        Step::HardState(2, 2, 9),
        Step::Sync,
        Step::Compact(8),
        run(15, 20, 2),
        Step::Sync,
        Step::ApplySnapshot(25, 3),
        Step::Sync,
        run(26, 30, 3),
        Step::HardState(3, 3, 28),
        Step::Sync,
        run(29, 31, 4),
        Step::HardState(4, 0, 28),
    ]
}

fn apply(step: &Step, log: &mut DurableLog, model: &mut Model) -> Result<(), LogError> {
    match step {
        Step::Append(entries) => {
            model.append(entries);
            log.append(entries)
        }
        Step::HardState(term, vote, commit) => {
            model.set_hard_state(&hard_state(*term, *vote, *commit));
            log.set_hard_state(&hard_state(*term, *vote, *commit))
        }
        Step::Compact(index) => {
            model.compact(*index, &conf_state(3), b"machine");
            log.compact(*index, &conf_state(3), b"machine".to_vec())
        }
        Step::ApplySnapshot(index, term) => {
            let mut snapshot = Snapshot {
                data: b"leader".to_vec().into(),
                ..Snapshot::default()
            };
            snapshot.mut_metadata().index = *index;
            snapshot.mut_metadata().term = *term;
            snapshot.mut_metadata().set_conf_state(conf_state(3));
            model.apply_snapshot(&snapshot);
            log.apply_snapshot(&snapshot)
        }
        Step::Sync => log.sync(),
    }
}

/// Runs the workload until the first failure. Returns the candidate states a recovery may
/// show: the model at the last successful sync, then after every later step (the failed one
/// included, as if it had completed).
fn run_until_failure(io: &Arc<MemoryLogIo>) -> Vec<Model> {
    let mut log = open(io).unwrap();
    let mut model = Model::default();
    let mut candidates = vec![model.fork()];
    for step in workload() {
        let result = apply(&step, &mut log, &mut model);
        candidates.push(model.fork());
        match result {
            Ok(()) if matches!(step, Step::Sync) => candidates = vec![model.fork()],
            Ok(()) => {}
            Err(LogError::Io(_)) => break,
            Err(other) => panic!("unexpected error {other}"),
        }
    }
    candidates
}

fn term_or_compacted(model: &Model, index: u64) -> Option<u64> {
    match model.log.term(index) {
        Ok(term) => Some(term),
        Err(raft::Error::Store(raft::StorageError::Compacted)) => None,
        Err(_) => Some(u64::MAX),
    }
}

/// The recovered log is one candidate's log (on its own range), holds everything synced that
/// no candidate up to that one replaced, and its state is one that was set.
fn check_recovered(recovered: &DurableLog, candidates: &[Model], context: &str) {
    let state = recovered.initial_state().unwrap();
    assert!(
        candidates
            .iter()
            .any(|c| c.hard_state() == state.hard_state && c.conf_state() == state.conf_state),
        "{context}: recovered state {:?} was never set",
        state
    );
    let (first, last) = (
        recovered.first_index().unwrap(),
        recovered.last_index().unwrap(),
    );
    let entries = recovered
        .entries(first, last + 1, None, GetEntriesContext::empty(false))
        .unwrap();
    // Entries synced and never replaced by any later step (the failed one may have been
    // half done) must survive; compacted ones count as kept.
    let synced = &candidates[0];
    let floor = candidates
        .iter()
        .map(|candidate| {
            (1..=synced.last())
                .take_while(|&i| {
                    let theirs = term_or_compacted(candidate, i);
                    theirs.is_none() || theirs == term_or_compacted(synced, i)
                })
                .last()
                .unwrap_or(0)
        })
        .min()
        .unwrap_or(0);
    let matched = last >= floor
        && candidates.iter().any(|candidate| {
            candidate.first() == first
                && last <= candidate.last()
                && (first > last
                    || candidate
                        .log
                        .entries(first, last + 1, None, GetEntriesContext::empty(false))
                        .unwrap()
                        == entries)
        });
    assert!(
        matched,
        "{context}: recovered log {first}..={last} matches no candidate or is below {floor} (synced {}..={})",
        synced.first(),
        synced.last()
    );
}

fn modes(point: u64) -> Vec<LogCrashMode> {
    let mut modes = vec![
        LogCrashMode::LoseUnsynced,
        LogCrashMode::KeepUnsynced,
        LogCrashMode::TearLast,
    ];
    modes.extend((0..3).map(|n| LogCrashMode::Random {
        seed: point * 31 + n,
    }));
    modes
}

#[test]
fn a_power_failure_at_every_operation_loses_nothing_synced() {
    let total = {
        let io = Arc::new(MemoryLogIo::new());
        run_until_failure(&io);
        io.operations()
    };
    assert!(total > 40, "the workload issues {total} operations");
    for point in 0..=total {
        let io = Arc::new(MemoryLogIo::new());
        io.set_fault_plan(LogFaultPlan {
            crash_at_operation: Some(point),
            ..LogFaultPlan::default()
        });
        let candidates = run_until_failure(&io);
        for mode in modes(point) {
            let context = format!("crash at operation {point}, {mode:?}");
            let image = Arc::new(MemoryLogIo::from_image(io.crash_image(mode)));
            let mut recovered = open(&image).unwrap_or_else(|e| panic!("{context}: {e}"));
            check_recovered(&recovered, &candidates, &context);
            // The recovered log accepts new writes and reopens to the same thing.
            let next = recovered.last_index().unwrap() + 1;
            let term = recovered
                .term(next - 1)
                .unwrap()
                .max(recovered.hard_state().term);
            recovered.append(&[entry(next, term, b"after")]).unwrap();
            recovered.sync().unwrap();
            let again = open(&image).unwrap_or_else(|e| panic!("{context}, reopened: {e}"));
            assert_eq!(again.last_index().unwrap(), next, "{context}");
        }
    }
}

#[test]
fn write_and_sync_errors_fail_the_operation_and_lose_nothing_synced() {
    for plan in [
        LogFaultPlan {
            fail_append_number: Some(3),
            ..LogFaultPlan::default()
        },
        LogFaultPlan {
            fail_sync_number: Some(4),
            ..LogFaultPlan::default()
        },
        LogFaultPlan {
            fail_sync_number: Some(9),
            ..LogFaultPlan::default()
        },
    ] {
        let io = Arc::new(MemoryLogIo::new());
        io.set_fault_plan(plan.clone());
        let candidates = run_until_failure(&io);
        assert!(!io.crashed());
        let image = Arc::new(MemoryLogIo::from_image(
            io.crash_image(LogCrashMode::LoseUnsynced),
        ));
        let recovered = open(&image).unwrap();
        check_recovered(&recovered, &candidates, &format!("{plan:?}"));
    }
}

/// A log of 30 entries in several segments, all synced.
fn synced_log() -> (Arc<MemoryLogIo>, Vec<String>) {
    let io = Arc::new(MemoryLogIo::new());
    let mut log = open(&io).unwrap();
    let entries: Vec<_> = (1..=30).map(|i| entry(i, 1, &[i as u8; 30])).collect();
    log.append(&entries).unwrap();
    log.set_hard_state(&hard_state(1, 1, 20)).unwrap();
    log.sync().unwrap();
    let names = log.segment_names();
    assert!(names.len() >= 3, "{names:?}");
    (io, names)
}

#[test]
fn a_bit_flip_in_an_earlier_segment_is_corruption_naming_the_file() {
    let (io, names) = synced_log();
    io.flip_bit(&names[1], 20, 3);
    match open(&io) {
        Err(LogError::Corrupt { location, .. }) => {
            assert!(location.contains(&names[1]), "{location}")
        }
        other => panic!("expected corruption, got {:?}", other.map(|_| ())),
    }
}

#[test]
fn a_bit_flip_in_a_synced_record_of_the_last_segment_is_corruption() {
    let (io, names) = synced_log();
    let last = names.last().unwrap();
    io.flip_bit(last, 20, 0); // inside its first record, which is followed by others
    match open(&io) {
        Err(LogError::Corrupt { location, reason }) => {
            assert!(location.contains(last.as_str()), "{location}: {reason}")
        }
        other => panic!("expected corruption, got {:?}", other.map(|_| ())),
    }
}

#[test]
fn a_torn_tail_is_cut_off_silently() {
    let (io, names) = synced_log();
    let mut log = open(&io).unwrap();
    log.append(
        &(31..=33)
            .map(|i| entry(i, 1, &[0u8; 30]))
            .collect::<Vec<_>>(),
    )
    .unwrap();
    drop(log);
    let image = Arc::new(MemoryLogIo::from_image(
        io.crash_image(LogCrashMode::TearLast),
    ));
    let log = open(&image).unwrap();
    assert!(
        (30..33).contains(&log.last_index().unwrap()),
        "{}",
        log.last_index().unwrap()
    );
    assert_eq!(log.hard_state().commit, 20);
    assert!(log.segment_names().starts_with(&names[..names.len() - 1]));
}

#[test]
fn a_damaged_snapshot_file_is_corruption() {
    let (io, _) = synced_log();
    let mut log = open(&io).unwrap();
    log.compact(10, &conf_state(3), b"machine".to_vec())
        .unwrap();
    drop(log);
    io.flip_bit("snapshot", 30, 1);
    assert!(matches!(open(&io), Err(LogError::Corrupt { .. })));
}

#[test]
fn segment_names_sort_by_index() {
    assert_eq!(segment_file_name(42), "log-00000000000000000042.seg");
    let options = LogOptions::default();
    assert_eq!(options.segment_size_max, 64 << 20);
    assert_eq!(small_options().segment_size_max, 256);
    let _: Arc<dyn LogIo> = Arc::new(MemoryLogIo::new());
}

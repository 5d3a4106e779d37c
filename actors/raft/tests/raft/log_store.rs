//! The durable Raft log ([`DurableLog`]) against raft-rs's `MemStorage` as the reference
//! model, under power failures and media corruption (`MemoryLogIo`), and on real files.

mod crash;
mod model;

use inferadb_raft::io::{LogCrashMode, LogIo, MemoryLogIo};
use inferadb_raft::log::{DurableLog, LogOptions};
use inferadb_raft::store::{LogError, LogStore};
use model::{assert_same_reads, conf_state, entry, hard_state, Model};
use proptest::prelude::*;
use raft::eraftpb::Snapshot;
use raft::{GetEntriesContext, Storage};
use std::sync::Arc;

/// Small limits so that a few entries roll segments and fall out of the cache.
fn small_options() -> LogOptions {
    LogOptions {
        segment_size_max: 256,
        entry_cache_bytes_max: 200,
        state_file_size_max: 300,
    }
}

fn open(io: &Arc<MemoryLogIo>) -> Result<DurableLog, LogError> {
    DurableLog::open(io.clone() as Arc<dyn LogIo>, small_options())
}

#[derive(Debug, Clone)]
enum Op {
    Append {
        back: u8,
        count: u8,
        bump: u8,
        size: u8,
    },
    HardState {
        bump: u8,
        vote: u8,
        commit: u8,
    },
    ConfState {
        voters: u8,
    },
    Compact {
        at: u8,
    },
    ApplySnapshot {
        ahead: u8,
        bump: u8,
        voters: u8,
    },
    Sync,
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0u8..6, 1u8..8, 0u8..3, 0u8..60)
            .prop_map(|(back, count, bump, size)| Op::Append { back, count, bump, size }),
        3 => (0u8..2, 0u8..4, any::<u8>())
            .prop_map(|(bump, vote, commit)| Op::HardState { bump, vote, commit }),
        1 => (1u8..6).prop_map(|voters| Op::ConfState { voters }),
        2 => any::<u8>().prop_map(|at| Op::Compact { at }),
        1 => (0u8..12, 0u8..2, 1u8..6)
            .prop_map(|(ahead, bump, voters)| Op::ApplySnapshot { ahead, bump, voters }),
        2 => Just(Op::Sync),
        2 => Just(Op::Reopen),
    ]
}

/// Applies `op` to both the log and the model (resolving it against the model's state so
/// it is always a legal Raft-like operation).
fn apply(op: &Op, log: &mut DurableLog, io: &mut Arc<MemoryLogIo>, model: &mut Model) {
    let (first, last, hs) = (model.first(), model.last(), model.hard_state());
    match *op {
        Op::Append {
            back,
            count,
            bump,
            size,
        } => {
            let start = (last + 1)
                .saturating_sub(u64::from(back))
                .max(hs.commit + 1)
                .max(first);
            let term = model.log.term(start - 1).unwrap() + u64::from(bump);
            let entries: Vec<_> = (start..start + u64::from(count))
                .map(|i| entry(i, term, &vec![i as u8; usize::from(size)]))
                .collect();
            log.append(&entries).unwrap();
            model.append(&entries);
        }
        Op::HardState { bump, vote, commit } => {
            let span = last - hs.commit;
            let commit = hs.commit + span * u64::from(commit) / 255;
            let next = hard_state(hs.term + u64::from(bump), u64::from(vote), commit);
            log.set_hard_state(&next).unwrap();
            model.set_hard_state(&next);
        }
        Op::ConfState { voters } => {
            log.set_conf_state(&conf_state(u64::from(voters))).unwrap();
            model.set_conf_state(&conf_state(u64::from(voters)));
        }
        Op::Compact { at } => {
            let top = hs.commit.min(last);
            let index = first - 1 + u64::from(at) % (top + 2 - first);
            let data = format!("state machine at {index}").into_bytes();
            log.compact(index, &conf_state(3), data.clone()).unwrap();
            model.compact(index, &conf_state(3), &data);
        }
        Op::ApplySnapshot {
            ahead,
            bump,
            voters,
        } => {
            let mut snapshot = Snapshot {
                data: vec![ahead; 5].into(),
                ..Snapshot::default()
            };
            let last_term = model.log.term(last).unwrap();
            snapshot.mut_metadata().index = first + u64::from(ahead);
            snapshot.mut_metadata().term = last_term.max(hs.term) + u64::from(bump);
            snapshot
                .mut_metadata()
                .set_conf_state(conf_state(u64::from(voters)));
            log.apply_snapshot(&snapshot).unwrap();
            model.apply_snapshot(&snapshot);
        }
        Op::Sync => log.sync().unwrap(),
        Op::Reopen => {
            log.sync().unwrap();
            let image = io.crash_image(LogCrashMode::LoseUnsynced);
            *io = Arc::new(MemoryLogIo::from_image(image));
            *log = open(io).unwrap();
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn the_durable_log_reads_like_mem_storage(ops in prop::collection::vec(op(), 1..40)) {
        let mut io = Arc::new(MemoryLogIo::new());
        let mut log = open(&io).unwrap();
        let mut model = Model::default();
        for (step, op) in ops.iter().enumerate() {
            apply(op, &mut log, &mut io, &mut model);
            assert_same_reads(&log, &model, &format!("step {step} ({op:?})"));
        }
    }
}

#[test]
fn misuse_is_an_error_and_changes_nothing() {
    let io = Arc::new(MemoryLogIo::new());
    let mut log = open(&io).unwrap();
    log.append(&[entry(1, 1, b"a"), entry(2, 1, b"b")]).unwrap();
    let gap = log.append(&[entry(4, 1, b"d")]);
    assert!(matches!(gap, Err(LogError::Misuse(_))), "{gap:?}");
    let decreasing = log.append(&[entry(3, 2, b""), entry(4, 1, b"")]);
    assert!(matches!(decreasing, Err(LogError::Misuse(_))));
    let below = log.append(&[entry(3, 0, b"")]);
    assert!(
        matches!(below, Err(LogError::Misuse(_))),
        "term below the previous entry's"
    );
    let commit = log.set_hard_state(&hard_state(1, 0, 3));
    assert!(
        matches!(commit, Err(LogError::Misuse(_))),
        "commit beyond the last index"
    );
    log.set_hard_state(&hard_state(1, 0, 2)).unwrap();
    let committed = log.append(&[entry(2, 2, b"")]);
    assert!(
        matches!(committed, Err(LogError::Misuse(_))),
        "replaces a committed entry"
    );
    let compact = log.compact(3, &conf_state(1), Vec::new());
    assert!(
        matches!(compact, Err(LogError::Misuse(_))),
        "compact past the last index"
    );
    assert_eq!(log.last_index().unwrap(), 2);
    let past = log.entries(1, 4, None, GetEntriesContext::empty(false));
    assert_eq!(
        past,
        Err(raft::Error::Store(raft::StorageError::Unavailable))
    );
    assert_eq!(
        log.snapshot(0, 2),
        Err(raft::Error::Store(
            raft::StorageError::SnapshotTemporarilyUnavailable
        ))
    );
}

#[test]
fn an_io_error_makes_the_log_refuse_writes_until_reopened() {
    use inferadb_raft::io::LogFaultPlan;
    let io = Arc::new(MemoryLogIo::new());
    let mut log = open(&io).unwrap();
    log.append(&[entry(1, 1, b"a")]).unwrap();
    io.set_fault_plan(LogFaultPlan {
        fail_sync_number: Some(0),
        ..LogFaultPlan::default()
    });
    assert!(matches!(log.sync(), Err(LogError::Io(_))));
    assert!(log.is_failed());
    assert!(matches!(
        log.append(&[entry(2, 1, b"b")]),
        Err(LogError::Io(_))
    ));
    assert_eq!(
        log.entries(1, 2, None, GetEntriesContext::empty(false))
            .unwrap()
            .len(),
        1
    );
    let mut reopened = open(&io).unwrap();
    reopened.append(&[entry(2, 1, b"b")]).unwrap();
    reopened.sync().unwrap();
}

#[test]
fn file_log_io_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let options = LogOptions {
        segment_size_max: 1024,
        ..LogOptions::default()
    };
    let mut log = DurableLog::open_dir(dir.path(), options.clone()).unwrap();
    let entries: Vec<_> = (1..=100)
        .map(|i| entry(i, 1 + i / 50, &[7u8; 40]))
        .collect();
    log.append(&entries).unwrap();
    log.set_hard_state(&hard_state(3, 1, 60)).unwrap();
    log.set_conf_state(&conf_state(3)).unwrap();
    log.sync().unwrap();
    let segments = log.segment_names();
    assert!(segments.len() > 5, "{segments:?}");
    drop(log);

    let mut log = DurableLog::open_dir(dir.path(), options.clone()).unwrap();
    let all = log
        .entries(1, 101, None, GetEntriesContext::empty(false))
        .unwrap();
    assert_eq!(all, entries);
    assert_eq!(
        log.initial_state().unwrap().hard_state,
        hard_state(3, 1, 60)
    );
    // A conflicting suffix from index 80, then compaction up to 70.
    log.append(&[entry(80, 3, b"new 80"), entry(81, 3, b"new 81")])
        .unwrap();
    log.compact(60, &conf_state(3), b"machine".to_vec())
        .unwrap();
    log.sync().unwrap();
    let after = log.segment_names();
    assert!(after.len() < segments.len(), "{after:?}");
    assert!(
        !after.contains(&segments[0]),
        "the oldest segment was deleted"
    );
    drop(log);

    let on_disk: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.ends_with(".seg"))
        .collect();
    assert_eq!(on_disk.len(), after.len());
    let log = DurableLog::open_dir(dir.path(), options).unwrap();
    assert_eq!(
        (log.first_index().unwrap(), log.last_index().unwrap()),
        (61, 81)
    );
    assert_eq!(log.term(80).unwrap(), 3);
    assert_eq!(log.term(79).unwrap(), 2);
    assert_eq!(log.snapshot(60, 2).unwrap().data.as_ref(), b"machine");
    let tail = log
        .entries(79, 82, None, GetEntriesContext::empty(false))
        .unwrap();
    assert_eq!(tail[1].data.as_ref(), b"new 80");
}

#[test]
fn a_second_process_cannot_open_a_locked_directory() {
    let dir = tempfile::tempdir().unwrap();
    let _log = DurableLog::open_dir(dir.path(), LogOptions::default()).unwrap();
    assert!(matches!(
        DurableLog::open_dir(dir.path(), LogOptions::default()),
        Err(LogError::Io(_))
    ));
}

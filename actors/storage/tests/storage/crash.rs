//! Crash-consistency suite. A deterministic workload runs over the fault-injecting
//! `MemoryIo`; the power fails at every single I/O operation in turn (and, separately, at
//! random points of a larger workload), and the disk image is taken under each crash
//! mode (unsynced writes lost, kept, torn, or a random mix). After reopening, the
//! database must pass `verify()` and equal exactly the last acknowledged commit — or the
//! commit that was in flight, which may or may not have reached the disk — and it must
//! accept further writes.

use crate::common::{apply, dump, key, open_memory, small_limits, Model};
use inferadb_storage::io::{CrashMode, FaultPlan, MemoryIo};
use inferadb_storage::{Database, Durability, StorageError};
use std::sync::Arc;

type Change = (Vec<u8>, Option<Vec<u8>>);

/// A deterministic workload: transactions of inserts, overwrites (some with overflow
/// values) and removes.
fn workload(seed: u64, transactions: usize) -> Vec<Vec<Change>> {
    let mut state = seed;
    let mut next = move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        state >> 33
    };
    (0..transactions)
        .map(|_| {
            (0..1 + next() % 40)
                .map(|_| {
                    let key = key(next() % 150);
                    match next() % 10 {
                        0..=2 => (key, None),
                        3 => (key, Some(vec![7u8; 700 + (next() % 900) as usize])),
                        _ => (key, Some(format!("value-{}", next()).into_bytes())),
                    }
                })
                .collect()
        })
        .collect()
}

fn apply_to_model(model: &Model, changes: &[Change]) -> Model {
    let mut next = model.clone();
    for (key, value) in changes {
        match value {
            Some(value) => next.insert(key.clone(), value.clone()),
            None => next.remove(key),
        };
    }
    next
}

/// Applies one transaction; `Err` when the injected crash interrupted it.
fn try_apply(
    db: &Database,
    changes: &[Change],
    durability: Durability,
) -> Result<(), StorageError> {
    let mut write = db.begin_write()?;
    write.set_durability(durability);
    {
        let mut table = write.open_table("t")?;
        for (key, value) in changes {
            match value {
                Some(value) => table.insert(key, value).map(|_| ())?,
                None => table.remove(key).map(|_| ())?,
            }
        }
    }
    write.commit()
}

struct Outcome {
    acknowledged: Model,
    in_flight: Option<Model>,
}

/// Runs the workload until the injected crash; returns what was acknowledged.
fn run_until_crash(db: &Database, transactions: &[Vec<Change>]) -> Outcome {
    let mut acknowledged = Model::new();
    for changes in transactions {
        let next = apply_to_model(&acknowledged, changes);
        match try_apply(db, changes, Durability::Immediate) {
            Ok(()) => acknowledged = next,
            Err(_) => {
                return Outcome {
                    acknowledged,
                    in_flight: Some(next),
                }
            }
        }
    }
    Outcome {
        acknowledged,
        in_flight: None,
    }
}

const MODES: [CrashMode; 5] = [
    CrashMode::LoseUnsynced,
    CrashMode::KeepUnsynced,
    CrashMode::TearLast,
    CrashMode::Random { seed: 1 },
    CrashMode::Random { seed: 2 },
];

/// Reopens the crash image and checks the recovered state and that it accepts writes.
fn check_recovery(image: Vec<u8>, outcome: &Outcome, context: &str) {
    let io = Arc::new(MemoryIo::from_image(image));
    let db = open_memory(&io, small_limits());
    db.verify()
        .unwrap_or_else(|error| panic!("{context}: verify failed: {error}"));
    let recovered = dump(&db, "t");
    let matches_in_flight = outcome.in_flight.as_ref() == Some(&recovered);
    assert!(
        recovered == outcome.acknowledged || matches_in_flight,
        "{context}: recovered state is neither the acknowledged nor the in-flight commit"
    );
    let extra: Vec<Change> = (0..30)
        .map(|index| (key(index * 5), Some(b"after".to_vec())))
        .collect();
    apply(&db, "t", &extra, Durability::Immediate);
    db.verify()
        .unwrap_or_else(|error| panic!("{context}: verify after recovery write: {error}"));
    assert_eq!(dump(&db, "t"), apply_to_model(&recovered, &extra));
}

/// Runs the workload with the power failing at its `operation`-th I/O operation; returns
/// the store, the outcome and how many operations the workload issued.
fn crash_at(transactions: &[Vec<Change>], operation: u64) -> (Arc<MemoryIo>, Outcome, u64) {
    let io = Arc::new(MemoryIo::default());
    let db = open_memory(&io, small_limits());
    let start = io.operations();
    io.set_fault_plan(FaultPlan {
        crash_at_operation: Some(start + operation),
        ..FaultPlan::default()
    });
    let outcome = run_until_crash(&db, transactions);
    drop(db);
    let issued = io.operations() - start;
    (io, outcome, issued)
}

#[test]
fn crash_at_every_operation_of_the_commit_protocol() {
    let transactions = workload(42, 12);
    let (_, _, total) = crash_at(&transactions, u64::MAX / 2);
    assert!(
        total > 40,
        "the workload must issue many operations, issued {total}"
    );
    let mut crashed_mid_commit = 0;
    for operation in 0..total {
        let (io, outcome, _) = crash_at(&transactions, operation);
        assert!(io.crashed(), "operation {operation} must crash");
        crashed_mid_commit += usize::from(outcome.in_flight.is_some());
        for mode in MODES {
            let context = format!("crash at operation {operation}/{total}, {mode:?}");
            check_recovery(io.crash_image(mode), &outcome, &context);
        }
    }
    assert_eq!(
        crashed_mid_commit as u64, total,
        "every crash point interrupts a commit"
    );
    println!(
        "crash suite: {total} crash points x {} modes recovered",
        MODES.len()
    );
}

#[test]
fn crash_at_random_points_of_a_long_workload() {
    for seed in 0..6u64 {
        let transactions = workload(1000 + seed, 40);
        let (_, _, total) = crash_at(&transactions, u64::MAX / 2);
        for round in 0..8u64 {
            let operation = (seed * 7919 + round * 104_729) % total;
            let (io, outcome, _) = crash_at(&transactions, operation);
            let mode = CrashMode::Random {
                seed: seed * 100 + round,
            };
            check_recovery(
                io.crash_image(mode),
                &outcome,
                &format!("seed {seed} op {operation}"),
            );
        }
    }
}

#[test]
fn write_and_sync_errors_poison_the_database_and_recovery_is_clean() {
    for failure in 0..2 {
        let io = Arc::new(MemoryIo::default());
        let db = open_memory(&io, small_limits());
        let first: Vec<Change> = (0..50)
            .map(|index| (key(index), Some(b"one".to_vec())))
            .collect();
        apply(&db, "t", &first, Durability::Immediate);
        io.set_fault_plan(FaultPlan {
            fail_write_number: (failure == 0).then_some(0),
            fail_sync_number: (failure == 1).then_some(1),
            ..FaultPlan::default()
        });
        let second: Vec<Change> = (0..50)
            .map(|index| (key(index), Some(b"two".to_vec())))
            .collect();
        assert!(
            try_apply(&db, &second, Durability::Immediate).is_err(),
            "the commit must fail"
        );
        assert!(matches!(db.begin_write(), Err(StorageError::Poisoned)));
        let outcome = Outcome {
            acknowledged: apply_to_model(&Model::new(), &first),
            in_flight: Some(apply_to_model(&Model::new(), &second)),
        };
        drop(db);
        check_recovery(
            io.crash_image(CrashMode::LoseUnsynced),
            &outcome,
            "after an I/O error",
        );
    }
}

#[test]
fn deferred_commits_become_durable_at_sync_and_a_crash_before_loses_only_them() {
    let io = Arc::new(MemoryIo::default());
    let db = open_memory(&io, small_limits());
    let synced: Vec<Change> = (0..40)
        .map(|index| (key(index), Some(b"synced".to_vec())))
        .collect();
    apply(&db, "t", &synced, Durability::Deferred);
    db.sync().expect("sync");
    let deferred: Vec<Change> = (0..40)
        .map(|index| (key(index), Some(b"deferred".to_vec())))
        .collect();
    apply(&db, "t", &deferred, Durability::Deferred);
    apply(&db, "t", &deferred[..10], Durability::Deferred);
    assert_eq!(
        dump(&db, "t"),
        apply_to_model(&Model::new(), &deferred),
        "readers see deferred commits"
    );
    for mode in MODES {
        let outcome = Outcome {
            acknowledged: apply_to_model(&Model::new(), &synced),
            in_flight: None,
        };
        check_recovery(
            io.crash_image(mode),
            &outcome,
            &format!("deferred, {mode:?}"),
        );
    }
    db.sync().expect("sync");
    let outcome = Outcome {
        acknowledged: apply_to_model(&Model::new(), &deferred),
        in_flight: None,
    };
    check_recovery(
        io.crash_image(CrashMode::LoseUnsynced),
        &outcome,
        "after the second sync",
    );
}

/// Regression (found by the model test): an `Immediate` transaction that changed nothing
/// returned without writing, so commits deferred before it were lost in a crash although
/// the caller had just been told its view was durable.
#[test]
fn an_unchanged_immediate_commit_makes_earlier_deferred_commits_durable() {
    let io = Arc::new(MemoryIo::default());
    let db = open_memory(&io, small_limits());
    let deferred: Vec<Change> = vec![(key(0), Some(b"deferred".to_vec()))];
    apply(&db, "t", &deferred, Durability::Deferred);
    apply(&db, "t", &[(key(1), None)], Durability::Immediate);
    let outcome = Outcome {
        acknowledged: apply_to_model(&Model::new(), &deferred),
        in_flight: None,
    };
    check_recovery(
        io.crash_image(CrashMode::LoseUnsynced),
        &outcome,
        "empty immediate commit",
    );
}

/// A sync runs in two steps so writers need not wait for its fsyncs: commits between
/// `begin_sync` and `finish` overwrite and remove what the noted commit holds, releasing
/// its pages. Those pages must not be reused before the noted commit's meta is on disk:
/// whatever happens to the later (unsynced) writes, a crash recovers the noted commit
/// exactly, or a later one a second sync made durable.
#[test]
fn commits_during_a_sync_never_damage_the_commit_it_makes_durable() {
    for seed in 0..12u64 {
        let transactions = workload(seed, 30);
        let (before, during) = transactions.split_at(12);
        let io = Arc::new(MemoryIo::default());
        let db = open_memory(&io, small_limits());
        let mut noted = Model::new();
        for changes in before {
            try_apply(&db, changes, Durability::Deferred).expect("commit");
            noted = apply_to_model(&noted, changes);
        }
        let pending = db.begin_sync().expect("begin sync");
        let mut latest = noted.clone();
        for changes in during {
            try_apply(&db, changes, Durability::Deferred).expect("commit during the sync");
            latest = apply_to_model(&latest, changes);
        }
        pending.finish().expect("finish the sync");
        let outcome = Outcome {
            acknowledged: noted.clone(),
            in_flight: None,
        };
        for mode in MODES {
            check_recovery(
                io.crash_image(mode),
                &outcome,
                &format!("seed {seed}, {mode:?}"),
            );
        }
        // A second sync makes the later commits durable too.
        db.sync().expect("second sync");
        let outcome = Outcome {
            acknowledged: latest,
            in_flight: None,
        };
        check_recovery(
            io.crash_image(CrashMode::LoseUnsynced),
            &outcome,
            &format!("seed {seed}, after the second sync"),
        );
    }
}

//! Crash-consistency suite. A deterministic workload runs over the fault-injecting
//! `MemoryIo`; the power fails at every single I/O operation in turn (and, separately, at
//! random points of a larger workload), and the disk image is taken under each crash
//! mode (unsynced writes lost, kept, torn, or a random mix). After reopening, the
//! database must pass `verify()` and equal exactly the last acknowledged commit — or the
//! commit that was in flight, which may or may not have reached the disk — and it must
//! accept further writes.

use crate::common::{apply, dump, key, open_memory, small_limits, Model};
use inferadb_storage::io::{CrashMode, FaultPlan, MemoryIo};
use inferadb_storage::{Database, Durability, PendingSync, StorageError};
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

/// Deferred commits of `before`, a sync begun, then deferred commits of `during` while it
/// is in flight.
struct AroundSync {
    io: Arc<MemoryIo>,
    db: Database,
    /// The state the sync makes durable (every commit of `before`).
    noted: Model,
    /// The state after every commit.
    latest: Model,
    pending: PendingSync,
}

fn commits_around_a_begun_sync(before: &[Vec<Change>], during: &[Vec<Change>]) -> AroundSync {
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
    AroundSync {
        io,
        db,
        noted,
        latest,
        pending,
    }
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
        let AroundSync {
            io,
            db,
            noted,
            latest,
            pending,
        } = commits_around_a_begun_sync(before, during);
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

/// Deferred commits, a sync begun and dropped unfinished (its job failed or was
/// cancelled), more deferred commits, then an `Immediate` commit: the `Immediate` commit
/// makes everything before it durable, whatever the dropped sync left behind.
#[test]
fn an_immediate_commit_after_a_dropped_sync_makes_everything_durable() {
    for seed in 0..8u64 {
        let transactions = workload(seed + 100, 24);
        let (before, rest) = transactions.split_at(8);
        let (during, after) = rest.split_at(8);
        let AroundSync {
            io,
            db,
            latest: mut model,
            pending,
            ..
        } = commits_around_a_begun_sync(before, during);
        drop(pending);
        for (index, changes) in after.iter().enumerate() {
            let durability = if index + 1 == after.len() {
                Durability::Immediate
            } else {
                Durability::Deferred
            };
            try_apply(&db, changes, durability).expect("commit after the dropped sync");
            model = apply_to_model(&model, changes);
        }
        let outcome = Outcome {
            acknowledged: model,
            in_flight: None,
        };
        for mode in MODES {
            check_recovery(
                io.crash_image(mode),
                &outcome,
                &format!("seed {seed}, {mode:?}"),
            );
        }
    }
}

/// An `Immediate` transaction without changes while a sync is in flight makes the newest
/// commit durable (it promises the state it saw is durable); the sync finishing afterwards
/// must neither write its older meta over it nor make the next commit's meta write land on
/// the slot that holds it: the power fails at every operation of the next `Immediate`
/// commit, and recovery finds that commit or everything before it.
#[test]
fn an_unchanged_immediate_commit_during_a_sync_is_not_undone_by_the_sync() {
    let scenario = |seed: u64, crash_at: Option<u64>| {
        let transactions = workload(seed + 200, 17);
        let (before, rest) = transactions.split_at(8);
        let (during, last) = rest.split_at(8);
        let AroundSync {
            io,
            db,
            latest: model,
            pending,
            ..
        } = commits_around_a_begun_sync(before, during);
        try_apply(&db, &[], Durability::Immediate).expect("unchanged immediate commit");
        pending.finish().expect("finish the older sync");
        let start = io.operations();
        io.set_fault_plan(FaultPlan {
            crash_at_operation: crash_at.map(|operation| start + operation),
            ..FaultPlan::default()
        });
        let next = apply_to_model(&model, &last[0]);
        let committed = try_apply(&db, &last[0], Durability::Immediate).is_ok();
        let issued = io.operations() - start;
        drop(db);
        let outcome = Outcome {
            acknowledged: if committed { next.clone() } else { model },
            in_flight: Some(next),
        };
        (io, outcome, issued)
    };
    for seed in 0..4u64 {
        let (_, _, issued) = scenario(seed, None);
        for operation in 0..=issued {
            let (io, outcome, _) = scenario(seed, Some(operation));
            for mode in MODES {
                check_recovery(
                    io.crash_image(mode),
                    &outcome,
                    &format!("seed {seed}, crash at operation {operation}, {mode:?}"),
                );
            }
        }
    }
}

/// The power fails at every I/O operation of a two-step sync of deferred commits (the
/// free-list chain written at `begin_sync`, the data fsync, the meta page, the last fsync),
/// with deferred commits running between its steps: recovery finds the last durable
/// commit or the one the sync noted, never anything else.
#[test]
fn a_crash_at_any_operation_of_a_two_step_sync_recovers_either_side() {
    let transactions = workload(300, 20);
    let (base, rest) = transactions.split_at(4);
    let (noted, during) = rest.split_at(8);
    let run = |crash_at: Option<u64>| {
        let io = Arc::new(MemoryIo::default());
        let db = open_memory(&io, small_limits());
        let mut durable = Model::new();
        for changes in base {
            try_apply(&db, changes, Durability::Immediate).expect("durable commit");
            durable = apply_to_model(&durable, changes);
        }
        let mut synced = durable.clone();
        for changes in noted {
            try_apply(&db, changes, Durability::Deferred).expect("deferred commit");
            synced = apply_to_model(&synced, changes);
        }
        let start = io.operations();
        io.set_fault_plan(FaultPlan {
            crash_at_operation: crash_at.map(|operation| start + operation),
            ..FaultPlan::default()
        });
        let finished = db.begin_sync().and_then(|pending| {
            for changes in during {
                // After the power fails these fail too; the sync's outcome is what counts.
                let _ = try_apply(&db, changes, Durability::Deferred);
            }
            pending.finish()
        });
        let issued = io.operations() - start;
        drop(db);
        let outcome = Outcome {
            acknowledged: if finished.is_ok() {
                synced.clone()
            } else {
                durable
            },
            in_flight: finished.is_err().then_some(synced),
        };
        (io, outcome, issued)
    };
    let (_, _, issued) = run(None);
    assert!(
        issued > 4,
        "the sync and the commits issued {issued} operations"
    );
    for operation in 0..issued {
        let (io, outcome, _) = run(Some(operation));
        for mode in MODES {
            check_recovery(
                io.crash_image(mode),
                &outcome,
                &format!("crash at operation {operation}, {mode:?}"),
            );
        }
    }
}

//! Leases for singleton jobs in the shard machine: a takeover fences the old holder,
//! snapshots carry the table, and a crash and replay neither re-grants nor loses an epoch.

use inferadb_raft::group::StateMachine;
use inferadb_shard::{Lease, ShardAnswer, ShardCommand, ShardMachine};
use inferadb_storage::io::CrashMode;
use proptest::prelude::*;

use crate::common::{
    apply_entries, encoded, fingerprint, lease_holder, lease_print, machine, Spec,
};

fn acquire(job: &str, holder: u64, duration_ms: u64, now_ms: u64) -> ShardCommand {
    ShardCommand::AcquireLease {
        job: job.into(),
        holder,
        duration_ms,
        now_ms,
    }
}

fn renew(job: &str, holder: u64, epoch: u64, duration_ms: u64, now_ms: u64) -> ShardCommand {
    ShardCommand::RenewLease {
        job: job.into(),
        holder,
        epoch,
        duration_ms,
        now_ms,
    }
}

fn release(job: &str, holder: u64, epoch: u64) -> ShardCommand {
    ShardCommand::ReleaseLease {
        job: job.into(),
        holder,
        epoch,
    }
}

/// Applies commands from index `first` on; returns the answers.
fn apply(machine: &mut ShardMachine, first: u64, commands: &[ShardCommand]) -> Vec<ShardAnswer> {
    let entries: Vec<Vec<u8>> = commands.iter().map(ShardCommand::encode).collect();
    apply_entries(machine, first, &entries)
}

fn refusal_kind(answer: &ShardAnswer) -> &str {
    match answer {
        ShardAnswer::Refused { kind, .. } => kind,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn granted(epoch: u64, expires_at_ms: u64) -> ShardAnswer {
    ShardAnswer::LeaseGranted {
        epoch,
        expires_at_ms,
    }
}

#[test]
fn a_lapsed_holder_is_fenced_by_the_next_epoch() {
    let (mut machine, _) = machine();
    let answers = apply(
        &mut machine,
        1,
        &[
            acquire("gc", 1, 1_000, 10_000),
            renew("gc", 1, 1, 1_000, 10_500),
            // Node 2 is refused while node 1's lease runs, and told until when.
            acquire("gc", 2, 1_000, 11_000),
        ],
    );
    assert_eq!(answers[..2], [granted(1, 11_000), granted(1, 11_500)]);
    assert_eq!(refusal_kind(&answers[2]), "lease_held");
    assert!(
        format!("{:?}", answers[2]).contains("held by node 1 until 11500"),
        "{answers:?}"
    );
    assert!(machine.leases().check("gc", 1, 11_499));

    // Node 1 stops renewing (paused, partitioned); its lease lapses at 11 500.
    assert!(!machine.leases().check("gc", 1, 11_500));
    let answers = apply(
        &mut machine,
        4,
        &[
            acquire("gc", 2, 1_000, 12_000),
            renew("gc", 1, 1, 1_000, 12_100),
            release("gc", 1, 1),
            acquire("gc", 1, 1_000, 12_200),
        ],
    );
    assert_eq!(answers[0], granted(2, 13_000));
    assert_eq!(refusal_kind(&answers[1]), "lease_not_held");
    assert_eq!(refusal_kind(&answers[2]), "lease_not_held");
    assert_eq!(refusal_kind(&answers[3]), "lease_held");
    // Only the new epoch validates, at any time; the old one never again.
    let leases = machine.leases();
    for now_ms in [10_000, 11_000, 12_000, 12_999] {
        assert!(!leases.check("gc", 1, now_ms));
        assert!(leases.check("gc", 2, now_ms));
    }
    assert!(!leases.check("gc", 2, 13_000));
    assert_eq!(
        leases.get("gc"),
        Some(&Lease {
            holder: 2,
            epoch: 2,
            expires_at_ms: 13_000
        })
    );

    // Node 2 releases; node 1 comes back with a third epoch.
    let answers = apply(
        &mut machine,
        8,
        &[release("gc", 2, 2), acquire("gc", 1, 500, 12_500)],
    );
    assert_eq!(answers, [ShardAnswer::LeaseReleased, granted(3, 13_000)]);
    assert!(!machine.leases().check("gc", 2, 12_600));
    assert_eq!(machine.applied_index(), 9);
}

#[test]
fn lease_refusals_change_nothing_and_say_why() {
    let (mut machine, _) = machine();
    let answers = apply(
        &mut machine,
        1,
        &[
            acquire("GC!", 1, 1_000, 0),
            acquire("gc", 1, 0, 0),
            acquire("gc", 1, 60_001, 0),
            renew("gc", 1, 1, 1_000, 0),
            release("gc", 1, 1),
            acquire("gc", 1, 100, 0),
            renew("gc", 1, 1, 100, 100),
        ],
    );
    let kinds: Vec<&str> = answers
        .iter()
        .map(|answer| match answer {
            ShardAnswer::LeaseGranted { .. } => "granted",
            other => refusal_kind(other),
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "lease_job_invalid",
            "lease_duration_invalid",
            "lease_duration_invalid",
            "lease_not_held",
            "lease_not_held",
            "granted",
            "lease_expired",
        ]
    );
    assert_eq!(machine.leases().last_epoch(), 1);
    assert_eq!(machine.applied_index(), 7);
}

#[test]
fn a_snapshot_carries_the_leases_and_the_epoch_counter() {
    let (mut source, _) = machine();
    apply(
        &mut source,
        1,
        &[
            acquire("gc", 1, 1_000, 0),
            acquire("rebalance", 2, 1_000, 0),
            acquire("compact", 3, 1_000, 0),
            release("compact", 3, 3),
        ],
    );
    let (mut target, target_disk) = machine();
    apply(&mut target, 1, &[acquire("other", 9, 1_000, 0)]);
    target.restore(&source.snapshot());
    assert_eq!(target.fatal(), None);
    assert_eq!(lease_print(&target), lease_print(&source));
    assert_eq!(target.leases().last_epoch(), 3);
    assert!(target.leases().get("other").is_none());
    // Both grant the same next epoch, and the restored table is durable.
    let next = [acquire("compact", 4, 1_000, 10)];
    assert_eq!(apply(&mut target, 5, &next), [granted(4, 1_010)]);
    assert_eq!(apply(&mut source, 5, &next), [granted(4, 1_010)]);
    drop(target);
    assert_eq!(lease_print(&target_disk.open()), lease_print(&source));
}

#[test]
fn a_snapshot_of_format_1_restores_without_leases_and_bad_leases_are_refused() {
    let (mut source, _) = machine();
    let snapshot = source.snapshot();
    assert_eq!(snapshot[0], 2);
    // Format 1 is format 2 without `u64 last_epoch ‖ u32 count`.
    let mut old = snapshot[..snapshot.len() - 12].to_vec();
    old[0] = 1;
    let (mut target, _) = machine();
    apply(&mut target, 1, &[acquire("gc", 1, 1_000, 0)]);
    target.restore(&old);
    assert_eq!(target.fatal(), None);
    assert_eq!(lease_print(&target), (0, Vec::new()));

    // A lease whose epoch is above the counter is not a snapshot this version writes.
    apply(&mut source, 1, &[acquire("gc", 1, 1_000, 0)]);
    let mut bad = source.snapshot();
    let at = bad.len() - 4 - 2 - 24 - 12; // the counter: before the count and the lease
    bad[at..at + 8].copy_from_slice(&0u64.to_be_bytes());
    let (mut target, _) = machine();
    target.restore(&bad);
    assert!(
        target.fatal().unwrap().contains("leases"),
        "{:?}",
        target.fatal()
    );
}

/// Lease commands only, so the catalog's durable index is exactly the last sync.
fn lease_specs() -> impl Strategy<Value = Vec<Spec>> {
    let spec = (0..3u8, 0..2u8, lease_holder(), 0..4u8, 1..4u8).prop_map(
        |(kind, job, holder, epoch, duration)| Spec::Lease {
            kind,
            job,
            holder,
            epoch,
            duration,
        },
    );
    prop::collection::vec(spec, 2..40)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn a_crash_and_replay_neither_re_grants_nor_loses_an_epoch(
        specs in lease_specs(),
        sync_percent in 0u64..100,
        replay_extra in 0u64..6,
    ) {
        let entries = encoded(&specs, 1);
        let total = entries.len() as u64;
        let sync_at = total * sync_percent / 100;
        let (mut reference, _) = machine();
        let expected = apply_entries(&mut reference, 1, &entries);
        // The table as it was after each entry.
        let (mut stepper, _) = machine();
        let mut after = vec![lease_print(&stepper)];
        for (offset, entry) in entries.iter().enumerate() {
            stepper.apply_command(offset as u64 + 1, entry);
            after.push(lease_print(&stepper));
        }

        let (mut member, disk) = machine();
        apply_entries(&mut member, 1, &entries[..sync_at as usize]);
        member.sync().unwrap();
        apply_entries(&mut member, sync_at + 1, &entries[sync_at as usize..]);
        let survived = disk.crash_copy(CrashMode::LoseUnsynced);
        drop(member);

        // The durable table is exactly the table at the durable applied index.
        let mut restarted = survived.open();
        prop_assert_eq!(restarted.applied_index(), sync_at);
        prop_assert_eq!(&lease_print(&restarted), &after[sync_at as usize]);
        // Entries at or below it are skipped (no second grant); the rest grant exactly the
        // epochs they granted before the crash.
        let from = sync_at.saturating_sub(replay_extra).max(1);
        let answers = apply_entries(&mut restarted, from, &entries[from as usize - 1..]);
        for (offset, answer) in answers.iter().enumerate() {
            let index = from + offset as u64;
            if index <= sync_at {
                prop_assert_eq!(answer, &ShardAnswer::AlreadyApplied);
            } else {
                prop_assert_eq!(answer, &expected[index as usize - 1]);
            }
        }
        prop_assert_eq!(fingerprint(&restarted), fingerprint(&reference));
        // The next grant's epoch is above every epoch issued before the crash.
        let issued = expected.iter().filter_map(|answer| match answer {
            ShardAnswer::LeaseGranted { epoch, .. } => Some(*epoch),
            _ => None,
        });
        let highest = issued.max().unwrap_or(0);
        let next = apply(&mut restarted, total + 1, &[acquire("fresh", 1, 1_000, 0)]);
        prop_assert_eq!(&next, &[granted(highest + 1, 1_000)]);
    }
}

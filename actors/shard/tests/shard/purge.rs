//! `PurgeExpired`: a singleton job's side effect that removes expired relationships as one
//! block on every replica alike, fenced by the job's lease epoch: in shard 0 (which has the
//! lease) applied only under the job's current lease, in a data shard (which has none) only
//! under an epoch at least the highest it has accepted.

use std::collections::BTreeMap;

use inferadb_protocols::{Revision, VaultId};
use inferadb_raft::group::StateMachine;
use inferadb_shard::snapshot::{SNAPSHOT_FORMAT, SNAPSHOT_FORMAT_NO_FENCES};
use inferadb_shard::{LeaseLimits, ShardAnswer, ShardCommand, ShardMachine, ShardOptions};
use inferadb_storage::io::CrashMode;
use inferadb_vault::{Mutation, WriteBatch};

use proptest::prelude::*;

use crate::common::{
    apply_entries, encoded, fingerprint, machine, prologue, prologue_with_lease, purge_spec,
    relationship, Disk, Spec, SCHEMA,
};

const VAULT: VaultId = VaultId(0x100);

fn acquire(holder: u64, duration_ms: u64, now_ms: u64) -> ShardCommand {
    ShardCommand::AcquireLease {
        job: "gc".into(),
        holder,
        duration_ms,
        now_ms,
    }
}

fn purge(now_ms: u64, limit: u32, holder: u64, epoch: u64) -> ShardCommand {
    ShardCommand::PurgeExpired {
        vault: VAULT,
        now_ms,
        limit,
        job: "gc".into(),
        holder,
        epoch,
    }
}

/// Vault 0x100 with `SCHEMA` and relationships expiring at 1 100, 1 200 and never, written
/// at 1 000 (indexes 1 to 3).
fn setup() -> Vec<ShardCommand> {
    let mutations = vec![
        Mutation::Create(relationship(0, Some(1_100))),
        Mutation::Create(relationship(1, Some(1_200))),
        Mutation::Create(relationship(4, None)),
        Mutation::Create(relationship(8, Some(1_100))),
    ];
    vec![
        ShardCommand::CreateVault {
            id: VAULT,
            name: "alpha".into(),
            now_ms: 1_000,
        },
        ShardCommand::DeploySchema {
            vault: VAULT,
            text: SCHEMA.into(),
            now_ms: 1_000,
        },
        ShardCommand::Write {
            vault: VAULT,
            batch: WriteBatch {
                mutations,
                preconditions: Vec::new(),
            },
            now_ms: 1_000,
        },
    ]
}

/// Applies commands from index `first` on; returns the answers.
fn apply(machine: &mut ShardMachine, first: u64, commands: &[ShardCommand]) -> Vec<ShardAnswer> {
    let entries: Vec<Vec<u8>> = commands.iter().map(ShardCommand::encode).collect();
    apply_entries(machine, first, &entries)
}

/// The refusal's kind and message.
fn refusal(answer: &ShardAnswer) -> (&str, &str) {
    match answer {
        ShardAnswer::Refused {
            kind,
            message,
            detail,
        } => {
            assert!(detail.is_empty(), "{answer:?}");
            (kind, message)
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn stored(machine: &ShardMachine) -> u64 {
    let vault = machine.vault(VAULT).unwrap();
    vault.snapshot().unwrap().relationship_count()
}

#[test]
fn in_shard_0_a_purge_applies_only_under_the_current_epoch_of_its_holder() {
    let (mut machine, _) = machine();
    apply(&mut machine, 1, &setup());
    assert_eq!(stored(&machine), 4);
    let answers = apply(
        &mut machine,
        4,
        &[
            acquire(1, 100, 1_150),
            // The wrong holder with the right epoch.
            purge(1_160, 10, 2, 1),
            // Node 1 lapses at 1 250; node 2 takes over with epoch 2.
            purge(1_250, 10, 1, 1),
            acquire(2, 1_000, 1_260),
            // The stale holder, even with time left on its old clock, is fenced.
            purge(1_200, 10, 1, 1),
        ],
    );
    assert!(matches!(
        answers[0],
        ShardAnswer::LeaseGranted { epoch: 1, .. }
    ));
    let (kind, message) = refusal(&answers[1]);
    assert_eq!(kind, "lease_fenced");
    assert!(
        message.contains("the current epoch is 1 (node 1, until 1250 ms)"),
        "{message}"
    );
    let (kind, message) = refusal(&answers[2]);
    assert_eq!(kind, "lease_fenced");
    assert!(
        message.contains("no epoch is current (epoch 1 of node 1 expired at 1250 ms)"),
        "{message}"
    );
    assert!(matches!(
        answers[3],
        ShardAnswer::LeaseGranted { epoch: 2, .. }
    ));
    let (kind, message) = refusal(&answers[4]);
    assert_eq!(kind, "lease_fenced");
    assert!(message.contains("the current epoch is 2"), "{message}");
    // Nothing was purged, no block was made, no epoch was accepted.
    assert_eq!(stored(&machine), 4);
    assert_eq!(machine.vault(VAULT).unwrap().revision(), Revision(2));
    assert!(machine.fence_epochs().is_empty());

    // The current holder, with the current epoch, purges: one block, in key order, at
    // most `limit`.
    let answers = apply(
        &mut machine,
        9,
        &[
            purge(1_300, 2, 2, 2),
            purge(1_300, 2, 2, 2),
            purge(1_300, 2, 2, 2),
        ],
    );
    let written = |revision, removed| ShardAnswer::Written {
        revision: Revision(revision),
        inserted: 0,
        removed,
    };
    assert_eq!(answers, [written(3, 2), written(4, 1), written(4, 0)]);
    assert_eq!(stored(&machine), 1);
    let report = machine
        .vault(VAULT)
        .unwrap()
        .snapshot()
        .unwrap()
        .verify_ledger()
        .unwrap();
    assert!(report.holds, "{:?}", report.problems);
    assert_eq!(machine.applied_index(), 11);
    // The accepted epoch is recorded, as a data shard records it.
    assert_eq!(machine.fence_epochs(), &fences(&[("gc", 2)]));
}

/// A fence table.
fn fences(jobs: &[(&str, u64)]) -> BTreeMap<String, u64> {
    jobs.iter()
        .map(|(job, epoch)| ((*job).to_owned(), *epoch))
        .collect()
}

fn vault_not_found(answer: &ShardAnswer) -> bool {
    matches!(
        answer.catalog_error(),
        Some(inferadb_vault::CatalogError::VaultNotFound { id: VAULT })
    )
}

#[test]
fn the_fence_is_checked_before_the_vault_exists() {
    // Shard 0: by the lease.
    let (mut machine, _) = machine();
    let answers = apply(
        &mut machine,
        1,
        &[acquire(1, 100, 10), purge(20, 1, 2, 1), purge(20, 1, 1, 1)],
    );
    assert_eq!(refusal(&answers[1]).0, "lease_fenced");
    assert!(vault_not_found(&answers[2]), "{:?}", answers[2]);
    // A data shard: by the token, which a purge of a missing vault raises all the same.
    let (mut machine, _) = crate::common::machine();
    let answers = apply(&mut machine, 1, &[purge(10, 1, 1, 2), purge(20, 1, 1, 1)]);
    assert!(vault_not_found(&answers[0]), "{:?}", answers[0]);
    assert_eq!(refusal(&answers[1]).0, "lease_fenced");
    assert_eq!(machine.fence_epochs(), &fences(&[("gc", 2)]));
}

fn purge_job(job: &str, epoch: u64) -> ShardCommand {
    let ShardCommand::PurgeExpired {
        vault,
        now_ms,
        limit,
        holder,
        ..
    } = purge(1_300, 10, 7, epoch)
    else {
        unreachable!()
    };
    ShardCommand::PurgeExpired {
        vault,
        now_ms,
        limit,
        job: job.into(),
        holder,
        epoch,
    }
}

fn written(answer: &ShardAnswer) -> bool {
    matches!(answer, ShardAnswer::Written { .. })
}

/// A data shard's machine (no lease) with `setup()`'s vault, after purges by epochs 3 and
/// 5 (indexes 4 and 5): the second one raised the fence to 5.
fn fenced_data_shard() -> (ShardMachine, Disk) {
    let (mut machine, disk) = machine();
    apply(&mut machine, 1, &setup());
    let answers = apply(
        &mut machine,
        4,
        &[purge(1_150, 1, 7, 3), purge(1_150, 1, 8, 5)],
    );
    assert!(answers.iter().all(written), "{answers:?}");
    assert!(machine.leases().is_empty());
    assert_eq!(machine.fence_epochs(), &fences(&[("gc", 5)]));
    (machine, disk)
}

/// The epoch-4 purge a data shard fenced at 5 refuses, naming the highest epoch it saw.
fn assert_epoch_4_is_fenced(machine: &mut ShardMachine, index: u64) {
    assert_epoch_4_is_fenced_at(machine, index, 5);
}

/// The epoch-4 purge a data shard fenced at `highest` refuses, changing nothing.
fn assert_epoch_4_is_fenced_at(machine: &mut ShardMachine, index: u64, highest: u64) {
    let before = stored(machine);
    let answers = apply(machine, index, &[purge(1_300, 10, 7, 4)]);
    let (kind, message) = refusal(&answers[0]);
    assert_eq!(kind, "lease_fenced");
    assert!(
        message.contains("node 7 with epoch 4 is fenced off job `gc` on this shard")
            && message.contains(&format!("the highest epoch seen is {highest}")),
        "{message}"
    );
    assert_eq!(stored(machine), before);
    assert_eq!(machine.fence_epochs(), &fences(&[("gc", highest)]));
    assert_eq!(machine.applied_index(), index);
}

#[test]
fn a_data_shard_admits_purges_by_the_highest_epoch_it_has_seen() {
    let (mut machine, _) = fenced_data_shard();
    // Epochs 3 then 5 purged one relationship each.
    assert_eq!(stored(&machine), 2);
    assert_epoch_4_is_fenced(&mut machine, 6);
    let answers = apply(
        &mut machine,
        7,
        &[
            // The highest holder again (any node: the token is the epoch).
            purge(1_300, 10, 9, 5),
            purge_job("gc", 0),
            purge_job("Not valid", 9),
            // Another job has a fence of its own.
            purge_job("rebalance", 1),
            purge_job("rebalance", 6),
            purge_job("rebalance", 2),
        ],
    );
    assert!(written(&answers[0]), "{:?}", answers[0]);
    assert_eq!(stored(&machine), 1);
    let (kind, message) = refusal(&answers[1]);
    assert_eq!(kind, "lease_fenced");
    assert!(message.contains("epoch 0 is never granted"), "{message}");
    let (kind, message) = refusal(&answers[2]);
    assert_eq!(kind, "lease_fenced");
    assert!(
        message.contains("the job name is not 1 to 64 bytes"),
        "{message}"
    );
    assert!(written(&answers[3]) && written(&answers[4]), "{answers:?}");
    assert!(refusal(&answers[5])
        .1
        .contains("the highest epoch seen is 6"));
    assert_eq!(
        machine.fence_epochs(),
        &fences(&[("gc", 5), ("rebalance", 6)])
    );
    assert_eq!(machine.applied_index(), 12);
}

#[test]
fn a_data_shard_fence_table_is_bounded() {
    let disk = Disk::new();
    let options = ShardOptions {
        lease: LeaseLimits {
            leases_max: 2,
            ..LeaseLimits::default()
        },
        ..ShardOptions::default()
    };
    let mut machine = disk.open_with(options);
    let answers = apply(
        &mut machine,
        1,
        &[
            purge_job("a", 1),
            purge_job("b", 1),
            purge_job("c", 1),
            purge_job("a", 2),
        ],
    );
    assert!(vault_not_found(&answers[0]) && vault_not_found(&answers[1]));
    let (kind, message) = refusal(&answers[2]);
    assert_eq!(kind, "lease_fenced");
    assert!(
        message.contains("the fence table is full (2 jobs)"),
        "{message}"
    );
    assert!(vault_not_found(&answers[3]));
    assert_eq!(machine.fence_epochs(), &fences(&[("a", 2), ("b", 1)]));
}

#[test]
fn a_data_shard_keeps_its_fence_across_a_restart() {
    let (machine, disk) = fenced_data_shard();
    machine.sync().unwrap();
    drop(machine);
    let mut reopened = disk.open();
    assert_eq!(reopened.applied_index(), 5);
    assert_epoch_4_is_fenced(&mut reopened, 6);

    // Unsynced, the fence raised by the purge at index 7 is lost with its applied index;
    // the log re-delivers the purge, which raises it again (its vault part is skipped when
    // the vault kept it).
    let answers = apply(&mut reopened, 7, &[purge(1_300, 10, 8, 6)]);
    assert!(written(&answers[0]), "{answers:?}");
    assert_eq!(reopened.fence_epochs(), &fences(&[("gc", 6)]));
    let catalog = disk.crash_copy(CrashMode::LoseUnsynced).catalog;
    drop(reopened); // closes cleanly: the vault file keeps the purge
    let mut restarted = Disk {
        catalog,
        files: disk.files.clone(),
    }
    .open();
    assert_eq!(restarted.applied_index(), 5);
    assert_eq!(restarted.fence_epochs(), &fences(&[("gc", 5)]));
    assert_epoch_4_is_fenced(&mut restarted, 6);
    let replayed = apply(&mut restarted, 7, &[purge(1_300, 10, 8, 6)]);
    assert_eq!(replayed, [ShardAnswer::AlreadyApplied]);
    assert_eq!(restarted.fence_epochs(), &fences(&[("gc", 6)]));
    assert_epoch_4_is_fenced_at(&mut restarted, 8, 6);
}

#[test]
fn a_snapshot_carries_the_fence_epochs() {
    let (source, _) = fenced_data_shard();
    let snapshot = source.snapshot();
    assert_eq!(snapshot[0], SNAPSHOT_FORMAT);
    // The target had a life of its own, its fence included.
    let (mut target, target_disk) = crate::common::machine();
    apply(&mut target, 1, &[purge_job("rebalance", 9)]);
    target.restore(&snapshot);
    assert_eq!(target.fatal(), None);
    assert_eq!(fingerprint(&target), fingerprint(&source));
    assert_eq!(target.snapshot(), snapshot);
    assert_epoch_4_is_fenced(&mut target, 6);
    drop(target);
    let mut reopened = target_disk.open();
    assert_eq!(reopened.fence_epochs(), &fences(&[("gc", 5)]));
    assert_epoch_4_is_fenced(&mut reopened, 7);
    let answers = apply(&mut reopened, 8, &[purge(1_300, 10, 8, 6)]);
    assert!(written(&answers[0]), "{answers:?}");
}

#[test]
fn older_snapshot_formats_restore_with_no_fence_epochs() {
    let (mut source, _) = machine();
    apply(
        &mut source,
        1,
        &[ShardCommand::PlaceVault {
            id: VAULT,
            name: "alpha".into(),
            data_shards: 1,
        }],
    );
    let four = source.snapshot();
    assert_eq!(four[0], SNAPSHOT_FORMAT_NO_FENCES);
    let (empty, _) = machine();
    let two = empty.snapshot();
    for old in [&four, &two] {
        let (mut target, _) = fenced_data_shard();
        target.restore(old);
        assert_eq!(target.fatal(), None);
        assert!(target.fence_epochs().is_empty());
    }
    // Format 5 with no fence epochs decodes as its format-4 twin, and re-encodes as it.
    let mut five = four.clone();
    five[0] = SNAPSHOT_FORMAT;
    five.extend_from_slice(&0u32.to_be_bytes());
    let (mut target, _) = machine();
    target.restore(&five);
    assert_eq!(target.fatal(), None);
    assert_eq!(fingerprint(&target), fingerprint(&source));
    assert_eq!(target.snapshot(), four);
}

#[test]
fn a_snapshot_with_bad_fence_epochs_stops_the_machine() {
    let (mut source, _) = machine();
    apply(&mut source, 1, &[purge_job("ab", 1), purge_job("cd", 2)]);
    let snapshot = source.snapshot();
    // The tail is two fences of u32 length ‖ 2 job bytes ‖ u64 epoch.
    let second = snapshot.len() - 14;
    let first = second - 14;
    let restore = |bytes: &[u8]| {
        let (mut target, _) = machine();
        target.restore(bytes);
        target.fatal().map(str::to_owned)
    };
    assert_eq!(restore(&snapshot), None);
    let mut zero = snapshot.clone();
    zero[second + 6..].copy_from_slice(&0u64.to_be_bytes());
    let fatal = restore(&zero).unwrap();
    assert!(fatal.contains("epoch 0 is never granted"), "{fatal}");
    let mut out_of_order = snapshot.clone();
    out_of_order[first + 4..first + 6].copy_from_slice(b"cd");
    let fatal = restore(&out_of_order).unwrap();
    assert!(fatal.contains("out of order or repeated"), "{fatal}");
    let mut invalid = snapshot.clone();
    invalid[second + 4] = b'C';
    let fatal = restore(&invalid).unwrap();
    assert!(fatal.contains("invalid job name"), "{fatal}");
}

#[test]
fn in_shard_0_a_purge_after_a_release_is_held_to_the_highest_epoch_seen() {
    let (mut machine, _) = machine();
    apply(&mut machine, 1, &setup());
    let release = |holder, epoch| ShardCommand::ReleaseLease {
        job: "gc".into(),
        holder,
        epoch,
    };
    let answers = apply(
        &mut machine,
        4,
        &[
            acquire(1, 1_000, 1_150),
            purge(1_150, 1, 1, 1),
            release(1, 1),
            acquire(2, 1_000, 1_160),
            purge(1_160, 1, 2, 2),
            release(2, 2),
            // No lease any more: the token rule holds node 1 to epoch 2.
            purge(1_170, 1, 1, 1),
            purge(1_170, 1, 2, 2),
        ],
    );
    assert!(written(&answers[1]) && written(&answers[4]), "{answers:?}");
    assert!(machine.leases().get("gc").is_none());
    assert!(refusal(&answers[6])
        .1
        .contains("the highest epoch seen is 2"));
    assert!(written(&answers[7]), "{:?}", answers[7]);
    assert_eq!(machine.fence_epochs(), &fences(&[("gc", 2)]));
}

#[test]
fn replicas_purge_alike_and_a_replayed_purge_is_skipped() {
    let mut commands = setup();
    commands.extend([
        acquire(1, 1_000, 1_150),
        purge(1_150, 100, 1, 1),
        purge(1_250, 100, 1, 1),
    ]);
    let entries: Vec<Vec<u8>> = commands.iter().map(ShardCommand::encode).collect();
    let (mut first, disk) = machine();
    let (mut second, _) = machine();
    let mut answers = apply_entries(&mut first, 1, &entries[..4]);
    // Everything up to the lease grant is durable; the purges are not, yet.
    first.sync().unwrap();
    answers.extend(apply_entries(&mut first, 5, &entries[4..]));
    assert_eq!(apply_entries(&mut second, 1, &entries), answers);
    assert_eq!(
        answers[4..],
        [
            ShardAnswer::Written {
                revision: Revision(3),
                inserted: 0,
                removed: 2,
            },
            ShardAnswer::Written {
                revision: Revision(4),
                inserted: 0,
                removed: 1,
            },
        ]
    );
    assert_eq!(fingerprint(&first), fingerprint(&second));
    let first_vault = first.vault(VAULT).unwrap();
    let second_vault = second.vault(VAULT).unwrap();
    assert_eq!(first_vault.state_root(), second_vault.state_root());
    assert_eq!(first_vault.head_hash(), second_vault.head_hash());

    // The vault file reached the disk (it closes cleanly), the catalog's record of the
    // purges did not: re-delivered after the restart, they are in the vault already and are
    // skipped, not applied twice.
    let catalog = disk.crash_copy(CrashMode::LoseUnsynced).catalog;
    let before = fingerprint(&first);
    drop(first);
    let mut restarted = Disk {
        catalog,
        files: disk.files.clone(),
    }
    .open();
    assert_eq!(restarted.applied_index(), 4);
    assert_eq!(
        apply_entries(&mut restarted, 5, &entries[4..]),
        [ShardAnswer::AlreadyApplied, ShardAnswer::AlreadyApplied]
    );
    assert_eq!(fingerprint(&restarted), before);
}

/// Touches of vault 0's relationships, most of them expiring a command or two later.
fn expiring_write() -> impl Strategy<Value = Spec> {
    let mutation = (
        prop_oneof![1 => Just(0u8), 4 => Just(2u8)],
        0..10u8,
        prop_oneof![1 => 0..5u8, 3 => 6..8u8],
    );
    prop::collection::vec(mutation, 1..5).prop_map(|mutations| Spec::Write {
        vault: 0,
        mutations,
        precondition: None,
    })
}

/// Expiring writes and purges, with now and then a lease command that may fence the
/// purges out (a release, another node's acquire, a renewal).
fn purge_specs() -> impl Strategy<Value = Vec<Spec>> {
    let lease =
        (0..3u8, 0..4u8, 0..4u8, 1..6u8).prop_map(|(kind, holder, epoch, duration)| Spec::Lease {
            kind,
            job: 0,
            holder,
            epoch,
            duration,
        });
    let spec = prop_oneof![5 => expiring_write(), 4 => purge_spec(), 1 => lease];
    prop::collection::vec(spec, 1..40)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    /// In shard 0 (with a lease, which random lease commands may release or take over) or
    /// in a data shard (no lease: the fencing-token rule).
    #[test]
    fn replicas_purging_under_random_writes_and_leases_agree_and_survive_a_crash(
        random in purge_specs(),
        sync_percent in 0u64..100,
        data_shard in any::<bool>(),
    ) {
        let all: Vec<Spec> = if data_shard {
            let purges = random.into_iter().filter(|spec| !matches!(spec, Spec::Lease { .. }));
            prologue().into_iter().chain(purges).collect()
        } else {
            prologue_with_lease().into_iter().chain(random).collect()
        };
        let entries = encoded(&all, 1);
        let total = entries.len() as u64;
        let (mut first, _) = machine();
        let (mut second, _) = machine();
        let answers = apply_entries(&mut first, 1, &entries);
        prop_assert_eq!(&apply_entries(&mut second, 1, &entries), &answers);
        prop_assert_eq!(fingerprint(&first), fingerprint(&second));
        for answer in &answers {
            prop_assert!(
                matches!(
                    answer,
                    ShardAnswer::VaultCreated { .. }
                        | ShardAnswer::SchemaDeployed { .. }
                        | ShardAnswer::Written { .. }
                        | ShardAnswer::LeaseGranted { .. }
                        | ShardAnswer::LeaseReleased
                        | ShardAnswer::Refused { .. }
                ),
                "{:?}", answer
            );
        }

        // A member whose vault files outran its catalog re-applies the entries after the
        // catalog's durable index: purges already in the vault are skipped, the rest apply
        // as the first time, and it ends where the others did.
        let sync_at = total * sync_percent / 100;
        let (mut member, disk) = machine();
        apply_entries(&mut member, 1, &entries[..sync_at as usize]);
        member.sync().unwrap();
        apply_entries(&mut member, sync_at + 1, &entries[sync_at as usize..]);
        let catalog = disk.crash_copy(CrashMode::LoseUnsynced).catalog;
        drop(member);
        let mut restarted = Disk { catalog, files: disk.files.clone() }.open();
        let durable = restarted.applied_index();
        let replayed = apply_entries(&mut restarted, durable + 1, &entries[durable as usize..]);
        for (offset, answer) in replayed.iter().enumerate() {
            if answer != &ShardAnswer::AlreadyApplied {
                prop_assert_eq!(answer, &answers[durable as usize + offset]);
            }
        }
        prop_assert_eq!(fingerprint(&restarted), fingerprint(&first));
    }
}

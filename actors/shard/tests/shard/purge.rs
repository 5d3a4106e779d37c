//! `PurgeExpired`: a singleton job's side effect, applied only under the job's current
//! lease epoch, that removes expired relationships as one block on every replica alike.

use inferadb_protocols::{Revision, VaultId};
use inferadb_shard::{ShardAnswer, ShardCommand, ShardMachine};
use inferadb_storage::io::CrashMode;
use inferadb_vault::{Mutation, WriteBatch};

use proptest::prelude::*;

use crate::common::{
    apply_entries, encoded, fingerprint, machine, prologue_with_lease, purge_spec, relationship,
    Disk, Spec, SCHEMA,
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
fn a_purge_applies_only_under_the_current_epoch_of_its_holder() {
    let (mut machine, _) = machine();
    apply(&mut machine, 1, &setup());
    assert_eq!(stored(&machine), 4);
    let answers = apply(
        &mut machine,
        4,
        &[
            // No lease yet: nobody may purge.
            purge(1_150, 10, 1, 1),
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
    let (kind, message) = refusal(&answers[0]);
    assert_eq!(kind, "lease_fenced");
    assert!(message.contains("the job has no lease"), "{message}");
    assert!(matches!(
        answers[1],
        ShardAnswer::LeaseGranted { epoch: 1, .. }
    ));
    let (kind, message) = refusal(&answers[2]);
    assert_eq!(kind, "lease_fenced");
    assert!(
        message.contains("the current epoch is 1 (node 1, until 1250 ms)"),
        "{message}"
    );
    let (kind, message) = refusal(&answers[3]);
    assert_eq!(kind, "lease_fenced");
    assert!(
        message.contains("no epoch is current (epoch 1 of node 1 expired at 1250 ms)"),
        "{message}"
    );
    assert!(matches!(
        answers[4],
        ShardAnswer::LeaseGranted { epoch: 2, .. }
    ));
    let (kind, message) = refusal(&answers[5]);
    assert_eq!(kind, "lease_fenced");
    assert!(message.contains("the current epoch is 2"), "{message}");
    // Nothing was purged, no block was made.
    assert_eq!(stored(&machine), 4);
    assert_eq!(machine.vault(VAULT).unwrap().revision(), Revision(2));

    // The current holder, with the current epoch, purges: one block, in key order, at
    // most `limit`.
    let answers = apply(
        &mut machine,
        10,
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
    assert_eq!(machine.applied_index(), 12);
}

#[test]
fn the_lease_is_checked_before_the_vault_exists() {
    let (mut machine, _) = machine();
    let answers = apply(
        &mut machine,
        1,
        &[purge(10, 1, 1, 1), acquire(1, 100, 10), purge(20, 1, 1, 1)],
    );
    assert_eq!(refusal(&answers[0]).0, "lease_fenced");
    assert!(matches!(
        answers[2].catalog_error(),
        Some(inferadb_vault::CatalogError::VaultNotFound { id: VAULT })
    ));
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

    #[test]
    fn replicas_purging_under_random_writes_and_leases_agree_and_survive_a_crash(
        random in purge_specs(),
        sync_percent in 0u64..100,
    ) {
        let all: Vec<Spec> = prologue_with_lease().into_iter().chain(random).collect();
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

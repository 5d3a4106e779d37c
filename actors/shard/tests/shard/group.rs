//! `WriteGroup`: one command and one storage transaction with the outcome of its batches
//! applied one by one; refusals carry the vault's structured errors.

use std::sync::Arc;

use inferadb_protocols::VaultId;
use inferadb_shard::{GroupItem, ShardAnswer, ShardCommand, ShardMachine, ShardOptions};
use inferadb_storage::io::{CrashMode, MemoryIo};
use inferadb_vault::{
    open_database_with_io, CatalogError, Field, FilterError, Mutation, NodeCatalog,
    RelationshipFilter, Vault, VaultOptions, WriteBatch, WriteError,
};
use proptest::prelude::*;

use crate::common::{
    apply_entries, batch, batch_spec, encoded, fingerprint, machine, relationship, Disk, Spec,
    SCHEMA,
};

/// Vault 0 of the common specs.
const VAULT: VaultId = VaultId(0x100);
const NOW_MS: u64 = 5_000;

/// Vault 0 with `SCHEMA` and a few relationships, at applied index 3.
fn ready(machine: &mut ShardMachine) {
    let setup = [
        Spec::Create { vault: 0, name: 0 },
        Spec::Deploy {
            vault: 0,
            schema: 0,
        },
        Spec::Write {
            vault: 0,
            mutations: vec![(0, 0, 0), (0, 4, 0), (0, 6, 0), (0, 8, 0)],
            precondition: None,
        },
    ];
    for answer in apply_entries(machine, 1, &encoded(&setup, 1)) {
        assert!(
            matches!(
                answer,
                ShardAnswer::VaultCreated { .. }
                    | ShardAnswer::SchemaDeployed { .. }
                    | ShardAnswer::Written { .. }
            ),
            "{answer:?}"
        );
    }
}

/// What a `Write` of the batch alone answers.
fn as_answer(item: GroupItem) -> ShardAnswer {
    match item {
        GroupItem::Written {
            revision,
            inserted,
            removed,
        } => ShardAnswer::Written {
            revision,
            inserted,
            removed,
        },
        GroupItem::Refused {
            kind,
            message,
            detail,
        } => ShardAnswer::Refused {
            kind,
            message,
            detail,
        },
    }
}

fn group(batches: Vec<WriteBatch>) -> ShardCommand {
    ShardCommand::WriteGroup {
        vault: VAULT,
        batches,
        now_ms: NOW_MS,
    }
}

fn group_results(answer: ShardAnswer) -> Vec<GroupItem> {
    match answer {
        ShardAnswer::WroteGroup { results } => results,
        other => panic!("not a group's answer: {other:?}"),
    }
}

/// Applies `batches` as one `WriteGroup` on a machine and as `Write`s on another: the
/// answers and the vaults (blocks, hashes, roots) are the same.
fn assert_group_equals_writes(batches: &[WriteBatch]) -> Vec<GroupItem> {
    let (mut grouped, _) = machine();
    ready(&mut grouped);
    let results = group_results(grouped.apply_command(4, &group(batches.to_vec()).encode()));
    let (mut single, _) = machine();
    ready(&mut single);
    let answers: Vec<ShardAnswer> = batches
        .iter()
        .enumerate()
        .map(|(offset, batch)| {
            let write = ShardCommand::Write {
                vault: VAULT,
                batch: batch.clone(),
                now_ms: NOW_MS,
            };
            single.apply_command(4 + offset as u64, &write.encode())
        })
        .collect();
    let grouped_answers: Vec<ShardAnswer> = results.iter().cloned().map(as_answer).collect();
    assert_eq!(grouped_answers, answers);
    let (a, b) = (grouped.vault(VAULT).unwrap(), single.vault(VAULT).unwrap());
    assert_eq!(a.revision(), b.revision());
    assert_eq!(a.head_hash(), b.head_hash());
    assert_eq!(a.state_root(), b.state_root());
    assert_eq!(fingerprint(&grouped).1, fingerprint(&single).1);
    results
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn a_write_group_equals_its_batches_written_one_by_one(
        specs in prop::collection::vec(batch_spec(), 0..8),
    ) {
        let batches: Vec<WriteBatch> = specs
            .iter()
            .map(|(mutations, precondition)| batch(mutations, *precondition, NOW_MS))
            .collect();
        assert_group_equals_writes(&batches);
    }
}

#[test]
fn each_batch_of_a_group_is_atomic_and_sees_the_ones_before() {
    let create = |pick| Mutation::Create(relationship(pick, None));
    let batches = vec![
        // Written.
        WriteBatch {
            mutations: vec![create(1), create(2)],
            preconditions: vec![],
        },
        // Half-way through, `1` exists (from the batch before): nothing of it stays.
        WriteBatch {
            mutations: vec![create(3), create(1)],
            preconditions: vec![],
        },
        // Refused before the transaction: an unknown subject type.
        WriteBatch {
            mutations: vec![create(3), create(11)],
            preconditions: vec![],
        },
        // `3` was not written by the refused batches.
        WriteBatch {
            mutations: vec![create(3)],
            preconditions: vec![],
        },
    ];
    let results = assert_group_equals_writes(&batches);
    let kinds: Vec<&str> = results
        .iter()
        .map(|item| match item {
            GroupItem::Written { .. } => "written",
            GroupItem::Refused { kind, .. } => kind,
        })
        .collect();
    assert_eq!(
        kinds,
        ["written", "already_exists", "unknown_type", "written"]
    );
    assert!(matches!(
        results[1].write_error(),
        Some(WriteError::AlreadyExists { index: 1, relationship }) if *relationship == relationship_of(1)
    ));
    assert!(matches!(
        results[2].write_error(),
        Some(WriteError::UnknownType {
            index: 1,
            field: Field::ResourceType,
            ..
        })
    ));
    assert_eq!(
        results[0].write_error().map(|error| error.to_string()),
        None
    );
}

fn relationship_of(pick: u8) -> inferadb_protocols::Relationship {
    relationship(pick, None)
}

#[test]
fn a_write_group_replayed_after_its_index_is_already_applied() {
    let (mut member, disk) = machine();
    ready(&mut member);
    member.sync().unwrap();
    let command = group(vec![
        batch(&[(0, 1, 0)], None, NOW_MS),
        batch(&[(0, 2, 0), (3, 0, 0)], None, NOW_MS),
    ]);
    let results = group_results(member.apply_command(4, &command.encode()));
    assert!(results
        .iter()
        .all(|item| matches!(item, GroupItem::Written { .. })));
    assert_eq!(
        member.apply_command(4, &command.encode()),
        ShardAnswer::AlreadyApplied
    );
    let before = fingerprint(&member);

    // Power fails between the vault's sync and the catalog's: the vault holds the group,
    // the catalog's applied index is before it, and the log re-delivers it.
    let catalog = disk.crash_copy(CrashMode::LoseUnsynced).catalog;
    drop(member); // closes cleanly: the vault file gets everything
    let mut restarted = Disk {
        catalog,
        files: disk.files.clone(),
    }
    .open();
    assert_eq!(restarted.applied_index(), 3);
    assert_eq!(
        restarted.apply_command(4, &command.encode()),
        ShardAnswer::AlreadyApplied
    );
    assert_eq!(fingerprint(&restarted), before);
}

#[test]
fn a_group_above_the_limit_is_refused_whole() {
    let disk = Disk::new();
    let db = Arc::new(open_database_with_io(Arc::clone(&disk.catalog) as _).unwrap());
    let mut options = ShardOptions::default();
    options.vault.limits.group_commit_batches_max = 2;
    let mut machine = ShardMachine::open(db, Box::new(disk.files.clone()), options).unwrap();
    ready(&mut machine);
    let revision = machine.vault(VAULT).unwrap().revision();
    let three = group(vec![batch(&[(0, 1, 0)], None, NOW_MS); 3]);
    let answer = machine.apply_command(4, &three.encode());
    assert!(
        matches!(&answer, ShardAnswer::Refused { kind, detail, .. } if kind == "group_too_large" && detail.is_empty()),
        "{answer:?}"
    );
    assert_eq!(answer.write_error().map(|error| error.to_string()), None);
    assert_eq!(machine.vault(VAULT).unwrap().revision(), revision);
    assert_eq!(machine.applied_index(), 4);
    let two = group(vec![batch(&[(0, 1, 0)], None, NOW_MS); 2]);
    let results = group_results(machine.apply_command(5, &two.encode()));
    assert_eq!(results.len(), 2);
    assert!(matches!(results[0], GroupItem::Written { inserted: 1, .. }));
    assert!(matches!(&results[1], GroupItem::Refused { kind, .. } if kind == "already_exists"));

    // A missing vault is refused before the limit, with the catalog's error.
    let missing = ShardCommand::WriteGroup {
        vault: VaultId(9),
        batches: vec![WriteBatch::default(); 3],
        now_ms: NOW_MS,
    };
    let answer = machine.apply_command(6, &missing.encode());
    assert!(matches!(
        answer.catalog_error(),
        Some(CatalogError::VaultNotFound { id: VaultId(9) })
    ));
}

/// A vault of its own, written directly.
fn direct_vault() -> Vault {
    let db = Arc::new(open_database_with_io(Arc::new(MemoryIo::default())).unwrap());
    NodeCatalog::open(Arc::clone(&db), [0; 32])
        .unwrap()
        .create_vault(VAULT, "direct", 1)
        .unwrap();
    let mut vault = Vault::open(db, VAULT, VaultOptions::default()).unwrap();
    vault.deploy_schema(SCHEMA, 1).unwrap();
    vault
}

/// The same error: same variant and fields (so the same JSON), same message.
fn assert_same(decoded: Option<WriteError>, direct: &WriteError) {
    let decoded = decoded.unwrap();
    assert_eq!(decoded.to_string(), direct.to_string());
    assert_eq!(
        serde_json::to_value(&decoded).unwrap(),
        serde_json::to_value(direct).unwrap()
    );
}

#[test]
fn a_refused_write_carries_the_vaults_own_error() {
    let unknown_subject = WriteBatch {
        mutations: vec![
            Mutation::Create(relationship(1, None)),
            Mutation::Create("doc:d0#viewer@folder:f".parse().unwrap()),
        ],
        preconditions: vec![],
    };
    let bad_filter = WriteBatch {
        mutations: vec![
            Mutation::Create(relationship(1, None)),
            Mutation::Create(relationship(2, None)),
            Mutation::DeleteMatching(RelationshipFilter {
                subject_id: Some("u0".into()),
                ..RelationshipFilter::default()
            }),
        ],
        preconditions: vec![],
    };
    let mut vault = direct_vault();
    let (mut machine, _) = machine();
    ready(&mut machine);
    let mut directs = Vec::new();
    for (offset, batch) in [unknown_subject, bad_filter].into_iter().enumerate() {
        let direct = vault.write(batch.clone(), NOW_MS).unwrap_err();
        let write = ShardCommand::Write {
            vault: VAULT,
            batch: batch.clone(),
            now_ms: NOW_MS,
        };
        let index = 4 + 2 * offset as u64;
        let answer = machine.apply_command(index, &write.encode());
        assert_same(answer.write_error(), &direct);
        // Not a schema or catalog error, whatever its JSON.
        assert!(answer.schema_error().is_none() && answer.catalog_error().is_none());
        let results = group_results(machine.apply_command(index + 1, &group(vec![batch]).encode()));
        assert_same(results[0].write_error(), &direct);
        directs.push(direct);
    }
    // The errors compared name a mutation's index and field.
    assert!(matches!(
        directs[0],
        WriteError::UnknownType {
            index: 1,
            field: Field::SubjectType,
            ..
        }
    ));
    assert!(matches!(
        &directs[1],
        WriteError::FilterInvalid {
            index: 2,
            error: FilterError {
                field: Field::SubjectId,
                ..
            }
        }
    ));
}

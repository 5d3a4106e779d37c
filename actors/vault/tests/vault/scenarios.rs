//! Scenarios: validation errors, atomicity, preconditions, orphan refusal, expiry, ledger
//! tampering, the catalog and evaluation through a snapshot.

use std::sync::Arc;

use inferadb_evaluator::CheckRequest;
use inferadb_protocols::{Revision, VaultId};
use inferadb_vault::ledger::Block;
use inferadb_vault::{
    tables, CatalogError, Field, Mutation, Precondition, PreconditionKind, ReadError,
    RelationshipFilter, SchemaError, Vault, VaultOptions, VaultSnapshot, WriteBatch, WriteError,
};

use crate::common::{batch, catalog, creates, memory_db, rel, vault_with_schema, SCHEMA, VAULT};

type Predicate = Box<dyn Fn(&WriteError) -> bool>;

/// Each invalid relationship (written as mutation 1) and the error it must get.
#[allow(clippy::too_many_lines)] // A table of cases; rustfmt spreads each pattern over lines.
fn validation_cases() -> Vec<(&'static str, Predicate)> {
    vec![
        (
            "file:1#owner@user:a",
            Box::new(|e| {
                matches!(
                    e,
                    WriteError::UnknownType {
                        index: 1,
                        field: Field::ResourceType,
                        ..
                    }
                )
            }),
        ),
        (
            "doc:1#editor@user:a",
            Box::new(|e| {
                matches!(
                    e,
                    WriteError::UnknownRelation {
                        index: 1,
                        field: Field::Relation,
                        ..
                    }
                )
            }),
        ),
        (
            "doc:1#view@user:a",
            Box::new(|e| matches!(e, WriteError::NotADirectRelation { index: 1, .. })),
        ),
        (
            "doc:1#owner@robot:a",
            Box::new(|e| {
                matches!(
                    e,
                    WriteError::UnknownType {
                        index: 1,
                        field: Field::SubjectType,
                        ..
                    }
                )
            }),
        ),
        (
            "doc:1#viewer@group:g#admin",
            Box::new(|e| {
                matches!(
                    e,
                    WriteError::UnknownRelation {
                        index: 1,
                        field: Field::SubjectRelation,
                        ..
                    }
                )
            }),
        ),
        (
            "doc:1#owner@user:*",
            Box::new(
                |e| matches!(e, WriteError::SubjectNotAllowed { index: 1, allowed, .. } if allowed == &vec!["user".to_owned()]),
            ),
        ),
        (
            "doc:1#owner@user:a[expires_at_ms:50]",
            Box::new(|e| {
                matches!(
                    e,
                    WriteError::ExpiryInPast {
                        index: 1,
                        expires_at_ms: 50,
                        now_ms: 50
                    }
                )
            }),
        ),
    ]
}

#[test]
fn validation_errors_name_the_mutation_and_field() {
    let (_db, mut vault) = vault_with_schema();
    let cases = validation_cases();
    for (text, expected) in cases {
        let error = vault
            .write(creates(&["doc:1#owner@user:ok", text]), 50)
            .unwrap_err();
        assert!(expected(&error), "{text}: {error:?}");
    }
    assert_eq!(
        vault.revision(),
        Revision(1),
        "no refused batch made a block"
    );
}

#[test]
fn subject_and_size_errors_say_what_is_allowed() {
    let (_db, mut vault) = vault_with_schema();
    let error = vault
        .write(
            creates(&["doc:1#viewer@group:g#member", "doc:1#viewer@doc:1#owner"]),
            50,
        )
        .unwrap_err();
    let WriteError::SubjectNotAllowed { allowed, .. } = error else {
        panic!("{error:?}")
    };
    assert_eq!(allowed, ["user", "user:*", "group#member"]);
    let too_many = batch(vec![Mutation::Delete(rel("doc:1#owner@user:a")); 1001]);
    assert!(matches!(
        vault.write(too_many, 50),
        Err(WriteError::BatchTooLarge {
            len: 1001,
            limit: 1000
        })
    ));
    let bad_filter = batch(vec![Mutation::DeleteMatching(RelationshipFilter {
        resource_id: Some("1".parse().unwrap()),
        ..Default::default()
    })]);
    let error = vault.write(bad_filter, 50).unwrap_err();
    assert!(
        matches!(error, WriteError::FilterInvalid { index: 0, ref error } if error.field == Field::ResourceId),
        "{error:?}"
    );
    assert_eq!(
        vault.revision(),
        Revision(1),
        "no refused batch made a block"
    );
}

#[test]
fn a_vault_without_schema_refuses_writes() {
    let db = memory_db();
    catalog(&db).create_vault(VAULT, "v", 0).unwrap();
    let mut vault = Vault::open(Arc::clone(&db), VAULT, VaultOptions::default()).unwrap();
    assert!(matches!(
        vault.write(creates(&["doc:1#owner@user:a"]), 0),
        Err(WriteError::NoSchema)
    ));
    assert_eq!(vault.snapshot().unwrap().revision(), Revision::ZERO);
}

#[test]
fn a_failing_batch_writes_nothing_and_creates_no_block() {
    let (_db, mut vault) = vault_with_schema();
    vault.write(creates(&["doc:1#owner@user:a"]), 10).unwrap();
    let root = vault.state_root();
    // The second mutation fails after the first was applied inside the transaction.
    let error = vault
        .write(creates(&["doc:2#owner@user:b", "doc:1#owner@user:a"]), 10)
        .unwrap_err();
    assert!(
        matches!(error, WriteError::AlreadyExists { index: 1, .. }),
        "{error:?}"
    );
    assert_eq!((vault.revision(), vault.state_root()), (Revision(2), root));
    let snapshot = vault.snapshot().unwrap();
    assert_eq!(snapshot.relationship_count(), 1);
    assert!(snapshot.block(3).unwrap().is_none());
    assert!(snapshot.verify_ledger().unwrap().holds);
    // No-op batches make no block either.
    let outcome = vault
        .write(
            batch(vec![
                Mutation::Touch(rel("doc:1#owner@user:a")),
                Mutation::Delete(rel("doc:9#owner@user:a")),
            ]),
            10,
        )
        .unwrap();
    assert_eq!(
        (outcome.revision, outcome.operations_applied),
        (Revision(2), 0)
    );
}

#[test]
fn touch_records_expiry_changes_as_remove_then_insert() {
    let (_db, mut vault) = vault_with_schema();
    vault.write(creates(&["doc:1#owner@user:a"]), 10).unwrap();
    let outcome = vault
        .write(
            batch(vec![Mutation::Touch(rel(
                "doc:1#owner@user:a[expires_at_ms:500]",
            ))]),
            10,
        )
        .unwrap();
    assert_eq!(
        (
            outcome.operations_applied,
            outcome.inserted,
            outcome.removed
        ),
        (2, 1, 1)
    );
    let block = vault.snapshot().unwrap().block(3).unwrap().unwrap();
    assert_eq!(
        block.operations,
        [
            inferadb_vault::Operation::Remove(rel("doc:1#owner@user:a")),
            inferadb_vault::Operation::Insert(rel("doc:1#owner@user:a[expires_at_ms:500]")),
        ]
    );
}

#[test]
fn preconditions_are_checked_against_the_state_before_the_batch() {
    let (_db, mut vault) = vault_with_schema();
    vault.write(creates(&["doc:1#owner@user:a"]), 10).unwrap();
    let owner_of_1 = RelationshipFilter {
        resource_type: Some("doc".parse().unwrap()),
        resource_id: Some("1".parse().unwrap()),
        relation: Some("owner".parse().unwrap()),
        ..Default::default()
    };
    let guarded = |kind| WriteBatch {
        mutations: vec![Mutation::Create(rel("doc:2#owner@user:b"))],
        preconditions: vec![
            Precondition {
                kind: PreconditionKind::MustMatch,
                filter: RelationshipFilter::default(),
            },
            Precondition {
                kind,
                filter: owner_of_1.clone(),
            },
        ],
    };
    let error = vault
        .write(guarded(PreconditionKind::MustNotMatch), 10)
        .unwrap_err();
    assert!(
        matches!(
            error,
            WriteError::PreconditionFailed {
                index: 1,
                must_match: false
            }
        ),
        "{error:?}"
    );
    assert_eq!(
        vault
            .write(guarded(PreconditionKind::MustMatch), 10)
            .unwrap()
            .revision,
        Revision(3)
    );
    // An expired relationship does not satisfy MustMatch.
    vault
        .write(
            batch(vec![Mutation::Touch(rel(
                "doc:1#owner@user:a[expires_at_ms:20]",
            ))]),
            10,
        )
        .unwrap();
    let later = WriteBatch {
        mutations: vec![],
        preconditions: vec![Precondition {
            kind: PreconditionKind::MustMatch,
            filter: owner_of_1,
        }],
    };
    assert!(matches!(
        vault.write(later.clone(), 20),
        Err(WriteError::PreconditionFailed {
            index: 0,
            must_match: true
        })
    ));
    assert!(vault.write(later, 19).is_ok());
}

#[test]
fn delete_matching_is_bounded() {
    let (db, _) = vault_with_schema();
    let options = VaultOptions {
        limits: inferadb_vault::VaultLimits {
            delete_by_filter_max: 2,
            ..Default::default()
        },
        ..Default::default()
    };
    let mut vault = Vault::open(db, VAULT, options).unwrap();
    vault
        .write(
            creates(&[
                "doc:1#owner@user:a",
                "doc:2#owner@user:a",
                "doc:3#owner@user:a",
            ]),
            10,
        )
        .unwrap();
    let by_user = RelationshipFilter {
        subject_type: Some("user".parse().unwrap()),
        subject_id: Some("a".into()),
        ..Default::default()
    };
    let error = vault.write(batch(vec![Mutation::DeleteMatching(by_user.clone())]), 10);
    assert!(
        matches!(
            error,
            Err(WriteError::TooManyMatches { index: 0, limit: 2 })
        ),
        "{error:?}"
    );
    let outcome = vault
        .write(
            batch(vec![
                Mutation::Delete(rel("doc:1#owner@user:a")),
                Mutation::DeleteMatching(by_user),
            ]),
            10,
        )
        .unwrap();
    assert_eq!(outcome.removed, 3);
    assert_eq!(vault.snapshot().unwrap().relationship_count(), 0);
}

#[test]
fn a_schema_that_would_orphan_relationships_is_refused_with_examples() {
    let (_db, mut vault) = vault_with_schema();
    vault
        .write(
            creates(&[
                "doc:1#owner@user:a",
                "doc:1#viewer@user:*",
                "doc:2#viewer@group:g#member",
                "group:g#member@user:b",
            ]),
            10,
        )
        .unwrap();
    let narrower = SCHEMA.replace(
        "relation viewer: user | user:* | group#member",
        "relation viewer: user",
    );
    let Err(SchemaError::WouldOrphan { examples, total }) = vault.deploy_schema(&narrower, 20)
    else {
        panic!("the narrower schema was accepted")
    };
    assert_eq!(total, 2);
    assert_eq!(
        examples,
        [
            rel("doc:1#viewer@user:*"),
            rel("doc:2#viewer@group:g#member")
        ]
    );
    let without_groups =
        "type user {}\ntype doc {\n relation owner: user\n relation viewer: user | user:*\n}";
    let Err(SchemaError::WouldOrphan { total, .. }) = vault.deploy_schema(without_groups, 20)
    else {
        panic!()
    };
    assert_eq!(total, 2, "the group relationship and the group userset");
    let Err(error @ SchemaError::Invalid(_)) =
        vault.deploy_schema("type doc { relation owner: person }", 20)
    else {
        panic!()
    };
    let problems = error.problems();
    assert_eq!((problems[0].line, problems[0].column), (1, 28));
    assert_eq!(vault.revision(), Revision(2));
    let widened = format!("{SCHEMA}type folder {{}}\n");
    let deployed = vault.deploy_schema(&widened, 30).unwrap();
    assert_eq!((deployed.version, deployed.revision), (2, Revision(3)));
    assert_eq!(vault.snapshot().unwrap().schema().unwrap().version, 2);
}

#[test]
fn expired_relationships_are_invisible_from_their_expiry_on() {
    let (_db, mut vault) = vault_with_schema();
    vault
        .write(
            creates(&[
                "doc:1#owner@user:a[expires_at_ms:100]",
                "doc:1#viewer@user:b",
            ]),
            10,
        )
        .unwrap();
    let snapshot = vault.snapshot().unwrap();
    let check = |snapshot: &VaultSnapshot, subject: &str, now_ms| {
        let schema = snapshot.schema().unwrap();
        let request = CheckRequest {
            resource: "doc:1".parse().unwrap(),
            permission: "view".parse().unwrap(),
            subject: subject.parse().unwrap(),
        };
        schema
            .evaluator
            .check(&snapshot.view(now_ms), &request)
            .unwrap()
            .allowed
    };
    assert!(check(&snapshot, "user:a", 99));
    assert!(!check(&snapshot, "user:a", 100));
    assert!(check(&snapshot, "user:b", 100));
    let all = RelationshipFilter::default();
    assert_eq!(
        snapshot
            .read_relationships(&all, 10, None, 99)
            .unwrap()
            .relationships
            .len(),
        2
    );
    assert_eq!(
        snapshot
            .read_relationships(&all, 10, None, 100)
            .unwrap()
            .relationships,
        [rel("doc:1#viewer@user:b")]
    );
    // Creating over an expired copy replaces it.
    vault.write(creates(&["doc:1#owner@user:a"]), 100).unwrap();
    assert!(check(&vault.snapshot().unwrap(), "user:a", 1_000));
}

#[test]
fn cursors_continue_only_their_own_read() {
    let (_db, mut vault) = vault_with_schema();
    vault
        .write(
            creates(&[
                "doc:1#owner@user:a",
                "doc:2#owner@user:a",
                "doc:3#owner@user:a",
            ]),
            10,
        )
        .unwrap();
    let snapshot = vault.snapshot().unwrap();
    let docs = RelationshipFilter {
        resource_type: Some("doc".parse().unwrap()),
        ..Default::default()
    };
    let page = snapshot.read_relationships(&docs, 2, None, 10).unwrap();
    let cursor = page.cursor.unwrap();
    let rest = snapshot
        .read_relationships(&docs, 2, Some(&cursor), 10)
        .unwrap();
    assert_eq!((rest.relationships.len(), rest.cursor), (1, None));
    let other = RelationshipFilter {
        relation: Some("owner".parse().unwrap()),
        ..docs.clone()
    };
    assert!(matches!(
        snapshot.read_relationships(&other, 2, Some(&cursor), 10),
        Err(ReadError::CursorMismatch)
    ));
    for bad in [
        "",
        "c1.f",
        "c1.x.00.00",
        "c1.f.zz.00",
        &cursor.replace("c1.", "c2."),
    ] {
        assert!(
            matches!(
                snapshot.read_relationships(&docs, 2, Some(bad), 10),
                Err(ReadError::CursorMalformed { .. })
            ),
            "{bad}"
        );
    }
    assert!(matches!(
        snapshot.read_relationships(&docs, 1001, None, 10),
        Err(ReadError::LimitInvalid { max: 1000, .. })
    ));
    let bad = RelationshipFilter {
        subject_id: Some("a".into()),
        ..Default::default()
    };
    assert!(
        matches!(snapshot.read_relationships(&bad, 1, None, 10), Err(ReadError::FilterInvalid(e)) if e.field == Field::SubjectId)
    );
}

/// Writes raw bytes into a vault table, bypassing the vault.
fn tamper(db: &inferadb_storage::Database, table: &str, key: &[u8], value: &[u8]) {
    let mut write = db.begin_write().unwrap();
    write.open_table(table).unwrap().insert(key, value).unwrap();
    write.commit().unwrap();
}

#[test]
fn tampering_with_a_block_or_the_index_breaks_verification() {
    let (db, mut vault) = vault_with_schema();
    vault
        .write(creates(&["doc:1#owner@user:a", "doc:1#viewer@user:b"]), 10)
        .unwrap();
    let report = vault.snapshot().unwrap().verify_ledger().unwrap();
    assert!(
        report.holds && report.blocks_checked == 2 && report.relationships == 2,
        "{report:?}"
    );

    let mut block = vault.snapshot().unwrap().block(2).unwrap().unwrap();
    let original = block.encode();
    block.timestamp_ms += 1;
    tamper(
        &db,
        &tables::blocks(VAULT),
        &2u64.to_be_bytes(),
        &block.encode(),
    );
    let report = vault.snapshot().unwrap().verify_ledger().unwrap();
    assert!(!report.holds);
    assert_eq!(
        report.problems,
        ["block 2: hash does not match its contents"]
    );
    tamper(&db, &tables::blocks(VAULT), &2u64.to_be_bytes(), &original);
    assert!(vault.snapshot().unwrap().verify_ledger().unwrap().holds);

    let forged = inferadb_vault::keys::forward_key(&rel("doc:9#owner@user:mallory"));
    tamper(&db, &tables::forward(VAULT), &forged, b"");
    let report = vault.snapshot().unwrap().verify_ledger().unwrap();
    assert!(!report.holds);
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.contains("reverse entry of doc:9#owner@user:mallory: missing")),
        "{:?}",
        report.problems
    );
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.contains("forward index does not hold the state")),
        "{:?}",
        report.problems
    );
    let _: Option<Block> = None;
}

/// A long-id relationship whose index value names other ids (what a digest collision would
/// look like) is found by no point lookup, refuses writes over it, and fails verification;
/// so does an expiry-index entry whose value is not the forward entry's.
#[test]
fn a_shortened_key_stands_only_for_the_ids_its_value_names() {
    use inferadb_evaluator::{ObjectKey, RelationshipReader, SubjectKey};
    use inferadb_vault::keys::{encode_index_value, expiry_key, forward_key};

    let (db, mut vault) = vault_with_schema();
    let long = "L".repeat(300);
    let real = rel(&format!("doc:{long}#owner@user:a"));
    let other = rel(&format!("doc:{long}x#owner@user:a"));
    let expiring = rel("doc:2#owner@user:b[expires_at_ms:900]");
    vault
        .write(
            batch(vec![
                Mutation::Create(real.clone()),
                Mutation::Create(expiring.clone()),
            ]),
            10,
        )
        .unwrap();
    let contains = |vault: &Vault, id: &str| {
        let resource = ObjectKey {
            object_type: "doc",
            object_id: id,
        };
        let subject = SubjectKey {
            subject_type: "user",
            subject_id: "a",
            subject_relation: None,
        };
        let snapshot = vault.snapshot().unwrap();
        let found = snapshot.contains(resource, "owner", subject, 20).unwrap();
        found.is_some()
    };
    assert!(contains(&vault, &long));
    assert!(vault.snapshot().unwrap().verify_ledger().unwrap().holds);

    // The real relationship's key, with a value that names another resource id.
    tamper(
        &db,
        &tables::forward(VAULT),
        &forward_key(&real),
        &encode_index_value(&other),
    );
    assert!(!contains(&vault, &long));
    let refused = vault.write(creates(&[&real.to_string()]), 20).unwrap_err();
    assert!(
        matches!(&refused, WriteError::Corrupt { what } if what.contains("another relationship")),
        "{refused:?}"
    );
    let report = vault.snapshot().unwrap().verify_ledger().unwrap();
    assert!(!report.holds);
    tamper(
        &db,
        &tables::forward(VAULT),
        &forward_key(&real),
        &encode_index_value(&real),
    );
    assert!(vault.snapshot().unwrap().verify_ledger().unwrap().holds);

    tamper(
        &db,
        &tables::expiry(VAULT),
        &expiry_key(900, &forward_key(&expiring)),
        &901u64.to_le_bytes(),
    );
    let report = vault.snapshot().unwrap().verify_ledger().unwrap();
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.contains("expiry entry of doc:2#owner@user:b") && p.contains("other value")),
        "{:?}",
        report.problems
    );
}

#[test]
fn the_catalog_creates_lists_and_deletes_vaults() {
    let db = memory_db();
    let catalog = catalog(&db);
    let secret = catalog.token_secret();
    assert_eq!(
        inferadb_vault::NodeCatalog::open(Arc::clone(&db), [0; 32])
            .unwrap()
            .token_secret(),
        secret,
        "the first secret stays"
    );
    catalog.create_vault(VaultId(2), "beta", 5).unwrap();
    catalog.create_vault(VaultId(1), "alpha", 6).unwrap();
    assert!(matches!(
        catalog.create_vault(VaultId(3), "alpha", 7),
        Err(CatalogError::NameTaken {
            existing: VaultId(1),
            ..
        })
    ));
    assert!(matches!(
        catalog.create_vault(VaultId(1), "gamma", 7),
        Err(CatalogError::IdTaken { .. })
    ));
    for bad in ["", "a\nb", &"x".repeat(129)] {
        assert!(
            matches!(
                catalog.create_vault(VaultId(4), bad, 7),
                Err(CatalogError::NameInvalid { .. })
            ),
            "{bad:?}"
        );
    }
    let names: Vec<String> = catalog
        .list_vaults()
        .unwrap()
        .into_iter()
        .map(|v| v.name)
        .collect();
    assert_eq!(names, ["alpha", "beta"]);
    let mut vault = Vault::open(Arc::clone(&db), VaultId(1), VaultOptions::default()).unwrap();
    vault.deploy_schema(SCHEMA, 8).unwrap();
    vault.write(creates(&["doc:1#owner@user:a"]), 9).unwrap();
    drop(vault);
    catalog.delete_vault(VaultId(1)).unwrap();
    assert!(catalog.get(VaultId(1)).unwrap().is_none());
    let left = db.begin_read().list_tables().unwrap();
    assert!(
        left.iter()
            .all(|t| !t.starts_with(&format!("v/{}/", VaultId(1)))),
        "{left:?}"
    );
    assert!(matches!(
        catalog.delete_vault(VaultId(1)),
        Err(CatalogError::VaultNotFound { .. })
    ));
    assert!(matches!(
        Vault::open(db, VaultId(1), VaultOptions::default()),
        Err(inferadb_vault::VaultError::VaultNotFound { .. })
    ));
}

#[test]
fn snapshots_are_send_sync_and_share_one_evaluator_per_schema() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<VaultSnapshot>();
    let (_db, mut vault) = vault_with_schema();
    let first = vault.snapshot().unwrap();
    vault.write(creates(&["doc:1#owner@user:a"]), 10).unwrap();
    let second = vault.snapshot().unwrap();
    assert_eq!(
        (first.revision(), second.revision()),
        (Revision(1), Revision(2))
    );
    assert!(Arc::ptr_eq(
        &first.schema().unwrap().evaluator,
        &second.schema().unwrap().evaluator
    ));
    // The old snapshot still shows its revision.
    assert_eq!(first.relationship_count(), 0);
    let blocks = second.blocks(1, 100).unwrap();
    assert_eq!(blocks.iter().map(|b| b.height).collect::<Vec<_>>(), [1, 2]);
    assert_eq!(blocks[1].previous_hash, blocks[0].hash);
}

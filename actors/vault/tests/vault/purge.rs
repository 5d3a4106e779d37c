//! Purging expired relationships: one block of removals, in key order, at most `limit`;
//! the indexes lose exactly the expired relationships, the ledger verifies, and a replica
//! replaying the blocks reaches the same state root.

use std::sync::Arc;

use inferadb_protocols::{Relationship, Revision, TypeName};
use inferadb_vault::{Operation, RelationshipFilter, Vault, VaultOptions, VaultSnapshot};

use crate::common::{catalog, creates, memory_db, rel, vault_with_schema, SCHEMA, VAULT};

/// Every stored relationship (expired ones included) as text, through the forward index
/// (by resource type) or the reverse one (by subject type).
fn stored(snapshot: &VaultSnapshot, reverse: bool) -> Vec<String> {
    let mut texts = Vec::new();
    let types = ["doc", "group", "user"];
    for name in types {
        let name = TypeName::new(name).unwrap();
        let filter = if reverse {
            RelationshipFilter {
                subject_type: Some(name),
                ..RelationshipFilter::default()
            }
        } else {
            RelationshipFilter {
                resource_type: Some(name),
                ..RelationshipFilter::default()
            }
        };
        // At time 0 nothing has expired: the read shows everything stored.
        let page = snapshot
            .read_relationships(&filter, 1_000, None, 0)
            .unwrap();
        texts.extend(page.relationships.iter().map(Relationship::to_string));
    }
    texts.sort();
    texts
}

/// Live relationships at `now_ms`, through the forward index.
fn live(snapshot: &VaultSnapshot, now_ms: u64) -> Vec<String> {
    let filter = RelationshipFilter {
        resource_type: Some(TypeName::new("doc").unwrap()),
        ..RelationshipFilter::default()
    };
    let page = snapshot
        .read_relationships(&filter, 1_000, None, now_ms)
        .unwrap();
    page.relationships.iter().map(ToString::to_string).collect()
}

#[test]
fn purging_removes_expired_relationships_soonest_expiry_first_as_one_block() {
    let (_db, mut vault) = vault_with_schema();
    vault
        .write(
            creates(&[
                "doc:b#viewer@user:x[expires_at_ms:100]",
                "doc:a#viewer@user:x[expires_at_ms:150]",
                "doc:c#viewer@user:x[expires_at_ms:300]",
                "doc:a#owner@user:x",
                "group:g#member@user:y[expires_at_ms:120]",
            ]),
            10,
        )
        .unwrap();
    assert_eq!(vault.revision(), Revision(2));

    // Nothing has expired yet: no block, the current revision, zero counts.
    let none = vault.purge_expired(99, 10).unwrap();
    assert_eq!(
        (
            none.revision,
            none.inserted,
            none.removed,
            none.operations_applied
        ),
        (Revision(2), 0, 0, 0)
    );
    assert_eq!(vault.revision(), Revision(2));

    // Three have expired at 150 (the expiry itself counts); a limit of 2 takes the two
    // that expired first: doc:b (100), then group:g (120).
    let first = vault.purge_expired(150, 2).unwrap();
    assert_eq!(
        (first.revision, first.inserted, first.removed),
        (Revision(3), 0, 2)
    );
    let snapshot = vault.snapshot().unwrap();
    let block = snapshot.block(3).unwrap().unwrap();
    assert_eq!(block.timestamp_ms, 150);
    assert_eq!(
        block.operations,
        [
            Operation::Remove(rel("doc:b#viewer@user:x[expires_at_ms:100]")),
            Operation::Remove(rel("group:g#member@user:y[expires_at_ms:120]")),
        ]
    );
    let remaining = [
        "doc:a#owner@user:x",
        "doc:a#viewer@user:x[expires_at_ms:150]",
        "doc:c#viewer@user:x[expires_at_ms:300]",
    ];
    assert_eq!(stored(&snapshot, false), remaining);
    assert_eq!(stored(&snapshot, true), remaining);
    assert_eq!(snapshot.relationship_count(), 3);
    assert!(snapshot.verify_ledger().unwrap().holds);

    // The next pass takes the last expired one; then there is nothing left to purge.
    let second = vault.purge_expired(150, 2).unwrap();
    assert_eq!((second.revision, second.removed), (Revision(4), 1));
    let idle = vault.purge_expired(150, 2).unwrap();
    assert_eq!((idle.revision, idle.removed), (Revision(4), 0));
    let snapshot = vault.snapshot().unwrap();
    let unexpired = [
        "doc:a#owner@user:x",
        "doc:c#viewer@user:x[expires_at_ms:300]",
    ];
    assert_eq!(stored(&snapshot, false), unexpired);
    assert_eq!(stored(&snapshot, true), unexpired);
    assert_eq!(live(&snapshot, 150), unexpired);
    let report = snapshot.verify_ledger().unwrap();
    assert!(report.holds, "{:?}", report.problems);
    assert_eq!(report.relationships, 2);
    // A limit of 0 purges nothing, even when something expired.
    assert_eq!(vault.purge_expired(1_000, 0).unwrap().removed, 0);
    assert_eq!(vault.revision(), Revision(4));
}

#[test]
fn a_replica_replaying_the_purge_block_reaches_the_same_state_root() {
    let (_db, mut vault) = vault_with_schema();
    vault
        .write(
            creates(&[
                "doc:a#viewer@user:x[expires_at_ms:50]",
                "doc:a#viewer@group:g#member[expires_at_ms:60]",
                "doc:b#viewer@user:*",
                "group:g#member@user:y[expires_at_ms:70]",
            ]),
            10,
        )
        .unwrap();
    let purged = vault.purge_expired(65, 100).unwrap();
    assert_eq!(purged.removed, 2);

    let replica_db = memory_db();
    catalog(&replica_db).create_vault(VAULT, "test", 1).unwrap();
    let mut replica = Vault::open(Arc::clone(&replica_db), VAULT, VaultOptions::default()).unwrap();
    let blocks = vault.snapshot().unwrap().blocks(1, 100).unwrap();
    assert_eq!(blocks.len(), 3);
    for block in &blocks {
        let text =
            matches!(block.operations[0], Operation::SchemaDeployed { .. }).then_some(SCHEMA);
        replica.replay_block(block, text).unwrap();
    }
    assert_eq!(replica.state_root(), vault.state_root());
    assert_eq!(replica.head_hash(), vault.head_hash());
    let snapshot = replica.snapshot().unwrap();
    assert!(snapshot.verify_ledger().unwrap().holds);
    assert_eq!(
        stored(&snapshot, true),
        stored(&vault.snapshot().unwrap(), true)
    );
}

//! Review regressions: each test demonstrates a bug found in review and is ignored until
//! the bug is fixed (run with `cargo test -p inferadb-vault -- --ignored review`).

use std::sync::Arc;

use inferadb_vault::{tables, Vault, VaultOptions};

use crate::common::{creates, vault_with_schema, VAULT};

/// A schema that grants `view` to every `viewer` *and* every `owner` of any document, plus
/// a new relation: compiles, and changes who may see what.
const FORGED_SCHEMA: &str = "type user {}
type group {
    relation member: user | group#member
}
type doc {
    relation owner: user
    relation viewer: user | user:* | group#member
    permission view = owner | viewer
    permission edit = owner | viewer
}
";

/// The stored form of a schema record (`u32 version ‖ u64 created_at_ms ‖ u64 revision ‖
/// text`), as `Vault::deploy_schema` writes it.
fn schema_record(version: u32, created_at_ms: u64, revision: u64, text: &str) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&version.to_be_bytes());
    out.extend_from_slice(&created_at_ms.to_be_bytes());
    out.extend_from_slice(&revision.to_be_bytes());
    out.extend_from_slice(text.as_bytes());
    out
}

/// Bug: `verify_ledger` never compares the stored schema texts with the `SchemaDeployed`
/// operations' `text_sha256`, so replacing the schema in force (and with it every
/// permission's meaning) goes unnoticed; `Vault::open` then loads the forged text.
#[test]
fn review_verify_detects_a_replaced_schema_text() {
    let (db, mut vault) = vault_with_schema();
    vault.write(creates(&["doc:1#owner@user:a"]), 10).unwrap();
    assert!(vault.snapshot().unwrap().verify_ledger().unwrap().holds);

    let mut write = db.begin_write().unwrap();
    write
        .open_table(&tables::schemas(VAULT))
        .unwrap()
        .insert(&1u32.to_be_bytes(), &schema_record(1, 1, 1, FORGED_SCHEMA))
        .unwrap();
    write.commit().unwrap();

    let reopened = Vault::open(Arc::clone(&db), VAULT, VaultOptions::default()).unwrap();
    assert_eq!(
        reopened.active_schema().unwrap().text,
        FORGED_SCHEMA,
        "the forged schema is the one in force after a reopen"
    );
    let report = reopened.snapshot().unwrap().verify_ledger().unwrap();
    assert!(
        !report.holds,
        "a schema text whose SHA-256 differs from the ledger's must fail verification: {report:?}"
    );
}

/// Bug: the same gap lets a tamperer roll the policy back by deleting the newest schema
/// record: the vault reopens with version 1 while the ledger records version 2.
#[test]
fn review_verify_detects_a_deleted_schema_version() {
    let (db, mut vault) = vault_with_schema();
    vault.deploy_schema(FORGED_SCHEMA, 20).unwrap();
    assert!(vault.snapshot().unwrap().verify_ledger().unwrap().holds);

    let mut write = db.begin_write().unwrap();
    write
        .open_table(&tables::schemas(VAULT))
        .unwrap()
        .remove(&2u32.to_be_bytes())
        .unwrap();
    write.commit().unwrap();

    let reopened = Vault::open(Arc::clone(&db), VAULT, VaultOptions::default()).unwrap();
    assert_eq!(reopened.active_schema().unwrap().version, 1);
    let report = reopened.snapshot().unwrap().verify_ledger().unwrap();
    assert!(
        !report.holds,
        "a schema version recorded in the ledger but missing from the schema table must fail verification: {report:?}"
    );
}

//! Shared helpers: an in-memory database, a vault with the test schema, parsing shortcuts.

use std::sync::Arc;

use inferadb_protocols::{Relationship, VaultId};
use inferadb_storage::{io::MemoryIo, Database};
use inferadb_vault::{
    open_database_with_io, Mutation, NodeCatalog, Vault, VaultOptions, WriteBatch,
};

pub const SCHEMA: &str = "type user {}
type group {
    relation member: user | group#member
}
type doc {
    relation owner: user
    relation viewer: user | user:* | group#member
    permission view = owner | viewer
}
";

pub const VAULT: VaultId = VaultId(0x0123_4567_89ab_cdef);

pub fn memory_db() -> Arc<Database> {
    Arc::new(open_database_with_io(Arc::new(MemoryIo::default())).unwrap())
}

pub fn catalog(db: &Arc<Database>) -> NodeCatalog {
    NodeCatalog::open(Arc::clone(db), [7; 32]).unwrap()
}

/// A fresh vault with [`SCHEMA`] deployed (revision 1).
pub fn vault_with_schema() -> (Arc<Database>, Vault) {
    let db = memory_db();
    catalog(&db).create_vault(VAULT, "test", 1).unwrap();
    let mut vault = Vault::open(Arc::clone(&db), VAULT, VaultOptions::default()).unwrap();
    vault.deploy_schema(SCHEMA, 1).unwrap();
    (db, vault)
}

pub fn rel(text: &str) -> Relationship {
    text.parse().unwrap()
}

pub fn batch(mutations: Vec<Mutation>) -> WriteBatch {
    WriteBatch {
        mutations,
        preconditions: Vec::new(),
    }
}

pub fn creates(texts: &[&str]) -> WriteBatch {
    batch(
        texts
            .iter()
            .map(|text| Mutation::Create(rel(text)))
            .collect(),
    )
}

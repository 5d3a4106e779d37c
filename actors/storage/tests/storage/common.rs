//! Helpers shared by the storage tests.

use inferadb_storage::io::MemoryIo;
use inferadb_storage::{Database, Durability, PageIo, StorageLimits};
use std::collections::BTreeMap;
use std::sync::Arc;

pub type Model = BTreeMap<Vec<u8>, Vec<u8>>;

/// Small pages so that a few hundred keys already build multi-level trees.
pub fn small_limits() -> StorageLimits {
    StorageLimits {
        page_size: 512,
        value_size_max: 64 * 1024,
        growth_bytes_min: 4096,
    }
}

pub fn open_memory(io: &Arc<MemoryIo>, limits: StorageLimits) -> Database {
    Database::builder()
        .limits(limits)
        .open_with_io(io.clone() as Arc<dyn PageIo>)
        .expect("open in-memory database")
}

/// Every entry of `table`, or an empty map when the table does not exist.
pub fn dump(db: &Database, table: &str) -> Model {
    let read = db.begin_read();
    let Ok(table) = read.open_table(table) else {
        return Model::new();
    };
    table
        .iter()
        .expect("iterate")
        .map(|entry| {
            let (key, value) = entry.expect("entry");
            (key.to_vec(), value.to_vec())
        })
        .collect()
}

/// Applies `changes` (value `None` removes) in one transaction.
pub fn apply(
    db: &Database,
    table: &str,
    changes: &[(Vec<u8>, Option<Vec<u8>>)],
    durability: Durability,
) {
    let mut write = db.begin_write().expect("begin write");
    write.set_durability(durability);
    {
        let mut table = write.open_table(table).expect("open table");
        for (key, value) in changes {
            match value {
                Some(value) => {
                    table.insert(key, value).expect("insert");
                }
                None => {
                    table.remove(key).expect("remove");
                }
            }
        }
    }
    write.commit().expect("commit");
}

pub fn key(index: u64) -> Vec<u8> {
    format!("key-{index:08}").into_bytes()
}

//! The catalog tables that hold one replicated map each (members, placements, fence
//! epochs): read whole at open, rewritten whole by a restore.

use std::collections::BTreeMap;

use inferadb_storage::{Database, StorageError, WriteTransaction};

use crate::error::ShardError;

/// Every entry of `table`, decoded; an absent table is an empty map (a catalog from before
/// the table existed).
pub(super) fn load_map<K: Ord, V>(
    db: &Database,
    table: &str,
    decode: impl Fn(&[u8], &[u8]) -> Result<(K, V), ShardError>,
) -> Result<BTreeMap<K, V>, ShardError> {
    let read = db.begin_read();
    let opened = match read.open_table(table) {
        Ok(opened) => opened,
        Err(StorageError::TableNotFound(_)) => return Ok(BTreeMap::new()),
        Err(error) => return Err(error.into()),
    };
    let mut map = BTreeMap::new();
    for entry in opened.iter()? {
        let (key, value) = entry?;
        let (key, value) = decode(key, &value)?;
        map.insert(key, value);
    }
    Ok(map)
}

/// Replaces `table` with `entries` (encoded key, encoded value) inside `txn`.
pub(super) fn rewrite<I>(
    txn: &mut WriteTransaction,
    table: &str,
    entries: I,
) -> Result<(), ShardError>
where
    I: IntoIterator<Item = (Vec<u8>, Vec<u8>)>,
{
    txn.delete_table(table)?;
    let mut opened = txn.open_table(table)?;
    for (key, value) in entries {
        opened.insert(&key, &value)?;
    }
    Ok(())
}

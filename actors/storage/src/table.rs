//! Table handles: [`ReadTable`] on a snapshot and [`Table`] inside the write transaction.

use crate::btree::{self, load_value, prefix_end, Range, Value};
use crate::db::{check_key, Committed, TableState, WriteTransaction};
use crate::error::StorageError;
use crate::limits::inline_value_max;
use crate::node::StoredValue;
use std::ops::{Bound, RangeBounds};

fn bounds<'k, R: RangeBounds<&'k [u8]>>(range: &R) -> (Bound<&'k [u8]>, Bound<&'k [u8]>) {
    (range.start_bound().cloned(), range.end_bound().cloned())
}

/// A table of a read snapshot.
pub struct ReadTable<'t> {
    source: &'t Committed,
    state: TableState,
}

impl<'t> ReadTable<'t> {
    pub(crate) fn new(source: &'t Committed, state: TableState) -> ReadTable<'t> {
        ReadTable { source, state }
    }

    /// The value stored under `key`.
    pub fn get(&self, key: &[u8]) -> Result<Option<Value<'t>>, StorageError> {
        match btree::get(self.source, self.state.root, key)? {
            Some(value) => load_value(self.source, value).map(Some),
            None => Ok(None),
        }
    }

    /// Entries with keys in `range`, in key order (reverse with `.rev()`).
    pub fn range<'k, R: RangeBounds<&'k [u8]>>(&self, range: R) -> Result<Range<'t>, StorageError> {
        let (start, end) = bounds(&range);
        Range::new(self.source, self.state.root, start, end)
    }

    /// Entries whose keys start with `prefix`, in key order.
    pub fn prefix(&self, prefix: &[u8]) -> Result<Range<'t>, StorageError> {
        let end = prefix_end(prefix);
        let end_bound = end.as_deref().map_or(Bound::Unbounded, Bound::Excluded);
        Range::new(
            self.source,
            self.state.root,
            Bound::Included(prefix),
            end_bound,
        )
    }

    /// Every entry in key order.
    pub fn iter(&self) -> Result<Range<'t>, StorageError> {
        Range::new(
            self.source,
            self.state.root,
            Bound::Unbounded,
            Bound::Unbounded,
        )
    }

    /// Number of entries.
    pub fn len(&self) -> u64 {
        self.state.entries
    }

    /// Whether the table has no entries.
    pub fn is_empty(&self) -> bool {
        self.state.entries == 0
    }

    /// Depth of the table's B+tree (0 when empty).
    pub fn depth(&self) -> Result<usize, StorageError> {
        btree::depth(self.source, self.state.root)
    }
}

/// A table open for writing. Dropping the handle keeps its changes in the transaction.
pub struct Table<'t> {
    txn: &'t mut WriteTransaction,
    name: String,
    state: TableState,
}

impl Drop for Table<'_> {
    fn drop(&mut self) {
        let name = std::mem::take(&mut self.name);
        self.txn.tables.insert(name, Some(self.state));
    }
}

impl<'t> Table<'t> {
    pub(crate) fn new(txn: &'t mut WriteTransaction, name: String, state: TableState) -> Table<'t> {
        Table { txn, name, state }
    }

    /// Inserts or replaces `key`; returns whether a value was replaced.
    pub fn insert(&mut self, key: &[u8], value: &[u8]) -> Result<bool, StorageError> {
        let page_size = self.txn.write.pages.page_size;
        check_key(page_size, key)?;
        let limit = self.txn.limits().value_size_max;
        if value.len() > limit {
            return Err(StorageError::ValueTooLarge {
                length: value.len(),
                limit,
            });
        }
        if self.txn.failed {
            return Err(StorageError::TransactionFailed);
        }
        let result = self.insert_validated(key, value, page_size);
        self.txn.failed |= result.is_err();
        result
    }

    /// The part of `insert` that changes trees: any failure here taints the transaction.
    fn insert_validated(
        &mut self,
        key: &[u8],
        value: &[u8],
        page_size: usize,
    ) -> Result<bool, StorageError> {
        let stored = if value.len() > inline_value_max(page_size) {
            self.txn.write.write_overflow(value)
        } else {
            StoredValue::Inline(value.to_vec())
        };
        let (root, old) = self.txn.write.insert(self.state.root, key, stored)?;
        self.state.root = Some(root);
        self.state.changed = true;
        let Some(old) = old else {
            self.state.entries += 1;
            return Ok(false);
        };
        self.txn.write.release_value(&old)?;
        Ok(true)
    }

    /// Removes `key`; returns the value it held.
    pub fn remove(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        if self.txn.failed {
            return Err(StorageError::TransactionFailed);
        }
        // Read the old value before touching the tree, so a damaged value page fails the
        // call without any change.
        let Some(value) = btree::get(&self.txn.write, self.state.root, key)? else {
            return Ok(None);
        };
        let bytes = load_value(&self.txn.write, value)?.into_vec();
        let result = self.remove_present(key);
        self.txn.failed |= result.is_err();
        result.map(|()| Some(bytes))
    }

    fn remove_present(&mut self, key: &[u8]) -> Result<(), StorageError> {
        let (root, old) = self.txn.write.remove(self.state.root, key)?;
        let old = old.ok_or_else(|| {
            StorageError::corruption(self.state.root.unwrap_or(0), "key vanished during remove")
        })?;
        self.state.root = root;
        self.state.changed = true;
        self.state.entries = self.state.entries.checked_sub(1).ok_or_else(|| {
            StorageError::corruption(root.unwrap_or(0), "catalog entry count below zero")
        })?;
        self.txn.write.release_value(&old)
    }

    /// The value stored under `key`, including this transaction's changes.
    pub fn get(&self, key: &[u8]) -> Result<Option<Value<'_>>, StorageError> {
        match btree::get(&self.txn.write, self.state.root, key)? {
            Some(value) => load_value(&self.txn.write, value).map(Some),
            None => Ok(None),
        }
    }

    /// Entries with keys in `range`, including this transaction's changes.
    pub fn range<'k, R: RangeBounds<&'k [u8]>>(&self, range: R) -> Result<Range<'_>, StorageError> {
        let (start, end) = bounds(&range);
        Range::new(&self.txn.write, self.state.root, start, end)
    }

    /// Entries whose keys start with `prefix`.
    pub fn prefix(&self, prefix: &[u8]) -> Result<Range<'_>, StorageError> {
        let end = prefix_end(prefix);
        let end_bound = end.as_deref().map_or(Bound::Unbounded, Bound::Excluded);
        Range::new(
            &self.txn.write,
            self.state.root,
            Bound::Included(prefix),
            end_bound,
        )
    }

    /// Number of entries.
    pub fn len(&self) -> u64 {
        self.state.entries
    }

    /// Whether the table has no entries.
    pub fn is_empty(&self) -> bool {
        self.state.entries == 0
    }

    /// Depth of the table's B+tree (0 when empty).
    pub fn depth(&self) -> Result<usize, StorageError> {
        btree::depth(&self.txn.write, self.state.root)
    }
}

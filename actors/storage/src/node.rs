//! B+tree nodes in their two forms: the encoded page (read in place from the mapping,
//! never copied on the read path) and the decoded "dirty" node a write transaction
//! mutates in memory until commit encodes it again.
//!
//! Leaf page: header; `count` u16 slot offsets; entries `key_len u16, flags u8,
//! value_len u32, key, value | overflow first page u64`.
//! Branch page: header; `count + 1` u64 child ids; `count` u16 slot offsets; separator
//! entries `key_len u16, key`. Child `i` holds keys `k` with `key[i-1] <= k < key[i]`.

use crate::error::StorageError;
use crate::page::{count, read_u16, read_u32, read_u64, write_u16, write_u32, write_u64};
use crate::page::{PageId, HEADER_BYTES};
use std::cmp::Ordering;

const LEAF_ENTRY_OVERHEAD: usize = 2 + 7;
const BRANCH_ENTRY_OVERHEAD: usize = 2 + 2 + 8;
const FLAG_OVERFLOW: u8 = 1;

/// A value as stored in a leaf.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StoredValue {
    Inline(Vec<u8>),
    Overflow { first: PageId, length: u64 },
}

/// A borrowed stored value.
#[derive(Debug, Clone, Copy)]
pub(crate) enum ValueRef<'a> {
    Inline(&'a [u8]),
    Overflow { first: PageId, length: u64 },
}

impl StoredValue {
    pub(crate) fn as_ref(&self) -> ValueRef<'_> {
        match self {
            StoredValue::Inline(bytes) => ValueRef::Inline(bytes),
            StoredValue::Overflow { first, length } => ValueRef::Overflow {
                first: *first,
                length: *length,
            },
        }
    }

    fn stored_bytes(&self) -> usize {
        match self {
            StoredValue::Inline(bytes) => bytes.len(),
            StoredValue::Overflow { .. } => 8,
        }
    }
}

impl ValueRef<'_> {
    pub(crate) fn to_owned(self) -> StoredValue {
        match self {
            ValueRef::Inline(bytes) => StoredValue::Inline(bytes.to_vec()),
            ValueRef::Overflow { first, length } => StoredValue::Overflow { first, length },
        }
    }
}

/// Bytes a leaf entry takes in its page, slot included.
pub(crate) fn leaf_entry_bytes(key: &[u8], value: &StoredValue) -> usize {
    LEAF_ENTRY_OVERHEAD + key.len() + value.stored_bytes()
}

/// Bytes a branch separator takes in its page, slot and child included.
pub(crate) fn branch_entry_bytes(key: &[u8]) -> usize {
    BRANCH_ENTRY_OVERHEAD + key.len()
}

/// A leaf read in place from its page.
#[derive(Clone, Copy)]
pub(crate) struct LeafRef<'a> {
    page: PageId,
    bytes: &'a [u8],
}

impl<'a> LeafRef<'a> {
    pub(crate) fn new(page: PageId, bytes: &'a [u8]) -> LeafRef<'a> {
        LeafRef { page, bytes }
    }

    pub(crate) fn len(&self) -> usize {
        count(self.bytes)
    }

    fn corrupt(&self, reason: &str) -> StorageError {
        StorageError::corruption(self.page, reason)
    }

    fn entry_start(&self, index: usize) -> Result<usize, StorageError> {
        let slot = HEADER_BYTES + 2 * index;
        if slot + 2 > self.bytes.len() {
            return Err(self.corrupt("leaf slot array overruns the page"));
        }
        Ok(read_u16(self.bytes, slot) as usize)
    }

    pub(crate) fn key(&self, index: usize) -> Result<&'a [u8], StorageError> {
        let start = self.entry_start(index)?;
        if start + 7 > self.bytes.len() {
            return Err(self.corrupt("leaf entry header overruns the page"));
        }
        let key_length = read_u16(self.bytes, start) as usize;
        self.bytes
            .get(start + 7..start + 7 + key_length)
            .ok_or_else(|| self.corrupt("leaf key overruns the page"))
    }

    pub(crate) fn value(&self, index: usize) -> Result<ValueRef<'a>, StorageError> {
        let start = self.entry_start(index)?;
        if start + 7 > self.bytes.len() {
            return Err(self.corrupt("leaf entry header overruns the page"));
        }
        let key_length = read_u16(self.bytes, start) as usize;
        let flags = self.bytes[start + 2];
        let value_length = read_u32(self.bytes, start + 3) as usize;
        let value_start = start + 7 + key_length;
        if flags > FLAG_OVERFLOW {
            return Err(self.corrupt("leaf entry has unknown flags"));
        }
        if flags == FLAG_OVERFLOW {
            let first = self
                .bytes
                .get(value_start..value_start + 8)
                .ok_or_else(|| self.corrupt("overflow reference overruns the page"))?;
            let first = u64::from_le_bytes(first.try_into().map_err(|_| self.corrupt("bad"))?);
            return Ok(ValueRef::Overflow {
                first,
                length: value_length as u64,
            });
        }
        self.bytes
            .get(value_start..value_start + value_length)
            .map(ValueRef::Inline)
            .ok_or_else(|| self.corrupt("leaf value overruns the page"))
    }

    /// Binary search: `Ok(index)` if found, `Err(insert position)` otherwise.
    pub(crate) fn search(&self, key: &[u8]) -> Result<Result<usize, usize>, StorageError> {
        let (mut low, mut high) = (0, self.len());
        while low < high {
            let middle = (low + high) / 2;
            match self.key(middle)?.cmp(key) {
                Ordering::Less => low = middle + 1,
                Ordering::Greater => high = middle,
                Ordering::Equal => return Ok(Ok(middle)),
            }
        }
        Ok(Err(low))
    }

    /// Decodes for modification, checking what the write path relies on (entries within
    /// the size limits, keys strictly increasing, the node fits its page): a damaged page
    /// whose checksum still passes must fail here, not in a split.
    pub(crate) fn decode(&self) -> Result<DirtyLeaf, StorageError> {
        let page_size = self.bytes.len();
        let mut leaf = DirtyLeaf::default();
        for index in 0..self.len() {
            let key = self.key(index)?.to_vec();
            let value = self.value(index)?.to_owned();
            let inline_too_long = matches!(&value, StoredValue::Inline(bytes)
                if bytes.len() > crate::limits::inline_value_max(page_size));
            if key.len() > crate::limits::key_size_max(page_size) || inline_too_long {
                return Err(self.corrupt("leaf entry exceeds the size limits"));
            }
            if leaf
                .entries
                .last()
                .is_some_and(|(previous, _)| *previous >= key)
            {
                return Err(self.corrupt("leaf keys out of order"));
            }
            leaf.size += leaf_entry_bytes(&key, &value);
            leaf.entries.push((key, value));
        }
        if leaf.size > page_size {
            return Err(self.corrupt("leaf entries overflow the page"));
        }
        Ok(leaf)
    }
}

/// A branch read in place from its page.
#[derive(Clone, Copy)]
pub(crate) struct BranchRef<'a> {
    page: PageId,
    bytes: &'a [u8],
}

impl<'a> BranchRef<'a> {
    pub(crate) fn new(page: PageId, bytes: &'a [u8]) -> BranchRef<'a> {
        BranchRef { page, bytes }
    }

    /// Number of separator keys (children are one more).
    pub(crate) fn len(&self) -> usize {
        count(self.bytes)
    }

    fn corrupt(&self, reason: &str) -> StorageError {
        StorageError::corruption(self.page, reason)
    }

    pub(crate) fn child(&self, index: usize) -> Result<PageId, StorageError> {
        let at = HEADER_BYTES + 8 * index;
        if index > self.len() || at + 8 > self.bytes.len() {
            return Err(self.corrupt("branch child array overruns the page"));
        }
        Ok(read_u64(self.bytes, at))
    }

    pub(crate) fn key(&self, index: usize) -> Result<&'a [u8], StorageError> {
        let slot = HEADER_BYTES + 8 * (self.len() + 1) + 2 * index;
        if slot + 2 > self.bytes.len() {
            return Err(self.corrupt("branch slot array overruns the page"));
        }
        let start = read_u16(self.bytes, slot) as usize;
        if start + 2 > self.bytes.len() {
            return Err(self.corrupt("branch key header overruns the page"));
        }
        let key_length = read_u16(self.bytes, start) as usize;
        self.bytes
            .get(start + 2..start + 2 + key_length)
            .ok_or_else(|| self.corrupt("branch key overruns the page"))
    }

    /// Index of the child whose range holds `key`: the number of separators `<= key`.
    pub(crate) fn child_index(&self, key: &[u8]) -> Result<usize, StorageError> {
        let (mut low, mut high) = (0, self.len());
        while low < high {
            let middle = (low + high) / 2;
            if self.key(middle)? <= key {
                low = middle + 1;
            } else {
                high = middle;
            }
        }
        Ok(low)
    }

    pub(crate) fn decode(&self) -> Result<DirtyBranch, StorageError> {
        let mut branch = DirtyBranch {
            keys: Vec::with_capacity(self.len()),
            children: Vec::with_capacity(self.len() + 1),
            size: HEADER_BYTES + 8,
        };
        for index in 0..=self.len() {
            branch.children.push(self.child(index)?);
        }
        let page_size = self.bytes.len();
        for index in 0..self.len() {
            let key = self.key(index)?.to_vec();
            if key.len() > crate::limits::key_size_max(page_size) {
                return Err(self.corrupt("branch key exceeds the size limit"));
            }
            if branch.keys.last().is_some_and(|previous| *previous >= key) {
                return Err(self.corrupt("branch keys out of order"));
            }
            branch.size += branch_entry_bytes(&key);
            branch.keys.push(key);
        }
        if branch.size > page_size {
            return Err(self.corrupt("branch entries overflow the page"));
        }
        Ok(branch)
    }
}

/// A leaf being modified by the write transaction.
#[derive(Debug, Clone)]
pub(crate) struct DirtyLeaf {
    pub(crate) entries: Vec<(Vec<u8>, StoredValue)>,
    /// Encoded size in bytes, header included.
    pub(crate) size: usize,
}

impl Default for DirtyLeaf {
    fn default() -> Self {
        DirtyLeaf {
            entries: Vec::new(),
            size: HEADER_BYTES,
        }
    }
}

impl DirtyLeaf {
    pub(crate) fn search(&self, key: &[u8]) -> Result<usize, usize> {
        self.entries
            .binary_search_by(|(probe, _)| probe.as_slice().cmp(key))
    }

    pub(crate) fn from_entries(entries: Vec<(Vec<u8>, StoredValue)>) -> DirtyLeaf {
        let size = HEADER_BYTES
            + entries
                .iter()
                .map(|(key, value)| leaf_entry_bytes(key, value))
                .sum::<usize>();
        DirtyLeaf { entries, size }
    }

    /// Encodes into `page` (a zeroed page buffer); the caller seals the header.
    pub(crate) fn encode(&self, page: &mut [u8]) {
        assert!(
            self.size <= page.len(),
            "leaf of {} bytes overflows its page",
            self.size
        );
        write_u16(page, 18, self.entries.len() as u16);
        let mut at = HEADER_BYTES + 2 * self.entries.len();
        for (index, (key, value)) in self.entries.iter().enumerate() {
            write_u16(page, HEADER_BYTES + 2 * index, at as u16);
            write_u16(page, at, key.len() as u16);
            let (flags, length) = match value {
                StoredValue::Inline(bytes) => (0, bytes.len() as u32),
                StoredValue::Overflow { length, .. } => (FLAG_OVERFLOW, *length as u32),
            };
            page[at + 2] = flags;
            write_u32(page, at + 3, length);
            page[at + 7..at + 7 + key.len()].copy_from_slice(key);
            at += 7 + key.len();
            match value {
                StoredValue::Inline(bytes) => page[at..at + bytes.len()].copy_from_slice(bytes),
                StoredValue::Overflow { first, .. } => write_u64(page, at, *first),
            }
            at += value.stored_bytes();
        }
        assert_eq!(at, self.size, "leaf size accounting drifted");
    }
}

/// A branch being modified by the write transaction.
#[derive(Debug, Clone)]
pub(crate) struct DirtyBranch {
    pub(crate) keys: Vec<Vec<u8>>,
    pub(crate) children: Vec<PageId>,
    /// Encoded size in bytes, header included.
    pub(crate) size: usize,
}

impl DirtyBranch {
    pub(crate) fn new(keys: Vec<Vec<u8>>, children: Vec<PageId>) -> DirtyBranch {
        assert_eq!(
            keys.len() + 1,
            children.len(),
            "a branch has one child per gap"
        );
        let size = HEADER_BYTES
            + 8
            + keys
                .iter()
                .map(|key| branch_entry_bytes(key))
                .sum::<usize>();
        DirtyBranch {
            keys,
            children,
            size,
        }
    }

    pub(crate) fn child_index(&self, key: &[u8]) -> usize {
        self.keys
            .partition_point(|separator| separator.as_slice() <= key)
    }

    /// Encodes into `page` (a zeroed page buffer); the caller seals the header.
    pub(crate) fn encode(&self, page: &mut [u8]) {
        assert!(
            self.size <= page.len(),
            "branch of {} bytes overflows its page",
            self.size
        );
        write_u16(page, 18, self.keys.len() as u16);
        for (index, child) in self.children.iter().enumerate() {
            write_u64(page, HEADER_BYTES + 8 * index, *child);
        }
        let slots = HEADER_BYTES + 8 * self.children.len();
        let mut at = slots + 2 * self.keys.len();
        for (index, key) in self.keys.iter().enumerate() {
            write_u16(page, slots + 2 * index, at as u16);
            write_u16(page, at, key.len() as u16);
            page[at + 2..at + 2 + key.len()].copy_from_slice(key);
            at += 2 + key.len();
        }
        assert_eq!(at, self.size, "branch size accounting drifted");
    }
}

/// A node of either form, for the algorithms that only read.
#[derive(Clone, Copy)]
pub(crate) enum NodeRef<'a> {
    Leaf(LeafRef<'a>),
    Branch(BranchRef<'a>),
    DirtyLeaf(&'a DirtyLeaf),
    DirtyBranch(&'a DirtyBranch),
}

/// The read-only operations both node forms support.
impl<'a> NodeRef<'a> {
    pub(crate) fn is_leaf(&self) -> bool {
        matches!(self, NodeRef::Leaf(_) | NodeRef::DirtyLeaf(_))
    }

    /// Entries of a leaf, separators of a branch.
    pub(crate) fn len(&self) -> usize {
        match self {
            NodeRef::Leaf(leaf) => leaf.len(),
            NodeRef::Branch(branch) => branch.len(),
            NodeRef::DirtyLeaf(leaf) => leaf.entries.len(),
            NodeRef::DirtyBranch(branch) => branch.keys.len(),
        }
    }

    pub(crate) fn key(&self, index: usize) -> Result<&'a [u8], StorageError> {
        match self {
            NodeRef::Leaf(leaf) => leaf.key(index),
            NodeRef::Branch(branch) => branch.key(index),
            NodeRef::DirtyLeaf(leaf) => Ok(&leaf.entries[index].0),
            NodeRef::DirtyBranch(branch) => Ok(&branch.keys[index]),
        }
    }

    pub(crate) fn value(&self, index: usize) -> Result<ValueRef<'a>, StorageError> {
        match self {
            NodeRef::Leaf(leaf) => leaf.value(index),
            NodeRef::DirtyLeaf(leaf) => Ok(leaf.entries[index].1.as_ref()),
            NodeRef::Branch(_) | NodeRef::DirtyBranch(_) => {
                unreachable!("invariant: values are only read from leaves")
            }
        }
    }

    pub(crate) fn child(&self, index: usize) -> Result<PageId, StorageError> {
        match self {
            NodeRef::Branch(branch) => branch.child(index),
            NodeRef::DirtyBranch(branch) => Ok(branch.children[index]),
            NodeRef::Leaf(_) | NodeRef::DirtyLeaf(_) => {
                unreachable!("invariant: children are only read from branches")
            }
        }
    }

    pub(crate) fn child_index(&self, key: &[u8]) -> Result<usize, StorageError> {
        match self {
            NodeRef::Branch(branch) => branch.child_index(key),
            NodeRef::DirtyBranch(branch) => Ok(branch.child_index(key)),
            NodeRef::Leaf(_) | NodeRef::DirtyLeaf(_) => {
                unreachable!("invariant: child_index is only asked of branches")
            }
        }
    }

    /// Whether the node is a leaf, and its encoded size in bytes (header included).
    pub(crate) fn encoded_size(&self) -> Result<(bool, usize), StorageError> {
        let mut size = HEADER_BYTES;
        match self {
            NodeRef::DirtyLeaf(leaf) => Ok((true, leaf.size)),
            NodeRef::DirtyBranch(branch) => Ok((false, branch.size)),
            NodeRef::Leaf(leaf) => {
                for index in 0..leaf.len() {
                    let stored = match leaf.value(index)? {
                        ValueRef::Inline(bytes) => bytes.len(),
                        ValueRef::Overflow { .. } => 8,
                    };
                    size += LEAF_ENTRY_OVERHEAD + leaf.key(index)?.len() + stored;
                }
                Ok((true, size))
            }
            NodeRef::Branch(branch) => {
                size += 8;
                for index in 0..branch.len() {
                    size += branch_entry_bytes(branch.key(index)?);
                }
                Ok((false, size))
            }
        }
    }

    /// Leaf binary search: `Ok(index)` if found, `Err(insert position)` otherwise.
    pub(crate) fn search(&self, key: &[u8]) -> Result<Result<usize, usize>, StorageError> {
        match self {
            NodeRef::Leaf(leaf) => leaf.search(key),
            NodeRef::DirtyLeaf(leaf) => Ok(leaf.search(key)),
            NodeRef::Branch(_) | NodeRef::DirtyBranch(_) => {
                unreachable!("invariant: search is only asked of leaves")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::page::{checksum_valid, seal, PageKind};

    fn leaf_with(entries: &[(&[u8], StoredValue)]) -> DirtyLeaf {
        DirtyLeaf::from_entries(
            entries
                .iter()
                .map(|(k, v)| (k.to_vec(), v.clone()))
                .collect(),
        )
    }

    #[test]
    fn leaf_round_trips_through_its_page_encoding() {
        let leaf = leaf_with(&[
            (b"a", StoredValue::Inline(b"one".to_vec())),
            (b"bb", StoredValue::Inline(Vec::new())),
            (
                b"ccc",
                StoredValue::Overflow {
                    first: 42,
                    length: 9000,
                },
            ),
        ]);
        let mut page = vec![0u8; 512];
        leaf.encode(&mut page);
        seal(9, &mut page, PageKind::Leaf, leaf.entries.len(), 1);
        assert!(checksum_valid(9, &page));
        assert!(
            !checksum_valid(10, &page),
            "the page id is part of the checksum"
        );
        let view = LeafRef::new(9, &page);
        assert_eq!(view.len(), 3);
        assert_eq!(view.key(1).unwrap(), b"bb");
        assert!(matches!(
            view.value(2).unwrap(),
            ValueRef::Overflow {
                first: 42,
                length: 9000
            }
        ));
        assert_eq!(view.search(b"bb").unwrap(), Ok(1));
        assert_eq!(view.search(b"b").unwrap(), Err(1));
        assert_eq!(view.decode().unwrap().entries, leaf.entries);
        assert_eq!(view.decode().unwrap().size, leaf.size);
    }

    #[test]
    fn branch_round_trips_and_routes_keys_to_children() {
        let branch = DirtyBranch::new(vec![b"m".to_vec(), b"t".to_vec()], vec![5, 6, 7]);
        let mut page = vec![0u8; 512];
        branch.encode(&mut page);
        let view = BranchRef::new(3, &page);
        let decoded = view.decode().unwrap();
        assert_eq!(decoded.keys, branch.keys);
        assert_eq!(decoded.children, branch.children);
        for (key, child) in [(&b"a"[..], 0), (b"m", 1), (b"s", 1), (b"t", 2), (b"z", 2)] {
            assert_eq!(view.child_index(key).unwrap(), child);
            assert_eq!(branch.child_index(key), child);
        }
    }

    /// A leaf whose slots all point at one large entry passes its checksum once resealed,
    /// but decoding it for a write must fail: splitting it would find no fitting cut.
    #[test]
    fn decoding_for_a_write_rejects_structures_the_write_path_cannot_handle() {
        let big = vec![b'k'; crate::limits::key_size_max(512)];
        let value = || StoredValue::Inline(vec![1; 10]);
        let leaf = leaf_with(&[
            (&big, value()),
            (b"l", value()),
            (b"m", value()),
            (b"n", value()),
        ]);
        let mut page = vec![0u8; 512];
        leaf.encode(&mut page);
        let entry = read_u16(&page, HEADER_BYTES);
        for slot in 0..4 {
            write_u16(&mut page, HEADER_BYTES + 2 * slot, entry);
        }
        write_u16(&mut page, 18, 4);
        let error = LeafRef::new(5, &page).decode().unwrap_err().to_string();
        assert!(error.contains("out of order"), "{error}");
        let branch = DirtyBranch::new(vec![b"b".to_vec(), b"a".to_vec()], vec![2, 3, 4]);
        let mut page = vec![0u8; 512];
        branch.encode(&mut page);
        let error = BranchRef::new(6, &page).decode().unwrap_err().to_string();
        assert!(error.contains("out of order"), "{error}");
    }

    #[test]
    fn damaged_slots_give_corruption_not_panics() {
        let leaf = leaf_with(&[(b"key", StoredValue::Inline(b"value".to_vec()))]);
        let mut page = vec![0u8; 512];
        leaf.encode(&mut page);
        write_u16(&mut page, HEADER_BYTES, 600);
        let view = LeafRef::new(4, &page);
        assert!(matches!(
            view.key(0),
            Err(StorageError::Corruption { page: 4, .. })
        ));
        page[18] = 0xff;
        let view = LeafRef::new(4, &page);
        assert!(view.key(300).is_err());
    }
}

//! Write-side B+tree algorithms: copy-on-write insert and remove with splits and merges,
//! overflow chains, and the page allocator of one write transaction.
//!
//! A committed page is never modified: the first time a transaction touches it, the node
//! is decoded into a [`DirtyNode`] under a freshly allocated page id and the old page is
//! released (reusable once no snapshot can reach it). Later changes in the same
//! transaction mutate the dirty node in memory; commit encodes each dirty node once.

use crate::btree::TREE_DEPTH_MAX;
use crate::btree::{overflow_pages, NodeSource, OVERFLOW_DATA_AT, OVERFLOW_NEXT_AT};
use crate::error::StorageError;
use crate::node::{branch_entry_bytes, BranchRef, LeafRef, NodeRef};
use crate::node::{DirtyBranch, DirtyLeaf, StoredValue};
use crate::page::{read_u64, write_u32, write_u64, PageId, PageKind, Pages, HEADER_BYTES};
use std::collections::HashMap;

/// Page-id maps of a write transaction. A fixed-seed fast hash: the keys are our own page
/// ids, not attacker input, and SipHash cost 4% of an insert.
pub(crate) type PageMap<V> = HashMap<PageId, V, foldhash::fast::FixedState>;

/// A node being modified.
#[derive(Debug, Clone)]
pub(crate) enum DirtyNode {
    Leaf(DirtyLeaf),
    Branch(DirtyBranch),
}

/// Hands out page ids: reusable pages first, then new pages past the high-water mark.
#[derive(Debug, Clone)]
pub(crate) struct Allocator {
    /// Pages free for reuse now, highest first so `pop` returns the lowest id.
    pub(crate) free: Vec<PageId>,
    /// Pages `[0, high_water)` exist in the file's page space.
    pub(crate) high_water: u64,
}

impl Allocator {
    pub(crate) fn allocate(&mut self) -> PageId {
        match self.free.pop() {
            Some(page) => page,
            None => {
                self.high_water += 1;
                self.high_water - 1
            }
        }
    }
}

/// The mutable state of one write transaction's trees.
pub(crate) struct WriteState {
    pub(crate) pages: Pages,
    pub(crate) dirty: PageMap<DirtyNode>,
    /// Overflow pages written by this transaction (unsealed page images).
    pub(crate) dirty_overflow: PageMap<Vec<u8>>,
    pub(crate) allocator: Allocator,
    /// Committed pages this transaction stopped referencing that a durable meta page may
    /// still reach.
    pub(crate) released: Vec<PageId>,
    /// Committed pages this transaction stopped referencing that were written after the
    /// newest durable commit, so no meta page on disk reaches them.
    pub(crate) released_young: Vec<PageId>,
    /// The newest durable commit when this transaction began.
    pub(crate) durable_txn: u64,
}

/// Outcome of inserting into a subtree.
struct Inserted {
    page: PageId,
    split: Option<(Vec<u8>, PageId)>,
    old: Option<StoredValue>,
}

/// Outcome of removing from a subtree.
struct Removed {
    page: PageId,
    old: StoredValue,
    underfull: bool,
    /// The node holds nothing any more (a leaf without entries, a branch without
    /// children); the parent cuts it out.
    empty: bool,
}

impl NodeSource for WriteState {
    fn node(&self, page: PageId) -> Result<NodeRef<'_>, StorageError> {
        match self.dirty.get(&page) {
            Some(DirtyNode::Leaf(leaf)) => Ok(NodeRef::DirtyLeaf(leaf)),
            Some(DirtyNode::Branch(branch)) => Ok(NodeRef::DirtyBranch(branch)),
            None => self.pages.node(page),
        }
    }

    fn overflow_page(&self, page: PageId) -> Result<&[u8], StorageError> {
        match self.dirty_overflow.get(&page) {
            Some(bytes) => Ok(bytes),
            None => self.pages.page(page, PageKind::Overflow),
        }
    }

    fn page_size(&self) -> usize {
        self.pages.page_size
    }
}

impl Pages {
    /// The committed node at `page`, read in place.
    pub(crate) fn node(&self, page: PageId) -> Result<NodeRef<'_>, StorageError> {
        let bytes = self.raw(page)?;
        match crate::page::kind_byte(bytes) {
            byte if byte == PageKind::Leaf as u8 => Ok(NodeRef::Leaf(LeafRef::new(
                page,
                self.page(page, PageKind::Leaf)?,
            ))),
            byte if byte == PageKind::Branch as u8 => Ok(NodeRef::Branch(BranchRef::new(
                page,
                self.page(page, PageKind::Branch)?,
            ))),
            _ => {
                // Verify first so a damaged page reports a checksum failure, not a kind.
                self.page(page, PageKind::Leaf)?;
                Err(StorageError::corruption(page, "expected a tree node"))
            }
        }
    }
}

impl WriteState {
    fn capacity(&self) -> usize {
        self.pages.page_size
    }

    /// Stops referencing `page`: a page dirtied in this transaction is reusable at once,
    /// a committed one only after this transaction is durable and unobserved.
    pub(crate) fn release(&mut self, page: PageId) {
        if self.dirty.remove(&page).is_some() || self.dirty_overflow.remove(&page).is_some() {
            self.allocator.free.push(page);
        } else {
            self.release_committed(page);
        }
    }

    /// Files a committed page under `released` or `released_young` by the transaction
    /// that wrote it (pages are immutable, so their header says when they were written).
    fn release_committed(&mut self, page: PageId) {
        let written_by = self.pages.raw(page).map(|bytes| read_u64(bytes, 24));
        match written_by {
            Ok(txn) if txn > self.durable_txn => self.released_young.push(page),
            _ => self.released.push(page),
        }
    }

    /// The id of a dirty copy of `page`, copying it on first touch.
    fn make_dirty(&mut self, page: PageId) -> Result<PageId, StorageError> {
        if self.dirty.contains_key(&page) {
            return Ok(page);
        }
        let node = match self.pages.node(page)? {
            // Read in place: the page's bytes stay put while this transaction lives.
            NodeRef::Leaf(leaf) => {
                let trusted = self.pages.verified.is_trusted(page);
                let decoded = leaf.decode_over(self.pages.base(page), trusted)?;
                self.pages.verified.set_trusted(page);
                DirtyNode::Leaf(decoded)
            }
            NodeRef::Branch(branch) => DirtyNode::Branch(branch.decode()?),
            NodeRef::DirtyLeaf(_) | NodeRef::DirtyBranch(_) => {
                unreachable!("invariant: committed pages decode to committed nodes")
            }
        };
        let copy = self.allocator.allocate();
        self.dirty.insert(copy, node);
        self.release_committed(page);
        Ok(copy)
    }

    fn dirty_mut(&mut self, page: PageId) -> &mut DirtyNode {
        self.dirty
            .get_mut(&page)
            .expect("invariant: make_dirty ran before the node is mutated")
    }

    /// Inserts or replaces `key`; returns the new root and the replaced value.
    pub(crate) fn insert(
        &mut self,
        root: Option<PageId>,
        key: &[u8],
        value: StoredValue,
    ) -> Result<(PageId, Option<StoredValue>), StorageError> {
        let Some(root) = root else {
            let page = self.allocator.allocate();
            let leaf = DirtyLeaf::from_entries([(key, value.as_ref())]);
            self.dirty.insert(page, DirtyNode::Leaf(leaf));
            return Ok((page, None));
        };
        let inserted = self.insert_into(root, key, value, 0)?;
        let Some((separator, right)) = inserted.split else {
            return Ok((inserted.page, inserted.old));
        };
        let page = self.allocator.allocate();
        let branch = DirtyBranch::new(vec![separator], vec![inserted.page, right]);
        self.dirty.insert(page, DirtyNode::Branch(branch));
        Ok((page, inserted.old))
    }

    fn insert_into(
        &mut self,
        page: PageId,
        key: &[u8],
        value: StoredValue,
        depth: usize,
    ) -> Result<Inserted, StorageError> {
        if depth > TREE_DEPTH_MAX {
            return Err(StorageError::corruption(
                page,
                "tree deeper than TREE_DEPTH_MAX",
            ));
        }
        let page = self.make_dirty(page)?;
        let capacity = self.capacity();
        let (child_index, child) = match self.dirty_mut(page) {
            DirtyNode::Leaf(leaf) => {
                let old = leaf.put(key, &value);
                let appended = leaf.last_key() == Some(key);
                let split = (leaf.size > capacity).then(|| self.split_leaf(page, appended));
                return Ok(Inserted { page, split, old });
            }
            DirtyNode::Branch(branch) => {
                let index = branch.child_index(key);
                (index, branch.children[index])
            }
        };
        let inserted = self.insert_into(child, key, value, depth + 1)?;
        let DirtyNode::Branch(branch) = self.dirty_mut(page) else {
            unreachable!("invariant: the node was a branch a moment ago")
        };
        branch.children[child_index] = inserted.page;
        if let Some((separator, right)) = inserted.split {
            branch.size += branch_entry_bytes(&separator);
            branch.keys.insert(child_index, separator);
            branch.children.insert(child_index + 1, right);
        }
        let appended = child_index + 2 >= branch.children.len();
        let split = (branch.size > capacity).then(|| self.split_branch(page, appended));
        Ok(Inserted {
            page,
            split,
            old: inserted.old,
        })
    }

    /// Splits an overfull leaf. After an append (the new key is the largest) the left
    /// half is left as full as possible, so sequential loads fill pages instead of
    /// leaving them half empty.
    fn split_leaf(&mut self, page: PageId, appended: bool) -> (Vec<u8>, PageId) {
        let capacity = self.capacity();
        let DirtyNode::Leaf(leaf) = self.dirty_mut(page) else {
            unreachable!("invariant: split_leaf is called on a leaf")
        };
        let sizes: Vec<usize> = (0..leaf.len()).map(|i| leaf.entry_bytes(i)).collect();
        let at = balanced_split(&sizes, HEADER_BYTES, capacity, 0, appended);
        let right = leaf.split_off(at);
        assert!(
            leaf.size <= capacity && right.size <= capacity,
            "leaf split must fit"
        );
        assert!(
            !leaf.is_empty() && !right.is_empty(),
            "leaf split leaves both halves full"
        );
        let separator = right.key(0).to_vec();
        let right_page = self.allocator.allocate();
        self.dirty.insert(right_page, DirtyNode::Leaf(right));
        (separator, right_page)
    }

    fn split_branch(&mut self, page: PageId, appended: bool) -> (Vec<u8>, PageId) {
        let capacity = self.capacity();
        let DirtyNode::Branch(branch) = self.dirty_mut(page) else {
            unreachable!("invariant: split_branch is called on a branch")
        };
        let sizes: Vec<usize> = branch
            .keys
            .iter()
            .map(|key| branch_entry_bytes(key))
            .collect();
        // The separator at `at` moves up, so it counts on neither side.
        let at = balanced_split(&sizes, HEADER_BYTES + 8, capacity, 1, appended);
        let right_keys = branch.keys.split_off(at + 1);
        let separator = branch
            .keys
            .pop()
            .expect("invariant: split index is in range");
        let right_children = branch.children.split_off(at + 1);
        let left = DirtyBranch::new(
            std::mem::take(&mut branch.keys),
            std::mem::take(&mut branch.children),
        );
        *branch = left;
        let right = DirtyBranch::new(right_keys, right_children);
        assert!(
            branch.size <= capacity && right.size <= capacity,
            "branch split must fit"
        );
        let right_page = self.allocator.allocate();
        self.dirty.insert(right_page, DirtyNode::Branch(right));
        (separator, right_page)
    }

    /// Removes `key`; returns the new root and the removed value. Touches no page when
    /// the key is absent.
    pub(crate) fn remove(
        &mut self,
        root: Option<PageId>,
        key: &[u8],
    ) -> Result<(Option<PageId>, Option<StoredValue>), StorageError> {
        let Some(root) = root else {
            return Ok((None, None));
        };
        if crate::btree::get(self, Some(root), key)?.is_none() {
            return Ok((Some(root), None));
        }
        let removed = self.remove_from(root, key, 0)?;
        Ok((self.collapse_root(removed.page), Some(removed.old)))
    }

    /// Drops an empty root and branch roots with a single child.
    fn collapse_root(&mut self, mut root: PageId) -> Option<PageId> {
        loop {
            match self.dirty.get(&root) {
                Some(DirtyNode::Leaf(leaf)) if leaf.is_empty() => {
                    self.release(root);
                    return None;
                }
                Some(DirtyNode::Branch(branch)) if branch.keys.is_empty() => {
                    let child = branch.children.first().copied();
                    self.release(root);
                    root = child?;
                }
                _ => return Some(root),
            }
        }
    }

    fn remove_from(
        &mut self,
        page: PageId,
        key: &[u8],
        depth: usize,
    ) -> Result<Removed, StorageError> {
        if depth > TREE_DEPTH_MAX {
            return Err(StorageError::corruption(
                page,
                "tree deeper than TREE_DEPTH_MAX",
            ));
        }
        let page = self.make_dirty(page)?;
        let quarter = self.capacity() / 4;
        let (child_index, child) = match self.dirty_mut(page) {
            DirtyNode::Leaf(leaf) => {
                let index = leaf
                    .search(key)
                    .map_err(|_| StorageError::corruption(page, "leaf keys out of order"))?;
                let old = leaf.remove(index);
                let (underfull, empty) = (leaf.size < quarter, leaf.is_empty());
                return Ok(Removed {
                    page,
                    old,
                    underfull,
                    empty,
                });
            }
            DirtyNode::Branch(branch) => {
                let index = branch.child_index(key);
                (index, branch.children[index])
            }
        };
        let removed = self.remove_from(child, key, depth + 1)?;
        self.dirty_branch(page)?.children[child_index] = removed.page;
        if removed.empty {
            self.cut_child(page, child_index)?;
        } else if removed.underfull {
            self.merge_child(page, child_index)?;
        }
        let branch = self.dirty_branch(page)?;
        let (underfull, empty) = (branch.size < quarter, branch.children.is_empty());
        Ok(Removed {
            page,
            old: removed.old,
            underfull,
            empty,
        })
    }

    fn dirty_branch(&mut self, page: PageId) -> Result<&mut DirtyBranch, StorageError> {
        match self.dirty_mut(page) {
            DirtyNode::Branch(branch) => Ok(branch),
            DirtyNode::Leaf(_) => Err(StorageError::corruption(page, "expected a branch")),
        }
    }

    /// Removes the empty child at `index` and a separator next to it. Empty nodes are
    /// never kept, so a drained table holds no pages.
    fn cut_child(&mut self, parent: PageId, index: usize) -> Result<(), StorageError> {
        let branch = self.dirty_branch(parent)?;
        let child = branch.children.remove(index);
        if !branch.keys.is_empty() {
            let separator = branch.keys.remove(index.saturating_sub(1));
            branch.size -= branch_entry_bytes(&separator);
        }
        self.release(child);
        Ok(())
    }

    /// Merges the underfull child at `index` with a sibling when both fit in one page.
    fn merge_child(&mut self, parent: PageId, index: usize) -> Result<(), StorageError> {
        let branch = self.dirty_branch(parent)?;
        if branch.children.len() < 2 {
            return Ok(());
        }
        let left_index = if index > 0 { index - 1 } else { index };
        let (left, right) = (branch.children[left_index], branch.children[left_index + 1]);
        let separator = branch.keys[left_index].clone();
        // Decide on the encoded sizes first, so that a merge that cannot happen copies
        // no sibling (deletes would otherwise rewrite a neighbour every time).
        if !self.merge_fits(left, right, &separator)? {
            return Ok(());
        }
        let left = self.make_dirty(left)?;
        let right = self.make_dirty(right)?;
        let merged = self.merge_nodes(left, right, &separator)?;
        assert!(
            merged,
            "merge_fits and merge_nodes agree on the merged size"
        );
        let branch = self.dirty_branch(parent)?;
        branch.children[left_index] = left;
        let separator = branch.keys.remove(left_index);
        branch.children.remove(left_index + 1);
        branch.size -= branch_entry_bytes(&separator);
        self.release(right);
        Ok(())
    }

    /// Whether siblings `left` and `right` (with `separator` between them) fit in one
    /// page, computed without copying either.
    fn merge_fits(
        &self,
        left: PageId,
        right: PageId,
        separator: &[u8],
    ) -> Result<bool, StorageError> {
        let (left_leaf, left_size) = self.node(left)?.encoded_size()?;
        let (right_leaf, right_size) = self.node(right)?.encoded_size()?;
        let merged = match (left_leaf, right_leaf) {
            (true, true) => left_size + right_size - HEADER_BYTES,
            (false, false) => {
                left_size + right_size - HEADER_BYTES - 8 + branch_entry_bytes(separator)
            }
            _ => {
                return Err(StorageError::corruption(
                    right,
                    "siblings at different depths",
                ))
            }
        };
        Ok(merged <= self.capacity())
    }

    /// Moves `right`'s entries into `left` if the result fits; returns whether it did.
    fn merge_nodes(
        &mut self,
        left: PageId,
        right: PageId,
        separator: &[u8],
    ) -> Result<bool, StorageError> {
        let capacity = self.capacity();
        let (Some(left_node), Some(right_node)) = (self.dirty.get(&left), self.dirty.get(&right))
        else {
            unreachable!("invariant: both siblings were made dirty")
        };
        let fits = match (left_node, right_node) {
            (DirtyNode::Leaf(l), DirtyNode::Leaf(r)) => l.size + r.size - HEADER_BYTES <= capacity,
            (DirtyNode::Branch(l), DirtyNode::Branch(r)) => {
                l.size + r.size - HEADER_BYTES - 8 + branch_entry_bytes(separator) <= capacity
            }
            _ => {
                return Err(StorageError::corruption(
                    right,
                    "siblings at different depths",
                ))
            }
        };
        if !fits {
            return Ok(false);
        }
        let right_node = std::mem::replace(
            self.dirty
                .get_mut(&right)
                .expect("invariant: checked above"),
            DirtyNode::Leaf(DirtyLeaf::default()),
        );
        match (
            self.dirty.get_mut(&left).expect("invariant: checked above"),
            right_node,
        ) {
            (DirtyNode::Leaf(l), DirtyNode::Leaf(r)) => l.append(&r),
            (DirtyNode::Branch(l), DirtyNode::Branch(r)) => {
                l.size += r.size - HEADER_BYTES - 8 + branch_entry_bytes(separator);
                l.keys.push(separator.to_vec());
                l.keys.extend(r.keys);
                l.children.extend(r.children);
            }
            _ => unreachable!("invariant: kinds were matched above"),
        }
        Ok(true)
    }

    /// Writes `value` to a chain of overflow pages.
    pub(crate) fn write_overflow(&mut self, value: &[u8]) -> StoredValue {
        let page_size = self.capacity();
        let chunk = page_size - OVERFLOW_DATA_AT;
        let pages: Vec<PageId> = (0..value.len().div_ceil(chunk))
            .map(|_| self.allocator.allocate())
            .collect();
        for (index, data) in value.chunks(chunk).enumerate() {
            let mut bytes = vec![0u8; page_size];
            write_u32(&mut bytes, 20, data.len() as u32);
            write_u64(
                &mut bytes,
                OVERFLOW_NEXT_AT,
                pages.get(index + 1).copied().unwrap_or(0),
            );
            bytes[OVERFLOW_DATA_AT..OVERFLOW_DATA_AT + data.len()].copy_from_slice(data);
            self.dirty_overflow.insert(pages[index], bytes);
        }
        StoredValue::Overflow {
            first: pages[0],
            length: value.len() as u64,
        }
    }

    /// Releases the pages behind a value that is no longer referenced.
    pub(crate) fn release_value(&mut self, value: &StoredValue) -> Result<(), StorageError> {
        if let StoredValue::Overflow { first, length } = value {
            for page in overflow_pages(self, *first, *length)? {
                self.release(page);
            }
        }
        Ok(())
    }

    /// Releases every page of the tree at `root` (dropping a table).
    pub(crate) fn release_tree(&mut self, root: PageId) -> Result<(), StorageError> {
        let mut stack = vec![root];
        // A tree has at most as many nodes as there are pages; more means a cycle.
        let mut budget = self.allocator.high_water;
        while let Some(page) = stack.pop() {
            budget = budget
                .checked_sub(1)
                .ok_or_else(|| StorageError::corruption(page, "tree has a cycle"))?;
            let mut values = Vec::new();
            match self.node(page)? {
                node if node.is_leaf() => {
                    for index in 0..node.len() {
                        values.push(node.value(index)?.to_owned());
                    }
                }
                node => {
                    for index in 0..=node.len() {
                        stack.push(node.child(index)?);
                    }
                }
            }
            for value in &values {
                self.release_value(value)?;
            }
            self.release(page);
        }
        Ok(())
    }
}

/// Split index that balances the two halves of a node whose entries have `sizes`, each
/// half within `capacity`. `promoted` is 1 for branches, whose split entry moves up.
/// With `append`, the fullest left half that fits wins instead.
fn balanced_split(
    sizes: &[usize],
    base: usize,
    capacity: usize,
    promoted: usize,
    append: bool,
) -> usize {
    let total: usize = sizes.iter().sum();
    let mut best = None;
    let mut left = 0usize;
    for at in 1..sizes.len() - promoted {
        left += sizes[at - 1];
        let right = total - left - if promoted == 1 { sizes[at] } else { 0 };
        if base + left > capacity || base + right > capacity {
            continue;
        }
        let imbalance = if append { right } else { left.abs_diff(right) };
        if best.is_none_or(|(_, best_imbalance)| imbalance < best_imbalance) {
            best = Some((at, imbalance));
        }
    }
    best.expect("invariant: key and inline value limits guarantee a fitting split")
        .0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::btree::{get, Range};
    use crate::io::{MemoryIo, PageIo};
    use crate::page::VerifiedPages;
    use std::ops::Bound;
    use std::sync::Arc;

    fn empty_state(page_size: usize) -> WriteState {
        let io = MemoryIo::default();
        io.grow(page_size as u64 * 2).unwrap();
        WriteState {
            pages: Pages {
                view: io.view().unwrap(),
                verified: Arc::new(VerifiedPages::new(64)),
                page_size,
                page_count: 2,
            },
            dirty: PageMap::default(),
            dirty_overflow: PageMap::default(),
            allocator: Allocator {
                free: Vec::new(),
                high_water: 2,
            },
            released: Vec::new(),
            released_young: Vec::new(),
            durable_txn: 0,
        }
    }

    fn keys_in_order(state: &WriteState, root: Option<PageId>) -> Vec<Vec<u8>> {
        Range::new(state, root, Bound::Unbounded, Bound::Unbounded)
            .unwrap()
            .map(|entry| entry.unwrap().0.to_vec())
            .collect()
    }

    #[test]
    fn inserts_split_leaves_and_branches_and_removes_merge_them_back() {
        let mut state = empty_state(512);
        let mut root = None;
        for index in 0..2000u32 {
            let key = format!("{:06}", (index * 7919) % 2000).into_bytes();
            root = Some(
                state
                    .insert(root, &key, StoredValue::Inline(vec![1; 20]))
                    .unwrap()
                    .0,
            );
        }
        assert!(
            crate::btree::depth(&state, root).unwrap() >= 3,
            "branches split too"
        );
        let expected: Vec<Vec<u8>> = (0..2000).map(|i| format!("{i:06}").into_bytes()).collect();
        assert_eq!(keys_in_order(&state, root), expected);
        let pages_full = state.dirty.len();
        for index in 0..1990u32 {
            let key = format!("{index:06}").into_bytes();
            let (new_root, old) = state.remove(root, &key).unwrap();
            assert!(old.is_some());
            root = new_root;
            assert!(get(&state, root, &key).unwrap().is_none());
        }
        assert_eq!(keys_in_order(&state, root).len(), 10);
        assert!(
            state.dirty.len() * 20 < pages_full,
            "merges returned pages to the pool"
        );
        assert!(
            crate::btree::depth(&state, root).unwrap() <= 2,
            "the root collapsed"
        );
        for index in 1990..2000u32 {
            root = state
                .remove(root, format!("{index:06}").as_bytes())
                .unwrap()
                .0;
        }
        assert_eq!(root, None);
        assert!(state.dirty.is_empty());
    }

    #[test]
    fn removing_an_absent_key_touches_no_page() {
        let mut state = empty_state(512);
        let root = Some(
            state
                .insert(None, b"a", StoredValue::Inline(vec![]))
                .unwrap()
                .0,
        );
        let dirty_before = state.dirty.len();
        assert_eq!(state.remove(root, b"b").unwrap(), (root, None));
        assert_eq!(state.dirty.len(), dirty_before);
    }

    #[test]
    fn balanced_split_keeps_both_halves_within_the_page() {
        let sizes = [100, 100, 200, 100, 100];
        // Leaves: [100, 100] | [200, 100, 100] is the first most balanced cut that fits.
        assert_eq!(balanced_split(&sizes, 32, 512, 0, false), 2);
        // Branches: the entry at the cut moves up, [100, 100] ^200 [100, 100].
        assert_eq!(balanced_split(&sizes, 40, 512, 1, false), 2);
        // A cut that overflows either half is never chosen.
        assert_eq!(balanced_split(&[60, 60, 60, 300], 32, 512, 0, false), 3);
        // After an append the left half is filled as far as it fits: [100, 100, 200] | [100, 100].
        assert_eq!(balanced_split(&sizes, 32, 512, 0, true), 3);
        assert_eq!(balanced_split(&[50, 50, 50, 50, 50], 32, 512, 0, true), 4);
    }
}

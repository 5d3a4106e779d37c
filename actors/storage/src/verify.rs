//! The integrity check: walks every reachable page and the free list of a snapshot and
//! proves that each page of the page space is used exactly once.

use crate::btree::{overflow_pages, NodeSource};
use crate::db::{catalog_lookup, catalog_names, Committed, Database};
use crate::error::StorageError;
use crate::node::{NodeRef, ValueRef};
use crate::page::{PageId, PageKind};
use std::collections::HashMap;

/// Shape of one table, as found by [`Database::verify`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableStats {
    /// Entries counted by the walk (equal to the catalog's count, or verify fails).
    pub entries: u64,
    /// Depth of the B+tree.
    pub depth: usize,
    /// Branch pages.
    pub branch_pages: u64,
    /// Leaf pages.
    pub leaf_pages: u64,
    /// Overflow pages.
    pub overflow_pages: u64,
}

/// What the integrity check found on a healthy database.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// Committed transaction that was checked.
    pub txn: u64,
    /// Pages reachable from the meta page (trees, overflow chains, free-list chain).
    pub reachable_pages: u64,
    /// Pages free for reuse.
    pub free_pages: u64,
    /// Pages released by recent commits and not yet reusable.
    pub pending_pages: u64,
    /// Per-table shape, by name.
    pub tables: Vec<(String, TableStats)>,
}

/// A node still to visit: page, depth, and the key range its parent assigns.
type PendingNode = (PageId, usize, Option<Vec<u8>>, Option<Vec<u8>>);

struct Walker<'a> {
    snapshot: &'a Committed,
    /// Page → what claimed it, to name both sides of a double use.
    owner: HashMap<PageId, &'static str>,
}

impl Walker<'_> {
    /// A reachable page was written by this commit or an earlier one, never a later one.
    fn written_before_commit(&self, page: PageId) -> Result<(), StorageError> {
        let written_by = crate::page::read_u64(self.snapshot.pages.raw(page)?, 24);
        if written_by > self.snapshot.meta.txn {
            return Err(StorageError::corruption(
                page,
                format!(
                    "written by txn {written_by}, after the commit {}",
                    self.snapshot.meta.txn
                ),
            ));
        }
        Ok(())
    }

    fn claim(&mut self, page: PageId, what: &'static str) -> Result<(), StorageError> {
        if page < 2 || page >= self.snapshot.meta.page_count {
            return Err(StorageError::corruption(
                page,
                format!("{what} page id out of range"),
            ));
        }
        if let Some(previous) = self.owner.insert(page, what) {
            return Err(StorageError::corruption(
                page,
                format!("used as {previous} and as {what}"),
            ));
        }
        Ok(())
    }

    /// Walks the tree at `root`, checking order, key bounds, uniform depth, checksums.
    fn tree(&mut self, root: Option<PageId>) -> Result<TableStats, StorageError> {
        let mut stats = TableStats::default();
        let Some(root) = root else {
            return Ok(stats);
        };
        let mut stack: Vec<PendingNode> = vec![(root, 1, None, None)];
        let mut leaf_depth = None;
        while let Some((page, depth, low, high)) = stack.pop() {
            self.claim(page, "tree node")?;
            self.snapshot.pages.kind(page)?;
            self.written_before_commit(page)?;
            if depth > crate::btree::TREE_DEPTH_MAX {
                return Err(StorageError::corruption(
                    page,
                    "tree deeper than TREE_DEPTH_MAX",
                ));
            }
            let node = self.snapshot.node(page)?;
            check_keys(page, &node, low.as_deref(), high.as_deref())?;
            if node.is_leaf() {
                if *leaf_depth.get_or_insert(depth) != depth {
                    return Err(StorageError::corruption(page, "leaves at different depths"));
                }
                stats.leaf_pages += 1;
                stats.entries += node.len() as u64;
                self.leaf_values(&node, &mut stats)?;
                continue;
            }
            stats.branch_pages += 1;
            for index in 0..=node.len() {
                let child_low = if index == 0 {
                    low.clone()
                } else {
                    Some(node.key(index - 1)?.to_vec())
                };
                let child_high = if index == node.len() {
                    high.clone()
                } else {
                    Some(node.key(index)?.to_vec())
                };
                stack.push((node.child(index)?, depth + 1, child_low, child_high));
            }
        }
        stats.depth = leaf_depth.unwrap_or(0);
        Ok(stats)
    }

    fn leaf_values(
        &mut self,
        node: &NodeRef<'_>,
        stats: &mut TableStats,
    ) -> Result<(), StorageError> {
        for index in 0..node.len() {
            if let ValueRef::Overflow { first, length } = node.value(index)? {
                for page in overflow_pages(self.snapshot, first, length)? {
                    self.claim(page, "overflow")?;
                    self.snapshot.pages.kind(page)?;
                    stats.overflow_pages += 1;
                }
            }
        }
        Ok(())
    }
}

/// Keys of a node are strictly increasing and within `[low, high)`.
fn check_keys(
    page: PageId,
    node: &NodeRef<'_>,
    low: Option<&[u8]>,
    high: Option<&[u8]>,
) -> Result<(), StorageError> {
    let mut previous: Option<&[u8]> = None;
    for index in 0..node.len() {
        let key = node.key(index)?;
        if previous.is_some_and(|previous| previous >= key) {
            return Err(StorageError::corruption(page, "keys out of order"));
        }
        if low.is_some_and(|low| key < low) || high.is_some_and(|high| key >= high) {
            return Err(StorageError::corruption(
                page,
                "key outside the range its parent assigns",
            ));
        }
        previous = Some(key);
    }
    Ok(())
}

impl Database {
    /// Checks the newest committed snapshot: every reachable page's checksum and
    /// structure, and that each page of the page space is reachable, free or pending
    /// exactly once (no double use, no leak).
    pub fn verify(&self) -> Result<VerifyReport, StorageError> {
        let read = self.begin_read();
        let snapshot = read.snapshot();
        let mut walker = Walker {
            snapshot,
            owner: HashMap::new(),
        };
        let catalog_root = snapshot.meta.catalog_root;
        walker.tree(catalog_root)?;
        let mut report = VerifyReport {
            txn: snapshot.meta.txn,
            ..VerifyReport::default()
        };
        for name in catalog_names(snapshot, catalog_root)? {
            let state = catalog_lookup(snapshot, catalog_root, &name)?.ok_or_else(|| {
                StorageError::corruption(catalog_root.unwrap_or(0), "catalog lost a name")
            })?;
            let stats = walker.tree(state.root)?;
            if stats.entries != state.entries {
                let page = state.root.unwrap_or(0);
                return Err(StorageError::corruption(
                    page,
                    format!(
                        "table {name:?}: catalog says {} entries, tree holds {}",
                        state.entries, stats.entries
                    ),
                ));
            }
            report.tables.push((name, stats));
        }
        for page in &snapshot.freelist_chain {
            walker.claim(*page, "free-list")?;
            snapshot.pages.page(*page, PageKind::FreeList)?;
        }
        report.reachable_pages = walker.owner.len() as u64;
        for page in &snapshot.free.free {
            walker.claim(*page, "free")?;
            report.free_pages += 1;
        }
        let free = &snapshot.free;
        for (_, pages) in free.pending.iter().chain(&free.pending_young) {
            for page in pages {
                walker.claim(*page, "pending")?;
                report.pending_pages += 1;
            }
        }
        if let Some(page) =
            (2..snapshot.meta.page_count).find(|page| !walker.owner.contains_key(page))
        {
            return Err(StorageError::corruption(
                page,
                "leaked: neither reachable nor free",
            ));
        }
        Ok(report)
    }
}

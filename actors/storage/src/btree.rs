//! Read-side B+tree algorithms (point lookup, cursors, ranges) over any [`NodeSource`]:
//! a committed snapshot or a write transaction's mix of dirty and committed nodes.

use crate::error::StorageError;
use crate::node::{NodeRef, ValueRef};
use crate::page::{read_u32, read_u64, PageId, HEADER_BYTES};
use std::borrow::Cow;
use std::ops::Bound;

/// Offset of the next-page pointer in an overflow page.
pub(crate) const OVERFLOW_NEXT_AT: usize = HEADER_BYTES;
/// Offset of the data in an overflow page.
pub(crate) const OVERFLOW_DATA_AT: usize = HEADER_BYTES + 8;
/// Deepest tree the algorithms accept; deeper means a cycle in corrupt pages.
pub(crate) const TREE_DEPTH_MAX: usize = 64;

/// Where nodes come from.
pub(crate) trait NodeSource {
    /// The node stored at `page`.
    fn node(&self, page: PageId) -> Result<NodeRef<'_>, StorageError>;
    /// Raw bytes of overflow page `page`.
    fn overflow_page(&self, page: PageId) -> Result<&[u8], StorageError>;
    /// The page size.
    fn page_size(&self) -> usize;
}

/// A value read from a table: borrowed from the mapping when stored inline, owned when
/// it was assembled from overflow pages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Value<'a>(Cow<'a, [u8]>);

impl Value<'_> {
    /// The value's bytes, owned.
    pub fn into_vec(self) -> Vec<u8> {
        self.0.into_owned()
    }
}

impl std::ops::Deref for Value<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl AsRef<[u8]> for Value<'_> {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

/// Follows an overflow chain and yields the page ids with the data each holds.
pub(crate) fn overflow_pages<S: NodeSource + ?Sized>(
    source: &S,
    first: PageId,
    length: u64,
) -> Result<Vec<PageId>, StorageError> {
    let mut pages = Vec::new();
    walk_overflow(source, first, length, |page, _| {
        pages.push(page);
    })?;
    Ok(pages)
}

fn walk_overflow<S: NodeSource + ?Sized>(
    source: &S,
    first: PageId,
    length: u64,
    mut visit: impl FnMut(PageId, &[u8]),
) -> Result<(), StorageError> {
    let capacity = (source.page_size() - OVERFLOW_DATA_AT) as u64;
    let mut remaining = length;
    let mut page = first;
    while remaining > 0 {
        let bytes = source.overflow_page(page)?;
        let held = read_u32(bytes, 20) as u64;
        if held == 0 || held > capacity || held > remaining {
            return Err(StorageError::corruption(
                page,
                "overflow page holds a bad length",
            ));
        }
        visit(
            page,
            &bytes[OVERFLOW_DATA_AT..OVERFLOW_DATA_AT + held as usize],
        );
        remaining -= held;
        page = read_u64(bytes, OVERFLOW_NEXT_AT);
    }
    Ok(())
}

/// Materialises a stored value.
pub(crate) fn load_value<'s, S: NodeSource + ?Sized>(
    source: &'s S,
    value: ValueRef<'s>,
) -> Result<Value<'s>, StorageError> {
    match value {
        ValueRef::Inline(bytes) => Ok(Value(Cow::Borrowed(bytes))),
        ValueRef::Overflow { first, length } => {
            // The length comes from a page: do not trust it for a huge allocation.
            let mut bytes = Vec::with_capacity((length as usize).min(1 << 24));
            walk_overflow(source, first, length, |_, data| {
                bytes.extend_from_slice(data)
            })?;
            Ok(Value(Cow::Owned(bytes)))
        }
    }
}

/// Point lookup.
pub(crate) fn get<'s, S: NodeSource + ?Sized>(
    source: &'s S,
    root: Option<PageId>,
    key: &[u8],
) -> Result<Option<ValueRef<'s>>, StorageError> {
    let Some(mut page) = root else {
        return Ok(None);
    };
    for _ in 0..TREE_DEPTH_MAX {
        let node = source.node(page)?;
        if node.is_leaf() {
            return match node.search(key)? {
                Ok(index) => node.value(index).map(Some),
                Err(_) => Ok(None),
            };
        }
        page = node.child(node.child_index(key)?)?;
    }
    Err(StorageError::corruption(
        page,
        "tree deeper than TREE_DEPTH_MAX: cycle?",
    ))
}

/// Depth of the tree (0 when empty, 1 for a lone leaf).
pub(crate) fn depth<S: NodeSource + ?Sized>(
    source: &S,
    root: Option<PageId>,
) -> Result<usize, StorageError> {
    let Some(mut page) = root else {
        return Ok(0);
    };
    for depth in 1..=TREE_DEPTH_MAX {
        let node = source.node(page)?;
        if node.is_leaf() {
            return Ok(depth);
        }
        page = node.child(0)?;
    }
    Err(StorageError::corruption(
        page,
        "tree deeper than TREE_DEPTH_MAX: cycle?",
    ))
}

/// A position in the tree: the path of (branch, child index) pairs and, last, the
/// (leaf, entry index).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Cursor {
    path: Vec<(PageId, usize)>,
    /// Entries in the leaf on top of the path, so stepping within a leaf reads no page.
    leaf_len: usize,
}

impl Cursor {
    fn position(&self) -> Option<(PageId, usize)> {
        self.path.last().copied()
    }

    /// Descends from `page` to its leftmost (or rightmost) entry, pushing the path.
    fn descend<S: NodeSource + ?Sized>(
        &mut self,
        source: &S,
        mut page: PageId,
        leftmost: bool,
    ) -> Result<(), StorageError> {
        loop {
            if self.path.len() > TREE_DEPTH_MAX {
                return Err(StorageError::corruption(
                    page,
                    "tree deeper than TREE_DEPTH_MAX",
                ));
            }
            let node = source.node(page)?;
            let index = match (node.is_leaf(), leftmost) {
                (_, true) => 0,
                (true, false) => node.len().wrapping_sub(1),
                (false, false) => node.len(),
            };
            self.path.push((page, index));
            if node.is_leaf() {
                self.leaf_len = node.len();
                return Ok(());
            }
            page = node.child(index)?;
        }
    }

    /// Moves to the next entry; `false` when there is none.
    fn advance<S: NodeSource + ?Sized>(&mut self, source: &S) -> Result<bool, StorageError> {
        if let Some(top) = self.path.last_mut() {
            if top.1.wrapping_add(1) < self.leaf_len {
                top.1 += 1;
                return Ok(true);
            }
        }
        loop {
            let Some((page, index)) = self.path.pop() else {
                return Ok(false);
            };
            let node = source.node(page)?;
            let next = index.wrapping_add(1);
            let limit = if node.is_leaf() {
                node.len()
            } else {
                node.len() + 1
            };
            if next >= limit {
                continue;
            }
            self.path.push((page, next));
            if node.is_leaf() {
                return Ok(true);
            }
            self.descend(source, node.child(next)?, true)?;
            if self.landed(source)? {
                return Ok(true);
            }
        }
    }

    /// Moves to the previous entry; `false` when there is none.
    fn retreat<S: NodeSource + ?Sized>(&mut self, source: &S) -> Result<bool, StorageError> {
        if let Some(top) = self.path.last_mut() {
            if top.1 > 0 && top.1 < self.leaf_len {
                top.1 -= 1;
                return Ok(true);
            }
        }
        loop {
            let Some((page, index)) = self.path.pop() else {
                return Ok(false);
            };
            if index == 0 || index == usize::MAX {
                continue;
            }
            let node = source.node(page)?;
            self.path.push((page, index - 1));
            if node.is_leaf() {
                return Ok(true);
            }
            self.descend(source, node.child(index - 1)?, false)?;
            if self.landed(source)? {
                return Ok(true);
            }
        }
    }

    /// Whether the cursor rests on an existing entry (not on an empty leaf).
    fn landed<S: NodeSource + ?Sized>(&self, source: &S) -> Result<bool, StorageError> {
        match self.position() {
            Some((page, index)) => Ok(index < source.node(page)?.len()),
            None => Ok(false),
        }
    }
}

/// First entry at or after `bound`, as a cursor.
fn seek_forward<S: NodeSource + ?Sized>(
    source: &S,
    root: PageId,
    bound: Bound<&[u8]>,
) -> Result<Option<Cursor>, StorageError> {
    let mut cursor = Cursor {
        path: Vec::new(),
        leaf_len: 0,
    };
    let key = match bound {
        Bound::Unbounded => {
            cursor.descend(source, root, true)?;
            return settle(source, cursor, true);
        }
        Bound::Included(key) | Bound::Excluded(key) => key,
    };
    let leaf = descend_to(source, root, key, &mut cursor)?;
    let index = match (leaf.search(key)?, bound) {
        (Ok(index), Bound::Included(_)) => index,
        (Ok(index), _) => index + 1,
        (Err(index), _) => index,
    };
    set_leaf_index(&mut cursor, index);
    if index < leaf.len() {
        return Ok(Some(cursor));
    }
    Ok(cursor.advance(source)?.then_some(cursor))
}

/// Last entry at or before `bound`, as a cursor.
fn seek_backward<S: NodeSource + ?Sized>(
    source: &S,
    root: PageId,
    bound: Bound<&[u8]>,
) -> Result<Option<Cursor>, StorageError> {
    let mut cursor = Cursor {
        path: Vec::new(),
        leaf_len: 0,
    };
    let key = match bound {
        Bound::Unbounded => {
            cursor.descend(source, root, false)?;
            return settle(source, cursor, false);
        }
        Bound::Included(key) | Bound::Excluded(key) => key,
    };
    let leaf = descend_to(source, root, key, &mut cursor)?;
    // One past the last acceptable entry.
    let end = match (leaf.search(key)?, bound) {
        (Ok(index), Bound::Included(_)) => index + 1,
        (Ok(index), _) => index,
        (Err(index), _) => index,
    };
    if end > 0 {
        set_leaf_index(&mut cursor, end - 1);
        return Ok(Some(cursor));
    }
    Ok(cursor.retreat(source)?.then_some(cursor))
}

/// Keeps a cursor that landed on an entry; moves off an empty leaf otherwise.
fn settle<S: NodeSource + ?Sized>(
    source: &S,
    mut cursor: Cursor,
    forward: bool,
) -> Result<Option<Cursor>, StorageError> {
    if cursor.landed(source)? {
        return Ok(Some(cursor));
    }
    let moved = if forward {
        cursor.advance(source)?
    } else {
        cursor.retreat(source)?
    };
    Ok(moved.then_some(cursor))
}

/// Descends to the leaf whose range holds `key`, leaving the branch path in `cursor` and
/// a placeholder `(leaf, 0)` on top.
fn descend_to<'s, S: NodeSource + ?Sized>(
    source: &'s S,
    root: PageId,
    key: &[u8],
    cursor: &mut Cursor,
) -> Result<NodeRef<'s>, StorageError> {
    let mut page = root;
    loop {
        if cursor.path.len() > TREE_DEPTH_MAX {
            return Err(StorageError::corruption(
                page,
                "tree deeper than TREE_DEPTH_MAX",
            ));
        }
        let node = source.node(page)?;
        if node.is_leaf() {
            cursor.path.push((page, 0));
            cursor.leaf_len = node.len();
            return Ok(node);
        }
        let index = node.child_index(key)?;
        cursor.path.push((page, index));
        page = node.child(index)?;
    }
}

fn set_leaf_index(cursor: &mut Cursor, index: usize) {
    let last = cursor
        .path
        .last_mut()
        .expect("invariant: descend_to leaves the leaf on top of the path");
    last.1 = index;
}

/// An ordered iterator over a key range, usable from both ends.
pub struct Range<'s> {
    source: &'s dyn NodeSource,
    front: Option<Cursor>,
    back: Option<Cursor>,
    done: bool,
}

impl<'s> Range<'s> {
    pub(crate) fn new<S: NodeSource>(
        source: &'s S,
        root: Option<PageId>,
        start: Bound<&[u8]>,
        end: Bound<&[u8]>,
    ) -> Result<Range<'s>, StorageError> {
        let mut range = Range {
            source,
            front: None,
            back: None,
            done: true,
        };
        let Some(root) = root else {
            return Ok(range);
        };
        let (Some(front), Some(back)) = (
            seek_forward(source, root, start)?,
            seek_backward(source, root, end)?,
        ) else {
            return Ok(range);
        };
        let first = entry_key(source, &front)?;
        let last = entry_key(source, &back)?;
        range.done = first > last;
        range.front = Some(front);
        range.back = Some(back);
        Ok(range)
    }

    fn step(&mut self, forward: bool) -> Result<Option<(&'s [u8], Value<'s>)>, StorageError> {
        if self.done {
            return Ok(None);
        }
        let source = self.source;
        let (Some(front), Some(back)) = (self.front.as_mut(), self.back.as_mut()) else {
            return Ok(None);
        };
        let (current, other) = if forward {
            (front, back)
        } else {
            (back, front)
        };
        let (page, index) = current
            .position()
            .expect("invariant: a live range cursor has a position");
        let node = source.node(page)?;
        let key = node.key(index)?;
        let value = load_value(source, node.value(index)?)?;
        if current.position() == other.position() {
            self.done = true;
        } else {
            let moved = if forward {
                current.advance(source)?
            } else {
                current.retreat(source)?
            };
            self.done = !moved;
        }
        Ok(Some((key, value)))
    }
}

fn entry_key<'s>(source: &'s dyn NodeSource, cursor: &Cursor) -> Result<&'s [u8], StorageError> {
    let (page, index) = cursor
        .position()
        .expect("invariant: a seeked cursor has a position");
    source.node(page)?.key(index)
}

impl<'s> Iterator for Range<'s> {
    type Item = Result<(&'s [u8], Value<'s>), StorageError>;

    fn next(&mut self) -> Option<Self::Item> {
        let item = self.step(true);
        if item.is_err() {
            self.done = true;
        }
        item.transpose()
    }
}

impl DoubleEndedIterator for Range<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        let item = self.step(false);
        if item.is_err() {
            self.done = true;
        }
        item.transpose()
    }
}

/// The smallest key greater than every key starting with `prefix`, if any.
pub(crate) fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

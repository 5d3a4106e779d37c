//! B+tree nodes in their two forms: the encoded page (read in place from the mapping,
//! never copied on the read path) and the decoded "dirty" node a write transaction
//! mutates in memory until commit encodes it again.
//!
//! Leaf page: header; `count` u16 slot offsets; entries `key_len u16, flags u8,
//! value_len u32, key, value | overflow first page u64`.
//! Branch page: header; `count + 1` u64 child ids; `count` u16 slot offsets; separator
//! entries `key_len u16, key`. Child `i` holds keys `k` with `key[i-1] <= k < key[i]`.

use crate::error::StorageError;
use crate::io::PageView;
use crate::page::{count, read_u16, read_u32, read_u64, write_u16, write_u32, write_u64};
use crate::page::{PageId, HEADER_BYTES};
use std::cmp::Ordering;
use std::sync::Arc;

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
}

impl ValueRef<'_> {
    pub(crate) fn to_owned(self) -> StoredValue {
        match self {
            ValueRef::Inline(bytes) => StoredValue::Inline(bytes.to_vec()),
            ValueRef::Overflow { first, length } => StoredValue::Overflow { first, length },
        }
    }
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

    /// [`Self::decode_over`] a copy of the page (tests decode plain buffers).
    #[cfg(test)]
    pub(crate) fn decode(&self) -> Result<DirtyLeaf, StorageError> {
        let copy = Arc::new(OwnedPage(self.bytes.to_vec()));
        let view: Arc<dyn PageView> = copy.clone();
        LeafRef::new(self.page, &copy.0)
            .decode_over(BasePage::new(view, 0, self.bytes.len()), false)
    }

    /// Decodes for modification. Unless `trusted` (this process wrote the page, or
    /// checked it before), checks what the write path relies on (entries within the size
    /// limits, keys strictly increasing): a damaged page whose checksum still passes must
    /// fail here, not in a split. The check compares every pair of neighbouring keys,
    /// which cost a replica more than the rest of its apply; pages are immutable while
    /// reachable, so once per page suffices. The entries stay where they are, in `base`,
    /// which must hold this leaf's bytes (its committed page in the transaction's view).
    pub(crate) fn decode_over(
        &self,
        base: BasePage,
        trusted: bool,
    ) -> Result<DirtyLeaf, StorageError> {
        assert_eq!(
            base.bytes().as_ptr(),
            self.bytes.as_ptr(),
            "invariant: a leaf decodes over its own page"
        );
        let count = self.len();
        if HEADER_BYTES + 2 * count > self.bytes.len() {
            return Err(self.corrupt("leaf slot array overruns the page"));
        }
        if count > u16::MAX as usize {
            return Err(self.corrupt("leaf holds more entries than a slot can index"));
        }
        if !trusted {
            self.check_entries()?;
        }
        // Entries are encoded contiguously after the slot array, so the leaf's size is
        // where its last entry ends.
        let size = match count {
            0 => HEADER_BYTES,
            _ => self.entry_end(count - 1)?,
        };
        if size > self.bytes.len() {
            return Err(self.corrupt("leaf entries overflow the page"));
        }
        Ok(DirtyLeaf {
            base: Some(base),
            arena: Vec::new(),
            slots: Self::base_slots(count),
            size,
        })
    }

    /// One slot per base entry, with room for the few inserts a transaction makes.
    fn base_slots(count: usize) -> Vec<LeafSlot> {
        let mut slots = Vec::with_capacity(count + 8);
        slots.extend((0..count as u16).map(LeafSlot::Base));
        slots
    }

    /// Where entry `index` ends (checked against the page).
    fn entry_end(&self, index: usize) -> Result<usize, StorageError> {
        let key = self.key(index)?;
        let key_end = key.as_ptr() as usize - self.bytes.as_ptr() as usize + key.len();
        Ok(match self.value(index)? {
            ValueRef::Inline(bytes) => key_end + bytes.len(),
            ValueRef::Overflow { .. } => key_end + 8,
        })
    }

    /// Checks what the write path relies on in a page from disk: entries within the size
    /// limits, keys strictly increasing, entries contiguous in slot order right after the
    /// slot array (as [`DirtyLeaf::encode`] writes them; runs of them are copied whole).
    fn check_entries(&self) -> Result<(), StorageError> {
        let page_size = self.bytes.len();
        let mut end = HEADER_BYTES + 2 * self.len();
        for index in 0..self.len() {
            let key = self.key(index)?;
            let value = self.value(index)?;
            let inline_too_long = matches!(value, ValueRef::Inline(bytes)
                if bytes.len() > crate::limits::inline_value_max(page_size));
            if key.len() > crate::limits::key_size_max(page_size) || inline_too_long {
                return Err(self.corrupt("leaf entry exceeds the size limits"));
            }
            if index > 0 && self.key(index - 1)? >= key {
                return Err(self.corrupt("leaf keys out of order"));
            }
            if self.entry_start(index)? != end {
                return Err(self.corrupt("leaf entries are not contiguous"));
            }
            end = self.entry_end(index)?;
        }
        Ok(())
    }
}

/// A page's bytes owned in memory (a leaf decoded from a buffer rather than a view).
#[cfg(test)]
struct OwnedPage(Vec<u8>);

#[cfg(test)]
impl PageView for OwnedPage {
    fn bytes(&self) -> &[u8] {
        &self.0
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

/// Where one entry of a [`DirtyLeaf`] lives.
#[derive(Debug, Clone, Copy)]
enum LeafSlot {
    /// Entry `index` of the committed page the leaf was decoded from, read in place.
    Base(u16),
    /// An entry this transaction stored in the leaf's arena.
    Arena {
        key_at: u32,
        key_length: u16,
        value: SlotValue,
    },
}

/// An entry of a base page, parsed. Base pages were checked when decoded (or written by
/// this process), so parsing them indexes without `Result`s.
struct BaseEntry {
    start: usize,
    end: usize,
    value: SlotValue,
}

/// The key of entry `index` of a base page (the binary search's probe: no value parsed).
fn base_key(base: &[u8], index: u16) -> &[u8] {
    let start = read_u16(base, HEADER_BYTES + 2 * index as usize) as usize;
    let key_length = read_u16(base, start) as usize;
    &base[start + 7..start + 7 + key_length]
}

fn base_entry(base: &[u8], index: u16) -> BaseEntry {
    let start = read_u16(base, HEADER_BYTES + 2 * index as usize) as usize;
    let key_length = read_u16(base, start) as usize;
    let length = read_u32(base, start + 3);
    let value_at = start + 7 + key_length;
    let (value, stored) = if base[start + 2] == FLAG_OVERFLOW {
        let first = read_u64(base, value_at);
        let length = length as u64;
        (SlotValue::Overflow { first, length }, 8)
    } else {
        let at = value_at as u32;
        (SlotValue::Inline { at, length }, length as usize)
    };
    BaseEntry {
        start,
        end: value_at + stored,
        value,
    }
}

/// The committed page a dirty leaf was decoded from, read in place. Its bytes cannot change
/// while the write transaction lives: the transaction released the page, and a released
/// committed page is reused only by a later transaction.
#[derive(Clone)]
pub(crate) struct BasePage {
    view: Arc<dyn PageView>,
    start: usize,
    length: usize,
}

impl BasePage {
    pub(crate) fn new(view: Arc<dyn PageView>, start: usize, length: usize) -> BasePage {
        BasePage {
            view,
            start,
            length,
        }
    }

    fn bytes(&self) -> &[u8] {
        &self.view.bytes()[self.start..self.start + self.length]
    }
}

impl std::fmt::Debug for BasePage {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "BasePage({}..+{})", self.start, self.length)
    }
}

#[derive(Debug, Clone, Copy)]
enum SlotValue {
    Inline { at: u32, length: u32 },
    Overflow { first: PageId, length: u64 },
}

/// A leaf being modified by the write transaction.
///
/// The ordered slots name entries of the committed page the leaf was decoded from (read in
/// place, not copied, not even parsed until used) or point into one byte arena that holds
/// what this transaction stored. Decoding a leaf therefore costs one small allocation (the
/// slots) and no per-entry parsing: the write path decodes about one leaf per insert and
/// then touches a handful of its entries (a binary search and the encode's runs).
/// Replaced and removed bytes stay in the arena as garbage until it is compacted (when the
/// arena outgrows four times the leaf).
#[derive(Debug, Clone)]
pub(crate) struct DirtyLeaf {
    base: Option<BasePage>,
    arena: Vec<u8>,
    slots: Vec<LeafSlot>,
    /// Encoded size in bytes, header included.
    pub(crate) size: usize,
}

impl Default for DirtyLeaf {
    fn default() -> Self {
        DirtyLeaf {
            base: None,
            arena: Vec::new(),
            slots: Vec::new(),
            size: HEADER_BYTES,
        }
    }
}

impl DirtyLeaf {
    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    pub(crate) fn key(&self, index: usize) -> &[u8] {
        Self::slot_key(self.base_bytes(), &self.arena, &self.slots[index])
    }

    /// The base page's bytes (empty without one: then no slot is a base slot).
    fn base_bytes(&self) -> &[u8] {
        self.base.as_ref().map_or(&[], |base| base.bytes())
    }

    fn slot_key<'s>(base: &'s [u8], arena: &'s [u8], slot: &LeafSlot) -> &'s [u8] {
        match *slot {
            LeafSlot::Base(index) => base_key(base, index),
            LeafSlot::Arena {
                key_at, key_length, ..
            } => &arena[key_at as usize..key_at as usize + key_length as usize],
        }
    }

    pub(crate) fn value(&self, index: usize) -> ValueRef<'_> {
        let (source, value) = match self.slots[index] {
            LeafSlot::Base(index) => (
                self.base_bytes(),
                base_entry(self.base_bytes(), index).value,
            ),
            LeafSlot::Arena { value, .. } => (&self.arena[..], value),
        };
        match value {
            SlotValue::Inline { at, length } => {
                ValueRef::Inline(&source[at as usize..(at + length) as usize])
            }
            SlotValue::Overflow { first, length } => ValueRef::Overflow { first, length },
        }
    }

    pub(crate) fn last_key(&self) -> Option<&[u8]> {
        self.slots
            .last()
            .map(|slot| Self::slot_key(self.base_bytes(), &self.arena, slot))
    }

    /// Bytes entry `index` takes in the page, slot included.
    pub(crate) fn entry_bytes(&self, index: usize) -> usize {
        self.entry_bytes_of(&self.slots[index])
    }

    fn entry_bytes_of(&self, slot: &LeafSlot) -> usize {
        match *slot {
            // The 2-byte slot is not part of the entry's span.
            LeafSlot::Base(index) => {
                let entry = base_entry(self.base_bytes(), index);
                2 + entry.end - entry.start
            }
            LeafSlot::Arena {
                key_length, value, ..
            } => {
                let value = match value {
                    SlotValue::Inline { length, .. } => length as usize,
                    SlotValue::Overflow { .. } => 8,
                };
                LEAF_ENTRY_OVERHEAD + key_length as usize + value
            }
        }
    }

    pub(crate) fn search(&self, key: &[u8]) -> Result<usize, usize> {
        let base = self.base_bytes();
        self.slots
            .binary_search_by(|slot| Self::slot_key(base, &self.arena, slot).cmp(key))
    }

    /// A leaf holding `entries` (in key order).
    pub(crate) fn from_entries<'k>(
        entries: impl IntoIterator<Item = (&'k [u8], ValueRef<'k>)>,
    ) -> DirtyLeaf {
        let mut leaf = DirtyLeaf::default();
        for (key, value) in entries {
            let slot = leaf.store(key, value);
            leaf.slots.push(slot);
            leaf.size += leaf.entry_bytes(leaf.slots.len() - 1);
        }
        leaf
    }

    /// Copies `key` and `value` into the arena.
    fn store(&mut self, key: &[u8], value: ValueRef<'_>) -> LeafSlot {
        let key_at = self.arena.len() as u32;
        self.arena.extend_from_slice(key);
        let value = match value {
            ValueRef::Inline(bytes) => {
                let at = self.arena.len() as u32;
                self.arena.extend_from_slice(bytes);
                SlotValue::Inline {
                    at,
                    length: bytes.len() as u32,
                }
            }
            ValueRef::Overflow { first, length } => SlotValue::Overflow { first, length },
        };
        LeafSlot::Arena {
            key_at,
            key_length: key.len() as u16,
            value,
        }
    }

    /// Inserts or replaces `key`, keeping the size; returns the replaced value.
    pub(crate) fn put(&mut self, key: &[u8], value: &StoredValue) -> Option<StoredValue> {
        match self.search(key) {
            Ok(index) => {
                let old = self.value(index).to_owned();
                self.size -= self.entry_bytes(index);
                self.slots[index] = self.store(key, value.as_ref());
                self.size += self.entry_bytes(index);
                self.compact_if_sparse();
                Some(old)
            }
            Err(index) => {
                let slot = self.store(key, value.as_ref());
                self.slots.insert(index, slot);
                self.size += self.entry_bytes(index);
                None
            }
        }
    }

    /// Removes entry `index`; returns its value.
    pub(crate) fn remove(&mut self, index: usize) -> StoredValue {
        let old = self.value(index).to_owned();
        self.size -= self.entry_bytes(index);
        self.slots.remove(index);
        self.compact_if_sparse();
        old
    }

    /// Moves entries `[at, len)` into a new leaf.
    pub(crate) fn split_off(&mut self, at: usize) -> DirtyLeaf {
        let right = DirtyLeaf::from_entries((at..self.len()).map(|i| (self.key(i), self.value(i))));
        self.slots.truncate(at);
        self.size = HEADER_BYTES + (0..at).map(|i| self.entry_bytes(i)).sum::<usize>();
        self.compact_if_sparse();
        right
    }

    /// Appends every entry of `right` (whose keys all sort after this leaf's).
    pub(crate) fn append(&mut self, right: &DirtyLeaf) {
        for index in 0..right.len() {
            let slot = self.store(right.key(index), right.value(index));
            self.slots.push(slot);
            self.size += self.entry_bytes(self.slots.len() - 1);
        }
    }

    /// Rebuilds the arena when garbage dominates it, so that a transaction
    /// rewriting one key many times stays within a few pages per leaf.
    fn compact_if_sparse(&mut self) {
        if self.arena.len() <= 4 * self.size.max(1024) {
            return;
        }
        let compacted =
            DirtyLeaf::from_entries((0..self.len()).map(|i| (self.key(i), self.value(i))));
        debug_assert_eq!(compacted.size, self.size, "leaf size accounting drifted");
        *self = compacted;
    }

    /// Encodes into `page` (whose bytes `[HEADER_BYTES, size)` it sets); the caller
    /// seals the header. Entries still in the base page are copied in runs: neighbours
    /// there are adjacent and already in this encoding, so a run costs one copy plus its
    /// slot offsets.
    pub(crate) fn encode(&self, page: &mut [u8]) {
        assert!(
            self.size <= page.len(),
            "leaf of {} bytes overflows its page",
            self.size
        );
        write_u16(page, 18, self.slots.len() as u16);
        let mut at = HEADER_BYTES + 2 * self.slots.len();
        let mut index = 0;
        while index < self.slots.len() {
            if let LeafSlot::Base(first) = self.slots[index] {
                let end = self.base_run_end(index, first);
                at = self.encode_base_run(index..end, first, page, at);
                index = end;
            } else {
                at = self.encode_entry(index, page, at);
                index += 1;
            }
        }
        assert_eq!(at, self.size, "leaf size accounting drifted");
    }

    /// The end of the run of slots from `start` that hold consecutive base entries from
    /// `first` on (adjacent in the base page).
    fn base_run_end(&self, start: usize, first: u16) -> usize {
        let mut end = start + 1;
        while let Some(LeafSlot::Base(index)) = self.slots.get(end) {
            if usize::from(*index) != usize::from(first) + (end - start) {
                break;
            }
            end += 1;
        }
        end
    }

    /// Copies the base entries `first..` of the slots `run` to `at` in one piece, then
    /// writes their slots; returns the end.
    fn encode_base_run(
        &self,
        run: std::ops::Range<usize>,
        first: u16,
        page: &mut [u8],
        at: usize,
    ) -> usize {
        let base = self.base_bytes();
        let from = base_entry(base, first).start;
        let last = first + (run.len() - 1) as u16;
        let to = base_entry(base, last).end;
        page[at..at + to - from].copy_from_slice(&base[from..to]);
        for (offset, index) in run.enumerate() {
            let start = read_u16(base, HEADER_BYTES + 2 * (usize::from(first) + offset)) as usize;
            write_u16(page, HEADER_BYTES + 2 * index, (at + start - from) as u16);
        }
        at + to - from
    }

    /// Encodes entry `index` at `at`; returns the end.
    fn encode_entry(&self, index: usize, page: &mut [u8], mut at: usize) -> usize {
        let key = self.key(index);
        write_u16(page, HEADER_BYTES + 2 * index, at as u16);
        write_u16(page, at, key.len() as u16);
        let (flags, length) = match self.value(index) {
            ValueRef::Inline(bytes) => (0, bytes.len() as u32),
            ValueRef::Overflow { length, .. } => (FLAG_OVERFLOW, length as u32),
        };
        page[at + 2] = flags;
        write_u32(page, at + 3, length);
        page[at + 7..at + 7 + key.len()].copy_from_slice(key);
        at += 7 + key.len();
        match self.value(index) {
            ValueRef::Inline(bytes) => {
                page[at..at + bytes.len()].copy_from_slice(bytes);
                at + bytes.len()
            }
            ValueRef::Overflow { first, .. } => {
                write_u64(page, at, first);
                at + 8
            }
        }
    }

    /// The entries as owned pairs, for tests.
    #[cfg(test)]
    pub(crate) fn to_entries(&self) -> Vec<(Vec<u8>, StoredValue)> {
        (0..self.len())
            .map(|i| (self.key(i).to_vec(), self.value(i).to_owned()))
            .collect()
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
            NodeRef::DirtyLeaf(leaf) => leaf.len(),
            NodeRef::DirtyBranch(branch) => branch.keys.len(),
        }
    }

    pub(crate) fn key(&self, index: usize) -> Result<&'a [u8], StorageError> {
        match self {
            NodeRef::Leaf(leaf) => leaf.key(index),
            NodeRef::Branch(branch) => branch.key(index),
            NodeRef::DirtyLeaf(leaf) => Ok(leaf.key(index)),
            NodeRef::DirtyBranch(branch) => Ok(&branch.keys[index]),
        }
    }

    pub(crate) fn value(&self, index: usize) -> Result<ValueRef<'a>, StorageError> {
        match self {
            NodeRef::Leaf(leaf) => leaf.value(index),
            NodeRef::DirtyLeaf(leaf) => Ok(leaf.value(index)),
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
        DirtyLeaf::from_entries(entries.iter().map(|(key, value)| (*key, value.as_ref())))
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
        seal(9, &mut page, PageKind::Leaf, leaf.len(), 1);
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
        assert_eq!(view.decode().unwrap().to_entries(), leaf.to_entries());
        assert_eq!(view.decode().unwrap().size, leaf.size);
    }

    /// Rewriting entries many times in one transaction leaves garbage in the arena; it is
    /// compacted, so the leaf stays a few pages large and its entries stay exact.
    #[test]
    fn a_leaf_rewritten_many_times_keeps_its_arena_bounded_and_its_entries_exact() {
        let mut leaf = leaf_with(&[(b"a", StoredValue::Inline(vec![0; 8]))]);
        let mut expected = std::collections::BTreeMap::new();
        for round in 0..2000u32 {
            let key = [b'k', (round % 7) as u8];
            let value = StoredValue::Inline(vec![round as u8; (round % 40) as usize]);
            leaf.put(&key, &value);
            expected.insert(key.to_vec(), value);
            if round % 5 == 0 {
                let index = leaf.search(&key).unwrap();
                assert_eq!(Some(leaf.remove(index)), expected.remove(&key[..]));
            }
            assert!(
                leaf.arena.len() <= 4 * leaf.size.max(1024) + 64,
                "round {round}"
            );
        }
        expected.insert(b"a".to_vec(), StoredValue::Inline(vec![0; 8]));
        let entries: Vec<_> = expected.into_iter().collect();
        assert_eq!(leaf.to_entries(), entries);
        let mut page = vec![0u8; 512];
        leaf.encode(&mut page);
        let decoded = LeafRef::new(3, &page).decode().unwrap();
        assert_eq!(decoded.to_entries(), entries);
        assert_eq!(decoded.size, leaf.size);
        let mut kept = decoded.clone();
        let moved = kept.split_off(0);
        assert!(kept.is_empty() && moved.to_entries() == entries);
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
        // Entries in order but with a gap between them: runs of them could not be copied
        // whole.
        let leaf = leaf_with(&[(b"a", value()), (b"b", value())]);
        let mut page = vec![0u8; 512];
        leaf.encode(&mut page);
        let second = read_u16(&page, HEADER_BYTES + 2) as usize;
        page.copy_within(second..second + 7 + 1 + 10, second + 4);
        write_u16(&mut page, HEADER_BYTES + 2, (second + 4) as u16);
        assert!(LeafRef::new(5, &page).key(1).unwrap() == b"b");
        let error = LeafRef::new(5, &page).decode().unwrap_err().to_string();
        assert!(error.contains("not contiguous"), "{error}");
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

    fn stored(value: &(bool, Vec<u8>)) -> StoredValue {
        match value {
            (true, bytes) => StoredValue::Overflow {
                first: bytes.len() as u64 + 7,
                length: 5000,
            },
            (false, bytes) => StoredValue::Inline(bytes.clone()),
        }
    }

    type EntryModel = std::collections::BTreeMap<Vec<u8>, (bool, Vec<u8>)>;

    fn encoded(leaf: &DirtyLeaf) -> Vec<u8> {
        let mut page = vec![0u8; 2048];
        leaf.encode(&mut page);
        page
    }

    fn built_from(model: &EntryModel) -> DirtyLeaf {
        let values: Vec<(Vec<u8>, StoredValue)> = model
            .iter()
            .map(|(key, value)| (key.clone(), stored(value)))
            .collect();
        DirtyLeaf::from_entries(
            values
                .iter()
                .map(|(key, value)| (key.as_slice(), value.as_ref())),
        )
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 256, ..Default::default() })]

        /// A leaf decoded from its page and then edited (entries inserted, replaced,
        /// removed) encodes to exactly the bytes of a leaf built from its entries: the runs
        /// copied from the base page carry the right slot offsets.
        #[test]
        fn an_edited_leaf_encodes_as_one_built_from_its_entries(
            initial in proptest::collection::btree_map(
                proptest::collection::vec(0u8..4, 1..6),
                (proptest::bool::weighted(0.2), proptest::collection::vec(proptest::prelude::any::<u8>(), 0..12)),
                0..40,
            ),
            edits in proptest::collection::vec(
                (proptest::collection::vec(0u8..4, 1..6),
                 proptest::option::weighted(0.7, (proptest::bool::weighted(0.2), proptest::collection::vec(proptest::prelude::any::<u8>(), 0..12)))),
                0..20,
            ),
            trusted in proptest::bool::ANY,
        ) {
            let mut model = initial;
            let page = encoded(&built_from(&model));
            let copy = Arc::new(OwnedPage(page));
            let view: Arc<dyn PageView> = copy.clone();
            let mut leaf = LeafRef::new(3, &copy.0)
                .decode_over(BasePage::new(view, 0, copy.0.len()), trusted)
                .unwrap();
            for (key, edit) in edits {
                match edit {
                    Some(value) => {
                        leaf.put(&key, &stored(&value));
                        model.insert(key, value);
                    }
                    None => {
                        if let Ok(index) = leaf.search(&key) {
                            leaf.remove(index);
                        }
                        model.remove(&key);
                    }
                }
            }
            proptest::prop_assert_eq!(encoded(&leaf), encoded(&built_from(&model)));
        }
    }
}

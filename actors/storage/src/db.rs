//! The database facade: opening and recovery, the single writer, MVCC readers, and the
//! commit protocol.
//!
//! Commit (see `docs/design/pager.md`): encode every dirty page and the new free list,
//! write them to pages no snapshot can reach, sync, write the meta page into the slot
//! that does *not* hold the newest durable meta, sync. A crash before the second sync
//! leaves the previous meta intact, and recovery picks the newest valid slot.

use crate::btree::{self, NodeSource, Range};
use crate::btree_write::{Allocator, DirtyNode, PageMap, WriteState};
use crate::error::{IoError, OpenError, StorageError};
use crate::freelist::{self, FreeState};
use crate::io::{FileIo, PageIo, PageView};
use crate::limits::{key_size_max, StorageLimits, PAGE_SIZE_MAX, PAGE_SIZE_MIN};
use crate::meta::{self, Meta};
use crate::node::{NodeRef, StoredValue};
use crate::page::{seal, PageId, PageKind, Pages, VerifiedPages, HEADER_BYTES};
use parking_lot::{Condvar, Mutex};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

/// When a commit becomes durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// `commit` returns after the data is synced and then the meta page is written and
    /// synced (two fsyncs). Nothing acknowledged is lost in a crash.
    #[default]
    Immediate,
    /// `commit` publishes the new snapshot to readers but writes no meta page; a later
    /// [`Database::sync`] (or a clean close) makes every deferred commit durable at once:
    /// group commit. A crash loses the deferred commits, never corrupts.
    Deferred,
    /// For tests and throwaway data: the same mechanics as `Deferred` (no fsync, no meta
    /// page at commit; durable only after `sync` or a clean close), named for intent.
    None,
}

/// One committed version of the database: what a reader sees.
pub(crate) struct Committed {
    pub(crate) meta: Meta,
    pub(crate) free: FreeState,
    pub(crate) freelist_chain: Vec<PageId>,
    /// The commit whose free state `freelist_chain` holds. Only a commit whose meta page is
    /// written (`Immediate`, or a sync) needs its own chain on disk: a deferred commit keeps
    /// the previous chain (still allocated) and its meta's head is stale until a sync
    /// rewrites the chain ([`Shared::refresh_chain`]). Rewriting the whole free list at
    /// every deferred commit cost more page writes than the data of a small commit.
    pub(crate) chain_txn: u64,
    pub(crate) pages: Pages,
}

impl NodeSource for Committed {
    fn node(&self, page: PageId) -> Result<NodeRef<'_>, StorageError> {
        self.pages.node(page)
    }

    fn overflow_page(&self, page: PageId) -> Result<&[u8], StorageError> {
        self.pages.page(page, PageKind::Overflow)
    }

    fn page_size(&self) -> usize {
        self.pages.page_size
    }
}

struct State {
    current: Arc<Committed>,
    /// Snapshot transaction id → number of live readers on it.
    readers: BTreeMap<u64, usize>,
    /// Newest commit whose meta page is synced.
    durable_txn: u64,
    /// Slot holding that meta page.
    durable_slot: u64,
    /// The commit a sync in flight makes durable ([`Database::begin_sync`]): writers
    /// that begin meanwhile treat the pages it reaches as reachable from the disk.
    syncing_txn: Option<u64>,
    poisoned: bool,
}

pub(crate) struct Shared {
    io: Arc<dyn PageIo>,
    pub(crate) limits: StorageLimits,
    state: Mutex<State>,
    writer_active: Mutex<bool>,
    writer_released: Condvar,
    /// Whether a sync is between [`Database::begin_sync`] and the end of its
    /// [`PendingSync`]: one runs at a time.
    sync_active: Mutex<bool>,
    sync_released: Condvar,
    /// Orders meta-page writes (a sync's and an `Immediate` commit's): each picks the slot
    /// the newest durable meta is not in, writes, syncs and records it, alone.
    meta_lock: Mutex<()>,
}

/// An embedded, single-file, copy-on-write B+tree key-value store with named tables.
#[derive(Clone)]
pub struct Database {
    shared: Arc<Shared>,
}

/// Counters describing the file and its users.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseStats {
    /// Size of the file in bytes.
    pub file_size_bytes: u64,
    /// Page size in bytes.
    pub page_size: usize,
    /// Pages in use by the page space (high-water mark), meta pages included.
    pub page_count: u64,
    /// Pages reachable from the newest commit (trees, overflow chains, free-list chain;
    /// meta pages excluded).
    pub used_pages: u64,
    /// Pages free for reuse now.
    pub free_pages: u64,
    /// Pages released by recent commits, waiting for readers or durability.
    pub pending_pages: u64,
    /// Live read transactions.
    pub live_readers: usize,
    /// Snapshot of the oldest live reader.
    pub oldest_reader_txn: Option<u64>,
    /// Newest committed transaction.
    pub committed_txn: u64,
    /// Newest durable transaction.
    pub durable_txn: u64,
}

/// Options for opening or creating a database.
#[derive(Debug, Clone, Default)]
pub struct Builder {
    limits: StorageLimits,
}

impl Builder {
    /// Sets every limit at once.
    pub fn limits(mut self, limits: StorageLimits) -> Builder {
        self.limits = limits;
        self
    }

    /// Page size for a new file (an existing file keeps its own).
    pub fn page_size(mut self, page_size: usize) -> Builder {
        self.limits.page_size = page_size;
        self
    }

    /// Largest value accepted by `insert`.
    pub fn value_size_max(mut self, value_size_max: usize) -> Builder {
        self.limits.value_size_max = value_size_max;
        self
    }

    /// Opens the file at `path`, creating it if missing.
    pub fn open(self, path: impl AsRef<Path>) -> Result<Database, OpenError> {
        let io = FileIo::open(path.as_ref(), true).map_err(|error| match error {
            IoError::Os {
                operation: "lock", ..
            } => OpenError::Locked,
            other => OpenError::Io(other),
        })?;
        self.open_with_io(Arc::new(io))
    }

    /// Opens a database stored behind `io` (an empty store is initialised).
    pub fn open_with_io(self, io: Arc<dyn PageIo>) -> Result<Database, OpenError> {
        validate_limits(&self.limits)?;
        if io.len_bytes()? == 0 || all_zero(io.view()?.bytes()) {
            // Empty, or created by a process that crashed before its first meta page
            // was durable: nothing was ever committed, so start afresh.
            initialise(io.as_ref(), &self.limits)?;
        }
        let view = io.view()?;
        let (meta, slot) = meta::choose(view.bytes())?;
        let file_bytes = view.bytes().len() as u64;
        if meta
            .page_count
            .checked_mul(meta.page_size as u64)
            .is_none_or(|bytes| bytes > file_bytes)
            || meta.page_count < 2
        {
            return Err(OpenError::NotADatabase(format!(
                "meta page claims {} pages but the file holds fewer",
                meta.page_count
            )));
        }
        let pages = Pages {
            view,
            verified: Arc::new(VerifiedPages::new(meta.page_count * 2)),
            page_size: meta.page_size,
            page_count: meta.page_count,
        };
        let (free, freelist_chain) = freelist::decode(&pages, meta.freelist_head)?;
        let limits = StorageLimits {
            page_size: meta.page_size,
            ..self.limits
        };
        let current = Arc::new(Committed {
            meta,
            free,
            freelist_chain,
            chain_txn: meta.txn,
            pages,
        });
        Ok(Database {
            shared: Arc::new(Shared {
                io,
                limits,
                state: Mutex::new(State {
                    current,
                    readers: BTreeMap::new(),
                    durable_txn: meta.txn,
                    durable_slot: slot,
                    syncing_txn: None,
                    poisoned: false,
                }),
                writer_active: Mutex::new(false),
                writer_released: Condvar::new(),
                sync_active: Mutex::new(false),
                sync_released: Condvar::new(),
                meta_lock: Mutex::new(()),
            }),
        })
    }
}

/// Whether the whole file is zero bytes (stops at the first non-zero byte, so a damaged
/// but populated file is never mistaken for a fresh one).
fn all_zero(bytes: &[u8]) -> bool {
    bytes.iter().all(|byte| *byte == 0)
}

fn validate_limits(limits: &StorageLimits) -> Result<(), OpenError> {
    let page_size = limits.page_size;
    if !page_size.is_power_of_two() || !(PAGE_SIZE_MIN..=PAGE_SIZE_MAX).contains(&page_size) {
        return Err(OpenError::InvalidOption {
            field: "page_size",
            rule: format!(
                "must be a power of two in [{PAGE_SIZE_MIN}, {PAGE_SIZE_MAX}], got {page_size}"
            ),
        });
    }
    if limits.value_size_max == 0 || limits.value_size_max > u32::MAX as usize {
        return Err(OpenError::InvalidOption {
            field: "value_size_max",
            rule: format!(
                "must be in [1, {}], got {}",
                u32::MAX,
                limits.value_size_max
            ),
        });
    }
    Ok(())
}

/// Writes the first meta page of a new, empty database.
fn initialise(io: &dyn PageIo, limits: &StorageLimits) -> Result<(), IoError> {
    let meta = Meta {
        txn: 0,
        page_size: limits.page_size,
        catalog_root: None,
        freelist_head: None,
        page_count: 2,
    };
    io.grow(limits.growth_bytes_min.max(2 * limits.page_size as u64))?;
    io.write(0, &meta.encode(0))?;
    io.sync()
}

impl Database {
    /// Opens the file at `path` with default limits, creating it if missing.
    pub fn open(path: impl AsRef<Path>) -> Result<Database, OpenError> {
        Builder::default().open(path)
    }

    /// Options for opening a database.
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// The limits in force (the page size is the file's).
    pub fn limits(&self) -> &StorageLimits {
        &self.shared.limits
    }

    /// Starts a read transaction on the newest committed snapshot. Never waits for the
    /// writer.
    pub fn begin_read(&self) -> ReadTransaction {
        let mut state = self.shared.state.lock();
        let snapshot = state.current.clone();
        *state.readers.entry(snapshot.meta.txn).or_insert(0) += 1;
        ReadTransaction {
            shared: self.shared.clone(),
            snapshot,
        }
    }

    /// Starts the write transaction, waiting while another one is open.
    pub fn begin_write(&self) -> Result<WriteTransaction, StorageError> {
        let mut active = self.shared.writer_active.lock();
        while *active {
            self.shared.writer_released.wait(&mut active);
        }
        let state = self.shared.state.lock();
        if state.poisoned {
            // Pass the wake-up on: every other waiting writer must learn it too.
            self.shared.writer_released.notify_all();
            return Err(StorageError::Poisoned);
        }
        *active = true;
        let base = state.current.clone();
        let oldest_reader = state.readers.keys().next().copied().unwrap_or(u64::MAX);
        let durable_txn = state.durable_txn;
        // Pages a sync in flight will make reachable from the disk are not young any more.
        let disk_reaches_txn = durable_txn.max(state.syncing_txn.unwrap_or(0));
        drop(state);
        let mut free = base.free.clone();
        free.release_up_to(durable_txn.min(oldest_reader), oldest_reader);
        Ok(WriteTransaction {
            shared: self.shared.clone(),
            catalog_root: base.meta.catalog_root,
            write: WriteState {
                pages: base.pages.clone(),
                dirty: PageMap::default(),
                dirty_overflow: PageMap::default(),
                allocator: Allocator {
                    free: free.free,
                    high_water: base.meta.page_count,
                },
                released: Vec::new(),
                released_young: Vec::new(),
                durable_txn: disk_reaches_txn,
            },
            pending: free.pending,
            pending_young: free.pending_young,
            base,
            tables: HashMap::new(),
            durability: Durability::Immediate,
            failed: false,
        })
    }

    /// Makes every deferred commit durable: syncs the data, writes the newest meta page,
    /// syncs again. Waits for an open write transaction to finish.
    pub fn sync(&self) -> Result<(), StorageError> {
        self.begin_sync()?.finish()
    }

    /// Starts making the newest commit durable, as [`Database::sync`] does, in two steps so
    /// that writers need not wait for the fsyncs: this one waits only for an open write
    /// transaction to end and notes the newest commit; [`PendingSync::finish`] (on any
    /// thread, while write transactions come and go) syncs the data, writes that commit's
    /// meta page and syncs again. Writers that begin meanwhile keep the pages of the noted
    /// commit (they will be reachable from the disk) instead of reusing them early. One
    /// sync runs at a time: a second `begin_sync` waits for the first to finish.
    pub fn begin_sync(&self) -> Result<PendingSync, StorageError> {
        let mut pending = PendingSync::acquire(&self.shared);
        let _writer = WriterGuard::acquire(&self.shared);
        let current = {
            let state = self.shared.state.lock();
            if state.poisoned {
                return Err(StorageError::Poisoned);
            }
            if state.current.meta.txn == state.durable_txn {
                return Ok(pending);
            }
            state.current.clone()
        };
        let current = self.shared.refresh_chain(current)?;
        let mut state = self.shared.state.lock();
        state.current = Arc::clone(&current);
        state.syncing_txn = Some(current.meta.txn);
        pending.meta = Some(current.meta);
        Ok(pending)
    }

    /// File and reader counters.
    pub fn stats(&self) -> Result<DatabaseStats, StorageError> {
        let state = self.shared.state.lock();
        let current = &state.current;
        let free = &current.free;
        let pending = (free.page_total() - free.free.len()) as u64;
        Ok(DatabaseStats {
            file_size_bytes: self.shared.io.len_bytes()?,
            page_size: current.pages.page_size,
            page_count: current.meta.page_count,
            used_pages: current.meta.page_count - 2 - free.page_total() as u64,
            free_pages: current.free.free.len() as u64,
            pending_pages: pending,
            live_readers: state.readers.values().sum(),
            oldest_reader_txn: state.readers.keys().next().copied(),
            committed_txn: current.meta.txn,
            durable_txn: state.durable_txn,
        })
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        // Best effort: a clean shutdown makes deferred commits durable.
        let (current, durable_txn, slot) = {
            let state = self.state.lock();
            (
                state.current.clone(),
                state.durable_txn,
                1 - state.durable_slot,
            )
        };
        if current.meta.txn != durable_txn && !self.state.lock().poisoned {
            if let Ok(current) = self.refresh_chain(current) {
                let _ = self.write_meta(&current.meta, slot, true);
            }
        }
    }
}

/// Holds the single-writer slot for operations that are not write transactions.
struct WriterGuard<'a> {
    shared: &'a Shared,
}

impl<'a> WriterGuard<'a> {
    fn acquire(shared: &'a Shared) -> WriterGuard<'a> {
        let mut active = shared.writer_active.lock();
        while *active {
            shared.writer_released.wait(&mut active);
        }
        *active = true;
        WriterGuard { shared }
    }
}

impl Drop for WriterGuard<'_> {
    fn drop(&mut self) {
        self.shared.release_writer();
    }
}

/// A sync begun by [`Database::begin_sync`]; [`PendingSync::finish`] completes it.
/// Dropping it unfinished leaves the noted commit as durable as it was.
#[must_use = "a begun sync does nothing until finished"]
pub struct PendingSync {
    shared: Arc<Shared>,
    /// The commit to make durable; `None` when the newest commit already was.
    meta: Option<Meta>,
}

impl PendingSync {
    /// Waits for the sync in flight, if any, then holds the sync slot.
    fn acquire(shared: &Arc<Shared>) -> PendingSync {
        let mut active = shared.sync_active.lock();
        while *active {
            shared.sync_released.wait(&mut active);
        }
        *active = true;
        PendingSync {
            shared: Arc::clone(shared),
            meta: None,
        }
    }

    /// Syncs the data, then writes the noted commit's meta page and syncs again: the
    /// commit (and every one before it) is durable when this returns `Ok`. A failure
    /// poisons the database, as a failed commit does.
    pub fn finish(mut self) -> Result<(), StorageError> {
        let Some(meta) = self.meta.take() else {
            return Ok(());
        };
        let shared = &self.shared;
        // The long fsync runs without the meta lock, so `Immediate` commits go on.
        if let Err(error) = shared.io.sync() {
            shared.state.lock().poisoned = true;
            return Err(error.into());
        }
        let _meta = shared.meta_lock.lock();
        let (durable_txn, slot) = {
            let state = shared.state.lock();
            if state.poisoned {
                return Err(StorageError::Poisoned);
            }
            (state.durable_txn, 1 - state.durable_slot)
        };
        if durable_txn >= meta.txn {
            // An `Immediate` commit made a newer state durable meanwhile.
            return Ok(());
        }
        let result = shared
            .write_meta(&meta, slot, false)
            .and_then(|()| shared.io.sync());
        shared.finish_durable(result, meta.txn, slot)
    }
}

impl Drop for PendingSync {
    fn drop(&mut self) {
        self.shared.state.lock().syncing_txn = None;
        *self.shared.sync_active.lock() = false;
        self.shared.sync_released.notify_all();
    }
}

impl Shared {
    /// `current` with a free-list chain of its own on disk, ready for its meta page to be
    /// written: a commit that kept a stale chain ([`Committed::chain_txn`]) gets a new one,
    /// in pages free now (no durable meta or reader reaches them); the stale chain, which
    /// the durable meta still names, is released pending until this commit is durable. The
    /// new pages are written, not synced. Call only while holding the writer slot, so that
    /// no commit replaces `current` meanwhile. A failure poisons the database.
    fn refresh_chain(&self, current: Arc<Committed>) -> Result<Arc<Committed>, StorageError> {
        if current.chain_txn == current.meta.txn {
            return Ok(current);
        }
        let result = self.write_own_chain(&current);
        if result.is_err() {
            self.state.lock().poisoned = true;
        }
        Ok(Arc::new(result?))
    }

    fn write_own_chain(&self, current: &Committed) -> Result<Committed, IoError> {
        let txn = current.meta.txn;
        let page_size = current.meta.page_size;
        let mut free = current.free.clone();
        if !current.freelist_chain.is_empty() {
            free.pending.push((txn, current.freelist_chain.clone()));
        }
        // Lowest ids first, as a write transaction allocates.
        free.free.sort_unstable_by(|a, b| b.cmp(a));
        let needed = freelist::pages_needed(&free, page_size);
        let mut allocator = Allocator {
            free: std::mem::take(&mut free.free),
            high_water: current.meta.page_count,
        };
        let chain: Vec<PageId> = (0..needed).map(|_| allocator.allocate()).collect();
        free.free = allocator.free;
        let meta = Meta {
            freelist_head: chain.first().copied(),
            page_count: allocator.high_water,
            ..current.meta
        };
        self.ensure_pages(meta.page_count, page_size)?;
        write_sealed(&*self.io, Vec::new(), page_size, &free, &chain, txn)?;
        let view = self.io.view()?;
        let mut verified = Arc::clone(&current.pages.verified);
        if meta.page_count > verified.capacity_pages() {
            verified = Arc::new(verified.grown(meta.page_count * 2));
        }
        Ok(Committed {
            meta,
            free,
            freelist_chain: chain,
            chain_txn: txn,
            pages: Pages {
                view,
                verified,
                page_size,
                page_count: meta.page_count,
            },
        })
    }

    fn release_writer(&self) {
        *self.writer_active.lock() = false;
        self.writer_released.notify_all();
    }

    /// Syncs the data (when `sync`), writes `meta` into `slot`, syncs again.
    fn write_meta(&self, meta: &Meta, slot: u64, sync: bool) -> Result<(), IoError> {
        if sync {
            self.io.sync()?;
        }
        self.io
            .write(slot * meta.page_size as u64, &meta.encode(slot))?;
        if sync {
            self.io.sync()?;
        }
        Ok(())
    }

    /// Records a durable meta write, or poisons the database when it failed: the disk
    /// may then hold either meta, so only a reopen can tell.
    fn finish_durable(
        &self,
        result: Result<(), IoError>,
        txn: u64,
        slot: u64,
    ) -> Result<(), StorageError> {
        let mut state = self.state.lock();
        match result {
            Ok(()) => {
                state.durable_txn = state.durable_txn.max(txn);
                state.durable_slot = slot;
                Ok(())
            }
            Err(error) => {
                state.poisoned = true;
                Err(error.into())
            }
        }
    }

    /// Grows the file so that `page_count` pages fit, in chunks.
    fn ensure_pages(&self, page_count: u64, page_size: usize) -> Result<(), IoError> {
        let needed = page_count * page_size as u64;
        let length = self.io.len_bytes()?;
        if length >= needed {
            return Ok(());
        }
        let step = self.limits.growth_bytes_min.max(length / 4);
        let target = needed.max(length + step).div_ceil(page_size as u64) * page_size as u64;
        self.io.grow(target)
    }
}

/// Consecutive pages a commit wrote with one call: the first and how many.
#[derive(Clone, Copy)]
struct PageRun {
    first: PageId,
    pages: u64,
}

/// Largest run written with one call.
const RUN_BYTES_MAX: usize = 4 << 20;

/// What a commit writes to one page.
enum PageSource {
    Node(DirtyNode),
    /// An overflow page image, unsealed.
    Overflow(Vec<u8>),
    /// Page `index` of the new free-list chain.
    FreeList(usize),
}

/// Seals `sources` and the free-list `chain` (holding `free`) straight into the store
/// ([`PageIo::write_with`]), one write per run of consecutive pages: no page is encoded
/// into a buffer and copied again. The pages must lie within the store's length.
fn write_sealed(
    io: &dyn PageIo,
    mut sources: Vec<(PageId, PageSource)>,
    page_size: usize,
    free: &FreeState,
    chain: &[PageId],
    txn: u64,
) -> Result<Vec<PageRun>, IoError> {
    sources.extend(
        chain
            .iter()
            .enumerate()
            .map(|(index, id)| (*id, PageSource::FreeList(index))),
    );
    sources.sort_unstable_by_key(|(id, _)| *id);
    let ids: Vec<PageId> = sources.iter().map(|(id, _)| *id).collect();
    assert!(
        ids.windows(2).all(|pair| pair[0] < pair[1]),
        "a commit writes each page once"
    );
    // Only a commit that writes a chain pays for the free list's words.
    let words = if chain.is_empty() {
        Vec::new()
    } else {
        freelist::words(free)
    };
    let mut sources = sources.into_iter();
    let mut written = Vec::new();
    for range in consecutive_runs(&ids, RUN_BYTES_MAX / page_size) {
        let first = ids[range.start];
        let mut run: Vec<(PageId, PageSource)> = sources.by_ref().take(range.len()).collect();
        io.write_with(
            first * page_size as u64,
            range.len() * page_size,
            &mut |bytes| {
                for (page, (id, source)) in bytes.chunks_exact_mut(page_size).zip(run.drain(..)) {
                    seal_page(id, source, page, &words, chain, txn);
                }
            },
        )?;
        written.push(PageRun {
            first,
            pages: range.len() as u64,
        });
    }
    Ok(written)
}

/// Encodes one page of a commit into `page`, whose prior contents are unspecified, and
/// seals it. Every byte is set, so that a page's image depends only on what it holds; a
/// node encodes its bytes `[HEADER_BYTES, size)` contiguously, so only its header and
/// its tail are zeroed (zeroing whole 16 KiB pages was a tenth of a replica's apply).
fn seal_page(
    id: PageId,
    source: PageSource,
    page: &mut [u8],
    words: &[u64],
    chain: &[PageId],
    txn: u64,
) {
    match source {
        PageSource::Node(DirtyNode::Leaf(leaf)) => {
            zero_outside(page, leaf.size);
            leaf.encode(page);
            seal(id, page, PageKind::Leaf, leaf.len(), txn);
        }
        PageSource::Node(DirtyNode::Branch(branch)) => {
            zero_outside(page, branch.size);
            branch.encode(page);
            seal(id, page, PageKind::Branch, branch.keys.len(), txn);
        }
        PageSource::Overflow(image) => {
            page.copy_from_slice(&image);
            seal(id, page, PageKind::Overflow, 0, txn);
        }
        PageSource::FreeList(index) => {
            page.fill(0);
            freelist::encode_page(words, chain, index, page, txn);
        }
    }
}

/// Zeroes a node page's header and the tail past its `size` encoded bytes.
fn zero_outside(page: &mut [u8], size: usize) {
    page[..HEADER_BYTES].fill(0);
    page[size..].fill(0);
}

/// Groups `ids` (sorted) into runs of consecutive ids, each at most `pages_max` long.
fn consecutive_runs(ids: &[PageId], pages_max: usize) -> Vec<std::ops::Range<usize>> {
    let mut runs = Vec::new();
    let mut start = 0;
    for index in 1..=ids.len() {
        let breaks =
            index == ids.len() || ids[index] != ids[index - 1] + 1 || index - start >= pages_max;
        if breaks {
            runs.push(start..index);
            start = index;
        }
    }
    runs
}

/// A consistent, immutable view of the database as of one commit. Never blocks the writer
/// and is never blocked by it; pages it can reach are not reused while it lives.
pub struct ReadTransaction {
    shared: Arc<Shared>,
    snapshot: Arc<Committed>,
}

impl Drop for ReadTransaction {
    fn drop(&mut self) {
        let mut state = self.shared.state.lock();
        let txn = self.snapshot.meta.txn;
        if let Some(count) = state.readers.get_mut(&txn) {
            *count -= 1;
            if *count == 0 {
                state.readers.remove(&txn);
            }
        }
    }
}

/// A table of one committed snapshot, looked up once: its root page and entry count, and
/// the commit it belongs to. Made by [`ReadTransaction::table_handle`]; valid only with a
/// read transaction on that same commit (any reader of it, since commits are immutable).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableHandle {
    root: Option<PageId>,
    entries: u64,
    txn: u64,
}

impl TableHandle {
    /// The commit (transaction id) whose catalog the handle was read from.
    pub fn txn_id(&self) -> u64 {
        self.txn
    }

    /// Number of entries of the table in that commit.
    pub fn len(&self) -> u64 {
        self.entries
    }

    /// Whether the table had no entries in that commit.
    pub fn is_empty(&self) -> bool {
        self.entries == 0
    }
}

/// Root and size of one table, as recorded in the catalog.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct TableState {
    pub(crate) root: Option<PageId>,
    pub(crate) entries: u64,
    pub(crate) changed: bool,
}

fn decode_table_state(bytes: &[u8]) -> Option<TableState> {
    let root = u64::from_le_bytes(bytes.get(0..8)?.try_into().ok()?);
    let entries = u64::from_le_bytes(bytes.get(8..16)?.try_into().ok()?);
    Some(TableState {
        root: Some(root).filter(|root| *root != 0),
        entries,
        changed: false,
    })
}

fn encode_table_state(state: &TableState) -> Vec<u8> {
    let mut bytes = state.root.unwrap_or(0).to_le_bytes().to_vec();
    bytes.extend_from_slice(&state.entries.to_le_bytes());
    bytes
}

/// Looks up a table in the catalog of `source`.
pub(crate) fn catalog_lookup<S: NodeSource>(
    source: &S,
    catalog_root: Option<PageId>,
    name: &str,
) -> Result<Option<TableState>, StorageError> {
    let Some(value) = btree::get(source, catalog_root, name.as_bytes())? else {
        return Ok(None);
    };
    let bytes = btree::load_value(source, value)?;
    decode_table_state(&bytes)
        .map(Some)
        .ok_or_else(|| StorageError::corruption(catalog_root.unwrap_or(0), "bad catalog entry"))
}

/// Names of every table in the catalog at `catalog_root`.
pub(crate) fn catalog_names<S: NodeSource>(
    source: &S,
    catalog_root: Option<PageId>,
) -> Result<Vec<String>, StorageError> {
    let range = Range::new(
        source,
        catalog_root,
        std::ops::Bound::Unbounded,
        std::ops::Bound::Unbounded,
    )?;
    range
        .map(|entry| entry.map(|(key, _)| String::from_utf8_lossy(key).into_owned()))
        .collect()
}

/// Table names are catalog keys, so they obey the key-size limit as well.
pub(crate) fn validate_table_name(name: &str, page_size: usize) -> Result<(), StorageError> {
    let rule = if name.is_empty() {
        "must not be empty"
    } else if name.len() > 255 {
        "must be at most 255 bytes"
    } else if name.len() > key_size_max(page_size) {
        "must be at most key_size_max bytes for this page size"
    } else {
        return Ok(());
    };
    Err(StorageError::TableNameInvalid {
        name: name.chars().take(64).collect(),
        rule,
    })
}

impl ReadTransaction {
    /// Id of the commit this snapshot shows.
    pub fn txn_id(&self) -> u64 {
        self.snapshot.meta.txn
    }

    /// Opens a table of this snapshot.
    pub fn open_table(&self, name: &str) -> Result<crate::table::ReadTable<'_>, StorageError> {
        validate_table_name(name, self.snapshot.pages.page_size)?;
        let state = catalog_lookup(&*self.snapshot, self.snapshot.meta.catalog_root, name)?
            .ok_or_else(|| StorageError::TableNotFound(name.to_string()))?;
        Ok(crate::table::ReadTable::new(&self.snapshot, state))
    }

    /// Names of every table, sorted.
    pub fn list_tables(&self) -> Result<Vec<String>, StorageError> {
        catalog_names(&*self.snapshot, self.snapshot.meta.catalog_root)
    }

    /// Looks a table up once and returns a [`TableHandle`] that
    /// [`ReadTransaction::open_handle`] turns into a [`crate::ReadTable`] without another
    /// catalog lookup. A long-lived reader (a vault snapshot serving many evaluator reads)
    /// cannot keep a `ReadTable` beside the transaction it borrows from; it keeps handles.
    pub fn table_handle(&self, name: &str) -> Result<TableHandle, StorageError> {
        validate_table_name(name, self.snapshot.pages.page_size)?;
        let state = catalog_lookup(&*self.snapshot, self.snapshot.meta.catalog_root, name)?
            .ok_or_else(|| StorageError::TableNotFound(name.to_string()))?;
        Ok(TableHandle {
            root: state.root,
            entries: state.entries,
            txn: self.snapshot.meta.txn,
        })
    }

    /// Opens the table a [`TableHandle`] of this snapshot names (no catalog lookup).
    ///
    /// # Panics
    ///
    /// When the handle was made by a transaction on another commit: its root page may have
    /// been reused since, so reading through it could return another table's bytes. The
    /// check is one integer comparison and stays on in release builds.
    pub fn open_handle(&self, handle: &TableHandle) -> crate::table::ReadTable<'_> {
        assert_eq!(
            handle.txn, self.snapshot.meta.txn,
            "invariant: a table handle is used only with a transaction on the commit that made it"
        );
        let state = TableState {
            root: handle.root,
            entries: handle.entries,
            changed: false,
        };
        crate::table::ReadTable::new(&self.snapshot, state)
    }

    pub(crate) fn snapshot(&self) -> &Committed {
        &self.snapshot
    }
}

/// The single write transaction. Changes are private until [`WriteTransaction::commit`];
/// dropping it (or [`WriteTransaction::abort`]) discards them without writing anything.
pub struct WriteTransaction {
    shared: Arc<Shared>,
    base: Arc<Committed>,
    pub(crate) write: WriteState,
    pub(crate) catalog_root: Option<PageId>,
    /// Tables touched by this transaction; `None` marks a deleted table.
    pub(crate) tables: HashMap<String, Option<TableState>>,
    pending: Vec<(u64, Vec<PageId>)>,
    pending_young: Vec<(u64, Vec<PageId>)>,
    durability: Durability,
    /// An operation failed after it began changing the trees: the transaction may hold
    /// half-applied changes, so it can only be aborted.
    pub(crate) failed: bool,
}

impl Drop for WriteTransaction {
    fn drop(&mut self) {
        self.shared.release_writer();
    }
}

impl WriteTransaction {
    /// Chooses when this transaction's commit becomes durable.
    pub fn set_durability(&mut self, durability: Durability) {
        self.durability = durability;
    }

    /// Id the commit will have.
    pub fn txn_id(&self) -> u64 {
        self.base.meta.txn + 1
    }

    /// Opens (creating if missing) a table for reading and writing.
    pub fn open_table(&mut self, name: &str) -> Result<crate::table::Table<'_>, StorageError> {
        let state = self.table_state(name)?.unwrap_or(TableState {
            changed: true,
            ..TableState::default()
        });
        Ok(crate::table::Table::new(self, name.to_string(), state))
    }

    /// Whether a table exists in this transaction's view.
    pub fn table_exists(&self, name: &str) -> Result<bool, StorageError> {
        Ok(self.table_state(name)?.is_some())
    }

    fn table_state(&self, name: &str) -> Result<Option<TableState>, StorageError> {
        validate_table_name(name, self.write.pages.page_size)?;
        match self.tables.get(name) {
            Some(state) => Ok(*state),
            None => catalog_lookup(&self.write, self.catalog_root, name),
        }
    }

    /// Deletes a table and frees its pages; returns whether it existed.
    pub fn delete_table(&mut self, name: &str) -> Result<bool, StorageError> {
        let Some(state) = self.table_state(name)? else {
            return Ok(false);
        };
        if let Some(root) = state.root {
            if let Err(error) = self.write.release_tree(root) {
                self.failed = true;
                return Err(error);
            }
        }
        self.tables.insert(name.to_string(), None);
        Ok(true)
    }

    /// Names of every table in this transaction's view, sorted.
    pub fn list_tables(&self) -> Result<Vec<String>, StorageError> {
        let mut names: Vec<String> = catalog_names(&self.write, self.catalog_root)?
            .into_iter()
            .filter(|name| !self.tables.contains_key(name))
            .collect();
        names.extend(
            self.tables
                .iter()
                .filter(|(_, state)| state.is_some())
                .map(|(name, _)| name.clone()),
        );
        names.sort();
        Ok(names)
    }

    /// Discards every change.
    pub fn abort(self) {}

    /// Makes the changes visible to new readers and, per the durability mode, durable.
    pub fn commit(mut self) -> Result<(), StorageError> {
        if self.shared.state.lock().poisoned {
            return Err(StorageError::Poisoned);
        }
        if self.failed {
            return Err(StorageError::TransactionFailed);
        }
        if !self.has_changes() {
            return self.commit_unchanged();
        }
        self.write_catalog()?;
        let txn = self.txn_id();
        let own_chain = self.durability == Durability::Immediate;
        let (free, chain) = self.build_free_list(txn, own_chain);
        let meta = Meta {
            txn,
            page_size: self.write.pages.page_size,
            catalog_root: self.catalog_root,
            freelist_head: chain.first().copied(),
            page_count: self.write.allocator.high_water,
        };
        let written_chain: &[PageId] = if own_chain { &chain } else { &[] };
        let sources = self.take_sources();
        let chain_txn = if own_chain { txn } else { self.base.chain_txn };
        let shared = Arc::clone(&self.shared);
        let _meta = (self.durability == Durability::Immediate).then(|| shared.meta_lock.lock());
        let slot = 1 - self.shared.state.lock().durable_slot;
        // Any failure from here on may leave the new meta on disk while memory still
        // describes the old commit: poison, so that only a reopen continues.
        match self.persist(sources, (&free, written_chain), &meta, slot) {
            Ok((view, runs)) => {
                self.publish(meta, (free, chain, chain_txn), slot, view, &runs);
                Ok(())
            }
            Err(error) => {
                self.shared.state.lock().poisoned = true;
                Err(error.into())
            }
        }
    }

    /// A transaction without changes writes no new commit, but an `Immediate` one still
    /// promises that the state it saw is durable: sync earlier deferred commits.
    fn commit_unchanged(self) -> Result<(), StorageError> {
        let _meta = self.shared.meta_lock.lock();
        let (durable_txn, slot) = {
            let state = self.shared.state.lock();
            (state.durable_txn, 1 - state.durable_slot)
        };
        if self.durability != Durability::Immediate || durable_txn == self.base.meta.txn {
            return Ok(());
        }
        let current = self.shared.refresh_chain(Arc::clone(&self.base))?;
        self.shared.state.lock().current = Arc::clone(&current);
        let result = self.shared.write_meta(&current.meta, slot, true);
        self.shared.finish_durable(result, current.meta.txn, slot)
    }

    fn has_changes(&self) -> bool {
        !self.write.dirty.is_empty()
            || !self.write.dirty_overflow.is_empty()
            || !self.write.released.is_empty()
            || !self.write.released_young.is_empty()
            || self
                .tables
                .values()
                .any(|state| state.is_none_or(|state| state.changed))
    }

    /// Records every changed table's root in the catalog tree.
    fn write_catalog(&mut self) -> Result<(), StorageError> {
        let mut tables: Vec<(String, Option<TableState>)> = self.tables.drain().collect();
        tables.sort_by(|a, b| a.0.cmp(&b.0));
        for (name, state) in tables {
            let root = match state {
                Some(state) if !state.changed => continue,
                Some(state) => {
                    let value = StoredValue::Inline(encode_table_state(&state));
                    let (root, old) =
                        self.write
                            .insert(self.catalog_root, name.as_bytes(), value)?;
                    if let Some(old) = old {
                        self.write.release_value(&old)?;
                    }
                    Some(root)
                }
                None => self.write.remove(self.catalog_root, name.as_bytes())?.0,
            };
            self.catalog_root = root;
        }
        Ok(())
    }

    /// Builds the next free list and, with `own_chain`, allocates a new chain to store it
    /// (releasing the previous one); otherwise the previous chain stays, allocated and
    /// stale (see [`Committed::chain_txn`]).
    fn build_free_list(&mut self, txn: u64, own_chain: bool) -> (FreeState, Vec<PageId>) {
        let mut released = std::mem::take(&mut self.write.released);
        let mut young = std::mem::take(&mut self.write.released_young);
        if own_chain {
            // The previous chain was written by `chain_txn`.
            if self.base.chain_txn > self.write.durable_txn {
                young.extend(&self.base.freelist_chain);
            } else {
                released.extend(&self.base.freelist_chain);
            }
        }
        let mut pending = std::mem::take(&mut self.pending);
        let mut pending_young = std::mem::take(&mut self.pending_young);
        if !released.is_empty() {
            pending.push((txn, released));
        }
        if !young.is_empty() {
            pending_young.push((txn, young));
        }
        let mut free = FreeState {
            free: Vec::new(),
            pending,
            pending_young,
        };
        free.free = self.write.allocator.free.clone();
        if !own_chain {
            return (free, self.base.freelist_chain.clone());
        }
        let needed = freelist::pages_needed(&free, self.write.pages.page_size);
        let chain: Vec<PageId> = (0..needed)
            .map(|_| self.write.allocator.allocate())
            .collect();
        free.free = self.write.allocator.free.clone();
        (free, chain)
    }

    /// Every dirty node and overflow page, to seal at commit.
    fn take_sources(&mut self) -> Vec<(PageId, PageSource)> {
        let mut sources: Vec<(PageId, PageSource)> =
            Vec::with_capacity(self.write.dirty.len() + self.write.dirty_overflow.len());
        sources.extend(
            self.write
                .dirty
                .drain()
                .map(|(id, node)| (id, PageSource::Node(node))),
        );
        sources.extend(
            self.write
                .dirty_overflow
                .drain()
                .map(|(id, page)| (id, PageSource::Overflow(page))),
        );
        sources
    }

    /// Seals and writes the commit's pages (and, with a chain, its free list), then, for
    /// an `Immediate` commit, its meta page.
    fn persist(
        &self,
        sources: Vec<(PageId, PageSource)>,
        (free, chain): (&FreeState, &[PageId]),
        meta: &Meta,
        slot: u64,
    ) -> Result<(Arc<dyn PageView>, Vec<PageRun>), IoError> {
        self.shared.ensure_pages(meta.page_count, meta.page_size)?;
        let runs = write_sealed(
            &*self.shared.io,
            sources,
            meta.page_size,
            free,
            chain,
            meta.txn,
        )?;
        // Readers of the new snapshot need a view that includes the pages just written
        // (and, after growth, a mapping of the new length).
        let view = self.shared.io.view()?;
        if self.durability == Durability::Immediate {
            self.shared.write_meta(meta, slot, true)?;
        }
        Ok((view, runs))
    }

    fn publish(
        self,
        meta: Meta,
        (free, chain, chain_txn): (FreeState, Vec<PageId>, u64),
        slot: u64,
        view: Arc<dyn PageView>,
        written: &[PageRun],
    ) {
        let mut verified = self.write.pages.verified.clone();
        if meta.page_count > verified.capacity_pages() {
            verified = Arc::new(verified.grown(meta.page_count * 2));
        }
        // This process sealed these pages from the bytes it wrote: hashing them again on
        // their first read would check the page cache against itself.
        for run in written {
            (run.first..run.first + run.pages).for_each(|page| verified.set_written(page));
        }
        let committed = Arc::new(Committed {
            meta,
            free,
            freelist_chain: chain,
            chain_txn,
            pages: Pages {
                view,
                verified,
                page_size: meta.page_size,
                page_count: meta.page_count,
            },
        });
        let mut state = self.shared.state.lock();
        state.current = committed;
        if self.durability == Durability::Immediate {
            state.durable_txn = meta.txn;
            state.durable_slot = slot;
        }
    }
}

/// Key-size rule for this database.
pub(crate) fn check_key(shared_page_size: usize, key: &[u8]) -> Result<(), StorageError> {
    let limit = key_size_max(shared_page_size);
    if key.len() > limit {
        return Err(StorageError::KeyTooLarge {
            length: key.len(),
            limit,
        });
    }
    Ok(())
}

impl WriteTransaction {
    pub(crate) fn limits(&self) -> &StorageLimits {
        &self.shared.limits
    }
}

#[cfg(test)]
mod tests {
    use super::{consecutive_runs, seal_page, PageSource};
    use crate::btree_write::DirtyNode;
    use crate::node::{DirtyBranch, DirtyLeaf, StoredValue};

    /// A page's image depends only on what it holds, not on what the reused page held
    /// before: pages are filled in place in the file's mapping, over old contents.
    #[test]
    fn a_sealed_page_is_the_same_over_any_previous_contents() {
        let value = StoredValue::Inline(b"value".to_vec());
        let sources = || {
            let leaf = DirtyLeaf::from_entries(
                [&b"alpha"[..], b"beta", b"gamma"]
                    .into_iter()
                    .map(|key| (key, value.as_ref())),
            );
            let branch = DirtyBranch::new(vec![b"m".to_vec(), b"t".to_vec()], vec![4, 5, 6]);
            [
                PageSource::Node(DirtyNode::Leaf(leaf)),
                PageSource::Node(DirtyNode::Branch(branch)),
                PageSource::Overflow(vec![3u8; 1024]),
            ]
        };
        for (clean, dirty) in sources().into_iter().zip(sources()) {
            let mut zeroed = vec![0u8; 1024];
            let mut garbage = vec![0xa5u8; 1024];
            seal_page(7, clean, &mut zeroed, &[], &[], 3);
            seal_page(7, dirty, &mut garbage, &[], &[], 3);
            assert_eq!(zeroed, garbage);
        }
    }

    #[test]
    fn runs_break_at_gaps_and_at_the_size_limit() {
        assert_eq!(
            consecutive_runs(&[], 4),
            Vec::<std::ops::Range<usize>>::new()
        );
        assert_eq!(consecutive_runs(&[7], 4), vec![0..1]);
        assert_eq!(
            consecutive_runs(&[2, 3, 4, 9, 10, 12], 4),
            vec![0..3, 3..5, 5..6]
        );
        assert_eq!(
            consecutive_runs(&[1, 2, 3, 4, 5, 6, 7, 8, 9], 4),
            vec![0..4, 4..8, 8..9]
        );
    }
}

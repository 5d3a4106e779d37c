//! Regression tests from the storage-engine review.
//!
//! The first group demonstrates bugs (each test fails on the code as reviewed and says
//! why in its doc comment); the second group pins down cursor edges that the model test
//! does not reach (excluded and inclusive ends in reverse, seeks past either end, prefixes
//! of 0xFF bytes, iterators driven from both ends at once, and trees with maximal keys,
//! whose branches hold three separators so removals leave single-child branches and empty
//! leaves behind).

use crate::common::{apply, dump, key, open_memory, small_limits, Model};
use inferadb_storage::io::{CrashMode, FaultPlan, MemoryIo};
use inferadb_storage::{
    key_size_max, Database, Durability, IoError, OpenError, PageIo, StorageError,
};
use std::ops::Bound;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

const PAGE: usize = 512;

fn reopen_image(image: Vec<u8>) -> Result<Database, OpenError> {
    let io: Arc<dyn PageIo> = Arc::new(MemoryIo::from_image(image));
    Database::builder().limits(small_limits()).open_with_io(io)
}

/// Every entry of `table`, or the first error met.
fn try_dump(db: &Database, table: &str) -> Result<Model, StorageError> {
    let read = db.begin_read();
    let table = read.open_table(table)?;
    let mut model = Model::new();
    for entry in table.iter()? {
        let (key, value) = entry?;
        model.insert(key.to_vec(), value.to_vec());
    }
    Ok(model)
}

// ---------------------------------------------------------------------------------------
// Bugs
// ---------------------------------------------------------------------------------------

/// A failed `Table::remove` must not leave the write transaction pointing at a page it
/// has already released.
///
/// Story: `Table::remove` first rewrites the tree (`WriteState::remove` copies the root
/// leaf to a new page and pushes the old root onto `released`), and only then loads the
/// removed value. When the value's overflow chain is damaged, `load_value` fails and the
/// `?` returns before `self.state.root` is updated: the table still names the *old* root,
/// which the transaction has already released. If the caller treats the error as "that
/// key is unreadable" and commits (nothing poisons the transaction), the old root goes to
/// the free list as pending while the catalog still points at it. The next transaction
/// reuses it for another table's leaf, and table `t` silently loses every key — one
/// damaged overflow page escalates into a use-after-free of live pages. The same hole
/// exists in `insert` (a damaged child after the parent was made dirty), in
/// `merge_child` (a damaged sibling) and in `Table::insert` (overflow pages written
/// before the tree insert fails leak).
#[test]
fn a_failed_remove_does_not_release_the_live_root() {
    let io = Arc::new(MemoryIo::default());
    let db = open_memory(&io, small_limits());
    apply(
        &db,
        "t",
        &[
            (b"a".to_vec(), Some(b"alpha".to_vec())),
            (b"b".to_vec(), Some(b"beta".to_vec())),
            (b"big".to_vec(), Some(vec![7u8; 1000])),
        ],
        Durability::Immediate,
    );
    drop(db);
    let mut image = io.image();
    let overflow = (2..image.len() / PAGE)
        .find(|page| image[page * PAGE + 16] == 4)
        .expect("the 1000-byte value lives in overflow pages");
    image[overflow * PAGE + 100] ^= 1;
    let io = Arc::new(MemoryIo::from_image(image));
    let db = open_memory(&io, small_limits());

    let mut write = db.begin_write().expect("write");
    {
        let mut table = write.open_table("t").expect("table");
        assert!(matches!(
            table.remove(b"big"),
            Err(StorageError::Corruption { .. })
        ));
    }
    // Refusing to commit a transaction whose operation failed half-way is a valid fix;
    // committing it must then leave `t` intact.
    if write.commit().is_ok() {
        let filler: Vec<_> = (0..100)
            .map(|index| (key(index), Some(b"filler".to_vec())))
            .collect();
        apply(&db, "u", &filler, Durability::Immediate);
        apply(&db, "u", &filler, Durability::Immediate);
    }
    let read = db.begin_read();
    let table = read.open_table("t").expect("table t");
    assert_eq!(
        table.get(b"a").expect("get a").as_deref(),
        Some(&b"alpha"[..]),
        "table t lost a key: its root page was released while still referenced and reused"
    );
    assert_eq!(
        table.get(b"b").expect("get b").as_deref(),
        Some(&b"beta"[..])
    );
}

/// Table names that `validate_table_name` accepts must not panic the commit.
///
/// Story: table names may be up to 255 bytes, but catalog keys are B+tree keys like any
/// other, and at 512-byte pages `key_size_max` is 112. A catalog branch then holds a
/// single 255-byte separator (12 + 255 = 267 bytes; two do not fit in 512), so the third
/// table overflows a branch with two separators and `balanced_split` finds no cut
/// (`for at in 1..sizes.len() - 1` is empty) and panics with "invariant: key and inline
/// value limits guarantee a fitting split". Fix: reject names longer than
/// `key_size_max(page_size)` in `validate_table_name` (it needs the page size).
#[test]
fn long_table_names_at_small_pages_do_not_panic() {
    assert!(key_size_max(PAGE) < 255);
    let io = Arc::new(MemoryIo::default());
    let db = open_memory(&io, small_limits());
    let mut write = db.begin_write().expect("write");
    for letter in [b'a', b'b', b'c', b'd'] {
        let name = String::from_utf8(vec![letter; 255]).expect("ascii");
        match write.open_table(&name) {
            Ok(_) => {}
            Err(StorageError::TableNameInvalid { .. }) => return,
            Err(other) => panic!("unexpected error {other}"),
        }
    }
    write.commit().expect("commit");
    db.verify().expect("verify");
}

/// A single bit flip in meta slot 0 must not panic `open`.
///
/// Story: `meta::choose` first tries the page size claimed by slot 0 (bytes 44..48),
/// before that slot's checksum was checked. At 512-byte pages byte 45 is 0x02; flipping
/// bit 1 makes the claimed size 0 (at 4096, bit 4 of byte 45 does the same), and
/// `Meta::decode(bytes, slot, 0)` takes the empty slice `bytes[0..0]` and indexes
/// `page[32..40]`: a panic instead of falling back to slot 1. Fix: only keep a claimed
/// size that is a power of two in [PAGE_SIZE_MIN, PAGE_SIZE_MAX], and make
/// `Meta::decode` reject `page_size < 80`.
#[test]
fn a_bit_flip_in_the_meta_page_size_field_falls_back_instead_of_panicking() {
    let io = Arc::new(MemoryIo::default());
    let db = open_memory(&io, small_limits());
    apply(
        &db,
        "t",
        &[(key(1), Some(b"one".to_vec()))],
        Durability::Immediate,
    );
    apply(
        &db,
        "t",
        &[(key(2), Some(b"two".to_vec()))],
        Durability::Immediate,
    );
    drop(db);
    let mut image = io.image();
    assert_eq!(
        image[45], 0x02,
        "512 = 0x0200 little-endian at bytes 44..48"
    );
    image[45] ^= 0x02;
    let db = reopen_image(image).expect("slot 1 still holds a valid commit");
    db.verify().expect("the fallback verifies");
}

/// A crash while a new database file is being created must not brick the file.
///
/// Story: `initialise` grows the file (durable at once, per the media model), then
/// writes meta slot 0, then syncs. A power failure between the grow and the sync leaves
/// a non-empty file of zeros; `open_with_io` only initialises when `len_bytes() == 0`,
/// so every later open fails with `NotADatabase` and the node cannot restart without
/// manual deletion. The crash suite sets its fault plan after `open_memory`, so it never
/// crashes during creation. Fix: treat a file whose two meta slots are entirely zero as
/// new (and/or write both meta slots before growing).
#[test]
fn a_crash_while_creating_the_file_leaves_it_openable() {
    for operation in 0..3 {
        let io = Arc::new(MemoryIo::default());
        io.set_fault_plan(FaultPlan {
            crash_at_operation: Some(operation),
            ..FaultPlan::default()
        });
        let first = Database::builder()
            .limits(small_limits())
            .open_with_io(io.clone() as Arc<dyn PageIo>);
        assert!(first.is_err(), "the power failed during creation");
        for mode in [CrashMode::LoseUnsynced, CrashMode::TearLast] {
            let db = reopen_image(io.crash_image(mode)).unwrap_or_else(|error| {
                panic!("crash at operation {operation} ({mode:?}) of creation: {error}")
            });
            apply(
                &db,
                "t",
                &[(key(1), Some(b"v".to_vec()))],
                Durability::Immediate,
            );
            db.verify().expect("verify");
        }
    }
}

/// A `PageIo` whose `view()` can be made to fail (an mmap failure: ENOMEM, too many maps).
struct FlakyView {
    inner: MemoryIo,
    fail_view: AtomicBool,
}

impl PageIo for FlakyView {
    fn len_bytes(&self) -> Result<u64, IoError> {
        self.inner.len_bytes()
    }
    fn grow(&self, len_bytes: u64) -> Result<(), IoError> {
        self.inner.grow(len_bytes)
    }
    fn write(&self, offset: u64, bytes: &[u8]) -> Result<(), IoError> {
        self.inner.write(offset, bytes)
    }
    fn sync(&self) -> Result<(), IoError> {
        self.inner.sync()
    }
    fn view(&self) -> Result<Arc<dyn inferadb_storage::io::PageView>, IoError> {
        if self.fail_view.load(Ordering::Relaxed) {
            return Err(IoError::Injected("map failed"));
        }
        self.inner.view()
    }
}

/// A commit that fails after its meta page is durable must poison the database.
///
/// Story: `WriteTransaction::commit` poisons only when `persist` fails. `publish` then
/// calls `io.view()` (a fresh mmap for `FileIo`); if that fails, `commit` returns the
/// error *after* meta `T` was written and synced into slot `1 - durable_slot`, but
/// `state.current`, `durable_txn` and `durable_slot` still describe `T - 1` and nothing is
/// poisoned. The next transaction again gets id `T`, allocates from `T - 1`'s free list —
/// the very pages durable meta `T` references — and overwrites them before writing its own
/// meta: a crash in that window recovers meta `T` over overwritten pages. The docs say "A
/// failed commit poisons the database for writes". Fix: take the view before writing the
/// meta (right after `ensure_pages`), or poison on any error after `persist` began.
#[test]
fn a_commit_that_fails_after_its_meta_is_durable_poisons_the_database() {
    let io = Arc::new(FlakyView {
        inner: MemoryIo::default(),
        fail_view: AtomicBool::new(false),
    });
    let db = Database::builder()
        .limits(small_limits())
        .open_with_io(io.clone() as Arc<dyn PageIo>)
        .expect("open");
    apply(
        &db,
        "t",
        &[(key(1), Some(b"one".to_vec()))],
        Durability::Immediate,
    );
    io.fail_view.store(true, Ordering::Relaxed);
    let mut write = db.begin_write().expect("write");
    write
        .open_table("t")
        .expect("table")
        .insert(&key(1), b"two")
        .expect("insert");
    assert!(write.commit().is_err(), "publish failed");
    io.fail_view.store(false, Ordering::Relaxed);
    // The view is taken before the meta page is written, so the failed commit never
    // reached the disk; either way the disk holds one whole commit.
    let on_disk = reopen_image(io.inner.crash_image(CrashMode::LoseUnsynced)).expect("reopen");
    let value = dump(&on_disk, "t").get(&key(1)).cloned();
    assert!(value == Some(b"one".to_vec()) || value == Some(b"two".to_vec()));
    assert!(
        matches!(db.begin_write(), Err(StorageError::Poisoned)),
        "a commit whose meta is durable but unpublished must poison further writes"
    );
}

/// `Database::sync()` must make every acknowledged commit durable, `Durability::None`
/// ones included.
///
/// Story: a `None` commit writes its meta without fsync, yet `publish` records it as
/// durable (`durable_txn = txn`). `sync()` then sees `current.meta.txn == durable_txn` and
/// returns without a single fsync, so a power failure right after a successful `sync()`
/// loses the commit. The same bookkeeping lets the next transaction reuse pages released
/// by the unsynced commit (`horizon = durable_txn`), so a crash can also surface the
/// previous meta over overwritten pages — contrary to the docs' "a crash loses anything
/// after the OS's own flush". Fix: a `None` commit must not advance `durable_txn` /
/// `durable_slot` (treat it like `Deferred` for the horizon and for `sync`).
#[test]
fn sync_makes_a_durability_none_commit_durable() {
    let io = Arc::new(MemoryIo::default());
    let db = open_memory(&io, small_limits());
    apply(
        &db,
        "t",
        &[(key(1), Some(b"one".to_vec()))],
        Durability::None,
    );
    db.sync().expect("sync");
    let recovered = reopen_image(io.crash_image(CrashMode::LoseUnsynced)).expect("reopen");
    assert_eq!(
        dump(&recovered, "t").get(&key(1)).map(Vec::as_slice),
        Some(&b"one"[..]),
        "a commit acknowledged before a successful sync() was lost"
    );
}

/// A crash after `Durability::None` commits may lose them, but must not corrupt the last
/// synced state.
///
/// Story: `publish` records a `None` commit as durable, so the next transaction's
/// horizon (`min(durable_txn, oldest reader)`) frees the pages it released — pages the
/// last *synced* meta still references — and overwrites them, all without any fsync. If
/// the OS flushes those data writes but not the unsynced meta pages (write-back has no
/// ordering), recovery picks the synced meta over overwritten pages: `verify()` fails or
/// the recovered table is neither commit. `MemoryIo`'s random crash mode loses, keeps or
/// tears each unsynced write independently, which is exactly that reordering. Same fix as
/// above: a `None` commit must not advance `durable_txn`.
#[test]
fn a_crash_after_durability_none_commits_never_corrupts_the_synced_state() {
    let io = Arc::new(MemoryIo::default());
    let db = open_memory(&io, small_limits());
    let generation = |value: &[u8]| -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
        (0..60)
            .map(|index| (key(index), Some(value.to_vec())))
            .collect()
    };
    apply(&db, "t", &generation(b"synced"), Durability::Immediate);
    let synced = dump(&db, "t");
    apply(&db, "t", &generation(b"none-1"), Durability::None);
    let none_1 = dump(&db, "t");
    apply(&db, "t", &generation(b"none-2"), Durability::None);
    let none_2 = dump(&db, "t");
    let synced_txn = 1;
    let mut corrupt = Vec::new();
    for seed in 0..64 {
        let image = io.crash_image(CrashMode::Random { seed });
        // Without any barrier a kept `None` meta over lost data pages is inherent to the
        // mode; only images that fall back to the *synced* meta are judged here.
        let Ok(db) = reopen_image(image) else {
            continue;
        };
        if db.stats().expect("stats").committed_txn != synced_txn {
            continue;
        }
        if db.verify().is_err() || try_dump(&db, "t").ok().as_ref() != Some(&synced) {
            corrupt.push(seed);
        }
    }
    assert!(
        corrupt.is_empty(),
        "crash images with seeds {corrupt:?} fell back to the synced commit and found it overwritten"
    );
    let _ = (none_1, none_2);
}

/// A file too short to hold a meta page is "not a database", not a panic.
///
/// Story: `meta::claimed_page_size` checks `bytes.get(32..40)` but then reads
/// `read_u32(bytes, 44)`, which slices `bytes[44..48]` unchecked: a 40..47-byte file that
/// starts like a meta page (a truncated copy) panics `open`. Fix: `bytes.get(44..48)?`.
#[test]
fn a_truncated_file_is_not_a_database_rather_than_a_panic() {
    let io = Arc::new(MemoryIo::default());
    drop(open_memory(&io, small_limits()));
    let image = io.image();
    for length in [40, 44, 47, 100, PAGE + 10] {
        match reopen_image(image[..length].to_vec()) {
            Err(OpenError::NotADatabase(_)) => {}
            Err(other) => panic!("{length} bytes: unexpected error {other}"),
            Ok(_) => panic!("{length} bytes: opened a truncated file"),
        }
    }
}

/// Every thread waiting for the writer slot must wake up when a failed commit poisons
/// the database.
///
/// Story: `release_writer` wakes a single waiter (`notify_one`). When the database has
/// just been poisoned, that waiter's `begin_write` sees `state.poisoned` and returns
/// `Err(Poisoned)` without taking the slot *and without passing the wake-up on*; every
/// other thread blocked in `begin_write` (or `sync`) then sleeps forever on the condvar
/// although the slot is free — a hang of the whole write path on the first I/O error.
/// Fix: `notify_all` in `release_writer` (or `notify_one` before the early return).
#[test]
fn a_poisoning_commit_wakes_every_waiting_writer() {
    use std::time::Duration;
    let io = Arc::new(MemoryIo::default());
    let db = open_memory(&io, small_limits());
    let mut write = db.begin_write().expect("write");
    write
        .open_table("t")
        .expect("table")
        .insert(b"k", b"v")
        .expect("insert");
    let (sender, receiver) = std::sync::mpsc::channel();
    for _ in 0..2 {
        let (db, sender) = (db.clone(), sender.clone());
        std::thread::spawn(move || {
            let poisoned = matches!(db.begin_write(), Err(StorageError::Poisoned));
            let _ = sender.send(poisoned);
        });
    }
    // Let both threads block on the writer slot (if they are late they find the database
    // poisoned without waiting, and the test passes vacuously rather than failing).
    std::thread::sleep(Duration::from_millis(100));
    io.set_fault_plan(FaultPlan {
        fail_write_number: Some(0),
        ..FaultPlan::default()
    });
    assert!(
        write.commit().is_err(),
        "the injected write error fails the commit"
    );
    for waiter in 0..2 {
        let poisoned = receiver
            .recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|_| panic!("waiter {waiter} never woke up (lost wake-up)"));
        assert!(poisoned, "a waiter got past a poisoned database");
    }
}

// ---------------------------------------------------------------------------------------
// Cursor and range edges (these pass; they cover cases nobody else covers)
// ---------------------------------------------------------------------------------------

fn bound_of(kind: u8, key: &[u8]) -> Bound<&[u8]> {
    match kind % 3 {
        0 => Bound::Included(key),
        1 => Bound::Excluded(key),
        _ => Bound::Unbounded,
    }
}

fn in_bounds(key: &[u8], start: Bound<&[u8]>, end: Bound<&[u8]>) -> bool {
    let after_start = match start {
        Bound::Included(s) => key >= s,
        Bound::Excluded(s) => key > s,
        Bound::Unbounded => true,
    };
    let before_end = match end {
        Bound::Included(e) => key <= e,
        Bound::Excluded(e) => key < e,
        Bound::Unbounded => true,
    };
    after_start && before_end
}

type Entries = Vec<(Vec<u8>, Vec<u8>)>;

fn expected(model: &Model, start: Bound<&[u8]>, end: Bound<&[u8]>) -> Entries {
    model
        .iter()
        .filter(|(key, _)| in_bounds(key, start, end))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Drains `range` forward, backward, or alternating ends (`zigzag`), returning entries in
/// key order.
fn drain<'a, I>(range: I, mode: u8) -> Entries
where
    I: DoubleEndedIterator<Item = Result<(&'a [u8], inferadb_storage::Value<'a>), StorageError>>,
{
    let own = |entry: Result<(&[u8], inferadb_storage::Value<'_>), StorageError>| {
        let (key, value) = entry.expect("entry");
        (key.to_vec(), value.to_vec())
    };
    match mode % 3 {
        0 => range.map(own).collect(),
        1 => {
            let mut entries: Entries = range.rev().map(own).collect();
            entries.reverse();
            entries
        }
        _ => {
            let mut range = range;
            let (mut front, mut back) = (Vec::new(), Vec::new());
            while let Some(entry) = range.next() {
                front.push(own(entry));
                let Some(entry) = range.next_back() else {
                    break;
                };
                back.push(own(entry));
            }
            assert!(
                range.next().is_none() && range.next_back().is_none(),
                "fused"
            );
            back.reverse();
            front.extend(back);
            front
        }
    }
}

/// Every bound combination, in every direction, at and between existing keys and past
/// both ends, on a committed multi-level tree and inside a write transaction.
#[test]
fn ranges_with_every_bound_kind_in_both_directions() {
    let io = Arc::new(MemoryIo::default());
    let db = open_memory(&io, small_limits());
    // Even keys only, so odd probes fall between entries.
    let changes: Vec<_> = (0..400)
        .map(|index| (key(index * 2), Some(format!("v{index}").into_bytes())))
        .collect();
    apply(&db, "t", &changes, Durability::Immediate);
    let model = dump(&db, "t");
    let probes: Vec<Vec<u8>> = [0u64, 1, 57, 58, 399, 798, 799, 5000]
        .into_iter()
        .map(key)
        .chain([Vec::new(), b"key-".to_vec(), vec![0xff; 4]])
        .collect();
    let read = db.begin_read();
    let table = read.open_table("t").expect("table");
    assert!(table.depth().expect("depth") >= 3);
    let mut write = db.begin_write().expect("write");
    let mut wtable = write.open_table("t").expect("table");
    // Dirty a few leaves so the write-side source mixes dirty and committed nodes.
    for index in [0u64, 1, 200, 799] {
        wtable.insert(&key(index), b"w").expect("insert");
    }
    let mut wmodel = model.clone();
    for index in [0u64, 1, 200, 799] {
        wmodel.insert(key(index), b"w".to_vec());
    }
    let mut case = 0u8;
    for a in &probes {
        for b in &probes {
            for kinds in 0..9u8 {
                let (start, end) = (bound_of(kinds, a), bound_of(kinds / 3, b));
                // Forward, backward and zigzag in turn (all three for every case is slow).
                case = case.wrapping_add(1);
                let mode = case % 3;
                let got = drain(table.range((start, end)).expect("range"), mode);
                assert_eq!(
                    got,
                    expected(&model, start, end),
                    "{start:?}..{end:?} mode {mode}"
                );
                let got = drain(wtable.range((start, end)).expect("range"), mode + 1);
                assert_eq!(
                    got,
                    expected(&wmodel, start, end),
                    "write {start:?}..{end:?}"
                );
            }
        }
    }
}

/// Prefixes ending in 0xFF bytes (whose successor needs a carry) and all-0xFF prefixes
/// (no successor: the range is unbounded above).
#[test]
fn prefixes_of_ff_bytes() {
    let io = Arc::new(MemoryIo::default());
    let db = open_memory(&io, small_limits());
    let keys: Vec<Vec<u8>> = vec![
        vec![0x61],
        vec![0x61, 0xff],
        vec![0x61, 0xff, 0x00],
        vec![0x61, 0xff, 0xff],
        vec![0x62],
        vec![0xfe, 0xff],
        vec![0xff],
        vec![0xff, 0xff],
        vec![0xff, 0xff, 0xff, 0x01],
    ];
    let changes: Vec<_> = keys.iter().map(|k| (k.clone(), Some(k.clone()))).collect();
    apply(&db, "t", &changes, Durability::Immediate);
    let read = db.begin_read();
    let table = read.open_table("t").expect("table");
    for prefix in [
        vec![],
        vec![0x61],
        vec![0x61, 0xff],
        vec![0xff],
        vec![0xff, 0xff],
        vec![0xff, 0xff, 0xff],
        vec![0xfe],
        vec![0x63],
    ] {
        let want: Vec<Vec<u8>> = keys
            .iter()
            .filter(|k| k.starts_with(&prefix))
            .cloned()
            .collect();
        for mode in 0..3 {
            let got: Vec<Vec<u8>> = drain(table.prefix(&prefix).expect("prefix"), mode)
                .into_iter()
                .map(|(k, _)| k)
                .collect();
            assert_eq!(got, want, "prefix {prefix:x?} mode {mode}");
        }
    }
}

/// What a walk of one tree, straight from the file image, found.
#[derive(Default)]
struct Shape {
    /// Leaves with no entry below a branch.
    empty_leaves: usize,
    /// Branches with one child and no separator.
    bare_branches: usize,
    /// `(key, inline value)` of every leaf entry, in order.
    entries: Vec<(Vec<u8>, Vec<u8>)>,
}

/// Walks the tree at `page` using the documented format (docs/design/pager.md), without
/// checksums: a test-side oracle for node shapes the public API cannot show.
fn walk(image: &[u8], page: usize, shape: &mut Shape) {
    let base = page * PAGE;
    let u16_at = |at: usize| u16::from_le_bytes([image[base + at], image[base + at + 1]]) as usize;
    let count = u16_at(18);
    match image[base + 16] {
        3 => {
            shape.empty_leaves += usize::from(count == 0);
            for index in 0..count {
                let start = u16_at(32 + 2 * index);
                let key_length = u16_at(start);
                let value_length = u32::from_le_bytes(
                    image[base + start + 3..base + start + 7]
                        .try_into()
                        .expect("4 bytes"),
                ) as usize;
                let key = &image[base + start + 7..base + start + 7 + key_length];
                let value = &image[base + start + 7 + key_length..][..value_length.min(8)];
                shape.entries.push((key.to_vec(), value.to_vec()));
            }
        }
        2 => {
            shape.bare_branches += usize::from(count == 0);

            for index in 0..=count {
                let at = base + 32 + 8 * index;
                let child = u64::from_le_bytes(image[at..at + 8].try_into().expect("8 bytes"));
                walk(image, child as usize, shape);
            }
        }
        kind => panic!("page {page}: unexpected kind {kind}"),
    }
}

/// The shape of table `name`'s tree in the newest meta of `image`.
fn table_shape(image: &[u8], name: &[u8]) -> Shape {
    let u64_at = |at: usize| u64::from_le_bytes(image[at..at + 8].try_into().expect("8 bytes"));
    let slot =
        usize::from(&image[PAGE + 32..PAGE + 40] == b"INFERADB" && u64_at(PAGE + 48) > u64_at(48));
    let mut catalog = Shape::default();
    walk(image, u64_at(slot * PAGE + 56) as usize, &mut catalog);
    let (_, state) = catalog
        .entries
        .iter()
        .find(|(key, _)| key == name)
        .expect("table in catalog");
    let mut shape = Shape::default();
    let root = u64::from_le_bytes(state[..8].try_into().expect("8 bytes"));
    if root != 0 {
        walk(image, root as usize, &mut shape);
    }
    shape
}

/// Maximal keys (`key_size_max` = 112 at 512-byte pages) make a leaf hold three entries
/// and a branch three separators. A leaf is underfull only when empty and a branch only
/// when it has no separator left; such a bare branch cannot merge with a three-separator
/// sibling, so removals leave single-child branches and, once those merge later, empty
/// leaves under ordinary branches. Runs a fill-then-drain workload, checks every commit
/// with `verify()`, the oracle walk and random ranges in all directions, and returns the
/// database with the table drained to empty and the degenerate shapes it met.
fn maximal_keys_fill_then_drain() -> (Arc<MemoryIo>, Database, usize, usize) {
    let io = Arc::new(MemoryIo::default());
    let db = open_memory(&io, small_limits());
    let big_key = |index: u64| {
        let mut key = format!("{index:06}").into_bytes();
        key.resize(key_size_max(PAGE), b'.');
        key
    };
    let mut model = Model::new();
    let (mut empty_leaves_seen, mut bare_branches_seen) = (0, 0);
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut round = 0;
    while round < 30 || !model.is_empty() {
        let mut changes = Vec::new();
        // 30 rounds of 40 random changes (mostly inserts, then mostly removals), then
        // drain the tree one present key per commit.
        for _ in 0..if round < 30 { 40 } else { 1 } {
            let k = if round < 30 {
                big_key(next() % 300)
            } else {
                let index = next() as usize % model.len();
                model.keys().nth(index).cloned().expect("index in range")
            };
            let remove = match round {
                0..8 => next() % 10 == 0,
                8..30 => next() % 10 < 7,
                _ => true,
            };
            if remove {
                model.remove(&k);
                changes.push((k, None));
            } else {
                let value = vec![b'v'; (next() % 24) as usize];
                model.insert(k.clone(), value.clone());
                changes.push((k, Some(value)));
            }
        }
        // Immediate: the oracle reads the tree from the newest meta page on disk.
        apply(&db, "t", &changes, Durability::Immediate);
        db.verify()
            .unwrap_or_else(|error| panic!("round {round}: verify: {error}"));
        let shape = table_shape(&io.image(), b"t");
        assert_eq!(
            shape
                .entries
                .iter()
                .map(|(k, _)| k.clone())
                .collect::<Vec<_>>(),
            model.keys().cloned().collect::<Vec<_>>(),
            "round {round}: the oracle walk agrees with the model"
        );
        empty_leaves_seen += shape.empty_leaves;
        bare_branches_seen += shape.bare_branches;
        let read = db.begin_read();
        let table = read.open_table("t").expect("table");
        assert_eq!(table.len(), model.len() as u64);
        for _ in 0..12 {
            let (a, b) = (big_key(next() % 310), big_key(next() % 310));
            let kinds = (next() % 9) as u8;
            let (start, end) = (bound_of(kinds, &a), bound_of(kinds / 3, &b));
            let mode = (next() % 3) as u8;
            let got = drain(table.range((start, end)).expect("range"), mode);
            assert_eq!(got, expected(&model, start, end), "round {round}");
        }
        round += 1;
    }
    (io, db, empty_leaves_seen, bare_branches_seen)
}

#[test]
fn maximal_keys_with_removals_keep_ranges_and_verify_correct() {
    let (_, _, empty_leaves, bare_branches) = maximal_keys_fill_then_drain();
    // Empty children are cut out of their parents, so no empty leaf ever persists;
    // single-child branches (valid, if not compact) are still reached.
    assert_eq!(empty_leaves, 0, "an empty leaf persisted");
    assert!(
        bare_branches > 0,
        "the workload reaches bare branches ({bare_branches})"
    );
}

/// A table whose last entry was removed must hold no pages.
///
/// Story: `collapse_root` (btree_write.rs) only drops an empty *root* leaf and root
/// branches with a single child. Empty leaves are never removed when their parent is a
/// bare branch (`merge_child` returns early for `children.len() < 2`), and when that
/// branch later merges with its sibling the empty leaf becomes an ordinary child. After
/// the workload above removes every key, the table's root is a branch over two empty
/// leaves: `ReadTable::depth()` reports 2 although its docs say "0 when empty", and the
/// pages stay allocated until the table is dropped. Fix: in `remove_from`, release an
/// empty leaf child outright (drop it and its separator from the parent) instead of only
/// trying to merge it, and let `collapse_root` return `None` when the tree has no entries.
#[test]
fn a_drained_table_holds_no_pages() {
    let (_, db, _, _) = maximal_keys_fill_then_drain();
    let read = db.begin_read();
    let table = read.open_table("t").expect("table");
    assert_eq!(table.len(), 0);
    assert_eq!(
        table.depth().expect("depth"),
        0,
        "an empty table still holds a tree"
    );
}

/// An old reader on a *real file* keeps its snapshot while the writer reuses pages.
///
/// `MemoryIo` hands every snapshot an immutable copy of the image, so the in-memory space
/// tests cannot see a page being rewritten under a live reader; only `FileIo`'s shared
/// mapping can. Holds a reader, runs many overwrite commits that recycle pages (with
/// `Durability::None` so that the durable horizon never holds pages back and the reader's
/// registration alone must protect them), and compares the reader's whole view before
/// and after.
#[test]
fn an_old_reader_on_a_real_file_keeps_its_snapshot_while_pages_are_reused() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let db = Database::builder()
        .limits(small_limits())
        .open(directory.path().join("reuse.db"))
        .expect("create");
    let round = |db: &Database, value: &[u8]| {
        let changes: Vec<_> = (0..300)
            .map(|index| (key(index), Some(value.to_vec())))
            .collect();
        apply(db, "t", &changes, Durability::None);
    };
    round(&db, b"before");
    let reader = db.begin_read();
    let pinned = try_dump_snapshot(&reader);
    let pages_before = db.stats().expect("stats").page_count;
    for generation in 0..30u32 {
        round(&db, &generation.to_le_bytes());
    }
    assert_eq!(
        try_dump_snapshot(&reader),
        pinned,
        "the reader's snapshot changed"
    );
    drop(reader);
    for generation in 30..60u32 {
        round(&db, &generation.to_le_bytes());
    }
    let stats = db.stats().expect("stats");
    assert!(
        stats.page_count > pages_before,
        "the pinned pages forced growth"
    );
    db.verify().expect("verify");
}

fn try_dump_snapshot(read: &inferadb_storage::ReadTransaction) -> Model {
    let table = read.open_table("t").expect("table");
    table
        .iter()
        .expect("iterate")
        .map(|entry| {
            let (key, value) = entry.expect("entry");
            (key.to_vec(), value.to_vec())
        })
        .collect()
}

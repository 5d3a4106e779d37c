//! Corruption detection: bit flips in data and meta pages are found by checksums and
//! reported as typed errors naming the page; reads never return wrong data and nothing
//! panics.

use crate::common::{apply, dump, key, open_memory, small_limits, Model};
use inferadb_storage::io::MemoryIo;
use inferadb_storage::{Database, Durability, OpenError, PageIo, StorageError};
use std::sync::Arc;

fn populated() -> (Arc<MemoryIo>, Model, Model) {
    let io = Arc::new(MemoryIo::default());
    let db = open_memory(&io, small_limits());
    let first: Vec<_> = (0..120)
        .map(|index| (key(index), Some(format!("first-{index}").into_bytes())))
        .collect();
    apply(&db, "t", &first, Durability::Immediate);
    let before = dump(&db, "t");
    let second: Vec<_> = (0..120)
        .step_by(3)
        .map(|index| (key(index), Some(vec![b'x'; 900])))
        .collect();
    apply(&db, "t", &second, Durability::Immediate);
    let after = dump(&db, "t");
    drop(db);
    (io, before, after)
}

fn reopen(image: Vec<u8>) -> Result<Database, OpenError> {
    let io: Arc<dyn PageIo> = Arc::new(MemoryIo::from_image(image));
    Database::builder().limits(small_limits()).open_with_io(io)
}

/// Reads every key; each read must be the true value or a `Corruption` error.
fn reads_are_true_or_corruption(db: &Database, model: &Model) -> usize {
    let read = db.begin_read();
    let table = match read.open_table("t") {
        Ok(table) => table,
        Err(StorageError::Corruption { .. }) => return 1,
        Err(other) => panic!("unexpected error opening the table: {other}"),
    };
    let mut detected = 0;
    for (key, value) in model {
        match table.get(key) {
            Ok(found) => assert_eq!(found.as_deref(), Some(&value[..]), "wrong data returned"),
            Err(StorageError::Corruption { .. }) => detected += 1,
            Err(other) => panic!("unexpected error: {other}"),
        }
    }
    detected
}

#[test]
fn a_flipped_bit_in_any_reachable_page_is_detected_by_verify_and_reads() {
    let (io, _, model) = populated();
    let image = io.image();
    let page_size = small_limits().page_size;
    let db = reopen(image.clone()).expect("open");
    let report = db.verify().expect("healthy database verifies");
    let pages = db.stats().expect("stats").page_count as usize;
    drop(db);
    let mut detected_by_verify = 0;
    for page in 2..pages {
        let mut damaged = image.clone();
        damaged[page * page_size + 100] ^= 0x10;
        let db = match reopen(damaged) {
            Ok(db) => db,
            // The free-list chain is read at open: its damage is reported there.
            Err(OpenError::Storage(StorageError::Corruption { page: named, .. })) => {
                assert_eq!(named as usize, page);
                detected_by_verify += 1;
                continue;
            }
            Err(other) => panic!("page {page}: unexpected open error {other}"),
        };
        reads_are_true_or_corruption(&db, &model);
        match db.verify() {
            Ok(_) => {}
            Err(StorageError::Corruption { page: named, .. }) => {
                assert_eq!(named as usize, page, "the error names the damaged page");
                detected_by_verify += 1;
            }
            Err(other) => panic!("unexpected verify error {other}"),
        }
    }
    assert_eq!(
        detected_by_verify as u64, report.reachable_pages,
        "every reachable page is checked"
    );
}

#[test]
fn a_corrupt_newest_meta_page_falls_back_to_the_previous_commit() {
    let (io, before, after) = populated();
    let image = io.image();
    let page_size = small_limits().page_size;
    let db = reopen(image.clone()).expect("open");
    assert_eq!(dump(&db, "t"), after);
    let txn = db.stats().expect("stats").committed_txn;
    drop(db);
    // Commits alternate slots; the newest meta is in the slot of the last commit.
    let newest_slot = [0usize, 1]
        .into_iter()
        .find(|slot| {
            let mut damaged = image.clone();
            damaged[slot * page_size + 50] ^= 1;
            reopen(damaged).is_ok_and(|db| db.stats().expect("stats").committed_txn < txn)
        })
        .expect("damaging one slot falls back to the other");
    let mut damaged = image.clone();
    damaged[newest_slot * page_size + 50] ^= 1;
    let db = reopen(damaged).expect("falls back");
    assert_eq!(dump(&db, "t"), before);
    db.verify().expect("the fallback state verifies");
}

#[test]
fn both_meta_pages_corrupt_is_a_clear_open_error() {
    let (io, _, _) = populated();
    let mut image = io.image();
    let page_size = small_limits().page_size;
    image[60] ^= 1;
    image[page_size + 60] ^= 1;
    match reopen(image) {
        Err(OpenError::NotADatabase(reason)) => assert!(reason.contains("checksum"), "{reason}"),
        Err(other) => panic!("unexpected error {other}"),
        Ok(_) => panic!("opened a database whose meta pages are both corrupt"),
    }
}

/// A file of another format version is refused as such (its checksums may differ, so the
/// version is read first). One slot of an older version only falls back to the other; a
/// slot of a newer version that claims a newer commit refuses the file, since opening the
/// older slot would silently drop that commit.
#[test]
fn another_format_version_is_refused_and_only_an_older_one_falls_back() {
    let (io, before, after) = populated();
    let image = io.image();
    let page_size = small_limits().page_size;
    let with_version = |slots: &[usize], version: u32| {
        let mut image = image.clone();
        for slot in slots {
            let at = slot * page_size + 40;
            image[at..at + 4].copy_from_slice(&version.to_le_bytes());
        }
        image
    };
    let refused = |image: Vec<u8>, expected: u32| match reopen(image) {
        Err(OpenError::UnsupportedVersion { found, supported }) => {
            assert_eq!(found, expected);
            assert!(supported > 1);
        }
        Err(other) => panic!("unexpected error {other}"),
        Ok(_) => panic!("opened a file with a slot of format version {expected}"),
    };
    refused(with_version(&[0, 1], 1), 1);
    let txn_of = |slot: usize| {
        let at = slot * page_size + 48;
        u64::from_le_bytes(image[at..at + 8].try_into().unwrap())
    };
    let (newest, oldest) = if txn_of(0) > txn_of(1) {
        (0, 1)
    } else {
        (1, 0)
    };
    refused(with_version(&[newest], 99), 99);
    for (slot, version) in [(oldest, 99), (oldest, 1), (newest, 1)] {
        let db = reopen(with_version(&[slot], version)).expect("the other slot opens");
        let visible = dump(&db, "t");
        assert!(
            visible == before || visible == after,
            "slot {slot} v{version}"
        );
    }
}

#[test]
fn random_bit_flips_never_panic_or_return_wrong_data() {
    let (io, before, after) = populated();
    let image = io.image();
    let newest = reopen(image.clone())
        .expect("open")
        .stats()
        .expect("stats")
        .committed_txn;
    let mut state = 7u64;
    for _ in 0..300 {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let offset = (state >> 20) as usize % image.len();
        let mut damaged = image.clone();
        damaged[offset] ^= 1 << (state % 8);
        if let Ok(db) = reopen(damaged) {
            // A damaged newest meta page legitimately falls back to the previous commit.
            let fell_back = db.stats().expect("stats").committed_txn < newest;
            reads_are_true_or_corruption(&db, if fell_back { &before } else { &after });
            let _ = db.verify();
        }
    }
}

#[test]
fn media_corruption_while_open_is_reported_on_first_read() {
    let io = Arc::new(MemoryIo::default());
    let db = open_memory(&io, small_limits());
    let changes: Vec<_> = (0..200)
        .map(|index| (key(index), Some(b"v".to_vec())))
        .collect();
    apply(&db, "t", &changes, Durability::Immediate);
    drop(db);
    // Flip a bit in every page past the meta pages; a fresh process must not trust any.
    let page_size = small_limits().page_size;
    let pages = io.image().len() / page_size;
    for page in 2..pages {
        io.flip_bit(page * page_size + 200, 3);
    }
    let io: Arc<dyn PageIo> = io;
    match Database::builder().limits(small_limits()).open_with_io(io) {
        Err(OpenError::Storage(StorageError::Corruption { .. })) => {}
        Err(other) => panic!("unexpected open error {other}"),
        Ok(db) => assert!(matches!(db.verify(), Err(StorageError::Corruption { .. }))),
    }
}

/// Reads everything a damaged image lets it read: tables, every entry in both directions,
/// and the integrity check. Any outcome but a panic is acceptable here.
fn read_everything(image: Vec<u8>) {
    let Ok(db) = reopen(image) else {
        return;
    };
    let _ = db.verify();
    let _ = db.stats();
    let read = db.begin_read();
    let Ok(names) = read.list_tables() else {
        return;
    };
    for name in names {
        let Ok(table) = read.open_table(&name) else {
            continue;
        };
        if let Ok(range) = table.iter() {
            range.take(10_000).for_each(drop);
        }
        if let Ok(range) = table.iter() {
            range.rev().take(10_000).for_each(drop);
        }
        let _ = table.get(&key(7));
    }
    drop(read);
    if let Ok(mut write) = db.begin_write() {
        if let Ok(mut table) = write.open_table("t") {
            let _ = table.insert(&key(1), b"after damage");
            let _ = table.remove(&key(2));
        }
        let _ = write.commit();
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 64, ..Default::default() })]

    /// Arbitrary damage (overwritten bytes anywhere, including headers and meta pages, and
    /// truncation) never panics the engine: it reports errors or serves what is intact.
    #[test]
    fn arbitrary_damage_never_panics(
        writes in proptest::collection::vec((0usize..1_000_000, proptest::prelude::any::<u8>()), 1..40),
        truncate in proptest::option::of(0usize..1_000_000),
    ) {
        let (io, _, _) = populated();
        let mut image = io.image();
        let length = image.len();
        for (offset, value) in writes {
            image[offset % length] = value;
        }
        if let Some(keep) = truncate {
            image.truncate(keep % length);
        }
        read_everything(image);
    }
}

/// Recomputes a page's checksum after damage, as a buggy writer (or a malicious file)
/// would leave it: the structure is broken but the checksum passes.
fn reseal(image: &mut [u8], page: usize, page_size: usize) {
    let start = page * page_size;
    let sum =
        xxhash_rust::xxh3::xxh3_128_with_seed(&image[start + 16..start + page_size], page as u64);
    image[start..start + 16].copy_from_slice(&sum.to_le_bytes());
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 64, ..Default::default() })]

    /// Structural damage behind a valid checksum (bad slot offsets, counts, lengths, child
    /// ids, kinds, overflow chains) yields errors, never a panic, an endless loop or an
    /// absurd allocation.
    #[test]
    fn resealed_structural_damage_never_panics(
        page in 2usize..64,
        writes in proptest::collection::vec((16usize..512, proptest::prelude::any::<u8>()), 1..12),
    ) {
        let (io, _, _) = populated();
        let mut image = io.image();
        let page_size = small_limits().page_size;
        let page = page % (image.len() / page_size).max(3);
        let page = page.max(2);
        for (offset, value) in writes {
            image[page * page_size + offset] = value;
        }
        reseal(&mut image, page, page_size);
        read_everything(image);
    }
}

/// A leaf read from disk is checked once before a write modifies it, even behind a valid
/// checksum: only pages this process wrote (or checked) skip the check. Swaps the keys of
/// the first two entries of each leaf in turn; a write landing in a reachable damaged leaf
/// must fail with `Corruption`, not write a leaf whose keys are out of order.
#[test]
fn a_write_into_a_leaf_from_disk_checks_its_key_order_first() {
    let (io, _, _) = populated();
    let image = io.image();
    let page_size = small_limits().page_size;
    let mut reachable_damaged = 0;
    for page in 2..image.len() / page_size {
        let start = page * page_size;
        let bytes = &image[start..start + page_size];
        if bytes[16] != 3 || u16::from_le_bytes([bytes[18], bytes[19]]) < 2 {
            continue;
        }
        let entry = |index: usize| {
            let at = u16::from_le_bytes([bytes[32 + 2 * index], bytes[33 + 2 * index]]) as usize;
            let length = u16::from_le_bytes([bytes[at], bytes[at + 1]]) as usize;
            (start + at + 7, length)
        };
        let ((first_at, first_length), (second_at, second_length)) = (entry(0), entry(1));
        if first_length != second_length {
            continue;
        }
        let first_key = image[first_at..first_at + first_length].to_vec();
        let mut damaged = image.clone();
        damaged.copy_within(second_at..second_at + second_length, first_at);
        damaged[second_at..second_at + second_length].copy_from_slice(&first_key);
        reseal(&mut damaged, page, page_size);
        let reachable = reopen(damaged.clone())
            .expect("the meta pages are intact")
            .verify()
            .is_err();
        if !reachable {
            continue;
        }
        reachable_damaged += 1;
        let db = reopen(damaged).expect("the meta pages are intact");
        let mut write = db.begin_write().expect("begin write");
        let result = write
            .open_table("t")
            .and_then(|mut table| table.insert(&first_key, b"into a damaged leaf"));
        assert!(
            matches!(result, Err(StorageError::Corruption { .. })),
            "page {page}: a write into a leaf with keys out of order gave {result:?}"
        );
    }
    assert!(reachable_damaged > 0, "no reachable leaf was damaged");
}

//! Space reuse: under a steady overwrite workload the page space plateaus instead of
//! growing forever; a reader holding an old snapshot pins its pages only while it lives.

use crate::common::{apply, key, open_memory, small_limits};
use inferadb_storage::io::MemoryIo;
use inferadb_storage::Durability;
use std::sync::Arc;

fn overwrite_round(db: &inferadb_storage::Database, round: u64) {
    let changes: Vec<_> = (0..50)
        .map(|index| {
            (
                key((round * 37 + index * 13) % 2000),
                Some(format!("round-{round}").into_bytes()),
            )
        })
        .collect();
    apply(db, "t", &changes, Durability::Immediate);
}

/// An in-memory database whose table `t` holds `count` keys.
fn with_keys(count: u64) -> inferadb_storage::Database {
    let io = Arc::new(MemoryIo::default());
    let db = open_memory(&io, small_limits());
    let initial: Vec<_> = (0..count)
        .map(|index| (key(index), Some(b"initial".to_vec())))
        .collect();
    apply(&db, "t", &initial, Durability::Immediate);
    db
}

#[test]
fn a_steady_overwrite_workload_plateaus() {
    let db = with_keys(2000);
    for round in 0..100 {
        overwrite_round(&db, round);
    }
    let warm = db.stats().expect("stats");
    for round in 100..400 {
        overwrite_round(&db, round);
    }
    let later = db.stats().expect("stats");
    assert_eq!(
        later.page_count, warm.page_count,
        "the page space grew under steady overwrites"
    );
    assert_eq!(
        later.file_size_bytes, warm.file_size_bytes,
        "the file grew under steady overwrites"
    );
    assert!(
        later.free_pages + later.pending_pages > 0,
        "freed pages are tracked"
    );
    let report = db.verify().expect("verify");
    assert_eq!(report.tables[0].1.entries, 2000);
}

#[test]
fn an_old_reader_pins_pages_until_it_is_dropped() {
    let db = with_keys(2000);
    for round in 0..50 {
        overwrite_round(&db, round);
    }
    let reader = db.begin_read();
    let pinned_txn = reader.txn_id();
    for round in 50..150 {
        overwrite_round(&db, round);
    }
    let while_pinned = db.stats().expect("stats");
    assert_eq!(while_pinned.oldest_reader_txn, Some(pinned_txn));
    assert!(
        while_pinned.pending_pages > 100,
        "released pages wait for the reader"
    );
    let table = reader.open_table("t").expect("table");
    // Round 49 wrote key 49 * 37 = 1813 last before the reader began.
    assert_eq!(
        table.get(&key(1813)).expect("get").as_deref(),
        Some(&b"round-49"[..])
    );
    let fresh = db.begin_read();
    let now = fresh
        .open_table("t")
        .expect("table")
        .get(&key(1813))
        .expect("get")
        .map(|v| v.to_vec());
    assert_ne!(
        now.as_deref(),
        Some(&b"round-49"[..]),
        "later rounds overwrote the key"
    );
    drop(fresh);

    drop(reader);
    for round in 150..400 {
        overwrite_round(&db, round);
    }
    let released = db.stats().expect("stats");
    assert_eq!(released.live_readers, 0);
    assert_eq!(
        released.page_count, while_pinned.page_count,
        "the pinned pages were reused"
    );
    db.verify().expect("verify");
}

#[test]
fn stats_account_for_every_page() {
    let db = with_keys(500);
    overwrite_round(&db, 1);
    let stats = db.stats().expect("stats");
    let report = db.verify().expect("verify");
    assert_eq!(stats.used_pages, report.reachable_pages);
    assert_eq!(stats.free_pages, report.free_pages);
    assert_eq!(stats.pending_pages, report.pending_pages);
    assert_eq!(
        stats.page_count,
        2 + stats.used_pages + stats.free_pages + stats.pending_pages
    );
    assert_eq!(stats.committed_txn, stats.durable_txn);
    assert!(stats.file_size_bytes >= stats.page_count * stats.page_size as u64);
}

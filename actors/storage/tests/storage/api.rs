//! The public API on a real file: tables, ranges, prefixes, overflow values, limits,
//! abort, reopen.

use crate::common::key;
use inferadb_storage::{Database, StorageError};

fn temporary() -> (tempfile::TempDir, std::path::PathBuf) {
    let directory = tempfile::tempdir().expect("temporary directory");
    let path = directory.path().join("test.db");
    (directory, path)
}

#[test]
fn insert_get_range_and_reopen_on_a_real_file() {
    let (_directory, path) = temporary();
    {
        let db = Database::open(&path).expect("create");
        let mut write = db.begin_write().expect("write");
        {
            let mut table = write.open_table("numbers").expect("table");
            for index in 0..5000u64 {
                table
                    .insert(&key(index), &index.to_le_bytes())
                    .expect("insert");
            }
            assert_eq!(table.len(), 5000);
            assert!(table.depth().expect("depth") >= 2);
        }
        write.commit().expect("commit");
    }
    let db = Database::open(&path).expect("reopen");
    let read = db.begin_read();
    let table = read.open_table("numbers").expect("table");
    assert_eq!(
        table.get(&key(1234)).expect("get").as_deref(),
        Some(&1234u64.to_le_bytes()[..])
    );
    assert_eq!(table.get(b"missing").expect("get"), None);
    let forward: Vec<Vec<u8>> = table
        .range(&key(10)[..]..&key(20)[..])
        .expect("range")
        .map(|entry| entry.expect("entry").0.to_vec())
        .collect();
    assert_eq!(forward, (10..20).map(key).collect::<Vec<_>>());
    let backward: Vec<Vec<u8>> = table
        .range(&key(10)[..]..=&key(20)[..])
        .expect("range")
        .rev()
        .map(|entry| entry.expect("entry").0.to_vec())
        .collect();
    assert_eq!(backward, (10..=20).rev().map(key).collect::<Vec<_>>());
    let prefixed = table.prefix(b"key-0000012").expect("prefix").count();
    assert_eq!(prefixed, 10);
    db.verify().expect("verify");
}

#[test]
fn overflow_values_up_to_the_limit_and_a_clear_error_above() {
    let (_directory, path) = temporary();
    let db = Database::builder()
        .value_size_max(2 << 20)
        .open(&path)
        .expect("create");
    let big: Vec<u8> = (0..(1u32 << 20) + 17)
        .map(|index| (index % 251) as u8)
        .collect();
    let mut write = db.begin_write().expect("write");
    {
        let mut table = write.open_table("blobs").expect("table");
        table.insert(b"big", &big).expect("insert 1 MiB");
        let too_big = vec![0u8; (2 << 20) + 1];
        let error = table
            .insert(b"too-big", &too_big)
            .expect_err("over the limit");
        assert!(matches!(error, StorageError::ValueTooLarge { limit, .. } if limit == 2 << 20));
        assert!(error.to_string().contains("value_size_max"));
        let long_key = vec![b'k'; 5000];
        assert!(matches!(
            table.insert(&long_key, b"v"),
            Err(StorageError::KeyTooLarge { .. })
        ));
    }
    write.commit().expect("commit");
    let read = db.begin_read();
    let table = read.open_table("blobs").expect("table");
    assert_eq!(
        table.get(b"big").expect("get").expect("present").to_vec(),
        big
    );
    let report = db.verify().expect("verify");
    assert!(report.tables[0].1.overflow_pages >= 256);
    drop(read);
    let mut write = db.begin_write().expect("write");
    write
        .open_table("blobs")
        .expect("table")
        .remove(b"big")
        .expect("remove");
    write.commit().expect("commit");
    db.verify()
        .expect("verify after freeing the overflow chain");
}

#[test]
fn abort_and_drop_leave_no_trace() {
    let (_directory, path) = temporary();
    let db = Database::open(&path).expect("create");
    let before = db.stats().expect("stats");
    let mut write = db.begin_write().expect("write");
    write
        .open_table("t")
        .expect("table")
        .insert(b"a", b"1")
        .expect("insert");
    write.abort();
    let mut write = db.begin_write().expect("write");
    write
        .open_table("t")
        .expect("table")
        .insert(b"a", b"1")
        .expect("insert");
    drop(write);
    assert!(matches!(
        db.begin_read().open_table("t"),
        Err(StorageError::TableNotFound(_))
    ));
    assert_eq!(
        db.stats().expect("stats").committed_txn,
        before.committed_txn
    );
}

#[test]
fn named_tables_are_independent_and_deletable() {
    let (_directory, path) = temporary();
    let db = Database::open(&path).expect("create");
    let mut write = db.begin_write().expect("write");
    for name in ["alpha", "beta", "gamma"] {
        let mut table = write.open_table(name).expect("table");
        for index in 0..300 {
            table.insert(&key(index), name.as_bytes()).expect("insert");
        }
    }
    write.commit().expect("commit");
    let mut write = db.begin_write().expect("write");
    assert!(write.delete_table("beta").expect("delete"));
    assert!(!write.delete_table("missing").expect("delete"));
    write.commit().expect("commit");
    let read = db.begin_read();
    assert_eq!(
        read.list_tables().expect("list"),
        vec!["alpha".to_string(), "gamma".to_string()]
    );
    let gamma = read.open_table("gamma").expect("gamma");
    assert_eq!(
        gamma.get(&key(7)).expect("get").as_deref(),
        Some(&b"gamma"[..])
    );
    assert!(matches!(
        read.open_table(""),
        Err(StorageError::TableNameInvalid {
            rule: "must not be empty",
            ..
        })
    ));
    db.verify().expect("verify");
}

#[test]
fn readers_see_their_snapshot_while_the_writer_commits() {
    let (_directory, path) = temporary();
    let db = Database::open(&path).expect("create");
    crate::common::apply(
        &db,
        "t",
        &[(b"k".to_vec(), Some(b"old".to_vec()))],
        Default::default(),
    );
    let reader = db.begin_read();
    crate::common::apply(
        &db,
        "t",
        &[(b"k".to_vec(), Some(b"new".to_vec()))],
        Default::default(),
    );
    let old = reader.open_table("t").expect("table");
    assert_eq!(old.get(b"k").expect("get").as_deref(), Some(&b"old"[..]));
    let fresh = db.begin_read();
    let new = fresh.open_table("t").expect("table");
    assert_eq!(new.get(b"k").expect("get").as_deref(), Some(&b"new"[..]));
    assert_eq!(db.stats().expect("stats").live_readers, 2);
}

#[test]
fn a_second_process_cannot_open_a_locked_file() {
    let (_directory, path) = temporary();
    let _db = Database::open(&path).expect("create");
    assert!(matches!(
        Database::open(&path),
        Err(inferadb_storage::OpenError::Locked)
    ));
}

/// Readers on other threads run while the writer commits. Every commit rewrites all keys
/// with one generation number, so a reader that ever sees two generations in one
/// snapshot has seen a torn (non-isolated) state.
#[test]
fn concurrent_readers_always_see_one_whole_commit() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let (_directory, path) = temporary();
    let db = Database::open(&path).expect("create");
    let write_generation = |generation: u64| {
        let mut write = db.begin_write().expect("write");
        write.set_durability(inferadb_storage::Durability::None);
        {
            let mut table = write.open_table("t").expect("table");
            for index in 0..400 {
                table
                    .insert(&key(index), &generation.to_le_bytes())
                    .expect("insert");
            }
        }
        write.commit().expect("commit");
    };
    write_generation(0);
    let stop = AtomicBool::new(false);
    let snapshots_checked = std::thread::scope(|scope| {
        let readers: Vec<_> = (0..2)
            .map(|_| {
                scope.spawn(|| {
                    let mut checked = 0u64;
                    while !stop.load(Ordering::Relaxed) || checked == 0 {
                        let read = db.begin_read();
                        let table = read.open_table("t").expect("table");
                        let generations: std::collections::BTreeSet<Vec<u8>> = table
                            .iter()
                            .expect("iterate")
                            .map(|entry| entry.expect("entry").1.to_vec())
                            .collect();
                        assert_eq!(generations.len(), 1, "a snapshot mixed two commits");
                        assert_eq!(table.len(), 400);
                        checked += 1;
                    }
                    checked
                })
            })
            .collect();
        for generation in 1..200 {
            write_generation(generation);
        }
        stop.store(true, Ordering::Relaxed);
        readers
            .into_iter()
            .map(|reader| reader.join().expect("reader"))
            .sum::<u64>()
    });
    assert!(snapshots_checked > 0);
    db.verify().expect("verify");
    assert_eq!(db.stats().expect("stats").live_readers, 0);
}

#[test]
fn table_handles_open_tables_of_their_own_commit_without_a_lookup() {
    let db = Database::builder()
        .open_with_io(std::sync::Arc::new(
            inferadb_storage::io::MemoryIo::default(),
        ))
        .expect("create");
    let mut write = db.begin_write().expect("write");
    write
        .open_table("t")
        .expect("table")
        .insert(b"a", b"1")
        .expect("insert");
    write.commit().expect("commit");
    let read = db.begin_read();
    let handle = read.table_handle("t").expect("handle");
    assert_eq!((handle.len(), handle.txn_id()), (1, read.txn_id()));
    assert!(matches!(
        read.table_handle("missing"),
        Err(StorageError::TableNotFound(_))
    ));
    // Another reader of the same commit may use the handle too.
    let same_commit = db.begin_read();
    for reader in [&read, &same_commit] {
        let table = reader.open_handle(&handle);
        assert_eq!(table.get(b"a").expect("get").as_deref(), Some(&b"1"[..]));
    }
    let mut write = db.begin_write().expect("write");
    write
        .open_table("t")
        .expect("table")
        .insert(b"b", b"2")
        .expect("insert");
    write.commit().expect("commit");
    // A reader of a newer commit refuses the stale handle instead of reading freed pages.
    let newer = db.begin_read();
    let refused = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        newer.open_handle(&handle).len()
    }));
    assert!(refused.is_err());
    assert_eq!(
        newer
            .open_handle(&newer.table_handle("t").expect("handle"))
            .len(),
        2
    );
}

/// Pages written in place through the file's writable mapping: many small commits
/// (deferred, immediate, synced) of random inserts, rewrites and removes on small pages,
/// read back through the read-only mapping after every commit and again after a reopen.
#[test]
fn a_real_file_written_in_place_matches_a_model_across_commits_and_reopen() {
    use inferadb_storage::Durability;
    let (_directory, path) = temporary();
    let limits = crate::common::small_limits();
    let mut model = crate::common::Model::new();
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    {
        let db = Database::builder()
            .limits(limits.clone())
            .open(&path)
            .expect("create");
        for commit in 0..60u64 {
            let changes: Vec<(Vec<u8>, Option<Vec<u8>>)> = (0..40)
                .map(|_| {
                    let entry = key(next() % 600);
                    let value = (next() % 4 != 0).then(|| vec![b'v'; (next() % 60) as usize]);
                    (entry, value)
                })
                .collect();
            for (entry, value) in &changes {
                match value {
                    Some(value) => model.insert(entry.clone(), value.clone()),
                    None => model.remove(entry),
                };
            }
            let durability = if commit % 7 == 0 {
                Durability::Immediate
            } else {
                Durability::Deferred
            };
            crate::common::apply(&db, "t", &changes, durability);
            if commit % 10 == 5 {
                db.sync().expect("sync");
            }
            assert_eq!(
                crate::common::dump(&db, "t"),
                model,
                "after commit {commit}"
            );
        }
        db.verify().expect("verify before close");
    }
    let db = Database::builder()
        .limits(limits)
        .open(&path)
        .expect("reopen");
    assert_eq!(crate::common::dump(&db, "t"), model);
    db.verify().expect("verify after reopen");
}

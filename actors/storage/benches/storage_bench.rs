//! Storage benchmark: InferaDB's engine against redb on the same data in the same run.
//!
//! `cargo bench -p inferadb-storage --bench storage_bench [-- KEYS]` prints one row per
//! workload with both engines' figures and the ratio (ours / redb; above 1 means faster).
#![allow(clippy::disallowed_methods)] // a benchmark measures wall-clock time on purpose
#![allow(clippy::unwrap_used)]

use inferadb_storage::{Database, Durability};
use redb::{ReadableTable, TableDefinition};
use std::sync::Arc;
use std::time::{Duration, Instant};

const TABLE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("bench");
const VALUE_BYTES: usize = 32;

fn keys(count: usize, seed: u64) -> Vec<[u8; 16]> {
    let mut state = seed;
    (0..count)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let mut key = [0u8; 16];
            key[..8].copy_from_slice(&state.to_be_bytes());
            key[8..].copy_from_slice(&(state.rotate_left(17)).to_be_bytes());
            key
        })
        .collect()
}

struct Engines {
    _directory: tempfile::TempDir,
    ours: Database,
    redb: Arc<redb::Database>,
}

fn new_engines() -> Engines {
    let directory = tempfile::tempdir().unwrap();
    let ours = Database::open(directory.path().join("ours.db")).unwrap();
    let redb = Arc::new(redb::Database::create(directory.path().join("redb.db")).unwrap());
    Engines {
        _directory: directory,
        ours,
        redb,
    }
}

fn ours_insert(db: &Database, keys: &[[u8; 16]], batch: usize, durability: Durability) {
    let value = [7u8; VALUE_BYTES];
    for chunk in keys.chunks(batch) {
        let mut write = db.begin_write().unwrap();
        write.set_durability(durability);
        {
            let mut table = write.open_table("bench").unwrap();
            for key in chunk {
                table.insert(key, &value).unwrap();
            }
        }
        write.commit().unwrap();
    }
}

fn redb_insert(db: &redb::Database, keys: &[[u8; 16]], batch: usize, durability: redb::Durability) {
    let value = [7u8; VALUE_BYTES];
    for chunk in keys.chunks(batch) {
        let mut write = db.begin_write().unwrap();
        write.set_durability(durability);
        {
            let mut table = write.open_table(TABLE).unwrap();
            for key in chunk {
                table.insert(&key[..], &value[..]).unwrap();
            }
        }
        write.commit().unwrap();
    }
}

/// Inserts into an existing table the way a vault applies replicated writes: batches that
/// commit without fsync (`Deferred` here, `None` in redb) and a sync every `sync_every`
/// commits (`Database::sync` here, an `Immediate` commit in redb).
fn ours_grouped(db: &Database, keys: &[[u8; 16]], batch: usize, sync_every: usize) {
    for (index, chunk) in keys.chunks(batch).enumerate() {
        ours_insert(db, chunk, batch, Durability::Deferred);
        if (index + 1) % sync_every == 0 {
            if std::env::var_os("STORAGE_BENCH_STATS").is_some() {
                eprintln!("before sync: {:?}", db.stats().unwrap());
            }
            db.sync().unwrap();
        }
    }
    db.sync().unwrap();
}

fn redb_grouped(db: &redb::Database, keys: &[[u8; 16]], batch: usize, sync_every: usize) {
    for (index, chunk) in keys.chunks(batch).enumerate() {
        let last = (index + 1) % sync_every == 0 || (index + 1) * batch >= keys.len();
        let durability = if last {
            redb::Durability::Immediate
        } else {
            redb::Durability::None
        };
        redb_insert(db, chunk, batch, durability);
    }
}

fn ours_reads(db: &Database, keys: &[[u8; 16]]) -> usize {
    let read = db.begin_read();
    let table = read.open_table("bench").unwrap();
    keys.iter()
        .filter(|key| table.get(&key[..]).unwrap().is_some())
        .count()
}

fn redb_reads(db: &redb::Database, keys: &[[u8; 16]]) -> usize {
    let read = db.begin_read().unwrap();
    let table = read.open_table(TABLE).unwrap();
    keys.iter()
        .filter(|key| table.get(&key[..]).unwrap().is_some())
        .count()
}

fn timed<T>(work: impl FnOnce() -> T) -> (Duration, T) {
    let start = Instant::now();
    let result = work();
    (start.elapsed(), result)
}

fn row(name: &str, operations: usize, ours: Duration, redb: Duration) {
    let rate = |elapsed: Duration| operations as f64 / elapsed.as_secs_f64();
    println!(
        "| {name:<44} | {:>12.0} | {:>12.0} | {:>5.2} |",
        rate(ours),
        rate(redb),
        rate(ours) / rate(redb)
    );
}

fn parallel_reads(threads: usize, work: impl Fn(usize) -> usize + Sync) -> Duration {
    let start = Instant::now();
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|index| {
                let work = &work;
                scope.spawn(move || work(index))
            })
            .collect();
        for handle in handles {
            assert!(handle.join().unwrap() > 0);
        }
    });
    start.elapsed()
}

fn profile_grouped(count: usize) {
    let mut sorted = keys(count, 1);
    sorted.sort();
    let engines = new_engines();
    ours_insert(&engines.ours, &sorted, count, Durability::Immediate);
    let grown = keys(count / 5, 4242);
    let (elapsed, _) = timed(|| ours_grouped(&engines.ours, &grown, 1000, 50));
    println!(
        "grouped inserts into {count} keys: {:.0} ops/s",
        grown.len() as f64 / elapsed.as_secs_f64()
    );
}

#[allow(clippy::too_many_lines)] // a linear script of workloads reads best in one place
fn main() {
    let count: usize = std::env::args()
        .skip(1)
        .find_map(|argument| argument.parse().ok())
        .unwrap_or(1_000_000);
    // `-- profile`: only the grouped-insert workload, only our engine, for a profiler.
    if std::env::args().any(|argument| argument == "profile") {
        profile_grouped(count);
        return;
    }
    println!("storage benchmark: {count} keys of 16 bytes, values of {VALUE_BYTES} bytes");
    println!(
        "| workload                                     |   ours ops/s |   redb ops/s | ratio |"
    );
    println!(
        "|----------------------------------------------|--------------|--------------|-------|"
    );
    let mut sorted = keys(count, 1);
    sorted.sort();
    let engines = new_engines();
    let (ours, _) = timed(|| ours_insert(&engines.ours, &sorted, count, Durability::Immediate));
    let (redb, _) =
        timed(|| redb_insert(&engines.redb, &sorted, count, redb::Durability::Immediate));
    row("sequential insert, one transaction", count, ours, redb);

    let lookups = keys(count, 1);
    let (ours, found) = timed(|| ours_reads(&engines.ours, &lookups));
    assert_eq!(found, count);
    let (redb, found) = timed(|| redb_reads(&engines.redb, &lookups));
    assert_eq!(found, count);
    row("random point reads, warm, 1 thread", count, ours, redb);

    let ours = parallel_reads(2, |_| ours_reads(&engines.ours, &lookups));
    let redb = parallel_reads(2, |_| redb_reads(&engines.redb, &lookups));
    row(
        "random point reads, warm, 2 threads (total)",
        2 * count,
        ours,
        redb,
    );

    let (ours, scanned) = timed(|| {
        let read = engines.ours.begin_read();
        let table = read.open_table("bench").unwrap();
        table
            .iter()
            .unwrap()
            .map(|entry| entry.unwrap().1.len())
            .sum::<usize>()
    });
    assert_eq!(scanned, count * VALUE_BYTES);
    let (redb, scanned) = timed(|| {
        let read = engines.redb.begin_read().unwrap();
        let table = read.open_table(TABLE).unwrap();
        table
            .iter()
            .unwrap()
            .map(|entry| entry.unwrap().1.value().len())
            .sum::<usize>()
    });
    assert_eq!(scanned, count * VALUE_BYTES);
    row("full range scan", count, ours, redb);

    let grown = keys(count / 5, 4242);
    let (ours, _) = timed(|| ours_grouped(&engines.ours, &grown, 1000, 50));
    let (redb, _) = timed(|| redb_grouped(&engines.redb, &grown, 1000, 50));
    row(
        "inserts into the 1M table, 1,000 per commit",
        grown.len(),
        ours,
        redb,
    );

    for (batch, total) in [(1usize, 20_000usize), (100, 200_000), (10_000, 1_000_000)] {
        let fresh = new_engines();
        let random = keys(total.min(count), 99 + batch as u64);
        let (ours, _) = timed(|| ours_insert(&fresh.ours, &random, batch, Durability::None));
        let (redb, _) = timed(|| redb_insert(&fresh.redb, &random, batch, redb::Durability::None));
        row(
            &format!("random inserts, batches of {batch} (no fsync)"),
            random.len(),
            ours,
            redb,
        );
    }

    let fresh = new_engines();
    let random = keys(300, 7);
    let (ours, _) = timed(|| ours_insert(&fresh.ours, &random, 1, Durability::Immediate));
    let (redb, _) = timed(|| redb_insert(&fresh.redb, &random, 1, redb::Durability::Immediate));
    row(
        "commits of 1 insert, Immediate (fsync)",
        random.len(),
        ours,
        redb,
    );
    println!(
        "commit latency, Immediate: ours {:.2} ms, redb {:.2} ms",
        ours.as_secs_f64() * 1000.0 / 300.0,
        redb.as_secs_f64() * 1000.0 / 300.0
    );
}

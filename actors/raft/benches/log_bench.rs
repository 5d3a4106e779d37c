//! Durable Raft log benchmark: batches of 1, 16 and 256 entries of 100 bytes, each batch
//! appended then synced once (group commit), on a real file in a temporary directory.
//! Prints entries/s and the sync latency's p50 / p99.
//!
//! `cargo bench -p inferadb-raft --bench log_bench [-- <batches per size>]`

#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(clippy::disallowed_methods)] // a benchmark reads the clock

use inferadb_raft::log::{DurableLog, LogOptions};
use inferadb_raft::store::LogStore;
use raft::eraftpb::{Entry, HardState};
use std::time::{Duration, Instant};

fn percentile(sorted: &[Duration], fraction: f64) -> Duration {
    let at = ((sorted.len() as f64 - 1.0) * fraction).round() as usize;
    sorted[at.min(sorted.len() - 1)]
}

fn run(batch: u64, batches: u64) {
    let dir = tempfile::tempdir().unwrap();
    let mut log = DurableLog::open_dir(dir.path(), LogOptions::default()).unwrap();
    let mut next = 1u64;
    let mut syncs = Vec::with_capacity(batches as usize);
    let started = Instant::now();
    for _ in 0..batches {
        let entries: Vec<Entry> = (next..next + batch)
            .map(|index| Entry {
                index,
                term: 1,
                data: vec![0xAB; 100].into(),
                ..Entry::default()
            })
            .collect();
        next += batch;
        log.append(&entries).unwrap();
        let hard_state = HardState {
            term: 1,
            vote: 1,
            commit: next - 1,
            ..HardState::default()
        };
        log.set_hard_state(&hard_state).unwrap();
        let sync = Instant::now();
        log.sync().unwrap();
        syncs.push(sync.elapsed());
    }
    let elapsed = started.elapsed();
    syncs.sort();
    println!(
        "| {batch} | {batches} | {:.0} | {:.3} | {:.3} |",
        (batch * batches) as f64 / elapsed.as_secs_f64(),
        percentile(&syncs, 0.50).as_secs_f64() * 1e3,
        percentile(&syncs, 0.99).as_secs_f64() * 1e3,
    );
}

fn main() {
    let batches: u64 = std::env::args()
        .skip(1)
        .find(|arg| !arg.starts_with('-'))
        .and_then(|arg| arg.parse().ok())
        .unwrap_or(2000);
    println!("| entries per sync | syncs | entries/s | sync p50 (ms) | sync p99 (ms) |");
    println!("|---:|---:|---:|---:|---:|");
    for batch in [1, 16, 256] {
        run(batch, batches);
    }
}

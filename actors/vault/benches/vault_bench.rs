//! Vault write-path benchmark on the reference dataset (`shared/bench/gen.py --seed 42`),
//! over a real file: bulk import in batches of 1,000 (deferred commits, one sync per batch,
//! as the node's group commit does for a lone writer), then batches of 100 and of 1, each
//! made durable. Prints relationships/s and per-batch latency percentiles, split into the
//! commit (validation, indexes, ledger block) and the sync.
//!
//! Run: `cargo bench -p inferadb-vault --bench vault_bench` (`VAULT_BENCH_LIMIT=N` loads
//! only the first N relationships).

// A benchmark measures wall time, which the library itself must never read.
#![allow(
    clippy::disallowed_methods,
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs
)]

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use inferadb_protocols::{Relationship, VaultId};
use inferadb_storage::Durability;
use inferadb_vault::{open_database, Mutation, NodeCatalog, Vault, VaultOptions, WriteBatch};

fn dataset() -> PathBuf {
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/bench-data");
    if !out.join("relationships.jsonl").exists() {
        let generator = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/bench/gen.py");
        let status = Command::new("python3")
            .arg(generator)
            .args(["--seed", "42", "--out"])
            .arg(&out)
            .status()
            .expect("python3 runs gen.py");
        assert!(status.success());
    }
    out
}

fn relationships(directory: &Path, limit: usize) -> Vec<Relationship> {
    let file = std::fs::File::open(directory.join("relationships.jsonl")).unwrap();
    std::io::BufReader::new(file)
        .lines()
        .take(limit)
        .map(|line| {
            let value: serde_json::Value = serde_json::from_str(&line.unwrap()).unwrap();
            let text = format!(
                "{}#{}@{}",
                value["resource"].as_str().unwrap(),
                value["relation"].as_str().unwrap(),
                value["subject"].as_str().unwrap()
            );
            text.parse().unwrap()
        })
        .collect()
}

fn percentile(sorted: &[Duration], fraction: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * fraction).round() as usize;
    sorted[index]
}

struct Phase {
    commits: Vec<Duration>,
    syncs: Vec<Duration>,
    relationships: usize,
    elapsed: Duration,
}

fn run(
    vault: &mut Vault,
    database: &inferadb_storage::Database,
    batches: &[Vec<Relationship>],
) -> Phase {
    let mut phase = Phase {
        commits: Vec::new(),
        syncs: Vec::new(),
        relationships: 0,
        elapsed: Duration::ZERO,
    };
    let started = Instant::now();
    for batch in batches {
        let mutations = batch.iter().cloned().map(Mutation::Touch).collect();
        let write = WriteBatch {
            mutations,
            preconditions: Vec::new(),
        };
        let commit_started = Instant::now();
        vault.write(write, 1).unwrap();
        let sync_started = Instant::now();
        database.sync().unwrap();
        phase.commits.push(sync_started - commit_started);
        phase.syncs.push(sync_started.elapsed());
        phase.relationships += batch.len();
    }
    phase.elapsed = started.elapsed();
    phase.commits.sort();
    phase.syncs.sort();
    phase
}

fn report(name: &str, phase: &Phase) {
    println!(
        "| {name} | {:>9.0} | {:>7.2?} / {:>7.2?} | {:>7.2?} / {:>7.2?} |",
        phase.relationships as f64 / phase.elapsed.as_secs_f64(),
        percentile(&phase.commits, 0.5),
        percentile(&phase.commits, 0.99),
        percentile(&phase.syncs, 0.5),
        percentile(&phase.syncs, 0.99),
    );
}

fn main() {
    let limit = std::env::var("VAULT_BENCH_LIMIT")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(usize::MAX);
    let all = relationships(&dataset(), limit);
    let directory = tempfile::tempdir().unwrap();
    let database = Arc::new(open_database(directory.path().join("bench.db")).unwrap());
    NodeCatalog::open(Arc::clone(&database), [1; 32])
        .unwrap()
        .create_vault(VaultId(1), "bench", 1)
        .unwrap();
    let options = VaultOptions {
        commit_durability: Durability::Deferred,
        ..VaultOptions::default()
    };
    let mut vault = Vault::open(Arc::clone(&database), VaultId(1), options).unwrap();
    let schema = std::fs::read_to_string(dataset().join("schema.ipl")).unwrap();
    vault.deploy_schema(&schema, 1).unwrap();
    database.sync().unwrap();
    let split = all.len().saturating_sub(12_000);
    let (bulk, rest) = all.split_at(split);
    let (hundreds, singles) = rest.split_at(rest.len().saturating_sub(2_000));
    println!(
        "{} relationships; file-backed, {} KiB pages\n",
        all.len(),
        inferadb_vault::PAGE_SIZE / 1024
    );
    println!("| workload | rel/s | commit p50 / p99 | sync p50 / p99 |");
    println!("|---|---:|---:|---:|");
    let chunks = |items: &[Relationship], size: usize| {
        items
            .chunks(size)
            .map(<[Relationship]>::to_vec)
            .collect::<Vec<_>>()
    };
    report(
        "bulk import, batches of 1,000",
        &run(&mut vault, &database, &chunks(bulk, 1_000)),
    );
    report(
        "batches of 100, each durable",
        &run(&mut vault, &database, &chunks(hundreds, 100)),
    );
    report(
        "batches of 1, each durable",
        &run(&mut vault, &database, &chunks(singles, 1)),
    );
    let snapshot = vault.snapshot().unwrap();
    let verify_started = Instant::now();
    let report = snapshot.verify_ledger().unwrap();
    println!(
        "\nverify_ledger: holds={} over {} blocks and {} relationships in {:.2?}",
        report.holds,
        report.blocks_checked,
        report.relationships,
        verify_started.elapsed()
    );
}

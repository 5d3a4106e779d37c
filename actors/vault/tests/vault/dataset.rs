//! The reference dataset (`shared/bench/gen.py --seed 42`) loaded into a vault, then the
//! first checks answered through the snapshot.
//!
//! Loading all 381,275 relationships takes 40-50 s in a debug build on two cores, so by
//! default the first [`SAMPLE`] relationships are loaded and the checks are compared with
//! the evaluator over an `InMemoryReader` of the same sample. `INFERADB_FULL_DATASET=1`
//! loads everything and compares with `shared/bench/expected/checks.jsonl`.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use inferadb_evaluator::{CheckRequest, Evaluator, InMemoryReader, ReadView};
use inferadb_protocols::Relationship;
use inferadb_storage::Durability;
use inferadb_vault::{Mutation, NodeCatalog, Vault, VaultOptions, WriteBatch};
use serde::Deserialize;

use crate::common::VAULT;

const BENCH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/bench");
const CHECKS: usize = 2_000;
const SAMPLE: usize = 40_000;

#[derive(Deserialize)]
struct CheckLine {
    resource: String,
    permission: String,
    subject: String,
}

#[derive(Deserialize)]
struct Expected {
    allowed: bool,
}

fn read_lines<T: serde::de::DeserializeOwned>(path: &Path) -> Vec<T> {
    let file = std::fs::File::open(path).unwrap();
    std::io::BufReader::new(file)
        .lines()
        .map(|line| serde_json::from_str(&line.unwrap()).unwrap())
        .collect()
}

/// Runs gen.py into a temporary folder; `None` (with a printed note) when it cannot.
fn generate() -> Option<(PathBuf, tempfile::TempDir)> {
    let bench = PathBuf::from(BENCH);
    if !bench.join("gen.py").is_file() {
        println!(
            "skipped: the dataset generator is missing at {}",
            bench.display()
        );
        return None;
    }
    let directory = tempfile::tempdir().unwrap();
    let status = Command::new("python3")
        .arg(bench.join("gen.py"))
        .args(["--seed", "42", "--out"])
        .arg(directory.path())
        .stdout(std::process::Stdio::null())
        .status();
    if !status.is_ok_and(|status| status.success()) {
        println!("skipped: python3 could not run gen.py");
        return None;
    }
    Some((bench, directory))
}

/// A vault on a file in `directory` with the dataset's schema. A real file because
/// `MemoryIo` copies its image when written under a live view, which makes a large load
/// quadratic; deferred commits because nothing here needs an fsync.
fn bench_vault(directory: &Path) -> Vault {
    let db = Arc::new(inferadb_vault::open_database(directory.join("vault.db")).unwrap());
    let catalog = NodeCatalog::open(Arc::clone(&db), [3; 32]).unwrap();
    catalog.create_vault(VAULT, "bench", 0).unwrap();
    let options = VaultOptions {
        commit_durability: Durability::Deferred,
        ..VaultOptions::default()
    };
    let mut vault = Vault::open(db, VAULT, options).unwrap();
    let schema = std::fs::read_to_string(directory.join("schema.ipl")).unwrap();
    vault.deploy_schema(&schema, 1).unwrap();
    vault
}

#[test]
fn reference_dataset_loads_and_answers_checks() {
    let Some((bench, directory)) = generate() else {
        return;
    };
    let mut vault = bench_vault(directory.path());
    let mut relationships: Vec<Relationship> =
        read_lines(&directory.path().join("relationships.jsonl"));
    assert_eq!(relationships.len(), 381_275);
    let full = std::env::var_os("INFERADB_FULL_DATASET").is_some();
    if !full {
        relationships.truncate(SAMPLE);
    }
    for chunk in relationships.chunks(1_000) {
        let mutations = chunk.iter().cloned().map(Mutation::Create).collect();
        let batch = WriteBatch {
            mutations,
            preconditions: Vec::new(),
        };
        vault.write(batch, 2).unwrap();
    }
    let snapshot = vault.snapshot().unwrap();
    assert_eq!(snapshot.relationship_count(), relationships.len() as u64);
    let blocks = relationships.len().div_ceil(1_000) as u64;
    assert_eq!(snapshot.revision().0, 1 + blocks);
    let checks: Vec<CheckRequest> = read_lines::<CheckLine>(&directory.path().join("checks.jsonl"))
        .into_iter()
        .take(CHECKS)
        .map(|check| CheckRequest {
            resource: check.resource.parse().unwrap(),
            permission: check.permission.parse().unwrap(),
            subject: check.subject.parse().unwrap(),
        })
        .collect();
    let schema = snapshot.schema().unwrap();
    let expected: Vec<bool> = if full {
        let answers: Vec<Expected> = read_lines(&bench.join("expected/checks.jsonl"));
        answers.into_iter().map(|answer| answer.allowed).collect()
    } else {
        let reader = InMemoryReader::from_relationships(&relationships);
        let reference = Evaluator::new(Arc::clone(&schema.compiled));
        let view = ReadView {
            reader: &reader,
            vault_id: VAULT.0,
            revision: snapshot.revision(),
            now_ms: 3,
        };
        let answer = |check| reference.check(&view, check).unwrap().allowed;
        checks.iter().map(answer).collect()
    };
    let view = snapshot.view(3);
    let wrong = checks
        .iter()
        .zip(&expected)
        .filter(|(check, expected)| {
            schema.evaluator.check(&view, check).unwrap().allowed != **expected
        })
        .count();
    assert_eq!(wrong, 0);
    let allowed = expected
        .iter()
        .take(CHECKS)
        .filter(|allowed| **allowed)
        .count();
    assert!(allowed > 0, "the checks include allowed ones");
    println!(
        "dataset: {} relationships in {blocks} blocks, {CHECKS} checks match ({allowed} allowed)",
        relationships.len()
    );
}

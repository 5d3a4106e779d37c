//! The reference dataset (`shared/bench/gen.py --seed 42`) loaded into a vault over an
//! in-memory database, then the first checks answered through the snapshot.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use inferadb_evaluator::CheckRequest;
use inferadb_protocols::Relationship;
use inferadb_storage::Durability;
use inferadb_vault::{Mutation, NodeCatalog, Vault, VaultOptions, WriteBatch};
use serde::Deserialize;

use crate::common::{memory_db, VAULT};

const BENCH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/bench");
const CHECKS: usize = 2_000;

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

#[test]
fn reference_dataset_loads_and_answers_checks() {
    let bench = PathBuf::from(BENCH);
    if !bench.join("gen.py").is_file() {
        println!(
            "skipped: the reference dataset generator is missing at {}",
            bench.display()
        );
        return;
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
        return;
    }
    let db = memory_db();
    NodeCatalog::open(Arc::clone(&db), [3; 32])
        .unwrap()
        .create_vault(VAULT, "bench", 0)
        .unwrap();
    // Deferred commits: an in-memory image has nothing to fsync, and an Immediate sync of
    // `MemoryIo` copies the whole image per commit.
    let options = VaultOptions {
        commit_durability: Durability::Deferred,
        ..VaultOptions::default()
    };
    let mut vault = Vault::open(Arc::clone(&db), VAULT, options).unwrap();
    let schema = std::fs::read_to_string(directory.path().join("schema.ipl")).unwrap();
    vault.deploy_schema(&schema, 1).unwrap();
    let relationships: Vec<Relationship> =
        read_lines(&directory.path().join("relationships.jsonl"));
    assert_eq!(relationships.len(), 381_275);
    for chunk in relationships.chunks(1_000) {
        let batch = WriteBatch {
            mutations: chunk.iter().cloned().map(Mutation::Create).collect(),
            preconditions: Vec::new(),
        };
        vault.write(batch, 2).unwrap();
    }
    let snapshot = vault.snapshot().unwrap();
    assert_eq!(snapshot.relationship_count(), 381_275);
    assert_eq!(snapshot.revision().0, 1 + 382);
    let checks: Vec<CheckLine> = read_lines(&directory.path().join("checks.jsonl"));
    let expected: Vec<Expected> = read_lines(&bench.join("expected/checks.jsonl"));
    let evaluator = &snapshot.schema().unwrap().evaluator;
    let view = snapshot.view(3);
    let wrong = checks
        .iter()
        .zip(&expected)
        .take(CHECKS)
        .filter(|(check, expected)| {
            let request = CheckRequest {
                resource: check.resource.parse().unwrap(),
                permission: check.permission.parse().unwrap(),
                subject: check.subject.parse().unwrap(),
            };
            evaluator.check(&view, &request).unwrap().allowed != expected.allowed
        })
        .count();
    assert_eq!(wrong, 0);
    println!("dataset: 381,275 relationships in 382 blocks, {CHECKS} checks match");
}

//! The reference dataset (`shared/bench/gen.py --seed 42`): 381,275 relationships, 20,000
//! checks and 50 lookups whose answers SpiceDB and an independent evaluation agree on
//! (`shared/bench/expected/`). Our batch check and lookup resources must reproduce both
//! files exactly; it is the cheapest large-scale correctness check we have.

use std::collections::HashSet;
use std::io::BufRead;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use inferadb_evaluator::{CheckRequest, Evaluator, InMemoryReader, LookupResourcesRequest};
use inferadb_protocols::Relationship;
use serde::Deserialize;

use crate::common::{compile, shared_dir, view};

#[derive(Deserialize)]
struct CheckLine {
    resource: String,
    permission: String,
    subject: String,
}

#[derive(Deserialize)]
struct ExpectedCheck {
    allowed: bool,
}

#[derive(Deserialize)]
struct LookupLine {
    resource_type: String,
    permission: String,
    subject: String,
}

#[derive(Deserialize)]
struct ExpectedLookup {
    subject: String,
    resources: Vec<String>,
}

fn read_lines<T: serde::de::DeserializeOwned>(path: &Path) -> Vec<T> {
    let file =
        std::fs::File::open(path).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
    std::io::BufReader::new(file)
        .lines()
        .map(|line| serde_json::from_str(&line.unwrap()).unwrap())
        .collect()
}

/// The generated dataset in a temporary folder.
pub struct Dataset {
    pub directory: tempfile::TempDir,
}

impl Dataset {
    pub fn generate() -> Self {
        let directory = tempfile::tempdir().unwrap();
        let script = shared_dir().join("bench/gen.py");
        let status = Command::new("python3")
            .arg(&script)
            .args(["--seed", "42", "--out"])
            .arg(directory.path())
            .stdout(std::process::Stdio::null())
            .status()
            .expect("python3 must be installed to generate the reference dataset");
        assert!(status.success(), "gen.py failed");
        Self { directory }
    }

    pub fn path(&self, name: &str) -> std::path::PathBuf {
        self.directory.path().join(name)
    }
}

#[test]
fn reference_dataset_matches_expected_answers() {
    let dataset = Dataset::generate();
    let schema = compile(&std::fs::read_to_string(dataset.path("schema.ipl")).unwrap());
    let relationships: Vec<Relationship> = read_lines(&dataset.path("relationships.jsonl"));
    assert_eq!(relationships.len(), 381_275);
    let reader = InMemoryReader::from_relationships(&relationships);
    let evaluator = Evaluator::new(Arc::clone(&schema));

    let checks: Vec<CheckRequest> = read_lines::<CheckLine>(&dataset.path("checks.jsonl"))
        .into_iter()
        .map(|line| CheckRequest {
            resource: line.resource.parse().unwrap(),
            permission: line.permission.parse().unwrap(),
            subject: line.subject.parse().unwrap(),
        })
        .collect();
    let expected: Vec<ExpectedCheck> =
        read_lines(&shared_dir().join("bench/expected/checks.jsonl"));
    assert_eq!(checks.len(), expected.len());
    let mut mismatches = 0;
    for (batch, expected) in checks.chunks(100).zip(expected.chunks(100)) {
        for (answer, expected) in evaluator
            .batch_check(&view(&reader), batch)
            .into_iter()
            .zip(expected)
        {
            if answer.unwrap().allowed != expected.allowed {
                mismatches += 1;
            }
        }
    }
    let allowed = expected.iter().filter(|answer| answer.allowed).count();
    println!(
        "dataset: {} checks ({allowed} allowed), {mismatches} mismatches",
        checks.len()
    );
    assert_eq!(mismatches, 0);
    // Sub-problem sharing on, so the cross-request path is checked at scale too.
    let sharing = inferadb_evaluator::EvaluatorLimits {
        shared_subproblem_work_min: 16,
        ..Default::default()
    };
    cached_checks_match(
        Evaluator::new(schema)
            .with_limits(sharing)
            .with_cache(100_000),
        &reader,
        &checks,
        &expected,
    );

    lookups_match(&evaluator, &reader, &dataset);
}

/// Every lookup of the dataset returns exactly the expected resources.
fn lookups_match(evaluator: &Evaluator, reader: &InMemoryReader, dataset: &Dataset) {
    let lookups: Vec<LookupLine> = read_lines(&dataset.path("lookups.jsonl"));
    let expected: Vec<ExpectedLookup> =
        read_lines(&shared_dir().join("bench/expected/lookup_resources.jsonl"));
    assert_eq!(lookups.len(), 50);
    for (lookup, expected) in lookups.iter().zip(&expected) {
        assert_eq!(lookup.subject, expected.subject);
        let request = LookupResourcesRequest {
            resource_type: lookup.resource_type.parse().unwrap(),
            permission: lookup.permission.parse().unwrap(),
            subject: lookup.subject.parse().unwrap(),
            cursor: None,
            limit: usize::MAX,
        };
        let page = evaluator.lookup_resources(&view(reader), &request).unwrap();
        assert!(page.complete);
        let mut found: Vec<String> = page
            .resource_ids
            .iter()
            .map(|id| format!("{}:{id}", lookup.resource_type))
            .collect();
        let mut wanted = expected.resources.clone();
        found.sort();
        wanted.sort();
        assert_eq!(found, wanted, "lookup for {}", lookup.subject);
    }
    println!("dataset: 50 lookups match");
    paged_lookup_matches_one_page(evaluator, reader, &lookups[0]);
}

/// With the decision cache, every check answers the same when it is computed, when it is
/// repeated on the same thread (per-thread front cache) and when another thread repeats
/// it (shared moka cache); hits and misses are counted exactly.
fn cached_checks_match(
    evaluator: Evaluator,
    reader: &InMemoryReader,
    checks: &[CheckRequest],
    expected: &[ExpectedCheck],
) {
    let pass = || {
        let wrong = checks
            .iter()
            .zip(expected)
            .filter(|(check, expected)| {
                evaluator.check(&view(reader), check).unwrap().allowed != expected.allowed
            })
            .count();
        assert_eq!(wrong, 0, "cached answers differ from the expected ones");
    };
    pass();
    pass();
    std::thread::scope(|scope| scope.spawn(pass).join().unwrap());
    let distinct: HashSet<&CheckRequest> = checks.iter().collect();
    let stats = evaluator.stats();
    assert_eq!(stats.cache_misses, distinct.len() as u64);
    assert_eq!(
        stats.cache_hits + stats.cache_misses,
        3 * checks.len() as u64
    );
    // Expensive sub-problems (group memberships) are shared through the cache too.
    assert!(stats.cache_entries >= distinct.len() as u64);
    assert!(
        stats.subproblem_cache_misses > 0,
        "sub-problems were offered to the cache"
    );
}

/// Following cursors 97 ids at a time gives the same ids as one page, and only the last
/// page says it is complete.
fn paged_lookup_matches_one_page(
    evaluator: &Evaluator,
    reader: &InMemoryReader,
    lookup: &LookupLine,
) {
    let mut request = LookupResourcesRequest {
        resource_type: lookup.resource_type.parse().unwrap(),
        permission: lookup.permission.parse().unwrap(),
        subject: lookup.subject.parse().unwrap(),
        cursor: None,
        limit: usize::MAX,
    };
    let all = evaluator
        .lookup_resources(&view(reader), &request)
        .unwrap()
        .resource_ids;
    request.limit = 97;
    let mut paged = Vec::new();
    loop {
        let page = evaluator.lookup_resources(&view(reader), &request).unwrap();
        assert!(page.resource_ids.len() <= 97);
        paged.extend(page.resource_ids);
        if page.complete {
            assert!(page.cursor.is_none());
            break;
        }
        request.cursor = Some(page.cursor.expect("an incomplete page has a cursor"));
    }
    assert_eq!(paged, all);
}

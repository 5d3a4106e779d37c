//! The conformance corpus (`shared/conformance/**/*.json`): check tests of SpiceDB and
//! OpenFGA converted to IPL v1. Every check of every case must give the expected answer,
//! alone and in a batch; the test prints how many cases and checks ran and fails loudly if
//! the corpus is missing.

use std::path::Path;

use inferadb_evaluator::{
    CheckRequest, Evaluator, InMemoryReader, LookupResourcesRequest, LookupSubjectsRequest,
};
use inferadb_protocols::Relationship;
use inferadb_protocols::SubjectRef;
use serde::Deserialize;

use crate::common::{compile, request, shared_dir, view};

#[derive(Deserialize)]
struct CorpusFile {
    cases: Vec<Case>,
}

#[derive(Deserialize)]
pub struct Case {
    pub name: String,
    pub schema: String,
    pub relationships: Vec<Relationship>,
    pub checks: Vec<Check>,
}

#[derive(Deserialize)]
pub struct Check {
    pub resource: String,
    pub permission: String,
    pub subject: String,
    pub expected: bool,
}

/// Every case of the corpus, with its file name.
pub fn load_cases() -> Vec<(String, Case)> {
    let root = shared_dir().join("conformance");
    let mut files = Vec::new();
    collect_json(&root, &mut files);
    files.sort();
    assert!(
        !files.is_empty(),
        "no corpus files under {}",
        root.display()
    );
    let mut cases = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let corpus: CorpusFile = serde_json::from_str(&text)
            .unwrap_or_else(|error| panic!("{}: {error}", file.display()));
        let stem = file.strip_prefix(&root).unwrap().display().to_string();
        cases.extend(corpus.cases.into_iter().map(|case| (stem.clone(), case)));
    }
    cases
}

fn collect_json(directory: &Path, files: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(directory).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            collect_json(&path, files);
        } else if path
            .extension()
            .is_some_and(|extension| extension == "json")
        {
            files.push(path);
        }
    }
}

#[test]
fn conformance_corpus_passes() {
    let cases = load_cases();
    let mut failures = Vec::new();
    let mut checks_run = 0;
    for (file, case) in &cases {
        let schema = compile(&case.schema);
        let evaluator = Evaluator::new(schema);
        let reader = inferadb_evaluator::InMemoryReader::from_relationships(&case.relationships);
        let requests: Vec<_> = case
            .checks
            .iter()
            .map(|check| {
                request(&format!(
                    "{}#{}@{}",
                    check.resource, check.permission, check.subject
                ))
            })
            .collect();
        let batch = evaluator.batch_check(&view(&reader), &requests);
        for ((check, request), batched) in case.checks.iter().zip(&requests).zip(batch) {
            checks_run += 1;
            let single = evaluator
                .check(&view(&reader), request)
                .map(|response| response.allowed);
            let batched = batched.map(|response| response.allowed);
            if single != Ok(check.expected) || batched != Ok(check.expected) {
                failures.push(format!(
                    "{file} / {}: {}#{}@{} expected {}, got {single:?} (batch {batched:?})",
                    case.name, check.resource, check.permission, check.subject, check.expected
                ));
            }
        }
    }
    println!(
        "conformance: {} cases, {checks_run} checks, {} failures",
        cases.len(),
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(checks_run, 559, "the corpus README promises 559 checks");
}

/// Every other operation agrees with the corpus too: for each check, lookup resources
/// returns the resource iff it is expected, lookup subjects lists (or covers by wildcard)
/// an object subject iff it is expected, and expand and explain give the expected answer.
#[test]
fn lookups_expand_and_explain_agree_with_the_corpus() {
    let mut compared = 0;
    for (file, case) in load_cases() {
        let evaluator = Evaluator::new(compile(&case.schema));
        let reader = InMemoryReader::from_relationships(&case.relationships);
        for check in &case.checks {
            let text = format!("{}#{}@{}", check.resource, check.permission, check.subject);
            let request = request(&text);
            let context = format!("{file} / {}: {text}", case.name);
            agree_on_one_check(&evaluator, &reader, &request, check.expected, &context);
            compared += 1;
        }
    }
    println!("conformance: lookups, expand and explain compared on {compared} checks");
}

fn agree_on_one_check(
    evaluator: &Evaluator,
    reader: &InMemoryReader,
    request: &CheckRequest,
    expected: bool,
    context: &str,
) {
    let view = view(reader);
    let explanation = evaluator.explain(&view, request).unwrap();
    assert_eq!(
        explanation.allowed, expected,
        "explain {context}\n{explanation}"
    );
    let tree = evaluator
        .expand(&view, &request.resource, &request.permission)
        .unwrap()
        .tree;
    assert_eq!(
        tree.contains(&request.subject),
        expected,
        "expand {context}\n{tree}"
    );
    let lookup = LookupResourcesRequest {
        resource_type: request.resource.object_type.clone(),
        permission: request.permission.clone(),
        subject: request.subject.clone(),
        cursor: None,
        limit: usize::MAX,
    };
    let page = evaluator.lookup_resources(&view, &lookup).unwrap();
    let found = page
        .resource_ids
        .iter()
        .any(|id| id == request.resource.object_id.as_str());
    assert_eq!(found, expected, "lookup resources {context}: {page:?}");
    if let SubjectRef::Object(subject) = &request.subject {
        let lookup = LookupSubjectsRequest {
            resource: request.resource.clone(),
            permission: request.permission.clone(),
            subject_type: subject.object_type.clone(),
            subject_relation: None,
        };
        let response = evaluator.lookup_subjects(&view, &lookup).unwrap();
        let id = subject.object_id.as_str();
        let listed = response.subject_ids.iter().any(|listed| listed == id);
        let excluded = response.excluded_ids.iter().any(|excluded| excluded == id);
        let answer = listed || (response.wildcard && !excluded);
        assert_eq!(answer, expected, "lookup subjects {context}: {response:?}");
    }
}

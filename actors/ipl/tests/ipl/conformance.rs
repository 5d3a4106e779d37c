//! Goal: every schema of the shared conformance corpus (converted SpiceDB and OpenFGA test
//! suites) and the benchmark schema compiles. Method: read each `schema` string from
//! `shared/conformance/**/*.json` (beside the repository) and compile it.

use std::path::{Path, PathBuf};

fn corpus_directory() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/conformance")
}

fn json_files(directory: &Path, files: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(directory).expect("corpus directory is readable") {
        let path = entry.expect("directory entry is readable").path();
        if path.is_dir() {
            json_files(&path, files);
        } else if path
            .extension()
            .is_some_and(|extension| extension == "json")
        {
            files.push(path);
        }
    }
}

#[test]
fn every_conformance_schema_compiles() {
    let mut files = Vec::new();
    json_files(&corpus_directory(), &mut files);
    files.sort();
    assert!(
        !files.is_empty(),
        "no conformance files under {:?}",
        corpus_directory()
    );
    let mut count = 0;
    let mut failures = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).expect("corpus file is readable");
        let document: serde_json::Value = serde_json::from_str(&text).expect("corpus is JSON");
        let cases = document["cases"].as_array().expect("corpus file has cases");
        for case in cases {
            let schema = case["schema"].as_str().expect("case has a schema string");
            count += 1;
            match inferadb_ipl::compile(schema) {
                Ok(compiled) => assert_canonical_text_round_trips(&compiled.schema),
                Err(diagnostics) => {
                    let name = &case["name"];
                    failures.push(format!("{} / {name}:\n{diagnostics}", file.display()));
                }
            }
        }
    }
    println!(
        "compiled {count} conformance schemas from {} files",
        files.len()
    );
    assert!(
        failures.is_empty(),
        "{} schemas failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(count >= 151, "expected at least 151 cases, found {count}");
}

/// The canonical text of a compiled schema compiles to the same schema and fingerprint.
fn assert_canonical_text_round_trips(schema: &inferadb_ipl::CompiledSchema) {
    let again = inferadb_ipl::compile(schema.canonical_text()).expect("canonical text compiles");
    assert_eq!(&again.schema, schema);
    assert_eq!(again.schema.fingerprint(), schema.fingerprint());
}

#[test]
fn benchmark_schema_compiles() {
    // The schema that shared/bench/gen.py writes, verbatim.
    let schema = "type user {}
type group { relation member: user | group#member }
type folder {
    relation parent: folder
    relation viewer: user | group#member
    permission view = viewer | parent->view
}
type document {
    relation parent: folder
    relation owner: user
    relation editor: user | group#member
    relation viewer: user | group#member
    relation blocked: user
    permission edit = owner | editor
    permission view = (edit | viewer | parent->view) - blocked
}
";
    let compiled = inferadb_ipl::compile(schema).expect("benchmark schema compiles");
    assert!(compiled.warnings.is_empty(), "{:?}", compiled.warnings);
    assert_eq!(compiled.schema.type_count(), 4);
}

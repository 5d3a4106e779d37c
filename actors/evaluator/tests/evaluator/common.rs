//! Helpers shared by the test modules.

use std::path::PathBuf;
use std::sync::Arc;

use inferadb_evaluator::{CheckRequest, Evaluator, InMemoryReader, ReadView};
use inferadb_ipl::CompiledSchema;
use inferadb_protocols::{Relationship, Revision};

/// Compiles IPL text or panics with every diagnostic.
pub fn compile(source: &str) -> Arc<CompiledSchema> {
    match inferadb_ipl::compile(source) {
        Ok(compiled) => Arc::new(compiled.schema),
        Err(diagnostics) => panic!("schema does not compile: {diagnostics:?}\n{source}"),
    }
}

/// A reader holding the relationships written as text.
pub fn reader(relationships: &[&str]) -> InMemoryReader {
    let parsed: Vec<Relationship> = relationships
        .iter()
        .map(|text| Relationship::parse(text).unwrap())
        .collect();
    InMemoryReader::from_relationships(&parsed)
}

/// A view at revision 1, time 0.
pub fn view(reader: &InMemoryReader) -> ReadView<'_, InMemoryReader> {
    ReadView {
        reader,
        vault_id: 1,
        revision: Revision(1),
        now_ms: 0,
    }
}

/// `resource#permission@subject` as a check request.
pub fn request(text: &str) -> CheckRequest {
    let (resource, rest) = text.split_once('#').unwrap();
    let (permission, subject) = rest.split_once('@').unwrap();
    CheckRequest {
        resource: resource.parse().unwrap(),
        permission: permission.parse().unwrap(),
        subject: subject.parse().unwrap(),
    }
}

/// Checks `resource#permission@subject`, panicking on errors.
pub fn check(evaluator: &Evaluator, reader: &InMemoryReader, text: &str) -> bool {
    evaluator
        .check(&view(reader), &request(text))
        .unwrap()
        .allowed
}

/// The `shared/` folder beside the repository (`../../../shared` from the crate).
pub fn shared_dir() -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared");
    assert!(
        path.is_dir(),
        "the shared folder is missing at {}: clone it beside the repository",
        path.display()
    );
    path
}

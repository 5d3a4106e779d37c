//! End-to-end tests of the `inferadb` binary: the storage demo writes a database that the
//! `verify` command then checks, and bad input fails with a clear message and exit code.

use std::process::Command;

fn inferadb() -> Command {
    Command::new(env!("CARGO_BIN_EXE_inferadb"))
}

#[test]
fn demo_writes_a_database_that_verify_accepts() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let path = directory.path().join("demo.db");
    let demo = inferadb()
        .args(["demo", "--relationships", "20000", "--path"])
        .arg(&path)
        .output()
        .expect("run demo");
    assert!(
        demo.status.success(),
        "demo failed: {}",
        String::from_utf8_lossy(&demo.stderr)
    );
    let verify = inferadb()
        .arg("verify")
        .arg(&path)
        .output()
        .expect("run verify");
    let printed = String::from_utf8_lossy(&verify.stdout);
    assert!(
        verify.status.success(),
        "verify failed: {}",
        String::from_utf8_lossy(&verify.stderr)
    );
    assert!(
        printed.contains("table relationships: 20000 entries"),
        "{printed}"
    );
}

#[test]
fn verify_rejects_a_file_that_is_not_a_database() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let path = directory.path().join("garbage.db");
    std::fs::write(&path, b"not a database at all").expect("write");
    let verify = inferadb()
        .arg("verify")
        .arg(&path)
        .output()
        .expect("run verify");
    assert!(!verify.status.success());
    let message = String::from_utf8_lossy(&verify.stderr);
    assert!(
        message.contains("not an InferaDB storage file"),
        "{message}"
    );
    assert_eq!(
        std::fs::read(&path).expect("read"),
        b"not a database at all",
        "left untouched"
    );
}

const SCHEMA: &str = "type user {}\ntype group {\n relation member: user | group#member\n}\n\
type doc {\n relation viewer: user | group#member\n relation blocked: user\n \
permission view = viewer - blocked\n}\n";

#[test]
fn schema_check_accepts_a_schema_and_names_every_error_of_a_bad_one() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let good = directory.path().join("good.ipl");
    std::fs::write(&good, SCHEMA).expect("write");
    let output = inferadb()
        .args(["schema", "check"])
        .arg(&good)
        .output()
        .expect("run");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains("ok, 3 types"));
    let bad = directory.path().join("bad.ipl");
    std::fs::write(
        &bad,
        "type doc {\n relation owner: persn\n permission view = editr\n}\n",
    )
    .expect("write");
    let output = inferadb()
        .args(["schema", "check"])
        .arg(&bad)
        .output()
        .expect("run");
    let message = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        message.contains("2:18") && message.contains("persn"),
        "{message}"
    );
    assert!(
        message.contains("3:20") && message.contains("editr"),
        "{message}"
    );
}

#[test]
fn schema_format_prints_the_canonical_form() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let path = directory.path().join("schema.ipl");
    std::fs::write(
        &path,
        "type user{}  type doc{relation viewer:user permission view=viewer}",
    )
    .expect("write");
    let output = inferadb()
        .args(["schema", "format"])
        .arg(&path)
        .output()
        .expect("run");
    assert!(output.status.success());
    let formatted = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        formatted,
        "type user {}\n\ntype doc {\n    relation viewer: user\n    permission view = viewer\n}\n"
    );
}

#[test]
fn check_evaluates_against_a_relationships_file_in_json_or_text() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let schema = directory.path().join("schema.ipl");
    std::fs::write(&schema, SCHEMA).expect("write");
    let relationships = directory.path().join("relationships.jsonl");
    std::fs::write(
        &relationships,
        "{\"resource\": \"doc:1\", \"relation\": \"viewer\", \"subject\": \"group:eng#member\"}\n\
         group:eng#member@user:ann\ngroup:eng#member@user:bob\ndoc:1#blocked@user:bob\n",
    )
    .expect("write");
    let output = inferadb()
        .args(["check", "--explain", "--schema"])
        .arg(&schema)
        .arg("--relationships")
        .arg(&relationships)
        .args(["doc:1#view@user:ann", "doc:1#view@user:bob"])
        .output()
        .expect("run");
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(printed.contains("allowed doc:1#view@user:ann"), "{printed}");
    assert!(printed.contains("denied doc:1#view@user:bob"), "{printed}");
    assert!(
        printed.contains("relationship group:eng#member@user:ann"),
        "{printed}"
    );
    let output = inferadb()
        .args(["check", "--schema"])
        .arg(&schema)
        .arg("--relationships")
        .arg(&relationships)
        .arg("doc:1#view")
        .output()
        .expect("run");
    let message = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(message.contains("resource#permission@subject"), "{message}");
}

#[test]
fn a_bad_configuration_is_refused_at_startup_naming_the_field() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let config = directory.path().join("node.toml");
    std::fs::write(&config, "[http]\naddr = \"not-an-address\"\n").expect("config written");
    let started = inferadb()
        .args(["start", "--config"])
        .arg(&config)
        .output()
        .expect("run start");
    assert!(!started.status.success());
    let error = String::from_utf8_lossy(&started.stderr);
    assert!(error.contains("http.addr"), "{error}");
    std::fs::write(&config, "[evaluator]\nqueue_max = 0\n").expect("config written");
    let started = inferadb()
        .args(["start", "--config"])
        .arg(&config)
        .output()
        .expect("run start");
    let error = String::from_utf8_lossy(&started.stderr);
    assert!(error.contains("evaluator.queue_max"), "{error}");
    let from_env = inferadb()
        .args(["start", "--data-dir"])
        .arg(directory.path())
        .env("INFERADB__SUPERVISION__WITHIN_MS", "0")
        .output()
        .expect("run start");
    let error = String::from_utf8_lossy(&from_env.stderr);
    assert!(error.contains("supervision.within_ms"), "{error}");
    let missing = inferadb()
        .args(["start", "--config", "/nonexistent/node.toml"])
        .output()
        .expect("run start");
    assert!(String::from_utf8_lossy(&missing.stderr).contains("does not exist"));
}

#[test]
fn version_prints_the_package_version() {
    let version = inferadb().arg("version").output().expect("run version");
    assert!(version.status.success());
    assert_eq!(
        String::from_utf8_lossy(&version.stdout).trim(),
        format!("inferadb {}", env!("CARGO_PKG_VERSION"))
    );
}

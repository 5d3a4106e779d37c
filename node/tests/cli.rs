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

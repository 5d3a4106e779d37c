//! The README's quick start: `cargo run --release -- dev` must name exactly one binary,
//! `inferadb`. A virtual workspace runs the binaries of its default members, and once the
//! simulator added a second one the command stopped with "could not determine which
//! binary to run"; the workspace's `default-members` is what keeps it working.

use std::process::Command;

use serde_json::Value;

#[test]
fn cargo_run_in_the_workspace_runs_the_inferadb_binary() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let output = Command::new(cargo)
        .args([
            "metadata",
            "--no-deps",
            "--format-version",
            "1",
            "--offline",
        ])
        // From the workspace root, as the README runs it (in a member, cargo picks that one).
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .output()
        .expect("cargo metadata runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let metadata: Value = serde_json::from_slice(&output.stdout).expect("metadata is JSON");
    let defaults = metadata["workspace_default_members"]
        .as_array()
        .expect("cargo reports the default members");
    let binaries: Vec<&str> = metadata["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .filter(|package| defaults.contains(&package["id"]))
        .flat_map(|package| package["targets"].as_array().expect("targets"))
        .filter(|target| {
            target["kind"]
                .as_array()
                .is_some_and(|kinds| kinds.contains(&Value::from("bin")))
        })
        .map(|target| target["name"].as_str().expect("a name"))
        .collect();
    assert_eq!(binaries, ["inferadb"]);
}

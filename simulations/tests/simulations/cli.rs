//! The `inferadb-sim` binary: exit codes and what it prints.

use std::process::Command;

fn sim(args: &[&str]) -> (Option<i32>, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_inferadb-sim"))
        .args(args)
        .output()
        .expect("the binary runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    (output.status.code(), stdout)
}

#[test]
fn list_bugs_prints_the_canaries() {
    let (code, out) = sim(&["list-bugs"]);
    assert_eq!(code, Some(0));
    assert!(out.contains("ack_before_sync") && out.contains("answer_on_append"));
    assert_eq!(out.lines().count(), 5);
}

#[test]
fn a_clean_run_checks_determinism_and_exits_zero() {
    let (code, out) = sim(&[
        "run",
        "--seed",
        "1",
        "--ticks",
        "3000",
        "--check-determinism",
    ]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("determinism: ok"), "{out}");
    assert!(
        out.contains("elections:") && out.contains("events/s"),
        "{out}"
    );
}

#[test]
fn an_injected_bug_exits_one_with_the_invariant_events_and_repro() {
    let (code, out) = sim(&["run", "--seed", "2", "--inject-bug", "ack_before_sync"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("\nVIOLATION "), "{out}");
    assert!(out.contains("last events:"), "{out}");
    assert!(
        out.contains("repro: inferadb-sim run --seed 2 --nodes 3 --ticks 5000"),
        "{out}"
    );
}

//! The `inferadb-sim` binary: exit codes and what it prints.

use std::process::Command;

use inferadb_simulations::config::BUGS;

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
    let listed: Vec<&str> = out.lines().collect();
    assert_eq!(listed, BUGS);
}

#[test]
fn a_clean_run_checks_determinism_writes_a_report_and_exits_zero() {
    let report = std::env::temp_dir().join(format!("inferadb-sim-{}.json", std::process::id()));
    let path = report.to_string_lossy().into_owned();
    let (code, out) = sim(&[
        "run",
        "--seed",
        "1",
        "--duration",
        "3s",
        "--check-determinism",
        "--report",
        &path,
    ]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("determinism: ok"), "{out}");
    for field in [
        "elections:",
        "faults:",
        "commits:",
        "invariants checked:",
        "events/s",
    ] {
        assert!(out.contains(field), "{field} missing from\n{out}");
    }
    let json = std::fs::read_to_string(&report).expect("the report was written");
    let _ = std::fs::remove_file(&report);
    assert!(json.contains("\"ticks\": 3000"), "{json}");
    assert!(json.contains("\"violation\": null"), "{json}");
}

#[test]
fn an_injected_bug_exits_one_with_the_invariant_events_and_repro() {
    let (code, out) = sim(&["run", "--seed", "3", "--inject-bug", "ack_before_sync"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("\nVIOLATION "), "{out}");
    assert!(out.contains("last events per node:\n  n1:"), "{out}");
    assert!(
        out.contains("repro: inferadb-sim run --seed 3 --nodes 3 --ticks 5000"),
        "{out}"
    );
}

#[test]
fn replay_prints_the_whole_trace() {
    let (code, out) = sim(&["replay", "--seed", "3", "--ticks", "600", "--trace"]);
    assert_eq!(code, Some(0), "{out}");
    let first = out.lines().next().unwrap_or_default();
    assert!(
        first.contains("n1 restarted at applied 2 (vault revision 1"),
        "{out}"
    );
    assert!(
        out.contains("MsgRequestVote") || out.contains("MsgRequestPreVote"),
        "{out}"
    );
}

#[test]
fn swarm_summarises_clean_and_failed_seeds_with_repro_lines() {
    let (code, out) = sim(&["swarm", "--seeds", "1..3", "--ticks", "2000"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("swarm: 3 of 3 seeds clean, 0 failed"), "{out}");
    let (code, out) = sim(&[
        "swarm",
        "--seeds",
        "1..2",
        "--inject-bug",
        "local_reads_without_read_index",
    ]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("linearizability: inferadb-sim run --seed 1"),
        "{out}"
    );
}

#[test]
fn bad_arguments_exit_two_naming_the_problem() {
    let (code, _) = sim(&["run", "--seed", "1", "--faults", "meteor"]);
    assert_eq!(code, Some(2));
    let (code, _) = sim(&["run", "--seed", "1", "--duration", "3 days"]);
    assert_eq!(code, Some(2));
    let (code, _) = sim(&["swarm", "--seeds", "9..1"]);
    assert_eq!(code, Some(2));
}

//! The simulator's smoke set: fixed seeds under every fault, determinism, and canaries
//! that the checkers must catch.

use inferadb_simulations::config::{Faults, SimConfig};
use inferadb_simulations::sim::{run, Summary};

fn simulate(config: SimConfig) -> Summary {
    run(config).expect("the configuration is valid")
}

fn with_bug(seed: u64, bug: &str) -> SimConfig {
    SimConfig {
        bug: Some(bug.to_string()),
        ..SimConfig::new(seed)
    }
}

#[test]
fn seeds_one_to_eight_keep_every_invariant_under_every_fault() {
    for seed in 1..=8 {
        let summary = simulate(SimConfig::new(seed));
        assert!(
            summary.violation.is_none(),
            "{:?}\n{:#?}\nrepro: {}",
            summary.violation,
            summary.recent,
            summary.config.repro()
        );
        assert!(
            summary.commits > 50,
            "seed {seed}: only {} commits",
            summary.commits
        );
        assert!(
            summary.faults.values().sum::<u64>() > 0,
            "seed {seed} injected no fault"
        );
    }
}

#[test]
fn five_and_seven_node_clusters_keep_every_invariant() {
    for nodes in [5, 7] {
        let summary = simulate(SimConfig {
            nodes,
            ..SimConfig::new(3)
        });
        assert!(
            summary.violation.is_none(),
            "{nodes} nodes: {:?}",
            summary.violation
        );
    }
}

#[test]
fn a_fault_free_run_elects_once_and_commits() {
    let summary = simulate(SimConfig {
        faults: Faults::default(),
        ..SimConfig::new(11)
    });
    assert!(summary.violation.is_none(), "{:?}", summary.violation);
    assert_eq!(summary.elections, 1);
    assert!(summary.faults.is_empty());
    assert!(summary.commits > 100);
}

#[test]
fn the_same_seed_gives_the_same_trace_hash() {
    let first = simulate(SimConfig::new(5));
    let second = simulate(SimConfig::new(5));
    assert_eq!(first.trace_hash, second.trace_hash);
    assert_eq!(first.events, second.events);
    let other = simulate(SimConfig::new(6));
    assert_ne!(first.trace_hash, other.trace_hash);
}

/// The first seed in 1..=8 whose run with `bug` breaks an invariant, and which.
fn first_catch(bug: &str) -> Option<(u64, &'static str)> {
    (1..=8).find_map(|seed| {
        let summary = simulate(with_bug(seed, bug));
        summary.violation.map(|v| (seed, v.invariant))
    })
}

#[test]
fn ack_before_sync_is_caught_within_eight_seeds() {
    let caught = first_catch("ack_before_sync");
    assert!(caught.is_some(), "ack_before_sync went unnoticed");
}

#[test]
fn apply_unpersisted_entries_is_caught_within_eight_seeds() {
    let caught = first_catch("apply_unpersisted_entries");
    assert!(caught.is_some(), "apply_unpersisted_entries went unnoticed");
}

#[test]
fn answer_on_append_is_caught_within_eight_seeds() {
    let caught = first_catch("answer_on_append");
    assert!(caught.is_some(), "answer_on_append went unnoticed");
}

#[test]
fn forget_hard_state_on_restart_is_refused_by_the_durable_log() {
    let summary = simulate(with_bug(1, "forget_hard_state_on_restart"));
    let invariant = summary.violation.map(|v| v.invariant);
    assert_eq!(invariant, Some("recovery"));
}

#[test]
fn unknown_bugs_faults_and_sizes_are_refused() {
    assert!(run(with_bug(1, "no_such_bug")).is_err());
    assert!(Faults::parse("partition,meteor").is_err());
    assert_eq!(Faults::parse("all"), Ok(Faults::all()));
    assert!(run(SimConfig {
        nodes: 8,
        ..SimConfig::new(1)
    })
    .is_err());
}

#[test]
fn the_repro_line_names_every_parameter() {
    let line = with_bug(4, "ack_before_sync").repro();
    assert_eq!(
        line,
        "inferadb-sim run --seed 4 --nodes 3 --ticks 5000 \
         --faults partition,drop,dup,reorder,crash --inject-bug ack_before_sync"
    );
}

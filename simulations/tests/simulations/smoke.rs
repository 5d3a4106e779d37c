//! The simulator's smoke set: fixed seeds under every fault, determinism, every canary
//! caught within eight seeds, and the named regression seeds. It must stay well under a
//! minute in a debug build; longer runs are documented commands (docs/simulation.md).

use inferadb_simulations::config::{Faults, SimConfig, WorkloadConfig, BUGS};
use inferadb_simulations::regressions::REGRESSIONS;
use inferadb_simulations::shrink::shrink;
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

fn assert_clean(summary: &Summary) {
    assert!(
        summary.violation.is_none(),
        "{:?}\n{:#?}\nrepro: {}",
        summary.violation,
        summary.recent,
        summary.config.repro()
    );
}

#[test]
fn seeds_one_to_eight_keep_every_invariant_under_every_fault() {
    for seed in 1..=8 {
        let summary = simulate(SimConfig::new(seed));
        assert_clean(&summary);
        assert!(
            summary.commits > 40,
            "seed {seed}: only {} commits",
            summary.commits
        );
        assert!(
            summary.tally.reads_ok > 30,
            "seed {seed}: only {} reads answered",
            summary.tally.reads_ok
        );
        assert!(
            summary.faults.values().sum::<u64>() > 0,
            "seed {seed} injected no fault"
        );
        assert_eq!(summary.inconclusive, 0, "seed {seed}: a search gave up");
    }
}

#[test]
fn five_and_seven_node_clusters_keep_every_invariant() {
    for nodes in [5, 7] {
        let summary = simulate(SimConfig {
            nodes,
            ..SimConfig::new(3)
        });
        assert_clean(&summary);
    }
}

#[test]
fn a_fault_free_run_elects_once_commits_and_reads() {
    let summary = simulate(SimConfig {
        faults: Faults::default(),
        ..SimConfig::new(11)
    });
    assert_clean(&summary);
    assert_eq!(summary.elections, 1);
    assert!(summary.faults.is_empty());
    assert!(summary.commits > 100);
    assert!(summary.tally.reads_ok > 100);
}

#[test]
fn compaction_makes_lagging_followers_install_snapshots() {
    // Crashes only, and a compaction every 16 entries: a node that was down long enough
    // finds the entries it misses compacted away and must take a snapshot.
    let mut installed = 0;
    for seed in 1..=2 {
        let summary = simulate(SimConfig {
            faults: Faults::parse("crash,partition").expect("known faults"),
            compact_after: 16,
            ..SimConfig::new(seed)
        });
        assert_clean(&summary);
        installed += summary.snapshots_installed;
    }
    assert!(installed > 0, "no follower ever installed a snapshot");
}

#[test]
fn each_fault_kind_alone_keeps_every_invariant() {
    for kind in ["clock", "pause", "disk"] {
        for seed in 1..=2 {
            let summary = simulate(SimConfig {
                faults: Faults::parse(kind).expect("known fault"),
                ..SimConfig::new(seed)
            });
            assert_clean(&summary);
            assert!(summary.faults.get(kind).is_some_and(|n| *n > 0), "{kind}");
        }
    }
}

/// A node that meets a read error reading its log at restart refuses to start (it must not
/// serve what it could not read), is started again later, and the run keeps every invariant.
#[test]
fn a_read_error_at_restart_is_refused_and_retried() {
    let summary = simulate(SimConfig {
        faults: Faults::parse("disk,crash").expect("known faults"),
        ..SimConfig::new(11)
    });
    assert_clean(&summary);
    assert!(
        summary.faults.get("read_error").is_some_and(|n| *n > 0),
        "{:?}",
        summary.faults
    );
}

#[test]
fn nodes_are_replaced_through_membership_changes() {
    // Without faults the operator's plan runs to completion: a fresh node joins as a
    // learner (by snapshot), is promoted, and a voter is removed and retired.
    let summary = simulate(SimConfig {
        faults: Faults::default(),
        ..SimConfig::new(2)
    });
    assert_clean(&summary);
    assert!(
        summary.membership_changes >= 3,
        "{}",
        summary.membership_changes
    );
    assert!(!summary.retired.is_empty());
    assert!(summary.snapshots_installed > 0);
    let without = simulate(SimConfig {
        faults: Faults::default(),
        workload: WorkloadConfig::parse("members=0").expect("valid"),
        ..SimConfig::new(2)
    });
    assert_eq!(without.membership_changes, 0);
}

#[test]
fn a_write_heavy_workload_on_one_key_stays_linearizable() {
    let summary = simulate(SimConfig {
        workload: WorkloadConfig::parse("clients=5,keys=1,writes=70").expect("valid"),
        ..SimConfig::new(4)
    });
    assert_clean(&summary);
    assert_eq!(summary.inconclusive, 0);
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
fn every_canary_is_caught_within_eight_seeds_by_the_checker_meant_for_it() {
    let mut caught = std::collections::BTreeMap::new();
    for bug in BUGS {
        let first = first_catch(bug);
        assert!(first.is_some(), "{bug} went unnoticed in seeds 1..=8");
        caught.insert(bug, first.map(|(_, invariant)| invariant));
    }
    let reads = caught
        .get("local_reads_without_read_index")
        .copied()
        .flatten();
    assert_eq!(reads, Some("linearizability"));
    assert_eq!(
        caught.get("vote_twice").copied().flatten(),
        Some("election_safety")
    );
    // The durable log refuses a hard state behind its own entries.
    let forgotten = caught
        .get("forget_hard_state_on_restart")
        .copied()
        .flatten();
    assert_eq!(forgotten, Some("recovery"));
}

#[test]
fn token_reads_that_skip_the_wait_break_read_your_writes() {
    // A checker self-test: no real-code canary can break the token wait (it lives in the
    // gateway, outside what the simulator runs), so the simulator removes it itself.
    let caught = (1..=8).find_map(|seed| {
        let summary = simulate(SimConfig {
            token_reads_skip_wait: true,
            ..SimConfig::new(seed)
        });
        summary.violation.map(|v| v.invariant)
    });
    assert_eq!(caught, Some("read_your_writes"));
}

#[test]
fn the_named_regression_seeds_do_what_they_say() {
    for regression in REGRESSIONS {
        let config = regression.config().expect("a valid regression");
        let summary = simulate(config);
        let seen = summary.violation.as_ref().map(|v| v.invariant);
        assert_eq!(
            seen, regression.expect,
            "{}: {}\n{:?}",
            regression.name, regression.story, summary.violation
        );
    }
}

#[test]
fn a_failure_shrinks_to_fewer_faults_and_a_shorter_run_that_still_fails() {
    let config = SimConfig {
        ticks: 2500,
        ..with_bug(1, "local_reads_without_read_index")
    };
    let shrunk = shrink(config)
        .expect("a valid configuration")
        .expect("the canary breaks an invariant");
    assert_eq!(shrunk.invariant, "linearizability");
    assert!(
        shrunk.config.faults.names().len() < 8,
        "{:?}",
        shrunk.config
    );
    assert!(shrunk.config.ticks < 2500, "{:?}", shrunk.config);
    let again = simulate(shrunk.config.clone());
    assert_eq!(
        again.violation.map(|v| v.invariant),
        Some("linearizability")
    );
    let clean = SimConfig {
        ticks: 1500,
        ..SimConfig::new(1)
    };
    assert!(shrink(clean).expect("valid").is_none());
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
        "inferadb-sim run --seed 4 --nodes 3 --ticks 5000 --faults all \
         --inject-bug ack_before_sync"
    );
    let custom = SimConfig {
        faults: Faults::parse("crash,disk").expect("known faults"),
        workload: WorkloadConfig::parse("keys=1").expect("valid"),
        compact_after: 8,
        ..SimConfig::new(2)
    };
    assert_eq!(
        custom.repro(),
        "inferadb-sim run --seed 2 --nodes 3 --ticks 5000 --faults crash,disk \
         --workload clients=3,keys=1,writes=50,tokens=40,members=1 --compact-after 8"
    );
}

//! The run's summary for people (text) and for programs (JSON).

use std::fmt::Write;

use inferadb_simulations::sim::Summary;
use serde_json::json;

/// The human summary: what ran, what happened, how fast.
pub fn human(summary: &Summary, wall: f64) -> String {
    let config = &summary.config;
    let tally = summary.tally;
    let simulated = summary.simulated_ms as f64 / 1000.0;
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = writeln!(
        out,
        "seed {} nodes {} ticks {} faults {} workload {} bug {}",
        config.seed,
        config.nodes,
        config.ticks,
        config.faults.flag(),
        config.workload.flag(),
        config.bug.as_deref().unwrap_or("none")
    );
    let _ = writeln!(out, "events:             {}", summary.events);
    let _ = writeln!(out, "faults:             {}", faults(summary));
    let _ = writeln!(out, "elections:          {}", summary.elections);
    let _ = writeln!(
        out,
        "commits:            {} of {} writes acknowledged",
        tally.writes_ok, tally.writes
    );
    let _ = writeln!(
        out,
        "reads:              {} of {} answered ({} failed, {} unknown operations in all)",
        tally.reads_ok, tally.reads, tally.failed, tally.unknown
    );
    let _ = writeln!(
        out,
        "snapshots:          {} installed",
        summary.snapshots_installed
    );
    let _ = writeln!(
        out,
        "membership:         {} changes proposed, nodes retired {:?}",
        summary.membership_changes, summary.retired
    );
    if !summary.stopped.is_empty() {
        let ids: Vec<u64> = summary.stopped.keys().copied().collect();
        let _ = writeln!(out, "stopped (corrupt):  nodes {ids:?}");
    }
    let _ = writeln!(
        out,
        "checks run:         election safety, log matching, leader completeness, state-machine \
         safety, durability, read-your-writes, linearizability, liveness"
    );
    let _ = writeln!(
        out,
        "invariants checked: {} ({} linearizability searches inconclusive)",
        summary.checks, summary.inconclusive
    );
    let _ = writeln!(
        out,
        "simulated:          {simulated:.1} s in {wall:.3} s wall ({:.0}x, {:.0} events/s)",
        simulated / wall,
        summary.events as f64 / wall
    );
    let _ = writeln!(out, "trace hash:         {}", summary.trace_hash);
    out
}

fn faults(summary: &Summary) -> String {
    if summary.faults.is_empty() {
        return "none".into();
    }
    let parts: Vec<String> = summary
        .faults
        .iter()
        .map(|(kind, count)| format!("{kind} {count}"))
        .collect();
    parts.join(", ")
}

/// The violation's report: the invariant, the last events per node and overall, and the
/// command that reproduces it.
pub fn violation(summary: &Summary) -> String {
    let mut out = String::new();
    let Some(violation) = &summary.violation else {
        return out;
    };
    let _ = writeln!(
        out,
        "\nVIOLATION {}: {}",
        violation.invariant, violation.detail
    );
    let _ = writeln!(out, "last events per node:");
    for (id, records) in &summary.recent_by_node {
        let _ = writeln!(out, "  n{id}:");
        for record in records {
            let _ = writeln!(out, "    {record}");
        }
    }
    let _ = writeln!(out, "last events:");
    for record in &summary.recent {
        let _ = writeln!(out, "  {record}");
    }
    let _ = writeln!(out, "repro: {}", summary.config.repro());
    out
}

/// The summary as JSON.
pub fn json(summary: &Summary, wall: f64) -> String {
    let config = &summary.config;
    let tally = summary.tally;
    let value = json!({
        "seed": config.seed,
        "nodes": config.nodes,
        "ticks": config.ticks,
        "faults_enabled": config.faults.names(),
        "workload": config.workload.flag(),
        "bug": config.bug,
        "events": summary.events,
        "faults": summary.faults,
        "elections": summary.elections,
        "writes": tally.writes,
        "writes_acknowledged": tally.writes_ok,
        "reads": tally.reads,
        "reads_answered": tally.reads_ok,
        "failed": tally.failed,
        "unknown": tally.unknown,
        "snapshots_installed": summary.snapshots_installed,
        "stopped_nodes": summary.stopped,
        "membership_changes": summary.membership_changes,
        "retired_nodes": summary.retired,
        "invariants_checked": summary.checks,
        "linearizability_inconclusive": summary.inconclusive,
        "simulated_ms": summary.simulated_ms,
        "wall_seconds": wall,
        "events_per_second": summary.events as f64 / wall,
        "trace_hash": summary.trace_hash,
        "violation": summary.violation.as_ref().map(|v| json!({
            "invariant": v.invariant,
            "detail": v.detail,
            "last_events_per_node": summary.recent_by_node,
            "last_events": summary.recent,
            "repro": config.repro(),
        })),
    });
    let mut text = serde_json::to_string_pretty(&value).unwrap_or_default();
    text.push('\n');
    text
}

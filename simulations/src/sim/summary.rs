//! What a run reports: counts, the verdict, and the context of a violation.

use std::collections::BTreeMap;

use super::Simulation;
use crate::checker::Violation;
use crate::config::SimConfig;
use crate::scheduler::Millis;
use crate::workload::Tally;

/// Records kept per node in a violation report.
const NODE_EVENTS: usize = 8;
/// Records kept in a violation report overall.
const RECENT_EVENTS: usize = 40;

/// What a run did.
#[derive(Debug, Clone)]
pub struct Summary {
    /// The run's parameters.
    pub config: SimConfig,
    /// Trace records (events handled, messages delivered, operations).
    pub events: u64,
    /// Faults injected, by kind.
    pub faults: BTreeMap<&'static str, u64>,
    /// Terms in which a leader was elected.
    pub elections: usize,
    /// Indices at which a write was acknowledged to a client.
    pub commits: usize,
    /// The clients' operations, counted.
    pub tally: Tally,
    /// Snapshots delivered to followers (log compaction made them necessary).
    pub snapshots_installed: u64,
    /// Nodes that stopped on detected disk corruption, with why.
    pub stopped: BTreeMap<u64, String>,
    /// Membership changes proposed.
    pub membership_changes: u64,
    /// Nodes removed from the group by membership changes.
    pub retired: Vec<u64>,
    /// Individual invariant checks performed.
    pub checks: u64,
    /// Keys whose linearizability search ran out of budget (not a violation).
    pub inconclusive: u64,
    /// Simulated milliseconds run.
    pub simulated_ms: Millis,
    /// The trace's hash: the same run has the same hash.
    pub trace_hash: String,
    /// The first broken invariant, if any.
    pub violation: Option<Violation>,
    /// The last trace records.
    pub recent: Vec<String>,
    /// The last records that mention each node.
    pub recent_by_node: BTreeMap<u64, Vec<String>>,
    /// Every record, when the configuration asked for the full trace.
    pub trace: Option<Vec<String>>,
}

impl Simulation {
    pub(super) fn summary(&self) -> Summary {
        let trace = self.sched.trace();
        let all: Vec<String> = trace.recent().cloned().collect();
        let recent = all[all.len().saturating_sub(RECENT_EVENTS)..].to_vec();
        let recent_by_node = self
            .nodes
            .keys()
            .map(|&id| (id, mentioning(&all, id)))
            .collect();
        Summary {
            config: self.config.clone(),
            events: trace.events(),
            faults: self.faults.clone(),
            elections: self.checker.elections(),
            commits: self.checker.acked().len(),
            tally: self.workload.tally(),
            snapshots_installed: self.snapshots_installed,
            stopped: self.stopped.clone(),
            membership_changes: self.membership_changes,
            retired: self.retired.iter().copied().collect(),
            checks: self.checker.checks,
            inconclusive: self.checker.inconclusive,
            simulated_ms: self.sched.now(),
            trace_hash: trace.hash(),
            violation: self.violation.clone(),
            recent,
            recent_by_node,
            trace: trace.full().map(<[String]>::to_vec),
        }
    }
}

/// The last [`NODE_EVENTS`] records naming node `id` (as `n<id>`).
fn mentioning(records: &[String], id: u64) -> Vec<String> {
    let name = format!("n{id}");
    let mut found: Vec<String> = records
        .iter()
        .rev()
        .filter(|r| {
            r.split(|c: char| !c.is_ascii_alphanumeric())
                .any(|w| w == name)
        })
        .take(NODE_EVENTS)
        .cloned()
        .collect();
    found.reverse();
    found
}

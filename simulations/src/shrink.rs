//! Shrinking a failing run: simpler configurations that still break the same invariant, so
//! a failure is read in the smallest trace that shows it. Greedy, one step at a time: drop
//! each fault kind, then membership changes, clients and keys, then halve the run's length;
//! each candidate is a full run, kept if it still breaks the invariant.

use crate::config::{Faults, SimConfig, FAULTS};
use crate::sim::run;

/// The shortest run the shrinker tries, in simulated ms.
const TICKS_MIN: u64 = 600;

/// What the shrinker found.
#[derive(Debug, Clone)]
pub struct Shrunk {
    /// The broken invariant (the same in every kept step).
    pub invariant: &'static str,
    /// The smallest configuration found that still breaks it.
    pub config: SimConfig,
    /// Runs tried.
    pub runs: u64,
}

/// Shrinks `config`, which must break an invariant; `Ok(None)` if it does not.
pub fn shrink(config: SimConfig) -> Result<Option<Shrunk>, String> {
    let Some(violation) = run(config.clone())?.violation else {
        return Ok(None);
    };
    let mut shrunk = Shrunk {
        invariant: violation.invariant,
        config,
        runs: 1,
    };
    for kind in FAULTS {
        if shrunk.config.faults.has(kind) {
            let mut candidate = shrunk.config.clone();
            candidate.faults = without(candidate.faults, kind);
            try_step(&mut shrunk, candidate)?;
        }
    }
    shrink_workload(&mut shrunk)?;
    while shrunk.config.ticks / 2 >= TICKS_MIN {
        let mut candidate = shrunk.config.clone();
        candidate.ticks /= 2;
        if !try_step(&mut shrunk, candidate)? {
            break;
        }
    }
    Ok(Some(shrunk))
}

/// Fewer moving parts in the workload: no membership changes, one client, one key.
fn shrink_workload(shrunk: &mut Shrunk) -> Result<(), String> {
    let mut candidate = shrunk.config.clone();
    candidate.workload.membership = false;
    try_step(shrunk, candidate)?;
    while shrunk.config.workload.clients > 1 {
        let mut candidate = shrunk.config.clone();
        candidate.workload.clients -= 1;
        if !try_step(shrunk, candidate)? {
            break;
        }
    }
    let mut candidate = shrunk.config.clone();
    candidate.workload.keys = 1;
    try_step(shrunk, candidate)?;
    Ok(())
}

/// Runs `candidate`; keeps it if it breaks the same invariant. Returns whether it did.
fn try_step(shrunk: &mut Shrunk, candidate: SimConfig) -> Result<bool, String> {
    shrunk.runs += 1;
    let same = run(candidate.clone())?
        .violation
        .is_some_and(|v| v.invariant == shrunk.invariant);
    if same {
        shrunk.config = candidate;
    }
    Ok(same)
}

/// `faults` without the kind `name`.
fn without(faults: Faults, name: &str) -> Faults {
    let kept: Vec<&str> = faults.names().into_iter().filter(|n| *n != name).collect();
    Faults::parse(&kept.join(",")).unwrap_or_default()
}

//! What a run simulates: seed, cluster size, length, faults, workload and injected bugs.

use inferadb_raft::core::Canaries;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// The raft crate's canaries, by name.
pub const BUGS: [&str; 6] = [
    "ack_before_sync",
    "apply_unpersisted_entries",
    "forget_hard_state_on_restart",
    "local_reads_without_read_index",
    "answer_on_append",
    "vote_twice",
];

/// The fault kinds, by name.
pub const FAULTS: [&str; 8] = [
    "partition",
    "drop",
    "dup",
    "reorder",
    "crash",
    "clock",
    "pause",
    "disk",
];

/// Which faults a run injects (a set of [`FAULTS`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Faults {
    bits: u16,
}

impl Faults {
    /// Every fault.
    pub fn all() -> Self {
        Faults {
            bits: (1 << FAULTS.len()) - 1,
        }
    }

    /// Parses a comma-separated list of [`FAULTS`] names (`all` and `none` too).
    pub fn parse(list: &str) -> Result<Self, String> {
        let mut faults = Faults::default();
        for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            match name {
                "all" => faults = Faults::all(),
                "none" => faults = Faults::default(),
                other => match FAULTS.iter().position(|f| *f == other) {
                    Some(bit) => faults.bits |= 1 << bit,
                    None => return Err(format!("unknown fault {other:?}; known: {FAULTS:?}")),
                },
            }
        }
        Ok(faults)
    }

    /// Whether the fault called `name` is on.
    pub fn has(&self, name: &str) -> bool {
        FAULTS
            .iter()
            .position(|f| *f == name)
            .is_some_and(|bit| self.bits & (1 << bit) != 0)
    }

    /// The enabled kinds' names.
    pub fn names(&self) -> Vec<&'static str> {
        FAULTS
            .iter()
            .enumerate()
            .filter(|(bit, _)| self.bits & (1 << bit) != 0)
            .map(|(_, n)| *n)
            .collect()
    }

    /// The list as `--faults` takes it.
    pub fn flag(&self) -> String {
        let names = self.names();
        if names.is_empty() {
            "none".into()
        } else if *self == Faults::all() {
            "all".into()
        } else {
            names.join(",")
        }
    }

    /// A random non-empty mix drawn from `seed` (the swarm's per-seed fault mix): each kind
    /// is on with probability one half.
    pub fn random(seed: u64) -> Self {
        let mut rng = SmallRng::seed_from_u64(seed ^ 0x5157_4152_4d00);
        loop {
            let bits = rng.gen_range(0..(1u16 << FAULTS.len()));
            if bits != 0 {
                return Faults { bits };
            }
        }
    }
}

/// Turns on the canary called `name`.
pub fn inject(canaries: &mut Canaries, name: &str) -> Result<(), String> {
    match name {
        "ack_before_sync" => canaries.ack_before_sync = true,
        "apply_unpersisted_entries" => canaries.apply_unpersisted_entries = true,
        "forget_hard_state_on_restart" => canaries.forget_hard_state_on_restart = true,
        "local_reads_without_read_index" => canaries.local_reads_without_read_index = true,
        "answer_on_append" => canaries.answer_on_append = true,
        "vote_twice" => canaries.vote_twice = true,
        other => return Err(format!("unknown bug {other:?}; known: {BUGS:?}")),
    }
    Ok(())
}

/// What the simulated clients do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkloadConfig {
    /// Concurrent clients (each runs one operation at a time).
    pub clients: u64,
    /// Keys (registers) they share.
    pub keys: u64,
    /// Percent of operations that are writes (the rest are reads).
    pub write_percent: u32,
    /// Percent of reads that use the client's token (`at_least_as_fresh`) when it has one.
    pub token_percent: u32,
    /// Whether an operator replaces nodes through membership changes during the run.
    pub membership: bool,
}

impl Default for WorkloadConfig {
    fn default() -> Self {
        WorkloadConfig {
            clients: 3,
            keys: 4,
            write_percent: 50,
            token_percent: 40,
            membership: true,
        }
    }
}

impl WorkloadConfig {
    /// Parses `clients=3,keys=4,writes=50,tokens=40,members=1` (any subset; `default` alone
    /// too).
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut config = WorkloadConfig::default();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            if part == "default" {
                continue;
            }
            let (name, value) = part
                .split_once('=')
                .ok_or_else(|| format!("workload setting {part:?} is not name=value"))?;
            let number: u64 = value
                .parse()
                .map_err(|_| format!("workload setting {name}: {value:?} is not a number"))?;
            let percent = || {
                u32::try_from(number)
                    .ok()
                    .filter(|p| *p <= 100)
                    .ok_or_else(|| format!("workload setting {name} must be 0 to 100"))
            };
            match name {
                "clients" if (1..=64).contains(&number) => config.clients = number,
                "keys" if (1..=64).contains(&number) => config.keys = number,
                "clients" | "keys" => return Err(format!("workload {name} must be 1 to 64")),
                "writes" => config.write_percent = percent()?,
                "tokens" => config.token_percent = percent()?,
                "members" if number <= 1 => config.membership = number == 1,
                "members" => return Err("workload members must be 0 or 1".into()),
                other => {
                    return Err(format!(
                        "unknown workload setting {other:?}; known: clients, keys, writes, tokens, \
                         members"
                    ))
                }
            }
        }
        Ok(config)
    }

    /// The settings as `--workload` takes them.
    pub fn flag(&self) -> String {
        format!(
            "clients={},keys={},writes={},tokens={},members={}",
            self.clients,
            self.keys,
            self.write_percent,
            self.token_percent,
            u8::from(self.membership)
        )
    }
}

/// Parses a simulated duration: `500ms`, `30s`, `10m`, `1h`, or plain milliseconds.
pub fn parse_duration(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let number: u64 = digits
        .parse()
        .map_err(|_| format!("duration {text:?} must start with a number"))?;
    let scale = match unit {
        "" | "ms" => 1,
        "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        other => return Err(format!("duration unit {other:?}: use ms, s, m or h")),
    };
    number
        .checked_mul(scale)
        .ok_or_else(|| format!("duration {text:?} is too long"))
}

/// One run's parameters.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// The seed: the same seed (and parameters) always gives the same run.
    pub seed: u64,
    /// Cluster size (1–7).
    pub nodes: u64,
    /// Simulated milliseconds to run.
    pub ticks: u64,
    /// Faults to inject (until the last third of the run, when everything heals).
    pub faults: Faults,
    /// The clients.
    pub workload: WorkloadConfig,
    /// The injected bug, if any (on every node).
    pub bug: Option<String>,
    /// Applied entries after which a node compacts its log behind a snapshot (0: never).
    pub compact_after: u64,
    /// Keep every trace record (for `replay --trace`), not only the last few.
    pub full_trace: bool,
    /// Leave a node that applied its own removal running, as the node's shell does today
    /// (by default the simulator stops it, as a shell must: see docs/simulation.md).
    pub keep_removed_members: bool,
    /// Checker self-test: token reads are served at once, without waiting for the replica
    /// to reach the token (the read-your-writes checker must notice).
    pub token_reads_skip_wait: bool,
}

impl SimConfig {
    /// `seed` on 3 nodes for 5000 simulated ms, every fault, the default workload, no bug.
    pub fn new(seed: u64) -> Self {
        SimConfig {
            seed,
            nodes: 3,
            ticks: 5000,
            faults: Faults::all(),
            workload: WorkloadConfig::default(),
            bug: None,
            compact_after: 64,
            full_trace: false,
            keep_removed_members: false,
            token_reads_skip_wait: false,
        }
    }

    /// The command line that repeats this run.
    pub fn repro(&self) -> String {
        let mut line = format!(
            "inferadb-sim run --seed {} --nodes {} --ticks {} --faults {}",
            self.seed,
            self.nodes,
            self.ticks,
            self.faults.flag()
        );
        if self.workload != WorkloadConfig::default() {
            line.push_str(&format!(" --workload {}", self.workload.flag()));
        }
        if self.compact_after != SimConfig::new(0).compact_after {
            line.push_str(&format!(" --compact-after {}", self.compact_after));
        }
        if self.keep_removed_members {
            line.push_str(" --keep-removed-members");
        }
        if let Some(bug) = &self.bug {
            line.push_str(&format!(" --inject-bug {bug}"));
        }
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_faults_and_workloads_parse_or_name_the_problem() {
        assert_eq!(parse_duration("10m"), Ok(600_000));
        assert_eq!(parse_duration("1500"), Ok(1500));
        assert_eq!(parse_duration("2s"), Ok(2000));
        assert!(parse_duration("3 days").is_err());
        assert!(parse_duration("s").is_err());
        let faults = Faults::parse("clock,disk").expect("known faults");
        assert!(faults.has("clock") && faults.has("disk") && !faults.has("crash"));
        assert_eq!(faults.flag(), "clock,disk");
        assert_eq!(Faults::all().flag(), "all");
        let workload = WorkloadConfig::parse("keys=2,writes=80").expect("valid settings");
        assert_eq!((workload.keys, workload.write_percent), (2, 80));
        assert!(WorkloadConfig::parse("writes=101").is_err());
        assert!(WorkloadConfig::parse("speed=3").is_err());
        assert_ne!(Faults::random(1), Faults::default());
    }
}

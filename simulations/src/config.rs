//! What a run simulates: seed, cluster size, length, faults and injected bugs.

use inferadb_raft::core::Canaries;

/// The raft crate's canaries, by name.
pub const BUGS: [&str; 5] = [
    "ack_before_sync",
    "apply_unpersisted_entries",
    "forget_hard_state_on_restart",
    "local_reads_without_read_index",
    "answer_on_append",
];

/// The fault kinds, by name.
pub const FAULTS: [&str; 5] = ["partition", "drop", "dup", "reorder", "crash"];

/// Which faults a run injects.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Faults {
    /// Cut links between groups of nodes.
    pub partition: bool,
    /// Lose messages.
    pub drop: bool,
    /// Deliver messages twice.
    pub dup: bool,
    /// Hold messages back so later ones overtake them.
    pub reorder: bool,
    /// Power-fail nodes (losing what they did not sync) and restart them.
    pub crash: bool,
}

impl Faults {
    /// Every fault.
    pub fn all() -> Self {
        Faults {
            partition: true,
            drop: true,
            dup: true,
            reorder: true,
            crash: true,
        }
    }

    /// Parses a comma-separated list of [`FAULTS`] names (`all` and `none` too).
    pub fn parse(list: &str) -> Result<Self, String> {
        let mut faults = Faults::default();
        for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            match name {
                "all" => faults = Faults::all(),
                "none" => faults = Faults::default(),
                "partition" => faults.partition = true,
                "drop" => faults.drop = true,
                "dup" => faults.dup = true,
                "reorder" => faults.reorder = true,
                "crash" => faults.crash = true,
                other => return Err(format!("unknown fault {other:?}; known: {FAULTS:?}")),
            }
        }
        Ok(faults)
    }

    /// The enabled kinds' names.
    pub fn names(&self) -> Vec<&'static str> {
        let on = [
            self.partition,
            self.drop,
            self.dup,
            self.reorder,
            self.crash,
        ];
        FAULTS
            .iter()
            .zip(on)
            .filter(|(_, on)| *on)
            .map(|(n, _)| *n)
            .collect()
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
        other => return Err(format!("unknown bug {other:?}; known: {BUGS:?}")),
    }
    Ok(())
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
    /// The injected bug, if any (on every node).
    pub bug: Option<String>,
}

impl SimConfig {
    /// `seed` on 3 nodes for 5000 simulated ms, every fault, no bug.
    pub fn new(seed: u64) -> Self {
        SimConfig {
            seed,
            nodes: 3,
            ticks: 5000,
            faults: Faults::all(),
            bug: None,
        }
    }

    /// The command line that repeats this run.
    pub fn repro(&self) -> String {
        let faults = self.faults.names().join(",");
        let faults = if faults.is_empty() {
            "none".into()
        } else {
            faults
        };
        let mut line = format!(
            "inferadb-sim run --seed {} --nodes {} --ticks {} --faults {faults}",
            self.seed, self.nodes, self.ticks
        );
        if let Some(bug) = &self.bug {
            line.push_str(&format!(" --inject-bug {bug}"));
        }
        line
    }
}

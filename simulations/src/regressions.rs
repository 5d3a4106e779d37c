//! Named regression seeds: every failure the simulator ever found (and each canary's first
//! catching seed) becomes an entry here, and the smoke test runs them all. A regression
//! records the configuration that failed and what it must do now.

use crate::config::{Faults, SimConfig};

/// A named seed and what its run must show.
#[derive(Debug, Clone, Copy)]
pub struct Regression {
    /// A stable name.
    pub name: &'static str,
    /// What it found, in a line.
    pub story: &'static str,
    /// The seed.
    pub seed: u64,
    /// Simulated milliseconds.
    pub ticks: u64,
    /// The faults, as `--faults` takes them.
    pub faults: &'static str,
    /// The canary it runs with, if any.
    pub bug: Option<&'static str>,
    /// The invariant the run must break (`None`: it must pass).
    pub expect: Option<&'static str>,
}

/// Regressions that run with `--keep-removed-members` (the node shell's behaviour today).
const KEEPS_REMOVED_MEMBERS: &[&str] = &["a_removed_leader_panics_in_raft_rs"];

impl Regression {
    /// The run's configuration.
    pub fn config(&self) -> Result<SimConfig, String> {
        Ok(SimConfig {
            ticks: self.ticks,
            faults: Faults::parse(self.faults)?,
            bug: self.bug.map(str::to_string),
            keep_removed_members: KEEPS_REMOVED_MEMBERS.contains(&self.name),
            ..SimConfig::new(self.seed)
        })
    }
}

/// The regression seeds.
pub const REGRESSIONS: &[Regression] = &[
    Regression {
        name: "replayed_entries_of_a_vault_ahead_of_its_catalog",
        story: "a failed catalog sync left the vault file synced ahead of the catalog; on \
                restart the shard skipped the replayed commands as already applied, and the \
                state-machine-safety checker compared their (later) state roots with the \
                other replicas' and cried divergence. Skipped entries now compare commands \
                only.",
        seed: 11,
        ticks: 5000,
        faults: "disk",
        bug: None,
        expect: None,
    },
    Regression {
        name: "replayed_entries_after_a_failed_catalog_sync_at_the_first_persist",
        story: "the same, with the catalog's very first sync failing (applied index 2).",
        seed: 17,
        ticks: 5000,
        faults: "disk",
        bug: None,
        expect: None,
    },
    Regression {
        name: "a_restart_claimed_a_stored_snapshot_it_never_restored",
        story: "a snapshot restore failed on a failed catalog sync after the log had stored \
                the snapshot; the simulator restarted the node with the snapshot's index as \
                its applied index, so raft skipped the restore and the machine applied the \
                entries after the snapshot to its old state. The node's shell passes the \
                machine's own applied index and RaftGroup::new restores; the simulator now \
                does the same.",
        seed: 173,
        ticks: 5000,
        faults: "pause,disk",
        bug: None,
        expect: None,
    },
    Regression {
        name: "the_same_with_clock_faults",
        story: "the same restart bug, reached through partitions, reordering and clocks.",
        seed: 195,
        ticks: 5000,
        faults: "partition,reorder,clock,disk",
        bug: None,
        expect: None,
    },
    Regression {
        name: "a_quarantined_vault_is_detected_corruption_not_divergence",
        story: "a flipped bit in a synced vault page made the vault fail to open on restart; \
                the shard quarantined it (it serves and snapshots it no more) and the \
                checker compared the replica's state root, without the vault, with the \
                others'. Roots of a replica with a quarantined vault compare commands only.",
        seed: 177,
        ticks: 5000,
        faults: "reorder,crash,disk",
        bug: None,
        expect: None,
    },
    Regression {
        name: "a_redundant_snapshot_paused_its_follower",
        story: "a leader compacted and sent a snapshot to a follower that was already caught \
                up to it; the follower's answer advanced nothing, so raft-rs kept it paused in \
                the snapshot state and it missed every later write until the delivery \
                deadline (liveness). The simulator now reports a delivered snapshot as \
                finished, as a transport that saw the send succeed does.",
        seed: 191,
        ticks: 5000,
        faults: "partition,drop,dup,reorder,disk",
        bug: None,
        expect: None,
    },
    Regression {
        name: "a_quarantined_leader_refuses_writes_the_others_apply",
        story: "a leader whose vault copy was quarantined answered writes vault_unavailable \
                (a refusal of this replica only) while the other replicas applied them; \
                counting that refusal as 'never took effect' made a later read of the value \
                look unlinearizable. The client now treats it as an unknown outcome (see the \
                report: the shard should not let a quarantined leader answer so).",
        seed: 32,
        ticks: 5000,
        faults: "disk",
        bug: None,
        expect: None,
    },
    Regression {
        name: "a_removed_leader_panics_in_raft_rs",
        story: "a leader proposed removing a follower; before the change committed, that \
                follower won an election, committed its own removal and stayed leader \
                (raft-rs leaves a removed leader in place: an untested branch of \
                post_conf_change), then panicked on its own missing progress at the next \
                commit (raft.rs:943). The node's shell keeps a removed member running, so \
                it would panic too. Fixed: the core steps a leader down when it applies its \
                own removal; this seed keeps removed members running, as the shell does.",
        seed: 30,
        ticks: 5000,
        faults: "all",
        bug: None,
        expect: None,
    },
    Regression {
        name: "bit_rot_in_the_newest_meta_page_rolls_a_synced_vault_back",
        story: "a flipped bit in the padding of a vault file's newest meta page (synced) \
                made the storage engine's dual-slot recovery fall back to the older meta, \
                as for a torn commit: the vault came back one commit behind the catalog's \
                durable applied index, the shard skipped the lost commands as applied, and \
                the replica diverged silently (its reads serve the older value). Fixed: the \
                shard records each vault's commit index when it syncs (the synced \
                watermark) and quarantines a vault that reopens behind it.",
        seed: 544,
        ticks: 5000,
        faults: "reorder,crash,disk",
        bug: None,
        expect: None,
    },
    Regression {
        name: "a_removed_leader_stopped_before_telling_the_others",
        story: "the simulator stopped a leader as soon as it applied its own removal, \
                dropping the appends that carried the commit index: the others never applied \
                the removal, and with another voter down they could not elect (liveness). A \
                member now flushes what it sent before it stops.",
        seed: 422,
        ticks: 5000,
        faults: "reorder,clock,disk",
        bug: None,
        expect: None,
    },
    Regression {
        name: "a_quarantined_leader_keeps_leading_and_no_write_is_acknowledged",
        story: "the leader's copy of the vault was quarantined (a corrupt page at restart); \
                it kept leading after the faults healed and answered every write \
                vault_unavailable while the other replicas applied them, so no client write \
                was acknowledged again (liveness). Fixed: a leader whose machine is unfit to \
                lead (a quarantined vault) hands leadership to the next voter in turn.",
        seed: 683,
        ticks: 5000,
        faults: "partition,reorder,crash,clock,disk",
        bug: None,
        expect: None,
    },
    Regression {
        name: "stale_follower_read_without_read_index",
        story: "canary local_reads_without_read_index: a follower answers a fully consistent \
                read from its own commit index, behind a write already acknowledged.",
        seed: 1,
        ticks: 5000,
        faults: "all",
        bug: Some("local_reads_without_read_index"),
        expect: Some("linearizability"),
    },
    Regression {
        name: "two_leaders_in_a_term_after_a_second_vote",
        story: "canary vote_twice: a voter forgets its vote when a second candidate of the \
                term asks, and both candidates win the term.",
        seed: 5,
        ticks: 5000,
        faults: "all",
        bug: Some("vote_twice"),
        expect: Some("election_safety"),
    },
    Regression {
        name: "acknowledged_write_lost_to_an_unpersisted_apply",
        story: "canary apply_unpersisted_entries: a deposed leader applied and acknowledged \
                an entry that never committed; the next leader does not hold it.",
        seed: 4,
        ticks: 5000,
        faults: "all",
        bug: Some("apply_unpersisted_entries"),
        expect: Some("leader_completeness"),
    },
];

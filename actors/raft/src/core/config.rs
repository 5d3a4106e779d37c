//! [`RaftConfig`]: the knobs of one Raft group member, and the [`Canaries`].

use raft::{Config, ReadOnlyOption};

/// How one member of a Raft group behaves. Times are in ticks: the shell decides how long a
/// tick is (the simulator makes them instantaneous).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RaftConfig {
    /// This member's id in the group (non-zero, unique in the group).
    pub id: u64,
    /// A follower that hears nothing from a leader for a random number of ticks in
    /// `[election_tick, 2 * election_tick)` starts an election; a leader that does not hear
    /// from a quorum for `election_tick` ticks steps down (check-quorum). Must be greater than
    /// `heartbeat_tick` (raft-rs suggests 10×).
    pub election_tick: usize,
    /// A leader sends heartbeats every `heartbeat_tick` ticks.
    pub heartbeat_tick: usize,
    /// How many append messages a leader keeps in flight to one follower before waiting for
    /// acknowledgements (bounds the memory a slow follower costs the leader).
    pub max_inflight_msgs: usize,
    /// The most entry bytes one append message carries (at least one entry is always sent).
    pub max_size_per_msg: u64,
    /// The most committed-entry bytes one [`super::Effects`] hands to the state machine, so
    /// a follower catching up applies in bounded batches.
    pub max_committed_size_per_ready: u64,
    /// The state machine's applied index when restarting (0 for a new member): raft-rs does
    /// not hand back entries at or below it. It must not be below the store's snapshot index.
    pub applied: u64,
    /// Seeds the election-timeout draws (mixed with `id`, so a whole cluster may share one
    /// seed). The same seed and inputs give the same behaviour.
    pub seed: u64,
    /// Integration bugs to reproduce on purpose (all off in production).
    pub canaries: Canaries,
}

impl RaftConfig {
    /// A member with the defaults below: election after 10–19 ticks, heartbeats every 2,
    /// 256 appends in flight of up to 1 MiB each, 4 MiB of committed entries per cycle.
    pub fn new(id: u64, seed: u64) -> Self {
        Self {
            id,
            election_tick: 10,
            heartbeat_tick: 2,
            max_inflight_msgs: 256,
            max_size_per_msg: 1024 * 1024,
            max_committed_size_per_ready: 4 * 1024 * 1024,
            applied: 0,
            seed,
            canaries: Canaries::default(),
        }
    }

    /// The raft-rs configuration. Three settings are not knobs, because correctness of the
    /// rest of the system relies on them:
    /// - `pre_vote`: a member that was partitioned away does not bump the term and depose a
    ///   healthy leader when it comes back;
    /// - `check_quorum`: a leader cut off from a quorum steps down instead of believing it
    ///   still leads (a minority leader must not look like a leader to clients);
    /// - `ReadOnlyOption::Safe`: read-index confirms leadership with a heartbeat round
    ///   instead of trusting a clock-based lease (we do not trust clocks).
    pub fn to_raft(&self) -> Config {
        Config {
            id: self.id,
            election_tick: self.election_tick,
            heartbeat_tick: self.heartbeat_tick,
            applied: self.applied,
            max_size_per_msg: self.max_size_per_msg,
            max_inflight_msgs: self.max_inflight_msgs,
            check_quorum: true,
            pre_vote: true,
            read_only_option: ReadOnlyOption::Safe,
            max_committed_size_per_ready: self.max_committed_size_per_ready,
            ..Config::default()
        }
    }
}

/// Deliberate integration bugs, each wired where it would really happen, so the simulator
/// (and the cluster tests) can prove that their safety checkers notice it. All default to
/// `false`; nothing but tests may turn one on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Canaries {
    /// Skip the `sync` of each Ready: votes and log appends are acknowledged while still in
    /// the page cache. A power failure then loses entries a leader counted in a quorum (or a
    /// vote already granted), so committed entries can disappear.
    pub ack_before_sync: bool,
    /// Hand the state machine `ready.entries()` (what was just appended) instead of the
    /// committed entries: the classic "apply what you persist" mistake. A deposed leader
    /// then applies entries that never commit and are later overwritten.
    pub apply_unpersisted_entries: bool,
    /// On restart, ignore the stored term and vote (as if the hard state was never written):
    /// the member can vote twice in one term, so two leaders can be elected in it.
    pub forget_hard_state_on_restart: bool,
    /// Answer `read_index` at once from the local commit index, without confirming
    /// leadership with a quorum: a deposed leader serves stale reads.
    pub local_reads_without_read_index: bool,
    /// Answer a client as soon as its proposal is appended to the leader's log, before a
    /// quorum has it (so before it commits): a leader deposed right then has acknowledged
    /// a write the next leader overwrites.
    pub answer_on_append: bool,
    /// Forget this term's vote whenever another candidate of the same term asks: the member
    /// grants a vote twice in one term, so two candidates can both win it.
    pub vote_twice: bool,
}

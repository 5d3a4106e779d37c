//! Raft groups of `RaftCore`s driven message by message (see `harness`): elections,
//! replication, crashes, partitions, snapshots, membership changes and read-index, each
//! checked for safety (one leader per term, applied sequences agree, nothing committed is
//! lost) and, where expected, liveness. The canary tests prove those checks can fail.
//!
//! Every scenario runs twice: on `CrashStore` (a memory store with a power-failure model)
//! and, as `durable_<scenario>`, on `DurableDisk` (the real durable log over a `MemoryLogIo`,
//! reopened from its crash image after every crash), so the durable log runs under the real
//! Ready loop. The durable-only tests at the end also cut the power in the middle of a Ready
//! cycle's writes, under every crash mode.

mod harness;

use harness::{Cluster, CrashStore, Disk, DurableConfig, DurableDisk};
use inferadb_raft::core::{Canaries, CoreError, RaftConfig, RaftCore, Role};
use inferadb_raft::io::LogCrashMode;
use inferadb_raft::logging::raft_logger;
use inferadb_raft::memory_store::MemoryStore;
use inferadb_raft::store::LogError;
use raft::eraftpb::{
    ConfChangeSingle, ConfChangeType, ConfChangeV2, ConfState, Message, MessageType, Snapshot,
};

const SEED: u64 = 0x1DB;

fn payloads(prefix: &str, n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| format!("{prefix}{i}").into_bytes())
        .collect()
}

fn all_applied<D: Disk>(cluster: &Cluster<D>, ids: &[u64], expected: &[Vec<u8>]) -> bool {
    ids.iter().all(|&id| cluster.payloads(id) == expected)
}

/// For each `scenario => durable_test`: a test named after the scenario on `CrashStore`,
/// and `durable_test` running the same scenario on `DurableDisk` (power failures lose what
/// was not synced).
macro_rules! on_both_disks {
    ($($scenario:ident => $durable:ident;)*) => {$(
        #[test]
        fn $scenario() {
            scenarios::$scenario::<CrashStore>(());
        }

        #[test]
        fn $durable() {
            scenarios::$scenario::<DurableDisk>(DurableConfig::default());
        }
    )*};
}

on_both_disks! {
    three_nodes_elect_one_leader_and_apply_in_the_same_order
        => durable_three_nodes_elect_one_leader_and_apply_in_the_same_order;
    crashed_leader_is_replaced_and_catches_up_after_restart
        => durable_crashed_leader_is_replaced_and_catches_up_after_restart;
    partitioned_leader_cannot_commit_and_its_log_is_truncated_on_heal
        => durable_partitioned_leader_cannot_commit_and_its_log_is_truncated_on_heal;
    far_behind_follower_catches_up_by_snapshot
        => durable_far_behind_follower_catches_up_by_snapshot;
    joint_consensus_adds_a_learner_then_swaps_voters_while_one_node_is_down
        => durable_joint_consensus_adds_a_learner_then_swaps_voters_while_one_node_is_down;
    read_index_waits_for_a_heartbeat_quorum_and_a_deposed_leader_never_answers
        => durable_read_index_waits_for_a_heartbeat_quorum_and_a_deposed_leader_never_answers;
    errors_are_typed => durable_errors_are_typed;
    the_same_seed_gives_the_same_trace => durable_the_same_seed_gives_the_same_trace;
}

/// The leader-crash scenario with the crash images that keep (some of) what was not
/// synced. Here they equal `LoseUnsynced`'s: between Ready cycles nothing is pending on the
/// disk (a commit-index-only hard state stays in memory until the next sync), so the modes
/// really differ in the power failures in the middle of a Ready cycle, below.
#[test]
fn durable_crashed_leader_catches_up_under_every_crash_mode() {
    for mode in [
        LogCrashMode::TearLast,
        LogCrashMode::KeepUnsynced,
        LogCrashMode::Random { seed: 1 },
        LogCrashMode::Random { seed: 2 },
    ] {
        scenarios::crashed_leader_is_replaced_and_catches_up_after_restart::<DurableDisk>(
            DurableConfig::crashing(mode),
        );
    }
}

/// The power fails at each of the leader's first I/O operations of a Ready cycle that
/// appends a batch (segment appends and rolls, their fsyncs, the state record), under every
/// crash mode: the crashed leader's log reopens (torn tails cut off), a new leader commits,
/// and the old one catches up, with nothing acknowledged lost.
#[test]
fn durable_leader_power_failure_mid_ready_under_every_crash_mode() {
    let modes = [
        LogCrashMode::LoseUnsynced,
        LogCrashMode::TearLast,
        LogCrashMode::KeepUnsynced,
        LogCrashMode::Random { seed: 7 },
    ];
    for mode in modes {
        for operation in 0..8 {
            leader_power_failure_mid_ready(DurableConfig::crashing(mode), operation);
        }
    }
}

fn leader_power_failure_mid_ready(disk: DurableConfig, operation: u64) {
    let mut c = Cluster::<DurableDisk>::new(3, SEED, disk);
    let old = c.elect();
    let expected = payloads("a", 4);
    for p in &expected {
        c.propose(old, p);
    }
    c.run_until(50, |c| all_applied(c, &[1, 2, 3], &expected));

    // A batch big enough to roll a 1 KiB segment.
    let batch: Vec<Vec<u8>> = (0..12).map(|i| vec![b'0' + i; 100]).collect();
    let refs: Vec<&[u8]> = batch.iter().map(Vec::as_slice).collect();
    c.node(old).disk.fail_power_at(operation);
    c.propose_batch(old, &refs);
    assert!(
        !c.is_up(old),
        "power failure at operation {operation} missed"
    );

    // The Ready failed, so its messages never left: the batch is lost with the leader.
    c.run_until(300, |c| c.leader().is_some_and(|l| l != old));
    let new = c.leader().unwrap();
    c.propose_batch(new, &refs);
    c.propose(new, b"after");
    c.run(20);
    c.restart(old);
    c.run_until(200, |c| {
        (1..=3).all(|id| c.payloads(id).last().is_some_and(|p| p == b"after"))
    });
    let mut applied = expected;
    applied.extend(batch);
    applied.push(b"after".to_vec());
    assert_eq!(c.payloads(old), applied);
    // The new leader's batch made the old one truncate its own and roll segments.
    let segments = c.node(old).core().store().log().segment_names();
    assert!(segments.len() > 1, "no segment rolled: {segments:?}");
    c.assert_safe();
}

/// The scenarios, generic over the disk every node runs on.
mod scenarios {
    use super::*;

    pub fn three_nodes_elect_one_leader_and_apply_in_the_same_order<D: Disk>(disk: D::Config) {
        let mut c = Cluster::<D>::new(3, SEED, disk);
        let leader = c.elect();
        c.run(5);
        let leaders: Vec<u64> = (1..=3)
            .filter(|&id| c.node(id).core().status().role == Role::Leader)
            .collect();
        assert_eq!(leaders, vec![leader]);

        // Group commit: ten proposals before one Ready share one sync.
        let syncs = c.node(leader).syncs();
        let batch = payloads("p", 10);
        let refs: Vec<&[u8]> = batch.iter().map(Vec::as_slice).collect();
        let proposed = c.propose_batch(leader, &refs);
        assert_eq!(c.node(leader).syncs(), syncs + 1);
        assert!(proposed.windows(2).all(|w| w[1].index == w[0].index + 1));

        let mut expected = batch.clone();
        for p in payloads("q", 5) {
            c.propose(leader, &p);
            expected.push(p);
        }
        c.run_until(50, |c| all_applied(c, &[1, 2, 3], &expected));
        c.assert_safe();
    }

    pub fn crashed_leader_is_replaced_and_catches_up_after_restart<D: Disk>(disk: D::Config) {
        let mut c = Cluster::<D>::new(3, SEED, disk);
        let old = c.elect();
        let mut expected = payloads("a", 5);
        for p in &expected {
            c.propose(old, p);
        }
        c.run_until(50, |c| all_applied(c, &[1, 2, 3], &expected));
        let before = c.node(old).core().raw_node().raft.hard_state();

        c.crash(old);
        c.run_until(300, |c| c.leader().is_some_and(|l| l != old));
        let new = c.leader().unwrap();
        for p in payloads("b", 5) {
            c.propose(new, &p);
            expected.push(p);
        }
        let others: Vec<u64> = (1..=3).filter(|&id| id != old).collect();
        c.run_until(50, |c| all_applied(c, &others, &expected));

        c.restart(old);
        let after = c.node(old).core().raw_node().raft.hard_state();
        // Term and vote were synced; the commit index is written lazily and may lag.
        assert_eq!((after.term, after.vote), (before.term, before.vote));
        c.run_until(100, |c| all_applied(c, &[1, 2, 3], &expected));
        c.assert_safe();
    }

    /// The partition scenario: returns the cluster after healing, the old leader, and the
    /// indexes of its never-committed proposals.
    pub fn partitioned_leader<D: Disk>(
        disk: D::Config,
        canaries: Canaries,
    ) -> (Cluster<D>, u64, Vec<u64>) {
        let mut c = Cluster::<D>::with_canaries(3, SEED, disk, |_| canaries);
        let old = c.elect();
        let committed = payloads("a", 3);
        for p in &committed {
            c.propose(old, p);
        }
        c.run_until(50, |c| (1..=3).all(|id| c.payloads(id).len() >= 3));

        c.isolate(old);
        let commit = c.node(old).core().status().commit;
        let lost: Vec<u64> = payloads("lost", 3)
            .iter()
            .map(|p| c.propose(old, p).index)
            .collect();
        c.run(5);
        assert_eq!(
            c.node(old).core().status().commit,
            commit,
            "a minority committed"
        );
        let stored = c.node(old).entries();
        assert!(stored.iter().any(|e| e.data.starts_with(b"lost")));

        c.run_until(300, |c| c.leader().is_some_and(|l| l != old));
        let new = c.leader().unwrap();
        for p in payloads("b", 3) {
            c.propose(new, &p);
        }
        c.run(10);
        (c, old, lost)
    }

    pub fn partitioned_leader_cannot_commit_and_its_log_is_truncated_on_heal<D: Disk>(
        disk: D::Config,
    ) {
        let (mut c, old, lost) = partitioned_leader::<D>(disk, Canaries::default());
        let new = c.leader().unwrap();
        assert_ne!(new, old);
        c.heal();
        let mut expected = payloads("a", 3);
        expected.extend(payloads("b", 3));
        c.run_until(100, |c| all_applied(c, &[1, 2, 3], &expected));

        let status = c.node(old).core().status();
        assert_eq!(status.role, Role::Follower);
        assert_eq!(status.term, c.node(new).core().status().term);
        // The conflicting suffix was really replaced in the old leader's log.
        let stored = c.node(old).entries();
        let leader_log = c.node(new).entries();
        for index in lost {
            let mine = stored.iter().find(|e| e.index == index).unwrap();
            let theirs = leader_log.iter().find(|e| e.index == index).unwrap();
            assert!(
                !mine.data.starts_with(b"lost"),
                "entry {index} not truncated"
            );
            assert_eq!(mine, theirs);
        }
        c.assert_safe();
    }

    pub fn far_behind_follower_catches_up_by_snapshot<D: Disk>(disk: D::Config) {
        let mut c = Cluster::<D>::new(3, SEED, disk);
        let leader = c.elect();
        let behind = (1..=3).find(|&id| id != leader).unwrap();
        c.crash(behind);
        let mut expected = Vec::new();
        for p in payloads("s", 30) {
            c.propose(leader, &p);
            expected.push(p);
        }
        let up: Vec<u64> = (1..=3).filter(|&id| id != behind).collect();
        c.run_until(50, |c| all_applied(c, &up, &expected));
        for &id in &up {
            c.compact(id);
        }
        for p in payloads("t", 5) {
            c.propose(leader, &p);
            expected.push(p);
        }
        let first = c.node(leader).core().raw_node().raft.raft_log.first_index();
        assert!(first > 30, "the leader's log was not compacted");

        c.restart(behind);
        c.run_until(100, |c| all_applied(c, &[1, 2, 3], &expected));
        assert!(c.node(behind).snapshots_installed >= 1);
        c.assert_safe();
    }

    pub fn change(changes: &[(ConfChangeType, u64)]) -> ConfChangeV2 {
        let mut cc = ConfChangeV2::default();
        for &(change_type, node_id) in changes {
            let mut single = ConfChangeSingle::default();
            single.set_change_type(change_type);
            single.node_id = node_id;
            cc.mut_changes().push(single);
        }
        cc
    }

    pub fn joint_consensus_adds_a_learner_then_swaps_voters_while_one_node_is_down<D: Disk>(
        disk: D::Config,
    ) {
        let mut c = Cluster::<D>::new(3, SEED, disk);
        let leader = c.elect();
        let down = (1..=3).find(|&id| id != leader).unwrap();
        let alive = (1..=3).find(|&id| id != leader && id != down).unwrap();
        let mut expected = payloads("m", 3);
        for p in &expected {
            c.propose(leader, p);
        }
        c.run_until(50, |c| all_applied(c, &[1, 2, 3], &expected));
        c.crash(down);

        c.add_node(4);
        c.propose_conf_change(leader, change(&[(ConfChangeType::AddLearnerNode, 4)]));
        c.run_until(50, |c| c.node(leader).core().status().learners == vec![4]);
        // The snapshot a new node receives must already name it, or it refuses the snapshot.
        c.compact(leader);
        c.run_until(100, |c| c.payloads(4) == expected);

        // One joint change: promote 4 and remove the node that is down.
        let joint = change(&[
            (ConfChangeType::AddNode, 4),
            (ConfChangeType::RemoveNode, down),
        ]);
        c.propose_conf_change(leader, joint);
        let mut voters = vec![leader, alive, 4];
        voters.sort_unstable();
        let done = |c: &Cluster<D>| {
            [leader, alive, 4].iter().all(|&id| {
                let s = c.node(id).core().status();
                s.voters == voters && s.voters_outgoing.is_empty() && s.learners.is_empty()
            })
        };
        c.run_until(100, done);
        for p in payloads("n", 3) {
            c.propose(leader, &p);
            expected.push(p);
        }
        c.run_until(50, |c| all_applied(c, &[leader, alive, 4], &expected));
        c.assert_safe();
    }

    pub fn read_index_waits_for_a_heartbeat_quorum_and_a_deposed_leader_never_answers<D: Disk>(
        disk: D::Config,
    ) {
        let mut c = Cluster::<D>::new(3, SEED, disk);
        let leader = c.elect();
        c.propose(leader, b"x");
        c.run_until(50, |c| (1..=3).all(|id| c.payloads(id).len() == 1));

        assert!(c.read_index(leader, 7));
        assert!(
            c.checker.answered.is_empty(),
            "answered before a heartbeat round"
        );
        assert!(c
            .queued()
            .iter()
            .any(|m| m.get_msg_type() == MessageType::MsgHeartbeat && !m.context.is_empty()));
        c.deliver_where(|m| m.get_msg_type() == MessageType::MsgHeartbeat);
        assert!(
            c.checker.answered.is_empty(),
            "answered before the acknowledgements"
        );
        c.deliver_where(|m| m.get_msg_type() == MessageType::MsgHeartbeatResponse);
        let commit = c.node(leader).core().status().commit;
        assert_eq!(c.checker.answered, vec![(leader, 7, commit)]);

        c.isolate(leader);
        c.read_index(leader, 8);
        c.run_until(300, |c| c.leader().is_some_and(|l| l != leader));
        let new = c.leader().unwrap();
        c.propose(new, b"y");
        c.run(10);
        c.heal();
        c.run(30);
        assert!(!c
            .checker
            .answered
            .iter()
            .any(|&(_, request, _)| request == 8));
        c.assert_safe();
    }

    pub fn errors_are_typed<D: Disk>(disk: D::Config) {
        let mut c = Cluster::<D>::new(3, SEED, disk);
        let leader = c.elect();
        c.run(3);
        let follower = (1..=3).find(|&id| id != leader).unwrap();
        let err = c.core(follower).propose(b"x".to_vec(), vec![]).unwrap_err();
        assert!(matches!(err, CoreError::NotLeader { leader_hint: Some(l) } if l == leader));

        // A second membership change while the first is pending is refused.
        let add = change(&[(ConfChangeType::AddLearnerNode, 4)]);
        c.core(leader).propose_conf_change(add, vec![]).unwrap();
        let add = change(&[(ConfChangeType::AddLearnerNode, 5)]);
        let err = c.core(leader).propose_conf_change(add, vec![]).unwrap_err();
        assert!(matches!(err, CoreError::ConfChangeRejected));
        c.drain(leader);

        let applied = c.node(leader).core().status().applied;
        let err = c.core(leader).compact(applied + 100, vec![]).unwrap_err();
        assert!(matches!(err, CoreError::CompactBeyondApplied { .. }));
    }

    /// A run with elections, drops, and leader crashes and restarts; returns its trace hash.
    fn chaotic_run<D: Disk>(seed: u64, disk: &D::Config) -> [u8; 32] {
        let mut c = Cluster::<D>::new(3, seed, disk.clone());
        c.drop_one_in = 8;
        let mut down = None;
        for round in 0..300u32 {
            c.run(1);
            if round % 5 == 0 {
                if let Some(leader) = c.leader() {
                    c.propose(leader, &round.to_be_bytes());
                }
            }
            if round % 60 == 30 {
                if let Some(leader) = c.leader() {
                    c.crash(leader);
                    down = Some(leader);
                }
            }
            if round % 60 == 50 {
                if let Some(id) = down.take() {
                    c.restart(id);
                }
            }
        }
        c.assert_safe();
        c.trace_hash()
    }

    pub fn the_same_seed_gives_the_same_trace<D: Disk>(disk: D::Config) {
        assert_eq!(chaotic_run::<D>(1, &disk), chaotic_run::<D>(1, &disk));
        let others = [2, 3, 4].map(|seed| chaotic_run::<D>(seed, &disk));
        assert!(
            others.iter().any(|h| *h != chaotic_run::<D>(1, &disk)),
            "seeds do not matter"
        );
    }
}

/// When a lone member campaigns, per tick (no peers: it never wins). A heartbeat from a
/// leader of a newer term now and then makes it a follower again (raft-rs redraws the
/// timeout from `thread_rng` on every such reset; the core must overwrite it).
fn campaign_ticks(seed: u64) -> Vec<usize> {
    let store = MemoryStore::new_with_conf_state(ConfState::from((vec![1, 2, 3], vec![])));
    let config = RaftConfig::new(1, seed);
    let mut core = RaftCore::new(&config, store, &raft_logger("solo")).unwrap();
    let mut ticks = Vec::new();
    for tick in 0..1000 {
        if tick % 37 == 0 {
            let mut heartbeat = Message::default();
            heartbeat.set_msg_type(MessageType::MsgHeartbeat);
            (heartbeat.from, heartbeat.to) = (2, 1);
            heartbeat.term = core.status().term + 1;
            core.step(heartbeat).unwrap();
        }
        core.tick().unwrap();
        let timeout = core.raw_node().raft.randomized_election_timeout();
        assert!((10..20).contains(&timeout));
        while let Some(effects) = core.ready().unwrap() {
            let pre_vote = MessageType::MsgRequestPreVote;
            if effects.all_messages().any(|m| m.get_msg_type() == pre_vote) {
                ticks.push(tick);
            }
        }
    }
    ticks
}

#[test]
fn election_timeouts_come_from_the_seed() {
    let first = campaign_ticks(5);
    assert!(first.len() > 10);
    assert_eq!(first, campaign_ticks(5));
    assert!([6, 7, 8].iter().any(|&s| campaign_ticks(s) != first));
}

mod canaries {
    use super::scenarios::partitioned_leader;
    use super::*;

    fn ack_before_sync_run<D: Disk>(canary: bool) -> Vec<String> {
        let canaries = Canaries {
            ack_before_sync: canary,
            ..Canaries::default()
        };
        let mut c = Cluster::<D>::with_canaries(3, SEED, D::Config::default(), |_| canaries);
        let leader = c.elect();
        c.propose(leader, b"acknowledged");
        c.run_until(50, |c| (1..=3).all(|id| c.payloads(id).len() == 1));
        // A power failure takes the whole group down.
        for id in 1..=3 {
            c.crash(id);
        }
        for id in 1..=3 {
            c.restart(id);
        }
        let leader = c.elect();
        c.propose(leader, b"after");
        c.run(30);
        c.violations()
    }

    #[test]
    fn ack_before_sync_loses_committed_entries() {
        assert_eq!(
            ack_before_sync_run::<CrashStore>(false),
            Vec::<String>::new()
        );
        assert!(!ack_before_sync_run::<CrashStore>(true).is_empty());
    }

    #[test]
    fn durable_ack_before_sync_loses_committed_entries() {
        assert_eq!(
            ack_before_sync_run::<DurableDisk>(false),
            Vec::<String>::new()
        );
        assert!(!ack_before_sync_run::<DurableDisk>(true).is_empty());
    }

    fn apply_unpersisted_entries_run<D: Disk>() -> Vec<String> {
        let canaries = Canaries {
            apply_unpersisted_entries: true,
            ..Canaries::default()
        };
        let (mut c, _, _) = partitioned_leader::<D>(D::Config::default(), canaries);
        c.heal();
        c.run(50);
        c.violations()
    }

    #[test]
    fn apply_unpersisted_entries_applies_what_never_commits() {
        assert!(!apply_unpersisted_entries_run::<CrashStore>().is_empty());
    }

    #[test]
    fn durable_apply_unpersisted_entries_applies_what_never_commits() {
        assert!(!apply_unpersisted_entries_run::<DurableDisk>().is_empty());
    }

    /// Two candidates in the same term; node 2 votes for 1, restarts, then meets 3's request.
    fn double_vote_run<D: Disk>(canary: bool) -> Vec<String> {
        let mut c = Cluster::<D>::with_canaries(3, SEED, D::Config::default(), |id| Canaries {
            forget_hard_state_on_restart: canary && id == 2,
            ..Canaries::default()
        });
        c.campaign(1);
        c.campaign(3);
        let to_2 =
            |t: MessageType| move |m: &raft::eraftpb::Message| m.to == 2 && m.get_msg_type() == t;
        c.deliver_where(to_2(MessageType::MsgRequestPreVote));
        c.deliver_where(|m| m.get_msg_type() == MessageType::MsgRequestPreVoteResponse);
        c.deliver_where(|m| m.from == 1 && m.to == 2);
        c.deliver_where(|m| m.to == 1 && m.get_msg_type() == MessageType::MsgRequestVoteResponse);
        assert_eq!(c.leader(), Some(1));
        c.crash(2);
        c.restart(2);
        c.deliver_where(|m| m.from == 3 && m.to == 2);
        c.deliver_where(|m| m.to == 3 && m.get_msg_type() == MessageType::MsgRequestVoteResponse);
        c.violations()
    }

    #[test]
    fn forget_hard_state_on_restart_votes_twice_in_a_term() {
        assert_eq!(double_vote_run::<CrashStore>(false), Vec::<String>::new());
        assert!(!double_vote_run::<CrashStore>(true).is_empty());
    }

    /// Two candidates in the same term; node 2 votes for 1, then meets 3's request without
    /// restarting: only a voter that forgets its vote grants the second.
    fn vote_twice_run<D: Disk>(canary: bool) -> Vec<String> {
        let mut c = Cluster::<D>::with_canaries(3, SEED, D::Config::default(), |id| Canaries {
            vote_twice: canary && id == 2,
            ..Canaries::default()
        });
        c.campaign(1);
        c.campaign(3);
        let to_2 =
            |t: MessageType| move |m: &raft::eraftpb::Message| m.to == 2 && m.get_msg_type() == t;
        c.deliver_where(to_2(MessageType::MsgRequestPreVote));
        c.deliver_where(|m| m.get_msg_type() == MessageType::MsgRequestPreVoteResponse);
        c.deliver_where(|m| m.from == 1 && m.to == 2);
        c.deliver_where(|m| m.to == 1 && m.get_msg_type() == MessageType::MsgRequestVoteResponse);
        assert_eq!(c.leader(), Some(1));
        c.deliver_where(|m| m.from == 3 && m.to == 2);
        c.deliver_where(|m| m.to == 3 && m.get_msg_type() == MessageType::MsgRequestVoteResponse);
        c.violations()
    }

    #[test]
    fn vote_twice_elects_two_leaders_in_a_term() {
        assert_eq!(vote_twice_run::<CrashStore>(false), Vec::<String>::new());
        assert!(!vote_twice_run::<CrashStore>(true).is_empty());
    }

    #[test]
    fn durable_vote_twice_elects_two_leaders_in_a_term() {
        assert_eq!(vote_twice_run::<DurableDisk>(false), Vec::<String>::new());
        assert!(!vote_twice_run::<DurableDisk>(true).is_empty());
    }

    /// The canary cannot run on the durable log: it writes a zeroed term over the stored
    /// one at every start, and the durable log refuses to lower its term, so the member does
    /// not even start (instead of voting twice). Without the canary the scenario is safe.
    #[test]
    fn durable_forget_hard_state_on_restart_is_refused_by_the_log() {
        assert_eq!(double_vote_run::<DurableDisk>(false), Vec::<String>::new());
        let mut bootstrap = Snapshot::default();
        bootstrap.mut_metadata().index = 1;
        bootstrap.mut_metadata().term = 1;
        bootstrap
            .mut_metadata()
            .set_conf_state(ConfState::from((vec![1, 2, 3], vec![])));
        let mut disk = DurableDisk::create(&DurableConfig::default(), Some(&bootstrap));
        let mut config = RaftConfig::new(2, SEED);
        config.canaries.forget_hard_state_on_restart = true;
        let refused = RaftCore::new(&config, disk.open(), &raft_logger("canary")).err();
        assert!(
            matches!(refused, Some(CoreError::Store(LogError::Misuse(_)))),
            "{refused:?}"
        );
    }

    fn stale_read_run<D: Disk>(canary: bool) -> Vec<String> {
        let canaries = Canaries {
            local_reads_without_read_index: canary,
            ..Canaries::default()
        };
        let (mut c, old, _) = partitioned_leader::<D>(D::Config::default(), canaries);
        c.read_index(old, 9);
        c.run(5);
        c.violations()
    }

    #[test]
    fn local_reads_without_read_index_serve_stale_reads() {
        assert_eq!(stale_read_run::<CrashStore>(false), Vec::<String>::new());
        assert!(!stale_read_run::<CrashStore>(true).is_empty());
    }

    #[test]
    fn durable_local_reads_without_read_index_serve_stale_reads() {
        assert_eq!(stale_read_run::<DurableDisk>(false), Vec::<String>::new());
        assert!(!stale_read_run::<DurableDisk>(true).is_empty());
    }
}

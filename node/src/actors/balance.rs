//! The `leader-balance` singleton job: spreads the shards' raft leaderships over the members.
//!
//! Every member is a voter of every shard, so the work a node does for writes depends on how
//! many shards it leads (the leader appends, replicates, answers every proposal and read
//! barrier). Elections pick leaders at random, so one node may end up leading most shards.
//! While this node holds the job's lease, every `interval_ms` it reads each shard's leader
//! from its own members and, when the node leading the most shards leads at least two more
//! than the one leading the fewest, asks one of those shards to hand its leadership over
//! (raft's leadership transfer: this node's member forwards the request to the leader, which
//! transfers once the target has caught up). One move per round, so the effect of each is
//! seen before the next.
//!
//! A transfer is advisory and safe whoever asks: raft keeps one leader per term, and a
//! transfer to a member that is not caught up waits or lapses. So the moves are not fenced
//! by the lease epoch; the lease only keeps two nodes from planning at once.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use inferadb_election::JobRunner;
use inferadb_messages::{RaftMsg, ShardMsg};
use serde::{Deserialize, Serialize};

use crate::actors::jobs::RunningTask;
use crate::actors::registry::shard_mailbox;
use crate::actors::shard::{existing_raft_mailbox, PeerDirectory};
use crate::context::NodeContext;

/// The lease name of the leader balancer.
pub const LEADER_BALANCE_JOB: &str = "leader-balance";

/// How long a shard's status may take to come back.
const STATUS_TIMEOUT_MS: u64 = 2_000;

/// The leader balancer's settings.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LeaderBalanceConfig {
    /// Whether the node takes part in the election for the job.
    pub enabled: bool,
    /// The pause between two rounds (each moves at most one leadership).
    pub interval_ms: u64,
}

impl Default for LeaderBalanceConfig {
    fn default() -> Self {
        LeaderBalanceConfig {
            enabled: true,
            interval_ms: 10_000,
        }
    }
}

/// One shard as the planner sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShardLeadership {
    /// The shard.
    pub shard: u64,
    /// Its leader, if this node knows one.
    pub leader: Option<u64>,
    /// Its voters.
    pub voters: Vec<u64>,
}

/// A leadership to move.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeaderMove {
    /// The shard.
    pub shard: u64,
    /// Its leader now.
    pub from: u64,
    /// The member to hand leadership to.
    pub to: u64,
}

/// The next move, if the leaderships are unbalanced: from the node leading the most shards
/// (the lowest id among equals) to the voter leading the fewest (idem) that may take that
/// shard (`eligible(shard, to)`: linked, not backed off), of the lowest shard they share,
/// when the two counts differ by two or more. Nothing while a shard has no known leader (an
/// election is under way: wait for it).
pub fn plan_leader_move(
    shards: &[ShardLeadership],
    eligible: impl Fn(u64, u64) -> bool,
) -> Option<LeaderMove> {
    let mut led: BTreeMap<u64, usize> = BTreeMap::new();
    for shard in shards {
        for voter in &shard.voters {
            led.entry(*voter).or_insert(0);
        }
    }
    for shard in shards {
        *led.entry(shard.leader?).or_insert(0) += 1;
    }
    let (&busiest, &most) = led
        .iter()
        .max_by_key(|(id, count)| (**count, std::cmp::Reverse(**id)))?;
    let candidates = |shard: &&ShardLeadership| shard.leader == Some(busiest);
    shards
        .iter()
        .filter(candidates)
        .filter_map(|shard| {
            let (&idlest, &fewest) = led
                .iter()
                .filter(|(id, _)| shard.voters.contains(id) && eligible(shard.shard, **id))
                .min_by_key(|(id, count)| (**count, **id))?;
            (most >= fewest + 2).then_some(LeaderMove {
                shard: shard.shard,
                from: busiest,
                to: idlest,
            })
        })
        .min_by_key(|step| (led[&step.to], step.shard))
}

/// The leader balancer: a planning task while the lease is held.
pub struct LeaderBalance {
    context: Arc<NodeContext>,
    /// The links: only a linked member is given a leadership.
    peers: Option<Arc<dyn PeerDirectory>>,
    running: RunningTask,
}

impl LeaderBalance {
    /// The balancer of `context`'s shards.
    pub fn new(context: Arc<NodeContext>, peers: Option<Arc<dyn PeerDirectory>>) -> LeaderBalance {
        LeaderBalance {
            context,
            peers,
            running: RunningTask::default(),
        }
    }
}

impl JobRunner for LeaderBalance {
    fn start(&self, epoch: u64) {
        let task = tokio::spawn(balance_forever(
            Arc::clone(&self.context),
            self.peers.clone(),
        ));
        self.running.start(epoch, task);
        tracing::info!(epoch, "leader balancing runs here");
    }

    fn stop(&self, epoch: u64) {
        if self.running.stop(epoch) {
            tracing::info!(epoch, "leader balancing stopped here");
        }
    }
}

/// Rounds a move that did not take is not asked for again, at most (doubling from 1).
const BACKOFF_ROUNDS_MAX: u64 = 64;

/// Moves that did not take: (shard, target) → (failures, first round allowed again).
type Backoff = BTreeMap<(u64, u64), (u32, u64)>;

/// Plans and asks for one move every `interval_ms`, until aborted. A member without a live
/// link here (down, partitioned, being removed) is never a target; a move still planned a
/// round after it was asked for (the target lagged, or refused) backs off, doubling.
async fn balance_forever(context: Arc<NodeContext>, peers: Option<Arc<dyn PeerDirectory>>) {
    let interval = Duration::from_millis(context.config.jobs.leader_balance.interval_ms);
    let me = context.config.node_id;
    let mut backoff = Backoff::new();
    let mut last: Option<LeaderMove> = None;
    for round in 0u64.. {
        tokio::time::sleep(interval).await;
        let shards = leaderships(&context).await;
        let linked: BTreeSet<u64> = peers
            .as_ref()
            .map(|peers| peers.linked())
            .unwrap_or_default()
            .into_iter()
            .chain([me])
            .collect();
        let step = plan_leader_move(&shards, |shard, to| {
            linked.contains(&to)
                && backoff
                    .get(&(shard, to))
                    .is_none_or(|(_, allowed)| *allowed <= round)
        });
        if last.is_some() && last == step {
            back_off(&mut backoff, last, round);
            last = None;
            continue;
        }
        last = step;
        if let Some(step) = step {
            request_move(&context, step);
        }
    }
}

/// Records that `step` did not take: it may be asked for again after 1, 2, 4, … rounds.
fn back_off(backoff: &mut Backoff, step: Option<LeaderMove>, round: u64) {
    let Some(step) = step else {
        return;
    };
    let entry = backoff.entry((step.shard, step.to)).or_insert((0, 0));
    entry.0 = entry.0.saturating_add(1);
    let rounds = (1u64 << entry.0.min(6)).min(BACKOFF_ROUNDS_MAX);
    entry.1 = round + rounds;
    tracing::info!(
        shard = step.shard,
        to = step.to,
        rounds,
        "leadership move did not take; backing off"
    );
}

/// Asks the shard (through this node's member) to move its leadership.
fn request_move(context: &NodeContext, step: LeaderMove) {
    let Some(member) = existing_raft_mailbox(context, step.shard) else {
        return;
    };
    tracing::info!(
        shard = step.shard,
        from = step.from,
        to = step.to,
        "moving a shard's leadership to balance the members"
    );
    metrics::counter!("inferadb_leader_transfers_requested_total").increment(1);
    let _ = member.cast(RaftMsg::TransferLeader { to: step.to });
}

/// Every shard's leader and voters as this node's members see them (a member that cannot
/// answer counts as a shard without a known leader).
async fn leaderships(context: &NodeContext) -> Vec<ShardLeadership> {
    let mut shards = Vec::new();
    for shard in 0..=context.config.cluster.data_shards {
        let status = shard_mailbox(context, shard)
            .call(|reply| ShardMsg::Status { reply }, STATUS_TIMEOUT_MS)
            .await
            .ok()
            .flatten();
        shards.push(match status {
            Some(status) => ShardLeadership {
                shard,
                leader: status.leader_id,
                voters: status.voters,
            },
            None => ShardLeadership {
                shard,
                leader: None,
                voters: Vec::new(),
            },
        });
    }
    shards
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn shard(shard: u64, leader: u64, voters: &[u64]) -> ShardLeadership {
        ShardLeadership {
            shard,
            leader: Some(leader),
            voters: voters.to_vec(),
        }
    }

    #[test]
    fn a_node_leading_everything_hands_a_shard_to_an_idle_voter() {
        let shards = [
            shard(0, 1, &[1, 2, 3]),
            shard(1, 1, &[1, 2, 3]),
            shard(2, 1, &[1, 2, 3]),
        ];
        assert_eq!(
            plan_leader_move(&shards, |_, _| true),
            Some(LeaderMove {
                shard: 0,
                from: 1,
                to: 2
            })
        );
    }

    #[test]
    fn balanced_or_leaderless_shards_move_nothing() {
        let balanced = [
            shard(0, 1, &[1, 2, 3]),
            shard(1, 2, &[1, 2, 3]),
            shard(2, 3, &[1, 2, 3]),
        ];
        assert_eq!(plan_leader_move(&balanced, |_, _| true), None);
        // Off by one is as good as it gets with 4 shards on 3 nodes.
        let four = [
            shard(0, 1, &[1, 2, 3]),
            shard(1, 1, &[1, 2, 3]),
            shard(2, 2, &[1, 2, 3]),
            shard(3, 3, &[1, 2, 3]),
        ];
        assert_eq!(plan_leader_move(&four, |_, _| true), None);
        let mut electing = balanced.to_vec();
        electing.push(shard(3, 1, &[1, 2, 3]));
        electing.push(shard(4, 1, &[1, 2, 3]));
        electing[0].leader = None;
        assert_eq!(plan_leader_move(&electing, |_, _| true), None);
    }

    #[test]
    fn a_move_goes_only_to_a_voter_of_the_shard() {
        // Node 3 is idle but only a voter of shard 2, which node 1 does not lead.
        let shards = [
            shard(0, 1, &[1, 2]),
            shard(1, 1, &[1, 2]),
            shard(2, 2, &[2, 3]),
        ];
        assert_eq!(plan_leader_move(&shards, |_, _| true), None);
        // Node 1 leads all three; the idle voters of its shards are 2 (of 0 and 2) and 3
        // (of 1): the lowest shard goes first, then node 3 gets the shard only it can take.
        let mut shards = [
            shard(0, 1, &[1, 2]),
            shard(1, 1, &[1, 3]),
            shard(2, 1, &[1, 2]),
        ];
        let first = plan_leader_move(&shards, |_, _| true);
        assert_eq!(
            first,
            Some(LeaderMove {
                shard: 0,
                from: 1,
                to: 2
            })
        );
        shards[0].leader = Some(2);
        assert_eq!(
            plan_leader_move(&shards, |_, _| true),
            Some(LeaderMove {
                shard: 1,
                from: 1,
                to: 3
            })
        );
    }

    #[test]
    fn an_unlinked_or_backed_off_member_gets_no_leadership() {
        let shards = [
            shard(0, 1, &[1, 2, 3]),
            shard(1, 1, &[1, 2, 3]),
            shard(2, 1, &[1, 2, 3]),
        ];
        // Node 2 is down: node 3 gets the move.
        assert_eq!(
            plan_leader_move(&shards, |_, to| to != 2),
            Some(LeaderMove {
                shard: 0,
                from: 1,
                to: 3
            })
        );
        // Neither can take shard 0: the next shard goes.
        assert_eq!(
            plan_leader_move(&shards, |shard, _| shard != 0),
            Some(LeaderMove {
                shard: 1,
                from: 1,
                to: 2
            })
        );
        assert_eq!(plan_leader_move(&shards, |_, to| to == 1), None);
    }

    #[test]
    fn a_move_that_did_not_take_backs_off_doubling_up_to_a_bound() {
        let mut backoff = Backoff::new();
        let step = LeaderMove {
            shard: 1,
            from: 1,
            to: 2,
        };
        back_off(&mut backoff, Some(step), 10);
        assert_eq!(backoff[&(1, 2)], (1, 12));
        back_off(&mut backoff, Some(step), 12);
        assert_eq!(backoff[&(1, 2)], (2, 16));
        for round in 0..20 {
            back_off(&mut backoff, Some(step), 100 + round);
        }
        assert_eq!(backoff[&(1, 2)].1, 119 + BACKOFF_ROUNDS_MAX);
    }

    proptest! {
        /// Applying the planned moves one by one ends balanced (every two members of a
        /// fully replicated cluster lead within one shard of each other) in at most as many
        /// moves as there are shards.
        #[test]
        fn planned_moves_converge_to_a_balance(
            nodes in 1u64..6,
            leaders in proptest::collection::vec(0u64..6, 1..12),
        ) {
            let voters: Vec<u64> = (1..=nodes).collect();
            let mut shards: Vec<ShardLeadership> = leaders
                .iter()
                .enumerate()
                .map(|(index, leader)| shard(index as u64, leader % nodes + 1, &voters))
                .collect();
            let mut moves = 0;
            while let Some(step) = plan_leader_move(&shards, |_, _| true) {
                prop_assert_eq!(shards[step.shard as usize].leader, Some(step.from));
                prop_assert_ne!(step.from, step.to);
                shards[step.shard as usize].leader = Some(step.to);
                moves += 1;
                prop_assert!(moves <= shards.len(), "no convergence: {:?}", shards);
            }
            let mut led = vec![0usize; nodes as usize + 1];
            for shard in &shards {
                led[shard.leader.unwrap() as usize] += 1;
            }
            let counts = &led[1..];
            prop_assert!(counts.iter().max().unwrap() - counts.iter().min().unwrap() <= 1);
        }
    }
}

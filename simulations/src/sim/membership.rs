//! Membership changes, driven like an operator replacing nodes: a fresh node joins as a
//! learner (it receives a snapshot), is promoted to voter once caught up, and then a voter
//! (a node that stopped on a corrupt disk first, else a random follower) is removed and
//! retired for good. One change at a time, through `RaftGroup::propose_conf_change` on the
//! leader, as the node's shell does.

use raft::eraftpb::{ConfChangeSingle, ConfChangeType, ConfChangeV2};

use super::Simulation;
use crate::node::SimNode;

/// Node replacements a run makes at most (each adds one fresh id).
const REPLACEMENTS_MAX: u64 = 3;

impl Simulation {
    /// Stops node `id` for good once it applied its own removal (unless the configuration
    /// keeps removed members running, as the node's shell does today). A removed leader
    /// left running stays leader in raft-rs, which then panics on its next commit.
    pub(super) fn stop_if_removed(&mut self, id: u64) {
        let Some(group) = self.nodes.get(&id).and_then(SimNode::group) else {
            return;
        };
        let conf = group.core().raw_node().raft.prs().conf().to_conf_state();
        let member = [
            &conf.voters,
            &conf.learners,
            &conf.voters_outgoing,
            &conf.learners_next,
        ]
        .iter()
        .any(|ids| ids.contains(&id));
        if member {
            self.members_seen.insert(id);
            return;
        }
        if !self.members_seen.contains(&id) || self.config.keep_removed_members {
            // Not yet a member (a joining node's first snapshot can predate its addition).
            return;
        }
        // A graceful stop: what the member already sent leaves first (a removed leader's
        // last appends carry the commit index that tells the others it is removed).
        self.route();
        self.crash(id);
        self.retired.insert(id);
        self.stopped.remove(&id);
        self.sched
            .record(format!("n{id} retired: it applied its own removal"));
    }

    /// One step of the membership plan, on the current leader.
    pub(super) fn membership_step(&mut self) {
        let Some(leader) = self.leader() else {
            return;
        };
        let Some(status) = self.nodes.get(&leader).and_then(SimNode::group).map(|g| {
            let pending = g.core().has_pending_conf_change();
            (g.core().status(), pending)
        }) else {
            return;
        };
        let (status, pending) = status;
        if pending || !status.voters_outgoing.is_empty() {
            return;
        }
        self.retire_removed(&status.voters, &status.learners);
        self.snapshot_for_joiners(leader, &status.voters, &status.learners);
        if self.sched.now() >= self.heal_at {
            // No new change once the faults heal: the run's end is for catching up.
            return;
        }
        let voters = status.voters.len() as u64;
        let caught_up = |id: &u64| {
            status
                .progress
                .iter()
                .any(|(member, matched)| member == id && *matched >= status.commit)
        };
        if let Some(&learner) = status.learners.iter().find(|id| caught_up(id)) {
            self.propose_membership(leader, ConfChangeType::AddNode, learner);
        } else if !status.learners.is_empty() {
            // Still catching up.
        } else if voters > self.config.nodes {
            let mut candidates: Vec<u64> = status
                .voters
                .iter()
                .copied()
                .filter(|id| *id != leader)
                .collect();
            let stopped: Vec<u64> = candidates
                .iter()
                .copied()
                .filter(|id| self.stopped.contains_key(id))
                .collect();
            if !stopped.is_empty() {
                candidates = stopped;
            }
            let at = self.sched.between(0, candidates.len() as u64 - 1);
            if let Some(&victim) = candidates.get(usize::try_from(at).unwrap_or(0)) {
                self.propose_membership(leader, ConfChangeType::RemoveNode, victim);
            }
        } else if self.next_node_id <= self.config.nodes + REPLACEMENTS_MAX {
            self.add_node(leader);
        }
    }

    /// The node that leads now, if one does.
    fn leader(&self) -> Option<u64> {
        self.nodes
            .values()
            .find(|n| n.group().is_some_and(|g| g.core().is_leader()))
            .map(SimNode::id)
    }

    /// Creates the next fresh node, starts it (empty: it waits for a snapshot) and proposes
    /// it as a learner.
    fn add_node(&mut self, leader: u64) {
        let id = self.next_node_id;
        self.next_node_id += 1;
        let mut node = SimNode::join(id, self.config.seed, self.canaries);
        if let Err(error) = node.start() {
            self.sched
                .record(format!("n{id} cannot start empty: {error}"));
            return;
        }
        self.nodes.insert(id, node);
        self.joining.insert(id);
        self.sched
            .record(format!("n{id} created to join the group"));
        self.schedule_node(id);
        self.propose_membership(leader, ConfChangeType::AddLearnerNode, id);
    }

    fn propose_membership(&mut self, leader: u64, kind: ConfChangeType, id: u64) {
        let mut change = ConfChangeV2::default();
        let mut single = ConfChangeSingle::default();
        single.set_change_type(kind);
        single.node_id = id;
        change.mut_changes().push(single);
        let Some(group) = self.nodes.get_mut(&leader).and_then(SimNode::group_mut) else {
            return;
        };
        match group.propose_conf_change(change) {
            Ok(ticket) => {
                self.membership_changes += 1;
                self.sched.record(format!(
                    "membership: n{leader} proposes {kind:?} n{id} {ticket:?}"
                ));
                self.drain(leader);
            }
            Err(error) => {
                self.sched.record(format!(
                    "membership: n{leader} cannot propose {kind:?} n{id}: {error}"
                ));
            }
        }
    }

    /// Retires every node the configuration no longer names (and that is not joining): it
    /// is shut down for good.
    fn retire_removed(&mut self, voters: &[u64], learners: &[u64]) {
        self.joining
            .retain(|id| !voters.contains(id) && !learners.contains(id));
        let removed: Vec<u64> = self
            .nodes
            .keys()
            .copied()
            .filter(|id| !voters.contains(id) && !learners.contains(id))
            .filter(|id| !self.joining.contains(id) && !self.retired.contains(id))
            .collect();
        for id in removed {
            self.crash(id);
            self.retired.insert(id);
            self.stopped.remove(&id);
            self.sched
                .record(format!("n{id} retired: removed from the group"));
        }
    }

    /// A joining member takes only a snapshot, so once it is in the configuration the
    /// leader compacts its log (as the node's shell does), making raft send it one.
    fn snapshot_for_joiners(&mut self, leader: u64, voters: &[u64], learners: &[u64]) {
        let waiting = learners.iter().chain(voters).any(|id| {
            self.nodes
                .get(id)
                .and_then(SimNode::group)
                .is_some_and(|g| g.applied() == 0)
        });
        if !waiting {
            return;
        }
        let Some(group) = self.nodes.get_mut(&leader).and_then(SimNode::group_mut) else {
            return;
        };
        let applied = group.applied();
        match group.compact() {
            Ok(()) => {
                self.compacted_at.insert(leader, applied);
                self.sched.record(format!(
                    "n{leader} compacted at {applied} for a joining member"
                ));
            }
            Err(error) => self.sched.record(format!(
                "n{leader} no snapshot for a joining member: {error}"
            )),
        }
    }
}

//! Faults: the network's (partitions, loss, duplication, reordering), the nodes' (crashes,
//! pauses, clock skew and timer drift) and the disks' (torn writes at power failure,
//! failed syncs, corrupted bytes, slow syncs); restarts; healing; and the liveness check.

use super::{Event, Simulation, LIVENESS_WINDOW, TICK_MS};
use crate::checker::Violation;
use crate::node::{DiskFault, SimNode};
use crate::shard::{ShardReplica, VAULT};

impl Simulation {
    fn count_fault(&mut self, kind: &'static str) {
        *self.faults.entry(kind).or_default() += 1;
    }

    /// The node a crash or a pause hits: the leader half of the time (as a Jepsen nemesis
    /// that kills the primary: it forces elections), else a random running node.
    fn victim(&mut self) -> Option<u64> {
        let leader = self
            .nodes
            .values()
            .find(|n| n.group().is_some_and(|g| g.core().is_leader()))
            .map(SimNode::id);
        match leader {
            Some(id) if self.sched.chance(50) => Some(id),
            _ => self.some_up_node(),
        }
    }

    /// A random running node, if any.
    fn some_up_node(&mut self) -> Option<u64> {
        let up: Vec<u64> = self
            .nodes
            .iter()
            .filter(|(_, n)| n.is_up())
            .map(|(&id, _)| id)
            .collect();
        if up.is_empty() {
            return None;
        }
        let at = self.sched.between(0, up.len() as u64 - 1);
        up.get(usize::try_from(at).ok()?).copied()
    }

    pub(super) fn inject_fault(&mut self) {
        let kinds = self.config.faults.names();
        if kinds.is_empty() || self.sched.now() >= self.heal_at {
            return;
        }
        let pick = self.sched.between(0, kinds.len() as u64 - 1);
        let kind = kinds[usize::try_from(pick).unwrap_or(0)];
        match kind {
            "partition" => self.toggle_partition(),
            "drop" => {
                self.net.drop_percent = toggle(self.net.drop_percent, self.sched.between(5, 30));
            }
            "dup" => self.net.dup_percent = toggle(self.net.dup_percent, self.sched.between(5, 20)),
            "reorder" => {
                let percent = self.sched.between(10, 50);
                self.net.reorder_percent = toggle(self.net.reorder_percent, percent);
            }
            "clock" => self.skew_clock(),
            "pause" => self.pause_some_node(),
            "disk" => self.disk_fault(),
            _ => {
                if let Some(id) = self.victim() {
                    self.crash(id);
                }
            }
        }
        self.sched.record(format!(
            "fault {kind}: drop {}% dup {}% reorder {}% cut {:?}",
            self.net.drop_percent, self.net.dup_percent, self.net.reorder_percent, self.net.cut
        ));
        self.count_fault(kind);
    }

    /// Cuts a random minority-or-half off the rest (sometimes one way only), or heals the
    /// cut if there is one.
    fn toggle_partition(&mut self) {
        if !self.net.cut.is_empty() {
            self.net.cut.clear();
            return;
        }
        let mut ids: Vec<u64> = self.nodes.keys().copied().collect();
        let size = self.sched.between(1, (ids.len() as u64 / 2).max(1));
        let mut side = Vec::new();
        for _ in 0..size {
            let at = self.sched.between(0, ids.len() as u64 - 1);
            side.push(ids.remove(usize::try_from(at).unwrap_or(0)));
        }
        if self.sched.chance(25) {
            // Asymmetric: the side hears the others, but cannot reach them.
            for &a in &side {
                for &b in &ids {
                    self.net.cut.insert((a, b));
                }
            }
            self.sched
                .record(format!("one-way partition: {side:?} cannot reach {ids:?}"));
        } else {
            self.net.partition(&side, &ids);
        }
    }

    /// Skews a node's clock and makes its timer drift (ticks 0.5x to 2.5x as often as
    /// true time says), or puts it right.
    fn skew_clock(&mut self) {
        let Some(id) = self.some_up_node() else {
            return;
        };
        if self.tick_ms.remove(&id).is_some() {
            self.skew_ms.remove(&id);
            self.sched.record(format!("n{id} clock restored"));
            return;
        }
        let interval = self.sched.between(TICK_MS * 2 / 5, TICK_MS * 2);
        let skew = i64::try_from(self.sched.between(0, 20_000)).unwrap_or(0) - 10_000;
        self.tick_ms.insert(id, interval);
        self.skew_ms.insert(id, skew);
        self.sched.record(format!(
            "n{id} clock skewed {skew} ms, ticking every {interval} ms"
        ));
    }

    /// Stops a node's process for a while (a GC pause, a stopped VM): it neither ticks nor
    /// reads its messages until it resumes.
    fn pause_some_node(&mut self) {
        let Some(id) = self.victim() else {
            return;
        };
        let length = self.sched.between(50, 800);
        self.paused_until.insert(id, self.sched.now() + length);
        self.sched.record(format!("n{id} paused for {length} ms"));
    }

    /// A disk fault on a random node: a slow disk (toggled), a power failure that tears
    /// unsynced writes, a failed sync, or a corrupted byte. Corruption hits at most one
    /// member at a time of a cluster of three or more voters (a quorum must survive it: a
    /// node that detects corruption stays down until the membership plan replaces it).
    fn disk_fault(&mut self) {
        let Some(id) = self.some_up_node() else {
            return;
        };
        // At most one corrupt node among those still in the cluster, and only in clusters
        // of three or more voters: a quorum must survive it.
        let corruptible = self.config.nodes >= 3
            && self
                .nodes
                .values()
                .filter(|n| !self.retired.contains(&n.id()))
                .all(|n| !n.corrupted() || n.id() == id);
        let choice = self.sched.between(0, if corruptible { 3 } else { 2 });
        match choice {
            0 => {
                let slow = match self.slow_disk_ms.remove(&id) {
                    Some(_) => 0,
                    None => self.sched.between(10, 100),
                };
                if slow > 0 {
                    self.slow_disk_ms.insert(id, slow);
                }
                self.sched
                    .record(format!("n{id} disk sync latency {slow} ms"));
            }
            1 => {
                let seed = self.sched.between(0, u64::MAX - 1);
                self.crash_with(id, DiskFault::Torn { seed });
            }
            2 => self.fail_next_sync(id),
            _ => self.corrupt(id),
        }
    }

    fn fail_next_sync(&mut self, id: u64) {
        let which = self.sched.between(0, 1);
        if let Some(node) = self.nodes.get(&id) {
            node.fail_next_sync(which == 0);
        }
        let what = if which == 0 { "log" } else { "catalog" };
        self.sched.record(format!("n{id} next {what} sync fails"));
    }

    fn corrupt(&mut self, id: u64) {
        let pick = self.sched.between(0, u64::MAX - 1);
        let Some(node) = self.nodes.get_mut(&id) else {
            return;
        };
        let what = node.corrupt(pick);
        self.sched.record(format!("n{id} disk corrupted: {what}"));
    }

    /// Power failure of node `id`: unsynced writes are lost.
    pub(super) fn crash(&mut self, id: u64) {
        self.crash_with(id, DiskFault::None);
    }

    fn crash_with(&mut self, id: u64, fault: DiskFault) {
        let Some(node) = self.nodes.get_mut(&id) else {
            return;
        };
        if !node.is_up() {
            return;
        }
        node.crash(fault);
        // One torn crash in four also leaves a transient read error for the next start
        // (decided from the seed already drawn, so the run's other draws do not shift).
        let read_error = matches!(fault, DiskFault::Torn { seed } if seed % 4 == 0);
        if read_error {
            node.arm_read_error();
        }
        self.sched.record(format!(
            "n{id} crashed ({fault:?}{})",
            if read_error {
                ", a read error awaits its restart"
            } else {
                ""
            }
        ));
        self.checker.restarted(id);
        self.workload.abandon(id, self.sched.now());
        self.paused_until.remove(&id);
        self.snapshots_sent.retain(|(leader, _), _| *leader != id);
        let delay = self.sched.between(50, 600);
        self.sched.after(delay, Event::Restart(id));
    }

    pub(super) fn restart(&mut self, id: u64) {
        let Some(node) = self.nodes.get_mut(&id) else {
            return;
        };
        if node.is_up() || self.stopped.contains_key(&id) || self.retired.contains(&id) {
            return;
        }
        let started = node.start();
        let read_error = node.take_read_error();
        if let Err(error) = started {
            if read_error {
                // A transient read error: the node refuses to start (it must never serve
                // what it could not read) and is started again later.
                self.sched
                    .record(format!("n{id} refuses to start on a read error: {error}"));
                self.count_fault("read_error");
                let delay = self.sched.between(50, 600);
                self.sched.after(delay, Event::Restart(id));
                return;
            }
            if node.corrupted() {
                // Detected corruption: the node refuses to start, which is what it must do.
                self.sched
                    .record(format!("n{id} refuses to start on a corrupt disk: {error}"));
                self.stopped.insert(id, error);
                return;
            }
            self.fail(Violation {
                invariant: "recovery",
                detail: format!("node {id} does not restart: {error}"),
            });
            return;
        }
        let applied = node.group().map_or(0, |g| g.applied());
        let state = node
            .group()
            .map_or_else(String::new, |g| vault_state(g.machine()));
        self.compacted_at.insert(id, applied);
        self.sched
            .record(format!("n{id} restarted at applied {applied} ({state})"));
        self.checker.restarted(id);
        self.drain(id);
    }

    /// The faults stop: links heal, the network behaves, clocks and disks are put right,
    /// pauses end and every node restarts (but those that found their disk corrupt).
    pub(super) fn heal(&mut self) {
        self.net.heal();
        self.tick_ms.clear();
        self.skew_ms.clear();
        self.paused_until.clear();
        self.slow_disk_ms.clear();
        self.sched.record("heal".into());
        let ids: Vec<u64> = self.nodes.keys().copied().collect();
        for id in ids {
            self.restart(id);
        }
    }

    /// After the faults heal: a leader leads, a write invoked since commits, and every
    /// node that can run applied every acknowledged write.
    pub(super) fn check_liveness(&mut self) {
        if self.config.ticks.saturating_sub(self.heal_at) < LIVENESS_WINDOW {
            return;
        }
        self.checker.checks += 1;
        let leaders = self.nodes.values().filter_map(SimNode::group);
        let has_leader = leaders.clone().any(|g| g.core().is_leader());
        let last_acked = self
            .checker
            .acked()
            .keys()
            .next_back()
            .copied()
            .unwrap_or(0);
        let members = self.members_now();
        let behind: Vec<u64> = self
            .nodes
            .values()
            .filter(|n| members.contains(&n.id()))
            .filter(|n| !self.stopped.contains_key(&n.id()) && !self.retired.contains(&n.id()))
            .filter(|n| n.group().is_none_or(|g| g.applied() < last_acked))
            .map(SimNode::id)
            .collect();
        let ok = self.workload.ok_since(self.heal_at);
        let detail = if !has_leader {
            format!(
                "no leader {} ms after the faults healed",
                self.config.ticks - self.heal_at
            )
        } else if ok == 0 {
            "no write committed after the faults healed".to_string()
        } else if !behind.is_empty() {
            format!("nodes {behind:?} have not applied acknowledged index {last_acked}")
        } else {
            return;
        };
        self.fail(Violation {
            invariant: "liveness",
            detail,
        });
    }
}

impl Simulation {
    /// The members of the configuration the leader knows (every node when none leads).
    fn members_now(&self) -> Vec<u64> {
        let leader = self
            .nodes
            .values()
            .filter_map(SimNode::group)
            .find(|g| g.core().is_leader());
        match leader {
            Some(group) => {
                let conf = group.core().raw_node().raft.prs().conf().to_conf_state();
                conf.voters.iter().chain(&conf.learners).copied().collect()
            }
            None => self.nodes.keys().copied().collect(),
        }
    }
}

/// The vault's revision and commit index on a replica, or why it is out of service.
fn vault_state(replica: &ShardReplica) -> String {
    let machine = replica.machine();
    if let Some(reason) = machine.quarantined().get(&VAULT) {
        return format!("vault quarantined: {reason}");
    }
    match machine.vault(VAULT) {
        Some(vault) => format!(
            "vault revision {}, commit index {}",
            vault.revision().0,
            vault.commit_index()
        ),
        None => "no vault".into(),
    }
}

/// Off if on, else `on`.
fn toggle(current: u32, on: u64) -> u32 {
    if current > 0 {
        0
    } else {
        u32::try_from(on).unwrap_or(u32::MAX)
    }
}

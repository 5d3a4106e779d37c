//! The clients' side of the simulation: invoking writes and reads on nodes, and completing
//! them from what the nodes' groups answer.

use inferadb_raft::group::Completion;

use super::{Event, Simulation, OP_TIMEOUT, QUIESCE};
use crate::checker::Violation;
use crate::node::SimNode;
use crate::shard::{read_register, revision, write_command, write_effect, WriteEffect};
use crate::workload::{Consistency, OpKind, Outcome};

/// Percent of reads sent to a random node rather than the leader hint (a follower forwards
/// a read-index request to its leader).
const READ_ANYWHERE_PERCENT: u32 = 50;

impl Simulation {
    /// A client's turn: if it is idle, it starts its next operation.
    pub(super) fn client(&mut self, client: u64) {
        let Some(hint) = self.workload.idle(client) else {
            return;
        };
        if self.sched.now() + QUIESCE >= self.config.ticks {
            return;
        }
        let workload = self.config.workload;
        let key = self.sched.between(1, workload.keys);
        if self.sched.chance(workload.write_percent) {
            self.invoke_write(client, hint, key);
            return;
        }
        let token = self.workload.token(client);
        let consistency = if token > 0 && self.sched.chance(workload.token_percent) {
            Consistency::AtLeast(token)
        } else {
            Consistency::Full
        };
        let target = match hint {
            Some(node) if !self.sched.chance(READ_ANYWHERE_PERCENT) => node,
            _ => self.random_node(),
        };
        let kind = OpKind::Read { key, consistency };
        let op = self.workload.invoke(client, self.sched.now(), kind);
        self.sched.after(OP_TIMEOUT, Event::Expire(op));
        match consistency {
            Consistency::Full => self.invoke_read(op, target),
            Consistency::AtLeast(token) => self.invoke_token_read(op, target, token),
        }
    }

    fn invoke_write(&mut self, client: u64, hint: Option<u64>, key: u64) {
        let target = match hint {
            Some(node) => node,
            None => self.random_node(),
        };
        let now = self.sched.now();
        let value = self.workload.next_value();
        // The proposer stamps the command with its own clock, skewed or not.
        let skew = self.skew_ms.get(&target).copied().unwrap_or(0);
        let local = now.saturating_add_signed(skew);
        let data = match write_command(key, value, local) {
            Ok(data) => data,
            Err(error) => {
                self.fail(Violation {
                    invariant: "workload",
                    detail: format!("client {client} built a bad write: {error}"),
                });
                return;
            }
        };
        let kind = OpKind::Write {
            key,
            value,
            data: data.clone(),
        };
        let op = self.workload.invoke(client, now, kind);
        self.sched.after(OP_TIMEOUT, Event::Expire(op));
        let paused = self.paused(target).is_some();
        let group = self.nodes.get_mut(&target).and_then(SimNode::group_mut);
        let Some(group) = group.filter(|_| !paused) else {
            self.workload.hint(client, None);
            self.workload
                .complete(op, now, Outcome::Failed("node down".into()));
            return;
        };
        if !group.core().is_leader() {
            let leader = group.core().raw_node().raft.leader_id;
            self.workload.hint(client, (leader != 0).then_some(leader));
            self.workload
                .complete(op, now, Outcome::Failed("not leader".into()));
            return;
        }
        match group.propose(data) {
            Ok(ticket) => {
                self.sched.record(format!(
                    "op{op} write k{key}={value} at n{target} {ticket:?}"
                ));
                self.workload.wait(op, target, ticket);
                self.drain(target);
            }
            Err(error) => {
                self.workload
                    .complete(op, now, Outcome::Failed(error.to_string()));
            }
        }
    }

    /// A `fully_consistent` read: the node asks for a read index; the read is served once
    /// the group confirms it (see [`Self::serve_reads`]).
    fn invoke_read(&mut self, op: usize, target: u64) {
        let now = self.sched.now();
        self.next_read_id += 1;
        let request = self.next_read_id;
        let paused = self.paused(target).is_some();
        let group = self.nodes.get_mut(&target).and_then(SimNode::group_mut);
        let Some(group) = group.filter(|_| !paused) else {
            self.workload
                .complete(op, now, Outcome::Failed("node down".into()));
            return;
        };
        match group.read_index(request) {
            Ok(()) => {
                self.sched
                    .record(format!("op{op} read-index {request} at n{target}"));
                self.workload.wait_read(op, target, request);
                self.drain(target);
            }
            Err(error) => {
                self.workload
                    .complete(op, now, Outcome::Failed(error.to_string()));
            }
        }
    }

    /// An `at_least_as_fresh` read: served as soon as the node's vault reaches the token.
    fn invoke_token_read(&mut self, op: usize, target: u64, token: u64) {
        let now = self.sched.now();
        if self.paused(target).is_some() || !self.nodes.get(&target).is_some_and(SimNode::is_up) {
            self.workload
                .complete(op, now, Outcome::Failed("node down".into()));
            return;
        }
        if self.config.token_reads_skip_wait {
            self.read_now(op, target);
            return;
        }
        self.workload.wait_token(op, target, token);
        self.serve_token_reads(target);
    }

    /// Serves the confirmed reads `ready` and the token reads the node caught up with.
    pub(super) fn serve_reads(&mut self, id: u64, ready: &[u64]) {
        for &request in ready {
            if let Some(op) = self.workload.take_read(id, request) {
                self.read_now(op, id);
            }
        }
        self.serve_token_reads(id);
    }

    fn serve_token_reads(&mut self, id: u64) {
        let Some(group) = self.nodes.get(&id).and_then(SimNode::group) else {
            return;
        };
        let at = revision(group.machine().machine());
        for op in self.workload.take_token_reads(id, at) {
            self.read_now(op, id);
        }
    }

    /// Reads the operation's key on node `id` and completes it.
    fn read_now(&mut self, op: usize, id: u64) {
        let now = self.sched.now();
        let Some(group) = self.nodes.get(&id).and_then(SimNode::group) else {
            return;
        };
        let Some(operation) = self.workload.history.get(op) else {
            return;
        };
        let OpKind::Read { key, consistency } = operation.kind else {
            return;
        };
        let outcome = match read_register(group.machine().machine(), key) {
            Ok((values, revision)) => Outcome::Read {
                values,
                revision,
                node: id,
            },
            Err(error) => Outcome::Failed(error),
        };
        self.sched.record(format!("op{op} at n{id}: {outcome:?}"));
        if let (
            Consistency::AtLeast(token),
            Outcome::Read {
                values, revision, ..
            },
        ) = (consistency, &outcome)
        {
            if let Err(violation) = self.checker.token_read(key, token, values, *revision) {
                self.fail(violation);
            }
        }
        self.workload.complete(op, now, outcome);
    }

    /// A write's proposal finished on node `id`.
    pub(super) fn complete(&mut self, id: u64, completion: Completion) {
        let now = self.sched.now();
        let (ticket, outcome) = match completion {
            Completion::Applied { ticket, output } => {
                let index = ticket.index;
                (ticket, Outcome::Ok { index, output })
            }
            Completion::Dropped { ticket } => (ticket, Outcome::Failed("overwritten".into())),
            Completion::Unknown { ticket } => (ticket, Outcome::Unknown("snapshot".into())),
        };
        let Some(op) = self.workload.take(id, ticket) else {
            return;
        };
        self.sched.record(format!("op{op} at n{id}: {outcome:?}"));
        let Some(operation) = self.workload.history.get(op) else {
            return;
        };
        let (client, data) = match &operation.kind {
            OpKind::Write { data, .. } => (operation.client, data.clone()),
            OpKind::Read { .. } => return,
        };
        if let Outcome::Ok { output, .. } = &outcome {
            match write_effect(output) {
                WriteEffect::Written(revision) => self.workload.raise_token(client, revision),
                WriteEffect::Opaque => {}
                WriteEffect::Refused => {
                    let refusal = Outcome::Failed("the shard refused the write".into());
                    self.workload.complete(op, now, refusal);
                    return;
                }
                WriteEffect::Unknown => {
                    // This replica could not apply it; the others may have.
                    let local = Outcome::Unknown("refused by this replica only".into());
                    self.workload.complete(op, now, local);
                    return;
                }
            }
            if let Err(violation) = self.checker.acknowledged(ticket.index, &data) {
                self.fail(violation);
            }
        }
        self.workload.complete(op, now, outcome);
    }
}

//! Simulated clients and their history. Each client runs one operation at a time on a small
//! set of keys (registers, see [`crate::linearizability`]): a write replaces a key's value
//! with a fresh one; a `fully_consistent` read goes through raft's read-index round; an
//! `at_least_as_fresh` read waits until the chosen replica has applied the client's token
//! (the revision of its last write or read) and reads locally. Every invocation and
//! completion is stamped with a logical instant (a counter shared by all clients), so the
//! history orders them exactly, even within one simulated millisecond.

use std::collections::BTreeMap;

use inferadb_raft::core::Proposed;

use crate::scheduler::Millis;

/// How a read wants its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consistency {
    /// Linearizable: through the read-index round.
    Full,
    /// At least as fresh as the revision token.
    AtLeast(u64),
}

/// What an operation does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpKind {
    /// Replace the key's value with `value`; `data` is the shard command.
    Write {
        /// The key.
        key: u64,
        /// The new value (unique in the run).
        value: u64,
        /// The encoded shard command.
        data: Vec<u8>,
    },
    /// Read the key.
    Read {
        /// The key.
        key: u64,
        /// How fresh.
        consistency: Consistency,
    },
}

impl OpKind {
    /// The key the operation touches.
    pub fn key(&self) -> u64 {
        match self {
            OpKind::Write { key, .. } | OpKind::Read { key, .. } => *key,
        }
    }
}

/// How an operation completed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A write applied at `index`; the state machine answered `output`.
    Ok {
        /// Where it applied.
        index: u64,
        /// The state machine's answer.
        output: Vec<u8>,
    },
    /// A read answered: the values it saw, at the vault revision it read.
    Read {
        /// The values.
        values: Vec<u64>,
        /// The revision read.
        revision: u64,
        /// The node that served it.
        node: u64,
    },
    /// It never took effect.
    Failed(String),
    /// It may or may not have taken effect.
    Unknown(String),
}

/// One client operation.
#[derive(Debug, Clone)]
pub struct Operation {
    /// The client.
    pub client: u64,
    /// What it does.
    pub kind: OpKind,
    /// When it was invoked (simulated ms).
    pub invoked: Millis,
    /// Its logical invocation instant.
    pub invoked_stamp: u64,
    /// When and how it completed, and the logical completion instant.
    pub completed: Option<(Millis, u64, Outcome)>,
}

/// Where a write waits for its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Ticket {
    node: u64,
    index: u64,
    term: u64,
}

/// A client's state.
#[derive(Debug, Clone, Copy, Default)]
struct Client {
    hint: Option<u64>,
    in_flight: Option<usize>,
    /// The revision of its last write or read.
    token: u64,
}

/// The clients and their history.
#[derive(Default)]
pub struct Workload {
    /// Every operation, in invocation order.
    pub history: Vec<Operation>,
    clients: BTreeMap<u64, Client>,
    waiting: BTreeMap<Ticket, usize>,
    /// Reads waiting for read-index confirmation: (node, request id) → operation.
    reads: BTreeMap<(u64, u64), usize>,
    /// Token reads waiting for their node to catch up: operation → (node, token).
    token_reads: BTreeMap<usize, (u64, u64)>,
    stamp: u64,
}

impl Workload {
    /// `count` clients with no leader hint.
    pub fn new(count: u64) -> Self {
        Workload {
            clients: (1..=count).map(|c| (c, Client::default())).collect(),
            ..Workload::default()
        }
    }

    /// The client's leader hint, if it has no operation in flight.
    pub fn idle(&self, client: u64) -> Option<Option<u64>> {
        match self.clients.get(&client) {
            Some(state) if state.in_flight.is_none() => Some(state.hint),
            _ => None,
        }
    }

    /// The client's revision token (0: none yet).
    pub fn token(&self, client: u64) -> u64 {
        self.clients.get(&client).map_or(0, |c| c.token)
    }

    /// Points the client at another node.
    pub fn hint(&mut self, client: u64, node: Option<u64>) {
        if let Some(entry) = self.clients.get_mut(&client) {
            entry.hint = node;
        }
    }

    /// The value the next write writes (its operation number: unique).
    pub fn next_value(&self) -> u64 {
        self.history.len() as u64
    }

    /// Starts an operation; returns its number.
    pub fn invoke(&mut self, client: u64, now: Millis, kind: OpKind) -> usize {
        let number = self.history.len();
        self.stamp += 1;
        self.history.push(Operation {
            client,
            kind,
            invoked: now,
            invoked_stamp: self.stamp,
            completed: None,
        });
        if let Some(entry) = self.clients.get_mut(&client) {
            entry.in_flight = Some(number);
        }
        number
    }

    /// The write waits for `node` to apply `ticket`.
    pub fn wait(&mut self, op: usize, node: u64, ticket: Proposed) {
        let key = Ticket {
            node,
            index: ticket.index,
            term: ticket.term,
        };
        self.waiting.insert(key, op);
    }

    /// The read waits for `node` to confirm read `request`.
    pub fn wait_read(&mut self, op: usize, node: u64, request: u64) {
        self.reads.insert((node, request), op);
    }

    /// The token read waits for `node` to reach `token`.
    pub fn wait_token(&mut self, op: usize, node: u64, token: u64) {
        self.token_reads.insert(op, (node, token));
    }

    /// The read confirmed at `node` as `request`, no longer waiting.
    pub fn take_read(&mut self, node: u64, request: u64) -> Option<usize> {
        self.reads.remove(&(node, request))
    }

    /// The token reads at `node` whose token is at most `revision`, no longer waiting.
    pub fn take_token_reads(&mut self, node: u64, revision: u64) -> Vec<usize> {
        let ready: Vec<usize> = self
            .token_reads
            .iter()
            .filter(|(_, (n, token))| *n == node && *token <= revision)
            .map(|(op, _)| *op)
            .collect();
        for op in &ready {
            self.token_reads.remove(op);
        }
        ready
    }

    /// Completes `op` (and raises its client's token to a read's revision).
    pub fn complete(&mut self, op: usize, now: Millis, outcome: Outcome) {
        self.stamp += 1;
        let stamp = self.stamp;
        let Some(operation) = self.history.get_mut(op) else {
            return;
        };
        if operation.completed.is_some() {
            return;
        }
        let revision = match &outcome {
            Outcome::Read { revision, .. } => *revision,
            _ => 0,
        };
        operation.completed = Some((now, stamp, outcome));
        if let Some(entry) = self.clients.get_mut(&operation.client) {
            entry.in_flight = None;
            entry.token = entry.token.max(revision);
        }
    }

    /// Raises `client`'s token to the revision its write produced.
    pub fn raise_token(&mut self, client: u64, revision: u64) {
        if let Some(entry) = self.clients.get_mut(&client) {
            entry.token = entry.token.max(revision);
        }
    }

    /// The operation waiting on `node` for `ticket`, no longer waiting.
    pub fn take(&mut self, node: u64, ticket: Proposed) -> Option<usize> {
        let key = Ticket {
            node,
            index: ticket.index,
            term: ticket.term,
        };
        self.waiting.remove(&key)
    }

    /// Every operation waiting on `node` (it crashed): their outcome is unknown.
    pub fn abandon(&mut self, node: u64, now: Millis) {
        let mut lost: Vec<usize> = Vec::new();
        self.waiting.retain(|ticket, op| {
            let keep = ticket.node != node;
            if !keep {
                lost.push(*op);
            }
            keep
        });
        self.reads.retain(|(n, _), op| {
            let keep = *n != node;
            if !keep {
                lost.push(*op);
            }
            keep
        });
        self.token_reads.retain(|op, (n, _)| {
            let keep = *n != node;
            if !keep {
                lost.push(*op);
            }
            keep
        });
        lost.sort_unstable();
        for op in lost {
            self.complete(op, now, Outcome::Unknown("node crashed".into()));
        }
    }

    /// Gives up on `op` if it is still in flight (a timeout): its outcome is unknown.
    pub fn expire(&mut self, op: usize, now: Millis) {
        let pending = self.history.get(op).is_some_and(|o| o.completed.is_none());
        if pending {
            self.waiting.retain(|_, waiting| *waiting != op);
            self.reads.retain(|_, waiting| *waiting != op);
            self.token_reads.remove(&op);
            self.complete(op, now, Outcome::Unknown("timed out".into()));
        }
    }
}

/// Counts over a history, for the summary.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// Writes invoked.
    pub writes: usize,
    /// Writes acknowledged.
    pub writes_ok: usize,
    /// Reads invoked.
    pub reads: usize,
    /// Reads answered.
    pub reads_ok: usize,
    /// Operations that failed (no effect).
    pub failed: usize,
    /// Operations whose outcome is unknown.
    pub unknown: usize,
}

impl Workload {
    /// Counts the history.
    pub fn tally(&self) -> Tally {
        let mut tally = Tally::default();
        for op in &self.history {
            let is_write = matches!(op.kind, OpKind::Write { .. });
            if is_write {
                tally.writes += 1;
            } else {
                tally.reads += 1;
            }
            match op.completed.as_ref().map(|(_, _, o)| o) {
                Some(Outcome::Ok { .. }) => tally.writes_ok += 1,
                Some(Outcome::Read { .. }) => tally.reads_ok += 1,
                Some(Outcome::Failed(_)) => tally.failed += 1,
                Some(Outcome::Unknown(_)) | None => tally.unknown += 1,
            }
        }
        tally
    }

    /// Writes invoked at or after `since` that completed `Ok`.
    pub fn ok_since(&self, since: Millis) -> usize {
        self.history
            .iter()
            .filter(|op| op.invoked >= since)
            .filter(|op| matches!(op.completed, Some((_, _, Outcome::Ok { .. }))))
            .count()
    }
}

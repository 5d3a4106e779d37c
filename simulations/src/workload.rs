//! Simulated clients: each writes relationships one at a time to the node it believes
//! leads, and the history records every invocation and how it completed.

use std::collections::BTreeMap;

use inferadb_raft::core::Proposed;

use crate::scheduler::Millis;

/// How a write completed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Applied at `index`; the state machine answered `output` (the state root).
    Ok {
        /// Where it applied.
        index: u64,
        /// The state machine's answer.
        output: Vec<u8>,
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
    /// The written relationship.
    pub data: Vec<u8>,
    /// When it was invoked.
    pub invoked: Millis,
    /// When and how it completed.
    pub completed: Option<(Millis, Outcome)>,
}

/// Where an operation waits for its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Ticket {
    node: u64,
    index: u64,
    term: u64,
}

/// The clients and their history.
#[derive(Default)]
pub struct Workload {
    /// Every operation, in invocation order.
    pub history: Vec<Operation>,
    /// client → (its leader hint, its operation in flight).
    clients: BTreeMap<u64, (Option<u64>, Option<usize>)>,
    waiting: BTreeMap<Ticket, usize>,
}

impl Workload {
    /// `count` clients with no leader hint.
    pub fn new(count: u64) -> Self {
        Workload {
            clients: (1..=count).map(|c| (c, (None, None))).collect(),
            ..Workload::default()
        }
    }

    /// The client's leader hint, if it has no operation in flight.
    pub fn idle(&self, client: u64) -> Option<Option<u64>> {
        match self.clients.get(&client) {
            Some((hint, None)) => Some(*hint),
            _ => None,
        }
    }

    /// Points the client at another node.
    pub fn hint(&mut self, client: u64, node: Option<u64>) {
        if let Some(entry) = self.clients.get_mut(&client) {
            entry.0 = node;
        }
    }

    /// The relationship the next write creates.
    pub fn next_relationship(&self, client: u64) -> String {
        format!("doc:d{}#viewer@user:u{client}", self.history.len())
    }

    /// Starts a write of `data`; returns its number.
    pub fn invoke(&mut self, client: u64, now: Millis, data: Vec<u8>) -> usize {
        let number = self.history.len();
        self.history.push(Operation {
            client,
            data,
            invoked: now,
            completed: None,
        });
        if let Some(entry) = self.clients.get_mut(&client) {
            entry.1 = Some(number);
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

    /// Completes `op`; returns its data.
    pub fn complete(&mut self, op: usize, now: Millis, outcome: Outcome) -> Vec<u8> {
        let Some(operation) = self.history.get_mut(op) else {
            return Vec::new();
        };
        operation.completed = Some((now, outcome));
        if let Some(entry) = self.clients.get_mut(&operation.client) {
            entry.1 = None;
        }
        operation.data.clone()
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
        let lost: Vec<Ticket> = self
            .waiting
            .keys()
            .filter(|t| t.node == node)
            .copied()
            .collect();
        for ticket in lost {
            if let Some(op) = self.waiting.remove(&ticket) {
                self.complete(op, now, Outcome::Unknown("node crashed".into()));
            }
        }
    }

    /// How many operations failed, and how many have an unknown outcome.
    pub fn failed_unknown(&self) -> (usize, usize) {
        let outcomes = self.history.iter().filter_map(|op| op.completed.as_ref());
        let failed = outcomes
            .clone()
            .filter(|(_, o)| matches!(o, Outcome::Failed(_)))
            .count();
        let unknown = outcomes
            .filter(|(_, o)| matches!(o, Outcome::Unknown(_)))
            .count();
        (failed, unknown)
    }

    /// Operations invoked at or after `since` that completed `Ok`.
    pub fn ok_since(&self, since: Millis) -> usize {
        self.history
            .iter()
            .filter(|op| op.invoked >= since)
            .filter(|op| matches!(op.completed, Some((_, Outcome::Ok { .. }))))
            .count()
    }
}

impl Workload {
    /// Gives up on `op` if it is still in flight (a timeout): its outcome is unknown.
    pub fn expire(&mut self, op: usize, now: Millis) {
        let pending = self.history.get(op).is_some_and(|o| o.completed.is_none());
        if pending {
            self.waiting.retain(|_, waiting| *waiting != op);
            self.complete(op, now, Outcome::Unknown("timed out".into()));
        }
    }
}

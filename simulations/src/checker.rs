//! The invariant checkers, run after every event: election safety, state-machine safety
//! (replicas agree on the write and the state root at every applied index, which with the
//! hash chain implies log matching over the applied prefix), durability (no acknowledged
//! write is ever replaced) and, at the end of a run, liveness.

use std::collections::BTreeMap;

use inferadb_shard::ShardCommand;
use inferadb_vault::Mutation;
use raft::eraftpb::Entry;

use crate::machine::Root;

/// A broken invariant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Which invariant (`election_safety`, `state_machine_safety`, `durability`,
    /// `liveness`).
    pub invariant: &'static str,
    /// What was seen.
    pub detail: String,
}

/// The checkers' memory of the run.
#[derive(Default)]
pub struct Checker {
    /// term → the leader elected in it.
    leaders: BTreeMap<u64, u64>,
    /// index → (write, root) first applied there by any node.
    applied: BTreeMap<u64, (Vec<u8>, Root)>,
    /// index → the write acknowledged to a client at it.
    acked: BTreeMap<u64, Vec<u8>>,
    /// node → the highest ledger index already compared.
    checked: BTreeMap<u64, u64>,
    /// Individual invariant checks performed.
    pub checks: u64,
}

impl Checker {
    /// `node` became leader of `term`.
    pub fn leader(&mut self, node: u64, term: u64) -> Result<(), Violation> {
        self.checks += 1;
        let first = *self.leaders.entry(term).or_insert(node);
        if first == node {
            return Ok(());
        }
        Err(Violation {
            invariant: "election_safety",
            detail: format!("nodes {first} and {node} both led term {term}"),
        })
    }

    /// A client was told its write `data` applied at `index`.
    pub fn acknowledged(&mut self, index: u64, data: &[u8]) -> Result<(), Violation> {
        self.checks += 1;
        if let Some(earlier) = self.acked.get(&index).filter(|e| *e != data) {
            return Err(Violation {
                invariant: "durability",
                detail: format!(
                    "write {} acknowledged at index {index}, where {} was acknowledged before",
                    show(data),
                    show(earlier)
                ),
            });
        }
        self.acked.insert(index, data.to_vec());
        match self.applied.get(&index) {
            Some((seen, _)) if seen != data => Err(Violation {
                invariant: "durability",
                detail: format!(
                    "write {} acknowledged at index {index}, where {} was applied",
                    show(data),
                    show(seen)
                ),
            }),
            _ => Ok(()),
        }
    }

    /// The writes acknowledged so far, by index.
    pub fn acked(&self) -> &BTreeMap<u64, Vec<u8>> {
        &self.acked
    }

    /// `node` restarted with an empty ledger: compare it again from the start.
    pub fn restarted(&mut self, node: u64) {
        self.checked.remove(&node);
    }

    /// Compares what `node` applied since the last call with every other replica.
    /// `applied` holds the write and the state root after it at each index.
    pub fn observe(
        &mut self,
        node: u64,
        applied: &BTreeMap<u64, (Vec<u8>, Root)>,
    ) -> Result<(), Violation> {
        let from = self.checked.get(&node).copied().unwrap_or(0);
        for (&index, (data, root)) in applied.range(from + 1..) {
            self.checks += 1;
            self.checked.insert(node, index);
            if let Some(acked) = self.acked.get(&index).filter(|a| *a != data) {
                return Err(Violation {
                    invariant: "durability",
                    detail: format!(
                        "node {node} applied {} at index {index}, where {} was acknowledged",
                        show(data),
                        show(acked)
                    ),
                });
            }
            match self.applied.get(&index) {
                Some((seen, seen_root)) if seen_root != root => {
                    return Err(Violation {
                        invariant: "state_machine_safety",
                        detail: format!(
                            "node {node} applied {} at index {index} (root {}), where {} \
                             (root {}) was applied before",
                            show(data),
                            short(root),
                            show(seen),
                            short(seen_root)
                        ),
                    });
                }
                Some(_) => {}
                None => {
                    self.applied.insert(index, (data.clone(), *root));
                }
            }
        }
        Ok(())
    }

    /// Log matching between two nodes' stored logs: if both hold an entry with the same
    /// index and term, they hold the same entries up to it.
    pub fn log_matching(
        &mut self,
        a: (u64, &[Entry]),
        b: (u64, &[Entry]),
    ) -> Result<(), Violation> {
        self.checks += 1;
        let theirs: BTreeMap<u64, &Entry> = b.1.iter().map(|e| (e.index, e)).collect();
        let agreed = a.1.iter().rev().find(|e| {
            theirs
                .get(&e.index)
                .is_some_and(|other| other.term == e.term)
        });
        let Some(agreed) = agreed else {
            return Ok(());
        };
        for entry in a.1.iter().filter(|e| e.index <= agreed.index) {
            let Some(other) = theirs.get(&entry.index) else {
                continue;
            };
            if other.term != entry.term || other.data != entry.data {
                return Err(Violation {
                    invariant: "log_matching",
                    detail: format!(
                        "nodes {} and {} agree on index {} term {} but differ at index {}",
                        a.0, b.0, agreed.index, agreed.term, entry.index
                    ),
                });
            }
        }
        Ok(())
    }

    /// Leaders elected so far (one per term).
    pub fn elections(&self) -> usize {
        self.leaders.len()
    }
}

/// A write for a report: the relationships a shard write creates, else the command.
fn show(data: &[u8]) -> String {
    match ShardCommand::decode(data) {
        Ok(ShardCommand::Write { batch, .. }) => {
            let mutations: Vec<String> = batch
                .mutations
                .iter()
                .map(|m| match m {
                    Mutation::Create(r) => format!("create {r}"),
                    other => format!("{other:?}"),
                })
                .collect();
            format!("[{}]", mutations.join(", "))
        }
        Ok(command) => format!("{command:?}"),
        Err(_) => format!("{:?}", String::from_utf8_lossy(data)),
    }
}

fn short(root: &Root) -> String {
    root.iter().take(4).map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::machine::Ledger;
    use inferadb_raft::group::StateMachine;

    #[test]
    fn two_leaders_in_a_term_are_caught() {
        let mut c = Checker::default();
        assert!(c.leader(1, 3).is_ok());
        assert!(c.leader(1, 3).is_ok());
        assert_eq!(
            c.leader(2, 3).map_err(|v| v.invariant),
            Err("election_safety")
        );
    }

    #[test]
    fn diverging_replicas_and_lost_acks_are_caught() {
        let mut c = Checker::default();
        let (mut a, mut b) = (Ledger::default(), Ledger::default());
        a.apply(2, b"x");
        b.apply(2, b"y");
        assert!(c.observe(1, a.entries()).is_ok());
        let seen = c.observe(2, b.entries()).map_err(|v| v.invariant);
        assert_eq!(seen, Err("state_machine_safety"));
        assert!(c.acknowledged(3, b"z").is_ok());
        a.apply(3, b"w");
        assert_eq!(
            c.observe(1, a.entries()).map_err(|v| v.invariant),
            Err("durability")
        );
    }

    fn entry(index: u64, term: u64, data: &[u8]) -> Entry {
        Entry {
            index,
            term,
            data: data.to_vec().into(),
            ..Entry::default()
        }
    }

    #[test]
    fn logs_that_agree_on_a_term_but_differ_before_it_are_caught() {
        let mut c = Checker::default();
        let a = [entry(2, 1, b"x"), entry(3, 2, b"y")];
        let same = [entry(2, 1, b"x"), entry(3, 2, b"y"), entry(4, 2, b"z")];
        let forked = [entry(2, 1, b"w"), entry(3, 2, b"y")];
        let diverged = [entry(2, 1, b"x"), entry(3, 3, b"q")];
        assert!(c.log_matching((1, &a), (2, &same)).is_ok());
        assert!(c.log_matching((1, &a), (3, &diverged)).is_ok());
        let seen = c
            .log_matching((1, &a), (4, &forked))
            .map_err(|v| v.invariant);
        assert_eq!(seen, Err("log_matching"));
    }
}

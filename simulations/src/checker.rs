//! The invariant checkers, run after every event: election safety, state-machine safety
//! (replicas agree on the write and the state root at every applied index, which with the
//! hash chain implies log matching over the applied prefix), durability (no acknowledged
//! write is ever replaced), read-your-writes for token reads, and at the end of a run
//! linearizability of the client history (see [`crate::linearizability`]) and liveness.

use std::collections::BTreeMap;

use inferadb_shard::ShardCommand;
use inferadb_vault::Mutation;
use raft::eraftpb::Entry;

use crate::linearizability::{check_register, RegisterOp, TimedOp, Verdict};
use crate::machine::Root;
use crate::shard::{decode_write, AppliedEntry};
use crate::workload::{Consistency, OpKind, Operation, Outcome};

/// Search steps the linearizability checker may take per key before it gives up
/// (inconclusive, which is reported but is not a violation).
pub const LINEARIZABILITY_BUDGET: u64 = 2_000_000;

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
    /// vault revision → the (key, value) the write that produced it wrote.
    effects: BTreeMap<u64, (u64, u64)>,
    /// Terms whose leader was checked for completeness.
    complete_terms: std::collections::BTreeSet<u64>,
    /// Keys whose linearizability search gave up.
    pub inconclusive: u64,
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

    /// Whether the leader of `term` still needs its completeness check.
    pub fn needs_completeness(&self, term: u64) -> bool {
        !self.complete_terms.contains(&term)
    }

    /// Leader completeness, when `node` is first seen leading `term`: it holds every write
    /// acknowledged so far, in its stored log (`entries`, from index `first` on) or below
    /// its snapshot (indices before `first`).
    pub fn leader_completeness(
        &mut self,
        node: u64,
        term: u64,
        first: u64,
        entries: &[Entry],
    ) -> Result<(), Violation> {
        if !self.complete_terms.insert(term) {
            return Ok(());
        }
        let held: BTreeMap<u64, &[u8]> = entries.iter().map(|e| (e.index, &e.data[..])).collect();
        for (&index, data) in self.acked.range(first..) {
            self.checks += 1;
            match held.get(&index) {
                Some(stored) if stored == data => {}
                other => {
                    let found = other.map_or_else(|| "nothing".to_string(), |d| show(d));
                    return Err(Violation {
                        invariant: "leader_completeness",
                        detail: format!(
                            "node {node} leads term {term} without acknowledged write {} at \
                             index {index} (its log holds {found} there)",
                            show(data)
                        ),
                    });
                }
            }
        }
        Ok(())
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

    /// Compares what `node` applied since the last call with every other replica, and
    /// learns which value each write revision holds.
    pub fn observe(
        &mut self,
        node: u64,
        applied: &BTreeMap<u64, AppliedEntry>,
    ) -> Result<(), Violation> {
        let from = self.checked.get(&node).copied().unwrap_or(0);
        for (&index, entry) in applied.range(from + 1..) {
            let (data, root) = (&entry.data, &entry.root);
            if let (Some(revision), Some(write)) = (entry.revision, decode_write(data)) {
                self.effects.entry(revision).or_insert(write);
            }
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
            let Some(root) = root else {
                // Skipped as already applied: only the command can be compared.
                match self.applied.get(&index) {
                    Some((seen, _)) if seen != data => {
                        return Err(Violation {
                            invariant: "state_machine_safety",
                            detail: format!(
                                "node {node} replayed {} at index {index}, where {} was applied",
                                show(data),
                                show(seen)
                            ),
                        });
                    }
                    _ => continue,
                }
            };
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

    /// A token read of `key` with `token` returned `values` at `revision`: the revision
    /// must be at least the token, and the values those the committed history holds at that
    /// revision (so the client's own last write, which the token covers, or a later one).
    pub fn token_read(
        &mut self,
        key: u64,
        token: u64,
        values: &[u64],
        revision: u64,
    ) -> Result<(), Violation> {
        self.checks += 1;
        let detail = if revision < token {
            format!("a read with token {token} was served at revision {revision}")
        } else {
            let expected: Vec<u64> = self
                .effects
                .range(..=revision)
                .rev()
                .find(|(_, (k, _))| *k == key)
                .map(|(_, (_, value))| *value)
                .into_iter()
                .collect();
            if expected == values {
                return Ok(());
            }
            format!(
                "key {key} read {values:?} at revision {revision} (token {token}), but the \
                 committed history holds {expected:?} there"
            )
        };
        Err(Violation {
            invariant: "read_your_writes",
            detail,
        })
    }

    /// Linearizability of the `fully_consistent` reads and the writes, key by key.
    pub fn linearizability(&mut self, history: &[Operation]) -> Result<(), Violation> {
        let mut by_key: BTreeMap<u64, Vec<TimedOp>> = BTreeMap::new();
        for (id, operation) in history.iter().enumerate() {
            if let Some(timed) = timed(id, operation) {
                by_key.entry(operation.kind.key()).or_default().push(timed);
            }
        }
        for (key, ops) in by_key {
            self.checks += 1;
            match check_register(&ops, LINEARIZABILITY_BUDGET) {
                Verdict::Linearizable => {}
                Verdict::Inconclusive => self.inconclusive += 1,
                Verdict::NotLinearizable { stuck_at, prefix } => {
                    return Err(Violation {
                        invariant: "linearizability",
                        detail: format!(
                            "key {key}: no linearization of its {} operations; the deepest \
                             attempt placed {prefix} and then could not place op{stuck_at} \
                             ({})",
                            ops.len(),
                            describe(history, stuck_at)
                        ),
                    })
                }
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
    if let Some((key, value)) = decode_write(data) {
        return format!("[write k{key}={value}]");
    }
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

/// An operation as the register checker sees it, if it belongs in the history: acknowledged
/// and unknown writes, answered `fully_consistent` reads.
fn timed(id: usize, operation: &Operation) -> Option<TimedOp> {
    let completed = operation.completed.as_ref();
    let (op, returned) = match (&operation.kind, completed.map(|(_, s, o)| (*s, o))) {
        (OpKind::Write { value, .. }, Some((stamp, Outcome::Ok { .. }))) => {
            (RegisterOp::Write(*value), Some(stamp))
        }
        (OpKind::Write { value, .. }, Some((_, Outcome::Unknown(_))) | None) => {
            (RegisterOp::Write(*value), None)
        }
        (
            OpKind::Read {
                consistency: Consistency::Full,
                ..
            },
            Some((stamp, Outcome::Read { values, .. })),
        ) => (RegisterOp::Read(values.clone()), Some(stamp)),
        _ => return None,
    };
    Some(TimedOp {
        op,
        invoked: operation.invoked_stamp,
        returned,
        id,
    })
}

/// One operation for a report.
fn describe(history: &[Operation], id: usize) -> String {
    let Some(op) = history.get(id) else {
        return "?".into();
    };
    let what = match &op.kind {
        OpKind::Write { key, value, .. } => format!("write k{key}={value}"),
        OpKind::Read {
            key, consistency, ..
        } => format!("read k{key} {consistency:?}"),
    };
    let outcome = match &op.completed {
        Some((at, _, outcome)) => format!("completed at {at}ms: {outcome:?}"),
        None => "never completed".into(),
    };
    format!(
        "client {} {what}, invoked at {}ms, {outcome}",
        op.client, op.invoked
    )
}

fn short(root: &Root) -> String {
    root.iter().take(4).map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::machine::Ledger;
    use inferadb_raft::group::StateMachine;

    fn entries(ledger: &Ledger) -> BTreeMap<u64, AppliedEntry> {
        ledger
            .entries()
            .iter()
            .map(|(index, (data, root))| {
                let entry = AppliedEntry {
                    data: data.clone(),
                    root: Some(*root),
                    revision: None,
                };
                (*index, entry)
            })
            .collect()
    }

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
        assert!(c.observe(1, &entries(&a)).is_ok());
        let seen = c.observe(2, &entries(&b)).map_err(|v| v.invariant);
        assert_eq!(seen, Err("state_machine_safety"));
        assert!(c.acknowledged(3, b"z").is_ok());
        a.apply(3, b"w");
        assert_eq!(
            c.observe(1, &entries(&a)).map_err(|v| v.invariant),
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

    #[test]
    fn token_reads_older_than_their_token_or_the_history_are_caught() {
        let mut c = Checker::default();
        let write = crate::shard::write_command(1, 7, 0).expect("a valid write");
        let applied = BTreeMap::from([(
            3,
            AppliedEntry {
                data: write,
                root: Some([1; 32]),
                revision: Some(2),
            },
        )]);
        assert!(c.observe(1, &applied).is_ok());
        assert!(c.token_read(1, 2, &[7], 2).is_ok());
        assert!(c.token_read(1, 0, &[], 1).is_ok());
        let stale = c.token_read(1, 2, &[], 1).map_err(|v| v.invariant);
        assert_eq!(stale, Err("read_your_writes"));
        let wrong = c.token_read(1, 2, &[6], 2).map_err(|v| v.invariant);
        assert_eq!(wrong, Err("read_your_writes"));
    }

    #[test]
    fn a_leader_without_an_acknowledged_write_is_caught() {
        let mut c = Checker::default();
        assert!(c.acknowledged(3, b"x").is_ok());
        assert!(c.acknowledged(4, b"y").is_ok());
        let full = [entry(3, 1, b"x"), entry(4, 1, b"y")];
        assert!(c.leader_completeness(1, 2, 3, &full).is_ok());
        // Below the snapshot (first index 5): covered.
        assert!(c.leader_completeness(2, 3, 5, &[]).is_ok());
        let missing = c
            .leader_completeness(3, 4, 3, &full[..1])
            .map_err(|v| v.invariant);
        assert_eq!(missing, Err("leader_completeness"));
        let other = [entry(3, 1, b"x"), entry(4, 2, b"z")];
        let replaced = c
            .leader_completeness(1, 5, 3, &other)
            .map_err(|v| v.invariant);
        assert_eq!(replaced, Err("leader_completeness"));
        assert!(!c.needs_completeness(5));
    }
}

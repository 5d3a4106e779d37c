//! A linearizability checker for one register: the Wing–Gong search with Lowe's
//! memoization (as in Porcupine and Knossos), over a history of writes and reads.
//!
//! # The model
//!
//! Each key of the workload is a register holding at most one value: a write replaces the
//! key's relationship with one naming a fresh value (values are unique per run), a read
//! returns the values the key's relationships name (at most one on a correct system; an
//! empty register reads as no value).
//!
//! # Why checking key by key is sound
//!
//! Linearizability is *local* (Herlihy and Wing, 1990, theorem 1): a history over several
//! objects is linearizable if and only if each object's subhistory is. The theorem needs every
//! operation to act on exactly one object, which holds here: a write's batch deletes and
//! creates relationships of one key only, and a read reads one key. The ledger's revision,
//! which every write advances, is *not* part of the model (a read's revision is checked by
//! the read-your-writes checker instead), so no operation observes two keys.
//!
//! # Incomplete operations
//!
//! A write whose outcome is unknown (timed out, its node crashed, a snapshot covered it) may
//! or may not have taken effect: it is kept with its response at infinity, so it may be
//! linearized anywhere after its invocation, or never. A write that failed (refused, not
//! leader, overwritten by another leader) never took effect and is left out. So is a read
//! without an answer: reads change nothing. An unknown write whose value no read returned is
//! dropped too: any linearization with it stays one without it (no read sits between it and
//! the next write), and the search stays small.

use std::collections::HashSet;

/// One register operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegisterOp {
    /// Set the register to the value.
    Write(u64),
    /// Read the register; the values the read returned (empty: the register was empty).
    Read(Vec<u64>),
}

/// An operation with its invocation and response instants (any totally ordered stamps;
/// `None` for a response that never came).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimedOp {
    /// The operation.
    pub op: RegisterOp,
    /// When it was invoked.
    pub invoked: u64,
    /// When it returned, if it did.
    pub returned: Option<u64>,
    /// Its number in the workload's history (for reports).
    pub id: usize,
}

/// What the search concluded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// A linearization exists.
    Linearizable,
    /// None exists; `stuck_at` is the operation (its history number) that could not be
    /// linearized in the deepest attempt, and `prefix` how many operations that attempt
    /// linearized.
    NotLinearizable {
        /// The operation the deepest attempt could not place.
        stuck_at: usize,
        /// Operations linearized by the deepest attempt.
        prefix: usize,
    },
    /// The search gave up after its step budget.
    Inconclusive,
}

/// No link.
const NIL: usize = usize::MAX;
/// The list's head (a sentinel entry).
const HEAD: usize = 0;

/// One entry of the doubly linked event list: the call or the return of an operation.
#[derive(Clone, Copy)]
struct Event {
    op: usize,
    /// For a call, the entry of its return; `NIL` for a return.
    matching: usize,
}

/// The event list: entries in time order, with lift/unlift in O(1) (dancing links).
struct EventList {
    events: Vec<Event>,
    next: Vec<usize>,
    prev: Vec<usize>,
}

impl EventList {
    fn new(ops: &[TimedOp]) -> Self {
        // (time, is_return, op): a pending return sorts after everything.
        let mut stamps: Vec<(u64, bool, usize)> = Vec::with_capacity(ops.len() * 2);
        for (i, op) in ops.iter().enumerate() {
            stamps.push((op.invoked, false, i));
            stamps.push((op.returned.unwrap_or(u64::MAX), true, i));
        }
        stamps.sort_unstable();
        let mut events = vec![Event {
            op: NIL,
            matching: NIL,
        }];
        let mut return_entry = vec![NIL; ops.len()];
        for (position, &(_, is_return, op)) in stamps.iter().enumerate() {
            if is_return {
                return_entry[op] = position + 1;
            }
            events.push(Event { op, matching: NIL });
        }
        for (position, &(_, is_return, op)) in stamps.iter().enumerate() {
            if !is_return {
                events[position + 1].matching = return_entry[op];
            }
        }
        let count = events.len();
        let next = (0..count)
            .map(|i| if i + 1 < count { i + 1 } else { NIL })
            .collect();
        let prev = (0..count)
            .map(|i| if i == 0 { NIL } else { i - 1 })
            .collect();
        EventList { events, next, prev }
    }

    fn unlink(&mut self, entry: usize) {
        let (prev, next) = (self.prev[entry], self.next[entry]);
        self.next[prev] = next;
        if next != NIL {
            self.prev[next] = prev;
        }
    }

    fn relink(&mut self, entry: usize) {
        let (prev, next) = (self.prev[entry], self.next[entry]);
        self.next[prev] = entry;
        if next != NIL {
            self.prev[next] = entry;
        }
    }

    /// Removes a call and its return (linearized).
    fn lift(&mut self, call: usize) {
        self.unlink(call);
        self.unlink(self.events[call].matching);
    }

    /// Puts them back, in the reverse order of [`Self::lift`].
    fn unlift(&mut self, call: usize) {
        self.relink(self.events[call].matching);
        self.relink(call);
    }
}

/// The register after `op` from `state`, if `op` can happen in `state`.
fn step(state: Option<u64>, op: &RegisterOp) -> Option<Option<u64>> {
    match op {
        RegisterOp::Write(value) => Some(Some(*value)),
        RegisterOp::Read(values) => {
            let expected: &[u64] = match &state {
                Some(value) => std::slice::from_ref(value),
                None => &[],
            };
            (values.as_slice() == expected).then_some(state)
        }
    }
}

/// Drops the unknown writes no read observed (see the module docs).
fn prune(ops: &[TimedOp]) -> Vec<TimedOp> {
    let read: HashSet<u64> = ops
        .iter()
        .filter_map(|o| match &o.op {
            RegisterOp::Read(values) => Some(values.iter().copied()),
            RegisterOp::Write(_) => None,
        })
        .flatten()
        .collect();
    ops.iter()
        .filter(|o| match o.op {
            RegisterOp::Write(value) => o.returned.is_some() || read.contains(&value),
            RegisterOp::Read(_) => true,
        })
        .cloned()
        .collect()
}

/// Searches for a linearization of `ops` on a register that starts empty, taking at most
/// `budget` search steps.
pub fn check_register(ops: &[TimedOp], budget: u64) -> Verdict {
    let ops = prune(ops);
    let mut list = EventList::new(&ops);
    let words = ops.len().div_ceil(64);
    let mut linearized = vec![0u64; words];
    let mut cache: HashSet<(Vec<u64>, Option<u64>)> = HashSet::new();
    let mut calls: Vec<(usize, Option<u64>)> = Vec::new();
    let mut state: Option<u64> = None;
    let mut entry = list.next[HEAD];
    let mut deepest = (0usize, NIL);
    let mut steps = 0u64;
    while list.next[HEAD] != NIL {
        steps += 1;
        if steps > budget {
            return Verdict::Inconclusive;
        }
        if entry == NIL {
            // Only returns end the list; a well-formed history never gets here.
            break;
        }
        let event = list.events[entry];
        if event.matching != NIL {
            let op = event.op;
            if let Some(after) = step(state, &ops[op].op) {
                linearized[op / 64] |= 1 << (op % 64);
                if cache.insert((linearized.clone(), after)) {
                    calls.push((entry, state));
                    state = after;
                    list.lift(entry);
                    entry = list.next[HEAD];
                    continue;
                }
                linearized[op / 64] &= !(1 << (op % 64));
            }
            entry = list.next[entry];
            continue;
        }
        // A return: its operation was not linearized in time. Backtrack.
        if calls.len() >= deepest.0 {
            deepest = (calls.len(), event.op);
        }
        let Some((call, previous)) = calls.pop() else {
            let stuck = ops.get(deepest.1).map_or(0, |o| o.id);
            return Verdict::NotLinearizable {
                stuck_at: stuck,
                prefix: deepest.0,
            };
        };
        let op = list.events[call].op;
        linearized[op / 64] &= !(1 << (op % 64));
        state = previous;
        list.unlift(call);
        entry = list.next[call];
    }
    Verdict::Linearizable
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(id: usize, op: RegisterOp, invoked: u64, returned: Option<u64>) -> TimedOp {
        TimedOp {
            op,
            invoked,
            returned,
            id,
        }
    }

    fn read(values: &[u64]) -> RegisterOp {
        RegisterOp::Read(values.to_vec())
    }

    #[test]
    fn sequential_and_overlapping_histories_are_linearizable() {
        let history = [
            op(0, RegisterOp::Write(1), 1, Some(2)),
            op(1, read(&[1]), 3, Some(4)),
            op(2, RegisterOp::Write(2), 5, Some(9)),
            // Overlaps the write: either value is fine.
            op(3, read(&[1]), 6, Some(7)),
            op(4, read(&[2]), 8, Some(10)),
        ];
        assert_eq!(check_register(&history, 10_000), Verdict::Linearizable);
    }

    #[test]
    fn a_stale_read_after_a_completed_write_is_caught() {
        let history = [
            op(0, RegisterOp::Write(1), 1, Some(2)),
            op(1, RegisterOp::Write(2), 3, Some(4)),
            op(2, read(&[1]), 5, Some(6)),
        ];
        let verdict = check_register(&history, 10_000);
        assert!(
            matches!(verdict, Verdict::NotLinearizable { stuck_at: 2, .. }),
            "{verdict:?}"
        );
    }

    #[test]
    fn unknown_writes_may_or_may_not_take_effect_but_not_twice() {
        let maybe = [
            op(0, RegisterOp::Write(1), 1, Some(2)),
            op(1, RegisterOp::Write(2), 3, None),
            op(2, read(&[1]), 5, Some(6)),
            op(3, read(&[2]), 7, Some(8)),
        ];
        assert_eq!(check_register(&maybe, 10_000), Verdict::Linearizable);
        let flip_back = [
            op(0, RegisterOp::Write(1), 1, Some(2)),
            op(1, RegisterOp::Write(2), 3, None),
            op(2, read(&[2]), 5, Some(6)),
            op(3, read(&[1]), 7, Some(8)),
        ];
        assert!(matches!(
            check_register(&flip_back, 10_000),
            Verdict::NotLinearizable { .. }
        ));
    }

    #[test]
    fn reading_a_value_never_written_or_two_values_is_caught() {
        let phantom = [op(0, read(&[7]), 1, Some(2))];
        assert!(matches!(
            check_register(&phantom, 100),
            Verdict::NotLinearizable { .. }
        ));
        let two = [
            op(0, RegisterOp::Write(1), 1, Some(2)),
            op(1, read(&[1, 2]), 3, Some(4)),
        ];
        assert!(matches!(
            check_register(&two, 100),
            Verdict::NotLinearizable { .. }
        ));
        let empty = [op(0, read(&[]), 1, Some(2))];
        assert_eq!(check_register(&empty, 100), Verdict::Linearizable);
    }

    #[test]
    fn a_tiny_budget_is_inconclusive_not_a_violation() {
        let history: Vec<TimedOp> = (0..20)
            .map(|i| op(i, RegisterOp::Write(i as u64), 1, Some(100)))
            .collect();
        assert_eq!(check_register(&history, 3), Verdict::Inconclusive);
    }
}

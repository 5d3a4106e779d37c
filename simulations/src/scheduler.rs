//! The seeded scheduler: an event queue on simulated time, the run's only random number
//! generator, and the trace whose running hash identifies the run.

use std::collections::{BTreeMap, VecDeque};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// Simulated time, in milliseconds since the start of the run.
pub type Millis = u64;

/// How many trace records the scheduler keeps for a violation report.
const RECENT_EVENTS: usize = 400;

/// A seeded event queue on simulated time. Events due at the same millisecond run in the
/// order they were scheduled, so a run depends on nothing but the seed.
pub struct Scheduler<E> {
    now: Millis,
    next_sequence: u64,
    queue: BTreeMap<(Millis, u64), E>,
    rng: SmallRng,
    trace: Trace,
}

impl<E> Scheduler<E> {
    /// An empty queue at time zero whose generator is seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Scheduler {
            now: 0,
            next_sequence: 0,
            queue: BTreeMap::new(),
            rng: SmallRng::seed_from_u64(seed),
            trace: Trace::default(),
        }
    }

    /// The current simulated time.
    pub fn now(&self) -> Millis {
        self.now
    }

    /// Schedules `event` `delay` milliseconds from now.
    pub fn after(&mut self, delay: Millis, event: E) {
        let key = (self.now + delay, self.next_sequence);
        self.next_sequence += 1;
        self.queue.insert(key, event);
    }

    /// Takes the next event due at or before `until`, advancing time to it.
    pub fn next_before(&mut self, until: Millis) -> Option<E> {
        let (&(at, _), _) = self.queue.first_key_value()?;
        if at > until {
            return None;
        }
        let ((at, _), event) = self.queue.pop_first()?;
        self.now = at;
        Some(event)
    }

    /// Moves time forward to `to` (never backwards).
    pub fn advance_to(&mut self, to: Millis) {
        self.now = self.now.max(to);
    }

    /// Events still queued.
    pub fn pending(&self) -> usize {
        self.queue.len()
    }

    /// The run's random number generator.
    pub fn rng(&mut self) -> &mut SmallRng {
        &mut self.rng
    }

    /// True with probability `percent`/100.
    pub fn chance(&mut self, percent: u32) -> bool {
        percent > 0 && self.rng.gen_range(0..100) < percent
    }

    /// A uniform draw from `low..=high`.
    pub fn between(&mut self, low: u64, high: u64) -> u64 {
        self.rng.gen_range(low..=high)
    }

    /// Records `record` in the trace, stamped with the current time.
    pub fn record(&mut self, record: String) {
        let stamped = format!("{:>7}ms {record}", self.now);
        self.trace.push(stamped);
    }

    /// The trace.
    pub fn trace(&self) -> &Trace {
        &self.trace
    }

    /// Keeps every record from now on (for `replay --trace`), not only the last few.
    pub fn keep_full_trace(&mut self) {
        self.trace.full = Some(Vec::new());
    }
}

/// The run's trace: a running BLAKE3 hash over every record, the count, and the last few
/// records (for a violation report).
pub struct Trace {
    hasher: blake3::Hasher,
    events: u64,
    recent: VecDeque<String>,
    full: Option<Vec<String>>,
}

impl Default for Trace {
    fn default() -> Self {
        Trace {
            hasher: blake3::Hasher::new(),
            events: 0,
            recent: VecDeque::with_capacity(RECENT_EVENTS),
            full: None,
        }
    }
}

impl Trace {
    fn push(&mut self, record: String) {
        self.hasher.update(record.as_bytes());
        self.hasher.update(b"\n");
        self.events += 1;
        if let Some(full) = &mut self.full {
            full.push(record.clone());
        }
        if self.recent.len() == RECENT_EVENTS {
            self.recent.pop_front();
        }
        self.recent.push_back(record);
    }

    /// Records so far.
    pub fn events(&self) -> u64 {
        self.events
    }

    /// The hash of every record so far, in hex: equal hashes mean equal runs.
    pub fn hash(&self) -> String {
        self.hasher.finalize().to_hex().to_string()
    }

    /// Every record, if the full trace was kept.
    pub fn full(&self) -> Option<&[String]> {
        self.full.as_deref()
    }

    /// The last records, oldest first.
    pub fn recent(&self) -> impl Iterator<Item = &String> {
        self.recent.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_run_in_time_then_schedule_order() {
        let mut s = Scheduler::new(1);
        s.after(5, "b");
        s.after(1, "a");
        s.after(5, "c");
        assert_eq!(s.next_before(100), Some("a"));
        assert_eq!(s.next_before(100), Some("b"));
        assert_eq!(s.next_before(4), None);
        assert_eq!(s.next_before(100), Some("c"));
        assert_eq!(s.now(), 5);
    }

    #[test]
    fn the_same_seed_draws_the_same_numbers() {
        let mut a = Scheduler::<()>::new(9);
        let mut b = Scheduler::<()>::new(9);
        let xs: Vec<u64> = (0..10).map(|_| a.between(0, 1000)).collect();
        let ys: Vec<u64> = (0..10).map(|_| b.between(0, 1000)).collect();
        assert_eq!(xs, ys);
    }
}

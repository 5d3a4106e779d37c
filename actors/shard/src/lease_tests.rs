//! Unit tests of [`LeaseTable`], and a property test against a simple model.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;

fn table() -> LeaseTable {
    LeaseTable::new(LeaseLimits::default())
}

#[test]
fn a_free_lease_is_granted_with_a_new_epoch_and_renewed_by_its_holder() {
    let mut leases = table();
    let granted = leases.acquire("gc", 1, 1_000, 10).unwrap();
    assert_eq!(
        granted,
        Lease {
            holder: 1,
            epoch: 1,
            expires_at_ms: 1_010
        }
    );
    // The holder acquiring again renews: same epoch, new expiry.
    let again = leases.acquire("gc", 1, 2_000, 500).unwrap();
    assert_eq!((again.epoch, again.expires_at_ms), (1, 2_500));
    let renewed = leases.renew("gc", 1, 1, 1_000, 2_000).unwrap();
    assert_eq!((renewed.epoch, renewed.expires_at_ms), (1, 3_000));
    // Another job gets the next epoch: one counter for the table.
    assert_eq!(leases.acquire("rebalance", 2, 100, 0).unwrap().epoch, 2);
    assert_eq!(leases.last_epoch(), 2);
    assert_eq!(leases.len(), 2);
}

#[test]
fn a_held_lease_is_refused_to_others_naming_holder_and_expiry() {
    let mut leases = table();
    leases.acquire("gc", 1, 1_000, 0).unwrap();
    let refused = leases.acquire("gc", 2, 1_000, 999).unwrap_err();
    assert_eq!(
        refused,
        LeaseError::Held {
            job: "gc".into(),
            holder: 1,
            expires_at_ms: 1_000
        }
    );
    assert_eq!(refused.kind(), "lease_held");
    assert!(refused.to_string().contains("node 1 until 1000"));
    // At its expiry the lease is free: a new epoch.
    let taken = leases.acquire("gc", 2, 1_000, 1_000).unwrap();
    assert_eq!((taken.holder, taken.epoch), (2, 2));
}

#[test]
fn an_expired_lease_reacquired_by_its_holder_gets_a_new_epoch() {
    let mut leases = table();
    leases.acquire("gc", 1, 100, 0).unwrap();
    assert_eq!(leases.acquire("gc", 1, 100, 100).unwrap().epoch, 2);
    assert!(!leases.check("gc", 1, 100));
    assert!(leases.check("gc", 2, 100));
}

#[test]
fn renew_and_release_need_the_holder_and_its_current_epoch() {
    let mut leases = table();
    leases.acquire("gc", 1, 100, 0).unwrap();
    let not_held = |holder, epoch| LeaseError::NotHeld {
        job: "gc".into(),
        holder,
        epoch,
    };
    assert_eq!(leases.renew("gc", 2, 1, 100, 50), Err(not_held(2, 1)));
    assert_eq!(leases.renew("gc", 1, 2, 100, 50), Err(not_held(1, 2)));
    assert_eq!(leases.release("gc", 2, 1), Err(not_held(2, 1)));
    assert_eq!(
        leases.renew("gc", 1, 1, 100, 100),
        Err(LeaseError::Expired {
            job: "gc".into(),
            epoch: 1,
            expires_at_ms: 100
        })
    );
    // Releasing an expired lease is allowed; the epoch is never issued again.
    assert_eq!(leases.release("gc", 1, 1), Ok(()));
    assert!(leases.is_empty());
    assert_eq!(leases.release("gc", 1, 1), Err(not_held(1, 1)));
    assert_eq!(leases.acquire("gc", 1, 100, 0).unwrap().epoch, 2);
    assert!(!leases.check("gc", 1, 0));
}

#[test]
fn names_and_durations_are_checked() {
    let mut leases = table();
    for job in ["", "GC", "g c", "gc!", &"a".repeat(65)] {
        let refused = leases.acquire(job, 1, 100, 0).unwrap_err();
        assert_eq!(refused.kind(), "lease_job_invalid", "{job:?}");
        assert_eq!(leases.renew(job, 1, 1, 100, 0).unwrap_err(), refused);
        assert_eq!(leases.release(job, 1, 1).unwrap_err(), refused);
        assert!(!leases.check(job, 1, 0));
    }
    assert!(leases.acquire(&"a".repeat(64), 1, 100, 0).is_ok());
    assert!(leases
        .acquire("gc.expired-relationships_2", 1, 100, 0)
        .is_ok());
    for duration in [0, 60_001] {
        assert_eq!(
            leases.acquire("x", 1, duration, 0).unwrap_err().kind(),
            "lease_duration_invalid"
        );
    }
    assert_eq!(
        leases
            .acquire("x", 1, 60_000, u64::MAX - 1)
            .unwrap()
            .expires_at_ms,
        u64::MAX
    );
    // The invalid duration was refused before anything changed.
    assert_eq!(leases.last_epoch(), 3);
}

#[test]
fn a_full_table_drops_expired_leases_or_refuses() {
    let limits = LeaseLimits {
        leases_max: 2,
        ..LeaseLimits::default()
    };
    let mut leases = LeaseTable::new(limits);
    leases.acquire("a", 1, 100, 0).unwrap();
    leases.acquire("b", 1, 200, 0).unwrap();
    assert_eq!(
        leases.acquire("c", 1, 100, 99),
        Err(LeaseError::Full { leases_max: 2 })
    );
    assert_eq!(leases.last_epoch(), 2);
    // "a" expired at 100: it goes, "c" comes in.
    assert_eq!(leases.acquire("c", 1, 100, 100).unwrap().epoch, 3);
    assert_eq!(
        leases.iter().map(|(job, _)| job).collect::<Vec<_>>(),
        ["b", "c"]
    );
}

#[test]
fn fence_lets_in_only_the_holder_with_the_current_epoch_and_says_why_not() {
    let mut leases = table();
    let fenced = leases.fence("gc", 1, 1, 0).unwrap_err();
    assert_eq!(fenced.current, None);
    assert_eq!(
        fenced.to_string(),
        "node 1 with epoch 1 does not hold lease `gc` at 0 ms: the job has no lease"
    );
    leases.acquire("gc", 1, 100, 0).unwrap();
    assert_eq!(leases.fence("gc", 1, 1, 99), Ok(()));
    // Another holder, another epoch, or the expiry itself: fenced out, naming the lease.
    for (holder, epoch, now_ms) in [(2, 1, 50), (1, 2, 50), (1, 0, 50)] {
        let fenced = leases.fence("gc", holder, epoch, now_ms).unwrap_err();
        assert!(
            fenced
                .to_string()
                .ends_with("the current epoch is 1 (node 1, until 100 ms)"),
            "{fenced}"
        );
    }
    let expired = leases.fence("gc", 1, 1, 100).unwrap_err();
    assert!(
        expired
            .to_string()
            .ends_with("no epoch is current (epoch 1 of node 1 expired at 100 ms)"),
        "{expired}"
    );
    // A takeover fences the old epoch out for good, even at a time the old lease covered.
    leases.acquire("gc", 2, 100, 100).unwrap();
    let stale = leases.fence("gc", 1, 1, 50).unwrap_err();
    assert_eq!(stale.current.map(|lease| lease.epoch), Some(2));
    assert_eq!(Fenced::KIND, "lease_fenced");
}

#[test]
fn exhausted_epochs_are_refused() {
    let mut leases = LeaseTable::from_parts(LeaseLimits::default(), u64::MAX, Vec::new()).unwrap();
    assert_eq!(
        leases.acquire("gc", 1, 100, 0),
        Err(LeaseError::EpochsExhausted)
    );
}

#[test]
fn stored_parts_are_validated() {
    let lease = |epoch| Lease {
        holder: 1,
        epoch,
        expires_at_ms: 5,
    };
    let parts = |entries: &[(&str, u64)]| -> Vec<(String, Lease)> {
        entries
            .iter()
            .map(|(job, epoch)| ((*job).to_owned(), lease(*epoch)))
            .collect()
    };
    assert!(validate_parts(3, &parts(&[("a", 1), ("b", 3)])).is_ok());
    assert!(validate_parts(3, &parts(&[("b", 1), ("a", 2)])).is_err());
    assert!(validate_parts(3, &parts(&[("a", 1), ("a", 2)])).is_err());
    assert!(validate_parts(3, &parts(&[("a", 1), ("b", 1)])).is_err());
    assert!(validate_parts(3, &parts(&[("a", 4)])).is_err());
    assert!(validate_parts(3, &parts(&[("a", 0)])).is_err());
    assert!(validate_parts(3, &parts(&[("A", 1)])).is_err());
}

#[test]
fn changes_list_written_and_removed_jobs() {
    let mut leases = table();
    leases.acquire("a", 1, 100, 0).unwrap();
    leases.acquire("b", 1, 100, 0).unwrap();
    let before = leases.clone();
    leases.release("a", 1, 1).unwrap();
    leases.renew("b", 1, 2, 50, 10).unwrap();
    leases.acquire("c", 2, 100, 10).unwrap();
    let changes = leases.changes_since(&before);
    let summary: Vec<_> = changes
        .iter()
        .map(|(job, lease)| (job.as_str(), lease.map(|lease| lease.expires_at_ms)))
        .collect();
    assert_eq!(summary, [("a", None), ("b", Some(60)), ("c", Some(110))]);
    assert!(leases.changes_since(&leases).is_empty());
}

// ---------------------------------------------------------------------------------------
// The model: a map and a global counter, written as plainly as possible.

const JOBS: [&str; 5] = ["gc", "rebalance", "a", "b", "Bad!"];
const MODEL_LIMITS: LeaseLimits = LeaseLimits {
    lease_duration_max_ms: 60,
    leases_max: 3,
};

#[derive(Default)]
struct Model {
    /// job → (holder, epoch, expires_at_ms)
    map: BTreeMap<String, (u64, u64, u64)>,
    counter: u64,
}

type ModelResult = Result<Option<(u64, u64, u64)>, &'static str>;

impl Model {
    fn valid(job: &str, duration: Option<u64>) -> Result<(), &'static str> {
        if job == "Bad!" {
            return Err("lease_job_invalid");
        }
        match duration {
            Some(d) if d == 0 || d > MODEL_LIMITS.lease_duration_max_ms => {
                Err("lease_duration_invalid")
            }
            _ => Ok(()),
        }
    }

    fn acquire(&mut self, job: &str, holder: u64, duration: u64, now: u64) -> ModelResult {
        Self::valid(job, Some(duration))?;
        let current = self.map.get(job).copied();
        if let Some((h, e, x)) = current {
            if x > now && h == holder {
                self.map.insert(job.into(), (h, e, now + duration));
                return Ok(Some((h, e, now + duration)));
            }
            if x > now {
                return Err("lease_held");
            }
        } else if self.map.len() >= MODEL_LIMITS.leases_max {
            let live: BTreeMap<_, _> = self
                .map
                .iter()
                .filter(|(_, (_, _, x))| *x > now)
                .map(|(j, l)| (j.clone(), *l))
                .collect();
            self.map = live;
            if self.map.len() >= MODEL_LIMITS.leases_max {
                return Err("leases_full");
            }
        }
        self.counter += 1;
        let lease = (holder, self.counter, now + duration);
        self.map.insert(job.into(), lease);
        Ok(Some(lease))
    }

    fn renew(
        &mut self,
        job: &str,
        holder: u64,
        epoch: u64,
        duration: u64,
        now: u64,
    ) -> ModelResult {
        Self::valid(job, Some(duration))?;
        match self.map.get(job).copied() {
            Some((h, e, x)) if h == holder && e == epoch => {
                if x <= now {
                    return Err("lease_expired");
                }
                self.map.insert(job.into(), (h, e, now + duration));
                Ok(Some((h, e, now + duration)))
            }
            _ => Err("lease_not_held"),
        }
    }

    fn release(&mut self, job: &str, holder: u64, epoch: u64) -> ModelResult {
        Self::valid(job, None)?;
        match self.map.get(job) {
            Some((h, e, _)) if *h == holder && *e == epoch => {
                self.map.remove(job);
                Ok(None)
            }
            _ => Err("lease_not_held"),
        }
    }
}

#[derive(Clone, Debug)]
enum Op {
    Acquire {
        job: usize,
        holder: u64,
        duration: u64,
    },
    Renew {
        job: usize,
        holder: u64,
        epoch: Option<u64>,
        duration: u64,
    },
    Release {
        job: usize,
        holder: u64,
        epoch: Option<u64>,
    },
}

fn op() -> impl Strategy<Value = (Op, u64)> {
    let job = prop_oneof![8 => 0..4usize, 1 => Just(4usize)];
    let duration = prop_oneof![10 => 1..=60u64, 1 => Just(0u64), 1 => Just(61u64)];
    // `None`: the job's current epoch in the model; `Some`: any small epoch.
    let epoch = prop::option::of(0..10u64);
    let op = prop_oneof![
        4 => (job.clone(), 1..4u64, duration.clone())
            .prop_map(|(job, holder, duration)| Op::Acquire { job, holder, duration }),
        3 => (job.clone(), 1..4u64, epoch.clone(), duration)
            .prop_map(|(job, holder, epoch, duration)| Op::Renew { job, holder, epoch, duration }),
        1 => (job, 1..4u64, epoch)
            .prop_map(|(job, holder, epoch)| Op::Release { job, holder, epoch }),
    ];
    // Time mostly moves forward, sometimes stands still; leases last up to 60 ms.
    (op, prop_oneof![3 => 0..25u64, 1 => Just(0u64)])
}

fn as_model(result: Result<Lease, LeaseError>) -> ModelResult {
    result
        .map(|lease| Some((lease.holder, lease.epoch, lease.expires_at_ms)))
        .map_err(|error| error.kind())
}

/// At every probed time, at most one epoch ever issued for a job validates, and only the
/// newest one; `fence` lets in exactly what `check` does, for the lease's holder alone.
fn assert_fenced(leases: &LeaseTable, issued: &BTreeMap<String, Vec<u64>>, now: u64) {
    for (job, epochs) in issued {
        for probe in [now, now + 1, now + 30, now + 61] {
            let valid: Vec<u64> = epochs
                .iter()
                .copied()
                .filter(|epoch| leases.check(job, *epoch, probe))
                .collect();
            for (epoch, holder) in epochs
                .iter()
                .flat_map(|epoch| (0..4).map(move |h| (*epoch, h)))
            {
                let holds = leases.get(job).is_some_and(|lease| lease.holder == holder);
                assert_eq!(
                    leases.fence(job, holder, epoch, probe).is_ok(),
                    holds && leases.check(job, epoch, probe),
                    "{job}: node {holder}, epoch {epoch} at {probe}"
                );
            }
            assert!(valid.len() <= 1, "{job} at {probe}: {valid:?}");
            if let Some(epoch) = valid.first() {
                assert_eq!(Some(epoch), epochs.last(), "{job}: an old epoch validated");
            }
        }
    }
}

proptest! {
    #[test]
    fn the_table_matches_the_model_and_fences_old_epochs(
        ops in prop::collection::vec(op(), 1..80)
    ) {
        let mut leases = LeaseTable::new(MODEL_LIMITS);
        let mut model = Model::default();
        let mut issued: BTreeMap<String, Vec<u64>> = BTreeMap::new();
        let mut now = 0;
        for (op, advance) in ops {
            now += advance;
            let current = |job: usize| model.map.get(JOBS[job]).map_or(0, |lease| lease.1);
            let (got, expected) = match op {
                Op::Acquire { job, holder, duration } => (
                    as_model(leases.acquire(JOBS[job], holder, duration, now)),
                    model.acquire(JOBS[job], holder, duration, now),
                ),
                Op::Renew { job, holder, epoch, duration } => {
                    let epoch = epoch.unwrap_or_else(|| current(job));
                    (
                        as_model(leases.renew(JOBS[job], holder, epoch, duration, now)),
                        model.renew(JOBS[job], holder, epoch, duration, now),
                    )
                }
                Op::Release { job, holder, epoch } => {
                    let epoch = epoch.unwrap_or_else(|| current(job));
                    (
                        leases.release(JOBS[job], holder, epoch).map(|()| None).map_err(|e| e.kind()),
                        model.release(JOBS[job], holder, epoch),
                    )
                }
            };
            prop_assert_eq!(got, expected);
            if let Ok(Some((_, epoch, _))) = got {
                let (job, _) = leases.iter().find(|(_, lease)| lease.epoch == epoch).unwrap();
                let job = job.to_owned();
                if issued.get(&job).and_then(|epochs| epochs.last()) != Some(&epoch) {
                    // A new epoch: greater than every epoch issued before, for any job.
                    prop_assert!(issued.values().flatten().all(|old| *old < epoch));
                    issued.entry(job).or_default().push(epoch);
                }
            }
            let table: BTreeMap<String, (u64, u64, u64)> = leases
                .iter()
                .map(|(job, l)| (job.to_owned(), (l.holder, l.epoch, l.expires_at_ms)))
                .collect();
            prop_assert_eq!(&table, &model.map);
            prop_assert_eq!(leases.last_epoch(), model.counter);
            assert_fenced(&leases, &issued, now);
        }
    }
}

//! Keepers against the real [`LeaseTable`] on simulated time: per-node clock skew, random
//! delays (so requests reach the table in a random interleaving), lost requests and
//! answers, answers that say "not applied" or "outcome unknown", and a node that crashes or
//! shuts down. Everything is bounded so the keeper's documented assumptions hold: pairwise
//! skew plus one tick is below the safety margin, and a request reaches the table within
//! the request timeout or never.
//!
//! Checked at every event: at most one keeper runs the job; the one that runs holds the
//! table's current lease with its epoch, valid by its own clock; every start carries an
//! epoch above every earlier start's. Liveness: once the chaos ends, within two lease
//! durations some keeper runs the job, and one runs at every event after that.

use std::collections::BTreeMap;

use inferadb_election::{Effect, ElectionConfig, LeaseAnswer, LeaseKeeper, LeaseRequest};
use inferadb_messages::ProposalFailure;
use inferadb_shard::{LeaseLimits, LeaseTable};
use proptest::prelude::*;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

const JOB: &str = "gc";
/// Simulated time starts here, so skewed clocks never go below zero.
const START_MS: u64 = 1_000_000;
/// The largest clock offset of one node: pairwise skew is below twice this (178 ms), which
/// plus one tick (20 ms) stays below the safety margin (200 ms).
const SKEW_MAX_MS: i64 = 89;
/// The longest a request takes to reach the table: below the request timeout (250 ms).
const REQUEST_DELAY_MAX_MS: u64 = 249;
/// The longest an answer takes in the chaos: with a slow request, past the timeout.
const ANSWER_DELAY_MAX_MS: u64 = 200;
/// The longest one way once the chaos ends: a round trip stays below the timeout.
const CALM_DELAY_MAX_MS: u64 = 100;
/// How long after the chaos some keeper must run the job.
const SETTLE_MS: u64 = 2_000;
/// How long the calm lasts.
const CALM_MS: u64 = 6_000;

fn config() -> ElectionConfig {
    ElectionConfig {
        lease_duration_ms: 1_000,
        renew_after_ms: 300,
        safety_margin_ms: 200,
        retry_interval_ms: 100,
        request_timeout_ms: 250,
        tick_ms: 20,
    }
}

/// How one node leaves during the chaos, if one does.
#[derive(Clone, Copy, Debug)]
enum Departure {
    None,
    /// The process dies: its job with it, no release.
    Crash,
    /// A clean stop: the job stops and the lease is released.
    Shutdown,
}

/// One simulation's shape.
#[derive(Clone, Debug)]
struct Scenario {
    seed: u64,
    skews_ms: Vec<i64>,
    chaos_ms: u64,
    /// Percent chances in the chaos: request lost, answered "not applied" without applying,
    /// answered "unknown" without applying, answer lost, answer turned into "unknown".
    loss: [u32; 5],
    departure: Departure,
    departure_at_ms: u64,
}

fn scenario() -> impl Strategy<Value = Scenario> {
    (
        any::<u64>(),
        prop::collection::vec(-SKEW_MAX_MS..=SKEW_MAX_MS, 2..=5),
        2_000u64..15_000,
        [0u32..25, 0u32..15, 0u32..15, 0u32..25, 0u32..15],
        prop_oneof![
            Just(Departure::None),
            Just(Departure::Crash),
            Just(Departure::Shutdown)
        ],
        0u64..15_000,
    )
        .prop_map(
            |(seed, skews_ms, chaos_ms, loss, departure, departure_at_ms)| Scenario {
                seed,
                skews_ms,
                chaos_ms,
                loss,
                departure,
                departure_at_ms: departure_at_ms % chaos_ms,
            },
        )
}

enum Event {
    Tick(usize),
    /// A request reaches the table.
    Arrive(usize, u64, LeaseRequest),
    /// An answer reaches its keeper.
    Deliver(usize, u64, LeaseAnswer),
    Depart(usize),
}

struct Node {
    keeper: LeaseKeeper,
    skew_ms: i64,
    alive: bool,
}

struct Sim {
    scenario: Scenario,
    rng: SmallRng,
    /// Real (simulated) time.
    now_ms: u64,
    nodes: Vec<Node>,
    table: LeaseTable,
    /// Events by (time, sequence); the sequence keeps insertion order among equal times.
    events: BTreeMap<(u64, u64), Event>,
    sequence: u64,
    /// node → the epoch its job runs with.
    running: BTreeMap<usize, u64>,
    last_started_epoch: u64,
    starts: u64,
}

impl Sim {
    fn new(scenario: Scenario) -> Sim {
        let nodes = scenario
            .skews_ms
            .iter()
            .enumerate()
            .map(|(index, skew_ms)| Node {
                keeper: LeaseKeeper::new(JOB, index as u64 + 1, config(), &LeaseLimits::default())
                    .expect("valid keeper"),
                skew_ms: *skew_ms,
                alive: true,
            })
            .collect();
        let mut sim = Sim {
            rng: SmallRng::seed_from_u64(scenario.seed),
            scenario,
            now_ms: START_MS,
            nodes,
            table: LeaseTable::new(LeaseLimits::default()),
            events: BTreeMap::new(),
            sequence: 0,
            running: BTreeMap::new(),
            last_started_epoch: 0,
            starts: 0,
        };
        for node in 0..sim.nodes.len() {
            let phase = sim.rng.gen_range(0..config().tick_ms);
            sim.schedule(phase, Event::Tick(node));
        }
        if !matches!(sim.scenario.departure, Departure::None) {
            let node = sim.rng.gen_range(0..sim.nodes.len());
            sim.schedule(sim.scenario.departure_at_ms, Event::Depart(node));
        }
        sim
    }

    fn schedule(&mut self, after_ms: u64, event: Event) {
        self.sequence += 1;
        self.events
            .insert((self.now_ms + after_ms, self.sequence), event);
    }

    fn local_ms(&self, node: usize) -> u64 {
        self.now_ms.saturating_add_signed(self.nodes[node].skew_ms)
    }

    fn in_chaos(&self) -> bool {
        self.now_ms < START_MS + self.scenario.chaos_ms
    }

    /// `percent` chance, in the chaos only.
    fn chance(&mut self, percent: u32) -> bool {
        self.in_chaos() && self.rng.gen_range(0..100) < percent
    }

    /// Runs to the end; the first broken property, if any.
    fn run(&mut self) -> Result<Stats, String> {
        let end_ms = START_MS + self.scenario.chaos_ms + SETTLE_MS + CALM_MS;
        let mut events = 0;
        while let Some(((at_ms, _), event)) = self.events.pop_first() {
            if at_ms > end_ms {
                break;
            }
            self.now_ms = at_ms;
            events += 1;
            self.step(event)?;
            self.check_safety()?;
            if at_ms >= START_MS + self.scenario.chaos_ms + SETTLE_MS && self.running.len() != 1 {
                return Err(format!("nobody runs the job at {at_ms}, after the chaos"));
            }
        }
        Ok(Stats {
            events,
            starts: self.starts,
            last_epoch: self.table.last_epoch(),
        })
    }

    fn step(&mut self, event: Event) -> Result<(), String> {
        match event {
            Event::Tick(node) => {
                if self.nodes[node].alive {
                    let now_ms = self.local_ms(node);
                    let effects = self.nodes[node].keeper.tick(now_ms);
                    self.perform(node, effects)?;
                    let next = self.rng.gen_range(1..=config().tick_ms);
                    self.schedule(next, Event::Tick(node));
                }
            }
            Event::Arrive(node, request_id, request) => self.arrive(node, request_id, &request),
            Event::Deliver(node, request_id, answer) => {
                if self.nodes[node].alive {
                    let now_ms = self.local_ms(node);
                    let effects = self.nodes[node].keeper.answer(now_ms, request_id, answer);
                    self.perform(node, effects)?;
                }
            }
            Event::Depart(node) => self.depart(node)?,
        }
        Ok(())
    }

    fn depart(&mut self, node: usize) -> Result<(), String> {
        if let Departure::Shutdown = self.scenario.departure {
            let now_ms = self.local_ms(node);
            let effects = self.nodes[node].keeper.shutdown(now_ms);
            self.perform(node, effects)?;
        }
        // A crashed process's job dies with it.
        self.running.remove(&node);
        self.nodes[node].alive = false;
        Ok(())
    }

    fn perform(&mut self, node: usize, effects: Vec<Effect>) -> Result<(), String> {
        for effect in effects {
            match effect {
                Effect::Propose {
                    request_id,
                    request,
                } => self.send(node, request_id, request),
                Effect::StartJob { epoch } => self.start(node, epoch)?,
                Effect::StopJob { epoch } => {
                    if self.running.remove(&node) != Some(epoch) {
                        return Err(format!(
                            "node {node} stopped epoch {epoch}, which it did not run"
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    fn start(&mut self, node: usize, epoch: u64) -> Result<(), String> {
        if epoch <= self.last_started_epoch {
            return Err(format!(
                "node {node} started epoch {epoch} after epoch {}",
                self.last_started_epoch
            ));
        }
        self.last_started_epoch = epoch;
        self.starts += 1;
        if self.running.insert(node, epoch).is_some() {
            return Err(format!("node {node} started twice"));
        }
        Ok(())
    }

    fn send(&mut self, node: usize, request_id: u64, request: LeaseRequest) {
        if self.chance(self.scenario.loss[0]) {
            return;
        }
        let answer_ms = self.answer_delay();
        if self.chance(self.scenario.loss[1]) {
            let answer = failed(ProposalFailure::NotApplied {
                reason: "no leader".into(),
            });
            self.schedule(answer_ms, Event::Deliver(node, request_id, answer));
            return;
        }
        if self.chance(self.scenario.loss[2]) {
            let answer = failed(ProposalFailure::OutcomeUnknown {
                reason: "dropped".into(),
            });
            self.schedule(answer_ms, Event::Deliver(node, request_id, answer));
            return;
        }
        let delay_ms = self.request_delay();
        self.schedule(delay_ms, Event::Arrive(node, request_id, request));
    }

    fn request_delay(&mut self) -> u64 {
        let max_ms = if self.in_chaos() {
            REQUEST_DELAY_MAX_MS
        } else {
            CALM_DELAY_MAX_MS
        };
        self.rng.gen_range(0..=max_ms)
    }

    fn answer_delay(&mut self) -> u64 {
        let max_ms = if self.in_chaos() {
            ANSWER_DELAY_MAX_MS
        } else {
            CALM_DELAY_MAX_MS
        };
        self.rng.gen_range(0..=max_ms)
    }

    /// Applies the request to the table, as shard 0's machine would, and sends the answer.
    fn arrive(&mut self, node: usize, request_id: u64, request: &LeaseRequest) {
        let outcome = match request {
            LeaseRequest::Acquire {
                job,
                holder,
                duration_ms,
                now_ms,
            } => self
                .table
                .acquire(job, *holder, *duration_ms, *now_ms)
                .map(granted),
            LeaseRequest::Renew {
                job,
                holder,
                epoch,
                duration_ms,
                now_ms,
            } => self
                .table
                .renew(job, *holder, *epoch, *duration_ms, *now_ms)
                .map(granted),
            LeaseRequest::Release { job, holder, epoch } => self
                .table
                .release(job, *holder, *epoch)
                .map(|()| LeaseAnswer::Released),
        };
        let mut answer = outcome.unwrap_or_else(|error| LeaseAnswer::Refused {
            kind: error.kind().to_string(),
        });
        if self.chance(self.scenario.loss[3]) {
            return;
        }
        if self.chance(self.scenario.loss[4]) {
            answer = failed(ProposalFailure::OutcomeUnknown {
                reason: "answer lost".into(),
            });
        }
        let delay_ms = self.answer_delay();
        self.schedule(delay_ms, Event::Deliver(node, request_id, answer));
    }

    fn check_safety(&self) -> Result<(), String> {
        if self.running.len() > 1 {
            return Err(format!(
                "two keepers run the job at {}: {:?}",
                self.now_ms, self.running
            ));
        }
        for (node, epoch) in &self.running {
            let held = self.table.get(JOB).map(|lease| (lease.holder, lease.epoch));
            if held != Some((*node as u64 + 1, *epoch)) {
                return Err(format!(
                    "node {node} runs epoch {epoch}; the table has {held:?}"
                ));
            }
            if !self.table.check(JOB, *epoch, self.local_ms(*node)) {
                return Err(format!(
                    "node {node} runs epoch {epoch} past its expiry by its own clock"
                ));
            }
        }
        Ok(())
    }
}

fn granted(lease: inferadb_shard::Lease) -> LeaseAnswer {
    LeaseAnswer::Granted {
        epoch: lease.epoch,
        expires_at_ms: lease.expires_at_ms,
    }
}

fn failed(failure: ProposalFailure) -> LeaseAnswer {
    LeaseAnswer::Failed(failure)
}

/// What one run did.
#[derive(Debug)]
struct Stats {
    events: u64,
    starts: u64,
    last_epoch: u64,
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn keepers_never_run_the_job_twice_and_one_runs_it_once_calm(scenario in scenario()) {
        let stats = Sim::new(scenario).run().map_err(TestCaseError::fail)?;
        prop_assert!(stats.starts >= 1 && stats.events > 0, "{stats:?}");
    }
}

/// A node whose clock is ahead by more than the margin allows: the harness catches two
/// runners (it is not vacuous).
#[test]
fn skew_beyond_the_margin_is_caught() {
    let caught = (0..200u64).find_map(|seed| {
        let scenario = Scenario {
            seed,
            skews_ms: vec![0, 600],
            chaos_ms: 4_000,
            loss: [20, 0, 0, 20, 0],
            departure: Departure::None,
            departure_at_ms: 0,
        };
        Sim::new(scenario).run().err()
    });
    let violation = caught.expect("a 600 ms skew against a 200 ms margin breaks exclusivity");
    // Either the second start, or (earlier) the table granting the lease to another node
    // while the first still runs it.
    assert!(
        violation.contains("two keepers") || violation.contains("the table has Some"),
        "{violation}"
    );
}

/// One ordinary run, to see the harness at work: many events, several starts.
#[test]
fn a_lossy_run_changes_hands_several_times() {
    let scenario = Scenario {
        seed: 7,
        skews_ms: vec![-80, 0, 80],
        chaos_ms: 14_000,
        loss: [20, 10, 10, 20, 10],
        departure: Departure::Crash,
        departure_at_ms: 7_000,
    };
    let stats = Sim::new(scenario).run().expect("the properties hold");
    assert!(stats.events > 5_000 && stats.starts >= 3, "{stats:?}");
    assert!(stats.last_epoch >= stats.starts);
}

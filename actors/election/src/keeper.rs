//! [`LeaseKeeper`]: one node's side of one singleton job's lease, as a deterministic state
//! machine. It never reads the clock and performs nothing: every input carries `now_ms`
//! (this node's clock), and every input returns the [`Effect`]s its shell performs, in
//! order.
//!
//! # Rules
//!
//! - **One request at a time.** At most one lease proposal is in flight; the next waits for
//!   its answer, or for `request_timeout_ms`, after which its outcome counts as unknown and
//!   a late answer to it is ignored (recognised by its request number).
//! - **Acquire.** While it holds no lease, the keeper proposes an acquire at once, then
//!   every `retry_interval_ms` after a refusal or a proposal that was not applied.
//! - **Run.** A grant starts the job ([`Effect::StartJob`]) with the granted epoch, unless
//!   the answer came so late that the local deadline (below) has passed already.
//! - **Renew.** `renew_after_ms` after the lease's start (its expiry minus its duration)
//!   the keeper proposes a renewal; a renewal that was not applied is retried every
//!   `retry_interval_ms` until the local deadline.
//! - **Local deadline.** The job stops ([`Effect::StopJob`]) at `expires_at_ms -
//!   safety_margin_ms` by this node's clock if no renewal pushed the expiry further.
//! - **Refused renewal.** Any refusal of a renewal (`lease_expired`, `lease_not_held`)
//!   means the lease is lost: the job stops at once.
//! - **Unknown outcome.** A proposal whose outcome is unknown (a timeout, a lost answer)
//!   leaves the lease in doubt, so the keeper is conservative: it stops the job if it runs,
//!   and it proposes nothing more until `request_timeout_ms` after that proposal was sent,
//!   when it can no longer reach the log (assumption 2 below).
//! - **A fresh epoch per run.** Each [`Effect::StartJob`] carries an epoch this keeper has
//!   never started before. When a grant returns an epoch it already ran (a renewal answered
//!   after the job stopped, or an acquire of a lease it still held), it releases that
//!   lease and acquires a new one, so side effects of the stopped run, still in flight with
//!   the old epoch, fail their fencing check against the new run.
//! - **Shutdown.** [`LeaseKeeper::shutdown`] stops the job and releases the lease it holds,
//!   so another node need not wait for the expiry.
//!
//! # Why two nodes never run the job at once
//!
//! A lease's expiry is `now_ms + lease_duration_ms`, where `now_ms` is the clock reading of
//! the node that proposed the grant or renewal, taken when it sent the proposal; the holder
//! counts its deadline from that same reading. Another node acquires the lease only with a
//! proposal whose own reading is at or past that expiry, and it starts the job after
//! sending it. The holder stopped at `expiry - safety_margin_ms` by its own clock, plus the
//! delay before its next tick. So the job never runs twice at once provided:
//!
//! 1. **Clocks and ticks:** the clock skew between any two nodes, plus the longest delay
//!    between a local deadline passing and the keeper's next input (`tick_ms` plus how
//!    late the actor handles its tick), is less than `safety_margin_ms`.
//! 2. **Proposal transit:** a lease proposal reaches shard 0's log within
//!    `request_timeout_ms` of being sent, or never. Otherwise an old acquire or renewal
//!    that went astray could be applied after a newer one and set an earlier expiry than
//!    the holder counts on.
//!
//! Network delay of answers does not enter: a late answer only shortens the run, since the
//! deadline counts from the proposal's reading. These assumptions make the keepers'
//! *intent* exclusive; the epoch carried in every side effect of a job, checked by the
//! state machine applying it, stays the safeguard for whatever was already in flight.

use inferadb_messages::{JobStatus, LeaseAnswer, ProposalFailure};
use inferadb_shard::{LeaseLimits, ShardCommand};

use crate::config::ElectionConfig;
use crate::error::ElectionError;

/// A lease proposal a keeper wants made to shard 0. `now_ms` is the keeper's clock when it
/// asked, carried into the command so the lease's expiry counts from it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LeaseRequest {
    /// Acquire the job's lease (or renew it, if this node still holds it).
    Acquire {
        /// The job.
        job: String,
        /// This node's id.
        holder: u64,
        /// How long the lease lasts from `now_ms`.
        duration_ms: u64,
        /// The keeper's clock when it asked.
        now_ms: u64,
    },
    /// Renew the lease held with `epoch`.
    Renew {
        /// The job.
        job: String,
        /// This node's id.
        holder: u64,
        /// The epoch it holds the lease with.
        epoch: u64,
        /// How long the lease lasts from `now_ms`.
        duration_ms: u64,
        /// The keeper's clock when it asked.
        now_ms: u64,
    },
    /// Release the lease held with `epoch`.
    Release {
        /// The job.
        job: String,
        /// This node's id.
        holder: u64,
        /// The epoch it holds the lease with.
        epoch: u64,
    },
}

impl LeaseRequest {
    /// The job it is for.
    pub fn job(&self) -> &str {
        match self {
            LeaseRequest::Acquire { job, .. }
            | LeaseRequest::Renew { job, .. }
            | LeaseRequest::Release { job, .. } => job,
        }
    }

    /// The shard command that carries it.
    pub fn to_command(&self) -> ShardCommand {
        match self.clone() {
            LeaseRequest::Acquire {
                job,
                holder,
                duration_ms,
                now_ms,
            } => ShardCommand::AcquireLease {
                job,
                holder,
                duration_ms,
                now_ms,
            },
            LeaseRequest::Renew {
                job,
                holder,
                epoch,
                duration_ms,
                now_ms,
            } => ShardCommand::RenewLease {
                job,
                holder,
                epoch,
                duration_ms,
                now_ms,
            },
            LeaseRequest::Release { job, holder, epoch } => {
                ShardCommand::ReleaseLease { job, holder, epoch }
            }
        }
    }
}

/// What a keeper asks its shell to do. The shell performs a batch in order: a
/// [`Effect::StopJob`] before a release proposal that follows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Propose `request` to shard 0 and hand its answer back with
    /// [`LeaseKeeper::answer`] under `request_id`.
    Propose {
        /// The request's number.
        request_id: u64,
        /// The proposal.
        request: LeaseRequest,
    },
    /// Start the job, fenced by `epoch`.
    StartJob {
        /// The lease's epoch: the job puts it into every side effect.
        epoch: u64,
    },
    /// Stop the job started with `epoch`.
    StopJob {
        /// The epoch it was started with.
        epoch: u64,
    },
}

/// The lease the keeper knows it holds (or may still hold, until its expiry).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Held {
    epoch: u64,
    /// The expiry the table answered, counted from this node's clock.
    expires_at_ms: u64,
    /// Whether the job runs with this epoch.
    running: bool,
}

/// The proposal in flight.
#[derive(Clone, Debug)]
struct InFlight {
    id: u64,
    request: LeaseRequest,
    sent_at_ms: u64,
}

/// One node's keeper of one job's lease (see the module documentation).
#[derive(Clone, Debug)]
pub struct LeaseKeeper {
    job: String,
    holder: u64,
    config: ElectionConfig,
    lease: Option<Held>,
    in_flight: Option<InFlight>,
    next_request_id: u64,
    /// No proposal before this (a retry interval, or an unknown outcome settling).
    not_before_ms: u64,
    /// The highest epoch ever started (0: none).
    last_started_epoch: u64,
    shut_down: bool,
}

impl LeaseKeeper {
    /// A keeper of `job`'s lease for node `holder`, checking the name and `config` (against
    /// shard 0's lease `limits`).
    pub fn new(
        job: &str,
        holder: u64,
        config: ElectionConfig,
        limits: &LeaseLimits,
    ) -> Result<LeaseKeeper, ElectionError> {
        config.validate(limits)?;
        if !inferadb_shard::lease::valid_job_name(job) {
            return Err(ElectionError::JobInvalid {
                job: job.to_owned(),
            });
        }
        Ok(LeaseKeeper {
            job: job.to_owned(),
            holder,
            config,
            lease: None,
            in_flight: None,
            next_request_id: 1,
            not_before_ms: 0,
            last_started_epoch: 0,
            shut_down: false,
        })
    }

    /// The job.
    pub fn job(&self) -> &str {
        &self.job
    }

    /// The epoch the job runs with on this node, if it runs.
    pub fn running_epoch(&self) -> Option<u64> {
        self.lease
            .filter(|held| held.running)
            .map(|held| held.epoch)
    }

    /// The lease as this node sees it at `now_ms`.
    pub fn status(&self, now_ms: u64) -> JobStatus {
        let held = self.lease.filter(|held| now_ms < held.expires_at_ms);
        JobStatus {
            job: self.job.clone(),
            holding: held.is_some(),
            epoch: held.map(|held| held.epoch),
            expires_at_ms: held.map(|held| held.expires_at_ms),
            running: self.running_epoch().is_some(),
        }
    }

    /// Time passed: notices timeouts and the local deadline, and proposes what is due.
    pub fn tick(&mut self, now_ms: u64) -> Vec<Effect> {
        let mut effects = Vec::new();
        self.expire(now_ms, &mut effects);
        self.poll(now_ms, &mut effects);
        effects
    }

    /// Proposal `request_id` came to `answer`. An answer to any other request than the one
    /// in flight (one given up on) changes nothing.
    pub fn answer(&mut self, now_ms: u64, request_id: u64, answer: LeaseAnswer) -> Vec<Effect> {
        let mut effects = Vec::new();
        self.expire(now_ms, &mut effects);
        if let Some(in_flight) = self
            .in_flight
            .take_if(|in_flight| in_flight.id == request_id)
        {
            self.settle(now_ms, in_flight, answer, &mut effects);
        }
        self.poll(now_ms, &mut effects);
        effects
    }

    /// The node stops for good: stop the job and release the lease it holds. Later inputs
    /// only release leases (a grant that arrives after this is given back).
    pub fn shutdown(&mut self, now_ms: u64) -> Vec<Effect> {
        let mut effects = Vec::new();
        self.shut_down = true;
        self.expire(now_ms, &mut effects);
        self.stop(&mut effects);
        if let Some(held) = self.lease {
            // The request in flight no longer matters: whichever of it and the release is
            // applied first, the lease ends up released or expiring.
            self.in_flight = None;
            self.send(now_ms, self.release(held.epoch), &mut effects);
        }
        effects
    }

    /// Treats an overdue answer as an unknown outcome, stops the job at the local deadline
    /// and forgets a lease past its expiry.
    fn expire(&mut self, now_ms: u64, effects: &mut Vec<Effect>) {
        let timeout_ms = self.config.request_timeout_ms;
        if let Some(in_flight) = self
            .in_flight
            .take_if(|in_flight| now_ms >= in_flight.sent_at_ms.saturating_add(timeout_ms))
        {
            self.unknown(&in_flight, effects);
        }
        if self
            .lease
            .is_some_and(|held| held.running && now_ms >= self.stop_at(held))
        {
            self.stop(effects);
        }
        if self.lease.is_some_and(|held| now_ms >= held.expires_at_ms) {
            self.lease = None;
        }
    }

    /// Proposes what is due, if nothing is in flight.
    fn poll(&mut self, now_ms: u64, effects: &mut Vec<Effect>) {
        if self.in_flight.is_some() || now_ms < self.not_before_ms {
            return;
        }
        let request = match self.lease {
            Some(held) if held.running => {
                if now_ms < self.renew_at(held) {
                    return;
                }
                self.renew(held.epoch, now_ms)
            }
            // A lease it may not run (already run, or shutting down): give it back first.
            Some(held) if self.shut_down || held.epoch <= self.last_started_epoch => {
                self.release(held.epoch)
            }
            _ if self.shut_down => return,
            // Not holding, or holding a fresh epoch granted too late to run: acquire (which
            // renews a lease this node still holds).
            _ => self.acquire(now_ms),
        };
        self.send(now_ms, request, effects);
    }

    /// Applies the answer to the request that was in flight.
    fn settle(
        &mut self,
        now_ms: u64,
        in_flight: InFlight,
        answer: LeaseAnswer,
        effects: &mut Vec<Effect>,
    ) {
        let retry_at_ms = now_ms.saturating_add(self.config.retry_interval_ms);
        match (&in_flight.request, answer) {
            (
                LeaseRequest::Acquire { .. } | LeaseRequest::Renew { .. },
                LeaseAnswer::Granted {
                    epoch,
                    expires_at_ms,
                },
            ) => self.granted(now_ms, epoch, expires_at_ms, effects),
            // Released, or refused (not held any more, or never releasable): either way
            // this node no longer counts on that lease.
            (
                LeaseRequest::Release { epoch, .. },
                LeaseAnswer::Released | LeaseAnswer::Refused { .. },
            ) => self.forget(*epoch),
            (LeaseRequest::Acquire { .. }, LeaseAnswer::Refused { .. }) => {
                self.lease = None;
                self.not_before_ms = retry_at_ms;
            }
            // The lease is lost (or cannot be kept): stop at once.
            (LeaseRequest::Renew { .. }, LeaseAnswer::Refused { .. }) => {
                self.stop(effects);
                self.lease = None;
                self.not_before_ms = retry_at_ms;
            }
            // Not applied: the lease is as it was; the job runs on until its deadline.
            (_, LeaseAnswer::Failed(ProposalFailure::NotApplied { .. })) => {
                self.not_before_ms = retry_at_ms;
            }
            // Unknown, or an answer that does not fit the request: assume the worst.
            (_, _) => self.unknown(&in_flight, effects),
        }
    }

    /// A grant (or renewal) of `epoch` until `expires_at_ms`.
    fn granted(&mut self, now_ms: u64, epoch: u64, expires_at_ms: u64, effects: &mut Vec<Effect>) {
        let renewal = self
            .lease
            .is_some_and(|held| held.running && held.epoch == epoch);
        if !renewal {
            // Defensive: a running lease is never answered with another epoch.
            self.stop(effects);
        }
        let held = Held {
            epoch,
            expires_at_ms,
            running: renewal,
        };
        self.lease = Some(held);
        let in_time = now_ms < self.stop_at(held);
        if renewal && !in_time {
            self.stop(effects);
        } else if !renewal && in_time && !self.shut_down && epoch > self.last_started_epoch {
            self.start(effects);
        }
    }

    /// The outcome of `in_flight` is unknown: stop the job, and let the proposal settle.
    fn unknown(&mut self, in_flight: &InFlight, effects: &mut Vec<Effect>) {
        self.stop(effects);
        let settled_at_ms = in_flight
            .sent_at_ms
            .saturating_add(self.config.request_timeout_ms);
        self.not_before_ms = self.not_before_ms.max(settled_at_ms);
    }

    /// Starts the job with the held lease's epoch.
    fn start(&mut self, effects: &mut Vec<Effect>) {
        if let Some(held) = self.lease.as_mut().filter(|held| !held.running) {
            held.running = true;
            self.last_started_epoch = held.epoch;
            effects.push(Effect::StartJob { epoch: held.epoch });
        }
    }

    /// Stops the job if it runs.
    fn stop(&mut self, effects: &mut Vec<Effect>) {
        if let Some(held) = self.lease.as_mut().filter(|held| held.running) {
            held.running = false;
            effects.push(Effect::StopJob { epoch: held.epoch });
        }
    }

    /// Forgets the lease with `epoch`, which this node no longer holds.
    fn forget(&mut self, epoch: u64) {
        if self
            .lease
            .is_some_and(|held| held.epoch == epoch && !held.running)
        {
            self.lease = None;
        }
    }

    fn send(&mut self, now_ms: u64, request: LeaseRequest, effects: &mut Vec<Effect>) {
        let request_id = self.next_request_id;
        self.next_request_id += 1;
        self.in_flight = Some(InFlight {
            id: request_id,
            request: request.clone(),
            sent_at_ms: now_ms,
        });
        effects.push(Effect::Propose {
            request_id,
            request,
        });
    }

    /// When the job must stop if `held` is not renewed.
    fn stop_at(&self, held: Held) -> u64 {
        held.expires_at_ms
            .saturating_sub(self.config.safety_margin_ms)
    }

    /// When `held` is due for renewal: `renew_after_ms` after its start.
    fn renew_at(&self, held: Held) -> u64 {
        held.expires_at_ms
            .saturating_sub(self.config.lease_duration_ms)
            .saturating_add(self.config.renew_after_ms)
    }

    fn acquire(&self, now_ms: u64) -> LeaseRequest {
        LeaseRequest::Acquire {
            job: self.job.clone(),
            holder: self.holder,
            duration_ms: self.config.lease_duration_ms,
            now_ms,
        }
    }

    fn renew(&self, epoch: u64, now_ms: u64) -> LeaseRequest {
        LeaseRequest::Renew {
            job: self.job.clone(),
            holder: self.holder,
            epoch,
            duration_ms: self.config.lease_duration_ms,
            now_ms,
        }
    }

    fn release(&self, epoch: u64) -> LeaseRequest {
        LeaseRequest::Release {
            job: self.job.clone(),
            holder: self.holder,
            epoch,
        }
    }
}

#[cfg(test)]
#[path = "keeper_tests.rs"]
mod tests;

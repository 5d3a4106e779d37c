//! [`ElectionMsg`]: the protocol of a node's leader-election actor, which runs each
//! cluster-wide singleton job (expired-relationship garbage collection, rebalancing) only
//! while this node holds the job's lease in shard 0, fenced by the lease's epoch.
//!
//! [`LeaseAnswer`] is what a lease proposal came to, as the election core reads it: the
//! actor's proposal tasks turn the shard's encoded answer (or its failure) into one and
//! send it back as [`ElectionMsg::Answer`]. It lives here, not in the election crate,
//! because the message carries it and this crate sits below every actor crate.

use ractor::RpcReplyPort;

use crate::shard::ProposalFailure;

/// The outcome of one lease proposal (acquire, renew or release) to shard 0.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LeaseAnswer {
    /// The lease was granted or renewed: this node holds it with `epoch` until
    /// `expires_at_ms` (by the clock reading the proposal carried).
    Granted {
        /// The fencing epoch (unchanged by a renewal).
        epoch: u64,
        /// When the lease expires in the lease table.
        expires_at_ms: u64,
    },
    /// The lease was released.
    Released,
    /// Shard 0 applied the proposal and refused it; nothing changed.
    Refused {
        /// The stable refusal kind, e.g. `lease_held`, `lease_not_held`, `lease_expired`.
        kind: String,
    },
    /// No answer from the state machine: the proposal did not take effect (`NotApplied`)
    /// or may or may not have (`OutcomeUnknown`, which includes a lost answer).
    Failed(ProposalFailure),
}

/// One singleton job's lease as this node's election actor sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobStatus {
    /// The job's name (also its lease's name in shard 0).
    pub job: String,
    /// Whether this node holds the job's lease as far as it knows: it was granted, not
    /// released or refused since, and has not expired by this node's clock.
    pub holding: bool,
    /// The epoch of the held lease, if any.
    pub epoch: Option<u64>,
    /// When the held lease expires (this node's clock), if any.
    pub expires_at_ms: Option<u64>,
    /// Whether the job runs on this node now (started and not stopped).
    pub running: bool,
}

/// Messages to a node's leader-election actor.
pub enum ElectionMsg {
    /// Run every job's lease timers (renew, retry, stop at the local deadline); sent by the
    /// actor's own interval.
    Tick,
    /// The outcome of the lease proposal `request` made for `job`, sent by the task that
    /// awaited it.
    Answer {
        /// The job the proposal was for.
        job: String,
        /// The proposal's number, so an answer that arrives after the keeper gave up on it
        /// is recognised and ignored.
        request: u64,
        /// What the proposal came to.
        answer: LeaseAnswer,
    },
    /// Every configured job's lease and whether it runs here, by job name ascending.
    Status {
        /// The jobs' statuses.
        reply: RpcReplyPort<Vec<JobStatus>>,
    },
}

// Local only: never sent to another node (ractor's `cluster` feature needs the impl spelled out).
impl ractor::Message for ElectionMsg {}

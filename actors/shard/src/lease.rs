//! [`LeaseTable`]: cluster-wide leases for singleton jobs, with fencing by epoch.
//!
//! Some jobs must run on one node of the cluster at a time: expired-relationship garbage
//! collection, rebalancing. Each such job has a *lease* in shard 0's replicated state: a
//! holder (a node id), an *epoch* and an expiry. The table is pure and deterministic: every
//! operation takes `now_ms` from the command that carries it (the proposer's clock, chosen
//! once), never from a clock of its own, so every replica computes the same table.
//!
//! # Rules
//!
//! - [`LeaseTable::acquire`] grants a lease with a **new epoch** when the job's lease is free
//!   or expired (`expires_at_ms <= now_ms`), renews it (same epoch, new expiry) when the
//!   caller already holds it, and refuses otherwise, naming the holder and its expiry.
//! - Epochs come from one counter for the whole table ([`LeaseTable::last_epoch`]), so a new
//!   epoch is strictly greater than every epoch ever issued, for any job, released or not.
//! - [`LeaseTable::renew`] extends a lease for its holder, with its current epoch, before
//!   it expires; [`LeaseTable::release`] frees it.
//! - [`LeaseTable::check`] is the fencing check: an action fenced by `epoch` is valid only
//!   while `epoch` is the job's current epoch and the lease has not expired. Since only the
//!   current epoch ever validates, at most one holder is valid at any `now_ms`, and an old
//!   epoch never validates again once a newer one was granted. [`LeaseTable::fence`] is the
//!   same check for a side effect that also names its holder, with the reason when it fails
//!   ([`Fenced`], refusal kind `lease_fenced`).
//! - When the table holds [`LeaseLimits::leases_max`] leases, acquiring a lease for a new
//!   job first drops the expired ones; if none expired, it is refused.
//!
//! Refusals are [`LeaseError`]s; their [`LeaseError::kind`] is the refusal kind the shard
//! machine answers (`lease_job_invalid`, `lease_duration_invalid`, `lease_held`,
//! `lease_not_held`, `lease_expired`, `leases_full`, `lease_epochs_exhausted`).
//!
//! # How the leader-election actor uses it
//!
//! The future leader-election actor of every node runs each singleton job like this:
//!
//! 1. It proposes [`crate::ShardCommand::AcquireLease`] (its node id as `holder`, its clock
//!    as `now_ms`) through **shard 0's** Raft group. On
//!    [`crate::ShardAnswer::LeaseGranted`] it holds the lease with that epoch; on a
//!    `lease_held` refusal it retries after the named expiry.
//! 2. It proposes [`crate::ShardCommand::RenewLease`] every third of the duration, so two
//!    renewals can be lost before the lease lapses. A `lease_not_held` or `lease_expired`
//!    refusal means it lost the lease: it stops the job at once.
//! 3. It runs the job only while [`LeaseTable::check`] passes for its epoch (read from its
//!    own applied shard-0 state, with its own clock), checking before each side effect.
//! 4. It puts the epoch into every side effect it proposes (e.g. a garbage-collection write
//!    carries `(job, epoch)`), so the state machine applying the side effect can refuse a
//!    stale holder (paused, partitioned, or with a slow clock): in shard 0 by `check` at
//!    the command's `now_ms`; in another shard, which cannot read shard 0's table
//!    deterministically, by keeping the highest epoch it has seen per job and refusing
//!    lower ones (epochs only grow, so they work as fencing tokens). The first such side
//!    effect is [`crate::ShardCommand::PurgeExpired`] (job, holder and epoch), which the
//!    machine applies only if [`LeaseTable::fence`] passes in **its own** table at the
//!    command's `now_ms` when that table has a lease for the job (shard 0), and otherwise
//!    (a data shard) only if its epoch is at least the highest the machine has accepted
//!    for the job (see `ShardMachine::fence_epochs`).
//! 5. It proposes [`crate::ShardCommand::ReleaseLease`] when it stops cleanly, so another
//!    node need not wait for the expiry.
//!
//! Expiry compares clocks of different nodes (the proposer's that set `expires_at_ms`, the
//! checker's `now_ms`): leases are safe only while clock skew stays well below the lease
//! duration. Fencing by epoch does not depend on clocks.

use std::collections::BTreeMap;

/// The longest job name, in bytes.
pub const JOB_NAME_MAX: usize = 64;

/// The table's limits. Replicated behaviour: every replica of a shard must use the same.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeaseLimits {
    /// The longest lease one acquire or renew may grant, in milliseconds.
    pub lease_duration_max_ms: u64,
    /// How many leases the table holds at most.
    pub leases_max: usize,
}

impl Default for LeaseLimits {
    fn default() -> Self {
        Self {
            lease_duration_max_ms: 60_000,
            leases_max: 1_024,
        }
    }
}

/// One job's lease.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lease {
    /// The node that holds it.
    pub holder: u64,
    /// Its fencing epoch.
    pub epoch: u64,
    /// When it expires: it is valid while `now_ms < expires_at_ms`.
    pub expires_at_ms: u64,
}

impl Lease {
    /// Whether it has expired at `now_ms`.
    pub fn expired(&self, now_ms: u64) -> bool {
        self.expires_at_ms <= now_ms
    }
}

/// Why a lease operation was refused. Deterministic: every replica refuses identically.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LeaseError {
    /// The job name is not 1–64 bytes of `[a-z0-9_.-]`.
    #[error("job name `{job}` is not 1 to {JOB_NAME_MAX} bytes of [a-z0-9_.-]")]
    JobInvalid {
        /// The name.
        job: String,
    },
    /// The duration is zero or above the limit.
    #[error("lease duration {duration_ms} ms is not between 1 and {max_ms} ms")]
    DurationInvalid {
        /// The duration asked for.
        duration_ms: u64,
        /// [`LeaseLimits::lease_duration_max_ms`].
        max_ms: u64,
    },
    /// Another node holds the lease and it has not expired.
    #[error("lease `{job}` is held by node {holder} until {expires_at_ms} ms")]
    Held {
        /// The job.
        job: String,
        /// The current holder.
        holder: u64,
        /// When its lease expires.
        expires_at_ms: u64,
    },
    /// The caller does not hold the lease with that epoch.
    #[error("node {holder} does not hold lease `{job}` with epoch {epoch}")]
    NotHeld {
        /// The job.
        job: String,
        /// The caller.
        holder: u64,
        /// The epoch it named.
        epoch: u64,
    },
    /// The caller held the lease, but it expired before the renewal.
    #[error("lease `{job}` (epoch {epoch}) expired at {expires_at_ms} ms")]
    Expired {
        /// The job.
        job: String,
        /// Its epoch.
        epoch: u64,
        /// When it expired.
        expires_at_ms: u64,
    },
    /// The table is full and none of its leases has expired.
    #[error("the lease table is full ({leases_max} leases, none expired)")]
    Full {
        /// [`LeaseLimits::leases_max`].
        leases_max: usize,
    },
    /// Every epoch was issued (after 2^64 − 1 grants).
    #[error("lease epochs are exhausted")]
    EpochsExhausted,
}

impl LeaseError {
    /// The stable refusal kind (see the module documentation).
    pub fn kind(&self) -> &'static str {
        match self {
            LeaseError::JobInvalid { .. } => "lease_job_invalid",
            LeaseError::DurationInvalid { .. } => "lease_duration_invalid",
            LeaseError::Held { .. } => "lease_held",
            LeaseError::NotHeld { .. } => "lease_not_held",
            LeaseError::Expired { .. } => "lease_expired",
            LeaseError::Full { .. } => "leases_full",
            LeaseError::EpochsExhausted => "lease_epochs_exhausted",
        }
    }
}

/// A side effect fenced by a lease that its proposer no longer holds (see
/// [`LeaseTable::fence`]): refused as [`Fenced::KIND`]. Not a [`LeaseError`]: it comes from
/// a read-only check, not from an operation on the table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fenced {
    /// The job.
    pub job: String,
    /// The node the side effect names as the holder.
    pub holder: u64,
    /// The epoch it is fenced by.
    pub epoch: u64,
    /// The side effect's clock.
    pub now_ms: u64,
    /// The job's lease at the check, expired or not; `None` when it has none.
    pub current: Option<Lease>,
}

impl Fenced {
    /// The refusal kind the shard machine answers.
    pub const KIND: &'static str = "lease_fenced";

    fn new(job: &str, holder: u64, epoch: u64, now_ms: u64, current: Option<Lease>) -> Self {
        Self {
            job: job.to_owned(),
            holder,
            epoch,
            now_ms,
            current,
        }
    }
}

impl std::fmt::Display for Fenced {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Fenced {
            job,
            holder,
            epoch,
            now_ms,
            current,
        } = self;
        write!(
            formatter,
            "node {holder} with epoch {epoch} does not hold lease `{job}` at {now_ms} ms: "
        )?;
        match current {
            None => write!(formatter, "the job has no lease"),
            Some(lease) if lease.expired(*now_ms) => write!(
                formatter,
                "no epoch is current (epoch {} of node {} expired at {} ms)",
                lease.epoch, lease.holder, lease.expires_at_ms
            ),
            Some(lease) => write!(
                formatter,
                "the current epoch is {} (node {}, until {} ms)",
                lease.epoch, lease.holder, lease.expires_at_ms
            ),
        }
    }
}

impl std::error::Error for Fenced {}

/// Whether `job` is a valid job name: 1–64 bytes of `[a-z0-9_.-]`.
pub fn valid_job_name(job: &str) -> bool {
    (1..=JOB_NAME_MAX).contains(&job.len())
        && job
            .bytes()
            .all(|byte| matches!(byte, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'.' | b'-'))
}

fn check_job(job: &str) -> Result<(), LeaseError> {
    if valid_job_name(job) {
        Ok(())
    } else {
        Err(LeaseError::JobInvalid {
            job: job.to_owned(),
        })
    }
}

/// Checks stored or received table contents: valid job names in strictly ascending order,
/// every epoch nonzero and at most `last_epoch`, epochs distinct.
pub(crate) fn validate_parts(last_epoch: u64, leases: &[(String, Lease)]) -> Result<(), String> {
    let mut epochs = std::collections::BTreeSet::new();
    for (position, (job, lease)) in leases.iter().enumerate() {
        if !valid_job_name(job) {
            return Err(format!("invalid job name `{job}`"));
        }
        if position > 0 && leases[position - 1].0 >= *job {
            return Err(format!("job `{job}` is out of order or repeated"));
        }
        if lease.epoch == 0 || lease.epoch > last_epoch || !epochs.insert(lease.epoch) {
            return Err(format!(
                "job `{job}`: epoch {} is zero, repeated or above the last epoch {last_epoch}",
                lease.epoch
            ));
        }
    }
    Ok(())
}

/// The leases of every singleton job (see the module documentation).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseTable {
    limits: LeaseLimits,
    leases: BTreeMap<String, Lease>,
    last_epoch: u64,
}

impl LeaseTable {
    /// An empty table; the first epoch it grants is 1.
    pub fn new(limits: LeaseLimits) -> Self {
        Self {
            limits,
            leases: BTreeMap::new(),
            last_epoch: 0,
        }
    }

    /// A table with stored contents, checked (see [`validate_parts`]). The limit on the
    /// number of leases is not checked: a restored table keeps what it held.
    pub(crate) fn from_parts(
        limits: LeaseLimits,
        last_epoch: u64,
        leases: Vec<(String, Lease)>,
    ) -> Result<Self, String> {
        validate_parts(last_epoch, &leases)?;
        Ok(Self {
            limits,
            leases: leases.into_iter().collect(),
            last_epoch,
        })
    }

    /// The limits.
    pub fn limits(&self) -> LeaseLimits {
        self.limits
    }

    /// The highest epoch ever issued (0 before the first grant).
    pub fn last_epoch(&self) -> u64 {
        self.last_epoch
    }

    /// A job's lease, expired or not.
    pub fn get(&self, job: &str) -> Option<&Lease> {
        self.leases.get(job)
    }

    /// Every lease, by job name ascending.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Lease)> {
        self.leases.iter().map(|(job, lease)| (job.as_str(), lease))
    }

    /// How many leases the table holds (expired ones included).
    pub fn len(&self) -> usize {
        self.leases.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.leases.is_empty()
    }

    /// Acquires `job`'s lease for `holder` for `duration_ms` from `now_ms`: a new epoch if
    /// the lease is free or expired, the same epoch with a new expiry if `holder` holds it.
    pub fn acquire(
        &mut self,
        job: &str,
        holder: u64,
        duration_ms: u64,
        now_ms: u64,
    ) -> Result<Lease, LeaseError> {
        check_job(job)?;
        let expires_at_ms = self.expiry(duration_ms, now_ms)?;
        if let Some(lease) = self.leases.get_mut(job) {
            if !lease.expired(now_ms) {
                if lease.holder != holder {
                    return Err(LeaseError::Held {
                        job: job.to_owned(),
                        holder: lease.holder,
                        expires_at_ms: lease.expires_at_ms,
                    });
                }
                lease.expires_at_ms = expires_at_ms;
                return Ok(*lease);
            }
        } else if self.leases.len() >= self.limits.leases_max {
            self.leases.retain(|_, lease| !lease.expired(now_ms));
            if self.leases.len() >= self.limits.leases_max {
                return Err(LeaseError::Full {
                    leases_max: self.limits.leases_max,
                });
            }
        }
        let epoch = self
            .last_epoch
            .checked_add(1)
            .ok_or(LeaseError::EpochsExhausted)?;
        self.last_epoch = epoch;
        let lease = Lease {
            holder,
            epoch,
            expires_at_ms,
        };
        self.leases.insert(job.to_owned(), lease);
        Ok(lease)
    }

    /// Extends `holder`'s lease on `job` with epoch `epoch` to `now_ms + duration_ms`,
    /// provided it has not expired.
    pub fn renew(
        &mut self,
        job: &str,
        holder: u64,
        epoch: u64,
        duration_ms: u64,
        now_ms: u64,
    ) -> Result<Lease, LeaseError> {
        check_job(job)?;
        let expires_at_ms = self.expiry(duration_ms, now_ms)?;
        let lease = self.held_mut(job, holder, epoch)?;
        if lease.expired(now_ms) {
            return Err(LeaseError::Expired {
                job: job.to_owned(),
                epoch,
                expires_at_ms: lease.expires_at_ms,
            });
        }
        lease.expires_at_ms = expires_at_ms;
        Ok(*lease)
    }

    /// Frees `holder`'s lease on `job` with epoch `epoch` (expired or not). The epoch is
    /// never issued again.
    pub fn release(&mut self, job: &str, holder: u64, epoch: u64) -> Result<(), LeaseError> {
        check_job(job)?;
        self.held_mut(job, holder, epoch)?;
        self.leases.remove(job);
        Ok(())
    }

    /// The fencing check: whether an action of `job` fenced by `epoch` is valid at
    /// `now_ms` (the epoch is the job's current one and its lease has not expired).
    pub fn check(&self, job: &str, epoch: u64, now_ms: u64) -> bool {
        self.leases
            .get(job)
            .is_some_and(|lease| lease.epoch == epoch && !lease.expired(now_ms))
    }

    /// The fencing check of a side effect that names its holder too (e.g.
    /// [`crate::ShardCommand::PurgeExpired`]): `holder` holds `job` with exactly `epoch` and
    /// the lease has not expired at `now_ms`; otherwise [`Fenced`], which says what the
    /// job's lease is instead. Read-only: a refused action changes nothing.
    pub fn fence(&self, job: &str, holder: u64, epoch: u64, now_ms: u64) -> Result<(), Fenced> {
        match self.leases.get(job) {
            Some(lease)
                if lease.holder == holder && lease.epoch == epoch && !lease.expired(now_ms) =>
            {
                Ok(())
            }
            current => Err(Fenced::new(job, holder, epoch, now_ms, current.copied())),
        }
    }

    /// The lease `job` has, if `holder` holds it with `epoch`.
    fn held_mut(&mut self, job: &str, holder: u64, epoch: u64) -> Result<&mut Lease, LeaseError> {
        match self.leases.get_mut(job) {
            Some(lease) if lease.holder == holder && lease.epoch == epoch => Ok(lease),
            _ => Err(LeaseError::NotHeld {
                job: job.to_owned(),
                holder,
                epoch,
            }),
        }
    }

    /// The expiry of a grant for `duration_ms` from `now_ms`, if the duration is allowed.
    fn expiry(&self, duration_ms: u64, now_ms: u64) -> Result<u64, LeaseError> {
        let max_ms = self.limits.lease_duration_max_ms;
        if duration_ms == 0 || duration_ms > max_ms {
            return Err(LeaseError::DurationInvalid {
                duration_ms,
                max_ms,
            });
        }
        Ok(now_ms.saturating_add(duration_ms))
    }

    /// What changed from `before` to `self`: every job whose lease differs, with its new
    /// lease (`None`: removed), by job name ascending.
    pub(crate) fn changes_since(&self, before: &LeaseTable) -> Vec<(String, Option<Lease>)> {
        let mut changes: Vec<(String, Option<Lease>)> = self
            .leases
            .iter()
            .filter(|(job, lease)| before.leases.get(*job) != Some(*lease))
            .map(|(job, lease)| (job.clone(), Some(*lease)))
            .collect();
        changes.extend(
            before
                .leases
                .keys()
                .filter(|job| !self.leases.contains_key(*job))
                .map(|job| (job.clone(), None)),
        );
        changes.sort_by(|a, b| a.0.cmp(&b.0));
        changes
    }
}

#[cfg(test)]
#[path = "lease_tests.rs"]
mod tests;

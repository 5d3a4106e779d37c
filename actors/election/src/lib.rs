//! Leader election for cluster-wide singleton jobs (expired-relationship garbage
//! collection, rebalancing): each job runs only on the node that holds its lease in shard
//! 0's replicated [`inferadb_shard::LeaseTable`], fenced by the lease's epoch.
//!
//! Every node runs one [`ElectionActor`] with one [`LeaseKeeper`] per job. The keeper is
//! the pure core: a deterministic state machine over `now_ms` inputs and proposal answers
//! that decides when to acquire, renew, release, start and stop (its module documentation
//! states the rules and the assumptions under which two nodes never run a job at once).
//! The actor is the thin shell: its clock, its timer, the proposals to shard 0 and the
//! calls to each job's [`JobRunner`].
//!
//! - [`config`]: [`ElectionConfig`], the lease timings, and their rules.
//! - [`keeper`]: [`LeaseKeeper`], its inputs ([`LeaseAnswer`]) and outputs ([`Effect`],
//!   [`LeaseRequest`]).
//! - [`actor`]: [`ElectionActor`], the [`LeaseProposer`] and [`JobRunner`] seams.
//! - [`error`]: [`ElectionError`], why a keeper or the actor cannot be set up.
//!
//! The protocol, [`inferadb_messages::ElectionMsg`], lives with every other actor's.

pub mod actor;
pub mod config;
pub mod error;
pub mod keeper;

pub use actor::{
    lease_answer, BoxFuture, ElectionActor, ElectionArguments, ElectionState, JobRunner,
    LeaseProposer,
};
pub use config::{ElectionConfig, ElectionConfigError};
pub use error::ElectionError;
pub use inferadb_messages::{ElectionMsg, JobStatus, LeaseAnswer};
pub use keeper::{Effect, LeaseKeeper, LeaseRequest};

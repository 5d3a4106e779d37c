//! [`ElectionError`]: why a lease keeper or the election actor cannot be set up.

use crate::config::ElectionConfigError;

/// Why a [`crate::LeaseKeeper`] or the [`crate::ElectionActor`] was refused its setup.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ElectionError {
    /// The configuration breaks a rule.
    #[error(transparent)]
    Config(#[from] ElectionConfigError),
    /// A job's name is not a valid lease name.
    #[error(
        "job name `{job}` is not 1 to {max} bytes of [a-z0-9_.-]",
        max = inferadb_shard::lease::JOB_NAME_MAX
    )]
    JobInvalid {
        /// The name.
        job: String,
    },
    /// A job is configured twice: two keepers on one node would compete for one lease.
    #[error("job `{job}` is configured twice")]
    JobRepeated {
        /// The name.
        job: String,
    },
}

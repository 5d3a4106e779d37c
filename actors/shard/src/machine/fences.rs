//! Fencing a lease-fenced side effect (`PurgeExpired`) and the fence epochs in the catalog
//! database: [`FENCE_EPOCHS_TABLE`] maps each job name to the highest epoch (u64
//! big-endian) this machine has accepted for that job's side effects. A change is written
//! in the catalog transaction that records the command's `applied_index`, so the durable
//! table is always the table after the durable applied index, and re-applying the entries
//! after it admits and refuses the same side effects.
//!
//! The rule that admits or refuses a side effect is [the machine's](super#fencing).

use std::collections::BTreeMap;

use inferadb_storage::{Database, Durability, WriteTransaction};

use super::{finish_catalog, ShardMachine};
use crate::error::ShardError;
use crate::lease::{valid_job_name, JOB_NAME_MAX};

/// The catalog table of the fence epochs, by job name.
pub const FENCE_EPOCHS_TABLE: &str = "shard_fence_epochs";

impl ShardMachine {
    /// The highest epoch this machine has accepted for a lease-fenced side effect of each
    /// job (see [the fencing rule](crate::machine#fencing)), by job name.
    pub fn fence_epochs(&self) -> &BTreeMap<String, u64> {
        &self.fence_epochs
    }

    /// Whether a side effect of `job` by `holder` fenced by `epoch` applies at `now_ms`
    /// (see [the fencing rule](crate::machine#fencing)): `Ok(Some(epoch))` when it does and raises the job's
    /// recorded epoch, `Ok(None)` when it does and changes nothing, `Err` with the refusal's
    /// message when it is fenced off.
    pub(super) fn admit(
        &self,
        job: &str,
        holder: u64,
        epoch: u64,
        now_ms: u64,
    ) -> Result<Option<u64>, String> {
        let highest = self.fence_epochs.get(job).copied();
        if self.leases.get(job).is_some() {
            self.leases
                .fence(job, holder, epoch, now_ms)
                .map_err(|fenced| fenced.to_string())?;
        } else if let Some(problem) = self.token_problem(job, epoch, highest) {
            return Err(format!(
                "node {holder} with epoch {epoch} is fenced off job `{job}` on this shard: \
                 {problem}"
            ));
        }
        // In shard 0 the lease table is the authority: a full fence table just records
        // nothing more there, so that it stays bounded.
        let room = highest.is_some() || self.fence_epochs.len() < self.leases.limits().leases_max;
        // `None < Some(_)`: the first accepted epoch of a job is recorded.
        Ok((room && highest < Some(epoch)).then_some(epoch))
    }

    /// Why `epoch` is no valid fencing token for `job`, whose highest accepted epoch is
    /// `highest`, if it is not.
    fn token_problem(&self, job: &str, epoch: u64, highest: Option<u64>) -> Option<String> {
        let jobs_max = self.leases.limits().leases_max;
        if !valid_job_name(job) {
            Some(format!(
                "the job name is not 1 to {JOB_NAME_MAX} bytes of [a-z0-9_.-]"
            ))
        } else if epoch == 0 {
            Some("epoch 0 is never granted".into())
        } else if let Some(highest) = highest.filter(|highest| epoch < *highest) {
            Some(format!("the highest epoch seen is {highest}"))
        } else if highest.is_none() && self.fence_epochs.len() >= jobs_max {
            Some(format!("the fence table is full ({jobs_max} jobs)"))
        } else {
            None
        }
    }

    /// Records `index` as applied, with `job`'s new highest epoch if `raised`, in one
    /// catalog transaction.
    pub(super) fn record_fence(
        &mut self,
        index: u64,
        job: &str,
        raised: Option<u64>,
    ) -> Result<(), ShardError> {
        let Some(epoch) = raised else {
            return self.record_applied(index);
        };
        let mut txn = self.catalog.database().begin_write()?;
        txn.open_table(FENCE_EPOCHS_TABLE)?
            .insert(job.as_bytes(), &epoch.to_be_bytes())?;
        finish_catalog(txn, index, Durability::Deferred)?;
        self.fence_epochs.insert(job.to_owned(), epoch);
        Ok(())
    }
}

/// Replaces the stored table with `fence_epochs` inside `txn` (a restore).
pub(super) fn write_all(
    txn: &mut WriteTransaction,
    fence_epochs: &BTreeMap<String, u64>,
) -> Result<(), ShardError> {
    let entries = fence_epochs
        .iter()
        .map(|(job, epoch)| (job.as_bytes().to_vec(), epoch.to_be_bytes().to_vec()));
    super::tables::rewrite(txn, FENCE_EPOCHS_TABLE, entries)
}

/// Reads the stored table, checking it.
pub(super) fn load(db: &Database) -> Result<BTreeMap<String, u64>, ShardError> {
    super::tables::load_map(db, FENCE_EPOCHS_TABLE, decode_fence)
}

fn decode_fence(key: &[u8], value: &[u8]) -> Result<(String, u64), ShardError> {
    let corrupt = |what: String| ShardError::Corrupt { what };
    let job = std::str::from_utf8(key)
        .ok()
        .filter(|job| valid_job_name(job))
        .ok_or_else(|| corrupt("a fenced job's name is invalid".into()))?;
    let epoch = <[u8; 8]>::try_from(value)
        .map(u64::from_be_bytes)
        .ok()
        .filter(|epoch| *epoch != 0)
        .ok_or_else(|| corrupt(format!("fence epoch of job `{job}`: not 8 bytes or 0")))?;
    Ok((job.to_owned(), epoch))
}

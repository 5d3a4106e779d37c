//! The lease table in the catalog database: [`LEASES_TABLE`] maps each job name to its
//! lease (`u64 holder ‖ u64 epoch ‖ u64 expires_at_ms`, big-endian), and
//! [`LAST_EPOCH_KEY`] in [`SHARD_TABLE`] holds the epoch counter. Both are written in the
//! catalog transaction that records the command's `applied_index`, so the durable table is
//! always the table after the durable applied index: re-applying the entries after it
//! grants the same epochs to the same holders, and no epoch is ever granted twice or lost.

use inferadb_storage::{Database, Durability, StorageError, WriteTransaction};

use super::{finish_catalog, ShardMachine, SHARD_TABLE};
use crate::answer::ShardAnswer;
use crate::error::ShardError;
use crate::lease::{Lease, LeaseError, LeaseLimits, LeaseTable};

/// The catalog table of the leases, by job name.
pub const LEASES_TABLE: &str = "shard_leases";
/// The key of the lease epoch counter (u64 big-endian) in [`SHARD_TABLE`].
pub const LAST_EPOCH_KEY: &[u8] = b"lease_last_epoch";

impl ShardMachine {
    /// The lease table (meaningful in shard 0, where the cluster keeps its leases). The
    /// leader-election actor calls [`LeaseTable::check`] on it before each side effect.
    pub fn leases(&self) -> &LeaseTable {
        &self.leases
    }

    /// Applies a lease operation at `index`: its changes and the applied index commit in one
    /// catalog transaction; a refusal commits the applied index alone.
    pub(super) fn apply_lease(
        &mut self,
        index: u64,
        operation: impl FnOnce(&mut LeaseTable) -> Result<ShardAnswer, LeaseError>,
    ) -> Result<ShardAnswer, ShardError> {
        let mut next = self.leases.clone();
        let answer = match operation(&mut next) {
            Ok(answer) => answer,
            Err(error) => {
                self.record_applied(index)?;
                return Ok(ShardAnswer::refused(error.kind(), error.to_string()));
            }
        };
        let mut txn = self.catalog.database().begin_write()?;
        {
            let mut table = txn.open_table(LEASES_TABLE)?;
            for (job, lease) in next.changes_since(&self.leases) {
                match lease {
                    Some(lease) => {
                        table.insert(job.as_bytes(), &encode_lease(&lease))?;
                    }
                    None => {
                        table.remove(job.as_bytes())?;
                    }
                }
            }
        }
        write_last_epoch(&mut txn, next.last_epoch())?;
        finish_catalog(txn, index, Durability::Deferred)?;
        self.leases = next;
        Ok(answer)
    }
}

/// The answer to a grant.
pub(super) fn granted(lease: Lease) -> ShardAnswer {
    ShardAnswer::LeaseGranted {
        epoch: lease.epoch,
        expires_at_ms: lease.expires_at_ms,
    }
}

fn encode_lease(lease: &Lease) -> [u8; 24] {
    let mut bytes = [0u8; 24];
    bytes[..8].copy_from_slice(&lease.holder.to_be_bytes());
    bytes[8..16].copy_from_slice(&lease.epoch.to_be_bytes());
    bytes[16..].copy_from_slice(&lease.expires_at_ms.to_be_bytes());
    bytes
}

fn decode_lease(job: &str, bytes: &[u8]) -> Result<Lease, ShardError> {
    let field = |at: usize| {
        bytes
            .get(at..at + 8)
            .and_then(|field| <[u8; 8]>::try_from(field).ok())
            .map(u64::from_be_bytes)
    };
    match (bytes.len(), field(0), field(8), field(16)) {
        (24, Some(holder), Some(epoch), Some(expires_at_ms)) => Ok(Lease {
            holder,
            epoch,
            expires_at_ms,
        }),
        _ => Err(ShardError::Corrupt {
            what: format!("lease `{job}`: not 24 bytes"),
        }),
    }
}

fn write_last_epoch(txn: &mut WriteTransaction, last_epoch: u64) -> Result<(), ShardError> {
    txn.open_table(SHARD_TABLE)?
        .insert(LAST_EPOCH_KEY, &last_epoch.to_be_bytes())?;
    Ok(())
}

/// Replaces the stored table with `leases` inside `txn` (a restore).
pub(super) fn write_all(txn: &mut WriteTransaction, leases: &LeaseTable) -> Result<(), ShardError> {
    txn.delete_table(LEASES_TABLE)?;
    {
        let mut table = txn.open_table(LEASES_TABLE)?;
        for (job, lease) in leases.iter() {
            table.insert(job.as_bytes(), &encode_lease(lease))?;
        }
    }
    write_last_epoch(txn, leases.last_epoch())
}

/// Reads the stored table, checking it.
pub(super) fn load(db: &Database, limits: LeaseLimits) -> Result<LeaseTable, ShardError> {
    let read = db.begin_read();
    let last_epoch = match read.open_table(SHARD_TABLE) {
        Ok(table) => match table.get(LAST_EPOCH_KEY)? {
            None => 0,
            Some(bytes) => <[u8; 8]>::try_from(&bytes[..])
                .map(u64::from_be_bytes)
                .map_err(|_| ShardError::Corrupt {
                    what: "lease_last_epoch".into(),
                })?,
        },
        Err(StorageError::TableNotFound(_)) => 0,
        Err(error) => return Err(error.into()),
    };
    let mut leases = Vec::new();
    match read.open_table(LEASES_TABLE) {
        Ok(table) => {
            for entry in table.iter()? {
                let (key, value) = entry?;
                let job = std::str::from_utf8(key).map_err(|_| ShardError::Corrupt {
                    what: "a lease's job name is not UTF-8".into(),
                })?;
                leases.push((job.to_owned(), decode_lease(job, &value)?));
            }
        }
        Err(StorageError::TableNotFound(_)) => {}
        Err(error) => return Err(error.into()),
    }
    LeaseTable::from_parts(limits, last_epoch, leases).map_err(|message| ShardError::Corrupt {
        what: format!("lease table: {message}"),
    })
}

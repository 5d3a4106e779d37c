//! Purging expired relationships: [`Vault::purge_expired`] removes stored relationships
//! whose expiry has passed, recording the removals as one ledger block like any write, so
//! the ledger still verifies and a replica replaying the block ends at the same state root.

use inferadb_protocols::Revision;

use crate::error::WriteError;
use crate::vault::{Staging, Vault, WriteOutcome};

impl Vault {
    /// Removes up to `limit` stored relationships whose `expires_at_ms <= now_ms`, soonest
    /// expiry first (then in forward-key order), as ONE block of `Remove` operations (each carrying the expiry it
    /// had), in one transaction; the block's timestamp is `now_ms`. Expired relationships
    /// are already invisible to reads and checks; purging reclaims their space and keeps
    /// later scans short. When nothing is expired (or `limit` is 0) nothing is recorded and
    /// the outcome is the current revision with zero counts.
    ///
    /// The walk reads only the expired prefix of the expiry index, so a purge costs what it
    /// removes, whatever the number of relationships that do not expire; `limit` keeps each
    /// pass's removals (and block) small. A `limit` whose block would exceed the storage value limit is refused as
    /// [`WriteError::BlockTooLarge`], changing nothing.
    pub fn purge_expired(&mut self, now_ms: u64, limit: usize) -> Result<WriteOutcome, WriteError> {
        let unchanged = WriteOutcome {
            revision: self.revision(),
            operations_applied: 0,
            inserted: 0,
            removed: 0,
        };
        if limit == 0 {
            return Ok(unchanged);
        }
        let mut txn = self.db.begin_write()?;
        let mut staging = Staging::new(&mut txn, self.id, self.buckets.clone());
        for relationship in staging.expired(now_ms, limit)? {
            let expiry = relationship.expires_at_ms;
            staging.remove(relationship, expiry)?;
        }
        let Staging {
            buckets,
            changed,
            operations,
            removed,
            ..
        } = staging;
        if operations.is_empty() {
            return Ok(unchanged);
        }
        let operations_applied = operations.len();
        let pending =
            self.record_block(&mut txn, self.head, operations, buckets, &changed, now_ms)?;
        txn.set_durability(self.options.commit_durability);
        txn.commit()?;
        self.head = pending.head;
        self.buckets = pending.buckets;
        Ok(WriteOutcome {
            revision: Revision(self.head.height),
            operations_applied,
            inserted: 0,
            removed,
        })
    }
}

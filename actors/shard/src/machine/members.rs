//! The member registry in the catalog database: [`MEMBERS_TABLE`] maps each node id (u64
//! big-endian) to its record (`u8 removed (0 | 1) ‖ address UTF-8`). A change is written in
//! the catalog transaction that records the command's `applied_index`, so the durable
//! registry is always the registry after the durable applied index, and re-applying the
//! entries after it records the same members.

use std::collections::{BTreeMap, BTreeSet};

use inferadb_raft::group::MembershipTarget;
use inferadb_storage::{Database, Durability, WriteTransaction};

use super::{finish_catalog, ShardMachine};
use crate::answer::ShardAnswer;
use crate::error::ShardError;
use crate::members::{self, MemberError, MemberRecord};

/// The catalog table of the member registry, by node id.
pub const MEMBERS_TABLE: &str = "shard_members";

impl ShardMachine {
    /// The cluster's member registry (meaningful in shard 0), by node id: see
    /// [`crate::members`].
    pub fn members(&self) -> &BTreeMap<u64, MemberRecord> {
        &self.members
    }

    /// The membership the registry asks for: its non-removed ids as voters, its removed ids
    /// as removed.
    pub(super) fn target(&self) -> MembershipTarget {
        let ids = |removed: bool| -> BTreeSet<u64> {
            self.members
                .iter()
                .filter(|(_, record)| record.removed == removed)
                .map(|(id, _)| *id)
                .collect()
        };
        MembershipTarget {
            voters: ids(false),
            removed: ids(true),
        }
    }

    /// Applies a membership command at `index`: the record `operation` leaves (if it
    /// changes one) and the applied index commit in one catalog transaction; a refusal or
    /// a command that changes nothing commits the applied index alone.
    pub(super) fn apply_member(
        &mut self,
        index: u64,
        id: u64,
        operation: impl FnOnce(
            &BTreeMap<u64, MemberRecord>,
        ) -> Result<Option<MemberRecord>, MemberError>,
    ) -> Result<ShardAnswer, ShardError> {
        let record = match operation(&self.members) {
            Ok(Some(record)) => record,
            Ok(None) => {
                self.record_applied(index)?;
                return Ok(ShardAnswer::MembersChanged);
            }
            Err(error) => {
                self.record_applied(index)?;
                return Ok(ShardAnswer::refused(error.kind(), error.to_string()));
            }
        };
        let mut txn = self.catalog.database().begin_write()?;
        txn.open_table(MEMBERS_TABLE)?
            .insert(&id.to_be_bytes(), &encode_record(&record))?;
        finish_catalog(txn, index, Durability::Deferred)?;
        self.members.insert(id, record);
        self.members_changed = true;
        Ok(ShardAnswer::MembersChanged)
    }
}

fn encode_record(record: &MemberRecord) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(1 + record.address.len());
    bytes.push(u8::from(record.removed));
    bytes.extend_from_slice(record.address.as_bytes());
    bytes
}

fn decode_record(key: &[u8], value: &[u8]) -> Result<(u64, MemberRecord), ShardError> {
    let corrupt = |what: String| ShardError::Corrupt { what };
    let id = <[u8; 8]>::try_from(key)
        .map(u64::from_be_bytes)
        .map_err(|_| corrupt("a member id is not 8 bytes".into()))?;
    let removed = match value.first() {
        Some(0) => false,
        Some(1) => true,
        _ => return Err(corrupt(format!("member {id}: no removed flag"))),
    };
    let address = std::str::from_utf8(&value[1..])
        .map_err(|_| corrupt(format!("member {id}: the address is not UTF-8")))?;
    let record = MemberRecord {
        address: address.to_owned(),
        removed,
    };
    members::check(id, &record).map_err(corrupt)?;
    Ok((id, record))
}

/// Replaces the stored registry with `members` inside `txn` (a restore).
pub(super) fn write_all(
    txn: &mut WriteTransaction,
    members: &BTreeMap<u64, MemberRecord>,
) -> Result<(), ShardError> {
    let entries = members
        .iter()
        .map(|(id, record)| (id.to_be_bytes().to_vec(), encode_record(record)));
    super::tables::rewrite(txn, MEMBERS_TABLE, entries)
}

/// Reads the stored registry, checking it.
pub(super) fn load(db: &Database) -> Result<BTreeMap<u64, MemberRecord>, ShardError> {
    super::tables::load_map(db, MEMBERS_TABLE, decode_record)
}

//! The vault placements in the catalog database: [`PLACEMENTS_TABLE`] maps each vault id
//! (u64 big-endian) to its placement (`u64 shard ‖ name UTF-8`). A change is written in the
//! catalog transaction that records the command's `applied_index`, so the durable table is
//! always the table after the durable applied index, and re-applying the entries after it
//! places the same vaults on the same shards.

use std::collections::BTreeMap;

use inferadb_protocols::VaultId;
use inferadb_storage::{Database, Durability, WriteTransaction};

use super::{catalog_refusal, finish_catalog, not_found, ShardMachine};
use crate::answer::ShardAnswer;
use crate::error::ShardError;
use crate::placements::{self, PlaceError, Placement};

/// The catalog table of the vault placements, by vault id.
pub const PLACEMENTS_TABLE: &str = "shard_placements";

impl ShardMachine {
    /// Where each vault lives (meaningful in shard 0), by vault id: see
    /// [`crate::placements`].
    pub fn placements(&self) -> &BTreeMap<VaultId, Placement> {
        &self.placements
    }

    /// Applies `PlaceVault` at `index`: a new placement and the applied index commit in one
    /// catalog transaction; a refusal or a retry commits the applied index alone.
    pub(super) fn place_vault(
        &mut self,
        index: u64,
        id: VaultId,
        name: &str,
        data_shards: u32,
    ) -> Result<ShardAnswer, ShardError> {
        let (shard, placement) = match placements::place(&self.placements, id, name, data_shards) {
            Ok(placed) => placed,
            Err(error) => {
                let answer = place_refusal(error)?;
                self.record_applied(index)?;
                return Ok(answer);
            }
        };
        let Some(placement) = placement else {
            self.record_applied(index)?;
            return Ok(ShardAnswer::VaultPlaced { id, shard });
        };
        let mut txn = self.catalog.database().begin_write()?;
        txn.open_table(PLACEMENTS_TABLE)?
            .insert(&id.0.to_be_bytes(), &encode_placement(&placement))?;
        finish_catalog(txn, index, Durability::Deferred)?;
        self.placements.insert(id, placement);
        self.placements_changed = true;
        Ok(ShardAnswer::VaultPlaced { id, shard })
    }

    /// Applies `UnplaceVault` at `index` (see [`Self::place_vault`]).
    pub(super) fn unplace_vault(
        &mut self,
        index: u64,
        id: VaultId,
    ) -> Result<ShardAnswer, ShardError> {
        if !self.placements.contains_key(&id) {
            self.record_applied(index)?;
            return Ok(not_found(id));
        }
        let mut txn = self.catalog.database().begin_write()?;
        txn.open_table(PLACEMENTS_TABLE)?
            .remove(&id.0.to_be_bytes())?;
        finish_catalog(txn, index, Durability::Deferred)?;
        self.placements.remove(&id);
        self.placements_changed = true;
        Ok(ShardAnswer::VaultUnplaced { id })
    }
}

/// The refusal of a `PlaceVault`: a name or id rule's carries its catalog error.
fn place_refusal(error: PlaceError) -> Result<ShardAnswer, ShardError> {
    match error {
        PlaceError::Catalog(error) => catalog_refusal(error),
        PlaceError::NoDataShards => Ok(ShardAnswer::refused(
            PlaceError::INVALID_KIND,
            "data_shards is 0: there is no data shard to place the vault on",
        )),
    }
}

fn encode_placement(placement: &Placement) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(8 + placement.name.len());
    bytes.extend_from_slice(&placement.shard.to_be_bytes());
    bytes.extend_from_slice(placement.name.as_bytes());
    bytes
}

fn decode_placement(key: &[u8], value: &[u8]) -> Result<(VaultId, Placement), ShardError> {
    let corrupt = |what: String| ShardError::Corrupt { what };
    let id = <[u8; 8]>::try_from(key)
        .map(|bytes| VaultId(u64::from_be_bytes(bytes)))
        .map_err(|_| corrupt("a placed vault id is not 8 bytes".into()))?;
    let shard = value
        .get(..8)
        .and_then(|bytes| <[u8; 8]>::try_from(bytes).ok())
        .map(u64::from_be_bytes)
        .ok_or_else(|| corrupt(format!("placement of vault {id}: no shard")))?;
    let name = std::str::from_utf8(&value[8..])
        .map_err(|_| corrupt(format!("placement of vault {id}: the name is not UTF-8")))?;
    let placement = Placement {
        name: name.to_owned(),
        shard,
    };
    Ok((id, placement))
}

/// Replaces the stored table with `placements` inside `txn` (a restore).
pub(super) fn write_all(
    txn: &mut WriteTransaction,
    placements: &BTreeMap<VaultId, Placement>,
) -> Result<(), ShardError> {
    let entries = placements
        .iter()
        .map(|(id, placement)| (id.0.to_be_bytes().to_vec(), encode_placement(placement)));
    super::tables::rewrite(txn, PLACEMENTS_TABLE, entries)
}

/// Reads the stored table, checking it.
pub(super) fn load(db: &Database) -> Result<BTreeMap<VaultId, Placement>, ShardError> {
    let stored = super::tables::load_map(db, PLACEMENTS_TABLE, decode_placement)?;
    placements::check(&stored).map_err(|message| ShardError::Corrupt {
        what: format!("vault placements: {message}"),
    })?;
    Ok(stored)
}

//! Vault placement: which data shard holds each vault, a replicated table kept in shard 0
//! (the system shard). Vault names are unique cluster-wide, so the table is also where a
//! name is claimed.
//!
//! # Rules
//!
//! - [`crate::ShardCommand::PlaceVault`] places vault `id` named `name` on one of the data
//!   shards `1..=data_shards`: the one holding the fewest placed vaults, ties to the lowest
//!   id. The machine picks, not the proposer, so that concurrent proposers cannot both
//!   pick the emptiest shard from stale views: each placement sees every one before it.
//! - The name must be a valid vault name (`vault_name_invalid`) not placed under another
//!   id (`vault_name_taken`); the id must not be placed under another name
//!   (`vault_id_taken`); `data_shards` must not be 0 (`placement_invalid`). The first
//!   three refusals carry the [`CatalogError`] a vault catalog gives for the same rule,
//!   so the gateway maps them as it maps a catalog's.
//! - Placing an id again under the same name answers its existing placement and changes
//!   nothing, whatever `data_shards` says: a proposer that lost its answer retries.
//! - [`crate::ShardCommand::UnplaceVault`] forgets a placement (`vault_not_found` when
//!   there is none), which frees its name.

use std::collections::BTreeMap;

use inferadb_protocols::VaultId;
use inferadb_vault::{validate_vault_name, CatalogError};

/// Where one vault lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placement {
    /// The vault's name, unique among placements.
    pub name: String,
    /// The data shard that holds it (never 0: shard 0 is the system shard).
    pub shard: u64,
}

/// Why a `PlaceVault` was refused. Deterministic: every replica refuses identically.
#[derive(Debug)]
pub(crate) enum PlaceError {
    /// A vault-name rule, as the vault catalog states it.
    Catalog(CatalogError),
    /// `data_shards` is 0: there is no shard to place on.
    NoDataShards,
}

impl PlaceError {
    /// The refusal kind of [`PlaceError::NoDataShards`] (the others take their catalog
    /// error's kind).
    pub(crate) const INVALID_KIND: &'static str = "placement_invalid";
}

/// What `PlaceVault { id, name, data_shards }` answers — the shard — and the placement to
/// record, `None` when `id` already has it (a retry).
pub(crate) fn place(
    placements: &BTreeMap<VaultId, Placement>,
    id: VaultId,
    name: &str,
    data_shards: u32,
) -> Result<(u64, Option<Placement>), PlaceError> {
    validate_vault_name(name).map_err(PlaceError::Catalog)?;
    if data_shards == 0 {
        return Err(PlaceError::NoDataShards);
    }
    if let Some(existing) = placements.get(&id) {
        return if existing.name == name {
            Ok((existing.shard, None))
        } else {
            Err(PlaceError::Catalog(CatalogError::IdTaken { id }))
        };
    }
    if let Some((existing, _)) = placements.iter().find(|(_, placed)| placed.name == name) {
        return Err(PlaceError::Catalog(CatalogError::NameTaken {
            name: name.to_owned(),
            existing: *existing,
        }));
    }
    let shard = least_loaded(placements, data_shards);
    let placement = Placement {
        name: name.to_owned(),
        shard,
    };
    Ok((shard, Some(placement)))
}

/// Among shards `1..=data_shards` (at least one), the one with the fewest placements, ties
/// to the lowest id.
fn least_loaded(placements: &BTreeMap<VaultId, Placement>, data_shards: u32) -> u64 {
    let mut load: BTreeMap<u64, usize> = BTreeMap::new();
    for placement in placements.values() {
        *load.entry(placement.shard).or_default() += 1;
    }
    // A shard `load` does not name holds nothing. At most `load.len()` shards hold
    // something, so an empty one, when there is one, is among the first `load.len() + 1`:
    // the scan is bounded by the table, never by `data_shards` (up to 2^32).
    let bound = u64::from(data_shards).min(load.len() as u64 + 1);
    (1..=bound)
        .map(|shard| (load.get(&shard).copied().unwrap_or(0), shard))
        .min()
        .map(|(_, shard)| shard)
        .expect("invariant: data_shards is at least 1, so the range is not empty")
}

/// Checks a stored or received table: what [`place`] can leave (valid, distinct names,
/// no shard 0).
pub(crate) fn check(placements: &BTreeMap<VaultId, Placement>) -> Result<(), String> {
    let mut names = BTreeMap::new();
    for (id, placement) in placements {
        validate_vault_name(&placement.name)
            .map_err(|error| format!("vault {id}: placement name: {error}"))?;
        if placement.shard == 0 {
            return Err(format!("vault {id}: placed on shard 0"));
        }
        if let Some(other) = names.insert(placement.name.as_str(), *id) {
            return Err(format!(
                "vaults {other} and {id} are both placed as `{}`",
                placement.name
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn placed(entries: &[(u64, &str, u64)]) -> BTreeMap<VaultId, Placement> {
        entries
            .iter()
            .map(|(id, name, shard)| {
                (
                    VaultId(*id),
                    Placement {
                        name: (*name).to_owned(),
                        shard: *shard,
                    },
                )
            })
            .collect()
    }

    #[test]
    fn the_least_loaded_shard_is_found_without_scanning_every_shard() {
        assert_eq!(least_loaded(&BTreeMap::new(), u32::MAX), 1);
        let table = placed(&[(1, "a", 1), (2, "b", 2), (3, "c", 1), (4, "d", 9)]);
        // Shard 3 is the lowest empty one, whatever the count of shards above it.
        assert_eq!(least_loaded(&table, u32::MAX), 3);
        assert_eq!(least_loaded(&table, 2), 2);
        assert_eq!(least_loaded(&table, 1), 1);
        // Placements on shards beyond `data_shards` (a smaller cluster) do not count.
        let table = placed(&[(1, "a", 1), (2, "b", 2), (3, "c", 5)]);
        assert_eq!(least_loaded(&table, 2), 1);
        assert_eq!(least_loaded(&table, 3), 3);
    }

    #[test]
    fn a_stored_table_is_checked() {
        assert!(check(&placed(&[(1, "a", 1), (2, "b", 1)])).is_ok());
        assert!(check(&placed(&[(1, "a", 1), (2, "a", 2)])).is_err());
        assert!(check(&placed(&[(1, "a", 0)])).is_err());
        assert!(check(&placed(&[(1, "", 1)])).is_err());
    }
}

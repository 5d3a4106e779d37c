//! The synced watermark: [`SYNCED_TABLE`] maps each vault to the commit index its file held
//! when [`ShardMachine::sync`] last made it durable.
//!
//! A vault's file must never come back *behind* that: its commands up to the watermark are
//! durable in it, and the recovery rule skips them (the catalog's applied index is past
//! them). The storage engine's recovery cannot always tell damage from a torn commit (a
//! corrupt newest meta page makes it fall back to the older one), so a file can reopen one
//! commit behind what was synced, and the replica would then miss those commands without
//! noticing. Comparing the reopened vault with its watermark catches that: such a vault is
//! quarantined like one that fails to open (see [Quarantine](super#quarantine)).
//!
//! The table is this replica's own bookkeeping, not replicated state: it is not part of
//! snapshots, and a restore, a creation or a deletion forgets the vault's entry.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use inferadb_raft::group::PersistJob;

use inferadb_protocols::VaultId;
use inferadb_storage::{Database, Durability, WriteTransaction};

use super::{tables, ShardMachine};
use crate::error::ShardError;

/// The catalog table of the synced watermarks (vault id, u64 big-endian → commit index,
/// u64 big-endian).
pub const SYNCED_TABLE: &str = "shard_vault_synced";

/// Every vault's watermark.
pub(super) fn load(db: &Database) -> Result<BTreeMap<VaultId, u64>, ShardError> {
    tables::load_map(db, SYNCED_TABLE, |key, value| {
        Ok((VaultId(decode(key)?), decode(value)?))
    })
}

/// Forgets `id`'s watermark inside `txn` (its file is new, or gone).
pub(super) fn forget(txn: &mut WriteTransaction, id: VaultId) -> Result<(), ShardError> {
    txn.open_table(SYNCED_TABLE)?.remove(&id.0.to_be_bytes())?;
    Ok(())
}

/// Forgets every watermark inside `txn` (a restore rebuilds every file).
pub(super) fn forget_all(txn: &mut WriteTransaction) -> Result<(), ShardError> {
    tables::rewrite(txn, SYNCED_TABLE, std::iter::empty())
}

/// Why a reopened vault is behind its watermark, if it is.
pub(super) fn rolled_back(stored: u64, watermark: u64) -> Option<String> {
    (stored < watermark).then(|| {
        format!(
            "its file reopened at commit index {stored}, behind the {watermark} it held when \
             it was last synced (lost or damaged durable data)"
        )
    })
}

impl ShardMachine {
    /// Records every open vault's stored commit index as its watermark (call only once the
    /// vault files are synced), in one catalog commit the caller then syncs.
    pub(super) fn record_synced(&self) -> Result<(), ShardError> {
        let marks = self
            .vaults
            .iter()
            .map(|(id, member)| Ok((*id, member.vault.stored_commit_index()?)))
            .collect::<Result<Vec<_>, ShardError>>()?;
        record(self.catalog.database(), &marks, || true)
    }
}

/// Writes `marks` as watermarks in one deferred catalog commit, if `still_current()` holds
/// once the catalog's writer slot is taken (so no change of the vault files can slip in
/// between the check and the commit).
fn record(
    catalog: &Database,
    marks: &[(VaultId, u64)],
    still_current: impl FnOnce() -> bool,
) -> Result<(), ShardError> {
    let mut txn = catalog.begin_write()?;
    if !still_current() {
        return Ok(());
    }
    {
        let mut table = txn.open_table(SYNCED_TABLE)?;
        for (id, stored) in marks {
            table.insert(&id.0.to_be_bytes(), &stored.to_be_bytes())?;
        }
    }
    txn.set_durability(Durability::Deferred);
    txn.commit()?;
    Ok(())
}

/// The periodic persist, with its fsyncs off the member's thread. Now, while no apply
/// runs: notes every vault file's newest commit and its commit index, then the catalog's
/// newest commit (no later than any vault's, so the catalog never claims an entry applied
/// that a vault file may lack). The job then makes the vault files durable, records their
/// watermarks (durable with the next persist: a lower watermark on disk only weakens the
/// check, never misfires) and makes the noted catalog commit durable.
pub(super) fn begin_background_sync(machine: &ShardMachine) -> Result<PersistJob, ShardError> {
    let mut vaults = Vec::with_capacity(machine.vaults.len());
    for (id, member) in &machine.vaults {
        let pending = member.db.begin_sync()?;
        vaults.push((*id, pending, member.vault.stored_commit_index()?));
    }
    let catalog = machine.catalog.database().clone();
    let catalog_pending = catalog.begin_sync()?;
    // Weak: a job that outlives its machine (the member restarted meanwhile) records
    // nothing, since the new machine's changes to the files would not show in this epoch.
    let epoch = Arc::downgrade(&machine.files_epoch);
    let noted_epoch = machine.files_epoch.load(Ordering::SeqCst);
    Ok(Box::new(move || {
        let mut marks = Vec::with_capacity(vaults.len());
        for (id, pending, stored) in vaults {
            pending
                .finish()
                .map_err(|error| format!("syncing vault {id}: {error}"))?;
            marks.push((id, stored));
        }
        let still_current = || {
            epoch
                .upgrade()
                .is_some_and(|epoch| epoch.load(Ordering::SeqCst) == noted_epoch)
        };
        record(&catalog, &marks, still_current)
            .map_err(|error| format!("recording the synced watermarks: {error}"))?;
        catalog_pending
            .finish()
            .map_err(|error| format!("syncing the catalog: {error}"))
    }))
}

fn decode(bytes: &[u8]) -> Result<u64, ShardError> {
    <[u8; 8]>::try_from(bytes)
        .map(u64::from_be_bytes)
        .map_err(|_| ShardError::Corrupt {
            what: format!("a synced watermark entry of {} bytes", bytes.len()),
        })
}

/// Quarantines every opened vault that came back behind its watermark, marking it stale
/// first (durably, as any quarantine: a later start must not serve it either).
pub(super) fn quarantine_rolled_back(
    files: &mut dyn crate::files::VaultFiles,
    vaults: &mut BTreeMap<VaultId, super::Member>,
    quarantined: &mut super::Quarantined,
    watermarks: &BTreeMap<VaultId, u64>,
) -> Result<(), ShardError> {
    for (id, watermark) in watermarks {
        let Some(member) = vaults.get(id) else {
            continue;
        };
        let stored = member.vault.stored_commit_index()?;
        if let Some(reason) = rolled_back(stored, *watermark) {
            files.mark_stale(*id)?;
            vaults.remove(id);
            quarantined.insert(*id, reason);
        }
    }
    Ok(())
}

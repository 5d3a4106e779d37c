//! Taking a logical snapshot of a machine and restoring one (format: [`crate::snapshot`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use inferadb_storage::Durability;
use inferadb_vault::{NodeCatalog, Vault, VaultOptions, VaultRecord, VaultSnapshot};

use super::{fences, finish_catalog, leases, members, placements, synced, Member, ShardMachine};
use crate::error::ShardError;
use crate::files::VaultFiles;
use crate::lease::LeaseTable;
use crate::snapshot::{ShardImage, VaultImage};

/// The machine's state as a snapshot image: every vault's record, commit index, schema
/// texts and blocks, the lease table, the member registry, the placements and the fence
/// epochs.
pub(super) fn image(machine: &ShardMachine) -> Result<ShardImage, ShardError> {
    view(machine)?.build()
}

/// A vault as of the view: everything but its blocks, and a read view to read them from.
struct VaultView {
    record: VaultRecord,
    commit_index: u64,
    schemas: Vec<(u32, String)>,
    snapshot: Arc<VaultSnapshot>,
}

/// The machine's state at its applied index, without the blocks: cheap to take, and
/// [`ImageView::build`] reads the blocks from the vaults' read views, which later commits do
/// not change, so it may run on another thread while the machine applies further entries.
pub(super) struct ImageView {
    vaults: Vec<VaultView>,
    rest: ShardImage,
}

/// See [`ImageView`].
pub(super) fn view(machine: &ShardMachine) -> Result<ImageView, ShardError> {
    let mut vaults = Vec::with_capacity(machine.vaults.len());
    for (id, member) in &machine.vaults {
        let record = machine
            .catalog
            .get(*id)?
            .ok_or_else(|| ShardError::Corrupt {
                what: format!("vault {id} is open but has no catalog record"),
            })?;
        let schemas = member
            .vault
            .schema_texts()?
            .into_iter()
            .map(|(version, text)| (version.version, text))
            .collect();
        vaults.push(VaultView {
            record,
            commit_index: member.vault.commit_index(),
            schemas,
            snapshot: member.vault.snapshot()?,
        });
    }
    let rest = ShardImage {
        applied_index: machine.applied_index,
        vaults: Vec::new(),
        last_epoch: machine.leases.last_epoch(),
        leases: machine
            .leases
            .iter()
            .map(|(job, lease)| (job.to_owned(), *lease))
            .collect(),
        members: machine.members.clone(),
        placements: machine.placements.clone(),
        fence_epochs: machine.fence_epochs.clone(),
    };
    Ok(ImageView { vaults, rest })
}

impl ImageView {
    /// Reads every vault's blocks from its read view: the image at the view's index.
    pub(super) fn build(self) -> Result<ShardImage, ShardError> {
        let mut image = self.rest;
        for vault in self.vaults {
            let id = vault.record.id;
            let mut blocks = Vec::new();
            for height in 1..=vault.snapshot.revision().0 {
                blocks.push(
                    vault
                        .snapshot
                        .block(height)?
                        .ok_or_else(|| ShardError::Corrupt {
                            what: format!("vault {id}: block {height} is missing"),
                        })?,
                );
            }
            image.vaults.push(VaultImage {
                record: vault.record,
                commit_index: vault.commit_index,
                schemas: vault.schemas,
                blocks,
            });
        }
        Ok(image)
    }

    /// [`Self::build`], encoded.
    pub(super) fn encode(self) -> Result<Vec<u8>, ShardError> {
        self.build().map(|image| image.encode())
    }
}

/// Replaces the machine's state with a snapshot's. First the catalog durably forgets every
/// vault, lease, member, placement and fence epoch (applied index 0) and the files and
/// their stale markers go, so a crash part-way leaves an empty machine that the shell
/// restores again; then each vault is rebuilt block by block, synced, and only then named
/// by the catalog, with the snapshot's leases, members, placements, fence epochs and
/// applied index, durably.
pub(super) fn restore(machine: &mut ShardMachine, data: &[u8]) -> Result<(), ShardError> {
    let image = ShardImage::decode(data)?;
    let limits = machine.leases.limits();
    let restored =
        LeaseTable::from_parts(limits, image.last_epoch, image.leases).map_err(|message| {
            ShardError::Corrupt {
                what: format!("snapshot leases: {message}"),
            }
        })?;
    machine
        .files_epoch
        .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    machine.vaults.clear();
    let records = machine.catalog.list_vaults()?;
    let mut txn = machine.catalog.database().begin_write()?;
    for record in &records {
        machine.catalog.delete_vault_in(&mut txn, record.id)?;
    }
    let empty = LeaseTable::new(limits);
    leases::write_all(&mut txn, &empty)?;
    members::write_all(&mut txn, &BTreeMap::new())?;
    placements::write_all(&mut txn, &BTreeMap::new())?;
    fences::write_all(&mut txn, &BTreeMap::new())?;
    synced::forget_all(&mut txn)?;
    finish_catalog(txn, 0, Durability::Immediate)?;
    machine.applied_index = 0;
    machine.leases = empty;
    machine.members.clear();
    machine.placements.clear();
    machine.fence_epochs.clear();
    for id in machine.files.list()? {
        machine.files.remove(id)?;
    }
    // Only now that the catalog durably forgot the vaults: a marker cleared before would
    // let a crash reopen a stale vault's old file as if it were current.
    for record in &records {
        machine.files.clear_stale(record.id)?;
    }
    let mut vaults = BTreeMap::new();
    for vault in &image.vaults {
        let member = rebuild(machine.files.as_mut(), &machine.vault_options, vault)?;
        member.db.sync()?;
        vaults.insert(vault.record.id, member);
    }
    let mut txn = machine.catalog.database().begin_write()?;
    for vault in &image.vaults {
        let record = &vault.record;
        machine
            .catalog
            .create_vault_in(&mut txn, record.id, &record.name, record.created_at_ms)?;
    }
    leases::write_all(&mut txn, &restored)?;
    members::write_all(&mut txn, &image.members)?;
    placements::write_all(&mut txn, &image.placements)?;
    fences::write_all(&mut txn, &image.fence_epochs)?;
    finish_catalog(txn, image.applied_index, Durability::Immediate)?;
    machine.vaults = vaults;
    machine.leases = restored;
    machine.members = image.members;
    machine.placements = image.placements;
    machine.fence_epochs = image.fence_epochs;
    machine.applied_index = image.applied_index;
    Ok(())
}

/// Creates a vault's file (a fresh one: no stale marker stays under its id) and replays its
/// ledger into it.
fn rebuild(
    files: &mut dyn VaultFiles,
    options: &VaultOptions,
    image: &VaultImage,
) -> Result<Member, ShardError> {
    let record = &image.record;
    let db = files.create(record.id)?;
    files.clear_stale(record.id)?;
    NodeCatalog::open(Arc::clone(&db), [0; 32])?.create_vault(
        record.id,
        &record.name,
        record.created_at_ms,
    )?;
    let mut vault = Vault::open(Arc::clone(&db), record.id, options.clone())?;
    vault.set_commit_index(image.commit_index);
    for block in &image.blocks {
        vault.replay_block(block, image.schema_text_for(block))?;
    }
    if vault.schema_versions().len() != image.schemas.len() {
        return Err(ShardError::Corrupt {
            what: format!(
                "vault {}: the snapshot lists {} schema versions, its ledger deploys {}",
                record.id,
                image.schemas.len(),
                vault.schema_versions().len()
            ),
        });
    }
    Ok(Member { vault, db })
}

//! [`ShardMachine`]: the vaults of one shard as a Raft [`StateMachine`].
//!
//! # Applying
//!
//! [`ShardMachine::apply_command`] decodes an entry and applies it. The answer is
//! deterministic: a command that breaks a rule is [`ShardAnswer::Refused`] on every replica
//! and changes nothing; refusal kinds are `malformed_command`, `vault_not_found`,
//! `vault_id_taken`, `vault_name_taken`, `vault_name_invalid`, `schema_invalid`,
//! `schema_too_large`, `schema_would_orphan`, and for writes `no_schema`,
//! `batch_too_large`, `too_many_preconditions`, `unknown_type`, `unknown_relation`,
//! `not_a_direct_relation`, `subject_not_allowed`, `expiry_in_past`, `already_exists`,
//! `too_many_matches`, `filter_invalid`, `precondition_invalid`, `precondition_failed`,
//! `block_too_large`, and for leases (see [`crate::lease`]) `lease_job_invalid`,
//! `lease_duration_invalid`, `lease_held`, `lease_not_held`, `lease_expired`,
//! `leases_full`, `lease_epochs_exhausted`. A failure of this replica's own (storage error, corrupt data) is
//! [`ShardAnswer::Fatal`]: the machine stops (every later entry answers `Fatal` too,
//! [`ShardMachine::fatal`] says why) and **the shell must stop the member**; its durable
//! state is consistent and recovers by the rule below on restart.
//!
//! # Durability and the applied index
//!
//! Vaults commit with `Durability::Deferred`: the Raft log is what makes an applied entry
//! durable, so applying costs no fsync. Each apply also records `applied_index` (the
//! entry's index) in the catalog, in the same catalog transaction as any catalog change of
//! that entry (a lease command's changes to the lease table included: see
//! [`LEASES_TABLE`]), and each vault commit stores the index of the command that made it in the
//! vault's own state table, in the same transaction as its block
//! (`Vault::set_commit_index`). [`ShardMachine::sync`] makes everything durable, vault
//! files **first**, then the catalog, so the catalog's durable `applied_index` never names
//! an entry whose vault changes could still be lost. The shell calls `sync` whenever it
//! wants to release log entries (before compacting the log), and `DeleteVault` syncs by
//! itself before it removes a file.
//!
//! **Recovery rule.** On restart, [`ShardMachine::applied_index`] is the catalog's durable
//! value `R`; the shell hands it to the Raft core as its applied index and the log
//! re-delivers every entry after `R`. The catalog is exactly at `R` (its changes and the
//! index commit together). A vault may be *ahead* of `R` (it was synced, then the crash hit
//! before the catalog's sync): a vault command whose index is at or below the vault's
//! stored commit index is skipped ([`ShardAnswer::AlreadyApplied`]); every other command
//! applies as the first time, since a vault's durable state is the state after its last
//! committing command and the commands after that one changed nothing. A vault file the
//! catalog does not name (a creation the catalog lost) is removed on open and re-created
//! by the re-applied `CreateVault`. No crash window remains, provided the shell never
//! compacts log entries above the machine's durable applied index: sync first. If the log
//! holds a snapshot above `applied_index` (a restore interrupted by a crash, or a compaction
//! without a sync), the shell restores from it before starting.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use inferadb_protocols::VaultId;
use inferadb_raft::group::StateMachine;
use inferadb_storage::{Database, Durability, WriteTransaction};
use inferadb_vault::{
    CatalogError, NodeCatalog, SchemaError, Vault, VaultOptions, VaultRecord, WriteBatch,
    WriteError,
};

mod leases;
mod restore;

pub use leases::{LAST_EPOCH_KEY, LEASES_TABLE};

use crate::answer::ShardAnswer;
use crate::command::ShardCommand;
use crate::error::ShardError;
use crate::files::VaultFiles;
use crate::lease::{LeaseLimits, LeaseTable};

/// The catalog table of the shard's own keys.
pub const SHARD_TABLE: &str = "shard";
/// The key of the applied index (u64 big-endian) in [`SHARD_TABLE`].
pub const APPLIED_INDEX_KEY: &[u8] = b"applied_index";

/// How a shard machine runs.
#[derive(Clone, Debug, Default)]
pub struct ShardOptions {
    /// Options of every vault; `commit_durability` is always replaced by `Deferred`.
    pub vault: VaultOptions,
    /// The revision-token secret stored in the catalog when it has none (node-level
    /// configuration, not replicated state: it is not part of snapshots).
    pub token_secret: [u8; 32],
    /// The lease table's limits; like the vault options, every replica of a shard must use
    /// the same, since they decide refusals.
    pub lease: LeaseLimits,
}

/// One open vault and its database.
struct Member {
    vault: Vault,
    db: Arc<Database>,
}

/// The replicated state machine of a shard: its catalog and its vaults. Fields drop in
/// order, so the vault files close (and flush) before the catalog does.
pub struct ShardMachine {
    vaults: BTreeMap<VaultId, Member>,
    catalog: NodeCatalog,
    files: Box<dyn VaultFiles>,
    vault_options: VaultOptions,
    leases: LeaseTable,
    applied_index: u64,
    fatal: OnceLock<String>,
}

impl ShardMachine {
    /// Opens the machine over its catalog database and its vault files: reads the applied
    /// index and the lease table, removes vault files the catalog does not name, opens
    /// every vault.
    pub fn open(
        catalog_db: Arc<Database>,
        mut files: Box<dyn VaultFiles>,
        options: ShardOptions,
    ) -> Result<Self, ShardError> {
        let catalog = NodeCatalog::open(catalog_db, options.token_secret)?;
        let applied_index = read_applied_index(catalog.database())?;
        let leases = leases::load(catalog.database(), options.lease)?;
        let records = catalog.list_vaults()?;
        for id in files.list()? {
            if !records.iter().any(|record| record.id == id) {
                files.remove(id)?;
            }
        }
        let vault_options = VaultOptions {
            commit_durability: Durability::Deferred,
            ..options.vault
        };
        let mut vaults = BTreeMap::new();
        for record in records {
            let id = record.id;
            let db = Arc::new(files.open(id)?.ok_or(ShardError::VaultFileMissing { id })?);
            let vault = Vault::open(Arc::clone(&db), id, vault_options.clone())?;
            vaults.insert(id, Member { vault, db });
        }
        Ok(Self {
            vaults,
            catalog,
            files,
            vault_options,
            leases,
            applied_index,
            fatal: OnceLock::new(),
        })
    }

    /// The index of the last entry applied (durable once [`Self::sync`] returned).
    pub fn applied_index(&self) -> u64 {
        self.applied_index
    }

    /// Why the machine stopped, if it did.
    pub fn fatal(&self) -> Option<&str> {
        self.fatal.get().map(String::as_str)
    }

    /// The catalog.
    pub fn catalog(&self) -> &NodeCatalog {
        &self.catalog
    }

    /// Every vault's record, by id.
    pub fn records(&self) -> Result<Vec<VaultRecord>, ShardError> {
        Ok(self.catalog.list_vaults()?)
    }

    /// One vault.
    pub fn vault(&self, id: VaultId) -> Option<&Vault> {
        self.vaults.get(&id).map(|member| &member.vault)
    }

    /// The ids of every vault, ascending.
    pub fn vault_ids(&self) -> Vec<VaultId> {
        self.vaults.keys().copied().collect()
    }

    /// Makes every applied entry durable: each vault file, then the catalog.
    pub fn sync(&self) -> Result<(), ShardError> {
        self.sync_vaults()?;
        self.catalog.database().sync()?;
        Ok(())
    }

    fn sync_vaults(&self) -> Result<(), ShardError> {
        for member in self.vaults.values() {
            member.db.sync()?;
        }
        Ok(())
    }

    /// Applies the entry at `index` (see the module documentation).
    pub fn apply_command(&mut self, index: u64, data: &[u8]) -> ShardAnswer {
        if let Some(message) = self.fatal.get() {
            return ShardAnswer::Fatal {
                message: message.clone(),
            };
        }
        if index <= self.applied_index {
            return ShardAnswer::AlreadyApplied;
        }
        let result = match ShardCommand::decode(data) {
            Ok(command) => self.execute(index, command),
            Err(error) => self
                .record_applied(index)
                .map(|()| ShardAnswer::refused("malformed_command", error.to_string())),
        };
        match result {
            Ok(answer) => {
                self.applied_index = index;
                answer
            }
            Err(error) => self.stop(error),
        }
    }

    /// Records the first fatal failure; returns its answer.
    fn stop(&self, error: ShardError) -> ShardAnswer {
        let message = self.fatal.get_or_init(|| error.to_string()).clone();
        ShardAnswer::Fatal { message }
    }

    fn execute(&mut self, index: u64, command: ShardCommand) -> Result<ShardAnswer, ShardError> {
        match command {
            ShardCommand::CreateVault { id, name, now_ms } => {
                self.create_vault(index, id, &name, now_ms)
            }
            ShardCommand::DeleteVault { id } => self.delete_vault(index, id),
            ShardCommand::DeploySchema {
                vault,
                text,
                now_ms,
            } => {
                let answer = self.with_vault(index, vault, |vault| {
                    match vault.deploy_schema(&text, now_ms) {
                        Ok(deployed) => Ok(ShardAnswer::SchemaDeployed {
                            version: deployed.version,
                            revision: deployed.revision,
                        }),
                        Err(error) => schema_refusal(error),
                    }
                })?;
                self.record_applied(index)?;
                Ok(answer)
            }
            ShardCommand::Write {
                vault,
                batch,
                now_ms,
            } => {
                let answer = self.with_vault(index, vault, |vault| write(vault, batch, now_ms))?;
                self.record_applied(index)?;
                Ok(answer)
            }
            ShardCommand::AcquireLease {
                job,
                holder,
                duration_ms,
                now_ms,
            } => self.apply_lease(index, |leases| {
                leases
                    .acquire(&job, holder, duration_ms, now_ms)
                    .map(leases::granted)
            }),
            ShardCommand::RenewLease {
                job,
                holder,
                epoch,
                duration_ms,
                now_ms,
            } => self.apply_lease(index, |leases| {
                leases
                    .renew(&job, holder, epoch, duration_ms, now_ms)
                    .map(leases::granted)
            }),
            ShardCommand::ReleaseLease { job, holder, epoch } => {
                self.apply_lease(index, |leases| {
                    leases
                        .release(&job, holder, epoch)
                        .map(|()| ShardAnswer::LeaseReleased)
                })
            }
        }
    }

    /// Runs a vault command unless the vault is missing or already includes it.
    fn with_vault(
        &mut self,
        index: u64,
        id: VaultId,
        apply: impl FnOnce(&mut Vault) -> Result<ShardAnswer, ShardError>,
    ) -> Result<ShardAnswer, ShardError> {
        let Some(member) = self.vaults.get_mut(&id) else {
            return Ok(not_found(id));
        };
        if member.vault.commit_index() >= index {
            return Ok(ShardAnswer::AlreadyApplied);
        }
        member.vault.set_commit_index(index);
        apply(&mut member.vault)
    }

    fn create_vault(
        &mut self,
        index: u64,
        id: VaultId,
        name: &str,
        now_ms: u64,
    ) -> Result<ShardAnswer, ShardError> {
        let mut txn = self.catalog.database().begin_write()?;
        let record = match self.catalog.create_vault_in(&mut txn, id, name, now_ms) {
            Ok(record) => record,
            Err(error) => {
                drop(txn);
                let answer = catalog_refusal(error)?;
                self.record_applied(index)?;
                return Ok(answer);
            }
        };
        // The file first, durably (its own record commits `Immediate`), then the catalog.
        let db = Arc::new(self.files.create(id)?);
        NodeCatalog::open(Arc::clone(&db), [0; 32])?.create_vault(id, name, now_ms)?;
        let vault = Vault::open(Arc::clone(&db), id, self.vault_options.clone())?;
        finish_catalog(txn, index, Durability::Deferred)?;
        self.vaults.insert(id, Member { vault, db });
        Ok(ShardAnswer::VaultCreated {
            id: record.id,
            name: record.name,
            created_at_ms: record.created_at_ms,
        })
    }

    fn delete_vault(&mut self, index: u64, id: VaultId) -> Result<ShardAnswer, ShardError> {
        if !self.vaults.contains_key(&id) {
            self.record_applied(index)?;
            return Ok(not_found(id));
        }
        // The file goes only once the catalog durably forgot it; the catalog becomes
        // durable only after every vault did.
        self.sync_vaults()?;
        let mut txn = self.catalog.database().begin_write()?;
        self.catalog.delete_vault_in(&mut txn, id)?;
        finish_catalog(txn, index, Durability::Immediate)?;
        self.vaults.remove(&id);
        self.files.remove(id)?;
        Ok(ShardAnswer::VaultDeleted { id })
    }

    /// Records `index` as applied, alone.
    fn record_applied(&self, index: u64) -> Result<(), ShardError> {
        let txn = self.catalog.database().begin_write()?;
        finish_catalog(txn, index, Durability::Deferred)
    }

    /// The logical snapshot (see [`crate::snapshot`]).
    pub fn try_snapshot(&self) -> Result<Vec<u8>, ShardError> {
        if let Some(message) = self.fatal.get() {
            return Err(ShardError::Stopped {
                message: message.clone(),
            });
        }
        restore::image(self).map(|image| image.encode())
    }

    /// Replaces every vault and the catalog with a snapshot's, rebuilding each vault block
    /// by block (same blocks, hashes and state roots), then syncs everything.
    pub fn try_restore(&mut self, data: &[u8]) -> Result<(), ShardError> {
        if let Some(message) = self.fatal.get() {
            return Err(ShardError::Stopped {
                message: message.clone(),
            });
        }
        let result = restore::restore(self, data);
        if let Err(error) = &result {
            let _ = self
                .fatal
                .set(format!("restoring a snapshot failed: {error}"));
        }
        result
    }
}

impl StateMachine for ShardMachine {
    /// See [`ShardMachine::apply_command`]; the answer is [`ShardAnswer::encode`]d.
    fn apply(&mut self, index: u64, data: &[u8]) -> Vec<u8> {
        self.apply_command(index, data).encode()
    }

    /// See [`ShardMachine::try_snapshot`]. On a failure the machine stops (see
    /// [`ShardMachine::fatal`]) and the bytes are empty, which no restore accepts.
    fn snapshot(&self) -> Vec<u8> {
        self.try_snapshot().unwrap_or_else(|error| {
            let _ = self.fatal.set(format!("taking a snapshot failed: {error}"));
            Vec::new()
        })
    }

    /// See [`ShardMachine::try_restore`]. On a failure the machine stops (see
    /// [`ShardMachine::fatal`]).
    fn restore(&mut self, data: &[u8]) {
        let _ = self.try_restore(data);
    }

    /// See [`ShardMachine::fatal`].
    fn failure(&self) -> Option<String> {
        self.fatal().map(str::to_owned)
    }
}

/// Writes the applied index into `txn` and commits it.
pub(crate) fn finish_catalog(
    mut txn: WriteTransaction,
    index: u64,
    durability: Durability,
) -> Result<(), ShardError> {
    txn.open_table(SHARD_TABLE)?
        .insert(APPLIED_INDEX_KEY, &index.to_be_bytes())?;
    txn.set_durability(durability);
    txn.commit()?;
    Ok(())
}

fn read_applied_index(db: &Database) -> Result<u64, ShardError> {
    let read = db.begin_read();
    let table = match read.open_table(SHARD_TABLE) {
        Ok(table) => table,
        Err(inferadb_storage::StorageError::TableNotFound(_)) => return Ok(0),
        Err(error) => return Err(error.into()),
    };
    match table.get(APPLIED_INDEX_KEY)? {
        None => Ok(0),
        Some(bytes) => <[u8; 8]>::try_from(&bytes[..])
            .map(u64::from_be_bytes)
            .map_err(|_| ShardError::Corrupt {
                what: "applied_index".into(),
            }),
    }
}

fn not_found(id: VaultId) -> ShardAnswer {
    ShardAnswer::refused("vault_not_found", format!("vault {id} does not exist"))
}

fn write(vault: &mut Vault, batch: WriteBatch, now_ms: u64) -> Result<ShardAnswer, ShardError> {
    match vault.write(batch, now_ms) {
        Ok(outcome) => Ok(ShardAnswer::Written {
            revision: outcome.revision,
            inserted: outcome.inserted as u64,
            removed: outcome.removed as u64,
        }),
        Err(error) => write_refusal(error),
    }
}

/// A write error as a refusal, or as a failure of this replica's.
fn write_refusal(error: WriteError) -> Result<ShardAnswer, ShardError> {
    let kind = match &error {
        WriteError::Storage(_) | WriteError::Corrupt { .. } | WriteError::GroupFailed { .. } => {
            return Err(ShardError::Corrupt {
                what: format!("a write failed: {error}"),
            })
        }
        WriteError::NoSchema => "no_schema",
        WriteError::BatchTooLarge { .. } => "batch_too_large",
        WriteError::TooManyPreconditions { .. } => "too_many_preconditions",
        WriteError::UnknownType { .. } => "unknown_type",
        WriteError::UnknownRelation { .. } => "unknown_relation",
        WriteError::NotADirectRelation { .. } => "not_a_direct_relation",
        WriteError::SubjectNotAllowed { .. } => "subject_not_allowed",
        WriteError::ExpiryInPast { .. } => "expiry_in_past",
        WriteError::AlreadyExists { .. } => "already_exists",
        WriteError::TooManyMatches { .. } => "too_many_matches",
        WriteError::FilterInvalid { .. } => "filter_invalid",
        WriteError::PreconditionInvalid { .. } => "precondition_invalid",
        WriteError::PreconditionFailed { .. } => "precondition_failed",
        WriteError::BlockTooLarge { .. } => "block_too_large",
    };
    Ok(ShardAnswer::refused(kind, error.to_string()))
}

fn schema_refusal(error: SchemaError) -> Result<ShardAnswer, ShardError> {
    let kind = match &error {
        SchemaError::Storage(_) | SchemaError::Corrupt { .. } => {
            return Err(ShardError::Corrupt {
                what: format!("a schema deploy failed: {error}"),
            })
        }
        SchemaError::Invalid(_) => "schema_invalid",
        SchemaError::TooLarge { .. } => "schema_too_large",
        SchemaError::WouldOrphan { .. } => "schema_would_orphan",
    };
    Ok(ShardAnswer::refused(kind, error.to_string()))
}

fn catalog_refusal(error: CatalogError) -> Result<ShardAnswer, ShardError> {
    let kind = match &error {
        CatalogError::Storage(_) | CatalogError::Corrupt { .. } => return Err(error.into()),
        CatalogError::NameInvalid { .. } => "vault_name_invalid",
        CatalogError::NameTaken { .. } => "vault_name_taken",
        CatalogError::IdTaken { .. } => "vault_id_taken",
        CatalogError::VaultNotFound { .. } => "vault_not_found",
    };
    Ok(ShardAnswer::refused(kind, error.to_string()))
}

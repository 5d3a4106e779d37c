//! [`ShardMachine`]: the vaults of one shard as a Raft [`StateMachine`].
//!
//! # Applying
//!
//! [`ShardMachine::apply_command`] decodes an entry and applies it. The answer is
//! deterministic: a command that breaks a rule is [`ShardAnswer::Refused`] on every replica
//! and changes nothing; refusal kinds are `malformed_command`, `vault_not_found`,
//! `vault_id_taken`, `vault_unavailable` (this replica only: see
//! [`ShardMachine::quarantined`]), `vault_name_taken`, `vault_name_invalid` (these three
//! for a `PlaceVault` too, and `vault_not_found` for an `UnplaceVault`), `placement_invalid`
//! (a `PlaceVault` with no data shard; see [`crate::placements`]), `schema_invalid`,
//! `schema_too_large`, `schema_would_orphan`, for a `PurgeExpired` that its fence does not
//! admit `lease_fenced` (see [Fencing](#fencing); then it refuses as a write does), for a
//! `WriteGroup` as a whole
//! `group_too_large` (more batches than `VaultLimits::group_commit_batches_max`), and for
//! writes (a `Write`, or one batch of a `WriteGroup`: [`GroupItem::Refused`]) `no_schema`,
//! `batch_too_large`, `too_many_preconditions`, `unknown_type`, `unknown_relation`,
//! `not_a_direct_relation`, `subject_not_allowed`, `expiry_in_past`, `already_exists`,
//! `too_many_matches`, `filter_invalid`, `precondition_invalid`, `precondition_failed`,
//! `block_too_large`, and for leases (see [`crate::lease`]) `lease_job_invalid`,
//! `lease_duration_invalid`, `lease_held`, `lease_not_held`, `lease_expired`,
//! `leases_full`, `lease_epochs_exhausted`, and for the member registry (see
//! [`crate::members`]) `member_invalid`, `member_last`. Vault, schema, write and catalog
//! refusals carry the vault's structured error in their `detail` (see [`crate::answer`]);
//! `lease_fenced` and `placement_invalid` carry none.
//!
//! # Fencing
//!
//! A `PurgeExpired` is the side effect of a singleton job's lease holder, fenced by the
//! lease's epoch (see [`crate::lease`]):
//!
//! - Where this machine's lease table has a record for the job (shard 0, which keeps the
//!   cluster's leases), it applies only if [`LeaseTable::fence`] passes at the command's
//!   `now_ms`: the holder holds the job with exactly that epoch, unexpired.
//! - Where it has none (a data shard, whose vaults the job purges but which cannot read
//!   shard 0's table deterministically), the epoch is a **fencing token**: the machine keeps
//!   the highest epoch it has accepted per job ([`ShardMachine::fence_epochs`], replicated
//!   state like the lease table) and refuses a lower one (and epoch 0, never granted, and an
//!   invalid job name). Since the lease table issues strictly increasing epochs, once a
//!   newer holder's purge reached the shard no older holder's applies there again. A holder
//!   whose lease lapsed but whom no newer holder has overtaken yet still applies: the token
//!   orders holders, it does not read clocks.
//! - Either way an admitted epoch above the recorded one is recorded (in shard 0 too, so a
//!   purge arriving after the job's lease was released is still held to the highest epoch
//!   seen), in the catalog transaction of the command's applied index ([`FENCE_EPOCHS_TABLE`]).
//!   The table holds at most [`LeaseLimits::leases_max`] jobs and never forgets one (that
//!   would let an older holder back in): when it is full, a purge of a new job is refused
//!   by the token rule, and admitted by a lease in shard 0 without being recorded.
//!
//! The fence is decided from the catalog's state alone, before the vault is looked at, and
//! an admitted epoch is recorded whatever the vault answers, so every replica (a
//! quarantined one, or one re-applying entries its vault already holds, too) admits the
//! same purges and records the same epochs.
//!
//! # Quarantine
//!
//! A vault whose file fails to open at [`ShardMachine::open`] is quarantined on this
//! replica ([`ShardMachine::quarantined`]): commands for it are refused here as
//! `vault_unavailable` while the applied index advances past them, so from then on this
//! replica's copy lacks committed writes. A vault whose file opens but comes back behind
//! its synced watermark (module `synced`) is quarantined the same way. Quarantine is
//! therefore **sticky**: the first
//! time, the machine durably marks the vault stale through [`VaultFiles::mark_stale`],
//! outside the replicated catalog, before it applies anything; every later open
//! quarantines a marked vault even if its file opens again (serving it would silently
//! diverge from the other replicas). Only a snapshot restore (which rebuilds every vault)
//! or deleting the vault clears the marker (and, since a marker can outlive a deletion
//! interrupted by a crash, creating a vault clears a leftover one under its id).
//!
//! # Failures
//!
//! A failure of this replica's own (storage error, corrupt data) is
//! [`ShardAnswer::Fatal`]: the machine stops (every later entry answers `Fatal` too,
//! [`ShardMachine::fatal`] says why) and **the shell must stop the member**; its durable
//! state is consistent and recovers by the rule below on restart. In a `WriteGroup`, one
//! batch's failure of that kind makes the whole command `Fatal`.
//!
//! # Durability and the applied index
//!
//! Vaults commit with `Durability::Deferred`: the Raft log is what makes an applied entry
//! durable, so applying costs no fsync. Each apply also records `applied_index` (the
//! entry's index) in the catalog, in the same catalog transaction as any catalog change of
//! that entry (a lease command's changes to the lease table included: see
//! [`LEASES_TABLE`]; a membership command's changes to the member registry: see
//! [`MEMBERS_TABLE`]; a placement command's changes to the placements: see
//! [`PLACEMENTS_TABLE`]; and an admitted purge's new fence epoch: see
//! [`FENCE_EPOCHS_TABLE`]), and each vault commit stores the index of the command that made it
//! in the vault's own state table, in the same transaction as its block
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

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use inferadb_protocols::VaultId;
use inferadb_raft::group::{MembershipTarget, PersistJob, SnapshotBuilder, StateMachine};
use inferadb_storage::{Database, Durability, WriteTransaction};
use inferadb_vault::{
    CatalogError, NodeCatalog, Vault, VaultOptions, VaultRecord, WriteBatch, WriteError,
    WriteOutcome,
};

mod fences;
mod leases;
mod members;
mod merge;
mod placements;
mod restore;
mod synced;
mod tables;

pub use fences::FENCE_EPOCHS_TABLE;
pub use leases::{LAST_EPOCH_KEY, LEASES_TABLE};
pub use members::MEMBERS_TABLE;
pub use placements::PLACEMENTS_TABLE;
pub use synced::SYNCED_TABLE;

use crate::answer::{GroupItem, ShardAnswer};
use crate::command::ShardCommand;
use crate::error::ShardError;
use crate::files::VaultFiles;
use crate::lease::{Fenced, LeaseLimits, LeaseTable};
use crate::members::{self as registry, MemberRecord};
use crate::observer::{NoObserver, ShardObserver, VaultChange};
use crate::placements::Placement;
use crate::refusal::{self, Refusal};

/// The catalog table of the shard's own keys.
pub const SHARD_TABLE: &str = "shard";
/// The key of the applied index (u64 big-endian) in [`SHARD_TABLE`].
pub const APPLIED_INDEX_KEY: &[u8] = b"applied_index";

/// The default [`ShardOptions::merge_batches_max`].
pub const MERGE_BATCHES_MAX_DEFAULT: usize = 256;

/// How a shard machine runs.
#[derive(Clone, Debug)]
pub struct ShardOptions {
    /// Options of every vault; `commit_durability` is always replaced by `Deferred`.
    pub vault: VaultOptions,
    /// The revision-token secret stored in the catalog when it has none (node-level
    /// configuration, not replicated state: it is not part of snapshots).
    pub token_secret: [u8; 32],
    /// The lease table's limits; like the vault options, every replica of a shard must use
    /// the same, since they decide refusals.
    pub lease: LeaseLimits,
    /// The most write batches [`ShardMachine::apply_entries`] applies in one storage
    /// transaction when it merges consecutive writes to one vault (module `merge`). Local
    /// tuning, not replicated state: merging never changes an outcome, so replicas may
    /// differ here. 0 or 1 disables merging.
    pub merge_batches_max: usize,
}

impl Default for ShardOptions {
    fn default() -> Self {
        ShardOptions {
            vault: VaultOptions::default(),
            token_secret: [0; 32],
            lease: LeaseLimits::default(),
            merge_batches_max: MERGE_BATCHES_MAX_DEFAULT,
        }
    }
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
    /// See [`ShardOptions::merge_batches_max`].
    merge_batches_max: usize,
    leases: LeaseTable,
    /// The cluster's member registry (see [`crate::members`]).
    members: BTreeMap<u64, MemberRecord>,
    /// Where each vault lives (see [`crate::placements`]).
    placements: BTreeMap<VaultId, Placement>,
    /// The highest epoch accepted per job (see [`fences`]).
    fence_epochs: BTreeMap<String, u64>,
    applied_index: u64,
    fatal: OnceLock<String>,
    /// Bumped whenever vault files are created, deleted or rebuilt, before the catalog
    /// changes their watermarks: a background persist begun earlier then records none.
    files_epoch: Arc<AtomicU64>,
    /// Who hears about changed vaults ([`Self::publish`]).
    observer: Box<dyn ShardObserver>,
    /// Vaults changed since the last [`Self::publish`].
    touched: BTreeSet<VaultId>,
    /// Whether a vault was created or deleted since the last [`Self::publish`].
    membership_changed: bool,
    /// Whether the member registry changed since the last [`Self::publish`].
    members_changed: bool,
    /// Whether the placements changed since the last [`Self::publish`].
    placements_changed: bool,
    /// Vaults whose file could not be opened on this replica (now or on an earlier start),
    /// with why: out of service here until deleted or repaired by a snapshot (see
    /// [`Self::quarantined`]).
    quarantined: Quarantined,
}

/// Vaults out of service on this replica, with why.
type Quarantined = BTreeMap<VaultId, String>;

/// Why a vault marked stale on an earlier start is quarantined (the first reason is not
/// kept).
const STALE_REASON: &str = "an earlier start of this replica quarantined it, so this \
    replica may lack committed writes to it; only a snapshot restore or deleting the vault \
    brings it back";

impl ShardMachine {
    /// Opens the machine over its catalog database and its vault files: reads the applied
    /// index, the lease table, the member registry, the placements and the fence epochs,
    /// removes vault files (and stale markers) the catalog does not name, opens every vault
    /// but those it quarantines (see [Quarantine](crate::machine#quarantine)).
    pub fn open(
        catalog_db: Arc<Database>,
        mut files: Box<dyn VaultFiles>,
        options: ShardOptions,
    ) -> Result<Self, ShardError> {
        let catalog = NodeCatalog::open(catalog_db, options.token_secret)?;
        let applied_index = read_applied_index(catalog.database())?;
        let leases = leases::load(catalog.database(), options.lease)?;
        let members = members::load(catalog.database())?;
        let placements = placements::load(catalog.database())?;
        let fence_epochs = fences::load(catalog.database())?;
        let records = catalog.list_vaults()?;
        for id in files.list()? {
            if !records.iter().any(|record| record.id == id) {
                files.remove(id)?;
                files.clear_stale(id)?;
            }
        }
        let vault_options = VaultOptions {
            commit_durability: Durability::Deferred,
            ..options.vault
        };
        let (mut vaults, mut quarantined) = open_vaults(files.as_mut(), &records, &vault_options)?;
        let watermarks = synced::load(catalog.database())?;
        synced::quarantine_rolled_back(files.as_mut(), &mut vaults, &mut quarantined, &watermarks)?;
        let touched = vaults.keys().chain(quarantined.keys()).copied().collect();
        Ok(Self {
            vaults,
            catalog,
            files,
            vault_options,
            merge_batches_max: options.merge_batches_max,
            leases,
            // A registry read from disk is news to whoever observes the machine next.
            members_changed: !members.is_empty(),
            members,
            placements_changed: !placements.is_empty(),
            placements,
            fence_epochs,
            applied_index,
            fatal: OnceLock::new(),
            files_epoch: Arc::new(AtomicU64::new(0)),
            observer: Box::new(NoObserver),
            touched,
            membership_changed: true,
            quarantined,
        })
    }

    /// Vaults out of service on this replica because their file could not be opened, now or
    /// on an earlier start (a stale marker: see [Quarantine](crate::machine#quarantine)),
    /// with why. Commands for them are refused here as `vault_unavailable` (the other
    /// replicas apply them: this replica's copy is stale from then on), no snapshot is
    /// taken while one is quarantined, and only deleting the vault or restoring a snapshot
    /// ends it (a restart does not).
    pub fn quarantined(&self) -> &BTreeMap<VaultId, String> {
        &self.quarantined
    }

    /// Sets who hears about changed vaults, members and placements. Every open vault (and a
    /// non-empty member registry or placement table) counts as changed until the next
    /// [`Self::publish`], so a new observer learns the whole shard.
    pub fn set_observer(&mut self, observer: Box<dyn ShardObserver>) {
        self.observer = observer;
        self.touched.extend(self.vaults.keys().copied());
        self.membership_changed = true;
        self.members_changed |= !self.members.is_empty();
        self.placements_changed |= !self.placements.is_empty();
    }

    /// Tells the observer about every vault changed since the last call, then about the
    /// member registry and the placements if they changed (see [`crate::observer`]).
    /// Called after each drain of the Raft group, and by the shell after opening.
    pub fn publish(&mut self) {
        self.publish_vaults();
        if std::mem::take(&mut self.members_changed) {
            self.observer.members_changed(&self.members);
        }
        if std::mem::take(&mut self.placements_changed) {
            self.observer.placements_changed(&self.placements);
        }
    }

    fn publish_vaults(&mut self) {
        if self.touched.is_empty() && !self.membership_changed {
            return;
        }
        let touched = std::mem::take(&mut self.touched);
        let mut changes = Vec::with_capacity(touched.len());
        for id in touched {
            if let Some(reason) = self.quarantined.get(&id) {
                changes.push(VaultChange::Unavailable {
                    id,
                    reason: reason.clone(),
                });
                continue;
            }
            match self.vaults.get(&id) {
                Some(member) => match self.catalog.get(id) {
                    Ok(Some(record)) => changes.push(VaultChange::Current {
                        record,
                        vault: &member.vault,
                        database: &member.db,
                    }),
                    // The catalog names every open vault; reading it back failed: the
                    // observer keeps the previous state until the next change.
                    _ => continue,
                },
                None => changes.push(VaultChange::Removed { id }),
            }
        }
        let membership = std::mem::take(&mut self.membership_changed);
        self.observer.changed(changes, membership);
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

    /// Makes every applied entry durable: each vault file, then the catalog (with each
    /// vault's synced watermark, module `synced`).
    pub fn sync(&self) -> Result<(), ShardError> {
        self.sync_vaults()?;
        self.record_synced()?;
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
            } => self.apply_vault(index, vault, |vault| deploy(vault, &text, now_ms)),
            ShardCommand::Write {
                vault,
                batch,
                now_ms,
            } => self.apply_vault(index, vault, |vault| write(vault, batch, now_ms)),
            ShardCommand::WriteGroup {
                vault,
                batches,
                now_ms,
            } => self.apply_vault(index, vault, |vault| write_group(vault, batches, now_ms)),
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
            ShardCommand::AddMember { id, address } => {
                self.apply_member(index, id, |members| registry::add(members, id, &address))
            }
            ShardCommand::RemoveMember { id } => {
                self.apply_member(index, id, |members| registry::remove(members, id))
            }
            ShardCommand::PlaceVault {
                id,
                name,
                data_shards,
            } => self.place_vault(index, id, &name, data_shards),
            ShardCommand::UnplaceVault { id } => self.unplace_vault(index, id),
            ShardCommand::PurgeExpired {
                vault,
                now_ms,
                limit,
                job,
                holder,
                epoch,
            } => self.purge_expired(index, vault, (now_ms, limit), (&job, holder, epoch)),
        }
    }

    /// Applies `PurgeExpired`: refused as `lease_fenced` (changing nothing but the applied
    /// index) unless its fence admits it (see [`fences`]), then a vault command like a
    /// write, whose catalog transaction records the job's new highest epoch whatever the
    /// vault's answer (not found, unavailable here, already applied): the fence is the
    /// shard's, not the vault's.
    fn purge_expired(
        &mut self,
        index: u64,
        vault: VaultId,
        (now_ms, limit): (u64, u32),
        (job, holder, epoch): (&str, u64, u64),
    ) -> Result<ShardAnswer, ShardError> {
        let raised = match self.admit(job, holder, epoch, now_ms) {
            Ok(raised) => raised,
            Err(message) => {
                self.record_applied(index)?;
                return Ok(ShardAnswer::refused(Fenced::KIND, message));
            }
        };
        let answer = self.with_vault(index, vault, |vault| purge(vault, now_ms, limit))?;
        self.record_fence(index, job, raised)?;
        Ok(answer)
    }

    /// Runs a vault command (see [`Self::with_vault`]) and records it as applied.
    fn apply_vault(
        &mut self,
        index: u64,
        id: VaultId,
        apply: impl FnOnce(&mut Vault) -> Result<ShardAnswer, ShardError>,
    ) -> Result<ShardAnswer, ShardError> {
        let answer = self.with_vault(index, id, apply)?;
        self.record_applied(index)?;
        Ok(answer)
    }

    /// Runs a vault command unless the vault is missing or already includes it.
    fn with_vault(
        &mut self,
        index: u64,
        id: VaultId,
        apply: impl FnOnce(&mut Vault) -> Result<ShardAnswer, ShardError>,
    ) -> Result<ShardAnswer, ShardError> {
        if let Some(reason) = self.quarantined.get(&id) {
            return Ok(ShardAnswer::refused(
                "vault_unavailable",
                format!("vault {id} is out of service on this replica: {reason}"),
            ));
        }
        let Some(member) = self.vaults.get_mut(&id) else {
            return Ok(not_found(id));
        };
        if member.vault.commit_index() >= index {
            return Ok(ShardAnswer::AlreadyApplied);
        }
        member.vault.set_commit_index(index);
        self.touched.insert(id);
        apply(&mut member.vault)
    }

    fn create_vault(
        &mut self,
        index: u64,
        id: VaultId,
        name: &str,
        now_ms: u64,
    ) -> Result<ShardAnswer, ShardError> {
        self.files_epoch.fetch_add(1, Ordering::SeqCst);
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
        // The catalog names no vault `id`, so a stale marker under it is a leftover of a
        // deletion a crash interrupted: it must not quarantine the new vault.
        let db = self.files.create(id)?;
        self.files.clear_stale(id)?;
        NodeCatalog::open(Arc::clone(&db), [0; 32])?.create_vault(id, name, now_ms)?;
        let vault = Vault::open(Arc::clone(&db), id, self.vault_options.clone())?;
        synced::forget(&mut txn, id)?;
        finish_catalog(txn, index, Durability::Deferred)?;
        self.vaults.insert(id, Member { vault, db });
        self.touched.insert(id);
        self.membership_changed = true;
        Ok(ShardAnswer::VaultCreated {
            id: record.id,
            name: record.name,
            created_at_ms: record.created_at_ms,
        })
    }

    fn delete_vault(&mut self, index: u64, id: VaultId) -> Result<ShardAnswer, ShardError> {
        self.files_epoch.fetch_add(1, Ordering::SeqCst);
        if !self.vaults.contains_key(&id) && !self.quarantined.contains_key(&id) {
            self.record_applied(index)?;
            return Ok(not_found(id));
        }
        // The file goes only once the catalog durably forgot it; the catalog becomes
        // durable only after every vault did.
        self.sync_vaults()?;
        let mut txn = self.catalog.database().begin_write()?;
        self.catalog.delete_vault_in(&mut txn, id)?;
        synced::forget(&mut txn, id)?;
        finish_catalog(txn, index, Durability::Immediate)?;
        self.vaults.remove(&id);
        self.quarantined.remove(&id);
        self.touched.insert(id);
        self.membership_changed = true;
        self.files.remove(id)?;
        self.files.clear_stale(id)?;
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

    /// Replaces every vault, the catalog, the leases, the member registry, the placements
    /// and the fence epochs with a snapshot's, rebuilding each vault block by block (same
    /// blocks, hashes and state roots), then syncs everything. It ends every quarantine and
    /// clears the vaults' stale markers.
    pub fn try_restore(&mut self, data: &[u8]) -> Result<(), ShardError> {
        if let Some(message) = self.fatal.get() {
            return Err(ShardError::Stopped {
                message: message.clone(),
            });
        }
        // Every vault before and after the restore changed; the restore rebuilds the
        // quarantined ones too.
        self.touched
            .extend(self.vaults.keys().chain(self.quarantined.keys()).copied());
        let result = restore::restore(self, data);
        if result.is_ok() {
            self.quarantined.clear();
        }
        self.touched.extend(self.vaults.keys().copied());
        self.membership_changed = true;
        self.members_changed = true;
        self.placements_changed = true;
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

    /// See [`ShardMachine::apply_entries`]; the answers are [`ShardAnswer::encode`]d.
    fn apply_batch(&mut self, entries: &[(u64, &[u8])]) -> Vec<Vec<u8>> {
        self.apply_entries(entries)
            .iter()
            .map(ShardAnswer::encode)
            .collect()
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

    /// A replica with a quarantined vault answers its writes `vault_unavailable` while the
    /// other replicas apply them: as leader it would leave every write to that vault with an
    /// unknown outcome, so it hands leadership over.
    fn unfit_to_lead(&self) -> Option<String> {
        self.snapshot_blocked()
    }

    /// A snapshot would leave out the quarantined vaults' data.
    fn snapshot_blocked(&self) -> Option<String> {
        let (id, reason) = self.quarantined.iter().next()?;
        Some(format!(
            "vault {id} is quarantined on this replica: {reason}"
        ))
    }

    /// See [`ShardMachine::publish`].
    fn drained(&mut self) {
        self.publish();
    }

    /// See [`ShardMachine::sync`]. On a failure the machine stops.
    fn persist(&mut self) {
        if let Err(error) = self.sync() {
            let _ = self
                .fatal
                .set(format!("syncing the vaults failed: {error}"));
        }
    }

    fn persist_in_background(&mut self) -> Option<PersistJob> {
        if self.fatal.get().is_some() {
            return None;
        }
        match synced::begin_background_sync(self) {
            Ok(job) => Some(job),
            Err(error) => {
                let _ = self
                    .fatal
                    .set(format!("syncing the vaults failed: {error}"));
                None
            }
        }
    }

    /// A read view of every vault at the applied index (an `ImageView`); the
    /// blocks are read and encoded by the builder, off the member's thread. On a failure to
    /// take the view the machine stops.
    fn snapshot_builder(&self) -> Option<SnapshotBuilder> {
        if self.fatal.get().is_some() {
            return None;
        }
        match restore::view(self) {
            Ok(view) => Some(Box::new(move || {
                view.encode().map_err(|error| error.to_string())
            })),
            Err(error) => {
                let _ = self.fatal.set(format!("taking a snapshot failed: {error}"));
                None
            }
        }
    }

    /// The member registry's ([`ShardMachine::members`]): its non-removed ids as voters,
    /// its removed ids as removed (empty outside shard 0, where nobody records members).
    fn membership_target(&self) -> MembershipTarget {
        self.target()
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

/// Opens every vault `records` names, but quarantines (with why) one that an earlier start
/// marked stale, or whose file fails to open now, which it marks stale first.
fn open_vaults(
    files: &mut dyn VaultFiles,
    records: &[VaultRecord],
    options: &VaultOptions,
) -> Result<(BTreeMap<VaultId, Member>, Quarantined), ShardError> {
    let mut vaults = BTreeMap::new();
    let mut quarantined = BTreeMap::new();
    for record in records {
        let id = record.id;
        if files.is_stale(id)? {
            quarantined.insert(id, STALE_REASON.to_owned());
            continue;
        }
        // One damaged vault must not keep the shard, and every other vault, down.
        match open_member(files, id, options) {
            Ok(member) => {
                vaults.insert(id, member);
            }
            Err(error) => {
                // Durably before any command for it is skipped: if the marker cannot be
                // written, a later start could serve the vault without those commands.
                files.mark_stale(id)?;
                quarantined.insert(id, error.to_string());
            }
        }
    }
    Ok((vaults, quarantined))
}

/// Opens one vault's file and its state.
fn open_member(
    files: &mut dyn VaultFiles,
    id: VaultId,
    options: &VaultOptions,
) -> Result<Member, ShardError> {
    let db = files.open(id)?.ok_or(ShardError::VaultFileMissing { id })?;
    let vault = Vault::open(Arc::clone(&db), id, options.clone())?;
    Ok(Member { vault, db })
}

/// The refusal of a command naming a vault that does not exist; its detail is the
/// catalog's own error for it, so the proposer sees the same error either way.
fn not_found(id: VaultId) -> ShardAnswer {
    let error = CatalogError::VaultNotFound { id };
    Refusal::of(&error, refusal::catalog_kind).map_or_else(
        || ShardAnswer::refused("vault_not_found", error.to_string()),
        Refusal::answer,
    )
}

fn deploy(vault: &mut Vault, text: &str, now_ms: u64) -> Result<ShardAnswer, ShardError> {
    match vault.deploy_schema(text, now_ms) {
        Ok(deployed) => Ok(ShardAnswer::SchemaDeployed {
            version: deployed.version,
            revision: deployed.revision,
        }),
        Err(error) => Refusal::of(&error, refusal::schema_kind)
            .map(Refusal::answer)
            .ok_or_else(|| ShardError::Corrupt {
                what: format!("a schema deploy failed: {error}"),
            }),
    }
}

fn write(vault: &mut Vault, batch: WriteBatch, now_ms: u64) -> Result<ShardAnswer, ShardError> {
    match vault.write(batch, now_ms) {
        Ok(outcome) => Ok(ShardAnswer::Written {
            revision: outcome.revision,
            inserted: outcome.inserted as u64,
            removed: outcome.removed as u64,
        }),
        Err(error) => write_refusal(&error).map(Refusal::answer),
    }
}

/// Purges up to `limit` expired relationships (see `Vault::purge_expired`).
fn purge(vault: &mut Vault, now_ms: u64, limit: u32) -> Result<ShardAnswer, ShardError> {
    // A `u32` fits a `usize` on every target this runs on; saturating keeps it total.
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    match vault.purge_expired(now_ms, limit) {
        Ok(outcome) => Ok(ShardAnswer::Written {
            revision: outcome.revision,
            inserted: 0,
            removed: outcome.removed as u64,
        }),
        Err(error) => write_refusal(&error).map(Refusal::answer),
    }
}

/// Applies a group in one storage transaction; a group above the vault's
/// `group_commit_batches_max` is refused whole, before anything is applied.
fn write_group(
    vault: &mut Vault,
    batches: Vec<WriteBatch>,
    now_ms: u64,
) -> Result<ShardAnswer, ShardError> {
    let limit = vault.options().limits.group_commit_batches_max;
    if batches.len() > limit {
        return Ok(ShardAnswer::refused(
            "group_too_large",
            format!(
                "group of {} batches exceeds group_commit_batches_max ({limit})",
                batches.len()
            ),
        ));
    }
    let results = vault
        .write_group(batches, now_ms)
        .into_iter()
        .map(group_item)
        .collect::<Result<_, _>>()?;
    Ok(ShardAnswer::WroteGroup { results })
}

/// One batch's outcome in a group, or the group's failure of this replica's own.
fn group_item(result: Result<WriteOutcome, WriteError>) -> Result<GroupItem, ShardError> {
    match result {
        Ok(outcome) => Ok(GroupItem::Written {
            revision: outcome.revision,
            inserted: outcome.inserted as u64,
            removed: outcome.removed as u64,
        }),
        Err(error) => write_refusal(&error).map(Refusal::item),
    }
}

/// A write error as a refusal, or as a failure of this replica's.
fn write_refusal(error: &WriteError) -> Result<Refusal, ShardError> {
    Refusal::of(error, refusal::write_kind).ok_or_else(|| ShardError::Corrupt {
        what: format!("a write failed: {error}"),
    })
}

fn catalog_refusal(error: CatalogError) -> Result<ShardAnswer, ShardError> {
    match Refusal::of(&error, refusal::catalog_kind) {
        Some(refusal) => Ok(refusal.answer()),
        None => Err(error.into()),
    }
}

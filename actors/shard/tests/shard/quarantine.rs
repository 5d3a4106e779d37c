//! Quarantine is sticky: a vault whose file failed to open is marked stale through
//! `VaultFiles`, stays out of service on every later open even when its file opens again
//! (this replica skipped committed writes to it), and only a snapshot restore or deleting
//! the vault clears the marker.

use std::collections::BTreeSet;
use std::sync::Arc;

use inferadb_protocols::VaultId;
use inferadb_raft::group::StateMachine;
use inferadb_shard::{
    DirVaultFiles, MemoryVaultFiles, ShardAnswer, ShardCommand, ShardError, ShardMachine,
    ShardOptions, VaultFiles,
};
use inferadb_storage::Database;

use crate::common::{apply_entries, encoded, fingerprint, machine, prologue, Disk, Spec};

const BROKEN: VaultId = VaultId(0x100);
const HEALTHY: VaultId = VaultId(0x101);

/// Memory vault files whose `open` fails for the vaults in `broken`, as a damaged file's
/// would; everything else, the stale markers included, is forwarded to the inner files (as
/// a wrapper such as the node's must).
struct Flaky {
    inner: MemoryVaultFiles,
    broken: BTreeSet<VaultId>,
}

impl VaultFiles for Flaky {
    fn open(&mut self, id: VaultId) -> Result<Option<Arc<Database>>, ShardError> {
        if self.broken.contains(&id) {
            return Err(ShardError::Corrupt {
                what: format!("vault {id}: damaged file"),
            });
        }
        self.inner.open(id)
    }

    fn create(&mut self, id: VaultId) -> Result<Arc<Database>, ShardError> {
        self.inner.create(id)
    }

    fn remove(&mut self, id: VaultId) -> Result<(), ShardError> {
        self.inner.remove(id)
    }

    fn list(&self) -> Result<Vec<VaultId>, ShardError> {
        self.inner.list()
    }

    fn mark_stale(&mut self, id: VaultId) -> Result<(), ShardError> {
        self.inner.mark_stale(id)
    }

    fn is_stale(&self, id: VaultId) -> Result<bool, ShardError> {
        self.inner.is_stale(id)
    }

    fn clear_stale(&mut self, id: VaultId) -> Result<(), ShardError> {
        self.inner.clear_stale(id)
    }
}

/// The machine over `disk` with `BROKEN`'s file failing to open.
fn open_broken(disk: &Disk) -> ShardMachine {
    let files = Flaky {
        inner: disk.files.clone(),
        broken: BTreeSet::from([BROKEN]),
    };
    disk.open_over(Box::new(files), ShardOptions::default())
}

/// A write touching one relationship of `vault` (the prologue deploys a schema to both
/// vaults): it applies however often it is repeated.
fn write(vault: u8, pick: u8) -> Spec {
    Spec::Write {
        vault,
        mutations: vec![(2, pick, 0)],
        precondition: None,
    }
}

/// The prologue's entries (indexes 1 to 4), then writes to both vaults (5 and 6).
fn history() -> Vec<Vec<u8>> {
    let mut specs = prologue();
    specs.extend([write(0, 0), write(1, 1)]);
    encoded(&specs, 1)
}

/// Two more writes to both vaults, from index `first` on.
fn more(first: u64) -> Vec<Vec<u8>> {
    encoded(&[write(0, 2), write(1, 3)], first)
}

fn unavailable(answer: &ShardAnswer) -> bool {
    matches!(answer, ShardAnswer::Refused { kind, .. } if kind == "vault_unavailable")
}

/// A replica that applied the history, restarted with `BROKEN`'s file failing to open,
/// then applied [`more`] (skipping the write to `BROKEN`) and stopped cleanly; and a
/// healthy replica that applied the same entries.
fn stale_replica() -> (Disk, ShardMachine) {
    let (mut member, disk) = machine();
    apply_entries(&mut member, 1, &history());
    member.sync().unwrap();
    drop(member);
    let mut quarantined = open_broken(&disk);
    let answers = apply_entries(&mut quarantined, 7, &more(7));
    assert!(unavailable(&answers[0]), "{answers:?}");
    assert!(matches!(answers[1], ShardAnswer::Written { .. }));
    quarantined.sync().unwrap();
    drop(quarantined);
    let (mut healthy, _) = machine();
    apply_entries(&mut healthy, 1, &history());
    apply_entries(&mut healthy, 7, &more(7));
    (disk, healthy)
}

#[test]
fn a_vault_quarantined_at_open_is_marked_stale() {
    let (mut member, disk) = machine();
    apply_entries(&mut member, 1, &history());
    member.sync().unwrap();
    drop(member);
    assert!(!disk.files.is_stale(BROKEN).unwrap());

    let mut reopened = open_broken(&disk);
    let reason = &reopened.quarantined()[&BROKEN];
    assert!(reason.contains("damaged file"), "{reason}");
    assert_eq!(reopened.quarantined().len(), 1);
    // Marked before anything is applied, and only the vault that failed.
    assert!(disk.files.is_stale(BROKEN).unwrap());
    assert!(!disk.files.is_stale(HEALTHY).unwrap());
    assert!(reopened.snapshot_blocked().is_some());
    let answers = apply_entries(&mut reopened, 7, &more(7));
    assert!(unavailable(&answers[0]), "{answers:?}");
    assert!(matches!(answers[1], ShardAnswer::Written { .. }));
    assert_eq!(reopened.applied_index(), 8);
}

#[test]
fn a_stale_vault_stays_quarantined_when_its_file_opens_again() {
    let (disk, _) = stale_replica();
    // The file opens fine now, but holds the vault as it was before index 7.
    let mut reopened = disk.open();
    assert!(reopened.vault(BROKEN).is_none());
    let reason = &reopened.quarantined()[&BROKEN];
    assert!(reason.contains("an earlier start"), "{reason}");
    assert!(reopened.vault(HEALTHY).is_some());
    assert!(reopened.snapshot_blocked().is_some());
    let answers = apply_entries(&mut reopened, 9, &more(9));
    assert!(unavailable(&answers[0]), "{answers:?}");
    assert!(matches!(answers[1], ShardAnswer::Written { .. }));
    drop(reopened);
    // And again: the marker is not consumed by an open.
    assert!(disk.open().quarantined().contains_key(&BROKEN));
    assert!(disk.files.is_stale(BROKEN).unwrap());
}

#[test]
fn a_restore_clears_the_stale_marker() {
    let (disk, healthy) = stale_replica();
    let mut reopened = disk.open();
    assert!(reopened.quarantined().contains_key(&BROKEN));
    reopened.restore(&healthy.snapshot());
    assert_eq!(reopened.fatal(), None);
    assert!(reopened.quarantined().is_empty());
    assert!(!disk.files.is_stale(BROKEN).unwrap());
    assert_eq!(fingerprint(&reopened), fingerprint(&healthy));
    drop(reopened);
    let reopened = disk.open();
    assert!(reopened.quarantined().is_empty());
    assert_eq!(fingerprint(&reopened), fingerprint(&healthy));
}

#[test]
fn deleting_a_stale_vault_clears_its_marker() {
    let (disk, _) = stale_replica();
    let mut reopened = disk.open();
    let delete = ShardCommand::DeleteVault { id: BROKEN };
    assert_eq!(
        reopened.apply_command(9, &delete.encode()),
        ShardAnswer::VaultDeleted { id: BROKEN }
    );
    assert!(reopened.quarantined().is_empty());
    assert!(!disk.files.is_stale(BROKEN).unwrap());
    assert!(reopened.snapshot_blocked().is_none());
    // The id is free again, for a vault in service.
    let answers = apply_entries(&mut reopened, 10, &encoded(&prologue()[..1], 10));
    assert!(
        matches!(answers[0], ShardAnswer::VaultCreated { .. }),
        "{answers:?}"
    );
    reopened.sync().unwrap();
    drop(reopened);
    let reopened = disk.open();
    assert!(reopened.quarantined().is_empty());
    assert!(reopened.vault(BROKEN).is_some());
}

#[test]
fn creating_a_vault_clears_a_marker_a_crashed_deletion_left() {
    let (mut member, disk) = machine();
    // A deletion that a crash interrupted after the catalog and the file, before the
    // marker, left it behind.
    let mut files = disk.files.clone();
    files.mark_stale(BROKEN).unwrap();
    apply_entries(&mut member, 1, &encoded(&prologue()[..1], 1));
    assert!(!files.is_stale(BROKEN).unwrap());
    member.sync().unwrap();
    drop(member);
    assert!(disk.open().quarantined().is_empty());
}

#[test]
fn a_quarantined_replica_admits_the_same_purges() {
    let purge = |epoch| {
        ShardCommand::PurgeExpired {
            vault: BROKEN,
            now_ms: 5_000,
            limit: 10,
            job: "gc".into(),
            holder: 1,
            epoch,
        }
        .encode()
    };
    let purges = [purge(2), purge(1), purge(3)];
    let (disk, mut healthy) = stale_replica();
    let mut reopened = disk.open();
    let answers = apply_entries(&mut reopened, 9, &purges);
    let expected = apply_entries(&mut healthy, 9, &purges);
    assert!(
        unavailable(&answers[0]) && unavailable(&answers[2]),
        "{answers:?}"
    );
    assert!(matches!(expected[0], ShardAnswer::Written { .. }));
    // The fence is the shard's: both refuse epoch 1 alike and record the same epochs.
    assert_eq!(answers[1], expected[1]);
    assert_eq!(reopened.fence_epochs(), healthy.fence_epochs());
    assert_eq!(reopened.applied_index(), healthy.applied_index());
}

#[test]
fn dir_vault_files_keep_stale_markers_durably_beside_the_files() {
    let dir = tempfile::tempdir().unwrap();
    let mut files = DirVaultFiles::new(dir.path()).unwrap();
    files.create(BROKEN).unwrap();
    let marker = dir.path().join(format!("{BROKEN}.stale"));
    assert!(!files.is_stale(BROKEN).unwrap());
    files.mark_stale(BROKEN).unwrap();
    files.mark_stale(BROKEN).unwrap();
    // A marker needs no file, and is no vault file.
    files.mark_stale(HEALTHY).unwrap();
    assert!(marker.exists());
    assert_eq!(files.list().unwrap(), [BROKEN]);
    let reopened = DirVaultFiles::new(dir.path()).unwrap();
    assert!(reopened.is_stale(BROKEN).unwrap() && reopened.is_stale(HEALTHY).unwrap());
    // Removing the file leaves the marker: only `clear_stale` removes it.
    files.remove(BROKEN).unwrap();
    assert!(files.is_stale(BROKEN).unwrap());
    files.clear_stale(BROKEN).unwrap();
    files.clear_stale(BROKEN).unwrap();
    assert!(!marker.exists());
    assert!(!reopened.is_stale(BROKEN).unwrap());
    assert!(reopened.is_stale(HEALTHY).unwrap());
}

#[test]
fn a_damaged_file_in_a_directory_stays_quarantined_after_its_repair() {
    let dir = tempfile::tempdir().unwrap();
    let vaults = dir.path().join("vaults");
    let open = || {
        let catalog = Arc::new(inferadb_vault::open_database(dir.path().join("shard.db")).unwrap());
        let files = DirVaultFiles::new(&vaults).unwrap();
        ShardMachine::open(catalog, Box::new(files), ShardOptions::default()).unwrap()
    };
    let mut member = open();
    apply_entries(&mut member, 1, &history());
    member.sync().unwrap();
    drop(member);
    let file = vaults.join(format!("{BROKEN}.db"));
    let good = std::fs::read(&file).unwrap();
    std::fs::write(&file, vec![0xA5; good.len()]).unwrap();

    let mut damaged = open();
    assert!(damaged.quarantined().contains_key(&BROKEN));
    assert!(vaults.join(format!("{BROKEN}.stale")).exists());
    let answers = apply_entries(&mut damaged, 7, &more(7));
    assert!(unavailable(&answers[0]), "{answers:?}");
    damaged.sync().unwrap();
    drop(damaged);

    // Someone puts the old file back: it opens, but lacks the write at index 7.
    std::fs::write(&file, &good).unwrap();
    let repaired = open();
    assert!(repaired.quarantined().contains_key(&BROKEN));
    assert!(repaired.vault(BROKEN).is_none());
    assert!(repaired.vault(HEALTHY).is_some());
}

/// A vault file that reopens behind what it held when last synced (its newest commit lost
/// to damage the storage engine took for a torn commit) is quarantined, not served: the
/// recovery rule would skip the lost commands as applied.
#[test]
fn a_vault_file_behind_its_synced_watermark_is_quarantined() {
    let (mut member, disk) = machine();
    apply_entries(&mut member, 1, &history());
    member.sync().unwrap();
    // The files as of this sync: what a rolled-back file looks like.
    let older = disk
        .files
        .crash_copy(inferadb_storage::io::CrashMode::LoseUnsynced);
    apply_entries(&mut member, 7, &more(7));
    member.sync().unwrap();
    drop(member);
    // The catalog as synced last, the vault files one sync behind.
    let rolled_back = Disk {
        catalog: Arc::clone(&disk.catalog),
        files: older,
    };
    let reopened = rolled_back.open();
    assert_eq!(
        reopened.quarantined().keys().copied().collect::<Vec<_>>(),
        vec![BROKEN, HEALTHY]
    );
    let reason = &reopened.quarantined()[&BROKEN];
    assert!(reason.contains("behind"), "{reason}");
    assert!(rolled_back.files.is_stale(BROKEN).unwrap());
    // The same files, not rolled back, open clean.
    let (mut member, disk) = machine();
    apply_entries(&mut member, 1, &history());
    member.sync().unwrap();
    apply_entries(&mut member, 7, &more(7));
    member.sync().unwrap();
    drop(member);
    assert!(disk.open().quarantined().is_empty());
}

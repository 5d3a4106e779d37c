//! Crash and restart: reopening from what reached the disk and re-applying the entries after
//! the durable applied index (and a few before it) ends in the uncrashed state.

use inferadb_raft::group::StateMachine;
use inferadb_shard::{ShardAnswer, ShardMachine};
use inferadb_storage::io::CrashMode;
use proptest::prelude::*;

use crate::common::{
    apply_entries, apply_in_cuts, encoded, fingerprint, machine, prologue, prologue_with_lease,
    specs, Disk, Spec,
};

/// How the crash hits.
#[derive(Clone, Copy, Debug)]
enum Crash {
    /// Every unsynced write is lost, in every file.
    LoseUnsynced,
    /// Power fails between the vaults' sync and the catalog's: vaults are ahead.
    VaultsAhead,
}

fn crash() -> impl Strategy<Value = Crash> {
    prop_oneof![Just(Crash::LoseUnsynced), Just(Crash::VaultsAhead)]
}

/// What `crash` leaves of `member`'s `disk` (the machine is gone either way).
fn crash_now(crash: Crash, member: ShardMachine, disk: &Disk) -> Disk {
    match crash {
        Crash::LoseUnsynced => {
            let survived = disk.crash_copy(CrashMode::LoseUnsynced);
            drop(member);
            survived
        }
        Crash::VaultsAhead => {
            let catalog = disk.crash_copy(CrashMode::LoseUnsynced).catalog;
            drop(member); // closes cleanly: the vault files get everything
            Disk {
                catalog,
                files: disk.files.clone(),
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    /// The crash test below, with every apply (before the crash and in the replay) cut into
    /// merged runs: a run stores its last index as the vault's commit index in one
    /// transaction, so a vault ahead of the catalog skips exactly the runs it holds.
    #[test]
    fn re_applying_merged_runs_after_a_crash_reaches_the_same_state(
        random in specs(40),
        sync_percent in 0u64..100,
        crash in crash(),
        cuts in prop::collection::vec(1usize..10, 1..6),
        replay_cuts in prop::collection::vec(1usize..10, 1..6),
    ) {
        let all: Vec<Spec> = prologue_with_lease().into_iter().chain(random).collect();
        let entries = encoded(&all, 1);
        let total = entries.len() as u64;
        let sync_at = total * sync_percent / 100;

        let (mut reference, _) = machine();
        let expected = apply_entries(&mut reference, 1, &entries);

        let (mut member, disk) = machine();
        let before = apply_in_cuts(&mut member, 1, &entries[..sync_at as usize], &cuts);
        member.sync().unwrap();
        let after = apply_in_cuts(&mut member, sync_at + 1, &entries[sync_at as usize..], &cuts);
        let answered: Vec<_> = before.into_iter().chain(after).collect();
        prop_assert_eq!(&answered, &expected);
        let survived = crash_now(crash, member, &disk);

        let mut restarted = survived.open();
        let durable = restarted.applied_index();
        prop_assert!(durable >= sync_at && durable <= total, "{durable} vs {sync_at}..{total}");
        let answers = apply_in_cuts(
            &mut restarted,
            durable + 1,
            &entries[durable as usize..],
            &replay_cuts,
        );
        for (offset, answer) in answers.iter().enumerate() {
            let index = durable + 1 + offset as u64;
            if answer != &ShardAnswer::AlreadyApplied {
                prop_assert_eq!(answer, &expected[index as usize - 1]);
            }
        }
        prop_assert_eq!(fingerprint(&restarted), fingerprint(&reference));
    }

    /// The periodic persist runs its fsyncs off the member's thread while entries go on
    /// being applied (the interleaving is up to the scheduler): a crash after it recovers at
    /// least what it noted, and re-applying the rest ends in the uncrashed state.
    #[test]
    fn a_background_persist_during_applies_recovers_what_it_noted(
        random in specs(40),
        sync_percent in 0u64..100,
        during_percent in 0u64..100,
        crash in crash(),
    ) {
        let all: Vec<Spec> = prologue_with_lease().into_iter().chain(random).collect();
        let entries = encoded(&all, 1);
        let total = entries.len() as u64;
        let sync_at = total * sync_percent / 100;
        let job_done_at = sync_at + (total - sync_at) * during_percent / 100;

        let (mut reference, _) = machine();
        let expected = apply_entries(&mut reference, 1, &entries);

        let (mut member, disk) = machine();
        apply_entries(&mut member, 1, &entries[..sync_at as usize]);
        let job = member.persist_in_background().expect("the shard persists in the background");
        // On its own thread, as the node runs it: an apply that must sync (a vault created
        // or deleted) waits for it.
        let running = std::thread::spawn(job);
        apply_entries(&mut member, sync_at + 1, &entries[sync_at as usize..job_done_at as usize]);
        running.join().expect("the persist job does not panic").unwrap();
        apply_entries(&mut member, job_done_at + 1, &entries[job_done_at as usize..]);
        let survived = crash_now(crash, member, &disk);

        let mut restarted = survived.open();
        let durable = restarted.applied_index();
        prop_assert!(durable >= sync_at && durable <= total, "{durable} vs {sync_at}..{total}");
        let answers = apply_entries(&mut restarted, durable + 1, &entries[durable as usize..]);
        for (offset, answer) in answers.iter().enumerate() {
            let index = durable + 1 + offset as u64;
            if answer != &ShardAnswer::AlreadyApplied {
                prop_assert_eq!(answer, &expected[index as usize - 1]);
            }
        }
        prop_assert_eq!(fingerprint(&restarted), fingerprint(&reference));
    }

    #[test]
    fn re_applying_after_a_crash_reaches_the_same_state(
        random in specs(40),
        sync_percent in 0u64..100,
        crash in crash(),
        replay_extra in 0u64..6,
    ) {
        let all: Vec<Spec> = prologue_with_lease().into_iter().chain(random).collect();
        let entries = encoded(&all, 1);
        let total = entries.len() as u64;
        let sync_at = total * sync_percent / 100;

        let (mut reference, _) = machine();
        let expected = apply_entries(&mut reference, 1, &entries);

        let (mut member, disk) = machine();
        apply_entries(&mut member, 1, &entries[..sync_at as usize]);
        member.sync().unwrap();
        apply_entries(&mut member, sync_at + 1, &entries[sync_at as usize..]);
        let survived = crash_now(crash, member, &disk);

        let mut restarted = survived.open();
        let durable = restarted.applied_index();
        prop_assert!(durable >= sync_at && durable <= total, "{durable} vs {sync_at}..{total}");
        // The log re-delivers everything after the durable index; a careless shell may
        // re-deliver a few entries before it too.
        let from = durable.saturating_sub(replay_extra).max(1);
        let answers = apply_entries(&mut restarted, from, &entries[from as usize - 1..]);
        for (offset, answer) in answers.iter().enumerate() {
            let index = from + offset as u64;
            if index <= durable {
                prop_assert_eq!(answer, &ShardAnswer::AlreadyApplied);
            } else if answer != &ShardAnswer::AlreadyApplied {
                // Not in the vault's durable state: applied as the first time.
                prop_assert_eq!(answer, &expected[index as usize - 1]);
            }
        }
        prop_assert_eq!(fingerprint(&restarted), fingerprint(&reference));

        // And both go on identically.
        let more = encoded(&prologue()[2..], total + 1);
        prop_assert_eq!(
            apply_entries(&mut restarted, total + 1, &more),
            apply_entries(&mut reference, total + 1, &more)
        );
        prop_assert_eq!(fingerprint(&restarted), fingerprint(&reference));
    }
}

#[test]
fn a_clean_restart_keeps_everything_and_skips_every_old_entry() {
    let (mut member, disk) = machine();
    let entries = encoded(&prologue(), 1);
    apply_entries(&mut member, 1, &entries);
    let before = fingerprint(&member);
    drop(member);
    let mut reopened = disk.open();
    assert_eq!(fingerprint(&reopened), before);
    let answers = apply_entries(&mut reopened, 1, &entries);
    assert!(answers
        .iter()
        .all(|answer| *answer == ShardAnswer::AlreadyApplied));
    assert_eq!(fingerprint(&reopened), before);
}

#[test]
fn a_vault_file_no_record_names_is_removed_on_open() {
    let (mut member, disk) = machine();
    apply_entries(&mut member, 1, &encoded(&prologue()[..1], 1));
    let catalog = disk.crash_copy(CrashMode::LoseUnsynced).catalog;
    drop(member);
    // The vault's file survived (its creation commits durably); its record did not.
    let survived = Disk {
        catalog,
        files: disk.files.clone(),
    };
    assert_eq!(
        inferadb_shard::VaultFiles::list(&survived.files)
            .unwrap()
            .len(),
        1
    );
    let mut restarted = survived.open();
    assert_eq!(restarted.applied_index(), 0);
    assert!(inferadb_shard::VaultFiles::list(&survived.files)
        .unwrap()
        .is_empty());
    let answers = apply_entries(&mut restarted, 1, &encoded(&prologue(), 1));
    assert!(
        matches!(answers[0], ShardAnswer::VaultCreated { .. }),
        "{answers:?}"
    );
    let (mut reference, _) = machine();
    apply_entries(&mut reference, 1, &encoded(&prologue(), 1));
    assert_eq!(fingerprint(&restarted), fingerprint(&reference));
}

#[test]
fn machines_over_directories_reopen_too() {
    use std::sync::Arc;

    use inferadb_shard::{DirVaultFiles, ShardMachine, ShardOptions};

    let dir = tempfile::tempdir().unwrap();
    let open = || {
        let catalog = Arc::new(inferadb_vault::open_database(dir.path().join("shard.db")).unwrap());
        let files = DirVaultFiles::new(dir.path().join("vaults")).unwrap();
        ShardMachine::open(catalog, Box::new(files), ShardOptions::default()).unwrap()
    };
    let mut member = open();
    let entries = encoded(&prologue(), 1);
    apply_entries(&mut member, 1, &entries);
    member.sync().unwrap();
    let before = fingerprint(&member);
    drop(member);
    assert_eq!(fingerprint(&open()), before);
}

//! A machine restored from another's snapshot holds the same vaults, blocks and roots, and
//! the two stay identical under further entries.

use inferadb_raft::group::StateMachine;
use inferadb_shard::ShardAnswer;
use proptest::prelude::*;

use crate::common::{
    apply_entries, encoded, fingerprint, machine, prologue, prologue_with_lease, specs, Spec,
};

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

    /// A snapshot started at index k and built after the machine applied further entries
    /// (deletions and new vaults included) is byte for byte the snapshot taken at k.
    #[test]
    fn a_snapshot_built_later_is_the_snapshot_at_its_start(
        before in specs(30),
        after in specs(30),
    ) {
        let first: Vec<Spec> = prologue_with_lease().into_iter().chain(before).collect();
        let (mut at_start, _) = machine();
        apply_entries(&mut at_start, 1, &encoded(&first, 1));
        let (mut moving_on, _) = machine();
        apply_entries(&mut moving_on, 1, &encoded(&first, 1));

        let builder = moving_on.snapshot_builder().expect("the shard machine builds off-thread");
        let next = first.len() as u64 + 1;
        apply_entries(&mut moving_on, next, &encoded(&after, next));
        let built = std::thread::spawn(builder).join().unwrap().unwrap();
        prop_assert_eq!(built, at_start.snapshot());
    }

    #[test]
    fn a_restored_machine_equals_its_source_and_keeps_up(
        before in specs(30),
        other in specs(10),
        after in specs(20),
    ) {
        let first: Vec<Spec> = prologue_with_lease().into_iter().chain(before).collect();
        let (mut source, _) = machine();
        apply_entries(&mut source, 1, &encoded(&first, 1));
        // The target had a life of its own, which the restore replaces entirely.
        let (mut target, target_disk) = machine();
        apply_entries(&mut target, 1, &encoded(&prologue(), 1));
        apply_entries(&mut target, 5, &encoded(&other, 5));

        target.restore(&source.snapshot());
        prop_assert_eq!(target.fatal(), None);
        prop_assert_eq!(fingerprint(&target), fingerprint(&source));
        // Snapshots are canonical: the restored machine's is byte-identical.
        prop_assert_eq!(target.snapshot(), source.snapshot());
        // No file is left from the target's former vaults.
        prop_assert_eq!(
            inferadb_shard::VaultFiles::list(&target_disk.files).unwrap(),
            target.vault_ids()
        );

        let next = first.len() as u64 + 1;
        let entries = encoded(&after, next);
        let from_source = apply_entries(&mut source, next, &entries);
        let from_target = apply_entries(&mut target, next, &entries);
        prop_assert_eq!(from_source, from_target);
        prop_assert_eq!(fingerprint(&target), fingerprint(&source));

        // The restored state is durable: reopening the target's files gives it back.
        drop(target);
        prop_assert_eq!(fingerprint(&target_disk.open()), fingerprint(&source));
    }
}

#[test]
fn a_malformed_snapshot_stops_the_machine() {
    let (mut machine, _) = machine();
    apply_entries(&mut machine, 1, &encoded(&prologue(), 1));
    machine.restore(&[1, 0, 0]);
    assert!(
        machine.fatal().unwrap().contains("snapshot"),
        "{:?}",
        machine.fatal()
    );
    assert!(matches!(
        machine.apply_command(10, &encoded(&prologue(), 10)[0]),
        ShardAnswer::Fatal { .. }
    ));
    assert!(machine.snapshot().is_empty());
}

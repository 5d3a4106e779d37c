//! The cluster's member registry in the shard machine: adds, replacements and removals,
//! refusals, the membership target the shell reads, durability across restarts and
//! crashes, snapshots, and what the observer hears.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use inferadb_raft::group::{MembershipTarget, StateMachine};
use inferadb_shard::observer::{ShardObserver, VaultChange};
use inferadb_shard::{MemberRecord, ShardAnswer, ShardCommand, ShardMachine};
use inferadb_storage::io::CrashMode;
use proptest::prelude::*;

use crate::common::{apply_entries, encoded, fingerprint, machine, member_spec, prologue, Spec};

fn add(id: u64, address: &str) -> ShardCommand {
    ShardCommand::AddMember {
        id,
        address: address.into(),
    }
}

fn remove(id: u64) -> ShardCommand {
    ShardCommand::RemoveMember { id }
}

fn voter(address: &str) -> MemberRecord {
    MemberRecord {
        address: address.into(),
        removed: false,
    }
}

fn gone(address: &str) -> MemberRecord {
    MemberRecord {
        address: address.into(),
        removed: true,
    }
}

/// Applies commands from index `first` on; returns the answers.
fn apply(machine: &mut ShardMachine, first: u64, commands: &[ShardCommand]) -> Vec<ShardAnswer> {
    let entries: Vec<Vec<u8>> = commands.iter().map(ShardCommand::encode).collect();
    apply_entries(machine, first, &entries)
}

/// Each answer as `"changed"` or its refusal kind (checking refusals carry no detail).
fn outcomes(answers: &[ShardAnswer]) -> Vec<String> {
    answers
        .iter()
        .map(|answer| match answer {
            ShardAnswer::MembersChanged => "changed".to_owned(),
            ShardAnswer::Refused { kind, detail, .. } => {
                assert!(detail.is_empty(), "{answer:?}");
                kind.clone()
            }
            other => panic!("unexpected answer {other:?}"),
        })
        .collect()
}

fn target(voters: &[u64], removed: &[u64]) -> MembershipTarget {
    MembershipTarget {
        voters: voters.iter().copied().collect::<BTreeSet<_>>(),
        removed: removed.iter().copied().collect::<BTreeSet<_>>(),
    }
}

#[test]
fn members_are_added_replaced_and_removed() {
    let (mut machine, _) = machine();
    assert!(machine.members().is_empty());
    assert_eq!(machine.membership_target(), MembershipTarget::default());

    let answers = apply(
        &mut machine,
        1,
        &[
            add(1, "10.0.0.1:7000"),
            // Adding again replaces the address.
            add(1, "10.0.0.9:7000"),
            add(2, "[::1]:7002"),
            // A removal keeps the last address.
            remove(1),
            // An id never added (a bootstrap voter) is recorded with an empty address;
            // removing it again changes nothing.
            remove(9),
            remove(9),
        ],
    );
    assert_eq!(outcomes(&answers), ["changed"; 6]);
    let expected = BTreeMap::from([
        (1, gone("10.0.0.9:7000")),
        (2, voter("[::1]:7002")),
        (9, gone("")),
    ]);
    assert_eq!(machine.members(), &expected);
    assert_eq!(machine.membership_target(), target(&[2], &[1, 9]));

    // Adding a removed id clears its removal.
    let answers = apply(
        &mut machine,
        7,
        &[add(1, "10.0.0.1:7000"), add(9, "10.0.0.3:1")],
    );
    assert_eq!(outcomes(&answers), ["changed"; 2]);
    assert_eq!(machine.members()[&1], voter("10.0.0.1:7000"));
    assert_eq!(machine.membership_target(), target(&[1, 2, 9], &[]));
    assert_eq!(machine.applied_index(), 8);
}

#[test]
fn member_refusals_change_nothing_and_say_why() {
    let (mut machine, _) = machine();
    let answers = apply(
        &mut machine,
        1,
        &[
            add(0, "10.0.0.1:7000"),
            remove(0),
            add(1, "node-1:7000"),
            add(1, "10.0.0.1"),
            add(1, ""),
            add(1, "10.0.0.1:70000"),
            add(1, " 10.0.0.1:7000"),
            add(1, "::1:7000"),
        ],
    );
    assert_eq!(outcomes(&answers), ["member_invalid"; 8]);
    assert!(machine.members().is_empty());
    assert!(
        format!("{:?}", answers[2]).contains("`node-1:7000` is not an IP:port"),
        "{answers:?}"
    );

    let answers = apply(
        &mut machine,
        9,
        &[
            add(1, "10.0.0.1:7000"),
            // The only voter: removing it would leave the registry without one.
            remove(1),
            add(2, "10.0.0.2:7000"),
            remove(1),
            remove(2),
            // Already removed: nothing changes, nothing is refused.
            remove(1),
            add(2, "10.0.0.2:7000"),
        ],
    );
    assert_eq!(
        outcomes(&answers),
        [
            "changed",
            "member_last",
            "changed",
            "changed",
            "member_last",
            "changed",
            "changed"
        ]
    );
    assert!(
        format!("{:?}", answers[1]).contains("removing node 1 would leave the registry"),
        "{answers:?}"
    );
    assert_eq!(
        machine.members(),
        &BTreeMap::from([(1, gone("10.0.0.1:7000")), (2, voter("10.0.0.2:7000"))])
    );
    assert_eq!(machine.applied_index(), 15);
}

#[test]
fn the_registry_survives_a_reopen_and_old_entries_are_skipped() {
    let (mut member, disk) = machine();
    let commands = [add(1, "10.0.0.1:7000"), add(2, "10.0.0.2:7000"), remove(1)];
    apply(&mut member, 1, &commands);
    let before = fingerprint(&member);
    drop(member);
    let mut reopened = disk.open();
    assert_eq!(fingerprint(&reopened), before);
    assert_eq!(reopened.membership_target(), target(&[2], &[1]));
    let answers = apply(&mut reopened, 1, &commands);
    assert!(answers
        .iter()
        .all(|answer| *answer == ShardAnswer::AlreadyApplied));
    assert_eq!(fingerprint(&reopened), before);
}

fn member_specs() -> impl Strategy<Value = Vec<Spec>> {
    prop::collection::vec(member_spec(), 2..30)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn a_crash_and_replay_records_the_same_members(
        specs in member_specs(),
        sync_percent in 0u64..100,
        replay_extra in 0u64..6,
    ) {
        let entries = encoded(&specs, 1);
        let total = entries.len() as u64;
        let sync_at = total * sync_percent / 100;
        let (mut reference, _) = machine();
        let expected = apply_entries(&mut reference, 1, &entries);
        // The registry as it was after each entry.
        let (mut stepper, _) = machine();
        let mut after = vec![stepper.members().clone()];
        for (offset, entry) in entries.iter().enumerate() {
            stepper.apply_command(offset as u64 + 1, entry);
            after.push(stepper.members().clone());
        }

        let (mut member, disk) = machine();
        apply_entries(&mut member, 1, &entries[..sync_at as usize]);
        member.sync().unwrap();
        apply_entries(&mut member, sync_at + 1, &entries[sync_at as usize..]);
        let survived = disk.crash_copy(CrashMode::LoseUnsynced);
        drop(member);

        // The durable registry is exactly the registry at the durable applied index.
        let mut restarted = survived.open();
        prop_assert_eq!(restarted.applied_index(), sync_at);
        prop_assert_eq!(restarted.members(), &after[sync_at as usize]);
        let from = sync_at.saturating_sub(replay_extra).max(1);
        let answers = apply_entries(&mut restarted, from, &entries[from as usize - 1..]);
        for (offset, answer) in answers.iter().enumerate() {
            let index = from + offset as u64;
            if index <= sync_at {
                prop_assert_eq!(answer, &ShardAnswer::AlreadyApplied);
            } else {
                prop_assert_eq!(answer, &expected[index as usize - 1]);
            }
        }
        prop_assert_eq!(fingerprint(&restarted), fingerprint(&reference));
        prop_assert_eq!(restarted.membership_target(), reference.membership_target());
    }
}

#[test]
fn a_snapshot_carries_the_members() {
    let (mut source, _) = machine();
    apply_entries(&mut source, 1, &encoded(&prologue(), 1));
    apply(
        &mut source,
        5,
        &[add(1, "10.0.0.1:7000"), add(2, "10.0.0.2:7000"), remove(3)],
    );
    let (mut target, target_disk) = machine();
    apply(&mut target, 1, &[add(7, "10.0.0.7:7000"), remove(1)]);
    let snapshot = source.snapshot();
    // Without placements, the format before them.
    assert_eq!(
        snapshot[0],
        inferadb_shard::snapshot::SNAPSHOT_FORMAT_NO_PLACEMENTS
    );
    target.restore(&snapshot);
    assert_eq!(target.fatal(), None);
    assert_eq!(fingerprint(&target), fingerprint(&source));
    assert_eq!(target.membership_target(), self::target(&[1, 2], &[3]));
    assert_eq!(target.snapshot(), snapshot);
    // Both go on identically, and the restored registry is durable.
    let next = [remove(1), add(3, "10.0.0.3:7000")];
    assert_eq!(apply(&mut target, 8, &next), apply(&mut source, 8, &next));
    drop(target);
    assert_eq!(fingerprint(&target_disk.open()), fingerprint(&source));
}

#[test]
fn a_snapshot_without_members_is_format_2_and_empties_the_registry() {
    let (mut source, _) = machine();
    apply_entries(&mut source, 1, &encoded(&prologue(), 1));
    let snapshot = source.snapshot();
    assert_eq!(
        snapshot[0],
        inferadb_shard::snapshot::SNAPSHOT_FORMAT_NO_MEMBERS
    );
    let (mut target, target_disk) = machine();
    apply(&mut target, 1, &[add(7, "10.0.0.7:7000")]);
    target.restore(&snapshot);
    assert_eq!(target.fatal(), None);
    assert!(target.members().is_empty());
    assert_eq!(fingerprint(&target), fingerprint(&source));
    drop(target);
    assert!(target_disk.open().members().is_empty());

    // Format 3 with no members decodes as its format-2 twin, and re-encodes as it.
    let mut three = snapshot.clone();
    three[0] = 3;
    three.extend_from_slice(&0u32.to_be_bytes());
    let (mut target, _) = machine();
    target.restore(&three);
    assert_eq!(target.fatal(), None);
    assert_eq!(fingerprint(&target), fingerprint(&source));
    assert_eq!(target.snapshot(), snapshot);
}

#[test]
fn a_snapshot_with_bad_members_stops_the_machine() {
    let (mut source, _) = machine();
    apply(&mut source, 1, &[add(1, "10.0.0.1:7000")]);
    let snapshot = source.snapshot();
    // The one member is the tail: u64 id ‖ u8 removed ‖ u32 length ‖ 13 address bytes.
    let id_at = snapshot.len() - 13 - 4 - 1 - 8;
    let restore = |bytes: &[u8]| {
        let (mut target, _) = machine();
        target.restore(bytes);
        target.fatal().map(str::to_owned)
    };
    let mut zero = snapshot.clone();
    zero[id_at..id_at + 8].copy_from_slice(&0u64.to_be_bytes());
    let fatal = restore(&zero).unwrap();
    assert!(fatal.contains("members"), "{fatal}");
    let mut flag = snapshot.clone();
    flag[id_at + 8] = 2;
    let fatal = restore(&flag).unwrap();
    assert!(fatal.contains("member removed"), "{fatal}");
    let mut address = snapshot.clone();
    let last = address.len() - 1;
    address[last] = b'x';
    let fatal = restore(&address).unwrap();
    assert!(fatal.contains("not an IP:port"), "{fatal}");
    assert_eq!(restore(&snapshot), None);
}

/// What an observer heard: each registry it was given, and how many vault reports.
#[derive(Default)]
struct Heard {
    registries: Vec<BTreeMap<u64, MemberRecord>>,
    vault_reports: usize,
}

struct Recorder(Arc<Mutex<Heard>>);

impl ShardObserver for Recorder {
    fn changed(&mut self, _changes: Vec<VaultChange<'_>>, _membership: bool) {
        self.0.lock().unwrap().vault_reports += 1;
    }

    fn members_changed(&mut self, members: &BTreeMap<u64, MemberRecord>) {
        self.0.lock().unwrap().registries.push(members.clone());
    }
}

/// A recorder for `machine`, and what it hears.
fn observe(machine: &mut ShardMachine) -> Arc<Mutex<Heard>> {
    let heard = Arc::new(Mutex::new(Heard::default()));
    machine.set_observer(Box::new(Recorder(Arc::clone(&heard))));
    heard
}

/// The registries heard since the last call, and the vault reports.
fn take(heard: &Mutex<Heard>) -> (Vec<BTreeMap<u64, MemberRecord>>, usize) {
    let mut heard = heard.lock().unwrap();
    (
        std::mem::take(&mut heard.registries),
        std::mem::take(&mut heard.vault_reports),
    )
}

#[test]
fn the_observer_hears_each_change_of_the_registry_once() {
    let (mut machine, disk) = machine();
    let heard = observe(&mut machine);
    machine.publish();
    // An empty registry is not news; the (empty) vault set is reported as before.
    assert_eq!(take(&heard), (vec![], 1));

    apply(&mut machine, 1, &[add(1, "10.0.0.1:7000")]);
    machine.publish();
    let one = BTreeMap::from([(1, voter("10.0.0.1:7000"))]);
    // A registry change alone does not report vaults.
    assert_eq!(take(&heard), (vec![one.clone()], 0));
    machine.publish();
    assert_eq!(take(&heard), (vec![], 0));

    // Changing nothing, or being refused, is not a change.
    apply(
        &mut machine,
        2,
        &[add(1, "10.0.0.1:7000"), add(0, "10.0.0.1:1"), remove(1)],
    );
    machine.drained();
    assert_eq!(take(&heard), (vec![], 0));

    // Two changes in one drain: heard once, as the registry after both.
    apply(&mut machine, 5, &[add(2, "10.0.0.2:7000"), remove(9)]);
    apply_entries(&mut machine, 7, &encoded(&prologue()[..1], 7));
    machine.drained();
    let three = BTreeMap::from([
        (1, voter("10.0.0.1:7000")),
        (2, voter("10.0.0.2:7000")),
        (9, gone("")),
    ]);
    assert_eq!(take(&heard), (vec![three.clone()], 1));

    // A new observer of a reopened machine hears the registry it read from disk.
    drop(machine);
    let mut reopened = disk.open();
    let heard = observe(&mut reopened);
    reopened.publish();
    assert_eq!(take(&heard), (vec![three.clone()], 1));

    // A restore is a change, even to an empty registry.
    let (empty, _) = crate::common::machine();
    reopened.restore(&empty.snapshot());
    reopened.publish();
    assert_eq!(take(&heard), (vec![BTreeMap::new()], 1));
}

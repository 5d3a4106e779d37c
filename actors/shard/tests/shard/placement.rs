//! Vault placement in the shard machine: the least-loaded data shard, ties to the lowest
//! id; idempotent retries; refusals that carry their catalog errors; unplacing; durability
//! across restarts; snapshots in every format; and what the observer hears.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use inferadb_protocols::VaultId;
use inferadb_raft::group::StateMachine;
use inferadb_shard::observer::{ShardObserver, VaultChange};
use inferadb_shard::snapshot::{SNAPSHOT_FORMAT_NO_FENCES, SNAPSHOT_FORMAT_NO_PLACEMENTS};
use inferadb_shard::{Placement, ShardAnswer, ShardCommand, ShardMachine};
use inferadb_vault::CatalogError;

use crate::common::{apply_entries, encoded, fingerprint, machine, prologue};

fn place(id: u64, name: &str, data_shards: u32) -> ShardCommand {
    ShardCommand::PlaceVault {
        id: VaultId(id),
        name: name.into(),
        data_shards,
    }
}

fn unplace(id: u64) -> ShardCommand {
    ShardCommand::UnplaceVault { id: VaultId(id) }
}

fn placed(id: u64, shard: u64) -> ShardAnswer {
    ShardAnswer::VaultPlaced {
        id: VaultId(id),
        shard,
    }
}

/// Applies commands from index `first` on; returns the answers.
fn apply(machine: &mut ShardMachine, first: u64, commands: &[ShardCommand]) -> Vec<ShardAnswer> {
    let entries: Vec<Vec<u8>> = commands.iter().map(ShardCommand::encode).collect();
    apply_entries(machine, first, &entries)
}

/// The table as (id, name, shard) triples.
fn table(machine: &ShardMachine) -> Vec<(u64, String, u64)> {
    machine
        .placements()
        .iter()
        .map(|(id, placement)| (id.0, placement.name.clone(), placement.shard))
        .collect()
}

fn kind(answer: &ShardAnswer) -> &str {
    match answer {
        ShardAnswer::Refused { kind, .. } => kind,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn placement_picks_the_least_loaded_shard_with_ties_to_the_lowest_id() {
    let (mut machine, _) = machine();
    let answers = apply(
        &mut machine,
        1,
        &[
            // Three shards, all empty: 1, then 2, then 3, then round again.
            place(10, "a", 3),
            place(11, "b", 3),
            place(12, "c", 3),
            place(13, "d", 3),
            // Shard 1 holds two, 2 and 3 one each: 2 is the lowest of the least loaded.
            place(14, "e", 3),
            // The cluster grew to five shards: 4 is empty, the lowest such.
            place(15, "f", 5),
            place(16, "g", 5),
            // Placements on shards beyond a smaller count do not count against it: of
            // shards 1..=2, both hold two; 1 is the lowest.
            place(17, "h", 2),
        ],
    );
    assert_eq!(
        answers,
        [
            placed(10, 1),
            placed(11, 2),
            placed(12, 3),
            placed(13, 1),
            placed(14, 2),
            placed(15, 4),
            placed(16, 5),
            placed(17, 1),
        ]
    );
    // An unplacement frees a slot that the next placement fills.
    let answers = apply(&mut machine, 9, &[unplace(12), place(18, "i", 5)]);
    assert_eq!(
        answers,
        [
            ShardAnswer::VaultUnplaced { id: VaultId(12) },
            placed(18, 3)
        ]
    );
    // A huge cluster costs nothing: the lowest empty shard is found by the table's size.
    assert_eq!(
        apply(&mut machine, 11, &[place(19, "j", u32::MAX)]),
        [placed(19, 6)]
    );
    assert_eq!(machine.placements().len(), 9);
    assert_eq!(machine.applied_index(), 11);
}

#[test]
fn placing_again_answers_the_same_shard_and_taken_names_and_ids_are_refused() {
    let (mut machine, _) = machine();
    let answers = apply(
        &mut machine,
        1,
        &[
            place(1, "alpha", 4),
            place(2, "beta", 4),
            // A retry of the first: the same shard, whatever the shard count says now.
            place(1, "alpha", 4),
            place(1, "alpha", 9),
            place(3, "alpha", 4),
            place(1, "gamma", 4),
            place(4, "", 4),
            place(4, "bad\nname", 4),
            place(4, "delta", 0),
            unplace(9),
        ],
    );
    assert_eq!(
        answers[..4],
        [placed(1, 1), placed(2, 2), placed(1, 1), placed(1, 1)]
    );
    let kinds: Vec<&str> = answers[4..].iter().map(kind).collect();
    assert_eq!(
        kinds,
        [
            "vault_name_taken",
            "vault_id_taken",
            "vault_name_invalid",
            "vault_name_invalid",
            "placement_invalid",
            "vault_not_found",
        ]
    );
    // The refusals carry the catalog's own errors, as `CreateVault`'s do.
    assert!(matches!(
        answers[4].catalog_error(),
        Some(CatalogError::NameTaken { name, existing: VaultId(1) }) if name == "alpha"
    ));
    assert!(matches!(
        answers[5].catalog_error(),
        Some(CatalogError::IdTaken { id: VaultId(1) })
    ));
    assert!(matches!(
        answers[6].catalog_error(),
        Some(CatalogError::NameInvalid { rule }) if rule == "must be 1 to 128 bytes long"
    ));
    assert!(matches!(
        answers[7].catalog_error(),
        Some(CatalogError::NameInvalid { rule }) if rule == "must not contain control characters"
    ));
    assert!(matches!(
        &answers[8],
        ShardAnswer::Refused { message, detail, .. }
            if detail.is_empty() && message.contains("data_shards is 0")
    ));
    assert!(matches!(
        answers[9].catalog_error(),
        Some(CatalogError::VaultNotFound { id: VaultId(9) })
    ));
    // Nothing refused changed the table.
    assert_eq!(
        table(&machine),
        [(1, "alpha".into(), 1), (2, "beta".into(), 2)]
    );
    assert_eq!(machine.applied_index(), 10);
}

#[test]
fn unplacing_frees_the_name_for_another_vault() {
    let (mut machine, _) = machine();
    let answers = apply(
        &mut machine,
        1,
        &[
            place(1, "alpha", 2),
            unplace(1),
            unplace(1),
            place(2, "alpha", 2),
        ],
    );
    assert_eq!(answers[0], placed(1, 1));
    assert_eq!(answers[1], ShardAnswer::VaultUnplaced { id: VaultId(1) });
    assert_eq!(kind(&answers[2]), "vault_not_found");
    assert_eq!(answers[3], placed(2, 1));
    assert_eq!(table(&machine), [(2, "alpha".into(), 1)]);
}

#[test]
fn placements_survive_a_reopen_and_old_entries_are_skipped() {
    let (mut member, disk) = machine();
    let commands = [
        place(1, "alpha", 3),
        place(2, "beta", 3),
        place(3, "gamma", 3),
        unplace(2),
    ];
    apply(&mut member, 1, &commands);
    let before = fingerprint(&member);
    drop(member);
    let mut reopened = disk.open();
    assert_eq!(fingerprint(&reopened), before);
    assert_eq!(
        table(&reopened),
        [(1, "alpha".into(), 1), (3, "gamma".into(), 3)]
    );
    let answers = apply(&mut reopened, 1, &commands);
    assert!(answers
        .iter()
        .all(|answer| *answer == ShardAnswer::AlreadyApplied));
    // The reopened table decides the next placement as the original would have.
    assert_eq!(
        apply(&mut reopened, 5, &[place(4, "delta", 3)]),
        [placed(4, 2)]
    );
}

#[test]
fn a_snapshot_carries_the_placements() {
    let (mut source, _) = machine();
    apply_entries(&mut source, 1, &encoded(&prologue(), 1));
    apply(
        &mut source,
        5,
        &[
            place(1, "alpha", 2),
            place(2, "beta", 2),
            place(3, "gamma", 2),
        ],
    );
    let (mut target, target_disk) = machine();
    apply(
        &mut target,
        1,
        &[place(7, "other", 1), place(8, "alpha", 1)],
    );
    let snapshot = source.snapshot();
    assert_eq!(snapshot[0], SNAPSHOT_FORMAT_NO_FENCES);
    target.restore(&snapshot);
    assert_eq!(target.fatal(), None);
    assert_eq!(fingerprint(&target), fingerprint(&source));
    assert_eq!(target.snapshot(), snapshot);
    // Both go on identically, and the restored table is durable.
    let next = [place(4, "delta", 2), unplace(1), place(5, "alpha", 2)];
    assert_eq!(apply(&mut target, 8, &next), apply(&mut source, 8, &next));
    assert_eq!(
        table(&target),
        [
            (2, "beta".into(), 2),
            (3, "gamma".into(), 1),
            (4, "delta".into(), 2),
            (5, "alpha".into(), 1),
        ]
    );
    drop(target);
    assert_eq!(fingerprint(&target_disk.open()), fingerprint(&source));
}

#[test]
fn older_snapshot_formats_restore_with_no_placements() {
    // A source with members but no placements writes the format before placements.
    let (mut source, _) = machine();
    apply(
        &mut source,
        1,
        &[ShardCommand::AddMember {
            id: 1,
            address: "10.0.0.1:7000".into(),
        }],
    );
    let three = source.snapshot();
    assert_eq!(three[0], SNAPSHOT_FORMAT_NO_PLACEMENTS);
    let (empty, _) = machine();
    let two = empty.snapshot();
    assert_eq!(two[0], 2);
    for old in [&three, &two] {
        let (mut target, target_disk) = machine();
        apply(&mut target, 1, &[place(7, "other", 1)]);
        target.restore(old);
        assert_eq!(target.fatal(), None);
        assert!(target.placements().is_empty());
        drop(target);
        assert!(target_disk.open().placements().is_empty());
    }

    // Format 4 with no placements decodes as its format-3 twin, and re-encodes as it.
    let mut four = three.clone();
    four[0] = SNAPSHOT_FORMAT_NO_FENCES;
    four.extend_from_slice(&0u32.to_be_bytes());
    let (mut target, _) = machine();
    target.restore(&four);
    assert_eq!(target.fatal(), None);
    assert_eq!(fingerprint(&target), fingerprint(&source));
    assert_eq!(target.snapshot(), three);
}

#[test]
fn a_snapshot_with_bad_placements_stops_the_machine() {
    let (mut source, _) = machine();
    apply(&mut source, 1, &[place(1, "ab", 1), place(2, "cd", 1)]);
    let snapshot = source.snapshot();
    // The tail is two placements of u64 id ‖ u64 shard ‖ u32 length ‖ 2 name bytes.
    let second = snapshot.len() - 22;
    let first = second - 22;
    let restore = |bytes: &[u8]| {
        let (mut target, _) = machine();
        target.restore(bytes);
        target.fatal().map(str::to_owned)
    };
    assert_eq!(restore(&snapshot), None);
    let mut zero_shard = snapshot.clone();
    zero_shard[second + 8..second + 16].copy_from_slice(&0u64.to_be_bytes());
    let fatal = restore(&zero_shard).unwrap();
    assert!(fatal.contains("shard 0"), "{fatal}");
    let mut same_name = snapshot.clone();
    same_name[second + 20..second + 22].copy_from_slice(b"ab");
    let fatal = restore(&same_name).unwrap();
    assert!(fatal.contains("both placed as `ab`"), "{fatal}");
    let mut out_of_order = snapshot.clone();
    out_of_order[first..first + 8].copy_from_slice(&5u64.to_be_bytes());
    let fatal = restore(&out_of_order).unwrap();
    assert!(fatal.contains("placements"), "{fatal}");
    let mut bad_name = snapshot.clone();
    bad_name[second + 21] = b'\n';
    let fatal = restore(&bad_name).unwrap();
    assert!(fatal.contains("control characters"), "{fatal}");
}

/// What an observer heard: each placement table it was given, and how many vault reports.
#[derive(Default)]
struct Heard {
    tables: Vec<BTreeMap<VaultId, Placement>>,
    vault_reports: usize,
}

struct Recorder(Arc<Mutex<Heard>>);

impl ShardObserver for Recorder {
    fn changed(&mut self, _changes: Vec<VaultChange<'_>>, _membership: bool) {
        self.0.lock().unwrap().vault_reports += 1;
    }

    fn placements_changed(&mut self, placements: &BTreeMap<VaultId, Placement>) {
        self.0.lock().unwrap().tables.push(placements.clone());
    }
}

fn observe(machine: &mut ShardMachine) -> Arc<Mutex<Heard>> {
    let heard = Arc::new(Mutex::new(Heard::default()));
    machine.set_observer(Box::new(Recorder(Arc::clone(&heard))));
    heard
}

/// The tables heard since the last call, and the vault reports.
fn take(heard: &Mutex<Heard>) -> (Vec<BTreeMap<VaultId, Placement>>, usize) {
    let mut heard = heard.lock().unwrap();
    (
        std::mem::take(&mut heard.tables),
        std::mem::take(&mut heard.vault_reports),
    )
}

fn at(shard: u64, name: &str) -> Placement {
    Placement {
        name: name.into(),
        shard,
    }
}

#[test]
fn the_observer_hears_each_change_of_the_placements_once() {
    let (mut machine, disk) = machine();
    let heard = observe(&mut machine);
    machine.publish();
    // No placements is not news; the (empty) vault set is reported as before.
    assert_eq!(take(&heard), (vec![], 1));

    apply(&mut machine, 1, &[place(1, "alpha", 2)]);
    machine.publish();
    let one = BTreeMap::from([(VaultId(1), at(1, "alpha"))]);
    assert_eq!(take(&heard), (vec![one.clone()], 0));
    machine.publish();
    assert_eq!(take(&heard), (vec![], 0));

    // A retry, a refusal, or an unknown id changes nothing.
    apply(
        &mut machine,
        2,
        &[place(1, "alpha", 2), place(2, "alpha", 2), unplace(5)],
    );
    machine.drained();
    assert_eq!(take(&heard), (vec![], 0));

    // Two changes in one drain: heard once, as the table after both.
    apply(
        &mut machine,
        5,
        &[place(2, "beta", 2), place(3, "gamma", 2)],
    );
    machine.drained();
    let three = BTreeMap::from([
        (VaultId(1), at(1, "alpha")),
        (VaultId(2), at(2, "beta")),
        (VaultId(3), at(1, "gamma")),
    ]);
    assert_eq!(take(&heard), (vec![three.clone()], 0));

    // A new observer of a reopened machine hears the table it read from disk.
    drop(machine);
    let mut reopened = disk.open();
    let heard = observe(&mut reopened);
    reopened.publish();
    assert_eq!(take(&heard), (vec![three], 1));

    // A restore is a change, even to no placements.
    let (empty, _) = crate::common::machine();
    reopened.restore(&empty.snapshot());
    reopened.publish();
    assert_eq!(take(&heard), (vec![BTreeMap::new()], 1));
}

//! Three replicas applying the same entries end in the same state with the same answers.

use inferadb_raft::group::StateMachine;
use inferadb_shard::{GroupItem, ShardAnswer};
use proptest::prelude::*;

use inferadb_shard::ShardOptions;

use crate::common::{
    apply_entries, encoded, fingerprint, machine, prologue_with_lease, specs, Disk,
};

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn replicas_applying_the_same_entries_agree_on_answers_blocks_and_roots(random in specs(40)) {
        let all: Vec<_> = prologue_with_lease().into_iter().chain(random).collect();
        let entries = encoded(&all, 1);
        let mut replicas: Vec<_> = (0..3).map(|_| machine().0).collect();
        let answers: Vec<Vec<ShardAnswer>> = replicas
            .iter_mut()
            .map(|replica| apply_entries(replica, 1, &entries))
            .collect();
        prop_assert_eq!(&answers[0], &answers[1]);
        prop_assert_eq!(&answers[0], &answers[2]);
        for answer in &answers[0] {
            prop_assert!(
                !matches!(answer, ShardAnswer::Fatal { .. } | ShardAnswer::AlreadyApplied),
                "{:?}", answer
            );
            prop_assert!(details_decode(answer), "{:?}", answer);
        }
        let first = fingerprint(&replicas[0]);
        prop_assert_eq!(first.0, entries.len() as u64);
        for replica in &replicas[1..] {
            prop_assert_eq!(&fingerprint(replica), &first);
            // The fingerprint holds the registry and the placements; the target the shell
            // reads agrees too.
            prop_assert_eq!(replica.members(), replicas[0].members());
            prop_assert_eq!(replica.placements(), replicas[0].placements());
            prop_assert_eq!(replica.membership_target(), replicas[0].membership_target());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    /// Raft cuts each replica's committed entries into batches differently, and the machine
    /// merges runs of writes into one transaction: whatever the cuts and the merge limit,
    /// answers, blocks, roots and every table equal applying the entries one by one. Each
    /// cut is applied twice, as a replay after a restart re-delivers entries.
    #[test]
    fn applying_entries_in_batches_equals_applying_them_one_by_one(
        random in specs(60),
        cuts in prop::collection::vec(1..12usize, 1..8),
        merge_batches_max in prop_oneof![Just(1usize), 2..8usize, Just(1024usize)],
    ) {
        let all: Vec<_> = prologue_with_lease().into_iter().chain(random).collect();
        let entries = encoded(&all, 1);
        let (mut serial, _) = machine();
        let one_by_one = apply_entries(&mut serial, 1, &entries);
        let disk = Disk::new();
        let mut batched = disk.open_with(ShardOptions {
            merge_batches_max,
            ..ShardOptions::default()
        });
        let mut answers = Vec::new();
        let mut next = 0;
        for len in cuts.iter().cycle() {
            if next >= entries.len() {
                break;
            }
            let end = (next + len).min(entries.len());
            let slice: Vec<(u64, &[u8])> = (next..end)
                .map(|offset| (offset as u64 + 1, entries[offset].as_slice()))
                .collect();
            answers.extend(batched.apply_entries(&slice));
            let again = batched.apply_entries(&slice);
            prop_assert!(again.iter().all(|answer| *answer == ShardAnswer::AlreadyApplied));
            next = end;
        }
        prop_assert_eq!(&answers, &one_by_one);
        prop_assert_eq!(fingerprint(&batched), fingerprint(&serial));
        prop_assert_eq!(batched.members(), serial.members());
        prop_assert_eq!(batched.placements(), serial.placements());
    }
}

/// Every refusal of a vault, schema, write or catalog rule carries its error, decodable
/// as exactly one family; lease (`lease_fenced` included) and member refusals,
/// `placement_invalid`, malformed commands and oversized groups carry none.
fn details_decode(answer: &ShardAnswer) -> bool {
    match answer {
        ShardAnswer::Refused { kind, detail, .. } => {
            let bare = kind == "malformed_command"
                || kind == "group_too_large"
                || kind == "placement_invalid"
                || kind.starts_with("lease")
                || kind.starts_with("member");
            let decoded = [
                answer.write_error().is_some(),
                answer.schema_error().is_some(),
                answer.catalog_error().is_some(),
            ];
            if bare {
                detail.is_empty()
            } else {
                decoded.iter().filter(|decoded| **decoded).count() == 1
            }
        }
        ShardAnswer::WroteGroup { results } => results.iter().all(|item| match item {
            GroupItem::Written { .. } => item.write_error().is_none(),
            GroupItem::Refused { .. } => item.write_error().is_some(),
        }),
        _ => true,
    }
}

#[test]
fn refusals_change_nothing_and_say_why() {
    use inferadb_protocols::VaultId;
    use inferadb_shard::ShardCommand;

    let (mut machine, _) = machine();
    let create = |name: &str, id| ShardCommand::CreateVault {
        id: VaultId(id),
        name: name.into(),
        now_ms: 5,
    };
    let kinds: Vec<String> = [
        create("a", 1),
        create("a", 2),
        create("b", 1),
        create("", 3),
        ShardCommand::DeploySchema {
            vault: VaultId(9),
            text: "type user {}".into(),
            now_ms: 6,
        },
        ShardCommand::DeploySchema {
            vault: VaultId(1),
            text: "type {".into(),
            now_ms: 6,
        },
        ShardCommand::Write {
            vault: VaultId(1),
            batch: Default::default(),
            now_ms: 7,
        },
        ShardCommand::DeleteVault { id: VaultId(2) },
    ]
    .iter()
    .enumerate()
    .map(
        |(offset, command)| match machine.apply_command(offset as u64 + 1, &command.encode()) {
            ShardAnswer::Refused { kind, .. } => kind,
            other => format!("{other:?}"),
        },
    )
    .collect();
    assert_eq!(
        kinds,
        [
            "VaultCreated { id: VaultId(1), name: \"a\", created_at_ms: 5 }",
            "vault_name_taken",
            "vault_id_taken",
            "vault_name_invalid",
            "vault_not_found",
            "schema_invalid",
            "no_schema",
            "vault_not_found",
        ]
    );
    assert_eq!(machine.vault_ids(), vec![VaultId(1)]);
    assert_eq!(machine.vault(VaultId(1)).unwrap().revision().0, 0);
    assert_eq!(machine.applied_index(), 8);
    // Malformed bytes are refused too; an entry at or below the applied index is skipped.
    assert!(matches!(
        machine.apply_command(9, &[1, 42]),
        ShardAnswer::Refused { kind, .. } if kind == "malformed_command"
    ));
    assert_eq!(
        machine.apply_command(9, &create("z", 7).encode()),
        ShardAnswer::AlreadyApplied
    );
    assert_eq!(machine.vault_ids(), vec![VaultId(1)]);
}

#[test]
fn schema_and_catalog_refusals_carry_their_errors() {
    use inferadb_protocols::VaultId;
    use inferadb_shard::ShardCommand;
    use inferadb_vault::{CatalogError, SchemaError};

    let (mut machine, _) = machine();
    let mut apply =
        |index: u64, command: ShardCommand| machine.apply_command(index, &command.encode());
    let create = |name: &str, id| ShardCommand::CreateVault {
        id: VaultId(id),
        name: name.into(),
        now_ms: 5,
    };
    apply(1, create("a", 1));
    let taken = apply(2, create("a", 2));
    assert!(matches!(
        taken.catalog_error(),
        Some(CatalogError::NameTaken { name, existing: VaultId(1) }) if name == "a"
    ));
    assert!(taken.write_error().is_none() && taken.schema_error().is_none());
    let invalid = apply(3, create("", 3));
    assert!(matches!(
        invalid.catalog_error(),
        Some(CatalogError::NameInvalid { rule }) if rule == "must be 1 to 128 bytes long"
    ));
    let text = "type user {}\ntype doc { relation owner: nobody }";
    let refused = apply(
        4,
        ShardCommand::DeploySchema {
            vault: VaultId(1),
            text: text.into(),
            now_ms: 6,
        },
    );
    let decoded = refused.schema_error().unwrap();
    let ShardAnswer::Refused { message, .. } = &refused else {
        panic!("{refused:?}");
    };
    // The message is the error's text, diagnostics and all: the decoded error prints it.
    assert_eq!(&decoded.to_string(), message);
    assert!(
        matches!(&decoded, SchemaError::Invalid(diagnostics) if !diagnostics.errors.is_empty())
    );
    let problem = &decoded.problems()[0];
    assert_eq!((problem.line, problem.code), (2, "unknown-type"));
    assert!(refused.catalog_error().is_none() && refused.write_error().is_none());
}

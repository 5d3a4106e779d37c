//! Group commit of transactions: `write_group` must give exactly what applying the same
//! batches one by one gives (results, revisions, state, ledger), whatever fails in between.

use inferadb_vault::{Precondition, PreconditionKind, WriteBatch, WriteError};
use proptest::prelude::*;

use crate::common::vault_with_schema;
use crate::model::{absolute, filter, mutation};

fn precondition() -> impl Strategy<Value = Precondition> {
    (any::<bool>(), filter()).prop_map(|(must_match, filter)| Precondition {
        kind: if must_match {
            PreconditionKind::MustMatch
        } else {
            PreconditionKind::MustNotMatch
        },
        filter,
    })
}

fn batch() -> impl Strategy<Value = (Vec<inferadb_vault::Mutation>, Vec<Precondition>)> {
    (
        proptest::collection::vec(mutation(), 0..6),
        proptest::collection::vec(precondition(), 0..2),
    )
}

/// An error's kind, for comparing results across two vaults.
fn kind(error: &WriteError) -> String {
    format!("{error:?}")
        .split([' ', '{', '('])
        .next()
        .unwrap()
        .to_string()
}

type Results = [Result<inferadb_vault::WriteOutcome, WriteError>];

/// The group's results are the serial ones: the same outcomes, or errors of the same kind.
fn same_results(together: &Results, one_by_one: &Results) -> Result<(), TestCaseError> {
    prop_assert_eq!(together.len(), one_by_one.len());
    for (group_result, serial_result) in together.iter().zip(one_by_one) {
        match (group_result, serial_result) {
            (Ok(group_outcome), Ok(serial_outcome)) => {
                prop_assert_eq!(group_outcome, serial_outcome);
            }
            (Err(group_error), Err(serial_error)) => {
                prop_assert_eq!(kind(group_error), kind(serial_error));
            }
            (group_result, serial_result) => {
                prop_assert!(
                    false,
                    "group {:?} vs serial {:?}",
                    group_result,
                    serial_result
                );
            }
        }
    }
    Ok(())
}

/// The two vaults stand at the same revision, head and state root.
fn same_state(
    grouped: &inferadb_vault::Vault,
    serial: &inferadb_vault::Vault,
) -> Result<(), TestCaseError> {
    prop_assert_eq!(grouped.revision(), serial.revision());
    prop_assert_eq!(grouped.head_hash(), serial.head_hash());
    prop_assert_eq!(grouped.state_root(), serial.state_root());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn a_group_equals_its_batches_applied_one_by_one(
        groups in proptest::collection::vec(proptest::collection::vec(batch(), 1..6), 1..4),
    ) {
        let (_grouped_db, mut grouped) = vault_with_schema();
        let (_serial_db, mut serial) = vault_with_schema();
        for (step, group) in groups.into_iter().enumerate() {
            let now_ms = 100 + 10 * step as u64;
            let batches: Vec<WriteBatch> = group
                .into_iter()
                .map(|(mutations, preconditions)| WriteBatch {
                    mutations: absolute(mutations, now_ms),
                    preconditions,
                })
                .collect();
            let one_by_one: Vec<_> = batches
                .iter()
                .map(|batch| serial.write(batch.clone(), now_ms))
                .collect();
            let together = grouped.write_group(batches, now_ms);
            same_results(&together, &one_by_one)?;
            same_state(&grouped, &serial)?;
        }
        let report = grouped.snapshot().unwrap().verify_ledger().unwrap();
        prop_assert!(report.holds, "{:?}", report.problems);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// A shard merges consecutive replicated writes, each with its own time, into one
    /// transaction: the result must be what applying each at its time gives, expiries
    /// included (a later batch may see an earlier one's relationship expired).
    #[test]
    fn a_timed_group_equals_its_batches_applied_one_by_one_at_their_times(
        group in proptest::collection::vec((batch(), 0u64..40), 1..10),
    ) {
        let (_grouped_db, mut grouped) = vault_with_schema();
        let (_serial_db, mut serial) = vault_with_schema();
        let mut now_ms = 100;
        let mut timed = Vec::new();
        for ((mutations, preconditions), step_ms) in group {
            now_ms += step_ms;
            let batch = WriteBatch {
                mutations: absolute(mutations, now_ms),
                preconditions,
            };
            timed.push((batch, now_ms));
        }
        let one_by_one: Vec<_> = timed
            .iter()
            .map(|(batch, now_ms)| serial.write(batch.clone(), *now_ms))
            .collect();
        let together = grouped.write_group_timed(timed);
        same_results(&together, &one_by_one)?;
        same_state(&grouped, &serial)?;
    }
}

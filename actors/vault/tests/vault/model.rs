//! Random batches applied to a vault and to a reference model (a map of relationships):
//! after every batch the snapshot's reader, paged reads, the ledger and a reopened vault
//! must agree with the model.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::ControlFlow;
use std::sync::Arc;

use inferadb_evaluator::{ObjectKey, RelationshipReader, SubjectFilter, SubjectKey};
use inferadb_protocols::{Relationship, SubjectRef};
use inferadb_vault::keys::forward_key;
use inferadb_vault::{
    Mutation, RelationshipFilter, Vault, VaultOptions, VaultSnapshot, WriteBatch,
};
use proptest::prelude::*;

use crate::common::{vault_with_schema, VAULT};

/// The id a short name stands for: `d1`, `d2`, `g1` and `u2` are long ids (index keys hold
/// them shortened), and `d1` and `d2` share every byte a shortened id keeps.
pub(crate) fn id(name: &str) -> String {
    match name {
        "d1" => format!("{}d1", "L".repeat(400)),
        "d2" => format!("{}d2", "L".repeat(1022)),
        "g1" => format!("{}g1", "G".repeat(300)),
        "u2" => "U".repeat(1024),
        other => other.to_owned(),
    }
}

/// Every relationship the test schema accepts over a few ids.
fn universe() -> Vec<String> {
    let mut all = Vec::new();
    for doc in 0..3 {
        let doc = id(&format!("d{doc}"));
        for user in 0..3 {
            let user = id(&format!("u{user}"));
            all.push(format!("doc:{doc}#owner@user:{user}"));
            all.push(format!("doc:{doc}#viewer@user:{user}"));
        }
        all.push(format!("doc:{doc}#viewer@user:*"));
        for group in 0..2 {
            let group = id(&format!("g{group}"));
            all.push(format!("doc:{doc}#viewer@group:{group}#member"));
        }
    }
    for group in 0..2 {
        let group = id(&format!("g{group}"));
        for user in 0..3 {
            let user = id(&format!("u{user}"));
            all.push(format!("group:{group}#member@user:{user}"));
        }
        for inner in 0..2 {
            let inner = id(&format!("g{inner}"));
            all.push(format!("group:{group}#member@group:{inner}#member"));
        }
    }
    all
}

fn relationship() -> impl Strategy<Value = Relationship> {
    let texts = universe();
    (
        0..texts.len(),
        prop_oneof![Just(None), (1u64..40).prop_map(Some)],
    )
        .prop_map(move |(index, offset)| {
            let mut relationship: Relationship = texts[index].parse().unwrap();
            relationship.expires_at_ms = offset; // made absolute when applied
            relationship
        })
}

pub(crate) fn filter() -> impl Strategy<Value = RelationshipFilter> {
    let pick =
        |options: &'static [&'static str]| proptest::option::of(proptest::sample::select(options));
    (
        pick(&["doc", "group"]),
        pick(&["d0", "d1", "d2", "g0", "g1"]),
        pick(&["viewer", "member", "owner"]),
        pick(&["user", "group"]),
        pick(&["u0", "u2", "*", "g0", "g1"]),
        pick(&["member"]),
    )
        .prop_map(|(rt, rid, rel, st, sid, srel)| RelationshipFilter {
            resource_type: rt.map(|t| t.parse().unwrap()),
            resource_id: rt.and(rid).map(|i| id(i).parse().unwrap()),
            relation: rel.map(|r| r.parse().unwrap()),
            subject_type: st.map(|t| t.parse().unwrap()),
            subject_id: st.and(sid).map(id),
            subject_relation: srel.map(|r| r.parse().unwrap()),
        })
}

pub(crate) fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => relationship().prop_map(Mutation::Create),
        4 => relationship().prop_map(Mutation::Touch),
        3 => relationship().prop_map(Mutation::Delete),
        1 => filter().prop_map(Mutation::DeleteMatching),
    ]
}

type Model = BTreeMap<Vec<u8>, Relationship>;

/// Applies a batch to the model; `None` when the vault must refuse it, else the new model
/// and whether any mutation had an effect (then the vault records a block, even when later
/// mutations undo it: the ledger records operations, not net differences).
fn apply(model: &Model, mutations: &[Mutation], now_ms: u64) -> Option<(Model, bool)> {
    let mut next = model.clone();
    let mut effective = false;
    for mutation in mutations {
        let before = next.clone();
        match mutation {
            Mutation::Create(r) => {
                let key = forward_key(r);
                if next
                    .get(&key)
                    .is_some_and(|stored| stored.is_live_at(now_ms))
                {
                    return None;
                }
                next.insert(key, r.clone());
            }
            Mutation::Touch(r) => {
                next.insert(forward_key(r), r.clone());
            }
            Mutation::Delete(r) => {
                next.remove(&forward_key(r));
            }
            Mutation::DeleteMatching(f) => next.retain(|_, r| !f.matches(r)),
        }
        effective |= next != before;
    }
    Some((next, effective))
}

fn live(model: &Model, now_ms: u64) -> BTreeSet<String> {
    model
        .values()
        .filter(|r| r.is_live_at(now_ms))
        // Without the expiry suffix: the reader answers which relationships, not until when.
        .map(|r| format!("{}#{}@{}", r.resource, r.relation, r.subject))
        .collect()
}

fn subject_text(subject: SubjectKey<'_>) -> String {
    match subject.subject_relation {
        Some(relation) => format!("{}:{}#{relation}", subject.subject_type, subject.subject_id),
        None => format!("{}:{}", subject.subject_type, subject.subject_id),
    }
}

/// The reader's three methods against the model, over every object, relation and subject.
fn reader_matches(snapshot: &VaultSnapshot, model: &Model, now_ms: u64) {
    let live = live(model, now_ms);
    let objects = [
        ("doc", "d0"),
        ("doc", "d1"),
        ("doc", "d2"),
        ("group", "g0"),
        ("group", "g1"),
    ];
    let mut seen = BTreeSet::new();
    for (object_type, name) in objects {
        let object_id = id(name);
        let object = format!("{object_type}:{object_id}");
        let resource = ObjectKey {
            object_type,
            object_id: &object_id,
        };
        for relation in ["owner", "viewer", "member"] {
            for filter in [
                SubjectFilter::All,
                SubjectFilter::Objects,
                SubjectFilter::Usersets,
            ] {
                let mut found = BTreeSet::new();
                snapshot
                    .for_each_subject(resource, relation, filter, now_ms, &mut |subject, _| {
                        found.insert(format!("{object}#{relation}@{}", subject_text(subject)));
                        ControlFlow::Continue(())
                    })
                    .unwrap();
                let wanted: BTreeSet<String> = live
                    .iter()
                    .filter(|text| text.starts_with(&format!("{object}#{relation}@")))
                    .filter(|text| match filter {
                        SubjectFilter::All => true,
                        SubjectFilter::Objects => text.matches('#').count() == 1,
                        SubjectFilter::Usersets => text.matches('#').count() == 2,
                    })
                    .cloned()
                    .collect();
                assert_eq!(
                    found, wanted,
                    "for_each_subject {object}#{relation} {filter:?}"
                );
                seen.extend(found);
            }
        }
    }
    assert_eq!(seen, live);
    point_and_reverse_reads_match(snapshot, model, &live, now_ms);
}

/// `contains` and `for_each_resource` against the model, for every possible relationship.
fn point_and_reverse_reads_match(
    snapshot: &VaultSnapshot,
    model: &Model,
    live: &BTreeSet<String>,
    now_ms: u64,
) {
    for text in crate::model::universe() {
        let r: Relationship = text.parse().unwrap();
        let resource = ObjectKey {
            object_type: r.resource.object_type.as_ref(),
            object_id: r.resource.object_id.as_ref(),
        };
        let subject = subject_key(&r.subject);
        let found = snapshot
            .contains(resource, r.relation.as_ref(), subject, now_ms)
            .unwrap();
        assert_eq!(found.is_some(), live.contains(&text), "contains {text}");
        let mut resources = BTreeSet::new();
        snapshot
            .for_each_resource(
                subject,
                resource.object_type,
                r.relation.as_ref(),
                now_ms,
                &mut |id, _| {
                    resources.insert(id.to_owned());
                    ControlFlow::Continue(())
                },
            )
            .unwrap();
        let wanted: BTreeSet<String> = model
            .values()
            .filter(|stored| stored.is_live_at(now_ms))
            .filter(|stored| {
                stored.resource.object_type == r.resource.object_type
                    && stored.relation == r.relation
                    && stored.subject == r.subject
            })
            .map(|stored| stored.resource.object_id.to_string())
            .collect();
        assert_eq!(resources, wanted, "for_each_resource of {}", r.subject);
    }
}

fn subject_key(subject: &SubjectRef) -> SubjectKey<'_> {
    match subject {
        SubjectRef::Object(o) => SubjectKey {
            subject_type: o.object_type.as_ref(),
            subject_id: o.object_id.as_ref(),
            subject_relation: None,
        },
        SubjectRef::Userset { object, relation } => SubjectKey {
            subject_type: object.object_type.as_ref(),
            subject_id: object.object_id.as_ref(),
            subject_relation: Some(relation.as_ref()),
        },
        SubjectRef::Wildcard(t) => SubjectKey {
            subject_type: t.as_ref(),
            subject_id: "*",
            subject_relation: None,
        },
    }
}

/// Paged reads (3 at a time) of `filter` equal the model's live matches.
fn reads_match(snapshot: &VaultSnapshot, model: &Model, filter: &RelationshipFilter, now_ms: u64) {
    let mut found = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = snapshot
            .read_relationships(filter, 3, cursor.as_deref(), now_ms)
            .unwrap();
        assert!(page.relationships.len() <= 3);
        found.extend(page.relationships.iter().map(ToString::to_string));
        match page.cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    let wanted: BTreeSet<String> = model
        .values()
        .filter(|r| r.is_live_at(now_ms) && filter.matches(r))
        .map(ToString::to_string)
        .collect();
    let found_set: BTreeSet<String> = found.iter().cloned().collect();
    assert_eq!(
        found.len(),
        found_set.len(),
        "a page repeated a relationship"
    );
    assert_eq!(found_set, wanted, "read_relationships {filter:?}");
}

/// Purges the model as `Vault::purge_expired` does: up to `limit` relationships expired at
/// `now_ms`, soonest expiry first, then in forward-key order; returns how many went.
fn purge_model(model: &mut Model, now_ms: u64, limit: usize) -> usize {
    let mut expired: Vec<(u64, Vec<u8>)> = model
        .iter()
        .filter_map(|(key, r)| {
            r.expires_at_ms
                .filter(|at| *at <= now_ms)
                .map(|at| (at, key.clone()))
        })
        .collect();
    expired.sort();
    expired.truncate(limit);
    for (_, key) in &expired {
        model.remove(key);
    }
    expired.len()
}

pub(crate) fn absolute(mut mutations: Vec<Mutation>, now_ms: u64) -> Vec<Mutation> {
    for mutation in &mut mutations {
        if let Mutation::Create(r) | Mutation::Touch(r) = mutation {
            r.expires_at_ms = r.expires_at_ms.map(|offset| now_ms + offset);
        }
    }
    mutations
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    #[test]
    fn vault_agrees_with_the_model(
        batches in proptest::collection::vec(proptest::collection::vec(mutation(), 0..8), 1..7),
        filters in proptest::collection::vec(filter(), 3),
        purges in proptest::collection::vec(proptest::option::of(0usize..4), 7),
    ) {
        let (db, mut vault) = vault_with_schema();
        let mut model = Model::new();
        for (step, mutations) in batches.into_iter().enumerate() {
            let now_ms = 100 + 10 * step as u64;
            let mutations = absolute(mutations, now_ms);
            let before = vault.revision();
            let expected = apply(&model, &mutations, now_ms);
            let result = vault.write(WriteBatch { mutations, preconditions: Vec::new() }, now_ms);
            match expected {
                None => prop_assert!(result.is_err(), "the vault accepted a batch the model refuses"),
                Some((next, changed)) => {
                    let outcome = result.unwrap();
                    prop_assert_eq!(outcome.revision.0, before.0 + u64::from(changed));
                    prop_assert_eq!(outcome.operations_applied > 0, changed);
                    model = next;
                }
            }
            if let Some(limit) = purges[step] {
                let purge_ms = now_ms + 5;
                let removed = purge_model(&mut model, purge_ms, limit);
                let outcome = vault.purge_expired(purge_ms, limit).unwrap();
                prop_assert_eq!(outcome.removed, removed);
            }
            let snapshot = vault.snapshot().unwrap();
            // Read a little later too, so expiries between batches are exercised.
            for read_ms in [now_ms, now_ms + 7] {
                reader_matches(&snapshot, &model, read_ms);
                for filter in &filters {
                    reads_match(&snapshot, &model, filter, read_ms);
                }
            }
            let report = snapshot.verify_ledger().unwrap();
            prop_assert!(report.holds, "{:?}", report.problems);
            prop_assert_eq!(report.relationships, model.len() as u64);
        }
        let reopened = Vault::open(Arc::clone(&db), VAULT, VaultOptions::default()).unwrap();
        prop_assert_eq!(reopened.revision(), vault.revision());
        prop_assert_eq!(reopened.head_hash(), vault.head_hash());
        prop_assert_eq!(reopened.state_root(), vault.state_root());
        prop_assert_eq!(reopened.schema_versions(), vault.schema_versions());
    }
}

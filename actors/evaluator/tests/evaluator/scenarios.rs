//! Named scenarios: one per operator, per semantic rule of the corpus README, per cycle
//! hazard and per error. Each builds a tiny vault and states the answer a person would
//! derive by hand.

use std::sync::Arc;

use inferadb_evaluator::{
    EvaluationError, Evaluator, EvaluatorLimits, LookupResourcesRequest, LookupSubjectsRequest,
    ModuleError, ModuleRegistry, ModuleRequest, PolicyModule, ReadView,
};
use inferadb_protocols::Revision;

use crate::common::{check, compile, reader, request, view};

const DOCUMENTS: &str = "
type user {}
type group { relation member: user | user:* | group#member }
type folder {
    relation parent: folder
    relation viewer: user | user:* | group#member
    relation banned: user
    permission view = viewer | parent->view
}
type document {
    relation parent: folder
    relation owner: user
    relation editor: user | group#member
    relation reviewer: user
    relation blocked: user | user:*
    permission edit = owner | editor
    permission review = editor & reviewer
    permission view = (edit | parent->view) - blocked
    forbid banned_here = parent->banned
}
";

fn documents() -> Evaluator {
    Evaluator::new(compile(DOCUMENTS))
}

#[test]
fn union_intersection_exclusion_and_arrows() {
    let evaluator = documents();
    let data = reader(&[
        "document:1#owner@user:ann",
        "document:1#editor@user:bob",
        "document:1#reviewer@user:bob",
        "document:1#reviewer@user:cat",
        "document:1#parent@folder:f",
        "folder:f#viewer@user:dan",
        "document:1#blocked@user:dan",
        "folder:f#viewer@user:eve",
    ]);
    assert!(
        check(&evaluator, &data, "document:1#edit@user:ann"),
        "union, first operand"
    );
    assert!(
        check(&evaluator, &data, "document:1#edit@user:bob"),
        "union, second operand"
    );
    assert!(
        check(&evaluator, &data, "document:1#review@user:bob"),
        "intersection, both"
    );
    assert!(
        !check(&evaluator, &data, "document:1#review@user:cat"),
        "intersection, one"
    );
    assert!(
        check(&evaluator, &data, "document:1#view@user:eve"),
        "arrow to the folder"
    );
    assert!(
        !check(&evaluator, &data, "document:1#view@user:dan"),
        "exclusion removes dan"
    );
    assert!(
        !check(&evaluator, &data, "document:1#view@user:zed"),
        "nobody else"
    );
}

#[test]
fn wildcards_grant_unseen_ids_and_exclusion_applies_per_subject() {
    let evaluator = documents();
    let data = reader(&[
        "folder:f#viewer@user:*",
        "document:1#parent@folder:f",
        "document:1#blocked@user:bob",
        "document:2#parent@folder:f",
        "document:2#blocked@user:*",
    ]);
    assert!(check(&evaluator, &data, "folder:f#view@user:never_written"));
    assert!(check(&evaluator, &data, "document:1#view@user:ann"));
    assert!(!check(&evaluator, &data, "document:1#view@user:bob"));
    assert!(
        !check(&evaluator, &data, "document:2#view@user:ann"),
        "banned: user:* denies all"
    );
    assert!(
        check(&evaluator, &data, "folder:f#view@user:*"),
        "a wildcard subject matches a wildcard"
    );
    assert!(!check(&evaluator, &data, "document:2#view@user:*"));
}

#[test]
fn userset_subjects_and_usersets_containing_themselves() {
    let evaluator = documents();
    let data = reader(&[
        "group:eng#member@group:core#member",
        "document:1#editor@group:eng#member",
        "group:core#member@user:ann",
    ]);
    assert!(check(&evaluator, &data, "document:1#edit@group:eng#member"));
    assert!(
        check(&evaluator, &data, "document:1#edit@group:core#member"),
        "reached through eng"
    );
    assert!(
        check(&evaluator, &data, "group:ops#member@group:ops#member"),
        "a userset has itself"
    );
    assert!(!check(
        &evaluator,
        &data,
        "document:1#edit@group:ops#member"
    ));
    assert!(check(&evaluator, &data, "document:1#edit@user:ann"));
}

#[test]
fn forbids_deny_computed_permissions_but_not_direct_relations() {
    let evaluator = documents();
    let data = reader(&[
        "document:1#owner@user:ann",
        "document:1#parent@folder:f",
        "folder:f#banned@user:ann",
    ]);
    assert!(
        check(&evaluator, &data, "document:1#owner@user:ann"),
        "direct relations are data"
    );
    assert!(
        !check(&evaluator, &data, "document:1#edit@user:ann"),
        "computed permissions are denied"
    );
    assert!(check(&evaluator, &data, "document:1#banned_here@user:ann"));
}

#[test]
fn arrows_skip_objects_of_types_without_the_target() {
    let schema = "
        type user {}
        type team { relation admin: user  permission change_name = admin }
        type org { relation member: user }
        type project {
            relation owner: team | org
            permission rename = owner->change_name
        }
    ";
    let evaluator = Evaluator::new(compile(schema));
    let data = reader(&[
        "project:p#owner@org:o",
        "org:o#member@user:ann",
        "project:p#owner@team:t",
        "team:t#admin@user:bob",
    ]);
    assert!(!check(&evaluator, &data, "project:p#rename@user:ann"));
    assert!(check(&evaluator, &data, "project:p#rename@user:bob"));
}

const CYCLES: &str = "
type user {}
type node {
    relation next: node
    relation grant: user
    permission reach = grant | next->reach
}
";

#[test]
fn cycles_without_support_are_false_and_never_hang() {
    let evaluator = Evaluator::new(compile(CYCLES));
    let data = reader(&[
        "node:a#next@node:b",
        "node:b#next@node:a",
        "node:a#next@node:a",
    ]);
    assert!(!check(&evaluator, &data, "node:a#reach@user:ann"));
    assert!(!check(&evaluator, &data, "node:b#reach@user:ann"));
}

/// A node evaluated inside a cycle is first found false under the assumption that the
/// cycle's entry is false; a memo that kept that answer would deny `node:b` below, which
/// reaches `node:c` through `node:a`. Both orders, alone and in one batch.
#[test]
fn answers_computed_inside_a_cycle_are_not_cached_wrongly() {
    let evaluator = Evaluator::new(compile(CYCLES));
    let data = reader(&[
        "node:a#next@node:b",
        "node:a#next@node:c",
        "node:b#next@node:a",
        "node:c#grant@user:ann",
    ]);
    let requests = [
        request("node:a#reach@user:ann"),
        request("node:b#reach@user:ann"),
    ];
    let answers: Vec<bool> = evaluator
        .batch_check(&view(&data), &requests)
        .into_iter()
        .map(|answer| answer.unwrap().allowed)
        .collect();
    assert_eq!(answers, [true, true]);
    let reversed = [requests[1].clone(), requests[0].clone()];
    let answers: Vec<bool> = evaluator
        .batch_check(&view(&data), &reversed)
        .into_iter()
        .map(|answer| answer.unwrap().allowed)
        .collect();
    assert_eq!(answers, [true, true]);
}

#[test]
fn expired_relationships_are_ignored() {
    let evaluator = documents();
    let data = reader(&["document:1#owner@user:ann[expires_at_ms:100]"]);
    let at = |now_ms| ReadView {
        reader: &data,
        vault_id: 1,
        revision: Revision(1),
        now_ms,
    };
    let edit = request("document:1#edit@user:ann");
    assert!(evaluator.check(&at(99), &edit).unwrap().allowed);
    assert!(!evaluator.check(&at(100), &edit).unwrap().allowed);
}

#[test]
fn the_cache_answers_repeats_and_respects_expiry() {
    let evaluator = documents().with_cache(1_000);
    let data = reader(&["document:1#owner@user:ann[expires_at_ms:100]"]);
    let at = |now_ms| ReadView {
        reader: &data,
        vault_id: 1,
        revision: Revision(1),
        now_ms,
    };
    let edit = request("document:1#edit@user:ann");
    assert!(evaluator.check(&at(10), &edit).unwrap().allowed);
    assert!(evaluator.check(&at(20), &edit).unwrap().allowed);
    let stats = evaluator.stats();
    assert_eq!((stats.cache_hits, stats.cache_misses), (1, 1));
    assert!(
        !evaluator.check(&at(100), &edit).unwrap().allowed,
        "the cached answer expired with its relationship"
    );
    let other_revision = ReadView {
        reader: &data,
        vault_id: 1,
        revision: Revision(2),
        now_ms: 10,
    };
    assert!(evaluator.check(&other_revision, &edit).unwrap().allowed);
    assert_eq!(
        evaluator.stats().cache_hits,
        1,
        "another revision is another key"
    );
}

#[test]
fn limits_are_typed_errors_not_denials() {
    let deep = Evaluator::new(compile(CYCLES)).with_limits(EvaluatorLimits {
        depth_max: 3,
        ..EvaluatorLimits::default()
    });
    let chain = reader(&[
        "node:a#next@node:b",
        "node:b#next@node:c",
        "node:c#next@node:d",
        "node:d#grant@user:ann",
    ]);
    let error = deep
        .check(&view(&chain), &request("node:a#reach@user:ann"))
        .unwrap_err();
    assert_eq!(error, EvaluationError::DepthLimitExceeded { depth_max: 3 });
    let poor = Evaluator::new(compile(CYCLES)).with_limits(EvaluatorLimits {
        check_work_budget: 4,
        ..EvaluatorLimits::default()
    });
    let error = poor
        .check(&view(&chain), &request("node:a#reach@user:ann"))
        .unwrap_err();
    assert_eq!(
        error,
        EvaluationError::WorkBudgetExceeded { work_budget: 4 }
    );
    let answers = poor.batch_check(
        &view(&chain),
        &[
            request("node:a#reach@user:ann"),
            request("node:d#grant@user:ann"),
        ],
    );
    assert!(answers[0].is_err());
    assert!(
        answers[1].as_ref().unwrap().allowed,
        "one item's failure leaves the next item intact"
    );
}

#[test]
fn requests_naming_unknown_things_fail_with_the_part_named() {
    let evaluator = documents();
    let data = reader(&[]);
    let error = evaluator
        .check(&view(&data), &request("page:1#view@user:ann"))
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "resource type `page`: no such type in the schema"
    );
    let error = evaluator
        .check(&view(&data), &request("document:1#read@user:ann"))
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "permission `read`: type `document` has no such relation or permission"
    );
    let error = evaluator
        .check(&view(&data), &request("document:1#view@robot:r2"))
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "subject type `robot`: no such type in the schema"
    );
    let error = evaluator
        .check(&view(&data), &request("document:1#view@group:eng#boss"))
        .unwrap_err();
    assert!(
        error.to_string().starts_with("subject relation `boss`"),
        "{error}"
    );
}

struct WeekdaysOnly;

impl PolicyModule for WeekdaysOnly {
    fn evaluate(&self, request: &ModuleRequest<'_>) -> Result<bool, ModuleError> {
        match request.subject.subject_id {
            "broken" => Err(ModuleError {
                message: "trap".to_owned(),
            }),
            id => Ok(id.starts_with("staff")),
        }
    }
}

#[test]
fn modules_are_called_through_the_registry_and_missing_ones_are_errors() {
    let schema = compile("type user {}\ntype door { relation owner: user\n permission open = owner & module(\"hours\") }\n");
    let data = reader(&[
        "door:d#owner@user:staff_ann",
        "door:d#owner@user:bob",
        "door:d#owner@user:broken",
    ]);
    let without = Evaluator::new(Arc::clone(&schema));
    let error = without
        .check(&view(&data), &request("door:d#open@user:staff_ann"))
        .unwrap_err();
    assert_eq!(
        error,
        EvaluationError::ModuleNotLoaded {
            name: "hours".to_owned()
        }
    );
    assert_eq!(error.to_string(), "policy module `hours` is not loaded");
    let mut modules = ModuleRegistry::new();
    modules.register("hours", Arc::new(WeekdaysOnly));
    let with = Evaluator::new(schema).with_modules(modules);
    assert!(check(&with, &data, "door:d#open@user:staff_ann"));
    assert!(!check(&with, &data, "door:d#open@user:bob"));
    assert!(matches!(
        with.check(&view(&data), &request("door:d#open@user:broken")),
        Err(EvaluationError::ModuleFailed { .. })
    ));
}

#[test]
fn a_union_with_a_module_cannot_be_enumerated() {
    let schema = compile("type user {}\ntype door { relation owner: user\n permission open = owner | module(\"hours\") }\n");
    let evaluator = Evaluator::new(schema);
    let data = reader(&[]);
    let request = LookupResourcesRequest {
        resource_type: "door".parse().unwrap(),
        permission: "open".parse().unwrap(),
        subject: "user:ann".parse().unwrap(),
        cursor: None,
        limit: 10,
    };
    let error = evaluator
        .lookup_resources(&view(&data), &request)
        .unwrap_err();
    assert!(
        matches!(error, EvaluationError::NotEnumerable { .. }),
        "{error}"
    );
    let documents = documents();
    let bad_cursor = LookupResourcesRequest {
        resource_type: "document".parse().unwrap(),
        cursor: Some("garbage".to_owned()),
        permission: "view".parse().unwrap(),
        ..request
    };
    let error = documents
        .lookup_resources(&view(&data), &bad_cursor)
        .unwrap_err();
    assert!(
        matches!(&error, EvaluationError::InvalidCursor { cursor, .. } if cursor == "garbage"),
        "{error}"
    );
    assert!(error
        .to_string()
        .contains("not a cursor this evaluator issued"));
}

#[test]
fn lookups_walk_back_from_the_subject_and_report_wildcards() {
    let evaluator = documents();
    let data = reader(&[
        "folder:f#viewer@group:eng#member",
        "group:eng#member@user:ann",
        "document:1#parent@folder:f",
        "document:2#parent@folder:f",
        "document:2#blocked@user:ann",
        "folder:g#viewer@user:*",
        "folder:g#viewer@user:bob",
        "document:3#parent@folder:g",
        "document:3#blocked@user:bob",
    ]);
    let lookup = LookupResourcesRequest {
        resource_type: "document".parse().unwrap(),
        permission: "view".parse().unwrap(),
        subject: "user:ann".parse().unwrap(),
        cursor: None,
        limit: 10,
    };
    let page = evaluator.lookup_resources(&view(&data), &lookup).unwrap();
    assert_eq!(page.resource_ids, ["1", "3"]);
    assert!(page.complete);
    let subjects = LookupSubjectsRequest {
        resource: "document:3".parse().unwrap(),
        permission: "view".parse().unwrap(),
        subject_type: "user".parse().unwrap(),
        subject_relation: None,
    };
    let response = evaluator.lookup_subjects(&view(&data), &subjects).unwrap();
    assert!(response.wildcard);
    assert_eq!(response.excluded_ids, ["bob"]);
}

#[test]
fn expand_and_explain_render_readable_trees() {
    let evaluator = documents();
    let data = reader(&[
        "document:1#parent@folder:f",
        "folder:f#viewer@group:eng#member",
        "group:eng#member@user:ann",
        "document:1#blocked@user:cat",
    ]);
    let tree = evaluator
        .expand(
            &view(&data),
            &"document:1".parse().unwrap(),
            &"view".parse().unwrap(),
        )
        .unwrap()
        .tree;
    let text = tree.to_string();
    assert!(text.contains("folder:f#viewer"), "{text}");
    assert!(text.contains("direct: [user:ann]"), "{text}");
    assert!(tree.contains(&"user:ann".parse().unwrap()));
    let explanation = evaluator
        .explain(&view(&data), &request("document:1#view@user:ann"))
        .unwrap();
    assert!(explanation.allowed);
    let text = explanation.to_string();
    println!("{text}");
    assert!(
        text.starts_with("[allowed] document:1#view = (edit | parent->view) - blocked"),
        "{text}"
    );
    assert!(
        text.contains("relationship group:eng#member@user:ann"),
        "{text}"
    );
    let denied = evaluator
        .explain(&view(&data), &request("document:1#view@user:cat"))
        .unwrap();
    assert!(!denied.allowed);
}

/// A cursor continues exactly the lookup it came from, at the revision it was issued at:
/// reusing it for another subject or at another revision could skip or repeat ids, so it
/// is refused with a message that says why.
#[test]
fn lookup_cursors_are_bound_to_their_lookup_and_revision() {
    let evaluator = documents();
    let data = reader(&[
        "document:1#owner@user:ann",
        "document:2#owner@user:ann",
        "document:3#owner@user:ann",
        "document:3#owner@user:bob",
    ]);
    let first = LookupResourcesRequest {
        resource_type: "document".parse().unwrap(),
        permission: "view".parse().unwrap(),
        subject: "user:ann".parse().unwrap(),
        cursor: None,
        limit: 2,
    };
    let page = evaluator.lookup_resources(&view(&data), &first).unwrap();
    assert_eq!(page.resource_ids, ["1", "2"]);
    let cursor = page.cursor.expect("a cursor for the next page");
    let next = LookupResourcesRequest {
        cursor: Some(cursor.clone()),
        ..first.clone()
    };
    let page = evaluator.lookup_resources(&view(&data), &next).unwrap();
    assert_eq!(
        (page.resource_ids.as_slice(), page.complete),
        (&["3".to_owned()][..], true)
    );
    let other_subject = LookupResourcesRequest {
        subject: "user:bob".parse().unwrap(),
        ..next.clone()
    };
    let error = evaluator
        .lookup_resources(&view(&data), &other_subject)
        .unwrap_err();
    assert!(
        error.to_string().contains("issued for another lookup"),
        "{error}"
    );
    let later = ReadView {
        revision: Revision(2),
        ..view(&data)
    };
    let error = evaluator.lookup_resources(&later, &next).unwrap_err();
    assert!(
        error.to_string().contains("issued at revision 1"),
        "{error}"
    );
}

/// With sub-problem sharing on, a later request reuses a group membership an earlier one
/// computed (a deep nesting chain), and its answers stay exact.
#[test]
fn shared_subproblems_are_reused_across_requests() {
    let schema = "type user {}\ntype group {\n relation member: user | group#member\n}\n\
                  type doc {\n relation viewer: user | group#member\n \
                  permission view = viewer\n}\n";
    let mut relationships = vec!["group:g9#member@user:ann".to_owned()];
    for level in 0..9 {
        relationships.push(format!("group:g{level}#member@group:g{}#member", level + 1));
    }
    for document in 0..5 {
        relationships.push(format!("doc:d{document}#viewer@group:g0#member"));
    }
    let texts: Vec<&str> = relationships.iter().map(String::as_str).collect();
    let data = reader(&texts);
    let limits = inferadb_evaluator::EvaluatorLimits {
        shared_subproblem_work_min: 4,
        ..Default::default()
    };
    let evaluator = Evaluator::new(compile(schema))
        .with_limits(limits)
        .with_cache(1_000);
    for document in 0..5 {
        assert!(check(
            &evaluator,
            &data,
            &format!("doc:d{document}#view@user:ann")
        ));
        assert!(!check(
            &evaluator,
            &data,
            &format!("doc:d{document}#view@user:bob")
        ));
    }
    let stats = evaluator.stats();
    assert!(stats.subproblem_cache_hits >= 8, "{stats:?}");
    let sharing_off = Evaluator::new(compile(schema)).with_cache(1_000);
    assert!(check(&sharing_off, &data, "doc:d1#view@user:ann"));
    assert_eq!(
        sharing_off.stats().subproblem_cache_misses,
        0,
        "no probes when off"
    );
}

/// Userset lookups list the usersets that hold (stored ones and the resource's own), and an
/// unknown subject relation is an error naming it.
#[test]
fn lookup_subjects_lists_usersets_on_request() {
    let schema = "type user {}\ntype group {\n relation member: user | group#member\n}\n\
                  type doc {\n relation viewer: user | group#member\n relation blocked: user | group#member\n \
                  permission view = viewer - blocked\n}\n";
    let evaluator = Evaluator::new(compile(schema));
    let data = reader(&[
        "doc:1#viewer@group:eng#member",
        "doc:1#viewer@group:ops#member",
        "doc:1#blocked@group:ops#member",
        "group:eng#member@group:sub#member",
    ]);
    let request = |relation: &str| LookupSubjectsRequest {
        resource: "doc:1".parse().unwrap(),
        permission: "view".parse().unwrap(),
        subject_type: "group".parse().unwrap(),
        subject_relation: Some(relation.parse().unwrap()),
    };
    let response = evaluator
        .lookup_subjects(&view(&data), &request("member"))
        .unwrap();
    assert_eq!(response.subject_ids, ["eng", "sub"], "ops is blocked");
    assert!(!response.wildcard);
    let error = evaluator
        .lookup_subjects(&view(&data), &request("owner"))
        .unwrap_err();
    assert!(error.to_string().contains("owner"), "{error}");
}

/// A continued lookup reuses the candidates its first page found, but never past the
/// expiry of a relationship they came from: the next page must not list a document whose
/// only grant has expired since (with a plain union, a kept candidate needs no check).
#[test]
fn kept_lookup_candidates_expire_with_their_relationships() {
    let evaluator = Evaluator::new(compile(
        "type user {}\ntype doc {\n relation owner: user\n permission view = owner\n}\n",
    ));
    let data = reader(&[
        "doc:1#owner@user:ann",
        "doc:2#owner@user:ann",
        "doc:3#owner@user:ann[expires_at_ms:10]",
    ]);
    let first = LookupResourcesRequest {
        resource_type: "doc".parse().unwrap(),
        permission: "view".parse().unwrap(),
        subject: "user:ann".parse().unwrap(),
        cursor: None,
        limit: 2,
    };
    let page = evaluator.lookup_resources(&view(&data), &first).unwrap();
    assert_eq!(page.resource_ids, ["1", "2"]);
    let next = LookupResourcesRequest {
        cursor: page.cursor,
        ..first
    };
    let same_time = evaluator.lookup_resources(&view(&data), &next).unwrap();
    assert_eq!(same_time.resource_ids, ["3"]);
    let later = ReadView {
        now_ms: 20,
        ..view(&data)
    };
    let page = evaluator.lookup_resources(&later, &next).unwrap();
    assert!(page.resource_ids.is_empty() && page.complete, "{page:?}");
}

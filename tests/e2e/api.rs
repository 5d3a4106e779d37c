//! The HTTP contract, end to end: one node, one walkthrough per area, and every error case
//! with its status and a message that names the field.

use std::time::Duration;

use inferadb_tests::{wait_until, Node};
use serde_json::json;

use crate::{check, vault_with_schema, write};

fn node() -> (tempfile::TempDir, Node) {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let node = Node::start(directory.path());
    (directory, node)
}

#[test]
fn vaults_are_created_listed_fetched_and_deleted() {
    let (_directory, node) = node();
    let created = node.post("/v1/vaults", &json!({"name": "acme"}));
    assert_eq!(created.status, 201);
    let id = created.json["id"].as_str().unwrap().to_string();
    assert_eq!(created.json["name"], "acme");
    assert!(created.json["created_at"].as_str().unwrap().ends_with('Z'));
    let taken = node.post("/v1/vaults", &json!({"name": "acme"}));
    assert_eq!(taken.status, 409, "{}", taken.text);
    let listed = node.get("/v1/vaults");
    assert_eq!(listed.json["vaults"].as_array().unwrap().len(), 1);
    assert_eq!(node.get(&format!("/v1/vaults/{id}")).json["name"], "acme");
    assert_eq!(node.delete(&format!("/v1/vaults/{id}")).status, 204);
    let gone = node.get(&format!("/v1/vaults/{id}"));
    assert_eq!(gone.status, 404);
    assert_eq!(
        gone.header("content-type"),
        Some("application/problem+json")
    );
    assert!(node.get("/v1/vaults").json["vaults"]
        .as_array()
        .unwrap()
        .is_empty());
}

#[test]
fn schema_deploys_report_every_error_and_refuse_orphans() {
    let (_directory, node) = node();
    let id = vault_with_schema(&node, "schemas");
    let bad = node.put(
        &format!("/v1/vaults/{id}/schema"),
        &json!({"schema": "type user {}\ntype doc {\n relation owner: usr\n permission view = owner | nobody\n}"}),
    );
    assert_eq!(bad.status, 400, "{}", bad.text);
    let errors = bad.json["errors"].as_array().unwrap();
    assert!(errors.len() >= 2, "{}", bad.text);
    assert!(errors
        .iter()
        .all(|error| error["line"].as_u64().unwrap() >= 3));
    assert!(errors
        .iter()
        .any(|error| error["message"].as_str().unwrap().contains("usr")));
    write(&node, &id, &[("document:1", "owner", "user:ann")]);
    let orphaning = node.put(
        &format!("/v1/vaults/{id}/schema"),
        &json!({"schema": "type user {}\ntype document { relation viewer: user }"}),
    );
    assert_eq!(orphaning.status, 409, "{}", orphaning.text);
    assert_eq!(orphaning.json["orphans"][0]["subject"], "user:ann");
    let current = node.get(&format!("/v1/vaults/{id}/schema"));
    assert_eq!(current.json["version"], 1);
    assert!(current.json["schema"]
        .as_str()
        .unwrap()
        .contains("type document"));
    let extended = format!("{}\ntype team {{}}\n", crate::SCHEMA);
    let second = node.put(
        &format!("/v1/vaults/{id}/schema"),
        &json!({"schema": extended}),
    );
    assert_eq!(second.json["version"], 2, "{}", second.text);
    let versions = node.get(&format!("/v1/vaults/{id}/schema/versions"));
    assert_eq!(versions.json["versions"].as_array().unwrap().len(), 2);
}

#[test]
fn checks_batches_lookups_expand_and_explain_agree() {
    let (_directory, node) = node();
    let id = vault_with_schema(&node, "evaluate");
    let token = write(
        &node,
        &id,
        &[
            ("group:eng", "member", "user:ann"),
            ("folder:root", "viewer", "group:eng#member"),
            ("folder:docs", "parent", "folder:root"),
            ("document:a", "parent", "folder:docs"),
            ("document:b", "owner", "user:bob"),
            ("document:c", "parent", "folder:docs"),
            ("document:c", "blocked", "user:ann"),
        ],
    );
    let fresh = json!({"at_least_as_fresh": token});
    let explained = node.post(
        &format!("/v1/vaults/{id}/check"),
        &json!({"resource": "document:a", "permission": "view", "subject": "user:ann",
            "consistency": fresh, "explain": true}),
    );
    assert_eq!(explained.json["allowed"], true, "{}", explained.text);
    let text = explained.json["explanation"]["text"].as_str().unwrap();
    assert!(text.contains("group:eng#member@user:ann"), "{text}");
    assert!(!check(&node, &id, "document:c", "view", "user:ann"));
    let batch = node.post(
        &format!("/v1/vaults/{id}/check/batch"),
        &json!({"checks": [
            {"resource": "document:a", "permission": "view", "subject": "user:ann"},
            {"resource": "document:b", "permission": "view", "subject": "user:ann"},
            {"resource": "document:b", "permission": "nothing", "subject": "user:ann"},
            {"resource": "document:b", "permission": "edit", "subject": "user:bob"},
        ], "consistency": "fully_consistent"}),
    );
    let results = batch.json["results"].as_array().unwrap();
    assert_eq!(results[0]["allowed"], true);
    assert_eq!(results[1]["allowed"], false);
    assert_eq!(results[2]["error"]["status"], 400);
    assert!(results[2]["error"]["type"]
        .as_str()
        .unwrap()
        .ends_with("unknown-name"));
    assert_eq!(results[3]["allowed"], true);
    let mut found = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..10 {
        let mut body = json!({"resource_type": "document", "permission": "view",
            "subject": "user:ann", "limit": 1});
        if let Some(cursor) = &cursor {
            body["cursor"] = json!(cursor);
        }
        let page = node.post(&format!("/v1/vaults/{id}/lookup/resources"), &body);
        assert_eq!(page.status, 200, "{}", page.text);
        for resource in page.json["resources"].as_array().unwrap() {
            found.push(resource.as_str().unwrap().to_string());
        }
        cursor = page.json["cursor"].as_str().map(str::to_string);
        if page.json["complete"] == true {
            break;
        }
    }
    assert_eq!(found, vec!["document:a".to_string()]);
    // A cursor pins its revision: writes between pages do not break the paging.
    write(
        &node,
        &id,
        &[
            ("document:d", "viewer", "user:ann"),
            ("document:e", "viewer", "user:ann"),
        ],
    );
    let first = node.post(
        &format!("/v1/vaults/{id}/lookup/resources"),
        &json!({"resource_type": "document", "permission": "view", "subject": "user:ann", "limit": 1}),
    );
    write(&node, &id, &[("document:f", "viewer", "user:ann")]);
    let second = node.post(
        &format!("/v1/vaults/{id}/lookup/resources"),
        &json!({"resource_type": "document", "permission": "view", "subject": "user:ann",
            "limit": 10, "cursor": first.json["cursor"]}),
    );
    assert_eq!(second.status, 200, "{}", second.text);
    assert_eq!(second.json["revision"], first.json["revision"]);
    assert_eq!(
        second.json["resources"].as_array().unwrap().len(),
        2,
        "{}",
        second.text
    );
    let forged = node.post(
        &format!("/v1/vaults/{id}/lookup/resources"),
        &json!({"resource_type": "document", "permission": "view", "subject": "user:ann",
            "cursor": "v1:1:nonsense"}),
    );
    assert_eq!(forged.status, 400, "{}", forged.text);
    assert_eq!(forged.json["field"], "cursor");
    let subjects = node.post(
        &format!("/v1/vaults/{id}/lookup/subjects"),
        &json!({"resource": "document:a", "permission": "view", "subject_type": "user"}),
    );
    assert_eq!(
        subjects.json["subjects"],
        json!(["user:ann"]),
        "{}",
        subjects.text
    );
    let expanded = node.post(
        &format!("/v1/vaults/{id}/expand"),
        &json!({"resource": "document:b", "permission": "edit"}),
    );
    assert!(expanded.text.contains("user:bob"), "{}", expanded.text);
}

#[test]
fn tokens_preconditions_deletes_and_expiry() {
    let (_directory, node) = node();
    let id = vault_with_schema(&node, "writes");
    let other = vault_with_schema(&node, "other");
    let token = write(&node, &id, &[("document:1", "owner", "user:ann")]);
    let at_token = node.post(
        &format!("/v1/vaults/{id}/check"),
        &json!({"resource": "document:1", "permission": "view", "subject": "user:ann",
            "consistency": {"at_least_as_fresh": token}}),
    );
    assert_eq!(at_token.json["allowed"], true);
    let foreign = node.post(
        &format!("/v1/vaults/{other}/check"),
        &json!({"resource": "document:1", "permission": "view", "subject": "user:ann",
            "consistency": {"at_least_as_fresh": token}}),
    );
    assert_eq!(foreign.status, 400, "{}", foreign.text);
    let mut forged = token.clone();
    forged.pop();
    forged.push(if token.ends_with('0') { '1' } else { '0' });
    let forged = node.post(
        &format!("/v1/vaults/{id}/check"),
        &json!({"resource": "document:1", "permission": "view", "subject": "user:ann",
            "consistency": {"at_least_as_fresh": forged}}),
    );
    assert_eq!(forged.status, 400, "{}", forged.text);
    let refused = node.post(
        &format!("/v1/vaults/{id}/relationships"),
        &json!({"writes": [{"resource": "document:2", "relation": "owner", "subject": "user:bob"}],
            "preconditions": [{"operation": "must_not_match",
                "filter": {"resource_type": "document", "resource_id": "1"}}]}),
    );
    assert_eq!(refused.status, 412, "{}", refused.text);
    assert!(!check(&node, &id, "document:2", "view", "user:bob"));
    let accepted = node.post(
        &format!("/v1/vaults/{id}/relationships"),
        &json!({"writes": [{"resource": "document:2", "relation": "owner", "subject": "user:bob"}],
            "preconditions": [{"operation": "must_match",
                "filter": {"resource_type": "document", "resource_id": "1"}}]}),
    );
    assert_eq!(accepted.status, 200, "{}", accepted.text);
    let deleted = node.post(
        &format!("/v1/vaults/{id}/relationships/delete"),
        &json!({"filter": {"subject_type": "user", "subject_id": "ann"}}),
    );
    assert_eq!(deleted.json["removed"], 1, "{}", deleted.text);
    assert!(!check(&node, &id, "document:1", "view", "user:ann"));
    assert!(check(&node, &id, "document:2", "view", "user:bob"));
    let soon = std::time::SystemTime::now() + Duration::from_millis(1_500);
    let soon = humantime::format_rfc3339_millis(soon).to_string();
    let expiring = node.post(
        &format!("/v1/vaults/{id}/relationships"),
        &json!({"writes": [{"resource": "document:3", "relation": "viewer", "subject": "user:cy",
            "expires_at": soon}]}),
    );
    assert_eq!(expiring.status, 200, "{}", expiring.text);
    assert!(check(&node, &id, "document:3", "view", "user:cy"));
    assert!(wait_until(Duration::from_secs(10), || !check(
        &node,
        &id,
        "document:3",
        "view",
        "user:cy"
    )));
    let read = node.post(
        &format!("/v1/vaults/{id}/relationships/read"),
        &json!({"filter": {"resource_type": "document"}}),
    );
    assert_eq!(
        read.json["relationships"].as_array().unwrap().len(),
        1,
        "{}",
        read.text
    );
    let verified = node.get(&format!("/v1/vaults/{id}/ledger/verify"));
    assert_eq!(verified.json["holds"], true, "{}", verified.text);
    let blocks = node.get(&format!("/v1/vaults/{id}/blocks?from=1&limit=2"));
    assert_eq!(blocks.json["blocks"].as_array().unwrap().len(), 2);
    let block = node.get(&format!("/v1/vaults/{id}/blocks/2"));
    assert_eq!(
        block.json["previous_hash"],
        blocks.json["blocks"][0]["hash"]
    );
}

#[test]
fn ids_of_the_longest_allowed_length_are_stored_checked_and_read_back_whole() {
    let (_directory, node) = node();
    let id = vault_with_schema(&node, "long-ids");
    // Index keys shorten ids over 256 bytes; these two share every byte they keep.
    let first = format!("document:{}1", "d".repeat(1023));
    let second = format!("document:{}2", "d".repeat(600));
    let user = format!("user:{}", "u".repeat(1024));
    let group = format!("group:{}", "g".repeat(700));
    let member = format!("{group}#member");
    write(
        &node,
        &id,
        &[
            (&first, "owner", &user),
            (&group, "member", "user:ann"),
            (&second, "viewer", &member),
        ],
    );
    assert!(check(&node, &id, &first, "view", &user));
    assert!(!check(&node, &id, &second, "view", &user));
    assert!(check(&node, &id, &second, "view", "user:ann"));
    assert!(!check(&node, &id, &first, "view", "user:ann"));
    let read = |filter: serde_json::Value| {
        let answer = node.post(
            &format!("/v1/vaults/{id}/relationships/read"),
            &json!({ "filter": filter }),
        );
        assert_eq!(answer.status, 200, "{}", answer.text);
        answer.json["relationships"].as_array().unwrap().clone()
    };
    let (first_type, first_id) = first.split_once(':').unwrap();
    let owned = read(json!({"resource_type": first_type, "resource_id": first_id}));
    assert_eq!(owned.len(), 1, "{owned:?}");
    assert_eq!(owned[0]["resource"], first.as_str());
    assert_eq!(owned[0]["subject"], user.as_str());
    let (user_type, user_id) = user.split_once(':').unwrap();
    let by_subject = read(json!({"subject_type": user_type, "subject_id": user_id}));
    assert_eq!(by_subject.len(), 1, "{by_subject:?}");
    assert_eq!(by_subject[0]["resource"], first.as_str());
    let lookup = node.post(
        &format!("/v1/vaults/{id}/lookup/resources"),
        &json!({"resource_type": "document", "permission": "view", "subject": "user:ann"}),
    );
    assert_eq!(lookup.status, 200, "{}", lookup.text);
    assert_eq!(lookup.json["resources"], json!([second]));
    let verified = node.get(&format!("/v1/vaults/{id}/ledger/verify"));
    assert_eq!(verified.json["holds"], true, "{}", verified.text);
}

#[test]
fn bad_requests_get_problems_that_name_the_field() {
    let (_directory, node) = node();
    let id = vault_with_schema(&node, "errors");
    let malformed = node.post_raw(&format!("/v1/vaults/{id}/check"), b"{\"resource\": ");
    assert_eq!(malformed.status, 400);
    assert_eq!(
        malformed.header("content-type"),
        Some("application/problem+json")
    );
    assert!(malformed.json["type"]
        .as_str()
        .unwrap()
        .ends_with("malformed-json"));
    let unknown = node.post(
        "/v1/vaults/0000000000000001/check",
        &json!({"resource": "document:1", "permission": "view", "subject": "user:a"}),
    );
    assert_eq!(unknown.status, 404);
    let bad_id = node.get("/v1/vaults/not-an-id");
    assert_eq!(bad_id.status, 400);
    let bad_subject = node.post(
        &format!("/v1/vaults/{id}/relationships"),
        &json!({"writes": [{"resource": "document:1", "relation": "owner", "subject": "user"}]}),
    );
    assert_eq!(bad_subject.status, 400);
    assert!(bad_subject.json["detail"]
        .as_str()
        .unwrap()
        .starts_with("writes[0].subject"));
    let not_allowed = node.post(
        &format!("/v1/vaults/{id}/relationships"),
        &json!({"writes": [
            {"resource": "document:1", "relation": "owner", "subject": "user:a"},
            {"resource": "document:1", "relation": "owner", "subject": "group:eng#member"}]}),
    );
    assert_eq!(not_allowed.status, 400, "{}", not_allowed.text);
    assert_eq!(not_allowed.json["field"], "writes[1].subject");
    assert!(
        !check(&node, &id, "document:1", "view", "user:a"),
        "a refused batch wrote nothing"
    );
    let computed = node.post(
        &format!("/v1/vaults/{id}/relationships"),
        &json!({"writes": [{"resource": "document:1", "relation": "view", "subject": "user:a"}]}),
    );
    assert_eq!(computed.status, 400);
    assert_eq!(computed.json["field"], "writes[0].relation");
    let checks: Vec<_> = (0..1_001)
        .map(|_| json!({"resource": "document:1", "permission": "view", "subject": "user:a"}))
        .collect();
    let oversized = node.post(
        &format!("/v1/vaults/{id}/check/batch"),
        &json!({"checks": checks}),
    );
    assert_eq!(oversized.status, 413);
    assert!(oversized.json["detail"]
        .as_str()
        .unwrap()
        .contains("batch_check_max"));
    let writes: Vec<_> = (0..1_001)
        .map(|index| json!({"resource": format!("document:{index}"), "relation": "owner", "subject": "user:a"}))
        .collect();
    let too_many = node.post(
        &format!("/v1/vaults/{id}/relationships"),
        &json!({"writes": writes}),
    );
    assert_eq!(too_many.status, 413, "{}", too_many.text);
    let unknown_field = node.post(
        &format!("/v1/vaults/{id}/check"),
        &json!({"resource": "document:1", "permission": "view", "subject": "user:a", "extra": 1}),
    );
    assert_eq!(unknown_field.status, 400);
    assert!(unknown_field.json["detail"]
        .as_str()
        .unwrap()
        .contains("extra"));
    let unknown_permission = node.post(
        &format!("/v1/vaults/{id}/check"),
        &json!({"resource": "document:1", "permission": "fly", "subject": "user:a"}),
    );
    assert_eq!(unknown_permission.status, 400);
    let wrong_method = node.delete(&format!("/v1/vaults/{id}/check"));
    assert_eq!(wrong_method.status, 405);
    assert_eq!(
        wrong_method.header("content-type"),
        Some("application/problem+json")
    );
    let huge = format!("{{\"schema\": \"{}\"}}", "x".repeat(9 * 1024 * 1024));
    let too_big = node.post_raw(&format!("/v1/vaults/{id}/check"), huge.as_bytes());
    assert_eq!(too_big.status, 413, "{}", too_big.text);
    let no_schema = node.post("/v1/vaults", &json!({"name": "empty"}));
    let empty = no_schema.json["id"].as_str().unwrap();
    let unschema = node.post(
        &format!("/v1/vaults/{empty}/check"),
        &json!({"resource": "document:1", "permission": "view", "subject": "user:a"}),
    );
    assert_eq!(unschema.status, 409, "{}", unschema.text);
}

#[test]
fn operations_endpoints_report_health_metrics_and_the_tree() {
    let (_directory, node) = node();
    let id = vault_with_schema(&node, "ops");
    write(&node, &id, &[("document:1", "owner", "user:a")]);
    assert!(check(&node, &id, "document:1", "view", "user:a"));
    assert_eq!(node.get("/livez").status, 200);
    assert_eq!(node.get("/readyz").status, 200);
    let health = node.get("/healthz");
    assert_eq!(health.json["status"], "healthy", "{}", health.text);
    let metrics = node.get("/metrics");
    assert!(
        metrics.text.contains("inferadb_http_requests_total"),
        "{}",
        metrics.text
    );
    assert!(metrics.text.contains("route=\"/v1/vaults/{id}/check\""));
    assert!(metrics
        .text
        .contains("inferadb_http_request_duration_seconds_bucket"));
    assert!(metrics.text.contains("inferadb_evaluator_queue_depth"));
    assert!(metrics.text.contains("inferadb_decision_cache_hit_ratio"));
    assert!(metrics.text.contains("inferadb_storage_used_pages"));
    assert!(metrics.text.contains("inferadb_actor_messages_handled"));
    // The raft log's I/O and the consensus figures of the data shard.
    for name in [
        "inferadb_raft_log_append_seconds_count{group=\"1\"}",
        "inferadb_raft_log_fsync_seconds_count{group=\"1\"}",
        "inferadb_raft_ready_cycle_seconds_count{group=\"1\"}",
        "inferadb_raft_is_leader{group=\"1\"} 1",
    ] {
        assert!(
            metrics.text.contains(name),
            "{name} missing: {}",
            metrics.text
        );
    }
    let tree = node.get("/v1/admin/actors");
    let root = &tree.json["actors"][0];
    assert_eq!(root["name"], "node/1");
    let children: Vec<&str> = root["children"]
        .as_array()
        .unwrap()
        .iter()
        .map(|child| child["name"].as_str().unwrap())
        .collect();
    for expected in [
        "node/1/storage",
        "node/1/vaults",
        "node/1/evaluator",
        "node/1/gateway",
    ] {
        assert!(children.contains(&expected), "{children:?}");
    }
    assert!(tree.text.contains(&format!("node/1/vault/{id}")));
    let printed = std::process::Command::new(inferadb_tests::binary())
        .args(["actors", "--addr", &node.addr])
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&printed.stdout);
    assert!(
        printed.contains(&format!("node/1/vault/{id} [vault] running")),
        "{printed}"
    );
}

#[test]
fn a_full_evaluator_queue_answers_429_with_retry_after() {
    let directory = tempfile::tempdir().unwrap();
    let options = inferadb_tests::NodeOptions {
        env: vec![
            ("INFERADB__EVALUATOR__WORKERS".into(), "1".into()),
            ("INFERADB__EVALUATOR__QUEUE_MAX".into(), "1".into()),
            ("INFERADB__EVALUATOR__RETRY_AFTER_S".into(), "2".into()),
            // Every check is evaluated, so each batch keeps the one worker busy.
            (
                "INFERADB__EVALUATOR__DECISION_CACHE_ENTRIES".into(),
                "0".into(),
            ),
        ],
        start: false,
        args: Vec::new(),
    };
    let node = Node::start_with(directory.path(), &options);
    let id = vault_with_schema(&node, "busy");
    let body = crate::slow_batch(&node, &id);
    let statuses: Vec<(u16, Option<String>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..24)
            .map(|_| {
                let body = body.as_bytes();
                let addr = node.addr.clone();
                let path = format!("/v1/vaults/{id}/check/batch");
                scope.spawn(move || {
                    let answer = inferadb_tests::http(&addr, "POST", &path, Some(body));
                    (
                        answer.status,
                        answer.header("retry-after").map(str::to_string),
                    )
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| handle.join().unwrap())
            .collect()
    });
    let refused: Vec<_> = statuses
        .iter()
        .filter(|(status, _)| *status == 429)
        .collect();
    let served = statuses.iter().filter(|(status, _)| *status == 200).count();
    assert!(!refused.is_empty(), "{statuses:?}");
    assert!(served >= 1, "{statuses:?}");
    assert_eq!(served + refused.len(), statuses.len(), "{statuses:?}");
    assert!(
        refused
            .iter()
            .all(|(_, retry)| retry.as_deref() == Some("2")),
        "{refused:?}"
    );
}

#[test]
fn bulk_import_applies_ndjson_in_batches_and_names_a_bad_line() {
    let (_directory, node) = node();
    let id = vault_with_schema(&node, "import");
    let lines: Vec<String> = (0..2_500)
        .map(|index| {
            json!({"resource": format!("document:{index}"), "relation": "owner", "subject": "user:ann"})
                .to_string()
        })
        .collect();
    let body = lines.join("\n");
    let imported = inferadb_tests::http(
        &node.addr,
        "POST",
        &format!("/v1/vaults/{id}/relationships/import"),
        Some(body.as_bytes()),
    );
    assert_eq!(imported.status, 200, "{}", imported.text);
    assert_eq!(imported.json["inserted"], 2_500);
    assert_eq!(imported.json["batches"], 3);
    assert!(check(&node, &id, "document:2499", "view", "user:ann"));
    let verified = node.get(&format!("/v1/vaults/{id}/ledger/verify"));
    assert_eq!(verified.json["relationships"], 2_500, "{}", verified.text);
    let bad = format!(
        "{}\n{{\"resource\": \"document:x\", \"relation\": \"owner\"}}\n",
        lines[0]
    );
    let refused = inferadb_tests::http(
        &node.addr,
        "POST",
        &format!("/v1/vaults/{id}/relationships/import"),
        Some(bad.as_bytes()),
    );
    assert_eq!(refused.status, 400, "{}", refused.text);
    assert!(
        refused.json["detail"]
            .as_str()
            .unwrap()
            .starts_with("line 2"),
        "{}",
        refused.text
    );
}

/// An import's batches are independent: a relationship named twice is imported once with
/// its last line's expiry, and a failing batch does not stop the ones after it; the problem
/// says which applied and which failed.
#[test]
fn import_batches_are_independent_and_a_failure_names_the_failed_batch() {
    let (_directory, node) = node();
    let id = vault_with_schema(&node, "import-independent");
    let mut lines: Vec<String> = (0..2_500)
        .map(|index| {
            json!({"resource": format!("document:{index}"), "relation": "owner", "subject": "user:ann"})
                .to_string()
        })
        .collect();
    // Line 0 again, last, without its expiry: one relationship, never expiring.
    lines[0] = json!({"resource": "document:0", "relation": "owner", "subject": "user:ann",
        "expires_at": "2099-01-01T00:00:00Z"})
    .to_string();
    lines.push(
        json!({"resource": "document:0", "relation": "owner", "subject": "user:ann"}).to_string(),
    );
    // Batch 1 (lines 1,000–1,999) holds a relationship the schema refuses.
    lines[1_500] =
        json!({"resource": "document:1500", "relation": "no_such_relation", "subject": "user:ann"})
            .to_string();
    let refused = inferadb_tests::http(
        &node.addr,
        "POST",
        &format!("/v1/vaults/{id}/relationships/import"),
        Some(lines.join("\n").as_bytes()),
    );
    assert!(refused.status >= 400, "{}", refused.text);
    assert_eq!(refused.json["applied_batches"], 2, "{}", refused.text);
    assert_eq!(
        refused.json["failed_batches"],
        json!([1]),
        "{}",
        refused.text
    );
    assert!(refused.json["revision"].is_string(), "{}", refused.text);
    // The batch after the failed one applied; the failed one did not.
    assert!(check(&node, &id, "document:2499", "view", "user:ann"));
    assert!(!check(&node, &id, "document:1000", "view", "user:ann"));
    let listed = node.post(
        &format!("/v1/vaults/{id}/relationships/read"),
        &json!({"filter": {"resource_type": "document", "resource_id": "0"}}),
    );
    assert_eq!(listed.status, 200, "{}", listed.text);
    let relationships = listed.json["relationships"].as_array().expect("a list");
    assert_eq!(relationships.len(), 1, "{}", listed.text);
    assert!(
        relationships[0].get("expires_at").is_none(),
        "{}",
        listed.text
    );
}

#[test]
fn bad_membership_requests_name_the_field_and_the_rule() {
    let directory = tempfile::tempdir().unwrap();
    let node = Node::start(directory.path());
    let zero = node.post(
        "/v1/cluster/members",
        &json!({"id": 0, "address": "127.0.0.1:7004"}),
    );
    assert_eq!(zero.status, 400, "{}", zero.text);
    assert_eq!(zero.json["field"], "id", "{}", zero.text);
    let address = node.post(
        "/v1/cluster/members",
        &json!({"id": 4, "address": "nohost"}),
    );
    assert_eq!(address.status, 400, "{}", address.text);
    assert_eq!(address.json["field"], "address", "{}", address.text);
    let removed = node.delete("/v1/cluster/members/0");
    assert_eq!(removed.status, 400, "{}", removed.text);
    assert_eq!(removed.json["field"], "id", "{}", removed.text);
    // Nothing was recorded: the single node is still the only voter.
    let cluster = node.get("/v1/cluster");
    assert_eq!(
        cluster.json["shards"][0]["voters"],
        json!([1]),
        "{}",
        cluster.text
    );
}

/// The body extractor's other refusals: a body that is not declared JSON (415), a body
/// over `http.request_body_max_bytes` (413), and JSON of the wrong shape (400 naming the
/// path); a `+json` media type is JSON.
#[test]
fn bodies_of_the_wrong_type_size_or_shape_get_problems() {
    let (_directory, node) = node();
    let id = vault_with_schema(&node, "bodies");
    let path = format!("/v1/vaults/{id}/relationships");
    let body =
        json!({"writes": [{"resource": "document:1", "relation": "owner", "subject": "user:a"}]})
            .to_string();
    let send = |content_type: &str, bytes: &[u8]| {
        inferadb_tests::try_http_typed(&node.addr, "POST", &path, content_type, Some(bytes))
            .expect("exchange")
    };
    let plain = send("text/plain", body.as_bytes());
    assert_eq!(plain.status, 415, "{}", plain.text);
    assert!(plain.json["type"]
        .as_str()
        .unwrap()
        .ends_with("unsupported-media-type"));
    let suffixed = send(
        "application/vnd.inferadb+json; charset=utf-8",
        body.as_bytes(),
    );
    assert_eq!(suffixed.status, 200, "{}", suffixed.text);
    let shape = node.post(
        &path,
        &json!({"writes": [{"resource": "document:1", "relation": 7}]}),
    );
    assert_eq!(shape.status, 400, "{}", shape.text);
    assert!(shape.json["type"]
        .as_str()
        .unwrap()
        .ends_with("invalid-body"));
    assert!(
        shape.json["detail"]
            .as_str()
            .unwrap()
            .contains("writes[0].relation"),
        "{}",
        shape.text
    );
    let huge = vec![b' '; 9 * 1024 * 1024];
    let large = send("application/json", &huge);
    assert_eq!(large.status, 413, "{}", large.text);
    assert!(large.json["type"]
        .as_str()
        .unwrap()
        .ends_with("body-too-large"));
}

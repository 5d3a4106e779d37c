//! End-to-end tests: the real `inferadb` binary, real sockets, real files.
// Each scenario reads top to bottom as one user story against one node (splitting it would
// restart the node per step); helpers fail loudly; expiry needs the wall clock.
#![allow(
    clippy::too_many_lines,
    clippy::unwrap_used,
    clippy::disallowed_methods
)]

mod api;
mod cluster;
mod durability;
mod readme;
mod review;
mod supervision;

use inferadb_tests::Node;
use serde_json::{json, Value};

/// The schema most tests use.
pub const SCHEMA: &str = "\
type user {}

type group {
    relation member: user | group#member
}

type folder {
    relation parent: folder
    relation viewer: user | user:* | group#member
    permission view = viewer | parent->view
}

type document {
    relation parent: folder
    relation owner: user
    relation editor: user | group#member
    relation viewer: user | group#member
    relation blocked: user
    permission edit = owner | editor
    permission view = (edit | viewer | parent->view) - blocked
}
";

/// The data file of `vault` under `data_dir`: in its shard's directory (shard 0 keeps its
/// vaults in `vaults/`, data shard `n` in `shards/<n>/vaults/`).
pub fn vault_file(node: &Node, vault: &str) -> std::path::PathBuf {
    let shard = node.get(&format!("/v1/vaults/{vault}")).json["shard"]
        .as_u64()
        .expect("the vault's shard");
    let directory = match shard {
        0 => node.data_dir.join("vaults"),
        _ => node
            .data_dir
            .join("shards")
            .join(shard.to_string())
            .join("vaults"),
    };
    directory.join(format!("{vault}.db"))
}

/// Creates a vault with [`SCHEMA`]; returns its id.
pub fn vault_with_schema(node: &Node, name: &str) -> String {
    let created = node.post("/v1/vaults", &json!({ "name": name }));
    assert_eq!(created.status, 201, "{}", created.text);
    let id = created.json["id"].as_str().expect("an id").to_string();
    let deployed = node.put(
        &format!("/v1/vaults/{id}/schema"),
        &json!({ "schema": SCHEMA }),
    );
    assert_eq!(deployed.status, 200, "{}", deployed.text);
    id
}

/// Writes relationships (`resource#relation@subject` triples); returns the revision token.
pub fn write(node: &Node, vault: &str, triples: &[(&str, &str, &str)]) -> String {
    let writes: Vec<Value> = triples
        .iter()
        .map(|(resource, relation, subject)| {
            json!({"resource": resource, "relation": relation, "subject": subject})
        })
        .collect();
    let answer = node.post(
        &format!("/v1/vaults/{vault}/relationships"),
        &json!({ "writes": writes }),
    );
    assert_eq!(answer.status, 200, "{}", answer.text);
    answer.json["revision"]
        .as_str()
        .expect("a revision")
        .to_string()
}

/// One check at `minimize_latency`.
pub fn check(node: &Node, vault: &str, resource: &str, permission: &str, subject: &str) -> bool {
    let answer = node.post(
        &format!("/v1/vaults/{vault}/check"),
        &json!({"resource": resource, "permission": permission, "subject": subject}),
    );
    assert_eq!(answer.status, 200, "{}", answer.text);
    answer.json["allowed"].as_bool().expect("a decision")
}

/// Makes every check of `group:g0#member` for an unknown user slow: `g0` holds 200 groups
/// of one member each, so each (denied) check reads 200 usersets. Returns the body of a
/// batch of 1,000 such checks, which keeps one evaluator worker busy for a while.
pub fn slow_batch(node: &Node, vault: &str) -> String {
    let mut writes: Vec<Value> = (1..=200)
        .map(|index| {
            json!({"resource": "group:g0", "relation": "member",
                "subject": format!("group:g{index}#member")})
        })
        .collect();
    writes.extend((1..=200).map(|index| {
        json!({"resource": format!("group:g{index}"), "relation": "member",
            "subject": format!("user:x{index}")})
    }));
    let written = node.post(
        &format!("/v1/vaults/{vault}/relationships"),
        &json!({ "writes": writes }),
    );
    assert_eq!(written.status, 200, "{}", written.text);
    let checks: Vec<Value> = (0..1_000)
        .map(|index| {
            json!({"resource": "group:g0", "permission": "member",
                "subject": format!("user:u{index}")})
        })
        .collect();
    json!({ "checks": checks }).to_string()
}

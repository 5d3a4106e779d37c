//! Supervision: an actor killed through the admin API, or made to panic, is restarted; the
//! restart shows in the live tree; requests keep being served.

use std::time::Duration;

use inferadb_tests::{wait_until, Node};
use serde_json::Value;

use crate::{check, vault_with_schema, write};

fn find<'a>(node: &'a Value, name: &str) -> Option<&'a Value> {
    if node["name"] == name {
        return Some(node);
    }
    node["children"]
        .as_array()?
        .iter()
        .find_map(|child| find(child, name))
}

fn actor(node: &Node, name: &str) -> Value {
    // While the HTTP listener itself restarts, the node does not answer for a moment.
    let Some(tree) = node.try_get("/v1/admin/actors") else {
        return Value::Null;
    };
    tree.json["actors"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|root| find(root, name))
        .cloned()
        .unwrap_or(Value::Null)
}

fn restarted(node: &Node, name: &str, restarts: u64) -> bool {
    let record = actor(node, name);
    record["restarts"] == restarts && record["status"] == "running"
}

#[test]
fn killed_and_panicking_actors_are_restarted_and_the_node_keeps_serving() {
    let directory = tempfile::tempdir().unwrap();
    let node = Node::start(directory.path());
    let vault = vault_with_schema(&node, "supervised");
    write(&node, &vault, &[("document:1", "owner", "user:ann")]);
    let name = format!("node/1/vault/{vault}");

    let killed = node.post(&format!("/v1/admin/actors/{name}/restart"), &Value::Null);
    assert_eq!(killed.status, 202, "{}", killed.text);
    assert!(wait_until(Duration::from_secs(10), || restarted(
        &node, &name, 1
    )));
    assert_eq!(actor(&node, &name)["last_failure"], "killed by an operator");
    assert!(check(&node, &vault, "document:1", "view", "user:ann"));
    write(&node, &vault, &[("document:2", "owner", "user:ann")]);

    let failed = node.post(&format!("/v1/admin/actors/{name}/fail"), &Value::Null);
    assert_eq!(failed.status, 202, "{}", failed.text);
    assert!(wait_until(Duration::from_secs(10), || restarted(
        &node, &name, 2
    )));
    let failure = actor(&node, &name)["last_failure"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(failure.contains("injected failure"), "{failure}");
    assert!(check(&node, &vault, "document:2", "view", "user:ann"));

    for name in ["node/1/evaluator", "node/1/gateway/http", "node/1/vaults"] {
        let killed = node.post(&format!("/v1/admin/actors/{name}/restart"), &Value::Null);
        assert_eq!(killed.status, 202, "{name}: {}", killed.text);
        assert!(
            wait_until(Duration::from_secs(10), || restarted(&node, name, 1)),
            "{name}: {}",
            actor(&node, name)
        );
        assert!(wait_until(Duration::from_secs(10), || {
            node.try_get(&format!("/v1/vaults/{vault}"))
                .is_some_and(|answer| answer.status == 200)
        }));
        assert!(
            check(&node, &vault, "document:1", "view", "user:ann"),
            "{name}"
        );
    }
    let unknown = node.post("/v1/admin/actors/node/1/nothing/restart", &Value::Null);
    assert_eq!(unknown.status, 404);
    let root = node.post("/v1/admin/actors/node/1/restart", &Value::Null);
    assert_eq!(root.status, 403);
}

#[test]
fn a_vault_that_cannot_open_is_contained_and_the_others_keep_serving() {
    let directory = tempfile::tempdir().unwrap();
    let node = Node::start(directory.path());
    let healthy = vault_with_schema(&node, "healthy");
    let damaged = vault_with_schema(&node, "damaged");
    write(&node, &healthy, &[("document:1", "owner", "user:ann")]);
    let file = crate::vault_file(&node, &damaged);
    let (status, _) = node.terminate();
    assert!(status.success());
    let length = std::fs::metadata(&file).unwrap().len() as usize;
    std::fs::write(&file, vec![0x5a; length]).unwrap();

    let node = Node::start(directory.path());
    assert!(check(&node, &healthy, "document:1", "view", "user:ann"));
    let refused = node.get(&format!("/v1/vaults/{damaged}"));
    assert_eq!(refused.status, 503, "{}", refused.text);
    assert!(refused.json["detail"]
        .as_str()
        .unwrap()
        .contains("out of service"));
    let record = actor(&node, &format!("node/1/vault/{damaged}"));
    assert_eq!(record["status"], "stopped", "{record}");
    assert_eq!(
        node.get("/v1/vaults").json["vaults"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

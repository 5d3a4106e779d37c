//! Durability: acknowledged writes survive `kill -9`; the ledger and the data file verify.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use inferadb_tests::{http, wait_until, Node};
use serde_json::json;

use crate::vault_with_schema;

/// Writes from several threads until told to stop; returns the acknowledged relationships.
fn write_until_stopped(
    addr: &str,
    vault: &str,
    stop: &Arc<AtomicBool>,
) -> Vec<std::thread::JoinHandle<Vec<String>>> {
    (0..4)
        .map(|writer| {
            let addr = addr.to_string();
            let vault = vault.to_string();
            let stop = Arc::clone(stop);
            std::thread::spawn(move || {
                let mut acknowledged = Vec::new();
                let mut sequence = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let document = format!("document:w{writer}-{sequence}");
                    let body = json!({"writes": [
                        {"resource": document, "relation": "owner", "subject": "user:ann"}]});
                    let result = std::panic::catch_unwind(|| {
                        http(
                            &addr,
                            "POST",
                            &format!("/v1/vaults/{vault}/relationships"),
                            Some(body.to_string().as_bytes()),
                        )
                    });
                    match result {
                        Ok(response) if response.status == 200 => acknowledged.push(document),
                        // The node died mid-request: that write was never acknowledged.
                        _ => break,
                    }
                    sequence += 1;
                }
                acknowledged
            })
        })
        .collect()
}

/// Writes from 4 threads until the vault is `height_at_least` high, then kills the node with
/// SIGKILL; returns what was acknowledged.
fn write_then_kill(node: Node, vault: &str, height_at_least: u64) -> Vec<String> {
    let stop = Arc::new(AtomicBool::new(false));
    let writers = write_until_stopped(&node.addr, vault, &stop);
    let counted = wait_until(Duration::from_secs(60), || {
        let read = node.get(&format!("/v1/vaults/{vault}"));
        read.json["height"].as_u64().unwrap_or(0) >= height_at_least
    });
    assert!(counted, "writers made too little progress");
    node.kill();
    stop.store(true, Ordering::Relaxed);
    writers
        .into_iter()
        .flat_map(|writer| writer.join().unwrap())
        .collect()
}

/// Asserts that every document is owned by ann on `node`.
fn assert_all_present(node: &Node, vault: &str, documents: &[String]) {
    let checks: Vec<_> = documents
        .iter()
        .map(|document| json!({"resource": document, "permission": "view", "subject": "user:ann"}))
        .collect();
    for chunk in checks.chunks(1_000) {
        let answer = node.post(
            &format!("/v1/vaults/{vault}/check/batch"),
            &json!({"checks": chunk}),
        );
        assert_eq!(answer.status, 200, "{}", answer.text);
        for (index, result) in answer.json["results"]
            .as_array()
            .unwrap()
            .iter()
            .enumerate()
        {
            assert_eq!(
                result["allowed"], true,
                "lost acknowledged write {}",
                chunk[index]
            );
        }
    }
}

#[test]
fn acknowledged_writes_survive_kill_9_and_everything_verifies() {
    let directory = tempfile::tempdir().unwrap();
    let node = Node::start(directory.path());
    let vault = vault_with_schema(&node, "durable");
    let mut acknowledged = write_then_kill(node, &vault, 200);
    assert!(
        acknowledged.len() >= 150,
        "only {} acknowledged",
        acknowledged.len()
    );
    // A second crash after the restart's replay: what the replay applied must not be
    // claimed durable before the vault files are.
    let node = Node::start(directory.path());
    assert_all_present(&node, &vault, &acknowledged);
    let height = node.get(&format!("/v1/vaults/{vault}")).json["height"]
        .as_u64()
        .unwrap_or(0);
    acknowledged.extend(write_then_kill(node, &vault, height + 100));

    let node = Node::start(directory.path());
    assert_all_present(&node, &vault, &acknowledged);
    let verified = node.get(&format!("/v1/vaults/{vault}/ledger/verify"));
    assert_eq!(verified.json["holds"], true, "{}", verified.text);
    let vault_file = crate::vault_file(&node, &vault);
    let (status, printed) = node.terminate();
    assert!(status.success(), "graceful shutdown exits 0");
    assert!(printed.contains("stopped"), "{printed}");
    let files = vec![
        directory.path().join("node.db"),
        directory.path().join("shards/1/catalog.db"),
        vault_file,
    ];
    for file in files {
        let output = std::process::Command::new(inferadb_tests::binary())
            .arg("verify")
            .arg(&file)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}: {}",
            file.display(),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(String::from_utf8_lossy(&output.stdout).contains(": ok at txn"));
    }
}

#[test]
fn sigterm_drains_in_flight_requests_before_the_node_exits() {
    let directory = tempfile::tempdir().unwrap();
    let options = inferadb_tests::NodeOptions {
        env: vec![
            ("INFERADB__EVALUATOR__WORKERS".into(), "1".into()),
            (
                "INFERADB__EVALUATOR__DECISION_CACHE_ENTRIES".into(),
                "0".into(),
            ),
        ],
        start: false,
        args: Vec::new(),
    };
    let node = Node::start_with(directory.path(), &options);
    let vault = vault_with_schema(&node, "draining");
    let body = crate::slow_batch(&node, &vault);
    let (sender, receiver) = std::sync::mpsc::channel();
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (addr, body, sender) = (node.addr.clone(), body.clone(), sender.clone());
            let path = format!("/v1/vaults/{vault}/check/batch");
            std::thread::spawn(move || {
                let answer = http(&addr, "POST", &path, Some(body.as_bytes()));
                let _ = sender.send(());
                answer.status
            })
        })
        .collect();
    // One answer proves every request was sent long ago; the others queue behind the one
    // worker, in flight, when the signal arrives.
    receiver.recv().unwrap();
    let (status, printed) = node.terminate();
    assert!(status.success(), "{printed}");
    let statuses: Vec<u16> = clients
        .into_iter()
        .map(|client| client.join().unwrap())
        .collect();
    assert!(statuses.iter().all(|status| *status == 200), "{statuses:?}");
}

#[test]
fn the_elected_gc_job_purges_expired_relationships_into_the_ledger() {
    let directory = tempfile::tempdir().unwrap();
    let options = inferadb_tests::NodeOptions {
        env: vec![(
            "INFERADB__JOBS__EXPIRED_GC__INTERVAL_MS".into(),
            "100".into(),
        )],
        start: false,
        args: Vec::new(),
    };
    let node = Node::start_with(directory.path(), &options);
    let vault = vault_with_schema(&node, "expiring");
    let soon = std::time::SystemTime::now() + Duration::from_millis(1_000);
    let soon = humantime::format_rfc3339_millis(soon).to_string();
    let written = node.post(
        &format!("/v1/vaults/{vault}/relationships"),
        &json!({"writes": [
            {"resource": "document:1", "relation": "viewer", "subject": "user:cy", "expires_at": soon},
            {"resource": "document:2", "relation": "viewer", "subject": "user:cy"}]}),
    );
    assert_eq!(written.status, 200, "{}", written.text);
    let height = |node: &Node| {
        node.get(&format!("/v1/vaults/{vault}")).json["height"]
            .as_u64()
            .unwrap_or(0)
    };
    let written_at = height(&node);

    // The single node wins the lease and runs the job ...
    assert!(wait_until(Duration::from_secs(20), || {
        let jobs = node.get("/v1/cluster").json["jobs"].clone();
        jobs.as_array().is_some_and(|jobs| {
            jobs.iter()
                .any(|job| job["job"] == "expired-relationship-gc" && job["running_here"] == true)
        })
    }));
    // ... whose purge is a ledger block removing exactly the expired relationship.
    assert!(
        wait_until(Duration::from_secs(20), || height(&node) > written_at),
        "no purge block"
    );
    let block = node.get(&format!("/v1/vaults/{vault}/blocks/{}", written_at + 1));
    let operations = block.json["operations"].as_array().unwrap().clone();
    assert_eq!(operations.len(), 1, "{}", block.text);
    assert_eq!(
        operations[0]["remove"]["resource"], "document:1",
        "{}",
        block.text
    );
    let verified = node.get(&format!("/v1/vaults/{vault}/ledger/verify"));
    assert_eq!(verified.json["holds"], true, "{}", verified.text);
    let kept = node.post(
        &format!("/v1/vaults/{vault}/relationships/read"),
        &json!({"filter": {"resource_type": "document"}}),
    );
    assert_eq!(
        kept.json["relationships"].as_array().unwrap().len(),
        1,
        "{}",
        kept.text
    );
}

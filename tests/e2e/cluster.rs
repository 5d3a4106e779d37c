//! A three-node cluster of real processes on loopback: writes through any node, reads with
//! tokens on every node, the leader killed while clients write, a restarted node catching
//! up to the same ledger, and a minority cut off by pausing the majority's processes.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use inferadb_tests::{free_port, try_http, wait_until, Node, NodeOptions};
use serde_json::{json, Value};

use crate::vault_with_schema;

/// The cookie every member of the test cluster shares.
const COOKIE: &str = "e2e-cluster-cookie-0123456789";

/// Nodes in slots (slot `i` is node id `i + 1`): their data directories, cluster ports and
/// running processes. The first three are the bootstrap members; a fourth slot joins later.
struct Cluster {
    _directory: tempfile::TempDir,
    data_dirs: Vec<PathBuf>,
    ports: Vec<u16>,
    nodes: Vec<Option<Node>>,
    /// Settings every member starts with, besides the cookie and the compaction interval.
    env: Vec<(String, String)>,
}

/// Slots of the bootstrap members.
const FOUNDERS: usize = 3;
/// Slots in all.
const SLOTS: usize = 4;

impl Cluster {
    /// Three founders; the leader balancer is off, so leaderships move only when a test
    /// makes them.
    fn start() -> Cluster {
        Cluster::start_with(&[("INFERADB__JOBS__LEADER_BALANCE__ENABLED", "false")])
    }

    /// Three founders started with `env` too.
    fn start_with(env: &[(&str, &str)]) -> Cluster {
        let directory = tempfile::tempdir().unwrap();
        let data_dirs: Vec<PathBuf> = (1..=SLOTS)
            .map(|id| directory.path().join(format!("n{id}")))
            .collect();
        let ports: Vec<u16> = (0..SLOTS).map(|_| free_port()).collect();
        let mut cluster = Cluster {
            _directory: directory,
            data_dirs,
            ports,
            nodes: (0..SLOTS).map(|_| None).collect(),
            env: env
                .iter()
                .map(|(key, value)| ((*key).to_string(), (*value).to_string()))
                .collect(),
        };
        for index in 0..FOUNDERS {
            cluster.start_node(index);
        }
        for index in 0..FOUNDERS {
            cluster.wait_ready(index);
        }
        cluster
    }

    /// The cluster address of slot `index`.
    fn cluster_address(&self, index: usize) -> String {
        format!("127.0.0.1:{}", self.ports[index])
    }

    /// Starts a founding member `index` (id `index + 1`) over its data directory; its
    /// peers are the other founders.
    fn start_node(&mut self, index: usize) {
        let peers: Vec<usize> = (0..FOUNDERS).filter(|peer| *peer != index).collect();
        self.launch(index, &peers, false);
    }

    /// Starts slot `index` to join the running cluster (it knows every founder).
    fn start_joiner(&mut self, index: usize) {
        let peers: Vec<usize> = (0..FOUNDERS).collect();
        self.launch(index, &peers, true);
    }

    fn launch(&mut self, index: usize, peers: &[usize], join: bool) {
        let mut args = vec![
            "--node-id".to_string(),
            (index + 1).to_string(),
            "--listen-cluster".to_string(),
            self.cluster_address(index),
        ];
        for peer in peers {
            args.push("--peer".to_string());
            args.push(format!("{}={}", peer + 1, self.cluster_address(*peer)));
        }
        if join {
            args.push("--join".to_string());
        }
        let mut env = vec![
            ("INFERADB__CLUSTER__COOKIE".into(), COOKIE.into()),
            // Compact often, so a member that was down catches up from a snapshot.
            ("INFERADB__RAFT__COMPACT_AFTER_ENTRIES".into(), "25".into()),
        ];
        env.extend(self.env.iter().cloned());
        let options = NodeOptions {
            env,
            start: true,
            args,
        };
        self.nodes[index] = Some(Node::start_with(&self.data_dirs[index], &options));
    }

    /// Every running member's `GET /v1/cluster`, for a failure's message.
    fn views(&self) -> String {
        self.nodes
            .iter()
            .flatten()
            .map(|node| {
                node.try_get("/v1/cluster")
                    .map_or_else(|| "unreachable".to_string(), |answer| answer.text)
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn node(&self, index: usize) -> &Node {
        self.nodes[index].as_ref().expect("the node runs")
    }

    /// Waits until member `index` knows a leader.
    fn wait_ready(&self, index: usize) {
        let node = self.node(index);
        let ready = wait_until(Duration::from_secs(30), || {
            node.try_get("/readyz")
                .is_some_and(|answer| answer.status == 200)
        });
        assert!(ready, "node {} never became ready", index + 1);
    }

    /// The leader's index of `shard`, as member `asked` sees it.
    fn leader(&self, asked: usize, shard: u64) -> Option<usize> {
        let status = self.node(asked).get("/v1/cluster");
        let shards = status.json["shards"].as_array()?;
        let entry = shards.iter().find(|entry| entry["id"] == shard)?;
        let leader = entry["leader"].as_u64()?;
        usize::try_from(leader).ok().map(|id| id - 1)
    }

    /// The leader of `shard` every member of `among` agrees on, once they agree on one of
    /// `among` (so a dead leader they still remember does not count).
    fn agreed_leader(&self, among: &[usize], shard: u64) -> usize {
        let mut leader = None;
        let agreed = wait_until(Duration::from_secs(30), || {
            let seen: Vec<Option<usize>> = among
                .iter()
                .map(|index| self.leader(*index, shard))
                .collect();
            leader = seen[0];
            leader.is_some_and(|leader| among.contains(&leader))
                && seen.iter().all(|other| *other == leader)
        });
        assert!(agreed, "the members never agreed on a leader");
        leader.expect("invariant: agreed on Some")
    }
}

fn write_one(addr: &str, vault: &str, document: &str) -> u16 {
    let body =
        json!({"writes": [{"resource": document, "relation": "owner", "subject": "user:ann"}]});
    try_http(
        addr,
        "POST",
        &format!("/v1/vaults/{vault}/relationships"),
        Some(body.to_string().as_bytes()),
    )
    .map_or(0, |answer| answer.status)
}

/// Writes through `addr` until stopped; every write that got a 200 is returned. Failures
/// (the leader died, an election runs) are not retried: those documents are simply not
/// acknowledged.
fn writer(
    addr: String,
    vault: String,
    name: &'static str,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<Vec<String>> {
    std::thread::spawn(move || {
        let mut acknowledged = Vec::new();
        let mut sequence = 0u64;
        while !stop.load(Ordering::Relaxed) {
            let document = format!("document:{name}-{sequence}");
            if write_one(&addr, &vault, &document) == 200 {
                acknowledged.push(document);
            } else {
                std::thread::sleep(Duration::from_millis(20));
            }
            sequence += 1;
        }
        acknowledged
    })
}

/// Whether every document is owned by ann on `node`, reading fully consistently (`false`
/// while the node cannot run a fully consistent read).
fn all_present(node: &Node, vault: &str, documents: &[String]) -> bool {
    documents.chunks(500).all(|chunk| {
        let checks: Vec<Value> = chunk
            .iter()
            .map(|document| json!({"resource": document, "permission": "edit", "subject": "user:ann"}))
            .collect();
        let answer = node.post(
            &format!("/v1/vaults/{vault}/check/batch"),
            &json!({"checks": checks, "consistency": "fully_consistent"}),
        );
        // A member that has just rejoined may not know its leader yet: not an answer.
        if answer.status != 200 {
            return false;
        }
        answer.json["results"]
            .as_array()
            .expect("results")
            .iter()
            .all(|result| result["allowed"] == true)
    })
}

/// The vault's height on `node` (its local replica).
fn height(node: &Node, vault: &str) -> u64 {
    node.get(&format!("/v1/vaults/{vault}")).json["height"]
        .as_u64()
        .unwrap_or(0)
}

#[test]
fn three_nodes_replicate_and_survive_the_loss_of_their_leader() {
    let mut cluster = Cluster::start();
    let vault = vault_with_schema(cluster.node(0), "replicated");
    // Linked members share the rules their replicas apply with.
    let fingerprints: Vec<Value> = (0..3)
        .map(|index| cluster.node(index).get("/v1/cluster").json["rules_fingerprint"].clone())
        .collect();
    assert!(fingerprints[0].is_string(), "{fingerprints:?}");
    assert!(fingerprints.iter().all(|print| *print == fingerprints[0]));

    // A write through every member; its token reads back on every member.
    for index in 0..3 {
        let document = format!("document:via-{index}");
        let body =
            json!({"writes": [{"resource": document, "relation": "owner", "subject": "user:ann"}]});
        let written = cluster
            .node(index)
            .post(&format!("/v1/vaults/{vault}/relationships"), &body);
        assert_eq!(written.status, 200, "{}", written.text);
        let token = written.json["revision"].as_str().unwrap().to_string();
        for reader in 0..3 {
            let answer = cluster.node(reader).post(
                &format!("/v1/vaults/{vault}/check"),
                &json!({"resource": document, "permission": "edit", "subject": "user:ann",
                    "consistency": {"at_least_as_fresh": token}}),
            );
            assert_eq!(answer.status, 200, "{}", answer.text);
            assert_eq!(
                answer.json["allowed"], true,
                "node {reader}: {}",
                answer.text
            );
        }
    }

    // Clients write through the two followers of the vault's shard; its leader dies under
    // them.
    let shard = cluster.node(0).get(&format!("/v1/vaults/{vault}")).json["shard"]
        .as_u64()
        .expect("the vault's shard");
    assert!(shard >= 1, "vaults live in data shards");
    let leader = cluster.agreed_leader(&[0, 1, 2], shard);
    let followers: Vec<usize> = (0..3).filter(|index| *index != leader).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = followers
        .iter()
        .zip(["a", "b"])
        .map(|(index, name)| {
            writer(
                cluster.node(*index).addr.clone(),
                vault.clone(),
                name,
                Arc::clone(&stop),
            )
        })
        .collect();
    let first = followers[0];
    assert!(
        wait_until(Duration::from_secs(30), || height(
            cluster.node(first),
            &vault
        ) >= 40),
        "the writers made no progress"
    );
    cluster.nodes[leader]
        .take()
        .expect("the leader runs")
        .kill();
    let before = height(cluster.node(first), &vault);
    let new_leader = cluster.agreed_leader(&followers, shard);
    assert_ne!(new_leader, leader);
    assert!(
        wait_until(Duration::from_secs(30), || height(
            cluster.node(first),
            &vault
        ) >= before + 40),
        "writes did not continue under the new leader"
    );
    stop.store(true, Ordering::Relaxed);
    let acknowledged: Vec<String> = writers
        .into_iter()
        .flat_map(|writer| writer.join().unwrap())
        .collect();
    assert!(
        acknowledged.len() >= 40,
        "{} acknowledged",
        acknowledged.len()
    );
    for index in &followers {
        assert!(
            all_present(cluster.node(*index), &vault, &acknowledged),
            "an acknowledged write is missing on node {}",
            index + 1
        );
    }

    // The killed node comes back, catches up, and holds the same ledger.
    cluster.start_node(leader);
    cluster.wait_ready(leader);
    let target = height(cluster.node(new_leader), &vault);
    assert!(
        wait_until(Duration::from_secs(30), || height(
            cluster.node(leader),
            &vault
        ) >= target),
        "the restarted node did not catch up"
    );
    let block = |index: usize| {
        cluster
            .node(index)
            .get(&format!("/v1/vaults/{vault}/blocks/{target}"))
            .json
    };
    let reference = block(new_leader);
    assert!(reference["hash"].is_string(), "{reference}");
    for index in 0..3 {
        let this = block(index);
        assert_eq!(this["hash"], reference["hash"], "node {}", index + 1);
        assert_eq!(
            this["state_root"],
            reference["state_root"],
            "node {}",
            index + 1
        );
        let verified = cluster
            .node(index)
            .get(&format!("/v1/vaults/{vault}/ledger/verify"));
        assert_eq!(
            verified.json["holds"],
            true,
            "node {}: {}",
            index + 1,
            verified.text
        );
    }
    assert!(wait_until(Duration::from_secs(30), || all_present(
        cluster.node(leader),
        &vault,
        &acknowledged
    )));
}

#[test]
fn a_minority_refuses_writes_with_a_retryable_error_and_the_majority_goes_on() {
    let cluster = Cluster::start();
    let vault = vault_with_schema(cluster.node(0), "partitioned");
    // The singleton job runs on exactly one member (the holder of its lease).
    let runs_gc = |index: usize| {
        cluster.node(index).get("/v1/cluster").json["jobs"]
            .as_array()
            .is_some_and(|jobs| jobs.iter().any(|job| job["running_here"] == true))
    };
    assert!(
        wait_until(Duration::from_secs(30), || (0..3)
            .filter(|index| runs_gc(*index))
            .count()
            == 1),
        "the gc job does not run on exactly one node"
    );
    let alone = 0;

    // Pause the other two: node 1 is a minority of one.
    cluster.node(1).signal("STOP");
    cluster.node(2).signal("STOP");
    let mut refusal = None;
    let refused = wait_until(Duration::from_secs(40), || {
        let body = json!({"writes": [{"resource": "document:minority", "relation": "owner",
            "subject": "user:ann"}]});
        let answer = cluster
            .node(alone)
            .post(&format!("/v1/vaults/{vault}/relationships"), &body);
        let retryable = answer.status == 503 && answer.header("retry-after").is_some();
        refusal = Some(answer);
        retryable
    });
    let refusal = refusal.expect("at least one attempt");
    assert!(
        refused,
        "the minority never refused clearly: {}",
        refusal.text
    );
    assert!(
        refusal.json["detail"].as_str().unwrap().contains("leader"),
        "{}",
        refusal.text
    );
    cluster.node(1).signal("CONT");
    cluster.node(2).signal("CONT");

    // Whole again: writes go through.
    assert!(
        wait_until(Duration::from_secs(30), || write_one(
            &cluster.node(alone).addr,
            &vault,
            "document:healed"
        ) == 200),
        "the cluster did not heal"
    );

    // A majority of two keeps going while the third is paused.
    cluster.node(2).signal("STOP");
    assert!(
        wait_until(Duration::from_secs(30), || write_one(
            &cluster.node(1).addr,
            &vault,
            "document:majority"
        ) == 200),
        "the majority stopped accepting writes"
    );
    cluster.node(2).signal("CONT");
    let written = [
        "document:healed".to_string(),
        "document:majority".to_string(),
    ];
    assert!(
        wait_until(Duration::from_secs(30), || all_present(
            cluster.node(2),
            &vault,
            &written
        )),
        "the paused node did not catch up"
    );
}

/// The voters of shard 0 as `node` sees them.
fn voters(node: &Node) -> Vec<u64> {
    node.try_get("/v1/cluster")
        .and_then(|answer| {
            answer.json["shards"][0]["voters"]
                .as_array()
                .map(|voters| voters.iter().filter_map(Value::as_u64).collect())
        })
        .unwrap_or_default()
}

/// Reads through `addrs` in turn until stopped; returns (reads, failed reads).
fn reader(
    addrs: Vec<String>,
    vault: String,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<(u64, Vec<String>)> {
    std::thread::spawn(move || {
        let (mut reads, mut failures) = (0u64, Vec::new());
        while !stop.load(Ordering::Relaxed) {
            for addr in &addrs {
                let body = json!({"resource": "document:seed-0", "permission": "edit",
                    "subject": "user:ann"});
                let answer = try_http(
                    addr,
                    "POST",
                    &format!("/v1/vaults/{vault}/check"),
                    Some(body.to_string().as_bytes()),
                );
                reads += 1;
                match answer {
                    Ok(answer) if answer.status == 200 && answer.json["allowed"] == true => {}
                    Ok(answer) => failures.push(format!("{addr}: {}", answer.text)),
                    Err(error) => failures.push(format!("{addr}: {error}")),
                }
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        (reads, failures)
    })
}

#[test]
fn a_fourth_node_joins_and_a_founder_leaves_while_the_data_stays_available() {
    let mut cluster = Cluster::start();
    let vault = vault_with_schema(cluster.node(0), "membership");
    let seeded: Vec<String> = (0..20)
        .map(|index| format!("document:seed-{index}"))
        .collect();
    for document in &seeded {
        assert_eq!(write_one(&cluster.node(0).addr, &vault, document), 200);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let addrs = vec![cluster.node(0).addr.clone(), cluster.node(1).addr.clone()];
    let reads = reader(addrs, vault.clone(), Arc::clone(&stop));

    // Node 4 starts empty and joins through an API call on a founder.
    cluster.start_joiner(3);
    let added = cluster.node(1).post(
        "/v1/cluster/members",
        &json!({"id": 4, "address": cluster.cluster_address(3)}),
    );
    assert_eq!(added.status, 202, "{}", added.text);
    assert!(
        wait_until(Duration::from_secs(60), || voters(cluster.node(0))
            == [1, 2, 3, 4]),
        "node 4 never became a voter: {:?}; the members' views: {}",
        voters(cluster.node(0)),
        cluster.views()
    );
    assert!(
        wait_until(Duration::from_secs(60), || all_present(
            cluster.node(3),
            &vault,
            &seeded
        )),
        "node 4 never received the data"
    );
    assert_eq!(
        write_one(&cluster.node(3).addr, &vault, "document:via-4"),
        200
    );

    // Founder 3 leaves, through an API call on the newcomer.
    // A 503 (a shard between leaders) says retry: a client does, after Retry-After.
    let mut removed = cluster.node(3).delete("/v1/cluster/members/3");
    for _ in 0..30 {
        if removed.status != 503 {
            break;
        }
        std::thread::sleep(Duration::from_secs(1));
        removed = cluster.node(3).delete("/v1/cluster/members/3");
    }
    assert_eq!(removed.status, 202, "{}", removed.text);
    assert!(
        wait_until(Duration::from_secs(60), || voters(cluster.node(0))
            == [1, 2, 4]),
        "node 3 was never removed: {:?}; the members' views: {}",
        voters(cluster.node(0)),
        cluster.views()
    );
    let mut written = seeded.clone();
    written.push("document:via-4".to_string());
    for (index, document) in [(0, "document:after-1"), (3, "document:after-4")] {
        assert!(
            wait_until(Duration::from_secs(30), || write_one(
                &cluster.node(index).addr,
                &vault,
                document
            ) == 200),
            "no write through node {} after the change",
            index + 1
        );
        written.push(document.to_string());
    }
    for index in [0, 1, 3] {
        assert!(
            wait_until(Duration::from_secs(30), || all_present(
                cluster.node(index),
                &vault,
                &written
            )),
            "node {} misses a write",
            index + 1
        );
    }
    stop.store(true, Ordering::Relaxed);
    let (count, failures) = reads.join().unwrap();
    assert!(count > 0);
    assert!(
        failures.is_empty(),
        "{} of {count} reads failed: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
}

/// Each member's count of shards it leads, as member `asked` sees the leaders (`None` while
/// a shard has no known leader).
fn leaderships(node: &Node) -> Option<Vec<usize>> {
    let cluster = node.try_get("/v1/cluster")?;
    let mut led = vec![0; FOUNDERS];
    for shard in cluster.json["shards"].as_array()? {
        let leader = shard["leader"].as_u64()?;
        led[usize::try_from(leader).ok()? - 1] += 1;
    }
    Some(led)
}

/// The balancer's requested transfers, summed over the members (from `/metrics`).
fn transfers_requested(cluster: &Cluster) -> u64 {
    (0..FOUNDERS)
        .filter_map(|index| cluster.node(index).try_get("/metrics"))
        .flat_map(|metrics| {
            metrics
                .text
                .lines()
                .filter(|line| line.starts_with("inferadb_leader_transfers_requested_total"))
                .filter_map(|line| line.split_whitespace().last()?.parse::<f64>().ok())
                .collect::<Vec<_>>()
        })
        .sum::<f64>() as u64
}

#[test]
fn the_leader_balancer_spreads_leaderships_an_operator_piled_on_one_member() {
    // Shard 0 and two data shards on three members; a fast balancer.
    let cluster = Cluster::start_with(&[
        ("INFERADB__CLUSTER__DATA_SHARDS", "2"),
        ("INFERADB__JOBS__LEADER_BALANCE__INTERVAL_MS", "100"),
    ]);
    let node = cluster.node(0);
    let refused = node.post("/v1/cluster/shards/1/leader", &json!({"node": 9}));
    assert_eq!(refused.status, 400, "{}", refused.text);
    assert_eq!(refused.json["field"], "node", "{}", refused.text);
    let missing = node.post("/v1/cluster/shards/7/leader", &json!({"node": 1}));
    assert_eq!(missing.status, 404, "{}", missing.text);
    // An operator moves every leadership to node 1; the balancer spreads them again.
    for shard in 0..3 {
        let moved = node.post(
            &format!("/v1/cluster/shards/{shard}/leader"),
            &json!({"node": 1}),
        );
        assert_eq!(moved.status, 202, "{}", moved.text);
    }
    let balanced = wait_until(Duration::from_secs(60), || {
        transfers_requested(&cluster) > 0
            && (0..FOUNDERS).all(|index| leaderships(cluster.node(index)) == Some(vec![1, 1, 1]))
    });
    let seen: Vec<_> = (0..FOUNDERS)
        .map(|index| leaderships(cluster.node(index)))
        .collect();
    assert!(
        balanced,
        "leaderships per member never became 1/1/1 by the balancer ({} transfers): {seen:?}",
        transfers_requested(&cluster)
    );
    // Writes go on through every member.
    let vault = vault_with_schema(node, "balanced");
    for index in 0..FOUNDERS {
        let document = format!("document:b{index}");
        assert_eq!(write_one(&cluster.node(index).addr, &vault, &document), 200);
    }
}

//! The cluster transport between real processes. ractor's process-group registry is global
//! to a process, so each peer node runs in its own process: this test binary re-executes
//! itself as `peer_process --exact --nocapture` with the peer's configuration (JSON) in
//! `INFERADB_CLUSTER_TEST_PEER`. A peer echoes what it receives (raft envelopes back to their
//! sender, proposals with a prefix, read barriers with a fixed index) until its stdin closes
//! or its lifetime ends; the guard that spawned it kills it when dropped.
//!
//! At most one cluster runs per process, so the tests take turns ([`SERIAL`]); each still
//! uses its own node ids, so that a failure cannot be mistaken for another test's.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::io::Read;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use inferadb_cluster::{
    Cluster, ClusterConfig, ClusterError, ConfigError, ForwardError, HandlerFuture,
    PeerChangeError, PeerHandler, TlsConfig, TlsFileProblem,
};
use inferadb_messages::{Applied, ProposeError};
use inferadb_raft::transport::{PeerEnvelope, Transport};
use raft::eraftpb::{Message, MessageType};
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};
use tokio::time::Instant;

/// Held by each test for its whole run: one cluster per process.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The environment variable that turns `peer_process` into a peer node.
const PEER_ENV: &str = "INFERADB_CLUSTER_TEST_PEER";
const COOKIE: &str = "inferadb-test-cookie-0123456789";
const OTHER_COOKIE: &str = "a-different-cookie-9876543210";
const RECONNECT_INTERVAL_MS: u64 = 100;
const FORWARD_TIMEOUT_MS: u64 = 3_000;
/// A peer process stops by itself after this long, whatever happens to its parent.
const PEER_LIFETIME: Duration = Duration::from_secs(30);
/// How long a test waits for a condition (a link, an echo) before failing.
const CONDITION_DEADLINE: Duration = Duration::from_secs(10);
const POLL_INTERVAL: Duration = Duration::from_millis(20);
/// How long a raft envelope waits for its echo before it is sent again.
const RESEND_INTERVAL: Duration = Duration::from_millis(200);
/// The raft group used by the exchanges.
const GROUP: u64 = 9;
/// The peer answers proposals and read barriers on this group with `NotLeader`.
const GROUP_NOT_LEADER: u64 = 0;
/// The peer answers proposals on this group with `Failed`.
const GROUP_FAILED: u64 = 1;
const FAILURE_REASON: &str = "disk on fire";
const ECHO_PREFIX: &[u8] = b"echo:";
/// The peer answers a read barrier on group `g` with `READ_INDEX_BASE + g`.
const READ_INDEX_BASE: u64 = 1_000;

// ---------------------------------------------------------------------------------------------
// The peer process.

/// Runs a peer node when the environment asks for one; otherwise a no-op test.
#[test]
fn peer_process() {
    let Ok(spec) = std::env::var(PEER_ENV) else {
        return;
    };
    let config: ClusterConfig = serde_json::from_str(&spec).expect("a peer configuration");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run_peer(config));
}

async fn run_peer(config: ClusterConfig) {
    let handler = Arc::new(EchoHandler::default());
    let cluster = Cluster::start(config, handler.clone(), None).await.unwrap();
    let _ = handler.transport.set(cluster.transport());
    let (closed, stdin_closed) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let _ = std::io::stdin().read_to_end(&mut Vec::new());
        let _ = closed.send(());
    });
    tokio::select! {
        _ = stdin_closed => {}
        () = tokio::time::sleep(PEER_LIFETIME) => {}
    }
    cluster.stop().await;
}

/// The peer's handler: echoes everything back.
#[derive(Default)]
struct EchoHandler {
    transport: OnceLock<Arc<dyn Transport>>,
}

impl PeerHandler for EchoHandler {
    fn raft(&self, envelope: PeerEnvelope) {
        let (Some(transport), Ok(mut message)) = (self.transport.get(), envelope.open()) else {
            return;
        };
        std::mem::swap(&mut message.from, &mut message.to);
        message.set_msg_type(MessageType::MsgHeartbeatResponse);
        transport.send(PeerEnvelope::seal(envelope.group, &message).unwrap());
    }

    fn propose(&self, group: u64, data: Vec<u8>) -> HandlerFuture<Result<Applied, ProposeError>> {
        Box::pin(async move {
            match group {
                GROUP_NOT_LEADER => Err(ProposeError::NotLeader {
                    leader_hint: Some(7),
                }),
                GROUP_FAILED => Err(ProposeError::Failed(FAILURE_REASON.into())),
                _ => Ok(Applied {
                    index: group,
                    output: [ECHO_PREFIX, &data].concat(),
                }),
            }
        })
    }

    fn read_barrier(&self, group: u64) -> HandlerFuture<Result<u64, ProposeError>> {
        Box::pin(async move {
            match group {
                GROUP_NOT_LEADER => Err(ProposeError::NotLeader { leader_hint: None }),
                _ => Ok(READ_INDEX_BASE + group),
            }
        })
    }
}

// ---------------------------------------------------------------------------------------------
// The test side.

/// A peer process, killed when dropped.
struct PeerProcess {
    child: Child,
}

impl PeerProcess {
    fn spawn(config: &ClusterConfig) -> PeerProcess {
        let child = Command::new(std::env::current_exe().unwrap())
            .args(["peer_process", "--exact", "--nocapture"])
            .env(PEER_ENV, serde_json::to_string(config).unwrap())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        PeerProcess { child }
    }

    fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for PeerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The parent's handler: records the envelopes it receives.
struct Recorder {
    envelopes: UnboundedSender<PeerEnvelope>,
}

impl PeerHandler for Recorder {
    fn raft(&self, envelope: PeerEnvelope) {
        let _ = self.envelopes.send(envelope);
    }

    fn propose(&self, _group: u64, _data: Vec<u8>) -> HandlerFuture<Result<Applied, ProposeError>> {
        Box::pin(async { Err(ProposeError::NotLeader { leader_hint: None }) })
    }

    fn read_barrier(&self, _group: u64) -> HandlerFuture<Result<u64, ProposeError>> {
        Box::pin(async { Err(ProposeError::NotLeader { leader_hint: None }) })
    }
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// A port nothing listens on right now.
#[allow(clippy::disallowed_methods)] // a test's port spread, never a decision of the product
fn free_port() -> u16 {
    // Below the kernel's ephemeral range (32768 and up): outgoing connections never take
    // these ports, so one probed free stays free until the process that must listen on it
    // binds it. Spread by process id and a counter so parallel tests rarely probe alike.
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| u64::from(elapsed.subsec_nanos()));
    let seed = u64::from(std::process::id()) * 7_919 + nanos;
    for _ in 0..1_000 {
        let step = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let port = 20_000 + u16::try_from((seed + step * 104_729) % 12_000).unwrap_or(0);
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port between 20000 and 32000")
}

fn config(node_id: u64, listen: SocketAddr, peers: &[(u64, SocketAddr)]) -> ClusterConfig {
    ClusterConfig {
        peers: peers.iter().copied().collect::<BTreeMap<_, _>>(),
        reconnect_interval_ms: RECONNECT_INTERVAL_MS,
        forward_timeout_ms: FORWARD_TIMEOUT_MS,
        ..ClusterConfig::new(node_id, listen, COOKIE)
    }
}

/// Starts this process's node (on a port the OS picks) with a recorder handler.
async fn start_parent(
    node_id: u64,
    peers: &[(u64, SocketAddr)],
) -> (Cluster, UnboundedReceiver<PeerEnvelope>) {
    let (envelopes, received) = unbounded_channel();
    let cluster = Cluster::start(
        config(node_id, loopback(0), peers),
        Arc::new(Recorder { envelopes }),
        None,
    )
    .await
    .unwrap();
    assert_ne!(cluster.local_addr().port(), 0, "the bound port is reported");
    (cluster, received)
}

/// Spawns the peer `node_id` on `port`, linked to the parent only.
fn spawn_peer(node_id: u64, port: u16, parent: &Cluster, cookie: &str) -> PeerProcess {
    let mut peer = config(
        node_id,
        loopback(port),
        &[(parent.node_id(), parent.local_addr())],
    );
    peer.cookie = cookie.into();
    PeerProcess::spawn(&peer)
}

/// Spawns the peer `node_id` on `port` with no peers of its own: it only accepts, so only
/// this process's connector can link it.
fn spawn_passive_peer(node_id: u64, port: u16) -> PeerProcess {
    PeerProcess::spawn(&config(node_id, loopback(port), &[]))
}

async fn wait_for(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + CONDITION_DEADLINE;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

async fn wait_linked(cluster: &Cluster, peer: u64) {
    wait_for(&format!("a link to {peer}"), || {
        cluster.linked_peers().contains(&peer)
    })
    .await;
}

fn heartbeat(from: u64, to: u64, term: u64) -> PeerEnvelope {
    let mut message = Message::default();
    message.set_msg_type(MessageType::MsgHeartbeat);
    message.from = from;
    message.to = to;
    message.term = term;
    PeerEnvelope::seal(GROUP, &message).unwrap()
}

/// Sends a heartbeat of `term` to `peer` until its echo comes back (raft-style: the link
/// may lose a message while it settles), and checks the echo.
async fn exchange(
    cluster: &Cluster,
    received: &mut UnboundedReceiver<PeerEnvelope>,
    peer: u64,
    term: u64,
) {
    let transport = cluster.transport();
    let deadline = Instant::now() + CONDITION_DEADLINE;
    loop {
        assert!(
            Instant::now() < deadline,
            "no echo of term {term} from {peer}"
        );
        transport.send(heartbeat(cluster.node_id(), peer, term));
        let Ok(Some(echo)) = tokio::time::timeout(RESEND_INTERVAL, received.recv()).await else {
            continue;
        };
        let message = echo.open().unwrap();
        if message.term != term {
            continue; // the echo of an earlier resend
        }
        assert_eq!(
            (echo.group, echo.from, echo.to),
            (GROUP, peer, cluster.node_id())
        );
        assert_eq!(message.get_msg_type(), MessageType::MsgHeartbeatResponse);
        return;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_link_and_exchange_raft_envelopes_both_ways() {
    let _serial = SERIAL.lock().await;
    let port = free_port();
    let (cluster, mut received) = start_parent(1, &[(2, loopback(port))]).await;
    let _peer = spawn_peer(2, port, &cluster, COOKIE);
    wait_linked(&cluster, 2).await;
    for term in 1..=3 {
        exchange(&cluster, &mut received, 2, term).await;
    }
    let stats = cluster.stats();
    assert!(
        stats.messages_sent >= 3 && stats.messages_received >= 3,
        "{stats:?}"
    );
    assert_eq!(stats.messages_refused, 0);
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_proposals_and_read_barriers_return_the_remote_answers() {
    let _serial = SERIAL.lock().await;
    let port = free_port();
    let (cluster, _received) = start_parent(11, &[(12, loopback(port))]).await;
    let _peer = spawn_peer(12, port, &cluster, COOKIE);
    wait_linked(&cluster, 12).await;

    assert_eq!(
        cluster
            .propose(12, GROUP, b"write".to_vec())
            .await
            .map(|applied| applied.output),
        Ok(b"echo:write".to_vec())
    );
    assert_eq!(
        cluster
            .propose(12, GROUP_NOT_LEADER, Vec::new())
            .await
            .map(|applied| applied.output),
        Err(ForwardError::Remote(ProposeError::NotLeader {
            leader_hint: Some(7)
        }))
    );
    assert_eq!(
        cluster
            .propose(12, GROUP_FAILED, Vec::new())
            .await
            .map(|applied| applied.output),
        Err(ForwardError::Remote(ProposeError::Failed(
            FAILURE_REASON.into()
        )))
    );
    assert_eq!(
        cluster.read_barrier(12, GROUP).await,
        Ok(READ_INDEX_BASE + GROUP)
    );
    assert_eq!(
        cluster.read_barrier(12, GROUP_NOT_LEADER).await,
        Err(ForwardError::Remote(ProposeError::NotLeader {
            leader_hint: None
        }))
    );
    assert_eq!(cluster.stats().messages_sent, 5);
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_with_another_cookie_never_links() {
    let _serial = SERIAL.lock().await;
    let (stranger_port, member_port) = (free_port(), free_port());
    let (cluster, _received) = start_parent(
        21,
        &[(22, loopback(stranger_port)), (23, loopback(member_port))],
    )
    .await;
    let mut stranger = spawn_peer(22, stranger_port, &cluster, OTHER_COOKIE);
    let _member = spawn_peer(23, member_port, &cluster, COOKIE);
    // The member linking shows both connectors at work; the stranger, connecting both ways
    // all along, must still be refused over further rounds.
    wait_linked(&cluster, 23).await;
    let rounds_end = Instant::now() + Duration::from_millis(10 * RECONNECT_INTERVAL_MS);
    while Instant::now() < rounds_end {
        assert_eq!(cluster.linked_peers(), vec![23]);
        tokio::time::sleep(POLL_INTERVAL).await;
    }
    assert_eq!(
        cluster
            .propose(22, GROUP, Vec::new())
            .await
            .map(|applied| applied.output),
        Err(ForwardError::NoLink { node: 22 })
    );
    assert!(
        stranger.is_running(),
        "the stranger was refused, it did not crash"
    );
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_peer_is_linked_again_and_messages_flow() {
    let _serial = SERIAL.lock().await;
    let port = free_port();
    let (cluster, mut received) = start_parent(31, &[(32, loopback(port))]).await;
    let mut peer = spawn_peer(32, port, &cluster, COOKIE);
    wait_linked(&cluster, 32).await;
    exchange(&cluster, &mut received, 32, 1).await;

    peer.kill();
    wait_for("the link to close", || cluster.linked_peers().is_empty()).await;
    let dropped = cluster.stats().messages_dropped_no_link;
    cluster.transport().send(heartbeat(31, 32, 2));
    assert_eq!(cluster.stats().messages_dropped_no_link, dropped + 1);

    // The restarted peer does not connect by itself: relinking is this node's connector's.
    let _restarted = spawn_passive_peer(32, port);
    wait_linked(&cluster, 32).await;
    exchange(&cluster, &mut received, 32, 3).await;
    assert_eq!(
        cluster
            .propose(32, GROUP, b"again".to_vec())
            .await
            .map(|applied| applied.output),
        Ok(b"echo:again".to_vec())
    );
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_never_answers_the_handshake_is_closed_and_retried() {
    let _serial = SERIAL.lock().await;
    // Accepts connections and keeps them open without ever answering.
    let silent = tokio::net::TcpListener::bind(loopback(0)).await.unwrap();
    let silent_address = silent.local_addr().unwrap();
    let (accepted, mut connections) = unbounded_channel();
    let acceptor = tokio::spawn(async move {
        while let Ok((stream, _)) = silent.accept().await {
            let _ = accepted.send(stream);
        }
    });
    let mut config = config(61, loopback(0), &[(62, silent_address)]);
    config.handshake_timeout_ms = 300;
    let (envelopes, _received) = unbounded_channel();
    let cluster = Cluster::start(config, Arc::new(Recorder { envelopes }), None)
        .await
        .unwrap();

    let mut first = tokio::time::timeout(CONDITION_DEADLINE, connections.recv())
        .await
        .unwrap()
        .unwrap();
    // The connector closes the stuck session (the silent side reads its handshake, then
    // the end of the stream) and connects again.
    let mut bytes = Vec::new();
    tokio::time::timeout(CONDITION_DEADLINE, first.read_to_end(&mut bytes))
        .await
        .expect("the stuck session is closed")
        .unwrap();
    assert!(!bytes.is_empty(), "the connector sent its name first");
    tokio::time::timeout(CONDITION_DEADLINE, connections.recv())
        .await
        .expect("a new connection after the handshake timeout")
        .unwrap();
    assert!(cluster.linked_peers().is_empty());
    cluster.stop().await;
    acceptor.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_to_unlinked_or_unknown_nodes_are_dropped_and_counted_without_blocking() {
    let _serial = SERIAL.lock().await;
    // Node 42 is configured but nothing listens at its address; node 99 is not configured.
    let (cluster, _received) = start_parent(41, &[(42, loopback(free_port()))]).await;
    let transport = cluster.transport();
    let started = Instant::now();
    transport.send(heartbeat(41, 42, 1));
    transport.send(heartbeat(41, 99, 1));
    assert!(
        started.elapsed() < Duration::from_millis(100),
        "a send blocked"
    );
    assert_eq!(cluster.stats().messages_dropped_no_link, 2);

    assert_eq!(
        cluster
            .propose(42, GROUP, Vec::new())
            .await
            .map(|applied| applied.output),
        Err(ForwardError::NoLink { node: 42 })
    );
    assert_eq!(
        cluster.read_barrier(99, GROUP).await,
        Err(ForwardError::NoLink { node: 99 })
    );
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "a request waited for a link"
    );
    let stats = cluster.stats();
    assert_eq!(
        (stats.messages_dropped_no_link, stats.messages_sent),
        (4, 0)
    );
    assert!(cluster.linked_peers().is_empty());
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_refuses_a_bad_configuration_a_taken_port_and_a_second_cluster() {
    let _serial = SERIAL.lock().await;
    let (envelopes, _received) = unbounded_channel();
    let handler: Arc<dyn PeerHandler> = Arc::new(Recorder { envelopes });
    let short = ClusterConfig::new(51, loopback(0), "short");
    assert!(matches!(
        Cluster::start(short, handler.clone(), None).await,
        Err(ClusterError::Config(ConfigError::CookieTooShort {
            length_bytes: 5
        }))
    ));
    let taken = std::net::TcpListener::bind(loopback(0)).unwrap();
    let address = taken.local_addr().unwrap();
    let busy = ClusterConfig::new(52, address, COOKIE);
    assert!(matches!(
        Cluster::start(busy, handler.clone(), None).await,
        Err(ClusterError::Listen { address: reported, .. }) if reported == address
    ));

    // One per process; the failed starts above did not keep the slot, and stop frees it.
    let first = Cluster::start(
        ClusterConfig::new(53, loopback(0), COOKIE),
        handler.clone(),
        None,
    )
    .await
    .unwrap();
    let second = ClusterConfig::new(54, loopback(0), COOKIE);
    assert!(matches!(
        Cluster::start(second.clone(), handler.clone(), None).await,
        Err(ClusterError::AlreadyRunning)
    ));
    first.stop().await;
    Cluster::start(second, handler, None)
        .await
        .unwrap()
        .stop()
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_added_at_runtime_are_linked_and_removed_ones_are_cut_off() {
    let _serial = SERIAL.lock().await;
    let (passive_port, active_port) = (free_port(), free_port());
    let (cluster, mut received) = start_parent(71, &[]).await;
    // 72 only accepts, so only this node's connector can link it; 73 lists this node and
    // dials it on its own, before it is a peer and again after it is removed.
    let _passive = spawn_passive_peer(72, passive_port);
    let _active = spawn_peer(73, active_port, &cluster, COOKIE);
    assert!(cluster.peers().is_empty() && cluster.linked_peers().is_empty());

    // First at an address nothing listens on, then moved to the right one.
    cluster.add_peer(72, loopback(free_port())).unwrap();
    cluster.add_peer(72, loopback(passive_port)).unwrap();
    cluster.add_peer(73, loopback(active_port)).unwrap();
    wait_linked(&cluster, 72).await;
    wait_linked(&cluster, 73).await;
    // Applying the same change again changes nothing, and the links stay up.
    cluster.add_peer(72, loopback(passive_port)).unwrap();
    cluster.add_peer(73, loopback(active_port)).unwrap();
    let members = BTreeMap::from([(72, loopback(passive_port)), (73, loopback(active_port))]);
    assert_eq!(cluster.peers(), members);
    assert_eq!(cluster.linked_peers(), vec![72, 73]);
    exchange(&cluster, &mut received, 72, 1).await;
    exchange(&cluster, &mut received, 73, 1).await;
    assert_eq!(
        cluster
            .propose(72, GROUP, b"joined".to_vec())
            .await
            .map(|applied| applied.output),
        Ok(b"echo:joined".to_vec())
    );

    assert!(cluster.remove_peer(72) && cluster.remove_peer(73));
    assert!(!cluster.remove_peer(72), "removing twice is a no-op");
    assert!(cluster.peers().is_empty());
    assert_cut_off(&cluster, &[72, 73]).await;

    // Removal is not final: added again, each is linked again.
    cluster.add_peer(72, loopback(passive_port)).unwrap();
    cluster.add_peer(73, loopback(active_port)).unwrap();
    wait_linked(&cluster, 72).await;
    wait_linked(&cluster, 73).await;
    exchange(&cluster, &mut received, 72, 2).await;
    exchange(&cluster, &mut received, 73, 2).await;
    cluster.stop().await;
}

/// Checks, over several reconnect rounds, that none of `removed` is linked again (73 keeps
/// dialling this node) and that what is sent to them is dropped and counted.
async fn assert_cut_off(cluster: &Cluster, removed: &[u64]) {
    let transport = cluster.transport();
    let rounds_end = Instant::now() + Duration::from_millis(10 * RECONNECT_INTERVAL_MS);
    let mut term = 100;
    while Instant::now() < rounds_end {
        assert!(cluster.linked_peers().is_empty());
        for &peer in removed {
            let before = cluster.stats();
            transport.send(heartbeat(cluster.node_id(), peer, term));
            let after = cluster.stats();
            assert_eq!(
                after.messages_dropped_no_link,
                before.messages_dropped_no_link + 1
            );
            assert_eq!(after.messages_sent, before.messages_sent);
        }
        term += 1;
        tokio::time::sleep(POLL_INTERVAL).await;
    }
    for &node in removed {
        assert_eq!(
            cluster
                .propose(node, GROUP, Vec::new())
                .await
                .map(|applied| applied.output),
            Err(ForwardError::NoLink { node })
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_peer_is_no_longer_dialled() {
    let _serial = SERIAL.lock().await;
    // Accepts connections and keeps them open without ever answering, to count the dials.
    let silent = tokio::net::TcpListener::bind(loopback(0)).await.unwrap();
    let silent_address = silent.local_addr().unwrap();
    let (accepted, mut connections) = unbounded_channel();
    let acceptor = tokio::spawn(async move {
        while let Ok((stream, _)) = silent.accept().await {
            let _ = accepted.send(stream);
        }
    });
    let mut config = config(81, loopback(0), &[]);
    config.handshake_timeout_ms = 300;
    let (envelopes, _received) = unbounded_channel();
    let cluster = Cluster::start(config, Arc::new(Recorder { envelopes }), None)
        .await
        .unwrap();

    cluster.add_peer(82, silent_address).unwrap();
    let mut first = tokio::time::timeout(CONDITION_DEADLINE, connections.recv())
        .await
        .expect("the added peer is dialled")
        .unwrap();
    assert!(cluster.remove_peer(82));
    // The attempt under way ends with the handshake timeout (a dial that raced the removal
    // has landed by then); after that nothing dials the removed peer again.
    let mut bytes = Vec::new();
    tokio::time::timeout(CONDITION_DEADLINE, first.read_to_end(&mut bytes))
        .await
        .expect("the stuck session is closed")
        .unwrap();
    while connections.try_recv().is_ok() {}
    let rounds = Duration::from_millis(10 * RECONNECT_INTERVAL_MS);
    assert!(
        tokio::time::timeout(rounds, connections.recv())
            .await
            .is_err(),
        "the removed peer was dialled again"
    );
    cluster.stop().await;
    acceptor.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_peer_refuses_this_node_and_node_zero() {
    let _serial = SERIAL.lock().await;
    let (cluster, _received) = start_parent(91, &[(92, loopback(free_port()))]).await;
    let own = cluster.add_peer(91, cluster.local_addr());
    assert_eq!(own, Err(PeerChangeError::IsSelf { node_id: 91 }));
    assert!(own.unwrap_err().to_string().contains("own id 91"));
    let zero = cluster.add_peer(0, loopback(free_port()));
    assert_eq!(zero, Err(PeerChangeError::IdZero));
    assert!(zero.unwrap_err().to_string().contains("at least 1"));
    assert_eq!(cluster.peers().into_keys().collect::<Vec<_>>(), vec![92]);
    assert!(!cluster.remove_peer(93), "never a peer");
    cluster.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Mutual TLS.

/// Throwaway certificates, made at test time in a temporary directory: the cluster's
/// authority, a member certificate it signed (one for every node, valid for `127.0.0.1` as
/// server and client), and a stranger's certificate signed by another authority.
struct Certificates {
    dir: tempfile::TempDir,
}

impl Certificates {
    fn new() -> Certificates {
        let certificates = Certificates {
            dir: tempfile::tempdir().unwrap(),
        };
        let cluster_ca = authority("inferadb test cluster CA");
        let other_ca = authority("another CA");
        certificates.write("ca.pem", &cluster_ca.pem());
        certificates.write_node("member", &cluster_ca);
        certificates.write_node("stranger", &other_ca);
        certificates
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn write(&self, name: &str, contents: &str) {
        std::fs::write(self.path(name), contents).unwrap();
    }

    fn write_node(&self, name: &str, ca: &rcgen::CertifiedIssuer<'static, rcgen::KeyPair>) {
        let mut params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.extended_key_usages = vec![
            rcgen::ExtendedKeyUsagePurpose::ServerAuth,
            rcgen::ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, ca).unwrap();
        self.write(&format!("{name}.pem"), &cert.pem());
        self.write(&format!("{name}.key"), &key.serialize_pem());
    }

    /// A member's files: its certificate signed by the cluster's authority, which it trusts.
    fn member(&self) -> TlsConfig {
        self.tls("member")
    }

    /// A stranger's files: a certificate signed by another authority, though it trusts the
    /// cluster's (so only its own certificate keeps it out).
    fn stranger(&self) -> TlsConfig {
        self.tls("stranger")
    }

    fn tls(&self, name: &str) -> TlsConfig {
        TlsConfig {
            cert_file: self.path(&format!("{name}.pem")),
            key_file: self.path(&format!("{name}.key")),
            ca_file: self.path("ca.pem"),
        }
    }
}

fn authority(name: &str) -> rcgen::CertifiedIssuer<'static, rcgen::KeyPair> {
    let mut params = rcgen::CertificateParams::default();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    rcgen::CertifiedIssuer::self_signed(params, rcgen::KeyPair::generate().unwrap()).unwrap()
}

/// Starts this process's node with `tls` (on a port the OS picks) and a recorder handler.
async fn start_tls_parent(
    node_id: u64,
    peers: &[(u64, SocketAddr)],
    tls: TlsConfig,
) -> (Cluster, UnboundedReceiver<PeerEnvelope>) {
    let (envelopes, received) = unbounded_channel();
    let mut config = config(node_id, loopback(0), peers);
    config.tls = Some(tls);
    let cluster = Cluster::start(config, Arc::new(Recorder { envelopes }), None)
        .await
        .unwrap();
    assert_ne!(cluster.local_addr().port(), 0, "the bound port is reported");
    (cluster, received)
}

/// Spawns the peer `node_id` on `port` with `tls` (plain TCP with `None`), linked to the
/// parent only.
fn spawn_tls_peer(
    node_id: u64,
    port: u16,
    parent: &Cluster,
    tls: Option<TlsConfig>,
) -> PeerProcess {
    let mut peer = config(
        node_id,
        loopback(port),
        &[(parent.node_id(), parent.local_addr())],
    );
    peer.tls = tls;
    PeerProcess::spawn(&peer)
}

/// Checks over ten reconnect rounds that the links stay exactly `linked`.
async fn assert_links_stay(cluster: &Cluster, linked: &[u64]) {
    let rounds_end = Instant::now() + Duration::from_millis(10 * RECONNECT_INTERVAL_MS);
    while Instant::now() < rounds_end {
        assert_eq!(cluster.linked_peers(), linked);
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_peers_link_and_exchange_envelopes_and_forwarded_requests() {
    let _serial = SERIAL.lock().await;
    let certificates = Certificates::new();
    let port = free_port();
    let (cluster, mut received) =
        start_tls_parent(101, &[(102, loopback(port))], certificates.member()).await;
    let _peer = spawn_tls_peer(102, port, &cluster, Some(certificates.member()));
    wait_linked(&cluster, 102).await;
    for term in 1..=3 {
        exchange(&cluster, &mut received, 102, term).await;
    }
    assert_eq!(
        cluster
            .propose(102, GROUP, b"sealed".to_vec())
            .await
            .map(|applied| applied.output),
        Ok(b"echo:sealed".to_vec())
    );
    assert_eq!(
        cluster.read_barrier(102, GROUP).await,
        Ok(READ_INDEX_BASE + GROUP)
    );
    assert_eq!(cluster.stats().messages_refused, 0);
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_node_refuses_a_plaintext_peer() {
    let _serial = SERIAL.lock().await;
    let certificates = Certificates::new();
    let (plain_port, member_port) = (free_port(), free_port());
    // This node lists 112 at an address nothing listens on, so that only 112 dials: a TLS
    // hello sent to a plaintext node aborts that node (see the crate doc's TLS section).
    let (cluster, _received) = start_tls_parent(
        111,
        &[(112, loopback(free_port())), (113, loopback(member_port))],
        certificates.member(),
    )
    .await;
    // Same cookie, no TLS: it dials this node in plain TCP every round.
    let mut plain = spawn_tls_peer(112, plain_port, &cluster, None);
    let _member = spawn_tls_peer(113, member_port, &cluster, Some(certificates.member()));
    wait_linked(&cluster, 113).await;
    assert_links_stay(&cluster, &[113]).await;
    assert_eq!(
        cluster
            .propose(112, GROUP, Vec::new())
            .await
            .map(|applied| applied.output),
        Err(ForwardError::NoLink { node: 112 })
    );
    assert!(
        plain.is_running(),
        "the plaintext peer was refused, it did not crash"
    );
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_whose_certificate_another_authority_signed_never_links() {
    let _serial = SERIAL.lock().await;
    let certificates = Certificates::new();
    let (stranger_port, member_port) = (free_port(), free_port());
    let (cluster, _received) = start_tls_parent(
        121,
        &[(122, loopback(stranger_port)), (123, loopback(member_port))],
        certificates.member(),
    )
    .await;
    // Same cookie, and it trusts this node's authority: only its certificate is wrong, both
    // as a server (this node dials it) and as a client (it dials this node).
    let mut stranger = spawn_tls_peer(122, stranger_port, &cluster, Some(certificates.stranger()));
    let _member = spawn_tls_peer(123, member_port, &cluster, Some(certificates.member()));
    wait_linked(&cluster, 123).await;
    assert_links_stay(&cluster, &[123]).await;
    assert_eq!(
        cluster
            .propose(122, GROUP, Vec::new())
            .await
            .map(|applied| applied.output),
        Err(ForwardError::NoLink { node: 122 })
    );
    assert!(
        stranger.is_running(),
        "the stranger was refused, it did not crash"
    );
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_connection_does_not_hold_up_tls_handshakes() {
    let _serial = SERIAL.lock().await;
    let certificates = Certificates::new();
    let port = free_port();
    // This node lists 132 at an address nothing listens on: only 132's own connection,
    // accepted after the silent one, can link them.
    let (cluster, mut received) =
        start_tls_parent(131, &[(132, loopback(free_port()))], certificates.member()).await;
    let silent = tokio::net::TcpStream::connect(cluster.local_addr())
        .await
        .unwrap();
    let _peer = spawn_tls_peer(132, port, &cluster, Some(certificates.member()));
    wait_linked(&cluster, 132).await;
    exchange(&cluster, &mut received, 132, 1).await;
    drop(silent);
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_refuses_unusable_tls_files_naming_the_field_and_the_file() {
    let _serial = SERIAL.lock().await;
    let certificates = Certificates::new();
    let (envelopes, _received) = unbounded_channel();
    let handler: Arc<dyn PeerHandler> = Arc::new(Recorder { envelopes });
    let start = |tls: TlsConfig| {
        let mut config = ClusterConfig::new(141, loopback(0), COOKIE);
        config.tls = Some(tls);
        Cluster::start(config, handler.clone(), None)
    };

    let missing = TlsConfig {
        cert_file: certificates.path("missing.pem"),
        ..certificates.member()
    };
    let Err(ClusterError::Config(error)) = start(missing.clone()).await else {
        panic!("a missing certificate file was accepted");
    };
    assert!(matches!(
        &error,
        ConfigError::TlsFile { field: "cert_file", path, problem: TlsFileProblem::Unreadable { .. } }
            if path == &missing.cert_file
    ));

    // A key where the certificate should be.
    let swapped = TlsConfig {
        cert_file: certificates.path("member.key"),
        ..certificates.member()
    };
    let Err(ClusterError::Config(error)) = start(swapped.clone()).await else {
        panic!("a certificate file without a certificate was accepted");
    };
    let expected = format!(
        "cluster.tls.cert_file `{}`: no certificate found",
        swapped.cert_file.display()
    );
    assert_eq!(error.to_string(), expected);
    assert_eq!(ClusterError::Config(error).to_string(), expected);

    // The failed starts kept no slot; the sound files start.
    start(certificates.member()).await.unwrap().stop().await;
}

//! [`Cluster`]: the running transport (node server, peer inbox, connector) and the handle
//! the node uses to send through it.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use inferadb_messages::peer::{
    decode_propose_reply, decode_read_barrier_reply, encode_forwarded_proposal,
    encode_read_barrier_request,
};
use inferadb_messages::{Applied, ConnectorMsg, ForwardedProposal, PayloadError, PeerMsg};
use inferadb_raft::transport::Transport;
use parking_lot::Mutex;
use ractor::rpc::CallResult;
use ractor::{Actor, ActorCell, ActorRef, RpcReplyPort, SpawnErr};
use ractor_cluster::node::NodeConnectionMode;
use ractor_cluster::{IncomingEncryptionMode, NodeServer, NodeServerMessage};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::config::ClusterConfig;
use crate::connector::{Connector, ConnectorArguments};
use crate::error::{ClusterError, ForwardError, PeerChangeError};
use crate::handler::PeerHandler;
use crate::inbox::{InboxArguments, PeerInbox};
use crate::links::{node_name, LinkEvents, Links};
use crate::peers::{PeerAdded, PeerSet};
use crate::stats::{ClusterStats, Counters};
use crate::tls::{accept_loop, Tls};
use crate::transport::ClusterTransport;

/// The id of the links book's subscription to the node server's events.
const LINK_EVENTS_SUBSCRIPTION: &str = "inferadb.cluster.links";

/// Whether a [`Cluster`] runs in this process (see [`ClusterError::AlreadyRunning`]).
static RUNNING: AtomicBool = AtomicBool::new(false);

/// This process's one cluster slot, released when dropped.
struct ProcessSlot;

impl ProcessSlot {
    fn claim() -> Result<ProcessSlot, ClusterError> {
        RUNNING
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .map(|_| ProcessSlot)
            .map_err(|_| ClusterError::AlreadyRunning)
    }
}

impl Drop for ProcessSlot {
    fn drop(&mut self) {
        RUNNING.store(false, Ordering::Release);
    }
}

/// The running cluster transport; at most one per process. Stop it with [`Cluster::stop`]
/// (dropping the handle also stops its actors, without waiting).
pub struct Cluster {
    node_id: u64,
    local_addr: SocketAddr,
    /// The peers and the removed nodes, shared with the connector and every transport
    /// handed out, so membership changes reach them all.
    peers: Arc<PeerSet>,
    forward_timeout_ms: u64,
    listening: Listening,
    inbox: ActorRef<PeerMsg>,
    connector: ActorRef<ConnectorMsg>,
    links: Arc<Links>,
    counters: Arc<Counters>,
    slot: Mutex<Option<ProcessSlot>>,
}

impl Cluster {
    /// Validates `config` (with TLS, reading its files), starts the node server on the
    /// listen address, the peer inbox (which hands what peers send to `handler`) and the
    /// connector. Each actor is linked to `supervisor` when one is given. Runs inside a tokio
    /// runtime.
    pub async fn start(
        config: ClusterConfig,
        handler: Arc<dyn PeerHandler>,
        supervisor: Option<ActorCell>,
    ) -> Result<Cluster, ClusterError> {
        let tls = config.validate_and_load()?;
        let slot = ProcessSlot::claim()?;
        let links = Arc::new(Links::default());
        let peers = Arc::new(PeerSet::new(config.node_id, config.peers.clone()));
        let counters = Arc::new(Counters::default());
        let (listening, local_addr) = listen(&config, tls.as_ref(), &links, &supervisor).await?;
        let inbox = InboxArguments {
            node_id: config.node_id,
            handler,
            counters: counters.clone(),
        };
        let inbox = match spawn(PeerInbox, inbox, &supervisor).await {
            Ok(inbox) => inbox,
            Err(error) => {
                listening.stop();
                return Err(spawn_error("peer inbox", &error));
            }
        };
        let connector = ConnectorArguments {
            node_server: listening.node_server.clone(),
            peers: peers.clone(),
            links: links.clone(),
            interval: Duration::from_millis(config.reconnect_interval_ms),
            handshake_timeout: Duration::from_millis(config.handshake_timeout_ms),
            tls: tls.map(|tls| tls.connector),
        };
        let connector = match spawn(Connector, connector, &supervisor).await {
            Ok(connector) => connector,
            Err(error) => {
                inbox.stop(None);
                listening.stop();
                return Err(spawn_error("connector", &error));
            }
        };
        let tls = listening.is_tls();
        tracing::info!(node_id = config.node_id, %local_addr, tls, "cluster transport started");
        Ok(Cluster {
            node_id: config.node_id,
            local_addr,
            peers,
            forward_timeout_ms: config.forward_timeout_ms,
            listening,
            inbox,
            connector,
            links,
            counters,
            slot: Mutex::new(Some(slot)),
        })
    }

    /// This node's id.
    pub fn node_id(&self) -> u64 {
        self.node_id
    }

    /// The address the cluster listener is bound to (the chosen port when 0 was configured).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Raft's transport over the links: sends never block, and a missing link (or a node
    /// removed with [`Cluster::remove_peer`]) drops the message (counted). It follows later
    /// membership changes.
    pub fn transport(&self) -> Arc<dyn Transport> {
        Arc::new(ClusterTransport {
            peers: self.peers.clone(),
            links: self.links.clone(),
            counters: self.counters.clone(),
        })
    }

    /// Forwards a proposal for `group` to `node` and waits (at most the forward timeout) for
    /// the applied entry's index and the state machine's output there.
    pub async fn propose(
        &self,
        node: u64,
        group: u64,
        data: Vec<u8>,
    ) -> Result<Applied, ForwardError> {
        let request = encode_forwarded_proposal(&ForwardedProposal { group, data });
        let reply = self
            .call(node, |port| PeerMsg::Propose(request, port))
            .await?;
        self.read_reply(node, decode_propose_reply(&reply))
    }

    /// Asks `node` for a read barrier on `group`: its applied index after a read-index round.
    pub async fn read_barrier(&self, node: u64, group: u64) -> Result<u64, ForwardError> {
        let request = encode_read_barrier_request(group);
        let reply = self
            .call(node, |port| PeerMsg::ReadBarrier(request, port))
            .await?;
        self.read_reply(node, decode_read_barrier_reply(&reply))
    }

    /// The current peers (see [`Cluster::peers`]) with a live, authenticated session whose
    /// inbox is visible.
    pub fn linked_peers(&self) -> Vec<u64> {
        self.peers
            .snapshot()
            .into_keys()
            .filter(|&peer| self.links.inbox_of(peer).is_some())
            .collect()
    }

    /// The current peers, node id → cluster address: the configured ones, as changed since
    /// by [`Cluster::add_peer`] and [`Cluster::remove_peer`].
    pub fn peers(&self) -> BTreeMap<u64, SocketAddr> {
        self.peers.snapshot()
    }

    /// Makes `id` a peer at `address`: from now on the connector keeps it linked (a round
    /// starts at once rather than at the next interval), and [`Cluster::linked_peers`] lists
    /// it once linked; the transport, including those handed out before, and the forwarding
    /// calls reach it. A session the node already opened to this one is used as soon as it
    /// is ready. Lifts an earlier [`Cluster::remove_peer`]. Never blocks.
    ///
    /// Idempotent, since every member applies the same membership change, possibly twice
    /// after a restart: adding a peer already present at `address` changes nothing. With
    /// another address, the address is replaced and a session already open with the peer
    /// is kept (it is the same node, named and authenticated by the cookie); the new address
    /// is dialled as soon as the peer has no session, including when only a connection
    /// attempt to the old address is under way (that attempt is used if it completes, or
    /// closed by the handshake timeout). To move a live link at once, remove the peer first.
    ///
    /// Refuses node 0 and this node's own id.
    pub fn add_peer(&self, id: u64, address: SocketAddr) -> Result<(), PeerChangeError> {
        let added = self.peers.add(id, address)?;
        match added {
            PeerAdded::Unchanged => return Ok(()),
            PeerAdded::New => tracing::info!(peer = id, %address, "cluster peer added"),
            PeerAdded::Replaced { previous } => {
                tracing::info!(peer = id, %previous, %address, "cluster peer moved");
            }
        }
        // A queued message, not a wait; a stopped connector has nothing left to link.
        self.connector.cast(ConnectorMsg::Reconnect).ok();
        Ok(())
    }

    /// Stops keeping `id` linked and cuts it off until it is added again: the connector no
    /// longer dials it, its ready session is closed now, and nothing more is sent to it
    /// (raft envelopes and forwarded requests addressed to it are dropped and counted as
    /// without a link). A removed node may not have applied its removal and dial this node
    /// again; the connector closes such sessions at its next round. Idempotent; returns
    /// whether `id` was a peer (it is cut off either way). Never blocks.
    pub fn remove_peer(&self, id: u64) -> bool {
        let removed = self.peers.remove(id);
        // After the change to the set, so the sends that follow are refused even before the
        // session has finished closing.
        if let Some(session) = self.links.take(id) {
            session.stop(Some("peer_removed".to_string()));
        }
        match removed {
            Some(address) => tracing::info!(peer = id, %address, "cluster peer removed"),
            None => tracing::debug!(peer = id, "cluster node removed, it was not a peer"),
        }
        removed.is_some()
    }

    /// The counters since start.
    pub fn stats(&self) -> ClusterStats {
        self.counters.snapshot()
    }

    /// Stops the connector, the inbox, the TLS listener and the node server (which closes
    /// every session and its own listener), waiting for each to stop; then another cluster
    /// may start in this process, on the same address.
    pub async fn stop(&self) {
        // An actor that is already gone has nothing left to stop.
        self.connector.stop_and_wait(None, None).await.ok();
        self.inbox.stop_and_wait(None, None).await.ok();
        self.listening.stop_and_wait().await;
        self.slot.lock().take();
        tracing::info!(node_id = self.node_id, "cluster transport stopped");
    }

    /// Sends a request to `node`'s inbox and waits for the reply bytes.
    async fn call<F>(&self, node: u64, build: F) -> Result<Vec<u8>, ForwardError>
    where
        F: FnOnce(RpcReplyPort<Vec<u8>>) -> PeerMsg,
    {
        let Some(inbox) = self.links.send_inbox(&self.peers, node) else {
            self.counters.dropped_no_link();
            return Err(ForwardError::NoLink { node });
        };
        let timeout = Duration::from_millis(self.forward_timeout_ms);
        let result = ractor::rpc::call(&inbox, build, Some(timeout)).await;
        match result {
            Ok(CallResult::Success(reply)) => {
                self.counters.sent();
                Ok(reply)
            }
            Ok(CallResult::Timeout) => {
                self.counters.sent();
                Err(ForwardError::Timeout {
                    node,
                    timeout_ms: self.forward_timeout_ms,
                })
            }
            // The link closed after the request went out: it may have been delivered and
            // acted on.
            Ok(CallResult::SenderError) => {
                self.counters.sent();
                Err(ForwardError::LinkLost { node })
            }
            // Not sent at all.
            Err(_) => {
                self.counters.dropped_no_link();
                Err(ForwardError::NoLink { node })
            }
        }
    }

    fn read_reply<T>(
        &self,
        node: u64,
        decoded: Result<Result<T, inferadb_messages::ProposeError>, PayloadError>,
    ) -> Result<T, ForwardError> {
        match decoded {
            Ok(answer) => answer.map_err(ForwardError::Remote),
            Err(source) => {
                self.counters.refused();
                Err(ForwardError::Malformed { node, source })
            }
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Without waiting: a drop cannot await. Stopping a stopped actor does nothing.
        self.connector.stop(None);
        self.inbox.stop(None);
        self.listening.stop();
    }
}

/// The address to bind: the configured one, or with port 0 a free port found now. ractor's
/// listener does not report the port it bound, so the port is chosen before it binds (another
/// process could take it in between; start then fails with [`ClusterError::Listen`]).
fn resolve_listen_address(listen: SocketAddr) -> Result<SocketAddr, ClusterError> {
    if listen.port() != 0 {
        return Ok(listen);
    }
    let probe = std::net::TcpListener::bind(listen).map_err(|source| ClusterError::FreePort {
        address: listen,
        source,
    })?;
    probe.local_addr().map_err(|source| ClusterError::FreePort {
        address: listen,
        source,
    })
}

/// Where the node server's connections come from. Without TLS, its own listener on the
/// listen address. With TLS, this crate's listener on the listen address (see the `tls`
/// module: ractor_cluster's would let one silent connection hold up every handshake after
/// it), which hands the node server only connections whose TLS handshake completed;
/// ractor_cluster's listener, which cannot be left out, then binds a free loopback port and
/// accepts nothing but the same mutual TLS.
struct Listening {
    node_server: ActorRef<NodeServerMessage>,
    /// With TLS, the task accepting on the listen address (taken when stopped and waited for).
    tls_listener: Mutex<Option<JoinHandle<()>>>,
}

impl Listening {
    fn new(node_server: ActorRef<NodeServerMessage>, tls_listener: Option<JoinHandle<()>>) -> Self {
        Listening {
            node_server,
            tls_listener: Mutex::new(tls_listener),
        }
    }

    fn is_tls(&self) -> bool {
        self.tls_listener.lock().is_some()
    }

    /// Stops accepting and stops the node server, without waiting.
    fn stop(&self) {
        if let Some(listener) = self.tls_listener.lock().as_ref() {
            listener.abort();
        }
        self.node_server.stop(None);
    }

    /// Stops accepting and stops the node server, waiting for both (so the listen address is
    /// free again when this returns).
    async fn stop_and_wait(&self) {
        let listener = self.tls_listener.lock().take();
        if let Some(listener) = listener {
            listener.abort();
            // Cancelled, as asked: the listener is dropped by now.
            listener.await.ok();
        }
        // A stopped node server has nothing left to stop.
        self.node_server.stop_and_wait(None, None).await.ok();
    }
}

/// Binds the listen address and starts the node server (see [`Listening`]); returns the
/// bound address.
async fn listen(
    config: &ClusterConfig,
    tls: Option<&Tls>,
    links: &Arc<Links>,
    supervisor: &Option<ActorCell>,
) -> Result<(Listening, SocketAddr), ClusterError> {
    let Some(tls) = tls else {
        let address = resolve_listen_address(config.listen)?;
        let node_server =
            start_node_server(config, address, address, None, links, supervisor).await?;
        return Ok((Listening::new(node_server, None), address));
    };
    let bound = TcpListener::bind(config.listen)
        .await
        .and_then(|listener| Ok((listener.local_addr()?, listener)));
    let (address, listener) = bound.map_err(|error| ClusterError::Listen {
        address: config.listen,
        reason: error.to_string(),
    })?;
    let loopback = SocketAddr::new(Ipv4Addr::LOCALHOST.into(), 0);
    let encryption = Some(IncomingEncryptionMode::Tls(tls.acceptor.clone()));
    let node_server =
        start_node_server(config, address, loopback, encryption, links, supervisor).await?;
    let accepting = accept_loop(
        listener,
        tls.acceptor.clone(),
        node_server.clone(),
        Duration::from_millis(config.handshake_timeout_ms),
    );
    let listening = Listening::new(node_server, Some(tokio::spawn(accepting)));
    Ok((listening, address))
}

/// Starts the node server of the node listening at `address`, with ractor_cluster's
/// listener bound to `bind`, and subscribes the links book to its events (before any session
/// can become ready: the connector is not started yet).
async fn start_node_server(
    config: &ClusterConfig,
    address: SocketAddr,
    bind: SocketAddr,
    encryption: Option<IncomingEncryptionMode>,
    links: &Arc<Links>,
    supervisor: &Option<ActorCell>,
) -> Result<ActorRef<NodeServerMessage>, ClusterError> {
    let server = NodeServer::new(
        bind.port(),
        config.cookie.clone(),
        node_name(config.node_id),
        address.ip().to_string(),
        encryption,
        // Only members are dialled: no transitive connections to peers of peers.
        Some(NodeConnectionMode::Isolated),
    )
    .with_listen_addr(bind.ip());
    let node_server =
        spawn(server, (), supervisor)
            .await
            .map_err(|error| ClusterError::Listen {
                address,
                reason: error.to_string(),
            })?;
    let subscription = NodeServerMessage::SubscribeToEvents {
        id: LINK_EVENTS_SUBSCRIPTION.to_string(),
        subscription: Box::new(LinkEvents::new(links.clone())),
    };
    if let Err(error) = node_server.cast(subscription) {
        node_server.stop(None);
        return Err(spawn_error("node server", &error));
    }
    Ok(node_server)
}

async fn spawn<A: Actor>(
    actor: A,
    arguments: A::Arguments,
    supervisor: &Option<ActorCell>,
) -> Result<ActorRef<A::Msg>, SpawnErr> {
    let spawned = match supervisor {
        Some(supervisor) => Actor::spawn_linked(None, actor, arguments, supervisor.clone()).await,
        None => Actor::spawn(None, actor, arguments).await,
    };
    spawned.map(|(actor, _)| actor)
}

fn spawn_error(actor: &'static str, error: &dyn std::fmt::Display) -> ClusterError {
    ClusterError::Spawn {
        actor,
        reason: error.to_string(),
    }
}

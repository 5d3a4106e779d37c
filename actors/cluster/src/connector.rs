//! The connector: every reconnect interval it reconciles the links book with the node
//! server's sessions, closes sessions whose handshake outlived the handshake timeout and
//! sessions with removed nodes, and connects to each peer that has no session, so a peer
//! that restarts is linked again without an operator. The peers are read afresh each round
//! from the peer set the [`Cluster`](crate::Cluster) handle changes, so an added peer is
//! dialled on the next round and a removed one no longer is.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use inferadb_messages::ConnectorMsg;
use ractor::rpc::CallResult;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use ractor_cluster::node::NodeServerSessionInformation;
use ractor_cluster::{ClientConnectErr, NodeServerMessage, NodeSessionMessage};
use tokio::time::Instant;
use tokio_rustls::TlsConnector;

use crate::links::{peer_of, Links};
use crate::peers::PeerSet;
use crate::tls::server_name;

/// The connector actor.
pub(crate) struct Connector;

/// What the connector starts from (and keeps).
pub(crate) struct ConnectorArguments {
    /// The node server that owns the sessions.
    pub(crate) node_server: ActorRef<NodeServerMessage>,
    /// The peers to keep linked: node id → cluster address, shared with the handle.
    pub(crate) peers: Arc<PeerSet>,
    /// The links book.
    pub(crate) links: Arc<Links>,
    /// The reconnect interval; also the limit of one connection attempt and of each query
    /// to the node server, so a round never piles onto the next.
    pub(crate) interval: Duration,
    /// How long a session may stay short of ready before it is closed.
    pub(crate) handshake_timeout: Duration,
    /// With TLS, how peers are dialled (see [`server_name`] for the name they must prove).
    pub(crate) tls: Option<TlsConnector>,
}

/// The connector's state.
pub(crate) struct ConnectorState {
    arguments: ConnectorArguments,
    /// When each session that is not ready yet was first seen.
    unready_since: HashMap<ractor_cluster::NodeId, Instant>,
}

impl Actor for Connector {
    type Msg = ConnectorMsg;
    type State = ConnectorState;
    type Arguments = ConnectorArguments;

    async fn pre_start(
        &self,
        myself: ActorRef<ConnectorMsg>,
        arguments: ConnectorArguments,
    ) -> Result<ConnectorState, ActorProcessingErr> {
        myself.send_interval(arguments.interval, || ConnectorMsg::Reconnect);
        // The first round runs now rather than one interval after start.
        myself.send_message(ConnectorMsg::Reconnect)?;
        Ok(ConnectorState {
            arguments,
            unready_since: HashMap::new(),
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<ConnectorMsg>,
        message: ConnectorMsg,
        state: &mut ConnectorState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            ConnectorMsg::Reconnect => reconcile(state).await,
        }
        Ok(())
    }
}

/// One round: adopt ready sessions the events missed, forget dead ones, close stuck
/// handshakes and sessions with removed nodes, connect the peers left without one.
async fn reconcile(state: &mut ConnectorState) {
    let arguments = &state.arguments;
    let sessions = match arguments
        .node_server
        .call(NodeServerMessage::GetSessions, Some(arguments.interval))
        .await
    {
        Ok(CallResult::Success(sessions)) => sessions,
        // A busy or stopping node server: the next round tries again.
        _ => return,
    };
    arguments.links.forget_dead();
    // A copy: the round awaits the sessions, and must not hold the lock add_peer and
    // remove_peer take. A peer added during the round is dialled by the next one (add_peer
    // asks for one at once); removals are checked again where they matter.
    let peers = arguments.peers.snapshot();
    let with_session = survey_sessions(state, &sessions, &peers).await;
    state
        .unready_since
        .retain(|session_id, _| sessions.contains_key(session_id));
    for (&peer, &address) in &peers {
        if !with_session.contains(&peer) && !state.arguments.peers.is_removed(peer) {
            connect(&state.arguments, peer, address);
        }
    }
}

/// The peers that have a session (in any state, so a handshake under way is not doubled).
/// Records in the book the ready sessions missing from it, closes sessions that stayed
/// short of ready for longer than the handshake timeout, and closes the sessions of removed
/// nodes.
async fn survey_sessions(
    state: &mut ConnectorState,
    sessions: &HashMap<ractor_cluster::NodeId, NodeServerSessionInformation>,
    peers: &BTreeMap<u64, SocketAddr>,
) -> BTreeSet<u64> {
    let mut with_session = BTreeSet::new();
    for (&session_id, session) in sessions {
        let arguments = &state.arguments;
        let named = peer_of(session);
        if let Some(peer) = named.filter(|&peer| arguments.peers.is_removed(peer)) {
            // Nothing is sent over it anyway; closing it also stops what the removed node
            // sends (it may not know it was removed), and ends an attempt of ours that was
            // under way at the removal.
            tracing::debug!(peer, "closing a cluster session with a removed node");
            session.actor.stop(Some("peer_removed".to_string()));
            continue;
        }
        // Before the handshake names the peer, an outgoing session is known by the address
        // it was opened to.
        let peer = named.or_else(|| {
            let outgoing = !session.is_server;
            outgoing
                .then(|| peer_at(peers, &session.peer_addr))
                .flatten()
        });
        with_session.extend(peer);
        let recorded = named.is_some_and(|peer| arguments.links.is_recorded(peer, session_id));
        if recorded || is_ready(session, arguments.interval).await {
            if let Some(peer) = named.filter(|_| !recorded) {
                arguments
                    .links
                    .record(peer, session_id, session.actor.clone());
            }
            state.unready_since.remove(&session_id);
            continue;
        }
        let since = *state
            .unready_since
            .entry(session_id)
            .or_insert_with(Instant::now);
        if since.elapsed() > arguments.handshake_timeout {
            tracing::warn!(peer_addr = %session.peer_addr, "closing a cluster session whose handshake timed out");
            session.actor.stop(Some("handshake_timeout".to_string()));
        }
    }
    with_session
}

/// Whether `session` authenticated and exchanged its process groups (its ready event may
/// have come before the book subscribed, or been otherwise missed).
async fn is_ready(session: &NodeServerSessionInformation, limit: Duration) -> bool {
    let ready = session
        .actor
        .call(NodeSessionMessage::GetReadyState, Some(limit))
        .await;
    matches!(ready, Ok(CallResult::Success(true)))
}

/// The member configured at `address`, as a session reports it.
fn peer_at(peers: &BTreeMap<u64, SocketAddr>, address: &str) -> Option<u64> {
    peers
        .iter()
        .find(|(_, configured)| configured.to_string() == address)
        .map(|(&peer, _)| peer)
}

/// Opens a connection on its own task: a peer that does not answer must not hold the
/// connector (the attempt, TLS handshake included, is given one interval).
fn connect(state: &ConnectorArguments, peer: u64, address: SocketAddr) {
    let node_server = state.node_server.clone();
    let limit = state.interval;
    let tls = state.tls.clone();
    tokio::spawn(async move {
        let attempt = async {
            match tls {
                Some(tls) => {
                    let name = server_name(address);
                    ractor_cluster::client_connect_enc(&node_server, address, tls, name).await
                }
                None => ractor_cluster::client_connect(&node_server, address).await,
            }
        };
        match tokio::time::timeout(limit, attempt).await {
            Ok(Ok(())) => tracing::debug!(peer, %address, "cluster connection opened"),
            // A peer whose certificate does not verify (or that does not speak TLS): a
            // misconfiguration rather than an outage.
            Ok(Err(ClientConnectErr::Encryption(error))) => {
                tracing::warn!(peer, %address, %error, "cluster peer refused: TLS handshake failed");
            }
            // Expected while the peer is down: the next round tries again.
            Ok(Err(error)) => tracing::debug!(peer, %address, %error, "cluster peer unreachable"),
            Err(_) => tracing::debug!(peer, %address, "cluster connection attempt timed out"),
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unnamed_session_is_known_by_its_members_address() {
        let peers = BTreeMap::from([(2, SocketAddr::from(([127, 0, 0, 1], 7002)))]);
        assert_eq!(peer_at(&peers, "127.0.0.1:7002"), Some(2));
        assert_eq!(peer_at(&peers, "127.0.0.1:7003"), None);
    }
}

//! The links book: which peer node each ready ractor_cluster session belongs to, and the
//! lookup of a node's peer inbox through it.
//!
//! ractor_cluster numbers its sessions itself (a counter per node server) and gives every
//! actor of the remote node a local shim whose id is `ActorId::Remote { node_id: <session
//! counter>, pid }`. The book maps our node ids to those session counters; a node's inbox is
//! the member of the process group `inferadb.peer.<node id>` whose shim belongs to that
//! node's ready session. A stale shim (a session that is closing) is never picked.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use ractor::{ActorCell, ActorId, ActorRef, ActorStatus};
use ractor_cluster::node::NodeServerSessionInformation;
use ractor_cluster::{NodeEventSubscription, NodeSessionMessage};

use crate::peers::PeerSet;

/// The prefix of every node's ractor_cluster name: `inferadb-<node id>`.
const NODE_NAME_PREFIX: &str = "inferadb-";

/// The process group prefix of the peer inboxes: `inferadb.peer.<node id>`.
const INBOX_GROUP_PREFIX: &str = "inferadb.peer.";

/// This node's ractor_cluster name.
pub(crate) fn node_name(node_id: u64) -> String {
    format!("{NODE_NAME_PREFIX}{node_id}")
}

/// The process group a node's peer inbox joins.
pub(crate) fn inbox_group(node_id: u64) -> String {
    format!("{INBOX_GROUP_PREFIX}{node_id}")
}

/// The node id in a ractor_cluster peer name (`inferadb-<id>@<host>`), if it is one of ours.
pub(crate) fn node_id_of(peer_name: &str) -> Option<u64> {
    let name = peer_name
        .split_once('@')
        .map_or(peer_name, |(name, _)| name);
    name.strip_prefix(NODE_NAME_PREFIX)?.parse().ok()
}

/// A peer's ready session.
#[derive(Clone, Debug)]
struct LinkedSession {
    /// ractor_cluster's number for the session (the `node_id` of its remote actor ids).
    session_id: ractor_cluster::NodeId,
    /// The session actor, to tell whether it is still alive.
    session: ActorRef<NodeSessionMessage>,
}

impl LinkedSession {
    fn is_alive(&self) -> bool {
        self.session.get_status() < ActorStatus::Draining
    }
}

/// Peer node id → its ready session.
#[derive(Debug, Default)]
pub(crate) struct Links {
    sessions: Mutex<HashMap<u64, LinkedSession>>,
}

impl Links {
    /// Records `peer`'s ready session (a newer session replaces an older one).
    pub(crate) fn record(
        &self,
        peer: u64,
        session_id: ractor_cluster::NodeId,
        session: ActorRef<NodeSessionMessage>,
    ) {
        self.sessions.lock().insert(
            peer,
            LinkedSession {
                session_id,
                session,
            },
        );
    }

    /// Forgets `peer`'s session if it is still `session_id` (a newer one may have replaced it).
    pub(crate) fn forget(&self, peer: u64, session_id: ractor_cluster::NodeId) {
        let mut sessions = self.sessions.lock();
        if sessions
            .get(&peer)
            .is_some_and(|linked| linked.session_id == session_id)
        {
            sessions.remove(&peer);
        }
    }

    /// Forgets `peer`'s session, whatever it is, and returns it so the caller can close it.
    pub(crate) fn take(&self, peer: u64) -> Option<ActorRef<NodeSessionMessage>> {
        self.sessions
            .lock()
            .remove(&peer)
            .map(|linked| linked.session)
    }

    /// Forgets sessions whose actor has stopped (a disconnect event that was missed).
    pub(crate) fn forget_dead(&self) {
        self.sessions.lock().retain(|_, linked| linked.is_alive());
    }

    /// Whether `peer`'s recorded session is `session_id`.
    pub(crate) fn is_recorded(&self, peer: u64, session_id: ractor_cluster::NodeId) -> bool {
        self.sessions
            .lock()
            .get(&peer)
            .is_some_and(|linked| linked.session_id == session_id)
    }

    /// The inbox to send to `node` through: none for a removed node, even when it has
    /// opened a new session to this node since (it may not know it was removed).
    pub(crate) fn send_inbox(&self, peers: &PeerSet, node: u64) -> Option<ActorCell> {
        if peers.is_removed(node) {
            return None;
        }
        self.inbox_of(node)
    }

    /// `node`'s peer inbox as seen through its ready session, if there is one.
    pub(crate) fn inbox_of(&self, node: u64) -> Option<ActorCell> {
        let linked = self.sessions.lock().get(&node).cloned()?;
        if !linked.is_alive() {
            return None;
        }
        ractor::pg::get_members(&inbox_group(node))
            .into_iter()
            .find(|member| {
                matches!(member.get_id(), ActorId::Remote { node_id, .. } if node_id == linked.session_id)
                    && member.get_status() < ActorStatus::Draining
            })
    }
}

/// Keeps the book current from the node server's session events.
pub(crate) struct LinkEvents {
    links: Arc<Links>,
}

impl LinkEvents {
    pub(crate) fn new(links: Arc<Links>) -> LinkEvents {
        LinkEvents { links }
    }
}

/// The peer node a session belongs to, once its name is known.
pub(crate) fn peer_of(session: &NodeServerSessionInformation) -> Option<u64> {
    node_id_of(&session.peer_name.as_ref()?.name)
}

impl NodeEventSubscription for LinkEvents {
    fn node_session_opened(&self, _session: NodeServerSessionInformation) {}

    fn node_session_disconnected(&self, session: NodeServerSessionInformation) {
        if let Some(peer) = peer_of(&session) {
            tracing::info!(peer, "cluster link closed");
            self.links.forget(peer, session.node_id);
        }
    }

    fn node_session_authenicated(&self, _session: NodeServerSessionInformation) {}

    // Ready, not merely authenticated: by then the peer's process groups (its inbox) have
    // been received, since the peer sends them before its ready signal on the same stream.
    fn node_session_ready(&self, session: NodeServerSessionInformation) {
        if let Some(peer) = peer_of(&session) {
            tracing::info!(peer, "cluster link ready");
            self.links.record(peer, session.node_id, session.actor);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_names_parse_back_to_their_ids() {
        assert_eq!(
            node_id_of(&format!("{}@127.0.0.1", node_name(42))),
            Some(42)
        );
        assert_eq!(node_id_of(&node_name(7)), Some(7));
        assert_eq!(node_id_of("other-3@host"), None);
        assert_eq!(node_id_of("inferadb-x@host"), None);
        assert_eq!(inbox_group(5), "inferadb.peer.5");
    }

    #[test]
    fn an_empty_book_has_no_inbox() {
        let links = Links::default();
        assert!(links.inbox_of(2).is_none());
        let peers = PeerSet::new(1, std::collections::BTreeMap::new());
        assert!(links.send_inbox(&peers, 2).is_none());
        assert!(links.take(2).is_none());
    }
}

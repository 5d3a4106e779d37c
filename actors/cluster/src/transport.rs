//! [`ClusterTransport`]: raft's [`Transport`] over the cluster links.

use std::sync::Arc;

use inferadb_messages::PeerMsg;
use inferadb_raft::transport::{PeerEnvelope, Transport};

use crate::links::Links;
use crate::peers::PeerSet;
use crate::stats::Counters;

/// Sends each envelope to the peer inbox of node `envelope.to` (raft member ids are node
/// ids). Never blocks: the message is queued on the link's unbounded mailbox, or dropped and
/// counted when there is no link or the node was removed (raft retries on its own).
pub(crate) struct ClusterTransport {
    /// The peer set, shared with the handle: a node removed after the transport was made
    /// is not sent to.
    pub(crate) peers: Arc<PeerSet>,
    pub(crate) links: Arc<Links>,
    pub(crate) counters: Arc<Counters>,
}

impl Transport for ClusterTransport {
    fn send(&self, envelope: PeerEnvelope) {
        let Some(inbox) = self.links.send_inbox(&self.peers, envelope.to) else {
            self.counters.dropped_no_link();
            return;
        };
        match inbox.send_message(PeerMsg::Raft(envelope.encode())) {
            Ok(()) => self.counters.sent(),
            // The link closed between the lookup and the send.
            Err(_) => self.counters.dropped_no_link(),
        }
    }
}

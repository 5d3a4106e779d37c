//! The crate's typed errors: starting the transport, and forwarding a request to a node.

use std::net::SocketAddr;

use inferadb_messages::{PayloadError, ProposeError};

use crate::config::ConfigError;

/// Why the cluster transport did not start.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The configuration breaks a rule.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Another [`Cluster`](crate::Cluster) runs in this process. ractor_cluster numbers remote
    /// actors per node server but keeps them in process-global registries, so the shims of
    /// two node servers would collide.
    #[error("a cluster transport already runs in this process (one per process)")]
    AlreadyRunning,
    /// Port 0 was configured and no free port could be found on the listen address.
    #[error("cannot find a free cluster port on {address}: {source}")]
    FreePort {
        /// The configured listen address.
        address: SocketAddr,
        /// The operating system's answer.
        source: std::io::Error,
    },
    /// The node server (and its listener) did not start, typically because the address is
    /// taken or not local.
    #[error("cannot listen for cluster peers on {address}: {reason}")]
    Listen {
        /// The address it tried to bind.
        address: SocketAddr,
        /// Why the node server did not start.
        reason: String,
    },
    /// One of the transport's own actors did not start.
    #[error("cannot start the cluster's {actor} actor: {reason}")]
    Spawn {
        /// Which actor.
        actor: &'static str,
        /// Why.
        reason: String,
    },
}

/// Why a request forwarded to another node has no answer.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ForwardError {
    /// No live, authenticated link to that node (or its inbox is not visible yet): nothing
    /// was sent.
    #[error("no link to node {node}")]
    NoLink {
        /// The node.
        node: u64,
    },
    /// The link closed after the request was sent: it may or may not have taken effect.
    #[error("the link to node {node} closed before it answered")]
    LinkLost {
        /// The node.
        node: u64,
    },
    /// The node did not answer in time: the request may or may not have taken effect.
    #[error("node {node} did not answer within {timeout_ms} ms")]
    Timeout {
        /// The node.
        node: u64,
        /// The configured forward timeout.
        timeout_ms: u64,
    },
    /// The node answered with an error.
    #[error("the remote node answered: {0}")]
    Remote(ProposeError),
    /// The node's answer could not be read (an empty answer means the node refused the
    /// request as malformed, for instance another payload version).
    #[error("node {node} answered with an unreadable payload: {source}")]
    Malformed {
        /// The node.
        node: u64,
        /// What is wrong with the answer.
        source: PayloadError,
    },
}

/// Why a peer was not added with [`Cluster::add_peer`](crate::Cluster::add_peer). Each
/// message names the rule, the same ones `cluster.peers` follows in the configuration.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PeerChangeError {
    /// The peer is this node itself.
    #[error("a peer must not be this node's own id {node_id} (a node never links to itself)")]
    IsSelf {
        /// This node's id.
        node_id: u64,
    },
    /// The peer's id is 0.
    #[error("a peer's node id must be at least 1 (raft-rs reserves 0 for \"no node\")")]
    IdZero,
}

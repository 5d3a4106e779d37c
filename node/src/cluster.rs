//! The node's side of the cluster transport (`inferadb-cluster`): what arrives from other
//! nodes goes to this node's raft members ([`NodePeers`]); proposals this node's members
//! cannot take are forwarded to the leader's node ([`ClusterForwarder`]).

use std::sync::Arc;

use inferadb_cluster::{
    Cluster, ClusterConfig, ClusterError, ForwardError, HandlerFuture, PeerHandler,
};
use inferadb_messages::{Applied, Mailbox, MailboxError, ProposalFailure, ProposeError, RaftMsg};
use inferadb_raft::transport::PeerEnvelope;

use crate::actors::shard::{existing_raft_mailbox, Forwarded, Forwarder, PeerDirectory};
use crate::config::{NodeConfig, PeerConfig};
use crate::context::NodeContext;
use inferadb_gateway::{ClusterView, PeerView};
use inferadb_shard::MemberRecord;
use std::collections::BTreeMap;

/// The key revision tokens are authenticated with in a cluster: derived from the cookie
/// every member shares, so a token issued by one member verifies on every other.
pub fn token_secret(cookie: &str) -> [u8; 32] {
    blake3::derive_key("inferadb revision tokens v1", cookie.as_bytes())
}

/// What decides a replicated command's outcome besides the log, as a short hex digest: the
/// vault limits that make a write, a deploy or a group refused (`vault.write_batch_max`,
/// `preconditions_max`, `delete_by_filter_max`, `schema_text_max`,
/// `group_commit_batches_max`), the lease limits and the build's apply rules
/// ([`inferadb_shard::APPLY_RULES_VERSION`]). Every member must apply with the same,
/// or one replica could refuse a write that another applies and the replicas would
/// diverge; so the links are authenticated with [`link_cookie`], and a member configured
/// differently is refused at the handshake instead. Limits of reads and of diagnostics do
/// not count. The list is versioned (`rules v1`): a release that adds a rule changes the
/// digest only when it changes the list. `GET /v1/cluster` shows the digest, to compare.
pub fn rules_fingerprint(config: &NodeConfig) -> String {
    let vault = &config.vault;
    let rules = format!(
        "rules v1\napply_rules {}\nwrite_batch_max {}\npreconditions_max {}\n\
         delete_by_filter_max {}\nschema_text_max {}\ngroup_commit_batches_max {}\nlease {:?}",
        inferadb_shard::APPLY_RULES_VERSION,
        vault.write_batch_max,
        vault.preconditions_max,
        vault.delete_by_filter_max,
        vault.schema_text_max,
        vault.group_commit_batches_max,
        inferadb_shard::LeaseLimits::default()
    );
    let digest = blake3::derive_key("inferadb replicated rules v1", rules.as_bytes());
    hex(&digest[..12])
}

/// The cookie the links authenticate with: the cluster's shared cookie bound to the rules
/// (see [`rules_fingerprint`]), so only members that share both can link.
pub fn link_cookie(cookie: &str, rules_fingerprint: &str) -> String {
    let material = format!("{cookie}\n{rules_fingerprint}");
    hex(&blake3::derive_key(
        "inferadb cluster link v1",
        material.as_bytes(),
    ))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// The transport's configuration from the node's.
pub fn transport_config(config: &NodeConfig) -> Result<ClusterConfig, String> {
    let cluster = &config.cluster;
    let listen = cluster
        .listen
        .parse()
        .map_err(|_| format!("cluster.listen `{}` is not an address", cluster.listen))?;
    let cookie = link_cookie(&cluster.cookie, &rules_fingerprint(config));
    let mut transport = ClusterConfig::new(config.node_id, listen, cookie);
    for peer in &cluster.peers {
        let addr = peer
            .addr
            .parse()
            .map_err(|_| format!("cluster.peers: `{}` is not an address", peer.addr))?;
        transport.peers.insert(peer.id, addr);
    }
    transport.reconnect_interval_ms = cluster.reconnect_interval_ms;
    transport.tls.clone_from(&cluster.tls);
    transport.forward_timeout_ms = cluster.forward_timeout_ms;
    Ok(transport)
}

/// Starts the transport: what peers send reaches this node's raft members.
pub async fn start(context: &Arc<NodeContext>) -> Result<Arc<Cluster>, String> {
    let config = transport_config(&context.config)?;
    tracing::info!(
        rules_fingerprint = %rules_fingerprint(&context.config),
        "cluster members must share this rules fingerprint (vault and lease limits) to link"
    );
    let handler = Arc::new(NodePeers {
        context: Arc::clone(context),
    });
    let cluster = Cluster::start(config, handler, None)
        .await
        .map_err(|error: ClusterError| error.to_string())?;
    Ok(Arc::new(cluster))
}

/// Hands what other nodes send to this node's raft members.
pub struct NodePeers {
    context: Arc<NodeContext>,
}

impl NodePeers {
    /// This node's member of `group`, if it has one (a message for a group this node does
    /// not run is dropped, and must not create a record that `/readyz` would wait on).
    fn member(&self, group: u64) -> Option<Mailbox<RaftMsg>> {
        existing_raft_mailbox(&self.context, group)
    }
}

/// The member could not be reached: it is restarting, so the request never got there.
fn unreachable_member() -> ProposeError {
    ProposeError::NotLeader { leader_hint: None }
}

impl PeerHandler for NodePeers {
    fn raft(&self, envelope: PeerEnvelope) {
        // A member that is restarting misses the message; raft sends again.
        if let Some(member) = self.member(envelope.group) {
            let _ = member.cast(RaftMsg::Peer(envelope));
        }
    }

    fn propose(&self, group: u64, data: Vec<u8>) -> HandlerFuture<Result<Applied, ProposeError>> {
        // Straight to the member, never through the shard actor: a forwarded proposal is
        // not forwarded again (no loops while leadership moves), its sender retries.
        let member = self.member(group);
        let timeout_ms = self.context.config.cluster.forward_timeout_ms;
        Box::pin(async move {
            let Some(member) = member else {
                return Err(unreachable_member());
            };
            match member
                .call(|reply| RaftMsg::Propose { data, reply }, timeout_ms)
                .await
            {
                Ok(answer) => answer,
                // Never delivered: the member is restarting.
                Err(MailboxError::NotRunning { .. }) => Err(unreachable_member()),
                Err(MailboxError::Timeout { .. } | MailboxError::Dropped { .. }) => {
                    Err(ProposeError::Unknown)
                }
            }
        })
    }

    fn read_barrier(&self, group: u64) -> HandlerFuture<Result<u64, ProposeError>> {
        let member = self.member(group);
        let timeout_ms = self.context.config.cluster.forward_timeout_ms;
        Box::pin(async move {
            let Some(member) = member else {
                return Err(unreachable_member());
            };
            member
                .call(|reply| RaftMsg::ReadBarrier { reply }, timeout_ms)
                .await
                .unwrap_or_else(|_| Err(unreachable_member()))
        })
    }
}

/// Forwards proposals to the leader's node over the transport.
pub struct ClusterForwarder {
    cluster: Arc<Cluster>,
}

impl ClusterForwarder {
    /// A forwarder over `cluster`.
    pub fn new(cluster: Arc<Cluster>) -> ClusterForwarder {
        ClusterForwarder { cluster }
    }
}

/// What a forwarding failure means for the client.
fn forward_failure(error: ForwardError) -> ProposalFailure {
    match error {
        ForwardError::NoLink { .. } => ProposalFailure::NotApplied {
            reason: error.to_string(),
        },
        ForwardError::Remote(remote) => ProposalFailure::from_propose_error(&remote),
        ForwardError::LinkLost { .. }
        | ForwardError::Timeout { .. }
        | ForwardError::Malformed { .. } => ProposalFailure::OutcomeUnknown {
            reason: error.to_string(),
        },
    }
}

impl Forwarder for ClusterForwarder {
    fn propose(&self, node: u64, group: u64, data: Vec<u8>) -> Forwarded<Applied> {
        let cluster = Arc::clone(&self.cluster);
        Box::pin(async move {
            cluster
                .propose(node, group, data)
                .await
                .map_err(forward_failure)
        })
    }
}

/// The gateway's view of the links.
pub struct TransportView {
    cluster: Arc<Cluster>,
    peers: Vec<PeerConfig>,
    rules_fingerprint: String,
}

impl TransportView {
    /// The view of `cluster`'s links to the configured peers.
    pub fn new(cluster: Arc<Cluster>, config: &NodeConfig) -> TransportView {
        TransportView {
            cluster,
            peers: config.cluster.peers.clone(),
            rules_fingerprint: rules_fingerprint(config),
        }
    }
}

impl ClusterView for TransportView {
    fn rules_fingerprint(&self) -> String {
        self.rules_fingerprint.clone()
    }

    fn peers(&self) -> Vec<PeerView> {
        let linked = self.cluster.linked_peers();
        // The transport's current set: the configured peers and those the member registry
        // added since.
        let mut peers: std::collections::BTreeMap<u64, String> = self
            .peers
            .iter()
            .map(|peer| (peer.id, peer.addr.clone()))
            .collect();
        for (id, address) in self.cluster.peers() {
            peers.insert(id, address.to_string());
        }
        peers
            .into_iter()
            .map(|(id, address)| PeerView {
                id,
                address,
                linked: linked.contains(&id),
            })
            .collect()
    }
}

/// Keeps the transport's peer set in line with the replicated member registry: every
/// member it names is linked, every removed one unlinked. Members the registry does not name
/// (the configured founders) keep their links.
pub struct ClusterPeers {
    cluster: Arc<Cluster>,
}

impl ClusterPeers {
    /// The peer set of `cluster`.
    pub fn new(cluster: Arc<Cluster>) -> ClusterPeers {
        ClusterPeers { cluster }
    }
}

impl PeerDirectory for ClusterPeers {
    fn linked(&self) -> Vec<u64> {
        self.cluster.linked_peers()
    }

    fn members_changed(&self, members: &BTreeMap<u64, MemberRecord>) {
        let me = self.cluster.node_id();
        for (id, record) in members.iter().filter(|(id, _)| **id != me) {
            if record.removed {
                self.cluster.remove_peer(*id);
                continue;
            }
            // The machine only records addresses that parse.
            match record.address.parse() {
                Ok(address) => {
                    if let Err(error) = self.cluster.add_peer(*id, address) {
                        tracing::warn!(peer = id, %error, "member not linked");
                    }
                }
                Err(_) => {
                    tracing::warn!(peer = id, address = %record.address, "bad member address")
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_different_vault_limit_changes_the_fingerprint_and_so_the_link_cookie() {
        let config = NodeConfig::default();
        let same = NodeConfig::default();
        assert_eq!(rules_fingerprint(&config), rules_fingerprint(&same));
        let mut other = NodeConfig::default();
        other.vault.write_batch_max += 1;
        let (ours, theirs) = (rules_fingerprint(&config), rules_fingerprint(&other));
        assert_ne!(ours, theirs);
        assert_eq!(ours.len(), 24);
        let cookie = "shared-cluster-cookie-0123456789";
        assert_ne!(link_cookie(cookie, &ours), link_cookie(cookie, &theirs));
        assert_eq!(link_cookie(cookie, &ours), link_cookie(cookie, &ours));
        assert_ne!(
            link_cookie(cookie, &ours),
            link_cookie("another-cookie-0123456789", &ours)
        );
        // Settings that decide no replicated outcome do not split the cluster.
        let mut tuned = NodeConfig::default();
        tuned.raft.apply_merge_batches_max = 7;
        tuned.vault.read_page_max += 1;
        tuned.vault.verify_problems_max += 1;
        assert_eq!(rules_fingerprint(&tuned), ours);
        let mut grouped = NodeConfig::default();
        grouped.vault.group_commit_batches_max += 1;
        assert_ne!(rules_fingerprint(&grouped), ours);
    }
}

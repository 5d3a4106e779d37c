//! [`GatewayContext`]: everything the handlers share.

use std::sync::Arc;

use inferadb_messages::{
    ActorDirectory, EvaluatorMsg, Mailbox, NodeMsg, RegistryMsg, ShardMsg, StorageMsg,
    VaultDirectory,
};
use inferadb_protocols::Clock;
use metrics_exporter_prometheus::PrometheusHandle;

/// Named limits of the HTTP front end.
#[derive(Clone, Debug)]
pub struct GatewayLimits {
    /// Listen address.
    pub http_addr: String,
    /// Largest accepted request body.
    pub request_body_max_bytes: usize,
    /// Longest a request may run before it is answered 503.
    pub request_timeout_ms: u64,
    /// How long shutdown waits for in-flight requests.
    pub shutdown_grace_ms: u64,
    /// Most checks in one batch check.
    pub batch_check_max: usize,
    /// Longest a read waits for an `at_least_as_fresh` revision.
    pub consistency_wait_max_ms: u64,
    /// Largest lookup page.
    pub lookup_page_max: usize,
    /// Largest body of a bulk import.
    pub import_body_max_bytes: usize,
    /// Most relationships in one bulk import.
    pub import_relationships_max: usize,
    /// How often the HTTP listener actor may be restarted before the gateway gives up.
    pub http_restart: inferadb_messages::RestartIntensity,
}

/// One configured peer as the transport sees it.
#[derive(Clone, Debug)]
pub struct PeerView {
    /// Its node id.
    pub id: u64,
    /// Its cluster address.
    pub address: String,
    /// Whether a live, authenticated link to it is up.
    pub linked: bool,
}

/// What the gateway shows of the cluster's links (the node implements it over its
/// transport).
pub trait ClusterView: Send + Sync {
    /// Every configured peer, by id.
    fn peers(&self) -> Vec<PeerView>;

    /// The digest of the rules every member must apply with (the vault and lease limits);
    /// members whose digests differ cannot link.
    fn rules_fingerprint(&self) -> String;
}

/// What the gateway's handlers share.
pub struct GatewayContext {
    /// Limits.
    pub limits: GatewayLimits,
    /// The clock.
    pub clock: Arc<dyn Clock>,
    /// Live actor records (for `/v1/admin/actors` and `/metrics`).
    pub actors: ActorDirectory,
    /// Published vault routes.
    pub vaults: VaultDirectory,
    /// The root supervisor.
    pub node: Mailbox<NodeMsg>,
    /// The storage actor.
    pub storage: Mailbox<StorageMsg>,
    /// The vault registry.
    pub registry: Mailbox<RegistryMsg>,
    /// This node's id.
    pub node_id: u64,
    /// The links to the other members (`None` on a node without peers).
    pub cluster: Option<std::sync::Arc<dyn ClusterView>>,
    /// The system shard (membership, vault placement).
    pub shard: Mailbox<ShardMsg>,
    /// The leader-election actor (singleton jobs and their leases).
    pub election: Mailbox<inferadb_messages::ElectionMsg>,
    /// Every shard this node runs, the system shard included, by id.
    pub shards: std::collections::BTreeMap<u64, Mailbox<ShardMsg>>,
    /// The evaluator pool.
    pub evaluator: Mailbox<EvaluatorMsg>,
    /// The key revision tokens are authenticated with.
    pub token_secret: [u8; 32],
    /// Renders `/metrics`.
    pub metrics: PrometheusHandle,
    /// The gateway actor's stable name.
    pub gateway_name: String,
    /// The HTTP actor's stable name.
    pub http_name: String,
    /// The root supervisor's stable name.
    pub root_name: String,
    /// Whether operators may inject failures (`POST /v1/admin/actors/{name}/fail`): dev
    /// mode only.
    pub fault_injection: bool,
    /// The address the gateway bound first; restarts bind it again.
    pub bound_address: parking_lot::Mutex<Option<std::net::SocketAddr>>,
}

impl GatewayContext {
    /// Milliseconds since the Unix epoch.
    pub fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }
}

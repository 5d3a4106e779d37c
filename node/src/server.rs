//! Running a node: open storage, start the root supervisor (which starts everything else),
//! print the bound address, and shut down gracefully on SIGINT or SIGTERM.

use std::error::Error;
use std::sync::Arc;
use std::time::Duration;

use inferadb_gateway::{GatewayContext, GatewayLimits};
use inferadb_messages::{ActorDirectory, GatewayMsg, Mailbox, NodeMsg, VaultDirectory};
use inferadb_protocols::Clock;
use inferadb_vault::NodeCatalog;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use ractor::Actor;

use crate::actors::root::{RootArguments, RootSupervisor};
use crate::actors::shard::Forwarder;
use crate::cluster::ClusterForwarder;
use crate::config::NodeConfig;
use crate::context::{Names, NodeContext, SystemClock};
use inferadb_raft::transport::Transport;

/// Latency buckets of the request histogram, in seconds (50 µs to 10 s).
const LATENCY_BUCKETS_S: [f64; 16] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 10.0,
];

/// How long shutdown waits for the root supervisor beyond the HTTP grace period.
const SHUTDOWN_EXTRA_MS: u64 = 15_000;

fn install_metrics() -> Result<PrometheusHandle, Box<dyn Error>> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full(inferadb_gateway::REQUEST_DURATION_SECONDS.to_string()),
            &LATENCY_BUCKETS_S,
        )?
        .set_buckets_for_metric(
            Matcher::Full("inferadb_raft_ready_cycle_seconds".to_string()),
            &LATENCY_BUCKETS_S,
        )?
        .install_recorder()?;
    Ok(handle)
}

fn install_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use std::io::IsTerminal;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .try_init();
}

fn gateway_context(
    context: &NodeContext,
    cluster: Option<Arc<dyn inferadb_gateway::ClusterView>>,
) -> GatewayContext {
    let config = &context.config;
    let names = &context.names;
    let mailbox = |leaf: &str, kind: &'static str| {
        context
            .actors
            .record(&names.child(leaf), Some(&names.root()), kind)
    };
    GatewayContext {
        limits: GatewayLimits {
            http_addr: config.http.addr.clone(),
            request_body_max_bytes: config.http.request_body_max_bytes,
            request_timeout_ms: config.http.request_timeout_ms,
            shutdown_grace_ms: config.http.shutdown_grace_ms,
            batch_check_max: config.http.batch_check_max,
            consistency_wait_max_ms: config.http.consistency_wait_max_ms,
            lookup_page_max: config.http.lookup_page_max,
            import_body_max_bytes: config.http.import_body_max_bytes,
            import_relationships_max: config.http.import_relationships_max,
            http_restart: config.supervision.intensity("http_listener"),
        },
        clock: Arc::clone(&context.clock),
        actors: context.actors.clone(),
        vaults: context.vaults.clone(),
        node: Mailbox::new(context.actors.record(&names.root(), None, "node")),
        storage: Mailbox::new(mailbox("storage", "storage")),
        registry: Mailbox::new(mailbox("vaults", "vault_registry")),
        shard: crate::actors::registry::shard_mailbox(context, 0),
        election: Mailbox::new(mailbox("election", "election")),
        shards: config
            .shards()
            .map(|shard| {
                (
                    shard,
                    crate::actors::registry::shard_mailbox(context, shard),
                )
            })
            .collect(),
        node_id: config.node_id,
        cluster,
        evaluator: Mailbox::new(mailbox("evaluator", "evaluator_pool")),
        token_secret: context.token_secret,
        metrics: context.metrics.clone(),
        gateway_name: names.child("gateway"),
        http_name: names.child("gateway/http"),
        root_name: names.root(),
        fault_injection: config.dev,
        bound_address: parking_lot::Mutex::new(None),
    }
}

fn node_context(config: NodeConfig) -> Result<NodeContext, Box<dyn Error>> {
    std::fs::create_dir_all(&config.data_dir)
        .map_err(|error| format!("data directory `{}`: {error}", config.data_dir.display()))?;
    std::fs::create_dir_all(config.vaults_dir()).map_err(|error| {
        format!(
            "data directory `{}`: {error}",
            config.vaults_dir().display()
        )
    })?;
    let path = config.node_file();
    let database = Arc::new(
        inferadb_vault::open_database(&path)
            .map_err(|error| format!("data file `{}`: {error}", path.display()))?,
    );
    let catalog = NodeCatalog::open(Arc::clone(&database), rand::random())?;
    // Alone, the node's own key; in a cluster, one key for all members.
    let token_secret = if config.cluster.clustered() {
        crate::cluster::token_secret(&config.cluster.cookie)
    } else {
        catalog.token_secret()
    };
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    Ok(NodeContext {
        names: Names::new(config.node_id),
        config,
        clock,
        database,
        actors: ActorDirectory::new(),
        vaults: VaultDirectory::new(),
        token_secret,
        catalog,
        vault_files: parking_lot::Mutex::new(std::collections::HashMap::new()),
        shard_catalogs: parking_lot::Mutex::new(std::collections::HashMap::new()),
        placements: parking_lot::RwLock::new(std::collections::BTreeMap::new()),
        metrics: install_metrics()?,
    })
}

/// The transport of a node without peers: a lone voter sends nothing anyone could receive.
struct NoPeers;

impl Transport for NoPeers {
    fn send(&self, envelope: inferadb_raft::transport::PeerEnvelope) {
        tracing::debug!(to = envelope.to, "no peer to send a raft message to");
    }
}

/// Runs a node until SIGINT or SIGTERM (or until its root supervisor gives up).
pub fn run(config: NodeConfig) -> Result<(), Box<dyn Error>> {
    install_tracing();
    let threads = std::thread::available_parallelism()
        .map_or(2, usize::from)
        .max(2);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .thread_name("inferadb-async")
        .enable_all()
        .build()?;
    runtime.block_on(serve(config))
}

async fn serve(config: NodeConfig) -> Result<(), Box<dyn Error>> {
    let context = Arc::new(node_context(config)?);
    let cluster = if context.config.cluster.clustered() {
        Some(crate::cluster::start(&context).await?)
    } else {
        None
    };
    let view = cluster.as_ref().map(|cluster| {
        Arc::new(crate::cluster::TransportView::new(
            Arc::clone(cluster),
            &context.config,
        )) as Arc<dyn inferadb_gateway::ClusterView>
    });
    let gateway = Arc::new(gateway_context(&context, view));
    let (transport, forwarder): (Arc<dyn Transport>, Option<Arc<dyn Forwarder>>) = match &cluster {
        Some(cluster) => (
            cluster.transport(),
            Some(Arc::new(ClusterForwarder::new(Arc::clone(cluster)))),
        ),
        None => (Arc::new(NoPeers), None),
    };
    let peers = cluster.as_ref().map(|cluster| {
        Arc::new(crate::cluster::ClusterPeers::new(Arc::clone(cluster)))
            as Arc<dyn crate::actors::shard::PeerDirectory>
    });
    let arguments = RootArguments {
        context: Arc::clone(&context),
        gateway,
        transport,
        forwarder,
        peers,
    };
    let (root, root_done) =
        Actor::spawn(Some(context.names.root()), RootSupervisor, arguments).await?;
    let gateway: Mailbox<GatewayMsg> = Mailbox::new(context.actors.record(
        &context.names.child("gateway"),
        Some(&context.names.root()),
        "gateway",
    ));
    let address = gateway
        .call(|reply| GatewayMsg::HttpAddress { reply }, 10_000)
        .await?;
    println!(
        "inferadb node {} listening on http://{address} (data: {})",
        context.config.node_id,
        context.config.data_dir.display()
    );
    let mut root_done = root_done;
    tokio::select! {
        signal = shutdown_signal() => {
            tracing::info!(signal, "shutting down");
            let node: Mailbox<NodeMsg> = Mailbox::new(context.actors.record(&context.names.root(), None, "node"));
            let wait_ms = context.config.http.shutdown_grace_ms + SHUTDOWN_EXTRA_MS;
            node.call(|reply| NodeMsg::Shutdown { reply }, wait_ms).await?;
            let _ = tokio::time::timeout(Duration::from_millis(wait_ms), &mut root_done).await;
            if let Some(cluster) = &cluster {
                cluster.stop().await;
            }
            crate::actors::storage::sync_vaults_then_catalog(&context)?;
            println!("inferadb node {} stopped", context.config.node_id);
            Ok(())
        }
        _ = &mut root_done => {
            let _ = root;
            crate::actors::storage::sync_vaults_then_catalog(&context)?;
            Err("the root supervisor stopped: a child failed more often than its restart intensity allows".into())
        }
    }
}

#[cfg(unix)]
async fn shutdown_signal() -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    let terminate = signal(SignalKind::terminate());
    let interrupt = signal(SignalKind::interrupt());
    match (terminate, interrupt) {
        (Ok(mut terminate), Ok(mut interrupt)) => tokio::select! {
            _ = terminate.recv() => "SIGTERM",
            _ = interrupt.recv() => "SIGINT",
        },
        _ => {
            let _ = tokio::signal::ctrl_c().await;
            "SIGINT"
        }
    }
}

#[cfg(not(unix))]
async fn shutdown_signal() -> &'static str {
    let _ = tokio::signal::ctrl_c().await;
    "ctrl-c"
}

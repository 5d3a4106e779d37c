//! Node configuration: defaults, then a TOML file, then `INFERADB__…` environment variables,
//! then command-line flags (later sources win), validated once at startup.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use inferadb_messages::RestartIntensity;
use inferadb_vault::VaultLimits;
use serde::{Deserialize, Serialize};

/// Everything a node is configured with.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct NodeConfig {
    /// This node's id (part of every actor name: `node/<id>/…`).
    pub node_id: u64,
    /// Directory holding the data files (`node.db`, `vaults/<id>.db`).
    pub data_dir: PathBuf,
    /// Development mode: no authentication, operator restarts allowed, fault injection on.
    pub dev: bool,
    /// HTTP front end.
    pub http: HttpConfig,
    /// Evaluator pool.
    pub evaluator: EvaluatorConfig,
    /// Vault limits (every field of `inferadb_vault::VaultLimits`).
    pub vault: VaultLimits,
    /// Restart policy of supervised actors.
    pub supervision: SupervisionConfig,
    /// Operator endpoints.
    pub admin: AdminConfig,
    /// The other nodes, and how this one reaches them.
    pub cluster: ClusterConfig,
    /// The consensus of each shard.
    pub raft: RaftSettings,
    /// Leases of the cluster-wide singleton jobs (held in shard 0).
    pub election: inferadb_election::ElectionConfig,
    /// The cluster-wide singleton jobs.
    pub jobs: JobsConfig,
}

/// The cluster-wide singleton jobs; each runs on one node at a time (the holder of its
/// lease).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct JobsConfig {
    /// Removing expired relationships.
    pub expired_gc: crate::actors::jobs::ExpiredGcConfig,
    /// Spreading the shards' leaderships over the members.
    pub leader_balance: crate::actors::balance::LeaderBalanceConfig,
}

/// The cluster: who the members are and how they reach each other. With no peers the node
/// runs alone (the shard's only voter); with peers, every member lists the others.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// Where this node listens for other nodes (`127.0.0.1:7001`); required with peers.
    pub listen: String,
    /// The secret every member shares: it authenticates nodes to each other (ractor_cluster
    /// cookie) and keys the revision tokens, so a token verifies on every member. At least
    /// 16 bytes; required with peers.
    pub cookie: String,
    /// The other members (the first start of a cluster makes them all voters of each shard).
    pub peers: Vec<PeerConfig>,
    /// This node joins a running cluster: its first start seeds no membership and waits for
    /// the leader to add it (`POST /v1/cluster/members` on any member) and send it a
    /// snapshot.
    pub join: bool,
    /// Data shards: raft groups that hold the vaults (shard 0, the system shard, holds
    /// the membership and each vault's placement). Every member must use the same count.
    pub data_shards: u64,
    /// Mutual TLS between members (`cert_file`, `key_file`, `ca_file`, PEM): every member
    /// must turn it on together. Absent: plaintext links (the cookie only authenticates).
    pub tls: Option<inferadb_cluster::TlsConfig>,
    /// How often a missing link to a peer is retried.
    pub reconnect_interval_ms: u64,
    /// How long a proposal or read barrier forwarded to the leader may take.
    pub forward_timeout_ms: u64,
}

/// Another member of the cluster.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PeerConfig {
    /// Its node id.
    pub id: u64,
    /// Its cluster address (`cluster.listen` on that node).
    pub addr: String,
}

/// The consensus of each shard: the logical clock and what is measured in its ticks.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RaftSettings {
    /// The period of the logical clock.
    pub tick_ms: u64,
    /// A follower that hears no leader for `election_ticks` to `2 × election_ticks` ticks
    /// starts an election.
    pub election_ticks: u64,
    /// A leader heartbeats every `heartbeat_ticks` ticks.
    pub heartbeat_ticks: u64,
    /// Ticks a proposal may wait for its entry to apply before its client hears that the
    /// outcome is unknown.
    pub request_timeout_ticks: u64,
    /// Applied entries after which the log is compacted behind a snapshot.
    pub compact_after_entries: u64,
    /// The most committed-entry bytes one Ready cycle applies: a member catching up applies
    /// in bounded steps, with ticks and heartbeats handled between them.
    pub apply_bytes_per_cycle: u64,
    /// The most write batches applied in one storage transaction when consecutive committed
    /// writes to one vault are merged (1 applies each entry alone).
    pub apply_merge_batches_max: u64,
    /// How often the state machine is made durable (vault files, then the catalog): what a
    /// restart after a crash replays from the log is at most this much.
    pub persist_interval_ms: u64,
    /// Seeds the election-timeout draws (mixed with the node id).
    pub seed: u64,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            listen: String::new(),
            cookie: String::new(),
            peers: Vec::new(),
            join: false,
            data_shards: 1,
            tls: None,
            reconnect_interval_ms: 250,
            forward_timeout_ms: 10_000,
        }
    }
}

impl Default for RaftSettings {
    fn default() -> Self {
        RaftSettings {
            tick_ms: 10,
            election_ticks: 50,
            heartbeat_ticks: 10,
            request_timeout_ticks: 1_000,
            compact_after_entries: 100_000,
            apply_bytes_per_cycle: 64 * 1024,
            apply_merge_batches_max: 256,
            persist_interval_ms: 5_000,
            seed: 0x1f5e_da7a,
        }
    }
}

impl ClusterConfig {
    /// Whether this node runs the cluster transport: it has peers, or listens for nodes that
    /// will join it.
    pub fn clustered(&self) -> bool {
        !self.peers.is_empty() || !self.listen.is_empty()
    }
}

/// The HTTP front end.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Listen address (`127.0.0.1:0` picks a free port; the bound address is printed).
    pub addr: String,
    /// Largest accepted request body.
    pub request_body_max_bytes: usize,
    /// Requests running longer are answered 503.
    pub request_timeout_ms: u64,
    /// How long shutdown waits for in-flight requests.
    pub shutdown_grace_ms: u64,
    /// Most checks in one batch check request.
    pub batch_check_max: usize,
    /// Longest a read waits for the vault to reach an `at_least_as_fresh` revision.
    pub consistency_wait_max_ms: u64,
    /// Largest page of a lookup.
    pub lookup_page_max: usize,
    /// Largest body of a bulk import (`POST …/relationships/import`).
    pub import_body_max_bytes: usize,
    /// Most relationships in one bulk import.
    pub import_relationships_max: usize,
}

/// The evaluator pool.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct EvaluatorConfig {
    /// Worker threads; 0 means one per core.
    pub workers: usize,
    /// Jobs waiting for a worker before requests are refused with 429.
    pub queue_max: usize,
    /// The `Retry-After` given with a 429, in seconds.
    pub retry_after_s: u64,
    /// Entries of each schema version's decision cache (0 turns it off).
    pub decision_cache_entries: u64,
}

/// Restart intensity: at most `max_restarts` restarts within `within_ms`, then escalate;
/// `children.<kind>` overrides it for one kind of child.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SupervisionConfig {
    /// Restarts allowed within the window.
    pub max_restarts: u32,
    /// The window.
    pub within_ms: u64,
    /// Per-kind overrides, keyed by one of [`CHILD_KINDS`].
    pub children: BTreeMap<String, RestartIntensity>,
}

/// The kinds of supervised children a restart intensity can be set for.
pub const CHILD_KINDS: [&str; 9] = [
    "storage",
    "election",
    "shard",
    "raft_group",
    "vault_registry",
    "vault",
    "evaluator_pool",
    "gateway",
    "http_listener",
];

impl SupervisionConfig {
    /// The restart intensity of children of `kind`.
    pub fn intensity(&self, kind: &str) -> RestartIntensity {
        self.children
            .get(kind)
            .copied()
            .unwrap_or(RestartIntensity {
                max_restarts: self.max_restarts,
                within_ms: self.within_ms,
            })
    }
}

/// Operator endpoints.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Whether `POST /v1/admin/actors/{name}/restart` is accepted (on in dev mode).
    pub allow_restart: bool,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            node_id: 1,
            data_dir: PathBuf::from("./data"),
            dev: false,
            http: HttpConfig::default(),
            evaluator: EvaluatorConfig::default(),
            vault: VaultLimits::default(),
            supervision: SupervisionConfig::default(),
            admin: AdminConfig::default(),
            cluster: ClusterConfig::default(),
            raft: RaftSettings::default(),
            election: inferadb_election::ElectionConfig::default(),
            jobs: JobsConfig::default(),
        }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            addr: "127.0.0.1:8080".to_string(),
            request_body_max_bytes: 8 * 1024 * 1024,
            request_timeout_ms: 30_000,
            shutdown_grace_ms: 10_000,
            batch_check_max: 1_000,
            consistency_wait_max_ms: 5_000,
            lookup_page_max: 1_000,
            import_body_max_bytes: 256 * 1024 * 1024,
            import_relationships_max: 1_000_000,
        }
    }
}

impl Default for EvaluatorConfig {
    fn default() -> Self {
        EvaluatorConfig {
            workers: 0,
            queue_max: 1_024,
            retry_after_s: 1,
            decision_cache_entries: 1_000_000,
        }
    }
}

impl Default for SupervisionConfig {
    fn default() -> Self {
        SupervisionConfig {
            max_restarts: 5,
            within_ms: 10_000,
            children: BTreeMap::new(),
        }
    }
}

/// Flags that override the configuration.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    /// `--data-dir`.
    pub data_dir: Option<PathBuf>,
    /// `--http-addr`.
    pub http_addr: Option<String>,
    /// `--workers`.
    pub workers: Option<usize>,
    /// `dev`.
    pub dev: bool,
    /// `--node-id`.
    pub node_id: Option<u64>,
    /// `--listen-cluster`.
    pub listen_cluster: Option<String>,
    /// `--peer <id>=<addr>` (replaces the configured peers when given).
    pub peers: Vec<PeerConfig>,
    /// `--join`.
    pub join: bool,
}

/// A configuration that could not be loaded or breaks a rule.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file, an environment variable or a flag has the wrong shape.
    #[error("configuration: {0}")]
    Load(#[from] Box<figment::Error>),
    /// The configuration file does not exist.
    #[error("configuration file `{path}` does not exist")]
    FileMissing {
        /// The path.
        path: PathBuf,
    },
    /// A value breaks a rule.
    #[error("configuration `{field}`: {rule} (got {value})")]
    Invalid {
        /// The dotted field name.
        field: &'static str,
        /// The rule.
        rule: String,
        /// The value given.
        value: String,
    },
}

/// Loads defaults, the optional file, the environment and the flags, then validates.
pub fn load(file: Option<&Path>, overrides: &Overrides) -> Result<NodeConfig, ConfigError> {
    let mut figment = Figment::from(Serialized::defaults(NodeConfig::default()));
    if let Some(path) = file {
        if !path.exists() {
            return Err(ConfigError::FileMissing {
                path: path.to_path_buf(),
            });
        }
        figment = figment.merge(Toml::file(path));
    }
    figment = figment.merge(Env::prefixed("INFERADB__").split("__"));
    let mut config: NodeConfig = figment.extract().map_err(Box::new)?;
    apply(&mut config, overrides);
    validate(&config)?;
    Ok(config)
}

fn apply(config: &mut NodeConfig, overrides: &Overrides) {
    if let Some(data_dir) = &overrides.data_dir {
        config.data_dir = data_dir.clone();
    }
    if let Some(addr) = &overrides.http_addr {
        config.http.addr = addr.clone();
    }
    if let Some(workers) = overrides.workers {
        config.evaluator.workers = workers;
    }
    if let Some(node_id) = overrides.node_id {
        config.node_id = node_id;
    }
    if let Some(listen) = &overrides.listen_cluster {
        config.cluster.listen = listen.clone();
    }
    if !overrides.peers.is_empty() {
        config.cluster.peers = overrides.peers.clone();
    }
    if overrides.join {
        config.cluster.join = true;
    }
    if overrides.dev {
        config.dev = true;
        config.admin.allow_restart = true;
    }
}

fn invalid(field: &'static str, rule: &str, value: impl ToString) -> ConfigError {
    ConfigError::Invalid {
        field,
        rule: rule.to_string(),
        value: value.to_string(),
    }
}

/// One numeric rule: the field, its value and the inclusive range it must lie in.
type NumericRule = (&'static str, u64, u64, u64);

fn numeric_rules(config: &NodeConfig) -> Vec<NumericRule> {
    let size = |value: usize| value as u64;
    let (http, evaluator, vault) = (&config.http, &config.evaluator, &config.vault);
    vec![
        ("node_id", config.node_id, 1, u64::MAX),
        (
            "http.request_body_max_bytes",
            size(http.request_body_max_bytes),
            1024,
            1 << 30,
        ),
        (
            "http.batch_check_max",
            size(http.batch_check_max),
            1,
            100_000,
        ),
        (
            "http.lookup_page_max",
            size(http.lookup_page_max),
            1,
            100_000,
        ),
        ("evaluator.workers", size(evaluator.workers), 0, 1024),
        (
            "evaluator.queue_max",
            size(evaluator.queue_max),
            1,
            1_000_000,
        ),
        (
            "vault.write_batch_max",
            size(vault.write_batch_max),
            1,
            100_000,
        ),
        ("vault.read_page_max", size(vault.read_page_max), 1, 100_000),
        (
            "vault.block_page_max",
            size(vault.block_page_max),
            1,
            10_000,
        ),
        (
            "vault.preconditions_max",
            size(vault.preconditions_max),
            0,
            10_000,
        ),
        (
            "vault.schema_text_max",
            size(vault.schema_text_max),
            1024,
            64 << 20,
        ),
        (
            "supervision.max_restarts",
            u64::from(config.supervision.max_restarts),
            0,
            1_000,
        ),
        (
            "supervision.within_ms",
            config.supervision.within_ms,
            1,
            86_400_000,
        ),
    ]
}

/// The cluster rules: peers need a listen address and a cookie; ids are unique.
fn validate_cluster(config: &NodeConfig) -> Result<(), ConfigError> {
    let cluster = &config.cluster;
    if !cluster.clustered() {
        return Ok(());
    }
    if cluster.listen.parse::<SocketAddr>().is_err() {
        return Err(invalid(
            "cluster.listen",
            "a cluster member must listen on an IP address and port such as 127.0.0.1:7001",
            &cluster.listen,
        ));
    }
    if cluster.cookie.len() < 16 {
        return Err(invalid(
            "cluster.cookie",
            "a cluster member needs the cluster's shared cookie, at least 16 bytes",
            format!("{} bytes", cluster.cookie.len()),
        ));
    }
    if cluster.join && cluster.peers.is_empty() {
        return Err(invalid(
            "cluster.join",
            "a joining node needs at least one peer (`cluster.peers` or --peer) to reach the cluster",
            "no peers",
        ));
    }
    let mut seen = std::collections::BTreeSet::from([config.node_id]);
    for peer in &cluster.peers {
        if peer.id == 0 || !seen.insert(peer.id) {
            return Err(invalid(
                "cluster.peers.id",
                "peer ids must be non-zero, unique and differ from node_id",
                peer.id,
            ));
        }
        if peer.addr.parse::<SocketAddr>().is_err() {
            return Err(invalid(
                "cluster.peers.addr",
                "must be an IP address and port such as 127.0.0.1:7002",
                &peer.addr,
            ));
        }
    }
    Ok(())
}

/// The numeric rules of the singleton jobs.
fn job_rules(config: &NodeConfig) -> Vec<NumericRule> {
    vec![
        (
            "jobs.expired_gc.interval_ms",
            config.jobs.expired_gc.interval_ms,
            10,
            86_400_000,
        ),
        (
            "jobs.leader_balance.interval_ms",
            config.jobs.leader_balance.interval_ms,
            10,
            86_400_000,
        ),
        (
            "jobs.expired_gc.batch_max",
            u64::from(config.jobs.expired_gc.batch_max),
            1,
            100_000,
        ),
    ]
}

/// The numeric rules of the cluster and consensus settings.
fn cluster_rules(config: &NodeConfig) -> Vec<NumericRule> {
    vec![
        ("raft.tick_ms", config.raft.tick_ms, 1, 10_000),
        ("raft.election_ticks", config.raft.election_ticks, 3, 1_000),
        (
            "raft.heartbeat_ticks",
            config.raft.heartbeat_ticks,
            1,
            config.raft.election_ticks.saturating_sub(1).max(1),
        ),
        (
            "raft.request_timeout_ticks",
            config.raft.request_timeout_ticks,
            1,
            1_000_000,
        ),
        (
            "raft.compact_after_entries",
            config.raft.compact_after_entries,
            10,
            u64::MAX,
        ),
        ("cluster.data_shards", config.cluster.data_shards, 1, 64),
        (
            "raft.persist_interval_ms",
            config.raft.persist_interval_ms,
            10,
            3_600_000,
        ),
        (
            "raft.apply_bytes_per_cycle",
            config.raft.apply_bytes_per_cycle,
            4 * 1024,
            256 * 1024 * 1024,
        ),
        (
            "raft.apply_merge_batches_max",
            config.raft.apply_merge_batches_max,
            1,
            1_000_000,
        ),
        (
            "cluster.reconnect_interval_ms",
            config.cluster.reconnect_interval_ms,
            10,
            60_000,
        ),
        (
            "cluster.forward_timeout_ms",
            config.cluster.forward_timeout_ms,
            10,
            600_000,
        ),
    ]
}

/// Checks every rule a configuration must meet.
pub fn validate(config: &NodeConfig) -> Result<(), ConfigError> {
    if config.http.addr.parse::<SocketAddr>().is_err() {
        return Err(invalid(
            "http.addr",
            "must be an IP address and port such as 127.0.0.1:8080",
            &config.http.addr,
        ));
    }
    for (field, value, min, max) in numeric_rules(config)
        .into_iter()
        .chain(cluster_rules(config))
        .chain(job_rules(config))
    {
        if !(min..=max).contains(&value) {
            return Err(ConfigError::Invalid {
                field,
                rule: format!("must be between {min} and {max}"),
                value: value.to_string(),
            });
        }
    }
    validate_cluster(config)?;
    config
        .election
        .validate(&inferadb_shard::LeaseLimits::default())
        .map_err(|error| ConfigError::Invalid {
            field: "election",
            rule: error.to_string(),
            value: String::new(),
        })?;
    for (kind, intensity) in &config.supervision.children {
        if !CHILD_KINDS.contains(&kind.as_str()) {
            return Err(invalid(
                "supervision.children",
                "keys must be storage, election, shard, raft_group, vault_registry, vault, evaluator_pool, gateway or http_listener",
                kind,
            ));
        }
        if intensity.max_restarts > 1_000 {
            return Err(invalid(
                "supervision.children.*.max_restarts",
                "must be between 0 and 1000",
                intensity.max_restarts,
            ));
        }
        if !(1..=86_400_000).contains(&intensity.within_ms) {
            return Err(invalid(
                "supervision.children.*.within_ms",
                "must be between 1 and 86400000",
                intensity.within_ms,
            ));
        }
    }
    Ok(())
}

impl NodeConfig {
    /// The number of evaluator workers after resolving 0 to the core count.
    pub fn evaluator_workers(&self) -> usize {
        match self.evaluator.workers {
            0 => std::thread::available_parallelism().map_or(2, usize::from),
            workers => workers,
        }
    }

    /// The node's catalog file (vault list, token key).
    pub fn node_file(&self) -> PathBuf {
        self.data_dir.join("node.db")
    }

    /// The directory of the vault files.
    pub fn vaults_dir(&self) -> PathBuf {
        self.data_dir.join("vaults")
    }

    /// Every shard this node runs: 0 (the system shard) and each data shard.
    pub fn shards(&self) -> std::ops::RangeInclusive<u64> {
        0..=self.cluster.data_shards
    }

    /// The catalog file of shard `shard` (shard 0's is the node file).
    pub fn shard_catalog_file(&self, shard: u64) -> PathBuf {
        match shard {
            0 => self.node_file(),
            _ => self.shard_dir(shard).join("catalog.db"),
        }
    }

    /// The vault files' directory of shard `shard`.
    pub fn shard_vaults_dir(&self, shard: u64) -> PathBuf {
        match shard {
            0 => self.vaults_dir(),
            _ => self.shard_dir(shard).join("vaults"),
        }
    }

    fn shard_dir(&self, shard: u64) -> PathBuf {
        self.data_dir.join("shards").join(shard.to_string())
    }

    /// The directory of shard `shard`'s raft log.
    pub fn raft_dir(&self, shard: u64) -> PathBuf {
        self.data_dir.join("raft").join(shard.to_string())
    }

    /// One vault's data file. Each vault has its own file, so a vault's snapshots only
    /// ever pin pages of that vault (an idle vault never holds back another's page reuse).
    pub fn vault_file(&self, id: inferadb_protocols::VaultId) -> PathBuf {
        self.vaults_dir().join(format!("{id}.db"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate_and_bad_values_name_the_field() {
        assert!(validate(&NodeConfig::default()).is_ok());
        let mut config = NodeConfig::default();
        config.http.addr = "localhost".into();
        let error = validate(&config).unwrap_err().to_string();
        assert!(error.contains("http.addr"), "{error}");
        let mut config = NodeConfig::default();
        config.evaluator.queue_max = 0;
        let error = validate(&config).unwrap_err().to_string();
        assert!(error.contains("evaluator.queue_max"), "{error}");
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment::Jail fixes the closure's error type
    fn files_environment_and_flags_layer_in_order() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "node.toml",
                "node_id = 7\n[http]\naddr = \"127.0.0.1:9000\"\n[evaluator]\nqueue_max = 5\n",
            )?;
            jail.set_env("INFERADB__EVALUATOR__QUEUE_MAX", "9");
            let overrides = Overrides {
                http_addr: Some("127.0.0.1:9001".into()),
                ..Overrides::default()
            };
            let config =
                load(Some(Path::new("node.toml")), &overrides).map_err(|e| e.to_string())?;
            assert_eq!(config.node_id, 7);
            assert_eq!(config.evaluator.queue_max, 9);
            assert_eq!(config.http.addr, "127.0.0.1:9001");
            jail.create_file(
                "kinds.toml",
                "[supervision.children.vault]\nmax_restarts = 9\nwithin_ms = 60000\n",
            )?;
            let config = load(Some(Path::new("kinds.toml")), &Overrides::default())
                .map_err(|e| e.to_string())?;
            assert_eq!(config.supervision.intensity("vault").max_restarts, 9);
            assert_eq!(config.supervision.intensity("gateway").max_restarts, 5);
            jail.create_file(
                "unknown.toml",
                "[supervision.children.vaults]\nmax_restarts = 1\nwithin_ms = 5\n",
            )?;
            let error = load(Some(Path::new("unknown.toml")), &Overrides::default()).unwrap_err();
            assert!(
                error.to_string().contains("supervision.children"),
                "{error}"
            );
            jail.create_file("bad.toml", "[http]\nadr = \"x\"\n")?;
            let error = load(Some(Path::new("bad.toml")), &Overrides::default()).unwrap_err();
            assert!(error.to_string().contains("adr"), "{error}");
            Ok(())
        });
    }
}

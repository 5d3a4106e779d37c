//! The `inferadb` binary: the node (`dev`, `start`), operator commands against a running
//! node (`actors`, `cluster status`), the schema tools (`schema check`, `schema format`), local evaluation
//! (`check`), the storage demo and integrity check (`demo`, `verify`), the HTTP load
//! generator (`bench`) and `version`.
//!
//! The node is an actor tree: a root supervisor starts storage, the shard (its raft group
//! member), the vault registry (one vault actor per vault), the evaluator pool and the
//! gateway (HTTP). See `docs/node.md`.
#![allow(clippy::disallowed_methods)] // the CLI reports wall-clock durations to a person

use inferadb_node::{bench, client, config, local, server};

use clap::{Parser, Subcommand};
use inferadb_storage::{Database, Durability};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

/// mimalloc instead of the system allocator: the write path allocates per request and per
/// page (raft messages, decoded commands, page buffers) on several threads, and glibc's
/// malloc spent several percent of a replica's CPU in its free-list upkeep.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// InferaDB: a clustered, verifiable, relationship-based authorization database.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs a single-node development server: embedded storage in `./data`, no
    /// authentication, HTTP on 127.0.0.1:8080, operator restarts allowed.
    Dev(NodeFlags),
    /// Runs a node from a configuration file (plus `INFERADB__…` environment variables and
    /// flags, which win).
    Start {
        /// The TOML configuration file.
        #[arg(long)]
        config: Option<PathBuf>,
        #[command(flatten)]
        flags: NodeFlags,
    },
    /// Prints the live supervision tree of a running node.
    Actors {
        /// The node's HTTP address.
        #[arg(long, default_value = "127.0.0.1:8080")]
        addr: String,
    },
    /// Cluster operations against a running node.
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// Prints the version.
    Version,
    /// Writes, reads and verifies a relationship-shaped dataset in the storage engine.
    Demo {
        /// Database file (default: a fresh temporary file).
        #[arg(long)]
        path: Option<PathBuf>,
        /// Number of relationships to write.
        #[arg(long, default_value_t = 200_000)]
        relationships: u64,
    },
    /// Checks a storage file's integrity and prints its tables and page counts.
    Verify {
        /// Database file to check (opened exclusively; stop the server first).
        path: PathBuf,
    },
    /// Schema tools.
    #[command(subcommand)]
    Schema(SchemaCommand),
    /// Evaluates checks against a schema and a relationships file, in memory.
    Check(local::CheckArguments),
    /// Load generator over a running node's HTTP API: bulk load, checks, writes.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
}

/// Flags shared by `dev` and `start`.
#[derive(clap::Args, Clone, Debug, Default)]
struct NodeFlags {
    /// Directory of the data file.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// HTTP listen address (`127.0.0.1:0` picks a free port).
    #[arg(long)]
    http_addr: Option<String>,
    /// Evaluator worker threads (0: one per core).
    #[arg(long)]
    workers: Option<usize>,
    /// This node's id in the cluster.
    #[arg(long)]
    node_id: Option<u64>,
    /// Where this node listens for other nodes (`127.0.0.1:7001`).
    #[arg(long)]
    listen_cluster: Option<String>,
    /// Another member, as `<id>=<cluster address>` (repeat for each; replaces
    /// `cluster.peers`). The cookie comes from `cluster.cookie` or
    /// `INFERADB__CLUSTER__COOKIE`.
    #[arg(long = "peer", value_parser = parse_peer)]
    peers: Vec<config::PeerConfig>,
    /// Join a running cluster: start with no membership and wait to be added through
    /// `POST /v1/cluster/members` on a member.
    #[arg(long)]
    join: bool,
}

/// Parses `--peer <id>=<address>`.
fn parse_peer(text: &str) -> Result<config::PeerConfig, String> {
    let (id, addr) = text
        .split_once('=')
        .ok_or_else(|| format!("`{text}`: expected <id>=<address>, such as 2=127.0.0.1:7002"))?;
    let id = id
        .parse()
        .map_err(|_| format!("`{text}`: the id must be a positive integer"))?;
    Ok(config::PeerConfig {
        id,
        addr: addr.to_string(),
    })
}

impl NodeFlags {
    fn overrides(&self, dev: bool) -> config::Overrides {
        config::Overrides {
            data_dir: self.data_dir.clone(),
            http_addr: self.http_addr.clone(),
            workers: self.workers,
            dev,
            node_id: self.node_id,
            listen_cluster: self.listen_cluster.clone(),
            peers: self.peers.clone(),
            join: self.join,
        }
    }
}

#[derive(Subcommand)]
enum ClusterCommand {
    /// Prints the members, their links and each shard's raft state as the node sees it.
    Status {
        /// The node's HTTP address.
        #[arg(long, default_value = "127.0.0.1:8080")]
        addr: String,
    },
}

#[derive(Subcommand)]
enum SchemaCommand {
    /// Compiles an IPL schema and prints every error and warning with its position.
    Check {
        /// The schema file.
        path: PathBuf,
    },
    /// Prints the canonical formatting of an IPL schema.
    Format {
        /// The schema file.
        path: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Dev(flags) => config::load(None, &flags.overrides(true))
            .map_err(Into::into)
            .and_then(server::run),
        Command::Start { config, flags } => {
            config::load(config.as_deref(), &flags.overrides(false))
                .map_err(Into::into)
                .and_then(server::run)
        }
        Command::Actors { addr } => print_actors(&addr),
        Command::Cluster(ClusterCommand::Status { addr }) => print_cluster(&addr),
        Command::Version => {
            println!("inferadb {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        Command::Demo {
            path,
            relationships,
        } => demo(path, relationships),
        Command::Verify { path } => verify(&path),
        Command::Schema(SchemaCommand::Check { path }) => local::schema_check(&path),
        Command::Schema(SchemaCommand::Format { path }) => local::schema_format(&path),
        Command::Check(arguments) => local::check(&arguments),
        Command::Bench(command) => bench::run(&command),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

fn relationship_key(index: u64) -> String {
    format!(
        "document:{}#viewer@user:{}",
        index / 7,
        (index * 2_654_435_761) % 10_000
    )
}

fn demo(path: Option<PathBuf>, relationships: u64) -> Result<(), Box<dyn std::error::Error>> {
    let directory = tempfile::tempdir()?;
    let path = path.unwrap_or_else(|| directory.path().join("demo.db"));
    let db = Database::open(&path)?;
    println!("database: {}", path.display());
    let start = Instant::now();
    for chunk_start in (0..relationships).step_by(10_000) {
        let mut write = db.begin_write()?;
        write.set_durability(Durability::Deferred);
        {
            let mut table = write.open_table("relationships")?;
            for index in chunk_start..(chunk_start + 10_000).min(relationships) {
                table.insert(relationship_key(index).as_bytes(), b"")?;
            }
        }
        write.commit()?;
    }
    db.sync()?;
    let elapsed = start.elapsed();
    println!(
        "wrote {relationships} relationships durably in {:.2?} ({:.0}/s)",
        elapsed,
        relationships as f64 / elapsed.as_secs_f64()
    );
    let read = db.begin_read();
    let table = read.open_table("relationships")?;
    let start = Instant::now();
    let viewers = table.prefix(b"document:42#viewer@")?.count();
    println!(
        "document:42 has {viewers} viewers (prefix scan in {:.2?})",
        start.elapsed()
    );
    let report = db.verify()?;
    let stats = db.stats()?;
    println!(
        "verify: ok, {} tables, {} reachable pages; file {} KiB, depth {}",
        report.tables.len(),
        report.reachable_pages,
        stats.file_size_bytes / 1024,
        table.depth()?
    );
    Ok(())
}

fn verify(path: &std::path::Path) -> Result<(), Box<dyn std::error::Error>> {
    if !path.exists() {
        return Err(format!("{}: no such file", path.display()).into());
    }
    let db = Database::open(path)?;
    let report = db.verify()?;
    let stats = db.stats()?;
    println!(
        "{}: ok at txn {} ({} KiB, {}-byte pages)",
        path.display(),
        report.txn,
        stats.file_size_bytes / 1024,
        stats.page_size
    );
    println!(
        "pages: {} reachable, {} free, {} pending",
        report.reachable_pages, report.free_pages, report.pending_pages
    );
    for (name, table) in &report.tables {
        println!(
            "table {name}: {} entries, depth {}, {} branch / {} leaf / {} overflow pages",
            table.entries, table.depth, table.branch_pages, table.leaf_pages, table.overflow_pages
        );
    }
    Ok(())
}

fn print_actors(address: &str) -> Result<(), Box<dyn std::error::Error>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let answer = runtime
        .block_on(client::NodeClient::new(address).call("GET", "/v1/admin/actors", None))
        .map_err(|error| format!("{address}: {error}"))?;
    if answer.status != 200 {
        return Err(format!("{address}: HTTP {} {}", answer.status, answer.body).into());
    }
    let roots = answer.body["actors"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for root in &roots {
        print_actor(root, 0);
    }
    Ok(())
}

/// `GET path` on a node; the JSON body of a 200.
fn get_json(address: &str, path: &str) -> Result<serde_json::Value, Box<dyn std::error::Error>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let answer = runtime
        .block_on(client::NodeClient::new(address).call("GET", path, None))
        .map_err(|error| format!("{address}: {error}"))?;
    if answer.status != 200 {
        return Err(format!("{address}: HTTP {} {}", answer.status, answer.body).into());
    }
    Ok(answer.body)
}

fn print_cluster(address: &str) -> Result<(), Box<dyn std::error::Error>> {
    let cluster = get_json(address, "/v1/cluster")?;
    println!("node {}", cluster["node_id"]);
    for member in cluster["members"].as_array().into_iter().flatten() {
        println!(
            "  member {:<4} {:<22} linked={:<5} matched={} lag={}{}",
            member["id"],
            member["cluster_address"].as_str().unwrap_or("(this node)"),
            member["linked"],
            member["matched_index"],
            member["lag_entries"],
            if member["this_node"] == true {
                "  <- this node"
            } else {
                ""
            },
        );
    }
    for shard in cluster["shards"].as_array().into_iter().flatten() {
        println!(
            "  shard {} role={} leader={} term={} commit={} applied={} last={} voters={}",
            shard["id"],
            shard["role"].as_str().unwrap_or("?"),
            shard["leader"],
            shard["term"],
            shard["commit_index"],
            shard["applied_index"],
            shard["last_index"],
            shard["voters"],
        );
    }
    Ok(())
}

fn print_actor(actor: &serde_json::Value, depth: usize) {
    let text = |key: &str| actor[key].as_str().unwrap_or("").to_string();
    let number = |key: &str| actor[key].as_u64().unwrap_or(0);
    let mut line = format!(
        "{}{} [{}] {} id={} up={}s restarts={} handled={} mailbox={}",
        "  ".repeat(depth),
        text("name"),
        text("kind"),
        text("status"),
        number("id"),
        number("uptime_ms") / 1000,
        number("restarts"),
        number("messages_handled"),
        number("mailbox_depth"),
    );
    if let Some(failure) = actor["last_failure"].as_str() {
        line.push_str(&format!(" last_failure={failure:?}"));
    }
    println!("{line}");
    for child in actor["children"].as_array().into_iter().flatten() {
        print_actor(child, depth + 1);
    }
}

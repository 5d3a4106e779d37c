//! `inferadb bench`: a load generator over a running node's HTTP API (like
//! `redis-benchmark`). `load` creates a vault, deploys a schema and bulk-writes a dataset;
//! `check` replays or generates checks (single or batched) at a chosen consistency level;
//! `write` measures durable write throughput. Every mode runs `--concurrency` tasks on a
//! two-thread tokio runtime, sharing one keep-alive connection pool and an atomic work
//! counter, and prints plain figures and one final `bench: {json}` line.

use std::collections::{BTreeMap, HashSet};
use std::error::Error;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Map, Value};

use crate::client::NodeClient;

/// The errors of this module: a message naming what failed.
type BenchResult<T> = Result<T, Box<dyn Error>>;

/// The bench schema (the reference dataset's shape), in IPL.
pub const BENCH_SCHEMA: &str = "type user {}
type group { relation member: user | group#member }
type folder {
    relation parent: folder
    relation viewer: user | group#member
    permission view = viewer | parent->view
}
type document {
    relation parent: folder
    relation owner: user
    relation editor: user | group#member
    relation viewer: user | group#member
    relation blocked: user
    permission edit = owner | editor
    permission view = (edit | viewer | parent->view) - blocked
}
";

/// How many non-2xx answers are printed in full.
const ERROR_SAMPLES: usize = 5;

/// `inferadb bench …`.
#[derive(clap::Subcommand)]
pub enum BenchCommand {
    /// Creates a vault, deploys the schema and bulk-writes a dataset (generated from the
    /// seed, or `--schema` and `--relationships` files).
    Load(LoadArgs),
    /// Runs checks (single, or batched with `--batch`) against a loaded vault.
    Check(CheckArgs),
    /// Writes new unique relationships, `--batch` per request (durable writes).
    Write(WriteArgs),
}

/// Flags of every bench mode.
#[derive(clap::Args, Clone)]
pub struct CommonArgs {
    /// The node's HTTP address.
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: String,
    /// Seed of the generated data, checks and writes.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Stop after this many seconds (as well as after the request count).
    #[arg(long)]
    duration_s: Option<f64>,
}

/// Size of the generated dataset; also the id ranges of generated checks and writes.
#[derive(clap::Args, Clone, Copy)]
pub struct Scale {
    /// Users `user:u0…`.
    #[arg(long, default_value_t = 10_000)]
    users: u64,
    /// Groups `group:g0…`, nested up to 4 levels.
    #[arg(long, default_value_t = 1_000)]
    groups: u64,
    /// Folders `folder:f0…`, in trees up to 5 levels deep.
    #[arg(long, default_value_t = 10_000)]
    folders: u64,
    /// Documents `document:d0…`.
    #[arg(long, default_value_t = 100_000)]
    documents: u64,
}

/// `inferadb bench load`.
#[derive(clap::Args)]
pub struct LoadArgs {
    #[command(flatten)]
    common: CommonArgs,
    #[command(flatten)]
    scale: Scale,
    /// IPL schema file (default: the bench schema).
    #[arg(long)]
    schema: Option<PathBuf>,
    /// JSON-lines relationships file (default: generate the dataset from the seed).
    #[arg(long)]
    relationships: Option<PathBuf>,
    /// Relationships per write request.
    #[arg(long, default_value_t = 1_000)]
    batch: usize,
    /// Requests in flight.
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// Load into this existing vault instead of creating one.
    #[arg(long)]
    vault: Option<String>,
}

/// `inferadb bench check`.
#[derive(clap::Args)]
pub struct CheckArgs {
    #[command(flatten)]
    common: CommonArgs,
    #[command(flatten)]
    scale: Scale,
    /// The vault to check against.
    #[arg(long)]
    vault: String,
    /// JSON-lines checks `{"resource","permission","subject"}`, replayed in order (default:
    /// random checks from the seed over the dataset's ids).
    #[arg(long)]
    checks: Option<PathBuf>,
    /// JSON-lines `{"allowed": bool}`, one per line of `--checks`: verify every answer.
    #[arg(long, requires = "checks")]
    expected: Option<PathBuf>,
    /// Checks to run (default: 20,000, or the whole `--checks` file; unbounded with
    /// `--duration-s`). A file is cycled when this is larger.
    #[arg(long)]
    requests: Option<u64>,
    /// Requests in flight.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Checks per request (above 1: `POST …/check/batch`).
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// The `consistency` of every request (default: the member is left out, which the node
    /// reads as `minimize_latency`). `fully_consistent` costs a read barrier through the
    /// shard's leader per request; `at_least_as_fresh` sends `--token`, or the vault's
    /// revision from `GET /v1/vaults/{id}` fetched once before the run.
    #[arg(long, value_enum)]
    consistency: Option<ConsistencyLevel>,
    /// The revision token of `--consistency at_least_as_fresh` (for example the `revision`
    /// that `bench write` or `bench load` printed).
    #[arg(long)]
    token: Option<String>,
}

/// `bench check --consistency`: the levels of a read request's `consistency` member.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
#[value(rename_all = "snake_case")]
pub enum ConsistencyLevel {
    /// `"minimize_latency"`: the replica's newest published snapshot.
    MinimizeLatency,
    /// `"fully_consistent"`: a read barrier, then the newest snapshot.
    FullyConsistent,
    /// `{"at_least_as_fresh": token}`: a snapshot at least as new as the token's revision.
    AtLeastAsFresh,
}

impl ConsistencyLevel {
    /// The level's wire name.
    fn name(self) -> &'static str {
        match self {
            ConsistencyLevel::MinimizeLatency => "minimize_latency",
            ConsistencyLevel::FullyConsistent => "fully_consistent",
            ConsistencyLevel::AtLeastAsFresh => "at_least_as_fresh",
        }
    }
}

/// `inferadb bench write`.
#[derive(clap::Args)]
pub struct WriteArgs {
    #[command(flatten)]
    common: CommonArgs,
    #[command(flatten)]
    scale: Scale,
    /// A vault with the bench schema (default: create one and deploy the schema).
    #[arg(long)]
    vault: Option<String>,
    /// Relationships per request.
    #[arg(long, default_value_t = 100)]
    batch: usize,
    /// Write requests to send.
    #[arg(long, default_value_t = 2_000)]
    requests: u64,
    /// Requests in flight.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
}

/// Runs a bench command.
pub fn run(command: &BenchCommand) -> BenchResult<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|error| format!("bench: cannot start the tokio runtime: {error}"))?;
    match command {
        BenchCommand::Load(args) => runtime.block_on(load(args)),
        BenchCommand::Check(args) => runtime.block_on(check(args)),
        BenchCommand::Write(args) => runtime.block_on(write(args)),
    }
}

// ---------------------------------------------------------------------------------------
// The generated dataset
// ---------------------------------------------------------------------------------------

/// Relationships in generation order, without duplicates.
#[derive(Default)]
struct DatasetBuilder {
    relationships: Vec<Value>,
    seen: HashSet<(String, &'static str, String)>,
}

impl DatasetBuilder {
    /// Adds `resource#relation@subject` unless it is already there.
    fn add(&mut self, resource: String, relation: &'static str, subject: String) {
        if self
            .seen
            .insert((resource.clone(), relation, subject.clone()))
        {
            self.relationships
                .push(json!({ "resource": resource, "relation": relation, "subject": subject }));
        }
    }
}

impl Scale {
    /// Refuses a scale with an empty kind of object (nothing to pick ids from).
    fn validate(&self) -> BenchResult<()> {
        if self.users == 0 || self.groups == 0 || self.folders == 0 || self.documents == 0 {
            return Err(
                "bench: --users, --groups, --folders and --documents must be at least 1".into(),
            );
        }
        Ok(())
    }

    /// The first folder of each level: level `L` is `bounds[L]..bounds[L + 1]`.
    fn folder_bounds(&self) -> [u64; 6] {
        let mut bounds = [0; 6];
        let mut cumulative = 0.0;
        for (level, share) in [0.02, 0.08, 0.2, 0.3, 0.4].iter().enumerate() {
            cumulative += share;
            bounds[level + 1] = ((self.folders as f64) * cumulative).round() as u64;
        }
        bounds[1] = bounds[1].max(1).min(self.folders);
        bounds[5] = self.folders;
        bounds
    }
}

/// The seeded dataset: users, nested groups, folder trees, documents; the same
/// relationships, in the same order, for the same seed and scale.
fn generate(scale: &Scale, seed: u64) -> Vec<Value> {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut builder = DatasetBuilder::default();
    generate_groups(&mut rng, scale, &mut builder);
    generate_folders(&mut rng, scale, &mut builder);
    generate_documents(&mut rng, scale, &mut builder);
    builder.relationships
}

/// Groups of 5–20 users; a group of level `L > 0` also contains 1–3 groups of level `L - 1`
/// (no cycles, nesting up to 4 levels).
fn generate_groups(rng: &mut SmallRng, scale: &Scale, builder: &mut DatasetBuilder) {
    let levels: Vec<usize> = (0..scale.groups).map(|_| rng.gen_range(0..4)).collect();
    let by_level: Vec<Vec<u64>> = (0..4)
        .map(|level| {
            (0..scale.groups)
                .filter(|g| levels[*g as usize] == level)
                .collect()
        })
        .collect();
    for group in 0..scale.groups {
        let resource = format!("group:g{group}");
        for _ in 0..rng.gen_range(5..=20) {
            let user = rng.gen_range(0..scale.users);
            builder.add(resource.clone(), "member", format!("user:u{user}"));
        }
        let level = levels[group as usize];
        if level > 0 && !by_level[level - 1].is_empty() {
            let below = &by_level[level - 1];
            for _ in 0..rng.gen_range(1..=3) {
                let sub = below[rng.gen_range(0..below.len())];
                builder.add(resource.clone(), "member", format!("group:g{sub}#member"));
            }
        }
    }
}

/// Folder trees up to 5 levels deep; 30% of non-root folders have a user viewer and 20% a
/// group viewer; half of the roots have a user viewer (whose view reaches the whole tree).
fn generate_folders(rng: &mut SmallRng, scale: &Scale, builder: &mut DatasetBuilder) {
    let bounds = scale.folder_bounds();
    for level in 0..5 {
        for folder in bounds[level]..bounds[level + 1] {
            let resource = format!("folder:f{folder}");
            if level > 0 && bounds[level - 1] < bounds[level] {
                let parent = rng.gen_range(bounds[level - 1]..bounds[level]);
                builder.add(resource.clone(), "parent", format!("folder:f{parent}"));
            }
            let user_share = if level == 0 { 0.5 } else { 0.3 };
            if rng.gen_bool(user_share) {
                let user = rng.gen_range(0..scale.users);
                builder.add(resource.clone(), "viewer", format!("user:u{user}"));
            }
            if level > 0 && rng.gen_bool(0.2) {
                let group = rng.gen_range(0..scale.groups);
                builder.add(resource, "viewer", format!("group:g{group}#member"));
            }
        }
    }
}

/// Documents in a random folder with an owner and 0–3 editors or viewers (users, or
/// groups' members); then one `blocked` user per 50 documents.
fn generate_documents(rng: &mut SmallRng, scale: &Scale, builder: &mut DatasetBuilder) {
    for document in 0..scale.documents {
        let resource = format!("document:d{document}");
        let folder = rng.gen_range(0..scale.folders);
        builder.add(resource.clone(), "parent", format!("folder:f{folder}"));
        let owner = rng.gen_range(0..scale.users);
        builder.add(resource.clone(), "owner", format!("user:u{owner}"));
        for _ in 0..rng.gen_range(0..=3) {
            let relation = if rng.gen_bool(0.4) {
                "editor"
            } else {
                "viewer"
            };
            let subject = if rng.gen_bool(0.7) {
                format!("user:u{}", rng.gen_range(0..scale.users))
            } else {
                format!("group:g{}#member", rng.gen_range(0..scale.groups))
            };
            builder.add(resource.clone(), relation, subject);
        }
    }
    for _ in 0..scale.documents.div_ceil(50) {
        let document = rng.gen_range(0..scale.documents);
        let user = rng.gen_range(0..scale.users);
        builder.add(
            format!("document:d{document}"),
            "blocked",
            format!("user:u{user}"),
        );
    }
}

/// A random generator for item `index` of a run, independent of which task asks first.
fn item_rng(seed: u64, index: u64) -> SmallRng {
    SmallRng::seed_from_u64(seed ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

/// Random check `index` over the dataset's ids: 90% documents (view or edit), 10% folders.
fn random_check(seed: u64, scale: &Scale, index: u64) -> Value {
    let mut rng = item_rng(seed, index);
    let user = rng.gen_range(0..scale.users);
    let (resource, permission) = if rng.gen_bool(0.9) {
        let document = rng.gen_range(0..scale.documents);
        let permission = if rng.gen_bool(0.7) { "view" } else { "edit" };
        (format!("document:d{document}"), permission)
    } else {
        (
            format!("folder:f{}", rng.gen_range(0..scale.folders)),
            "view",
        )
    };
    json!({ "resource": resource, "permission": permission, "subject": format!("user:u{user}") })
}

/// Reads a JSON-lines file (blank lines skipped).
fn read_jsonl(path: &Path) -> BenchResult<Vec<Value>> {
    let text = std::fs::read_to_string(path)
        .map_err(|error| format!("bench: cannot read {}: {error}", path.display()))?;
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(number, line)| {
            serde_json::from_str(line).map_err(|error| {
                format!(
                    "bench: {}:{}: not JSON: {error}",
                    path.display(),
                    number + 1
                )
                .into()
            })
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// The driver: tasks, counters, percentiles
// ---------------------------------------------------------------------------------------

/// What one task (then the whole run) measured.
#[derive(Default)]
struct Tally {
    /// Latency of every request, answered or not.
    latencies: Vec<Duration>,
    /// Requests sent.
    requests: u64,
    /// Items answered: relationships written, checks answered.
    items: u64,
    /// Checks answered `allowed: true`.
    allowed: u64,
    /// Relationships the node reported as inserted (new).
    inserted: u64,
    /// Non-2xx answers by status (`transport` when there was no answer).
    errors: BTreeMap<String, u64>,
    /// The first few non-2xx answers, in full.
    samples: Vec<String>,
    /// Answers to verify: (check index, allowed).
    answers: Vec<(u64, bool)>,
    /// The `revision` of the latest 2xx answer, and when it arrived.
    last_revision: Option<(Instant, String)>,
}

impl Tally {
    /// Counts an error of kind `kind` and keeps its text if it is among the first few.
    fn error(&mut self, kind: String, text: String) {
        *self.errors.entry(kind).or_default() += 1;
        if self.samples.len() < ERROR_SAMPLES {
            self.samples.push(text);
        }
    }

    /// Adds another task's tally to this one.
    fn merge(&mut self, other: Tally) {
        self.latencies.extend(other.latencies);
        self.requests += other.requests;
        self.items += other.items;
        self.allowed += other.allowed;
        self.inserted += other.inserted;
        for (kind, count) in other.errors {
            *self.errors.entry(kind).or_default() += count;
        }
        for sample in other.samples {
            if self.samples.len() < ERROR_SAMPLES {
                self.samples.push(sample);
            }
        }
        self.answers.extend(other.answers);
        if let Some((at, revision)) = other.last_revision {
            if self
                .last_revision
                .as_ref()
                .is_none_or(|(mine, _)| at > *mine)
            {
                self.last_revision = Some((at, revision));
            }
        }
    }
}

/// A kind of request: every request of a run goes to the same path.
trait Workload: Send + Sync + 'static {
    /// The request path.
    fn path(&self) -> &str;
    /// The body of request `index`, or `None` past the end of the work.
    fn request(&self, index: u64) -> Option<Value>;
    /// Counts the items of a 2xx answer to request `index`.
    fn record(&self, index: u64, body: &Value, tally: &mut Tally);
}

/// How much to send: requests, in flight, and an optional time limit.
#[derive(Clone, Copy)]
struct Plan {
    requests: u64,
    concurrency: usize,
    duration: Option<Duration>,
}

impl Plan {
    /// A plan; `duration_s` must be positive when given.
    fn new(requests: u64, concurrency: usize, duration_s: Option<f64>) -> BenchResult<Plan> {
        if concurrency == 0 {
            return Err("bench: --concurrency must be at least 1".into());
        }
        let duration = match duration_s {
            Some(seconds) if seconds.is_finite() && seconds > 0.0 => {
                Some(Duration::from_secs_f64(seconds))
            }
            Some(seconds) => return Err(format!("bench: --duration-s {seconds} is not > 0").into()),
            None => None,
        };
        Ok(Plan {
            requests,
            concurrency,
            duration,
        })
    }
}

/// Runs `plan` over `workload`; returns the merged tally and the wall-clock time.
// The client measures real elapsed time on purpose (the simulator's Clock is for the node).
#[allow(clippy::disallowed_methods)]
async fn drive<W: Workload>(
    client: &NodeClient,
    workload: Arc<W>,
    plan: Plan,
) -> BenchResult<(Tally, Duration)> {
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = plan.duration.map(|duration| start + duration);
    let tasks: Vec<_> = (0..plan.concurrency)
        .map(|_| {
            let (client, workload, next) =
                (client.clone(), Arc::clone(&workload), Arc::clone(&next));
            tokio::spawn(run_task(client, workload, next, plan.requests, deadline))
        })
        .collect();
    let mut tally = Tally::default();
    for task in tasks {
        tally.merge(
            task.await
                .map_err(|error| format!("bench: a task failed: {error}"))?,
        );
    }
    Ok((tally, start.elapsed()))
}

/// One task: takes request indexes from `next` until `total` or `deadline`.
// The client measures real request latency on purpose (the simulator's Clock is for the node).
#[allow(clippy::disallowed_methods)]
async fn run_task<W: Workload>(
    client: NodeClient,
    workload: Arc<W>,
    next: Arc<AtomicU64>,
    total: u64,
    deadline: Option<Instant>,
) -> Tally {
    let mut tally = Tally::default();
    loop {
        let index = next.fetch_add(1, Ordering::Relaxed);
        if index >= total || deadline.is_some_and(|deadline| Instant::now() >= deadline) {
            break;
        }
        let Some(body) = workload.request(index) else {
            break;
        };
        let sent = Instant::now();
        let answer = client.call("POST", workload.path(), Some(&body)).await;
        tally.latencies.push(sent.elapsed());
        tally.requests += 1;
        match answer {
            Ok(answer) if (200..300).contains(&answer.status) => {
                workload.record(index, &answer.body, &mut tally);
                if let Some(revision) = answer.body["revision"].as_str() {
                    tally.last_revision = Some((Instant::now(), revision.to_string()));
                }
            }
            Ok(answer) => tally.error(
                answer.status.to_string(),
                format!("HTTP {}: {}", answer.status, answer.body),
            ),
            Err(error) => tally.error("transport".to_string(), format!("transport: {error}")),
        }
    }
    tally
}

/// Latency percentiles in milliseconds: p50, p90, p99, max (sorts `latencies`).
fn percentiles(latencies: &mut [Duration]) -> [(&'static str, f64); 4] {
    latencies.sort_unstable();
    let at = |quantile: f64| {
        if latencies.is_empty() {
            return 0.0;
        }
        let rank = ((quantile * latencies.len() as f64).ceil() as usize).clamp(1, latencies.len());
        latencies[rank - 1].as_secs_f64() * 1e3
    };
    [
        ("p50", at(0.50)),
        ("p90", at(0.90)),
        ("p99", at(0.99)),
        ("max", at(1.0)),
    ]
}

/// Prints the common figures (latencies, errors) and returns them as JSON fields.
fn report_common(tally: &mut Tally, elapsed: Duration, figures: &mut Map<String, Value>) {
    let seconds = elapsed.as_secs_f64().max(1e-9);
    let latency = percentiles(&mut tally.latencies);
    let text: Vec<String> = latency
        .iter()
        .map(|(name, ms)| format!("{name} {ms:.3} ms"))
        .collect();
    println!(
        "  {} requests in {seconds:.2} s ({:.0} requests/s)",
        tally.requests,
        tally.requests as f64 / seconds
    );
    println!("  request latency: {}", text.join(", "));
    if tally.errors.is_empty() {
        println!("  errors: none");
    } else {
        println!("  errors by status: {:?}", tally.errors);
        for sample in &tally.samples {
            println!("    {sample}");
        }
    }
    let latency: Map<String, Value> = latency
        .iter()
        .map(|(name, ms)| (name.to_string(), json!((ms * 1e3).round() / 1e3)))
        .collect();
    figures.insert("requests".into(), json!(tally.requests));
    figures.insert("seconds".into(), json!((seconds * 1e3).round() / 1e3));
    figures.insert(
        "requests_per_s".into(),
        json!((tally.requests as f64 / seconds).round()),
    );
    figures.insert("latency_ms".into(), Value::Object(latency));
    figures.insert("errors".into(), json!(tally.errors));
}

/// Prints the final machine-readable line.
fn print_figures(figures: Map<String, Value>) {
    println!("bench: {}", Value::Object(figures));
}

/// The vault's path prefix.
fn vault_path(vault: &str) -> String {
    format!("/v1/vaults/{vault}")
}

/// Sends one setup request and returns its body, or an error naming `what` failed.
async fn setup_call(
    client: &NodeClient,
    method: &str,
    path: &str,
    body: &Value,
    what: &str,
) -> BenchResult<Value> {
    let answer = client
        .call(method, path, Some(body))
        .await
        .map_err(|error| format!("bench: {what}: {error}"))?;
    if !(200..300).contains(&answer.status) {
        return Err(format!("bench: {what}: HTTP {} {}", answer.status, answer.body).into());
    }
    Ok(answer.body)
}

/// Creates a vault named `name`, or `name-2`, `name-3`, … when the name is taken (vault
/// names are unique on a node); returns its id.
async fn create_vault(client: &NodeClient, name: &str) -> BenchResult<String> {
    for attempt in 1..=100 {
        let candidate = match attempt {
            1 => name.to_string(),
            n => format!("{name}-{n}"),
        };
        let body = json!({ "name": candidate });
        let answer = client
            .call("POST", "/v1/vaults", Some(&body))
            .await
            .map_err(|error| format!("bench: create vault: {error}"))?;
        match answer.status {
            409 => continue,
            201 | 200 => {
                return answer.body["id"]
                    .as_str()
                    .map(str::to_string)
                    .ok_or_else(|| format!("bench: create vault: no id in {}", answer.body).into())
            }
            status => {
                return Err(format!("bench: create vault: HTTP {status} {}", answer.body).into())
            }
        }
    }
    Err(format!("bench: create vault: names `{name}` to `{name}-100` are all taken").into())
}

/// Deploys `schema` to `vault`.
async fn deploy_schema(client: &NodeClient, vault: &str, schema: &str) -> BenchResult<()> {
    let path = format!("{}/schema", vault_path(vault));
    let body = json!({ "schema": schema });
    setup_call(client, "PUT", &path, &body, "deploy schema").await?;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// bench load
// ---------------------------------------------------------------------------------------

/// Bulk writes: request `i` writes relationships `i * batch ..`.
struct LoadWorkload {
    path: String,
    relationships: Vec<Value>,
    batch: usize,
}

impl LoadWorkload {
    /// The relationships of request `index`.
    fn slice(&self, index: u64) -> Option<&[Value]> {
        let start = usize::try_from(index).ok()?.checked_mul(self.batch)?;
        if start >= self.relationships.len() {
            return None;
        }
        let end = (start + self.batch).min(self.relationships.len());
        Some(&self.relationships[start..end])
    }
}

impl Workload for LoadWorkload {
    fn path(&self) -> &str {
        &self.path
    }

    fn request(&self, index: u64) -> Option<Value> {
        self.slice(index).map(|writes| json!({ "writes": writes }))
    }

    fn record(&self, index: u64, body: &Value, tally: &mut Tally) {
        tally.items += self.slice(index).map_or(0, |writes| writes.len() as u64);
        tally.inserted += body["inserted"].as_u64().unwrap_or(0);
    }
}

/// The schema text and relationships of a load: from the files, or generated.
fn load_inputs(args: &LoadArgs) -> BenchResult<(String, Vec<Value>)> {
    let schema = match &args.schema {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|error| format!("bench: cannot read {}: {error}", path.display()))?,
        None => BENCH_SCHEMA.to_string(),
    };
    let relationships = match &args.relationships {
        Some(path) => read_jsonl(path)?,
        None => {
            args.scale.validate()?;
            generate(&args.scale, args.common.seed)
        }
    };
    Ok((schema, relationships))
}

/// `inferadb bench load`.
async fn load(args: &LoadArgs) -> BenchResult<()> {
    if args.batch == 0 {
        return Err("bench: --batch must be at least 1".into());
    }
    let (schema, relationships) = load_inputs(args)?;
    let client = NodeClient::new(&args.common.addr);
    let vault = match &args.vault {
        Some(vault) => vault.clone(),
        None => {
            let name = format!("bench-{}-{}", args.common.seed, relationships.len());
            create_vault(&client, &name).await?
        }
    };
    deploy_schema(&client, &vault, &schema).await?;
    let count = relationships.len();
    let requests = count.div_ceil(args.batch) as u64;
    let plan = Plan::new(requests, args.concurrency, args.common.duration_s)?;
    let workload = Arc::new(LoadWorkload {
        path: format!("{}/relationships", vault_path(&vault)),
        relationships,
        batch: args.batch,
    });
    let (mut tally, elapsed) = drive(&client, workload, plan).await?;
    println!("load: vault {vault}");
    let rate = tally.items as f64 / elapsed.as_secs_f64().max(1e-9);
    println!(
        "  {} of {count} relationships written ({} new) in batches of {}, concurrency {}: {rate:.0} relationships/s",
        tally.items, tally.inserted, args.batch, args.concurrency
    );
    let shape = (args.batch, args.concurrency);
    finish_writes("load", &vault, &mut tally, elapsed, shape)
}

// ---------------------------------------------------------------------------------------
// bench check
// ---------------------------------------------------------------------------------------

/// Where checks come from.
enum CheckSource {
    /// A file's checks, replayed in order and cycled.
    File(Vec<Value>),
    /// Random checks from the seed over the dataset's ids.
    Random { seed: u64, scale: Scale },
}

/// Checks: request `i` carries checks `i * batch ..` (of `total`).
struct CheckWorkload {
    path: String,
    source: CheckSource,
    total: u64,
    batch: u64,
    keep_answers: bool,
    /// The `consistency` member of every request (none: left out).
    consistency: Option<Value>,
}

impl CheckWorkload {
    /// The check indexes of request `index`.
    fn range(&self, index: u64) -> Option<std::ops::Range<u64>> {
        let start = index.checked_mul(self.batch)?;
        (start < self.total).then(|| start..(start + self.batch).min(self.total))
    }

    /// Check `index`.
    fn item(&self, index: u64) -> Value {
        match &self.source {
            CheckSource::File(checks) => checks[(index % checks.len() as u64) as usize].clone(),
            CheckSource::Random { seed, scale } => random_check(*seed, scale, index),
        }
    }

    /// Counts one answer to check `index`.
    fn answer(&self, index: u64, allowed: bool, tally: &mut Tally) {
        tally.items += 1;
        tally.allowed += u64::from(allowed);
        if self.keep_answers {
            tally.answers.push((index, allowed));
        }
    }
}

impl Workload for CheckWorkload {
    fn path(&self) -> &str {
        &self.path
    }

    fn request(&self, index: u64) -> Option<Value> {
        let range = self.range(index)?;
        let mut body = if self.batch == 1 {
            self.item(range.start)
        } else {
            let checks: Vec<Value> = range.map(|item| self.item(item)).collect();
            json!({ "checks": checks })
        };
        if let (Some(consistency), Some(members)) = (&self.consistency, body.as_object_mut()) {
            members.insert("consistency".into(), consistency.clone());
        }
        Some(body)
    }

    fn record(&self, index: u64, body: &Value, tally: &mut Tally) {
        let Some(range) = self.range(index) else {
            return;
        };
        if self.batch == 1 {
            match body["allowed"].as_bool() {
                Some(allowed) => self.answer(range.start, allowed, tally),
                None => tally.error("no-answer".into(), format!("check {index}: {body}")),
            }
            return;
        }
        let results = body["results"].as_array().map(Vec::as_slice).unwrap_or(&[]);
        for (position, item) in range.enumerate() {
            let result = results.get(position).unwrap_or(&Value::Null);
            match result["allowed"].as_bool() {
                Some(allowed) => self.answer(item, allowed, tally),
                None => tally.error("item-error".into(), format!("check {item}: {result}")),
            }
        }
    }
}

/// Compares every answer with `expected` (cycled like the checks); prints the first few
/// mismatches and returns how many there were, and how many checks got no answer.
fn verify_answers(tally: &Tally, checks: &[Value], expected: &[bool], total: u64) -> (u64, u64) {
    let mut mismatches = 0;
    let mut answered = HashSet::new();
    for (index, allowed) in &tally.answers {
        answered.insert(*index);
        let line = (*index % expected.len() as u64) as usize;
        if expected[line] != *allowed {
            mismatches += 1;
            if mismatches <= ERROR_SAMPLES as u64 {
                println!(
                    "  MISMATCH line {}: {} answered {allowed}, expected {}",
                    line + 1,
                    checks[line],
                    expected[line]
                );
            }
        }
    }
    (mismatches, total - answered.len() as u64)
}

/// Reads `--expected`: one `{"allowed": bool}` per check.
fn read_expected(path: &Path, checks: usize) -> BenchResult<Vec<bool>> {
    let lines = read_jsonl(path)?;
    if lines.len() != checks {
        return Err(format!(
            "bench: {} has {} answers for {checks} checks",
            path.display(),
            lines.len()
        )
        .into());
    }
    lines
        .iter()
        .enumerate()
        .map(|(number, line)| {
            line["allowed"].as_bool().ok_or_else(|| {
                format!(
                    "bench: {}:{}: no \"allowed\" bool",
                    path.display(),
                    number + 1
                )
                .into()
            })
        })
        .collect()
}

/// The check workload of `args`, and the expected answers when verifying.
fn check_workload(args: &CheckArgs) -> BenchResult<(CheckWorkload, Option<Vec<bool>>)> {
    if args.batch == 0 {
        return Err("bench: --batch must be at least 1".into());
    }
    let (source, default_total) = match &args.checks {
        Some(path) => {
            let checks = read_jsonl(path)?;
            if checks.is_empty() {
                return Err(format!("bench: {} has no checks", path.display()).into());
            }
            let count = checks.len() as u64;
            (CheckSource::File(checks), count)
        }
        None => {
            args.scale.validate()?;
            let (seed, scale) = (args.common.seed, args.scale);
            (CheckSource::Random { seed, scale }, 20_000)
        }
    };
    let expected = match (&args.expected, &source) {
        (Some(path), CheckSource::File(checks)) => Some(read_expected(path, checks.len())?),
        _ => None,
    };
    let unbounded = args.common.duration_s.is_some();
    let total = args.requests.unwrap_or(if unbounded {
        u64::MAX / 2
    } else {
        default_total
    });
    let batch = args.batch as u64;
    let path = if batch == 1 { "check" } else { "check/batch" };
    let workload = CheckWorkload {
        path: format!("{}/{path}", vault_path(&args.vault)),
        source,
        total,
        batch,
        keep_answers: expected.is_some(),
        consistency: None,
    };
    Ok((workload, expected))
}

/// The `consistency` member of `args`' checks: the level's name, or for
/// `at_least_as_fresh` the `--token` or the vault's current revision (one
/// `GET /v1/vaults/{id}`, on the node the checks go to).
async fn consistency_member(client: &NodeClient, args: &CheckArgs) -> BenchResult<Option<Value>> {
    let level = match (args.consistency, &args.token) {
        (None, None) => return Ok(None),
        (Some(ConsistencyLevel::AtLeastAsFresh), _) => ConsistencyLevel::AtLeastAsFresh,
        (Some(level), None) => return Ok(Some(json!(level.name()))),
        (_, Some(_)) => {
            return Err("bench: --token needs --consistency at_least_as_fresh".into());
        }
    };
    let token = match &args.token {
        Some(token) => token.clone(),
        None => {
            let path = vault_path(&args.vault);
            let answer = client
                .call("GET", &path, None)
                .await
                .map_err(|error| format!("bench: get vault: {error}"))?;
            if !(200..300).contains(&answer.status) {
                let (status, body) = (answer.status, answer.body);
                return Err(format!("bench: get vault: HTTP {status} {body}").into());
            }
            answer.body["revision"]
                .as_str()
                .map(str::to_string)
                .ok_or_else(|| format!("bench: get vault: no revision in {}", answer.body))?
        }
    };
    Ok(Some(json!({ level.name(): token })))
}

/// `inferadb bench check`.
async fn check(args: &CheckArgs) -> BenchResult<()> {
    let (mut workload, expected) = check_workload(args)?;
    let requests = workload.total.div_ceil(workload.batch);
    let plan = Plan::new(requests, args.concurrency, args.common.duration_s)?;
    let client = NodeClient::new(&args.common.addr);
    workload.consistency = consistency_member(&client, args).await?;
    let level = args.consistency.map_or("default", ConsistencyLevel::name);
    let workload = Arc::new(workload);
    let (mut tally, elapsed) = drive(&client, Arc::clone(&workload), plan).await?;
    let rate = tally.items as f64 / elapsed.as_secs_f64().max(1e-9);
    println!("check: vault {}", args.vault);
    println!(
        "  {} checks answered ({} allowed), batch {}, concurrency {}, consistency {level}: {rate:.0} checks/s",
        tally.items, tally.allowed, args.batch, args.concurrency
    );
    let mut figures = Map::new();
    figures.insert("mode".into(), json!("check"));
    figures.insert("vault".into(), json!(args.vault));
    figures.insert("checks".into(), json!(tally.items));
    figures.insert("allowed".into(), json!(tally.allowed));
    figures.insert("checks_per_s".into(), json!(rate.round()));
    figures.insert("batch".into(), json!(args.batch));
    figures.insert("concurrency".into(), json!(args.concurrency));
    figures.insert("consistency".into(), json!(level));
    report_common(&mut tally, elapsed, &mut figures);
    let verdict = match (&expected, &workload.source) {
        (Some(expected), CheckSource::File(checks)) => {
            let total = workload.total.min(tally.requests * workload.batch);
            Some(verify_answers(&tally, checks, expected, total))
        }
        _ => None,
    };
    if let Some((mismatches, missing)) = verdict {
        println!("  verified against --expected: {mismatches} mismatches, {missing} unanswered");
        figures.insert("mismatches".into(), json!(mismatches));
        figures.insert("unanswered".into(), json!(missing));
    }
    print_figures(figures);
    match verdict {
        Some((0, 0)) | None => Ok(()),
        Some((mismatches, missing)) => Err(format!(
            "bench: {mismatches} answers differ from --expected, {missing} checks unanswered"
        )
        .into()),
    }
}

// ---------------------------------------------------------------------------------------
// bench write
// ---------------------------------------------------------------------------------------

/// Writes: request `i` writes `batch` new relationships
/// `document:w<seed>b<batch>-<k>#viewer@user:u<random>` (a rerun with the same seed and
/// batch on the same vault rewrites the same relationships).
struct WriteWorkload {
    path: String,
    seed: u64,
    users: u64,
    batch: u64,
}

impl Workload for WriteWorkload {
    fn path(&self) -> &str {
        &self.path
    }

    fn request(&self, index: u64) -> Option<Value> {
        let mut rng = item_rng(self.seed, index);
        let start = index.checked_mul(self.batch)?;
        let writes: Vec<Value> = (start..start + self.batch)
            .map(|item| {
                json!({
                    "resource": format!("document:w{}b{}-{item}", self.seed, self.batch),
                    "relation": "viewer",
                    "subject": format!("user:u{}", rng.gen_range(0..self.users)),
                })
            })
            .collect();
        Some(json!({ "writes": writes }))
    }

    fn record(&self, _index: u64, body: &Value, tally: &mut Tally) {
        tally.items += self.batch;
        tally.inserted += body["inserted"].as_u64().unwrap_or(0);
    }
}

/// `inferadb bench write`.
async fn write(args: &WriteArgs) -> BenchResult<()> {
    if args.batch == 0 {
        return Err("bench: --batch must be at least 1".into());
    }
    args.scale.validate()?;
    let plan = Plan::new(args.requests, args.concurrency, args.common.duration_s)?;
    let client = NodeClient::new(&args.common.addr);
    let vault = match &args.vault {
        Some(vault) => vault.clone(),
        None => {
            let name = format!("bench-write-{}", args.common.seed);
            let vault = create_vault(&client, &name).await?;
            deploy_schema(&client, &vault, BENCH_SCHEMA).await?;
            vault
        }
    };
    let workload = Arc::new(WriteWorkload {
        path: format!("{}/relationships", vault_path(&vault)),
        seed: args.common.seed,
        users: args.scale.users,
        batch: args.batch as u64,
    });
    let (mut tally, elapsed) = drive(&client, workload, plan).await?;
    println!("write: vault {vault}");
    let rate = tally.items as f64 / elapsed.as_secs_f64().max(1e-9);
    println!(
        "  {} relationships written ({} new) in batches of {}, concurrency {}: {rate:.0} relationships/s",
        tally.items, tally.inserted, args.batch, args.concurrency
    );
    if tally.inserted < tally.items {
        println!("  note: some relationships already existed (same --seed on the same vault?)");
    }
    let shape = (args.batch, args.concurrency);
    finish_writes("write", &vault, &mut tally, elapsed, shape)
}

/// The figures of a `load` or `write` run (`shape`: batch size and concurrency), printed
/// as the final `bench:` line; an error when some writes failed.
fn finish_writes(
    mode: &str,
    vault: &str,
    tally: &mut Tally,
    elapsed: Duration,
    (batch, concurrency): (usize, usize),
) -> BenchResult<()> {
    let rate = tally.items as f64 / elapsed.as_secs_f64().max(1e-9);
    let mut figures = Map::new();
    figures.insert("mode".into(), json!(mode));
    figures.insert("vault".into(), json!(vault));
    figures.insert("relationships".into(), json!(tally.items));
    figures.insert("inserted".into(), json!(tally.inserted));
    figures.insert("relationships_per_s".into(), json!(rate.round()));
    figures.insert("batch".into(), json!(batch));
    figures.insert("concurrency".into(), json!(concurrency));
    report_common(tally, elapsed, &mut figures);
    if let Some((_, revision)) = &tally.last_revision {
        println!("  revision of the last answer: {revision}");
        figures.insert("revision".into(), json!(revision));
    }
    let failed = !tally.errors.is_empty();
    print_figures(figures);
    if failed {
        return Err("bench: some writes failed (see errors above)".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_dataset_is_deterministic_and_deduplicated() {
        let scale = Scale {
            users: 100,
            groups: 20,
            folders: 50,
            documents: 200,
        };
        let first = generate(&scale, 7);
        assert_eq!(first, generate(&scale, 7));
        assert_ne!(first, generate(&scale, 8));
        let unique: HashSet<String> = first.iter().map(Value::to_string).collect();
        assert_eq!(unique.len(), first.len());
    }

    #[test]
    fn bench_schema_compiles() {
        let schema = inferadb_ipl::compile(BENCH_SCHEMA);
        assert!(schema.is_ok(), "bench schema does not compile");
    }

    #[test]
    fn checks_carry_the_consistency_member() {
        use clap::ValueEnum;
        let level = ConsistencyLevel::from_str("at_least_as_fresh", false);
        assert_eq!(level, Ok(ConsistencyLevel::AtLeastAsFresh));
        let check =
            json!({ "resource": "document:d1", "permission": "view", "subject": "user:u1" });
        let mut workload = CheckWorkload {
            path: String::new(),
            source: CheckSource::File(vec![check]),
            total: 3,
            batch: 1,
            keep_answers: false,
            consistency: None,
        };
        assert_eq!(
            workload
                .request(0)
                .map(|body| body.get("consistency").cloned()),
            Some(None)
        );
        workload.consistency = Some(json!({ "at_least_as_fresh": "r2_x" }));
        let single = workload.request(0).unwrap_or_default();
        assert_eq!(single["consistency"]["at_least_as_fresh"], "r2_x");
        assert_eq!(single["resource"], "document:d1");
        workload.batch = 2;
        workload.consistency = Some(json!("fully_consistent"));
        let batch = workload.request(1).unwrap_or_default();
        assert_eq!(batch["consistency"], "fully_consistent");
        assert_eq!(batch["checks"].as_array().map(Vec::len), Some(1));
    }

    #[test]
    fn percentiles_use_nearest_rank() {
        let mut latencies: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        let figures = percentiles(&mut latencies);
        assert_eq!(figures[0].1, 50.0);
        assert_eq!(figures[2].1, 99.0);
        assert_eq!(figures[3].1, 100.0);
    }
}

//! Evaluator benchmarks on the reference dataset (`shared/bench/gen.py --seed 42`) over the
//! in-memory reader. Prints a markdown table of check latency (with and without the
//! decision cache), check throughput on 1 and 2 threads, batch-check throughput and
//! lookup-resources latency.
//!
//! Run: `cargo bench -p inferadb-evaluator --bench evaluator_bench`. For profiling,
//! `EVALUATOR_BENCH_CHECKS_ONLY=1` repeats uncached checks,
//! `EVALUATOR_BENCH_CACHED_ONLY=1` repeats cached checks and
//! `EVALUATOR_BENCH_LOOKUPS_ONLY=1` repeats the lookups (run the binary under `perf record`).

// A benchmark measures wall time, which the library itself must never read.
#![allow(
    clippy::disallowed_methods,
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs
)]

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use inferadb_evaluator::{
    CheckRequest, Evaluator, InMemoryReader, LookupResourcesRequest, ReadView,
};
use inferadb_protocols::{Relationship, Revision};
use serde::Deserialize;

#[derive(Deserialize)]
struct CheckLine {
    resource: String,
    permission: String,
    subject: String,
}

#[derive(Deserialize)]
struct LookupLine {
    resource_type: String,
    permission: String,
    subject: String,
}

fn read_lines<T: serde::de::DeserializeOwned>(path: &Path) -> Vec<T> {
    let file = std::fs::File::open(path).unwrap();
    std::io::BufReader::new(file)
        .lines()
        .map(|line| serde_json::from_str(&line.unwrap()).unwrap())
        .collect()
}

fn generate() -> PathBuf {
    let crate_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let shared = crate_dir.join("../../../shared");
    assert!(
        shared.is_dir(),
        "the shared folder is missing at {}",
        shared.display()
    );
    let out = crate_dir.join("../../target/bench-data");
    if !out.join("lookups.jsonl").exists() {
        let status = Command::new("python3")
            .arg(shared.join("bench/gen.py"))
            .args(["--seed", "42", "--out"])
            .arg(&out)
            .status()
            .expect("python3 is needed to generate the dataset");
        assert!(status.success());
    }
    out
}

fn percentile(sorted: &[Duration], fraction: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * fraction).round() as usize;
    sorted[index]
}

fn time_each(
    evaluator: &Evaluator,
    view: &ReadView<'_, InMemoryReader>,
    checks: &[CheckRequest],
) -> Vec<Duration> {
    let mut samples: Vec<Duration> = checks
        .iter()
        .map(|check| {
            let start = Instant::now();
            let answer = evaluator.check(view, check).unwrap();
            let elapsed = start.elapsed();
            std::hint::black_box(answer);
            elapsed
        })
        .collect();
    samples.sort_unstable();
    samples
}

fn throughput(
    evaluator: &Evaluator,
    view: &ReadView<'_, InMemoryReader>,
    checks: &[CheckRequest],
    threads: usize,
) -> f64 {
    let start = Instant::now();
    std::thread::scope(|scope| {
        for part in checks.chunks(checks.len().div_ceil(threads)) {
            scope.spawn(move || {
                for check in part {
                    std::hint::black_box(evaluator.check(view, check).unwrap());
                }
            });
        }
    });
    checks.len() as f64 / start.elapsed().as_secs_f64()
}

/// Like [`throughput`], but each thread first runs its part once untimed, as long-lived
/// pool threads would have (this fills their front caches).
fn warm_throughput(
    evaluator: &Evaluator,
    view: &ReadView<'_, InMemoryReader>,
    checks: &[CheckRequest],
    threads: usize,
) -> f64 {
    let barrier = std::sync::Barrier::new(threads);
    let slowest = std::thread::scope(|scope| {
        let workers: Vec<_> = checks
            .chunks(checks.len().div_ceil(threads))
            .map(|part| {
                let barrier = &barrier;
                scope.spawn(move || {
                    for check in part {
                        std::hint::black_box(evaluator.check(view, check).unwrap());
                    }
                    barrier.wait();
                    let start = Instant::now();
                    for check in part {
                        std::hint::black_box(evaluator.check(view, check).unwrap());
                    }
                    start.elapsed()
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|worker| worker.join().unwrap())
            .max()
            .unwrap()
    });
    checks.len() as f64 / slowest.as_secs_f64()
}

/// Batches of 100 spread over `threads` workers, as the evaluator pool would run them.
fn batch_throughput(
    evaluator: &Evaluator,
    view: &ReadView<'_, InMemoryReader>,
    checks: &[CheckRequest],
    threads: usize,
) -> f64 {
    let start = Instant::now();
    std::thread::scope(|scope| {
        for part in checks.chunks(checks.len().div_ceil(threads)) {
            scope.spawn(move || {
                for batch in part.chunks(100) {
                    std::hint::black_box(evaluator.batch_check(view, batch));
                }
            });
        }
    });
    checks.len() as f64 / start.elapsed().as_secs_f64()
}

fn micros(duration: Duration) -> String {
    format!("{:.2} µs", duration.as_secs_f64() * 1e6)
}

struct Loaded {
    schema: Arc<inferadb_ipl::CompiledSchema>,
    reader: InMemoryReader,
    checks: Vec<CheckRequest>,
    lookups: Vec<LookupResourcesRequest>,
    /// Kept alive until the end: freeing 381k parsed relationships right before measuring
    /// leaves glibc's allocator consolidating free chunks during the first lookups.
    _relationships: Vec<Relationship>,
}

fn load() -> Loaded {
    let data = generate();
    let source = std::fs::read_to_string(data.join("schema.ipl")).unwrap();
    let schema = Arc::new(inferadb_ipl::compile(&source).unwrap().schema);
    let load_start = Instant::now();
    let relationships: Vec<Relationship> = read_lines(&data.join("relationships.jsonl"));
    let reader = InMemoryReader::from_relationships(&relationships);
    println!(
        "dataset: {} relationships loaded in {:.2} s",
        reader.len(),
        load_start.elapsed().as_secs_f64()
    );
    let checks = read_lines::<CheckLine>(&data.join("checks.jsonl"))
        .into_iter()
        .map(|line| CheckRequest {
            resource: line.resource.parse().unwrap(),
            permission: line.permission.parse().unwrap(),
            subject: line.subject.parse().unwrap(),
        })
        .collect();
    let lookups = read_lines::<LookupLine>(&data.join("lookups.jsonl"))
        .into_iter()
        .map(|line| LookupResourcesRequest {
            resource_type: line.resource_type.parse().unwrap(),
            permission: line.permission.parse().unwrap(),
            subject: line.subject.parse().unwrap(),
            cursor: None,
            limit: usize::MAX,
        })
        .collect();
    Loaded {
        schema,
        reader,
        checks,
        lookups,
        _relationships: relationships,
    }
}

fn row(measure: &str, result: String, target: &str) {
    println!("| {measure} | {result} | {target} |");
}

fn latency(samples: &[Duration]) -> String {
    format!(
        "{} / {}",
        micros(percentile(samples, 0.5)),
        micros(percentile(samples, 0.99))
    )
}

/// The first computation of every check with the cache on, with and without sharing
/// sub-problems across requests: what sharing costs or saves when nothing is cached yet.
fn measure_cold_with_cache(loaded: &Loaded, view: &ReadView<'_, InMemoryReader>) {
    for (label, work_min) in [("not shared (default)", u64::MAX), ("shared", 16)] {
        let limits = inferadb_evaluator::EvaluatorLimits {
            shared_subproblem_work_min: work_min,
            ..Default::default()
        };
        let evaluator = Evaluator::new(Arc::clone(&loaded.schema))
            .with_limits(limits)
            .with_cache(1_000_000);
        let samples = time_each(&evaluator, view, &loaded.checks);
        let stats = evaluator.stats();
        row(
            &format!("check, cache on, first computation, sub-problems {label}, p50 / p99"),
            latency(&samples),
            &format!(
                "sub-problem hits {} of {}",
                stats.subproblem_cache_hits,
                stats.subproblem_cache_hits + stats.subproblem_cache_misses
            ),
        );
    }
}

fn measure_checks(loaded: &Loaded, view: &ReadView<'_, InMemoryReader>) {
    let checks = &loaded.checks;
    let uncached = Evaluator::new(Arc::clone(&loaded.schema));
    let allowed = checks
        .iter()
        .filter(|check| uncached.check(view, check).unwrap().allowed);
    assert_eq!(allowed.count(), 6_625, "the dataset's expected answers");
    let uncached_samples = time_each(&uncached, view, checks);
    // On its own thread: its evaluators would otherwise fill this thread's front cache,
    // which the cached rows below measure.
    std::thread::scope(|scope| {
        scope
            .spawn(|| measure_cold_with_cache(loaded, view))
            .join()
            .unwrap()
    });
    let cached = Evaluator::new(Arc::clone(&loaded.schema)).with_cache(1_000_000);
    time_each(&cached, view, checks);
    let cached_samples = time_each(&cached, view, checks);
    // The same pass on a thread that has not seen these checks: every answer comes from
    // the shared moka cache (the per-thread front cache is empty there).
    let shared_samples = std::thread::scope(|scope| {
        scope
            .spawn(|| time_each(&cached, view, checks))
            .join()
            .unwrap()
    });
    row(
        "check, uncached, p50 / p99",
        latency(&uncached_samples),
        "p99 < 50 µs",
    );
    row(
        "check, cached, p50 / p99",
        latency(&cached_samples),
        "< 1 µs",
    );
    row(
        "check, cached, first time on a thread (shared cache), p50 / p99",
        latency(&shared_samples),
        "",
    );
    for threads in [1, 2] {
        let rate = throughput(&uncached, view, checks, threads);
        row(
            &format!("checks/s, uncached, {threads} thread(s)"),
            format!("{rate:.0}"),
            "",
        );
    }
    let rate = warm_throughput(&cached, view, checks, 2);
    row("checks/s, cached, 2 threads", format!("{rate:.0}"), "");
    for threads in [1, 2] {
        let rate = batch_throughput(&uncached, view, checks, threads);
        row(
            &format!("batch check, 100 items per batch, uncached, {threads} thread(s)"),
            format!("{rate:.0} items/s"),
            "≥ 1,000,000 items/s",
        );
    }
    let stats = cached.stats();
    println!(
        "\ncache: {} hits, {} misses, {} entries; sub-problems: {} hits, {} misses",
        stats.cache_hits,
        stats.cache_misses,
        stats.cache_entries,
        stats.subproblem_cache_hits,
        stats.subproblem_cache_misses
    );
}

fn lookup_pass(
    evaluator: &Evaluator,
    loaded: &Loaded,
    view: &ReadView<'_, InMemoryReader>,
) -> (Vec<Duration>, usize) {
    let mut samples = Vec::new();
    let mut found = 0;
    for lookup in &loaded.lookups {
        let start = Instant::now();
        let page = evaluator.lookup_resources(view, lookup).unwrap();
        samples.push(start.elapsed());
        found += page.resource_ids.len();
    }
    samples.sort_unstable();
    (samples, found)
}

fn measure_lookups(loaded: &Loaded, view: &ReadView<'_, InMemoryReader>) {
    let evaluator = Evaluator::new(Arc::clone(&loaded.schema));
    // The first pass runs right after loading, on a cold allocator and cold caches; the
    // figures that matter for a server are the warm ones, but both are shown.
    let (cold, _) = lookup_pass(&evaluator, loaded, view);
    let (samples, found) = lookup_pass(&evaluator, loaded, view);
    let maximum = micros(*samples.last().unwrap());
    row(
        &format!("lookup resources, 50 lookups ({found} ids), p50 / p99 (max)"),
        format!("{} ({maximum})", latency(&samples)),
        "p99 < 20 ms",
    );
    row(
        "lookup resources, first (cold) pass, p50 / p99",
        latency(&cold),
        "",
    );
    measure_paging(&evaluator, loaded, view, "");
    let forgetful = Evaluator::new(Arc::clone(&loaded.schema)).with_limits(
        inferadb_evaluator::EvaluatorLimits {
            lookup_candidates_kept_max: 0,
            ..Default::default()
        },
    );
    measure_paging(&forgetful, loaded, view, ", candidates not kept");
}

/// Pages through the largest lookup 100 ids at a time: later pages reuse the candidates
/// the first page found instead of walking the graph again.
fn measure_paging(
    evaluator: &Evaluator,
    loaded: &Loaded,
    view: &ReadView<'_, InMemoryReader>,
    variant: &str,
) {
    let largest = loaded
        .lookups
        .iter()
        .max_by_key(|lookup| {
            evaluator
                .lookup_resources(view, lookup)
                .unwrap()
                .resource_ids
                .len()
        })
        .unwrap();
    let mut request = LookupResourcesRequest {
        limit: 100,
        cursor: None,
        ..largest.clone()
    };
    let (start, mut pages, mut ids) = (Instant::now(), 0, 0);
    loop {
        let page = evaluator.lookup_resources(view, &request).unwrap();
        pages += 1;
        ids += page.resource_ids.len();
        match page.cursor {
            Some(cursor) => request.cursor = Some(cursor),
            None => break,
        }
    }
    row(
        &format!(
            "lookup resources, largest lookup paged 100 at a time ({ids} ids, {pages} pages){variant}"
        ),
        format!("{:.1} ms in all", start.elapsed().as_secs_f64() * 1000.0),
        "",
    );
}

fn main() {
    let loaded = load();
    let view = ReadView {
        reader: &loaded.reader,
        vault_id: 1,
        revision: Revision(1),
        now_ms: 0,
    };
    if std::env::var("EVALUATOR_BENCH_CHECKS_ONLY").is_ok() {
        // Profiling mode: repeat uncached checks so they dominate a `perf record`.
        let evaluator = Evaluator::new(Arc::clone(&loaded.schema));
        for _ in 0..40 {
            println!(
                "{:.0} checks/s",
                throughput(&evaluator, &view, &loaded.checks, 1)
            );
        }
        return;
    }
    if std::env::var("EVALUATOR_BENCH_CACHED_ONLY").is_ok() {
        // Profiling mode: repeat cached checks so they dominate a `perf record`.
        let evaluator = Evaluator::new(Arc::clone(&loaded.schema)).with_cache(1_000_000);
        for _ in 0..300 {
            for check in &loaded.checks {
                std::hint::black_box(evaluator.check(&view, check).unwrap());
            }
        }
        return;
    }
    if std::env::var("EVALUATOR_BENCH_LOOKUPS_ONLY").is_ok() {
        // Profiling mode: repeat the lookups so they dominate a `perf record`.
        for _ in 0..20 {
            measure_lookups(&loaded, &view);
        }
        return;
    }
    println!("\n| measure | result | target |\n|---|---|---|");
    measure_lookups(&loaded, &view);
    measure_checks(&loaded, &view);
}

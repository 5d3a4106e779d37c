//! `inferadb-sim`: runs the deterministic cluster simulator from the command line.

mod report;

use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use inferadb_simulations::config::{parse_duration, Faults, SimConfig, WorkloadConfig, BUGS};
use inferadb_simulations::shrink::shrink;
use inferadb_simulations::sim::{run, Summary};

#[derive(Parser)]
#[command(name = "inferadb-sim", about = "Deterministic cluster simulator")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// What one run simulates.
#[derive(Args, Clone)]
struct RunArgs {
    /// The seed.
    #[arg(long)]
    seed: u64,
    /// Cluster size (1 to 7).
    #[arg(long, default_value_t = 3)]
    nodes: u64,
    /// Simulated milliseconds to run.
    #[arg(long, default_value_t = 5000, conflicts_with = "duration")]
    ticks: u64,
    /// Simulated time to run instead of --ticks: 500ms, 30s, 10m, 1h.
    #[arg(long)]
    duration: Option<String>,
    /// Faults: comma-separated partition, drop, dup, reorder, crash, clock, pause, disk
    /// (or all, none).
    #[arg(long, default_value = "all")]
    faults: String,
    /// Clients: clients=3,keys=4,writes=50,tokens=40 (any subset).
    #[arg(long, default_value = "default")]
    workload: String,
    /// Applied entries after which a node compacts its log behind a snapshot (0: never).
    #[arg(long, default_value_t = 64)]
    compact_after: u64,
    /// A bug to inject (see `list-bugs`).
    #[arg(long)]
    inject_bug: Option<String>,
    /// Leave a node that applied its own removal running (as the node's shell does today).
    #[arg(long)]
    keep_removed_members: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Runs one seed and prints a summary; exits 1 on a violated invariant.
    Run {
        #[command(flatten)]
        args: RunArgs,
        /// Runs the seed twice and compares the trace hashes.
        #[arg(long)]
        check_determinism: bool,
        /// Writes the summary as JSON to this file.
        #[arg(long)]
        report: Option<std::path::PathBuf>,
    },
    /// Runs one seed again and prints its whole event trace (then the summary).
    Replay {
        #[command(flatten)]
        args: RunArgs,
        /// Print the full trace (otherwise only the summary and the last events).
        #[arg(long)]
        trace: bool,
    },
    /// Runs many seeds, each with a random mix of faults; exits 1 if any failed.
    Swarm {
        /// Seeds, as FIRST..LAST (inclusive) or one number.
        #[arg(long, default_value = "1..100")]
        seeds: String,
        /// Cluster size (1 to 7).
        #[arg(long, default_value_t = 3)]
        nodes: u64,
        /// Simulated milliseconds per seed.
        #[arg(long, default_value_t = 5000)]
        ticks: u64,
        /// A bug to inject in every seed.
        #[arg(long)]
        inject_bug: Option<String>,
    },
    /// Shrinks a failing run: drops fault kinds, membership changes, clients and keys, and
    /// halves its length while it still breaks the same invariant; prints the repro line.
    Shrink {
        #[command(flatten)]
        args: RunArgs,
    },
    /// Lists the bugs `--inject-bug` can turn on.
    ListBugs,
}

fn main() -> ExitCode {
    // A node's panic is reported as a `no_panic` violation with its message; the default
    // hook's backtrace would only bury the report, so the hook prints where, in one line.
    std::panic::set_hook(Box::new(|info| {
        if let Some(location) = info.location() {
            eprintln!("panic at {location}");
        }
    }));
    match Cli::parse().command {
        Command::ListBugs => {
            for bug in BUGS {
                println!("{bug}");
            }
            ExitCode::SUCCESS
        }
        Command::Run {
            args,
            check_determinism,
            report,
        } => match config_of(&args, false) {
            Ok(config) => run_command(&config, check_determinism, report.as_deref()),
            Err(error) => usage(&error),
        },
        Command::Replay { args, trace } => match config_of(&args, trace) {
            Ok(config) => replay(&config),
            Err(error) => usage(&error),
        },
        Command::Swarm {
            seeds,
            nodes,
            ticks,
            inject_bug,
        } => swarm(&seeds, nodes, ticks, inject_bug),
        Command::Shrink { args } => match config_of(&args, false) {
            Ok(config) => shrink_command(config),
            Err(error) => usage(&error),
        },
    }
}

fn shrink_command(config: SimConfig) -> ExitCode {
    match shrink(config) {
        Ok(Some(shrunk)) => {
            println!(
                "{} still breaks after {} runs with:\nrepro: {}",
                shrunk.invariant,
                shrunk.runs,
                shrunk.config.repro()
            );
            ExitCode::FAILURE
        }
        Ok(None) => {
            println!("the run breaks no invariant: nothing to shrink");
            ExitCode::SUCCESS
        }
        Err(error) => usage(&error),
    }
}

fn config_of(args: &RunArgs, full_trace: bool) -> Result<SimConfig, String> {
    let ticks = match &args.duration {
        Some(text) => parse_duration(text)?,
        None => args.ticks,
    };
    Ok(SimConfig {
        seed: args.seed,
        nodes: args.nodes,
        ticks,
        faults: Faults::parse(&args.faults)?,
        workload: WorkloadConfig::parse(&args.workload)?,
        bug: args.inject_bug.clone(),
        compact_after: args.compact_after,
        full_trace,
        keep_removed_members: args.keep_removed_members,
        token_reads_skip_wait: false,
    })
}

fn usage(error: &str) -> ExitCode {
    eprintln!("error: {error}");
    ExitCode::from(2)
}

/// Runs `config`, timing it (the only wall-clock read: the speed figure of the summary).
fn timed_run(config: &SimConfig) -> Result<(Summary, f64), String> {
    // Wall time only measures the simulator's speed for the report; the simulation itself
    // never reads a clock.
    #[allow(clippy::disallowed_methods)]
    let started = std::time::Instant::now();
    let summary = run(config.clone())?;
    Ok((summary, started.elapsed().as_secs_f64().max(1e-9)))
}

fn run_command(
    config: &SimConfig,
    check_determinism: bool,
    report_path: Option<&std::path::Path>,
) -> ExitCode {
    let (summary, wall) = match timed_run(config) {
        Ok(result) => result,
        Err(error) => return usage(&error),
    };
    print!("{}", report::human(&summary, wall));
    if let Some(path) = report_path {
        if let Err(error) = std::fs::write(path, report::json(&summary, wall)) {
            return usage(&format!(
                "cannot write the report to {}: {error}",
                path.display()
            ));
        }
        println!("report:             {}", path.display());
    }
    if check_determinism {
        match run(config.clone()) {
            Ok(again) if again.trace_hash == summary.trace_hash => {
                println!("determinism: ok (second run has the same trace hash)");
            }
            Ok(again) => {
                println!(
                    "\nVIOLATION determinism: trace hash {} then {}\nrepro: {} --check-determinism",
                    summary.trace_hash,
                    again.trace_hash,
                    config.repro()
                );
                return ExitCode::FAILURE;
            }
            Err(error) => return usage(&error),
        }
    }
    verdict(&summary)
}

/// Prints the violation's context and the repro line; the exit code.
fn verdict(summary: &Summary) -> ExitCode {
    match &summary.violation {
        None => ExitCode::SUCCESS,
        Some(_) => {
            print!("{}", report::violation(summary));
            ExitCode::FAILURE
        }
    }
}

fn replay(config: &SimConfig) -> ExitCode {
    let (summary, wall) = match timed_run(config) {
        Ok(result) => result,
        Err(error) => return usage(&error),
    };
    if let Some(trace) = &summary.trace {
        for record in trace {
            println!("{record}");
        }
        println!();
    }
    print!("{}", report::human(&summary, wall));
    verdict(&summary)
}

/// Parses `FIRST..LAST` (inclusive) or a single seed.
fn parse_seeds(text: &str) -> Result<(u64, u64), String> {
    let number = |s: &str| {
        s.trim()
            .parse::<u64>()
            .map_err(|_| format!("--seeds: {s:?} is not a number"))
    };
    let (first, last) = match text.split_once("..") {
        Some((a, b)) => (number(a)?, number(b.trim_start_matches('='))?),
        None => (number(text)?, number(text)?),
    };
    if first > last {
        return Err(format!("--seeds: {first} is after {last}"));
    }
    Ok((first, last))
}

fn swarm(seeds: &str, nodes: u64, ticks: u64, bug: Option<String>) -> ExitCode {
    let (first, last) = match parse_seeds(seeds) {
        Ok(range) => range,
        Err(error) => return usage(&error),
    };
    let mut failed: Vec<(String, String)> = Vec::new();
    let (mut events, mut wall_total) = (0u64, 0f64);
    for seed in first..=last {
        let config = SimConfig {
            nodes,
            ticks,
            faults: Faults::random(seed),
            bug: bug.clone(),
            ..SimConfig::new(seed)
        };
        let (summary, wall) = match timed_run(&config) {
            Ok(result) => result,
            Err(error) => return usage(&error),
        };
        events += summary.events;
        wall_total += wall;
        if let Some(violation) = &summary.violation {
            println!(
                "seed {seed}: VIOLATION {}: {}",
                violation.invariant, violation.detail
            );
            failed.push((violation.invariant.to_string(), config.repro()));
        }
    }
    let total = last - first + 1;
    println!(
        "swarm: {} of {total} seeds clean, {} failed ({events} events in {wall_total:.1} s wall, \
         {:.0} events/s)",
        total - failed.len() as u64,
        failed.len(),
        events as f64 / wall_total.max(1e-9)
    );
    for (invariant, repro) in &failed {
        println!("  {invariant}: {repro}");
    }
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

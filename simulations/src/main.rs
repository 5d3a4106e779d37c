//! `inferadb-sim`: runs the deterministic cluster simulator from the command line.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use inferadb_simulations::config::{Faults, SimConfig, BUGS};
use inferadb_simulations::sim::{run, Summary};

#[derive(Parser)]
#[command(name = "inferadb-sim", about = "Deterministic cluster simulator")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs one seed and prints a summary; exits 1 on a violated invariant.
    Run {
        /// The seed.
        #[arg(long)]
        seed: u64,
        /// Cluster size (1 to 7).
        #[arg(long, default_value_t = 3)]
        nodes: u64,
        /// Simulated milliseconds to run.
        #[arg(long, default_value_t = 5000)]
        ticks: u64,
        /// Faults: a comma-separated list of partition, drop, dup, reorder, crash (or all, none).
        #[arg(long, default_value = "all")]
        faults: String,
        /// A bug to inject (see `list-bugs`).
        #[arg(long)]
        inject_bug: Option<String>,
        /// Runs the seed twice and compares the trace hashes.
        #[arg(long)]
        check_determinism: bool,
    },
    /// Lists the bugs `--inject-bug` can turn on.
    ListBugs,
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::ListBugs => {
            for bug in BUGS {
                println!("{bug}");
            }
            ExitCode::SUCCESS
        }
        Command::Run {
            seed,
            nodes,
            ticks,
            faults,
            inject_bug,
            check_determinism,
        } => {
            let faults = match Faults::parse(&faults) {
                Ok(faults) => faults,
                Err(error) => return usage(&error),
            };
            let config = SimConfig {
                seed,
                nodes,
                ticks,
                faults,
                bug: inject_bug,
            };
            run_command(&config, check_determinism)
        }
    }
}

fn usage(error: &str) -> ExitCode {
    eprintln!("error: {error}");
    ExitCode::from(2)
}

fn run_command(config: &SimConfig, check_determinism: bool) -> ExitCode {
    // A node's panic is reported as a `no_panic` violation with its message; the default
    // hook's backtrace would only bury the report.
    std::panic::set_hook(Box::new(|_| {}));
    // Wall time only measures the simulator's speed for the report; the simulation itself
    // never reads a clock.
    #[allow(clippy::disallowed_methods)]
    let started = std::time::Instant::now();
    let summary = match run(config.clone()) {
        Ok(summary) => summary,
        Err(error) => return usage(&error),
    };
    let wall = started.elapsed().as_secs_f64().max(1e-9);
    print_summary(&summary, wall);
    if check_determinism {
        match run(config.clone()) {
            Ok(again) if again.trace_hash == summary.trace_hash => {
                println!("determinism: ok (second run has the same trace hash)");
            }
            Ok(again) => {
                println!(
                    "VIOLATION determinism: trace hash {} then {}\nrepro: {} --check-determinism",
                    summary.trace_hash,
                    again.trace_hash,
                    config.repro()
                );
                return ExitCode::FAILURE;
            }
            Err(error) => return usage(&error),
        }
    }
    match &summary.violation {
        None => ExitCode::SUCCESS,
        Some(violation) => {
            println!("\nVIOLATION {}: {}", violation.invariant, violation.detail);
            println!("last events:");
            for record in &summary.recent {
                println!("  {record}");
            }
            println!("repro: {}", config.repro());
            ExitCode::FAILURE
        }
    }
}

fn print_summary(summary: &Summary, wall: f64) {
    let config = &summary.config;
    println!(
        "seed {} nodes {} ticks {} faults {} bug {}",
        config.seed,
        config.nodes,
        config.ticks,
        config.faults.names().join(","),
        config.bug.as_deref().unwrap_or("none")
    );
    println!("events:             {}", summary.events);
    println!("faults:             {:?}", summary.faults);
    println!("elections:          {}", summary.elections);
    let (failed, unknown) = summary.failed_unknown;
    println!(
        "commits:            {} of {} writes ({failed} failed, {unknown} unknown)",
        summary.commits, summary.writes
    );
    println!("invariants checked: {}", summary.checks);
    let simulated = summary.simulated_ms as f64 / 1000.0;
    println!(
        "simulated:          {simulated:.1} s in {wall:.3} s wall ({:.0}x, {:.0} events/s)",
        simulated / wall,
        summary.events as f64 / wall
    );
    println!("trace hash:         {}", summary.trace_hash);
}

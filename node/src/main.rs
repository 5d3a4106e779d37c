//! The `inferadb` binary. Today it hosts the schema tools (`schema check`, `schema
//! format`), local evaluation of checks against a relationships file (`check`), the
//! storage demo and the storage integrity check; the dev server and cluster membership
//! arrive with the single-node vertical slice.
#![allow(clippy::disallowed_methods)] // the CLI reports wall-clock durations to a person

mod local;

use clap::{Parser, Subcommand};
use inferadb_storage::{Database, Durability};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

/// InferaDB: a clustered, verifiable, relationship-based authorization database.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
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
        Command::Demo {
            path,
            relationships,
        } => demo(path, relationships),
        Command::Verify { path } => verify(&path),
        Command::Schema(SchemaCommand::Check { path }) => local::schema_check(&path),
        Command::Schema(SchemaCommand::Format { path }) => local::schema_format(&path),
        Command::Check(arguments) => local::check(&arguments),
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

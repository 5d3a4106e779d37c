//! Local tools over the schema compiler and the evaluator: no server, no storage. They let
//! a schema author compile, format and try a schema against relationships from a file.

use clap::Args;
use inferadb_evaluator::{CheckRequest, Evaluator, InMemoryReader, ReadView};
use inferadb_protocols::{Relationship, Revision};
use std::error::Error;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Arguments of `inferadb check`.
#[derive(Args)]
pub struct CheckArguments {
    /// The IPL schema file.
    #[arg(long)]
    schema: PathBuf,
    /// Relationships, one per line: JSON (`{"resource","relation","subject"}`, as in the
    /// conformance and benchmark files) or text (`document:1#viewer@user:ann`).
    #[arg(long)]
    relationships: PathBuf,
    /// Print the evaluation trace of each check.
    #[arg(long)]
    explain: bool,
    /// Checks to evaluate, as `resource#permission@subject`.
    #[arg(required = true)]
    checks: Vec<String>,
}

fn read(path: &Path) -> Result<String, Box<dyn Error>> {
    std::fs::read_to_string(path).map_err(|error| format!("{}: {error}", path.display()).into())
}

/// `inferadb schema check`.
pub fn schema_check(path: &Path) -> Result<(), Box<dyn Error>> {
    let source = read(path)?;
    match inferadb_ipl::compile(&source) {
        Ok(compiled) => {
            for warning in &compiled.warnings {
                eprintln!("{}: {warning}", path.display());
            }
            let schema = &compiled.schema;
            let relations: usize = schema.types().iter().map(|t| t.relations.len()).sum();
            println!(
                "{}: ok, {} types, {relations} relations and permissions, fingerprint {}",
                path.display(),
                schema.type_count(),
                schema.fingerprint()
            );
            Ok(())
        }
        Err(diagnostics) => Err(format!("{}:\n{diagnostics}", path.display()).into()),
    }
}

/// `inferadb schema format`.
pub fn schema_format(path: &Path) -> Result<(), Box<dyn Error>> {
    let source = read(path)?;
    let formatted = inferadb_ipl::format_source(&source)
        .map_err(|diagnostics| format!("{}:\n{diagnostics}", path.display()))?;
    print!("{formatted}");
    Ok(())
}

/// Parses one relationships line, JSON or text; the error names the line.
fn parse_relationship(line: &str, number: usize) -> Result<Relationship, Box<dyn Error>> {
    let parsed = if line.starts_with('{') {
        serde_json::from_str(line).map_err(|error| error.to_string())
    } else {
        Relationship::parse(line).map_err(|error| error.to_string())
    };
    parsed.map_err(|error| format!("relationships line {number}: {error}").into())
}

fn load_relationships(path: &Path) -> Result<Vec<Relationship>, Box<dyn Error>> {
    let text = read(path)?;
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(index, line)| parse_relationship(line.trim(), index + 1))
        .collect()
}

fn parse_check(text: &str) -> Result<CheckRequest, Box<dyn Error>> {
    let rule = "a check is written `resource#permission@subject`";
    let (resource, rest) = text
        .split_once('#')
        .ok_or_else(|| format!("check `{text}`: {rule}"))?;
    let (permission, subject) = rest
        .split_once('@')
        .ok_or_else(|| format!("check `{text}`: {rule}"))?;
    Ok(CheckRequest {
        resource: resource
            .parse()
            .map_err(|error| format!("check `{text}`: {error}"))?,
        permission: permission
            .parse()
            .map_err(|error| format!("check `{text}`: {error}"))?,
        subject: subject
            .parse()
            .map_err(|error| format!("check `{text}`: {error}"))?,
    })
}

/// `inferadb check`.
pub fn check(arguments: &CheckArguments) -> Result<(), Box<dyn Error>> {
    let source = read(&arguments.schema)?;
    let compiled = inferadb_ipl::compile(&source)
        .map_err(|diagnostics| format!("{}:\n{diagnostics}", arguments.schema.display()))?;
    let relationships = load_relationships(&arguments.relationships)?;
    let requests: Vec<CheckRequest> = arguments
        .checks
        .iter()
        .map(|text| parse_check(text))
        .collect::<Result<_, _>>()?;
    let reader = InMemoryReader::from_relationships(&relationships);
    let evaluator = Evaluator::new(Arc::new(compiled.schema));
    let view = ReadView {
        reader: &reader,
        vault_id: 0,
        revision: Revision(1),
        now_ms: 0,
    };
    for (text, request) in arguments.checks.iter().zip(&requests) {
        let response = evaluator.check(&view, request)?;
        let verdict = if response.allowed {
            "allowed"
        } else {
            "denied"
        };
        println!("{verdict} {text}");
        if arguments.explain {
            print!("{}", evaluator.explain(&view, request)?);
        }
    }
    Ok(())
}

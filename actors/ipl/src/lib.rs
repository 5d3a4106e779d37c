//! The IPL (Infera Policy Language) v1 compiler: lexer, parser, resolver and checker,
//! canonical formatter, and the compiled schema the evaluator runs. This crate owns the
//! meaning of schema text: what is accepted, what every construct resolves to, and the
//! errors and warnings for everything that is not. It is a pure library: it must never do
//! I/O, read the clock, spawn tasks or evaluate relationships (that is the evaluator's job).
//!
//! The language reference is `docs/ipl.md`. The pipeline is
//! [`parse`] (lexer and parser, every syntax error reported) → resolution and checks (every
//! reference error reported) → stratification → [`CompiledSchema`]. A later stage runs only
//! when the earlier ones found no error, so that one mistake does not cascade into many.

pub mod ast;
mod checker;
pub mod compiled;
pub mod diagnostics;
mod formatter;
mod lexer;
pub mod limits;
mod parser;
mod resolver;
mod stratification;

pub use compiled::{
    AllowedSubject, Arrow, ArrowTarget, CompiledSchema, Dependency, DependencyKind, Expr,
    RelationDefinition, RelationId, RelationKeyword, RelationKind, RelationRef, SchemaFingerprint,
    SubjectUse, TypeDefinition, TypeId,
};
pub use diagnostics::{Diagnostic, DiagnosticKind, Diagnostics, Severity, Span};
pub use formatter::{format, format_expression};

/// A successfully compiled schema and the warnings found on the way.
#[derive(Clone, Debug)]
pub struct Compiled {
    /// The compiled schema.
    pub schema: CompiledSchema,
    /// Warnings, sorted by position (the schema is valid regardless).
    pub warnings: Vec<Diagnostic>,
}

/// Compiles IPL v1 source text. On failure, returns every error found (not just the first).
///
/// ```
/// let source = "type user {}\ntype doc {\n    relation viewer: user\n    permission view = viewer\n}";
/// let compiled = inferadb_ipl::compile(source).expect("valid schema");
/// let view = compiled.schema.resolve("doc", "view").expect("doc#view exists");
/// assert!(compiled.schema.relation(view).is_permission());
///
/// let errors = inferadb_ipl::compile("type doc { relation owner: person }").unwrap_err();
/// assert_eq!(errors.errors[0].kind, inferadb_ipl::DiagnosticKind::UnknownType);
/// assert_eq!((errors.errors[0].line, errors.errors[0].column), (1, 28));
/// ```
pub fn compile(source: &str) -> Result<Compiled, Diagnostics> {
    let schema = parse(source)?;
    checker::check(source, &schema)
}

/// Parses IPL v1 source text into a syntax tree without resolving names. On failure, returns
/// every syntax error in the file.
pub fn parse(source: &str) -> Result<ast::Schema, Diagnostics> {
    let mut errors = Vec::new();
    let tokens = lexer::tokenize(source, &mut errors);
    let schema = parser::parse_tokens(source, &tokens, &mut errors);
    if errors.is_empty() {
        return Ok(schema);
    }
    Err(finish(errors, Vec::new()))
}

/// Parses and formats source text canonically (see [`format`]); fails only on syntax errors.
pub fn format_source(source: &str) -> Result<String, Diagnostics> {
    parse(source).map(|schema| format(&schema))
}

/// Sorts errors and warnings by position and caps the number of errors.
fn finish(mut errors: Vec<Diagnostic>, mut warnings: Vec<Diagnostic>) -> Diagnostics {
    debug_assert!(
        !errors.is_empty(),
        "a failed compilation reports at least one error"
    );
    errors.sort_by_key(|diagnostic| diagnostic.span);
    errors.truncate(limits::ERRORS_MAX);
    warnings.sort_by_key(|diagnostic| diagnostic.span);
    Diagnostics { errors, warnings }
}

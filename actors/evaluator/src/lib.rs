//! The evaluation engine: check, batch check, expand, lookup resources, lookup subjects and
//! explain, over a compiled IPL schema and a relationship snapshot.
//!
//! This crate owns the *meaning* of a schema applied to data: the least fixpoint of its
//! rules, stratified by negation, with wildcards, usersets, arrows, exclusion, intersection,
//! forbids and policy modules. It is a pure library: it must never do I/O, read the clock
//! (`now_ms` comes from the caller), spawn threads or tasks, or mutate relationships. Storage
//! plugs in through [`RelationshipReader`]; policy modules through [`PolicyModule`].
//!
//! - [`Evaluator`]: the entry point ([`Evaluator::check`], [`Evaluator::batch_check`],
//!   [`Evaluator::expand`], [`Evaluator::lookup_resources`], [`Evaluator::lookup_subjects`],
//!   [`Evaluator::explain`]), with an optional cross-request decision cache and counters.
//! - [`RelationshipReader`] and [`InMemoryReader`]: the read interface and an in-memory
//!   implementation.
//! - [`EvaluatorLimits`]: every bound (depth, work budgets, tree sizes) as a named knob.
//! - [`EvaluationError`]: typed failures; a failure is never reported as a denial.
//!
//! `docs/evaluator.md` describes the algorithms (cycle strategy, lookups, caching).

mod cache;
mod engine;
pub mod error;
mod evaluator;
mod expand;
mod explain;
mod front_cache;
mod hashing;
pub mod limits;
mod lookup_resources;
mod lookup_subjects;
pub mod memory;
pub mod module;
pub mod reader;
pub mod schema;
mod state;

pub use error::EvaluationError;
pub use evaluator::{
    CheckRequest, CheckResponse, Evaluator, EvaluatorStats, ReadView,
    DECISION_CACHE_ENTRIES_DEFAULT,
};
pub use expand::{ExpandTree, Expansion};
pub use explain::{Explanation, TraceNode, TraceStep};
pub use limits::EvaluatorLimits;
pub use lookup_resources::{LookupResourcesPage, LookupResourcesRequest};
pub use lookup_subjects::{LookupSubjectsRequest, LookupSubjectsResponse};
pub use memory::InMemoryReader;
pub use module::{ModuleError, ModuleRegistry, ModuleRequest, PolicyModule};
pub use reader::{
    Found, ObjectKey, ReadError, RelationshipReader, SubjectFilter, SubjectKey, WILDCARD_ID,
};
pub use schema::SchemaIndex;

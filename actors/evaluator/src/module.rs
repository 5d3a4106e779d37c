//! Policy modules: the predicates behind `module("name")` in a schema. WASM modules will
//! implement [`PolicyModule`]; the evaluator only sees the trait, through a
//! [`ModuleRegistry`].

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use crate::reader::SubjectKey;

/// What a module is asked: may `subject` have `relation` on `resource_type:resource_id`?
#[derive(Clone, Copy, Debug)]
pub struct ModuleRequest<'a> {
    /// The module's name as written in the schema.
    pub module: &'a str,
    /// The type of the object whose relation calls the module.
    pub resource_type: &'a str,
    /// The id of that object.
    pub resource_id: &'a str,
    /// The relation whose expression calls the module.
    pub relation: &'a str,
    /// The subject of the check.
    pub subject: SubjectKey<'a>,
}

/// A module's own failure, reported as [`crate::EvaluationError::ModuleFailed`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModuleError {
    /// What went wrong.
    pub message: String,
}

/// A predicate callable from a schema. Must be deterministic for a given request: the
/// evaluator memoizes and caches its answers like any other sub-problem.
pub trait PolicyModule: Send + Sync {
    /// Decides one request.
    fn evaluate(&self, request: &ModuleRequest<'_>) -> Result<bool, ModuleError>;
}

/// The loaded modules, by name.
#[derive(Clone, Default)]
pub struct ModuleRegistry {
    modules: HashMap<String, Arc<dyn PolicyModule>>,
}

impl ModuleRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Loads (or replaces) a module under `name`.
    pub fn register(&mut self, name: impl Into<String>, module: Arc<dyn PolicyModule>) {
        self.modules.insert(name.into(), module);
    }

    /// The module loaded under `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<dyn PolicyModule>> {
        self.modules.get(name)
    }
}

impl fmt::Debug for ModuleRegistry {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut names: Vec<&String> = self.modules.keys().collect();
        names.sort();
        formatter
            .debug_struct("ModuleRegistry")
            .field("modules", &names)
            .finish()
    }
}

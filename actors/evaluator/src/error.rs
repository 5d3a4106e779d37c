//! [`EvaluationError`]: every way a request can fail. A failure is never reported as a
//! denial: a caller that gets `Ok(false)` knows the subject is denied.

use crate::reader::ReadError;

/// Why an evaluation could not produce an answer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EvaluationError {
    /// A type named in the request is not in the schema.
    #[error("{part} `{name}`: no such type in the schema")]
    UnknownType {
        /// Which part of the request names it ("resource type", "subject type").
        part: &'static str,
        /// The type name.
        name: String,
    },
    /// A relation named in the request is not defined on its type.
    #[error("{part} `{relation}`: type `{type_name}` has no such relation or permission")]
    UnknownRelation {
        /// Which part of the request names it ("permission", "subject relation").
        part: &'static str,
        /// The type.
        type_name: String,
        /// The relation name.
        relation: String,
    },
    /// Evaluation nested deeper than [`crate::EvaluatorLimits::depth_max`].
    #[error("evaluation exceeded the depth limit of {depth_max} nested sub-problems")]
    DepthLimitExceeded {
        /// The limit.
        depth_max: u32,
    },
    /// Evaluation spent more than its work budget.
    #[error("evaluation exceeded its work budget of {work_budget} units")]
    WorkBudgetExceeded {
        /// The budget.
        work_budget: u64,
    },
    /// An expand or explain tree grew past [`crate::EvaluatorLimits::tree_nodes_max`].
    #[error("the tree exceeded {tree_nodes_max} nodes")]
    TreeTooLarge {
        /// The limit.
        tree_nodes_max: u64,
    },
    /// The schema calls `module("name")` and no module of that name is loaded.
    #[error("policy module `{name}` is not loaded")]
    ModuleNotLoaded {
        /// The module name.
        name: String,
    },
    /// A policy module failed.
    #[error("policy module `{name}` failed: {message}")]
    ModuleFailed {
        /// The module name.
        name: String,
        /// Its error.
        message: String,
    },
    /// A lookup over a relation that a module can grant without any relationship: the
    /// answer cannot be enumerated.
    #[error("`{type_name}#{relation}` cannot be enumerated: module `{module}` may grant it to any object")]
    NotEnumerable {
        /// The type.
        type_name: String,
        /// The relation.
        relation: String,
        /// The module.
        module: String,
    },
    /// Explain's trace and the check it was compared with disagree: a policy module that
    /// answered differently between the two walks (modules must be deterministic).
    #[error("explain and check disagree (trace: {trace_allowed}, check: {check_allowed}); is a policy module non-deterministic?")]
    ExplainDiverged {
        /// The trace's answer.
        trace_allowed: bool,
        /// The check's answer.
        check_allowed: bool,
    },
    /// A lookup cursor that cannot continue this lookup: malformed, issued for another
    /// lookup, or issued at another revision.
    #[error("cursor `{cursor}`: {rule}")]
    InvalidCursor {
        /// The cursor as received.
        cursor: String,
        /// Why it was refused.
        rule: String,
    },
    /// Reading relationships failed.
    #[error(transparent)]
    Read(#[from] ReadError),
}

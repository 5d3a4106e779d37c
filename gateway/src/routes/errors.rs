//! Domain errors as problems: each keeps the field and the rule, and gets the status that
//! tells a client what to do about it.

use axum::http::StatusCode;
use inferadb_evaluator::EvaluationError;
use inferadb_messages::{
    DeployFailure, EvaluatorRejection, MailboxError, ProposalFailure, RegistryError, WriteFailure,
};
use inferadb_vault::{CatalogError, ReadError, SchemaError, VaultError, WriteError};
use serde_json::{json, Value};

use crate::problem::Problem;

/// An actor that could not be reached or did not answer.
pub fn mailbox_problem(error: MailboxError) -> Problem {
    match error {
        MailboxError::Timeout { .. } => Problem::new(
            StatusCode::GATEWAY_TIMEOUT,
            "actor-timeout",
            "Timed out",
            error.to_string(),
        ),
        MailboxError::NotRunning { .. } | MailboxError::Dropped { .. } => {
            Problem::unavailable(error.to_string()).retry_after(1)
        }
    }
}

/// A command the shard did not answer: a plain 503 when it surely did not take effect
/// (retry), `write-outcome-unknown` when it may have.
pub fn proposal_problem(failure: ProposalFailure) -> Problem {
    match &failure {
        ProposalFailure::NotApplied { .. } => {
            Problem::unavailable(failure.to_string()).retry_after(1)
        }
        ProposalFailure::OutcomeUnknown { .. } => Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "write-outcome-unknown",
            "Write outcome unknown",
            format!(
                "{failure}; the command may or may not have been applied: read it back, or \
                 retry with a precondition"
            ),
        ),
    }
}

/// A write batch's failure; `paths` maps mutation indexes to JSON paths (`writes[2]`).
pub fn write_failure_problem(
    failure: WriteFailure,
    paths: &[String],
    precondition_path: &str,
) -> Problem {
    match failure {
        WriteFailure::Refused(error) => write_problem(error, paths, precondition_path),
        WriteFailure::Proposal(failure) => proposal_problem(failure),
    }
}

/// A schema deploy's failure.
pub fn deploy_failure_problem(failure: DeployFailure) -> Problem {
    match failure {
        DeployFailure::Refused(error) => schema_problem(error),
        DeployFailure::Proposal(failure) => proposal_problem(failure),
    }
}

/// A registry failure.
pub fn registry_problem(error: RegistryError) -> Problem {
    match error {
        RegistryError::NotFound { .. } => Problem::not_found("vault-not-found", error.to_string()),
        RegistryError::Catalog(error) => catalog_problem(error),
        RegistryError::Actor(error) => mailbox_problem(error),
        RegistryError::Proposal(failure) => proposal_problem(failure),
        RegistryError::SpawnFailed { .. } => Problem::internal(error.to_string()),
    }
}

fn catalog_problem(error: CatalogError) -> Problem {
    match &error {
        CatalogError::NameInvalid { .. } => Problem::invalid_field("name", error_rule(&error)),
        CatalogError::NameTaken { .. } => Problem::new(
            StatusCode::CONFLICT,
            "vault-name-taken",
            "Conflict",
            error.to_string(),
        )
        .with("field", json!("name")),
        CatalogError::VaultNotFound { .. } => {
            Problem::not_found("vault-not-found", error.to_string())
        }
        CatalogError::IdTaken { .. } | CatalogError::Corrupt { .. } | CatalogError::Storage(_) => {
            Problem::internal(error.to_string())
        }
    }
}

fn error_rule(error: &CatalogError) -> String {
    match error {
        CatalogError::NameInvalid { rule } => rule.to_string(),
        other => other.to_string(),
    }
}

/// A vault read failure.
pub fn vault_problem(error: VaultError) -> Problem {
    match &error {
        VaultError::VaultNotFound { .. } => {
            Problem::not_found("vault-not-found", error.to_string())
        }
        VaultError::LimitInvalid { .. } => Problem::invalid_field("limit", error.to_string()),
        VaultError::Corrupt { .. } | VaultError::Storage(_) => Problem::internal(error.to_string()),
    }
}

/// A relationship read failure.
pub fn read_problem(error: ReadError) -> Problem {
    match &error {
        ReadError::FilterInvalid(filter) => {
            Problem::invalid_field(&format!("filter.{}", filter.field), &filter.rule)
        }
        ReadError::LimitInvalid { .. } => Problem::invalid_field("limit", error.to_string()),
        ReadError::CursorMalformed { .. } | ReadError::CursorMismatch => {
            Problem::invalid_field("cursor", error.to_string())
        }
        ReadError::Corrupt { .. } | ReadError::Storage(_) => Problem::internal(error.to_string()),
    }
}

/// A schema deploy failure: every compiler error, or the orphans.
pub fn schema_problem(error: SchemaError) -> Problem {
    match &error {
        SchemaError::Invalid(_) => {
            let errors: Vec<Value> = error
                .problems()
                .iter()
                .map(|problem| {
                    json!({"line": problem.line, "column": problem.column,
                        "code": problem.code, "message": problem.message})
                })
                .collect();
            let count = errors.len();
            Problem::bad_request("invalid-schema", format!("the schema has {count} error(s)"))
                .with("errors", Value::Array(errors))
        }
        SchemaError::TooLarge { .. } => Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "schema-too-large",
            "Schema too large",
            error.to_string(),
        ),
        SchemaError::WouldOrphan { examples, total } => {
            let orphans: Vec<Value> = examples
                .iter()
                .map(crate::wire::relationship_json)
                .collect();
            Problem::new(
                StatusCode::CONFLICT,
                "schema-would-orphan",
                "Schema would orphan relationships",
                error.to_string(),
            )
            .with("orphans", Value::Array(orphans))
            .with("orphans_total", json!(total))
        }
        SchemaError::Corrupt { .. } | SchemaError::Storage(_) => {
            Problem::internal(error.to_string())
        }
    }
}

/// A write failure; `paths` maps mutation indexes to JSON paths (`writes[2]`).
pub fn write_problem(error: WriteError, paths: &[String], precondition_path: &str) -> Problem {
    let path = |index: usize| {
        paths
            .get(index)
            .cloned()
            .unwrap_or_else(|| format!("mutations[{index}]"))
    };
    let detail = error.to_string();
    match &error {
        WriteError::NoSchema => {
            Problem::new(StatusCode::CONFLICT, "no-schema", "No schema", detail)
        }
        WriteError::BatchTooLarge { .. } | WriteError::TooManyPreconditions { .. } => Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "batch-too-large",
            "Batch too large",
            detail,
        ),
        WriteError::UnknownType { index, field, .. }
        | WriteError::UnknownRelation { index, field, .. } => {
            let field = match field.as_str() {
                "resource_type" | "resource_id" => "resource",
                "relation" => "relation",
                _ => "subject",
            };
            Problem::invalid_field(&format!("{}.{field}", path(*index)), detail)
        }
        WriteError::NotADirectRelation { index, .. } => {
            Problem::invalid_field(&format!("{}.relation", path(*index)), detail)
        }
        WriteError::SubjectNotAllowed { index, allowed, .. } => {
            Problem::invalid_field(&format!("{}.subject", path(*index)), detail)
                .with("allowed", json!(allowed))
        }
        WriteError::ExpiryInPast { index, .. } => {
            Problem::invalid_field(&format!("{}.expires_at", path(*index)), detail)
        }
        WriteError::FilterInvalid { index, error } => {
            Problem::invalid_field(&format!("{}.{}", path(*index), error.field), &error.rule)
        }
        WriteError::PreconditionInvalid { index, error } => Problem::invalid_field(
            &format!("{precondition_path}[{index}].filter.{}", error.field),
            &error.rule,
        ),
        WriteError::AlreadyExists { index, .. } => {
            Problem::new(StatusCode::CONFLICT, "already-exists", "Conflict", detail)
                .with("field", json!(path(*index)))
        }
        WriteError::TooManyMatches { .. } => Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too-many-matches",
            "Too many matches",
            detail,
        ),
        WriteError::PreconditionFailed { index, .. } => Problem::new(
            StatusCode::PRECONDITION_FAILED,
            "precondition-failed",
            "Precondition failed",
            detail,
        )
        .with("field", json!(format!("{precondition_path}[{index}]"))),
        WriteError::BlockTooLarge { .. } => Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "batch-too-large",
            "Batch too large",
            detail,
        ),
        WriteError::Corrupt { .. } | WriteError::GroupFailed { .. } | WriteError::Storage(_) => {
            Problem::internal(detail)
        }
    }
}

/// An evaluation failure (for a whole request).
pub fn evaluation_problem(error: &EvaluationError) -> Problem {
    let detail = error.to_string();
    match error {
        EvaluationError::UnknownType { .. } | EvaluationError::UnknownRelation { .. } => {
            Problem::bad_request("unknown-name", detail)
        }
        EvaluationError::InvalidCursor { .. } => Problem::invalid_field("cursor", detail),
        EvaluationError::Read(_) => Problem::internal(detail),
        EvaluationError::DepthLimitExceeded { .. }
        | EvaluationError::WorkBudgetExceeded { .. }
        | EvaluationError::TreeTooLarge { .. } => Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "evaluation-limit",
            "Evaluation limit exceeded",
            detail,
        ),
        _ => Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "evaluation-failed",
            "Evaluation failed",
            detail,
        ),
    }
}

/// The pool's refusal or the job's failure.
pub fn rejection_problem(rejection: EvaluatorRejection) -> Problem {
    match rejection {
        EvaluatorRejection::Overloaded { retry_after_s, .. } => Problem::new(
            StatusCode::TOO_MANY_REQUESTS,
            "overloaded",
            "Too many requests",
            rejection.to_string(),
        )
        .retry_after(retry_after_s),
        EvaluatorRejection::NoSchema => Problem::new(
            StatusCode::CONFLICT,
            "no-schema",
            "No schema",
            rejection.to_string(),
        ),
        EvaluatorRejection::Evaluation(error) => evaluation_problem(&error),
        EvaluatorRejection::Stopping => Problem::unavailable(rejection.to_string()).retry_after(1),
        EvaluatorRejection::Panicked => Problem::internal(rejection.to_string()),
    }
}

/// The JSON of a per-item error inside a batch answer: the problem's members without the
/// HTTP envelope.
pub fn item_error_json(problem: &Problem) -> Value {
    problem.members()
}

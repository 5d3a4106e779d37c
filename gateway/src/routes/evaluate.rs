//! Checks, batch checks, expand and lookups: validated here, evaluated by the pool over the
//! snapshot the request's consistency selects.

use axum::extract::{Path, State};
use axum::Json;
use inferadb_evaluator::{CheckRequest, LookupResourcesRequest, LookupSubjectsRequest};
use std::sync::Arc;

use inferadb_messages::{
    EvaluationJob, EvaluationOutput, EvaluatorMsg, CURSOR_SNAPSHOT_TTL_MS, SNAPSHOT_HISTORY_MAX,
};
use inferadb_protocols::{Revision, Role, VaultId};
use inferadb_vault::VaultSnapshot;
use serde::Deserialize;
use serde_json::{json, Value};

use super::errors::{evaluation_problem, item_error_json, rejection_problem};
use super::{mailbox_problem, vault_route, Context};
use crate::consistency::{self, encode_token};
use crate::problem::Problem;
use crate::wire::{self, expand_json, trace_json, ApiJson};

/// A check on the wire.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckWire {
    resource: String,
    permission: String,
    subject: String,
    #[serde(default)]
    context: Option<Value>,
}

fn check_request(path: &str, wire: &CheckWire) -> Result<CheckRequest, Problem> {
    let field = |name: &str| {
        if path.is_empty() {
            name.to_string()
        } else {
            format!("{path}.{name}")
        }
    };
    if wire
        .context
        .as_ref()
        .is_some_and(|context| !context.is_object())
    {
        return Err(Problem::invalid_field(
            &field("context"),
            "must be a JSON object",
        ));
    }
    Ok(CheckRequest {
        resource: wire::object(&field("resource"), &wire.resource, Role::Resource)?,
        permission: wire::relation(&field("permission"), &wire.permission)?,
        subject: wire::subject(&field("subject"), &wire.subject)?,
    })
}

/// Sends a job to the pool over the snapshot `consistency` selects; returns the output and
/// the revision it was computed at.
async fn evaluate(
    context: &Context,
    route: &inferadb_messages::VaultRoute,
    consistency: Option<&Value>,
    job: EvaluationJob,
) -> Result<(EvaluationOutput, String), Problem> {
    let id: VaultId = route.record.id;
    let consistency = consistency::parse(context, id, consistency)?;
    let mut snapshot = consistency::snapshot(context, route, &consistency).await?;
    let now_ms = context.now_ms();
    if let Some(pinned) = cursor_revision(&job) {
        snapshot = pinned_snapshot(route, snapshot, pinned, now_ms)?;
    }
    let revision = encode_token(context, id, snapshot.revision());
    let kept = Arc::clone(&snapshot);
    let timeout = context.limits.request_timeout_ms;
    let output = context
        .evaluator
        .call(
            |reply| EvaluatorMsg::Evaluate {
                snapshot,
                now_ms,
                job,
                reply,
            },
            timeout,
        )
        .await
        .map_err(mailbox_problem)?
        .map_err(rejection_problem)?;
    if let EvaluationOutput::LookupResources(page) = &output {
        if page.cursor.is_some() {
            // The next page must read this same revision.
            route.history.retain(&kept, now_ms);
        }
    }
    Ok((output, revision))
}

/// The revision a lookup cursor was issued at (`v1:<revision>:…`): the next page must read
/// the same snapshot, or the pages would not fit together.
fn cursor_revision(job: &EvaluationJob) -> Option<Revision> {
    let EvaluationJob::LookupResources { request } = job else {
        return None;
    };
    let cursor = request.cursor.as_deref()?;
    let mut parts = cursor.split(':');
    let _version = parts.next()?;
    parts.next()?.parse().ok().map(Revision)
}

/// The snapshot at `pinned`: the newest one if it is that revision, else one the vault
/// still retains; a cursor older than every retained snapshot must restart its lookup.
fn pinned_snapshot(
    route: &inferadb_messages::VaultRoute,
    newest: Arc<VaultSnapshot>,
    pinned: Revision,
    now_ms: u64,
) -> Result<Arc<VaultSnapshot>, Problem> {
    if newest.revision() == pinned {
        return Ok(newest);
    }
    route.history.at(pinned, now_ms).ok_or_else(|| {
        Problem::invalid_field(
            "cursor",
            format!(
                "it continues a lookup at revision {pinned}, which the vault no longer keeps \
                 (at most {SNAPSHOT_HISTORY_MAX} unfinished lookups' revisions, for \
                 {CURSOR_SNAPSHOT_TTL_MS} ms); restart the lookup without a cursor"
            ),
        )
    })
}

fn unexpected() -> Problem {
    Problem::internal("invariant: the pool answers a job with the output of its kind")
}

/// `POST …/check` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckBody {
    resource: String,
    permission: String,
    subject: String,
    #[serde(default)]
    context: Option<Value>,
    #[serde(default)]
    consistency: Option<Value>,
    #[serde(default)]
    explain: bool,
}

/// `POST /v1/vaults/{id}/check`.
pub async fn check(
    State(context): State<Context>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<CheckBody>,
) -> Result<Json<Value>, Problem> {
    let (_, route) = vault_route(&context, &id).await?;
    let wire = CheckWire {
        resource: body.resource,
        permission: body.permission,
        subject: body.subject,
        context: body.context,
    };
    let request = check_request("", &wire)?;
    let job = EvaluationJob::Check {
        request,
        explain: body.explain,
    };
    let (output, revision) = evaluate(&context, &route, body.consistency.as_ref(), job).await?;
    let EvaluationOutput::Check {
        allowed,
        explanation,
    } = output
    else {
        return Err(unexpected());
    };
    let mut answer = json!({ "allowed": allowed, "revision": revision });
    if let Some(explanation) = explanation {
        answer["explanation"] = json!({
            "text": explanation.to_string(),
            "trace": trace_json(&explanation.trace),
        });
    }
    Ok(Json(answer))
}

/// `POST …/check/batch` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchBody {
    checks: Vec<CheckWire>,
    #[serde(default)]
    consistency: Option<Value>,
}

/// `POST /v1/vaults/{id}/check/batch`: answers in request order; a bad item gets its own
/// error and does not fail the others.
pub async fn batch_check(
    State(context): State<Context>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<BatchBody>,
) -> Result<Json<Value>, Problem> {
    let (_, route) = vault_route(&context, &id).await?;
    let limit = context.limits.batch_check_max;
    if body.checks.len() > limit {
        return Err(Problem::new(
            axum::http::StatusCode::PAYLOAD_TOO_LARGE,
            "batch-too-large",
            "Batch too large",
            format!(
                "checks: {} items exceed http.batch_check_max ({limit})",
                body.checks.len()
            ),
        ));
    }
    // Items that do not parse are answered in place; the rest are evaluated together.
    let parsed: Vec<Result<CheckRequest, Problem>> = body
        .checks
        .iter()
        .enumerate()
        .map(|(index, wire)| check_request(&format!("checks[{index}]"), wire))
        .collect();
    let requests: Vec<CheckRequest> = parsed
        .iter()
        .filter_map(|item| item.as_ref().ok().cloned())
        .collect();
    let job = EvaluationJob::BatchCheck { requests };
    let (output, revision) = evaluate(&context, &route, body.consistency.as_ref(), job).await?;
    let EvaluationOutput::BatchCheck(answers) = output else {
        return Err(unexpected());
    };
    let mut answers = answers.into_iter();
    let results: Vec<Value> = parsed
        .iter()
        .map(|item| match item {
            Err(problem) => json!({ "error": item_error_json(problem) }),
            Ok(_) => match answers.next() {
                Some(Ok(allowed)) => json!({ "allowed": allowed }),
                Some(Err(error)) => {
                    json!({ "error": item_error_json(&evaluation_problem(&error)) })
                }
                None => json!({ "error": item_error_json(&unexpected()) }),
            },
        })
        .collect();
    Ok(Json(json!({ "results": results, "revision": revision })))
}

/// `POST …/expand` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpandBody {
    resource: String,
    #[serde(alias = "relation")]
    permission: String,
    #[serde(default)]
    consistency: Option<Value>,
}

/// `POST /v1/vaults/{id}/expand`.
pub async fn expand(
    State(context): State<Context>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ExpandBody>,
) -> Result<Json<Value>, Problem> {
    let (_, route) = vault_route(&context, &id).await?;
    let job = EvaluationJob::Expand {
        resource: wire::object("resource", &body.resource, Role::Resource)?,
        relation: wire::relation("permission", &body.permission)?,
    };
    let (output, revision) = evaluate(&context, &route, body.consistency.as_ref(), job).await?;
    let EvaluationOutput::Expand(expansion) = output else {
        return Err(unexpected());
    };
    Ok(Json(
        json!({ "tree": expand_json(&expansion.tree), "revision": revision }),
    ))
}

/// `POST …/lookup/resources` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LookupResourcesBody {
    resource_type: String,
    permission: String,
    subject: String,
    #[serde(default)]
    limit: Option<usize>,
    #[serde(default)]
    cursor: Option<String>,
    #[serde(default)]
    consistency: Option<Value>,
    #[serde(default)]
    context: Option<Value>,
}

/// `POST /v1/vaults/{id}/lookup/resources`: one page of resource ids.
pub async fn lookup_resources(
    State(context): State<Context>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<LookupResourcesBody>,
) -> Result<Json<Value>, Problem> {
    let (_, route) = vault_route(&context, &id).await?;
    let page_max = context.limits.lookup_page_max;
    let limit = body.limit.unwrap_or(page_max);
    if limit == 0 || limit > page_max {
        return Err(Problem::invalid_field(
            "limit",
            format!("must be between 1 and http.lookup_page_max ({page_max})"),
        ));
    }
    let request = LookupResourcesRequest {
        resource_type: wire::type_name("resource_type", &body.resource_type)?,
        permission: wire::relation("permission", &body.permission)?,
        subject: wire::subject("subject", &body.subject)?,
        cursor: body.cursor,
        limit,
    };
    let _ = body.context;
    let job = EvaluationJob::LookupResources { request };
    let (output, revision) = evaluate(&context, &route, body.consistency.as_ref(), job).await?;
    let EvaluationOutput::LookupResources(page) = output else {
        return Err(unexpected());
    };
    let resource_type = body.resource_type;
    let resources: Vec<String> = page
        .resource_ids
        .iter()
        .map(|id| format!("{resource_type}:{id}"))
        .collect();
    let mut answer = json!({
        "resources": resources,
        "complete": page.complete,
        "revision": revision,
    });
    if let Some(cursor) = page.cursor {
        answer["cursor"] = json!(cursor);
    }
    Ok(Json(answer))
}

/// `POST …/lookup/subjects` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LookupSubjectsBody {
    resource: String,
    permission: String,
    subject_type: String,
    #[serde(default)]
    subject_relation: Option<String>,
    #[serde(default)]
    consistency: Option<Value>,
}

/// `POST /v1/vaults/{id}/lookup/subjects`.
pub async fn lookup_subjects(
    State(context): State<Context>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<LookupSubjectsBody>,
) -> Result<Json<Value>, Problem> {
    let (_, route) = vault_route(&context, &id).await?;
    let request = LookupSubjectsRequest {
        resource: wire::object("resource", &body.resource, Role::Resource)?,
        permission: wire::relation("permission", &body.permission)?,
        subject_type: wire::type_name("subject_type", &body.subject_type)?,
        subject_relation: body
            .subject_relation
            .as_deref()
            .map(|text| wire::relation("subject_relation", text))
            .transpose()?,
    };
    let job = EvaluationJob::LookupSubjects { request };
    let (output, revision) = evaluate(&context, &route, body.consistency.as_ref(), job).await?;
    let EvaluationOutput::LookupSubjects(found) = output else {
        return Err(unexpected());
    };
    let subject_type = body.subject_type;
    let suffix = body
        .subject_relation
        .map(|relation| format!("#{relation}"))
        .unwrap_or_default();
    let subjects: Vec<String> = found
        .subject_ids
        .iter()
        .map(|id| format!("{subject_type}:{id}{suffix}"))
        .collect();
    let excluded: Vec<String> = found
        .excluded_ids
        .iter()
        .map(|id| format!("{subject_type}:{id}{suffix}"))
        .collect();
    Ok(Json(json!({
        "subjects": subjects,
        "wildcard": found.wildcard,
        "excluded": excluded,
        "revision": revision,
    })))
}

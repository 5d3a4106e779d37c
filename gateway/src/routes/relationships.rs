//! Writing, reading and deleting relationships.

use axum::extract::{Path, State};
use axum::Json;
use inferadb_messages::VaultMsg;
use inferadb_protocols::VaultId;
use inferadb_vault::{Mutation, Precondition, PreconditionKind, WriteBatch};
use serde::Deserialize;
use serde_json::{json, Value};

use super::errors::{read_problem, write_problem};
use super::{mailbox_problem, vault_route, Context};
use crate::consistency;
use crate::problem::Problem;
use crate::wire::{filter, relationship, relationship_json, ApiJson, FilterWire, RelationshipWire};

/// A precondition on the wire.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PreconditionWire {
    /// `must_match` or `must_not_match`.
    operation: String,
    /// What must (not) match.
    filter: FilterWire,
}

/// `POST …/relationships` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WriteBody {
    #[serde(default)]
    writes: Vec<RelationshipWire>,
    #[serde(default)]
    deletes: Vec<RelationshipWire>,
    #[serde(default)]
    preconditions: Vec<PreconditionWire>,
}

fn preconditions(wires: &[PreconditionWire]) -> Result<Vec<Precondition>, Problem> {
    wires
        .iter()
        .enumerate()
        .map(|(index, wire)| {
            let path = format!("preconditions[{index}]");
            let kind = match wire.operation.as_str() {
                "must_match" => PreconditionKind::MustMatch,
                "must_not_match" => PreconditionKind::MustNotMatch,
                _ => {
                    return Err(Problem::invalid_field(
                        &format!("{path}.operation"),
                        "must be \"must_match\" or \"must_not_match\"",
                    ))
                }
            };
            let filter = filter(&format!("{path}.filter"), &wire.filter)?;
            Ok(Precondition { kind, filter })
        })
        .collect()
}

/// Builds the batch, and the JSON path of each mutation for error messages.
fn batch(body: &WriteBody) -> Result<(WriteBatch, Vec<String>), Problem> {
    let mut mutations = Vec::with_capacity(body.writes.len() + body.deletes.len());
    let mut paths = Vec::with_capacity(mutations.capacity());
    for (index, wire) in body.writes.iter().enumerate() {
        let path = format!("writes[{index}]");
        let parsed = relationship(&path, wire)?;
        let mutation = match wire.operation.as_deref() {
            None | Some("touch") => Mutation::Touch(parsed),
            Some("create") => Mutation::Create(parsed),
            Some(_) => {
                return Err(Problem::invalid_field(
                    &format!("{path}.operation"),
                    "must be \"touch\" (create or update) or \"create\" (fail if it exists)",
                ))
            }
        };
        mutations.push(mutation);
        paths.push(path);
    }
    for (index, wire) in body.deletes.iter().enumerate() {
        let path = format!("deletes[{index}]");
        if wire.operation.is_some() || wire.expires_at.is_some() {
            return Err(Problem::invalid_field(
                &path,
                "a delete names resource, relation and subject only",
            ));
        }
        mutations.push(Mutation::Delete(relationship(&path, wire)?));
        paths.push(path);
    }
    let preconditions = preconditions(&body.preconditions)?;
    Ok((
        WriteBatch {
            mutations,
            preconditions,
        },
        paths,
    ))
}

/// A write whose answer was lost may or may not have been applied: say so, and do not
/// invite a blind retry (a write that was never delivered is still a plain 503).
fn write_mailbox_problem(error: inferadb_messages::MailboxError) -> Problem {
    use inferadb_messages::MailboxError;
    match error {
        MailboxError::Dropped { .. } | MailboxError::Timeout { .. } => Problem::new(
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            "write-outcome-unknown",
            "Write outcome unknown",
            format!(
                "{error}; the write may or may not have been applied: read it back, or retry \
                 with a precondition"
            ),
        ),
        MailboxError::NotRunning { .. } => mailbox_problem(error),
    }
}

async fn apply(
    context: &Context,
    id: VaultId,
    route: &inferadb_messages::VaultRoute,
    batch: WriteBatch,
    paths: &[String],
) -> Result<Value, Problem> {
    let timeout = context.limits.request_timeout_ms;
    let outcome = route
        .mailbox
        .call(|reply| VaultMsg::Write { batch, reply }, timeout)
        .await
        .map_err(write_mailbox_problem)?
        .map_err(|error| write_problem(error, paths, "preconditions"))?;
    Ok(json!({
        "revision": consistency::encode_token(context, id, outcome.revision),
        "inserted": outcome.inserted,
        "removed": outcome.removed,
    }))
}

/// `POST /v1/vaults/{id}/relationships`.
pub async fn write(
    State(context): State<Context>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<WriteBody>,
) -> Result<Json<Value>, Problem> {
    let (id, route) = vault_route(&context, &id)?;
    let (batch, paths) = batch(&body)?;
    Ok(Json(apply(&context, id, &route, batch, &paths).await?))
}

/// `POST …/relationships/delete` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeleteBody {
    filter: FilterWire,
    #[serde(default)]
    preconditions: Vec<PreconditionWire>,
}

/// `POST /v1/vaults/{id}/relationships/delete`: deletes every relationship matching a
/// filter, atomically.
pub async fn delete(
    State(context): State<Context>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<DeleteBody>,
) -> Result<Json<Value>, Problem> {
    let (id, route) = vault_route(&context, &id)?;
    let filter = filter("filter", &body.filter)?;
    if filter.resource_type.is_none() && filter.subject_type.is_none() {
        return Err(Problem::invalid_field(
            "filter",
            "a delete filter needs resource_type or subject_type",
        ));
    }
    let batch = WriteBatch {
        mutations: vec![Mutation::DeleteMatching(filter)],
        preconditions: preconditions(&body.preconditions)?,
    };
    let paths = ["filter".to_string()];
    Ok(Json(apply(&context, id, &route, batch, &paths).await?))
}

/// `POST …/relationships/read` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadBody {
    #[serde(default)]
    filter: FilterWire,
    #[serde(default)]
    limit: Option<usize>,
    #[serde(default)]
    cursor: Option<String>,
    #[serde(default)]
    consistency: Option<Value>,
}

/// `POST /v1/vaults/{id}/relationships/read`: one page of the relationships matching a
/// filter.
pub async fn read(
    State(context): State<Context>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ReadBody>,
) -> Result<Json<Value>, Problem> {
    let (id, route) = vault_route(&context, &id)?;
    let filter = filter("filter", &body.filter)?;
    let consistency = consistency::parse(&context, id, body.consistency.as_ref())?;
    let snapshot = consistency::snapshot(&context, &route, &consistency).await?;
    let limit = body.limit.unwrap_or(snapshot.limits().read_page_max);
    let now_ms = context.now_ms();
    let page = tokio::task::block_in_place(|| {
        snapshot.read_relationships(&filter, limit, body.cursor.as_deref(), now_ms)
    })
    .map_err(read_problem)?;
    let relationships: Vec<Value> = page.relationships.iter().map(relationship_json).collect();
    let mut answer = json!({
        "relationships": relationships,
        "revision": consistency::encode_token(&context, id, snapshot.revision()),
    });
    if let Some(cursor) = page.cursor {
        answer["cursor"] = json!(cursor);
    }
    Ok(Json(answer))
}

//! Writing, reading and deleting relationships.

use axum::extract::{Path, State};
use axum::Json;
use inferadb_messages::VaultMsg;
use inferadb_protocols::{Relationship, VaultId};
use inferadb_vault::{Mutation, Precondition, PreconditionKind, WriteBatch};
use serde::Deserialize;
use serde_json::{json, Value};

use super::errors::{read_problem, write_failure_problem};
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
        .map_err(|failure| write_failure_problem(failure, paths, "preconditions"))?;
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
    let (id, route) = vault_route(&context, &id).await?;
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
    let (id, route) = vault_route(&context, &id).await?;
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
    let (id, route) = vault_route(&context, &id).await?;
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

/// One relationship per (resource, relation, subject), at its first line's position with
/// its last line's expiry (touch semantics: the last line wins). With no relationship in
/// two batches, the batches commute: each touches its own relationships whatever ran
/// before, so the import's result does not depend on the order the batches apply in (a
/// batch forwarded to a new leader during an election may overtake an earlier one).
fn distinct_last_wins(relationships: Vec<(usize, Relationship)>) -> Vec<(usize, Relationship)> {
    let mut positions: std::collections::HashMap<_, usize> =
        std::collections::HashMap::with_capacity(relationships.len());
    let mut distinct: Vec<(usize, Relationship)> = Vec::with_capacity(relationships.len());
    for (line, relationship) in relationships {
        let key = (
            relationship.resource.clone(),
            relationship.relation.clone(),
            relationship.subject.clone(),
        );
        match positions.get(&key) {
            Some(&position) => distinct[position].1 = relationship,
            None => {
                positions.insert(key, distinct.len());
                distinct.push((line, relationship));
            }
        }
    }
    distinct
}

/// Parses an NDJSON import body: one relationship object per non-empty line.
/// Each relationship comes with its line number (from 1).
fn import_lines(body: &[u8], limit: usize) -> Result<Vec<(usize, Relationship)>, Problem> {
    let text = std::str::from_utf8(body)
        .map_err(|_| Problem::bad_request("invalid-body", "the body must be UTF-8 NDJSON"))?;
    let mut relationships = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if relationships.len() == limit {
            return Err(Problem::new(
                axum::http::StatusCode::PAYLOAD_TOO_LARGE,
                "batch-too-large",
                "Batch too large",
                format!("the import holds more than http.import_relationships_max ({limit}) relationships"),
            ));
        }
        let path = format!("line {}", number + 1);
        let wire: RelationshipWire = serde_json::from_str(line).map_err(|error| {
            Problem::invalid_field(&path, format!("not a relationship object: {error}"))
        })?;
        if wire.operation.is_some() {
            return Err(Problem::invalid_field(
                &path,
                "an import line has no `operation` (it touches)",
            ));
        }
        relationships.push((number + 1, relationship(&path, &wire)?));
    }
    Ok(relationships)
}

/// `POST /v1/vaults/{id}/relationships/import`: bulk import. The body is NDJSON, one
/// `{"resource","relation","subject","expires_at"?}` per line (touch semantics). The node
/// keeps one line per relationship (the last; see [`distinct_last_wins`]), splits them into
/// batches of `vault.write_batch_max` and queues them all at once, so the vault actor
/// applies them as one group commit (one storage transaction for up to
/// `vault.group_commit_batches_max` batches). Each batch is atomic with its own ledger block;
/// the import as a whole is not: the batches are independent, so on an error the others
/// still apply, and the problem says how many did (`applied_batches`), which failed
/// (`failed_batches`) and the highest revision reached. Retrying the whole import is safe.
pub async fn import(
    State(context): State<Context>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, Problem> {
    let (id, route) = vault_route(&context, &id).await?;
    let relationships = distinct_last_wins(import_lines(
        &body,
        context.limits.import_relationships_max,
    )?);
    let batch_max = route
        .snapshots
        .borrow()
        .as_ref()
        .map_or(1_000, |snapshot| snapshot.limits().write_batch_max)
        .max(1);
    let mut pending = Vec::new();
    for (index, chunk) in relationships.chunks(batch_max).enumerate() {
        let lines = chunk.iter().map(|(line, _)| *line).collect();
        let batch = WriteBatch {
            mutations: chunk
                .iter()
                .map(|(_, relationship)| Mutation::Touch(relationship.clone()))
                .collect(),
            preconditions: Vec::new(),
        };
        let (reply, answer) = ractor::concurrency::oneshot();
        // Casts keep the batches in request order in the vault's mailbox.
        route
            .mailbox
            .cast(VaultMsg::Write {
                batch,
                reply: reply.into(),
            })
            .map_err(mailbox_problem)?;
        pending.push((index, lines, answer));
    }
    collect_import(&context, id, pending).await
}

type ImportAnswer = ractor::concurrency::OneshotReceiver<
    Result<inferadb_vault::WriteOutcome, inferadb_messages::WriteFailure>,
>;

/// Awaits every batch's answer. The batches are independent (see [`distinct_last_wins`]),
/// so a failure does not stop the others: the first failed batch becomes the problem (its
/// fields name the lines, `line <n>`), which also says how many applied
/// (`applied_batches`), which failed (`failed_batches`), which may or may not have applied
/// (`unknown_batches`: the vault actor stopped before answering) and the highest revision
/// reached.
async fn collect_import(
    context: &Context,
    id: VaultId,
    pending: Vec<(usize, Vec<usize>, ImportAnswer)>,
) -> Result<Json<Value>, Problem> {
    let (mut inserted, mut removed, mut revision, mut applied) = (0, 0, None, 0usize);
    let mut problems: Vec<Problem> = Vec::new();
    let (mut failed, mut unknown) = (Vec::new(), Vec::new());
    for (index, lines, answer) in pending {
        let outcome = match answer.await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(error)) => {
                let paths: Vec<String> = lines.iter().map(|line| format!("line {line}")).collect();
                problems.push(write_failure_problem(error, &paths, "preconditions"));
                failed.push(index);
                continue;
            }
            Err(_) => {
                let dropped = inferadb_messages::MailboxError::Dropped {
                    name: format!("vault {id}"),
                };
                problems.push(write_mailbox_problem(dropped));
                unknown.push(index);
                continue;
            }
        };
        inserted += outcome.inserted;
        removed += outcome.removed;
        revision = revision.max(Some(outcome.revision));
        applied += 1;
    }
    let revision = revision.map(|revision| consistency::encode_token(context, id, revision));
    if let Some(problem) = problems.into_iter().next() {
        return Err(problem
            .with("applied_batches", json!(applied))
            .with("failed_batches", json!(failed))
            .with("unknown_batches", json!(unknown))
            .with("revision", json!(revision)));
    }
    Ok(Json(json!({
        "revision": revision,
        "inserted": inserted,
        "removed": removed,
        "batches": applied,
    })))
}

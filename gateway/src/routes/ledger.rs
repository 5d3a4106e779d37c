//! The ledger: blocks and their verification.

use axum::extract::{Path, Query, State};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::errors::vault_problem;
use super::{vault_route, Context};
use crate::consistency::{self, Consistency};
use crate::problem::Problem;
use crate::wire::block_json;

/// `GET /v1/vaults/{id}/blocks/{height}`.
pub async fn block(
    State(context): State<Context>,
    Path((id, height)): Path<(String, String)>,
) -> Result<Json<Value>, Problem> {
    let (id, route) = vault_route(&context, &id).await?;
    let height: u64 = height
        .parse()
        .map_err(|_| Problem::invalid_field("path.height", "must be a positive integer"))?;
    let snapshot = consistency::snapshot(&context, &route, &Consistency::FullyConsistent).await?;
    let block = snapshot
        .block(height)
        .map_err(vault_problem)?
        .ok_or_else(|| {
            Problem::not_found(
                "block-not-found",
                format!(
                    "vault `{id}` has no block at height {height} (its height is {})",
                    snapshot.revision().height()
                ),
            )
        })?;
    Ok(Json(block_json(&block)))
}

/// `GET …/blocks` query.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlocksQuery {
    #[serde(default)]
    from: Option<u64>,
    #[serde(default)]
    limit: Option<usize>,
}

/// `GET /v1/vaults/{id}/blocks?from=&limit=`.
pub async fn blocks(
    State(context): State<Context>,
    Path(id): Path<String>,
    query: Result<Query<BlocksQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, Problem> {
    let Query(query) =
        query.map_err(|rejection| Problem::bad_request("invalid-query", rejection.body_text()))?;
    let (_, route) = vault_route(&context, &id).await?;
    let snapshot = consistency::snapshot(&context, &route, &Consistency::FullyConsistent).await?;
    let from = query.from.unwrap_or(1).max(1);
    let limit = query.limit.unwrap_or(snapshot.limits().block_page_max);
    let blocks = snapshot.blocks(from, limit).map_err(vault_problem)?;
    let next = blocks.last().map(|block| block.height + 1);
    let blocks: Vec<Value> = blocks.iter().map(block_json).collect();
    let mut answer = json!({ "blocks": blocks, "height": snapshot.revision().height() });
    if let Some(next) = next.filter(|next| *next <= snapshot.revision().height()) {
        answer["next_from"] = json!(next);
    }
    Ok(Json(answer))
}

/// `GET /v1/vaults/{id}/ledger/verify`: recomputes the chain and the state root.
pub async fn verify(
    State(context): State<Context>,
    Path(id): Path<String>,
) -> Result<Json<Value>, Problem> {
    let (_, route) = vault_route(&context, &id).await?;
    let snapshot = consistency::snapshot(&context, &route, &Consistency::FullyConsistent).await?;
    let report = tokio::task::block_in_place(|| snapshot.verify_ledger()).map_err(vault_problem)?;
    Ok(Json(json!({
        "holds": report.holds,
        "height": report.height,
        "blocks_checked": report.blocks_checked,
        "relationships": report.relationships,
        "state_root": report.state_root_hex,
        "problems": report.problems,
    })))
}

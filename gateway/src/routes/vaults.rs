//! Vaults and their schemas.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use inferadb_messages::{RegistryMsg, VaultMsg};
use serde::Deserialize;
use serde_json::{json, Value};

use super::errors::{deploy_failure_problem, registry_problem};
use super::{mailbox_problem, vault_id, vault_route, Context};
use crate::consistency::{self, encode_token, Consistency};
use crate::problem::Problem;
use crate::wire::{rfc3339, vault_json, ApiJson};

/// `POST /v1/vaults` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateVault {
    name: String,
}

/// `POST /v1/vaults`.
pub async fn create(
    State(context): State<Context>,
    ApiJson(body): ApiJson<CreateVault>,
) -> Result<(StatusCode, Json<Value>), Problem> {
    let timeout = context.limits.request_timeout_ms;
    let record = context
        .registry
        .call(
            |reply| RegistryMsg::Create {
                name: body.name,
                reply,
            },
            timeout,
        )
        .await
        .map_err(mailbox_problem)?
        .map_err(registry_problem)?;
    Ok((StatusCode::CREATED, Json(vault_json(&record))))
}

/// `GET /v1/vaults`.
pub async fn list(State(context): State<Context>) -> Result<Json<Value>, Problem> {
    let timeout = context.limits.request_timeout_ms;
    let records = context
        .registry
        .call(|reply| RegistryMsg::List { reply }, timeout)
        .await
        .map_err(mailbox_problem)?
        .map_err(registry_problem)?;
    let vaults: Vec<Value> = records.iter().map(vault_json).collect();
    Ok(Json(json!({ "vaults": vaults })))
}

/// `GET /v1/vaults/{id}`.
pub async fn get(
    State(context): State<Context>,
    Path(id): Path<String>,
) -> Result<Json<Value>, Problem> {
    let (_, route) = vault_route(&context, &id).await?;
    let mut value = vault_json(&route.record);
    value["shard"] = json!(route.shard);
    if let Some(snapshot) = route.snapshots.borrow().as_ref() {
        value["revision"] = json!(encode_token(&context, route.record.id, snapshot.revision()));
        value["height"] = json!(snapshot.revision().height());
        value["schema_version"] = json!(snapshot.schema().map(|schema| schema.version));
        value["relationships"] = json!(snapshot.relationship_count());
    }
    Ok(Json(value))
}

/// `DELETE /v1/vaults/{id}`.
pub async fn delete(
    State(context): State<Context>,
    Path(id): Path<String>,
) -> Result<StatusCode, Problem> {
    let id = vault_id(&id)?;
    let timeout = context.limits.request_timeout_ms;
    context
        .registry
        .call(|reply| RegistryMsg::Delete { id, reply }, timeout)
        .await
        .map_err(mailbox_problem)?
        .map_err(registry_problem)?;
    Ok(StatusCode::NO_CONTENT)
}

/// `PUT /v1/vaults/{id}/schema` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeploySchema {
    schema: String,
}

/// `PUT /v1/vaults/{id}/schema`.
pub async fn deploy_schema(
    State(context): State<Context>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<DeploySchema>,
) -> Result<Json<Value>, Problem> {
    let (id, route) = vault_route(&context, &id).await?;
    let timeout = context.limits.request_timeout_ms;
    let deployed = route
        .mailbox
        .call(
            |reply| VaultMsg::DeploySchema {
                text: body.schema,
                reply,
            },
            timeout,
        )
        .await
        .map_err(mailbox_problem)?
        .map_err(deploy_failure_problem)?;
    Ok(Json(json!({
        "version": deployed.version,
        "revision": encode_token(&context, id, deployed.revision),
    })))
}

/// `GET /v1/vaults/{id}/schema`.
pub async fn schema(
    State(context): State<Context>,
    Path(id): Path<String>,
) -> Result<Json<Value>, Problem> {
    let (id, route) = vault_route(&context, &id).await?;
    let snapshot = consistency::snapshot(&context, &route, &Consistency::FullyConsistent).await?;
    let schema = snapshot.schema().ok_or_else(|| {
        Problem::not_found("no-schema", format!("vault `{id}` has no schema yet"))
    })?;
    Ok(Json(json!({
        "version": schema.version,
        "schema": schema.text,
        "revision": encode_token(&context, id, snapshot.revision()),
    })))
}

/// `GET /v1/vaults/{id}/schema/versions`.
pub async fn schema_versions(
    State(context): State<Context>,
    Path(id): Path<String>,
) -> Result<Json<Value>, Problem> {
    let (id, route) = vault_route(&context, &id).await?;
    let snapshot = consistency::snapshot(&context, &route, &Consistency::FullyConsistent).await?;
    let versions: Vec<Value> = snapshot
        .schema_versions()
        .iter()
        .map(|version| {
            json!({
                "version": version.version,
                "created_at": rfc3339(version.created_at_ms),
                "revision": encode_token(&context, id, version.revision),
            })
        })
        .collect();
    Ok(Json(json!({ "versions": versions })))
}

//! Operations: health, metrics and the live supervision tree.

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use inferadb_messages::{
    ActorStatus, AdminError, EvaluatorMsg, NodeMsg, ShardMsg, StorageMsg, VaultMsg,
};
use serde_json::{json, Value};

use super::{mailbox_problem, Context};
use crate::problem::Problem;

/// How long the operational endpoints wait for an actor.
const PROBE_TIMEOUT_MS: u64 = 2_000;

/// `GET /livez`: the process is up and serving HTTP.
pub async fn livez() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// Every actor that must run for the node to serve, with its status. Vault actors are
/// left out: one vault out of service must not take the whole node out of rotation (it is
/// reported by `/healthz` and answers 503 itself).
fn core_statuses(context: &Context) -> Vec<(String, ActorStatus)> {
    context
        .actors
        .records()
        .iter()
        .filter(|record| !matches!(record.kind, "evaluator_worker" | "vault"))
        .map(|record| (record.name.clone(), record.status()))
        .collect()
}

/// Vaults that are not serving, with the reason.
fn vaults_out_of_service(context: &Context) -> Vec<Value> {
    context
        .actors
        .records()
        .iter()
        .filter(|record| record.kind == "vault" && record.status() == ActorStatus::Stopped)
        .map(|record| {
            let snapshot = record.snapshot(0);
            json!({ "name": snapshot.name, "last_failure": snapshot.last_failure })
        })
        .collect()
}

/// `GET /readyz`: every actor is running and the shard knows its leader (503 while an actor
/// is restarting or stopped, or while the shard elects a leader or cannot reach one).
pub async fn readyz(State(context): State<Context>) -> impl IntoResponse {
    let mut not_running: Vec<String> = core_statuses(&context)
        .into_iter()
        .filter(|(_, status)| *status != ActorStatus::Running)
        .map(|(name, _)| name)
        .collect();
    for mailbox in context.shards.values() {
        if !shard_has_leader(mailbox).await {
            not_running.push(format!("{} (no leader)", mailbox.name()));
        }
    }
    let status = if not_running.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({
        "status": if not_running.is_empty() { "ready" } else { "not_ready" },
        "not_running": not_running,
    });
    (status, Json(body))
}

/// Whether this node's member of the shard knows a leader.
async fn shard_has_leader(mailbox: &inferadb_messages::Mailbox<ShardMsg>) -> bool {
    let status = mailbox
        .call(|reply| ShardMsg::Status { reply }, PROBE_TIMEOUT_MS)
        .await;
    matches!(status, Ok(Some(status)) if status.leader_id.is_some())
}

/// `GET /healthz`: readiness plus storage and evaluator figures.
pub async fn healthz(State(context): State<Context>) -> impl IntoResponse {
    let storage = context
        .storage
        .call(|reply| StorageMsg::Stats { reply }, PROBE_TIMEOUT_MS)
        .await;
    let queue_depth = context
        .evaluator
        .call(|reply| EvaluatorMsg::QueueDepth { reply }, PROBE_TIMEOUT_MS)
        .await
        .ok();
    let actors: Vec<Value> = core_statuses(&context)
        .into_iter()
        .map(|(name, status)| json!({ "name": name, "status": status }))
        .collect();
    let storage_json = match storage {
        Ok(Ok(stats)) => json!({
            "status": "ok",
            "file_size_bytes": stats.file_size_bytes,
            "used_pages": stats.used_pages,
            "free_pages": stats.free_pages,
            "live_readers": stats.live_readers,
        }),
        Ok(Err(error)) => json!({ "status": "failed", "error": error.to_string() }),
        Err(error) => json!({ "status": "unavailable", "error": error.to_string() }),
    };
    let healthy =
        storage_json["status"] == "ok" && actors.iter().all(|actor| actor["status"] == "running");
    let status = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({
        "status": if healthy { "healthy" } else { "unhealthy" },
        "storage": storage_json,
        "evaluator_queue_depth": queue_depth,
        "vaults": context.vaults.routes().len(),
        "vaults_out_of_service": vaults_out_of_service(&context),
        "actors": actors,
    });
    (status, Json(body))
}

/// `GET /metrics`: Prometheus text. Gauges that mirror live state are refreshed first.
pub async fn metrics(State(context): State<Context>) -> impl IntoResponse {
    refresh_gauges(&context).await;
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        context.metrics.render(),
    )
}

async fn refresh_gauges(context: &Context) {
    for record in context.actors.records() {
        let name = record.name.clone();
        metrics::gauge!("inferadb_actor_messages_handled", "actor" => name.clone())
            .set(record.messages_handled() as f64);
        metrics::gauge!("inferadb_actor_mailbox_depth", "actor" => name.clone())
            .set(record.mailbox_depth() as f64);
        metrics::gauge!("inferadb_actor_restarts", "actor" => name).set(record.restarts() as f64);
    }
    if let Ok(depth) = context
        .evaluator
        .call(|reply| EvaluatorMsg::QueueDepth { reply }, PROBE_TIMEOUT_MS)
        .await
    {
        metrics::gauge!("inferadb_evaluator_queue_depth").set(depth as f64);
    }
    let (mut hits, mut misses) = (0u64, 0u64);
    for route in context.vaults.routes() {
        if let Some(snapshot) = route.snapshots.borrow().as_ref() {
            if let Some(schema) = snapshot.schema() {
                let stats = schema.evaluator.stats();
                hits += stats.cache_hits;
                misses += stats.cache_misses;
            }
        }
    }
    metrics::gauge!("inferadb_decision_cache_hits").set(hits as f64);
    metrics::gauge!("inferadb_decision_cache_misses").set(misses as f64);
    let ratio = if hits + misses == 0 {
        0.0
    } else {
        hits as f64 / (hits + misses) as f64
    };
    metrics::gauge!("inferadb_decision_cache_hit_ratio").set(ratio);
    if let Ok(Ok(stats)) = context
        .storage
        .call(|reply| StorageMsg::Stats { reply }, PROBE_TIMEOUT_MS)
        .await
    {
        metrics::gauge!("inferadb_storage_file_size_bytes").set(stats.file_size_bytes as f64);
        metrics::gauge!("inferadb_storage_used_pages").set(stats.used_pages as f64);
        metrics::gauge!("inferadb_storage_free_pages").set(stats.free_pages as f64);
        metrics::gauge!("inferadb_storage_live_readers").set(stats.live_readers as f64);
    }
}

/// `GET /v1/admin/actors`: the live supervision tree.
pub async fn actors(State(context): State<Context>) -> Json<Value> {
    let tree = context.actors.tree(context.now_ms());
    Json(json!({ "actors": tree }))
}

/// `POST /v1/admin/actors/{name}/restart`: the name contains slashes
/// (`node/1/vault/…`), so the route captures the rest of the path and strips `/restart`.
pub async fn restart_actor(
    State(context): State<Context>,
    Path(rest): Path<String>,
) -> Result<(StatusCode, Json<Value>), Problem> {
    if let Some(name) = rest.strip_suffix("/fail") {
        return inject_failure(&context, name);
    }
    let Some(name) = rest.strip_suffix("/restart") else {
        return Err(Problem::not_found(
            "no-route",
            "use POST /v1/admin/actors/{name}/restart (or /fail in dev mode)",
        ));
    };
    let name = name.to_string();
    let answer = context
        .node
        .call(
            |reply| NodeMsg::RestartActor {
                name: name.clone(),
                reply,
            },
            PROBE_TIMEOUT_MS,
        )
        .await
        .map_err(mailbox_problem)?;
    match answer {
        Ok(()) => Ok((StatusCode::ACCEPTED, Json(json!({ "restarting": name })))),
        Err(error @ AdminError::UnknownActor { .. }) => {
            Err(Problem::not_found("actor-not-found", error.to_string()))
        }
        Err(error) => Err(Problem::new(
            StatusCode::FORBIDDEN,
            "restart-refused",
            "Forbidden",
            error.to_string(),
        )),
    }
}

/// `POST /v1/admin/actors/{name}/fail` (dev mode): makes a vault actor panic while handling
/// a message, so its supervisor's restart path runs for real.
fn inject_failure(context: &Context, name: &str) -> Result<(StatusCode, Json<Value>), Problem> {
    if !context.fault_injection {
        return Err(Problem::new(
            StatusCode::FORBIDDEN,
            "fault-injection-disabled",
            "Forbidden",
            "fault injection is only available in dev mode (inferadb dev)",
        ));
    }
    let route = name
        .rsplit_once("/vault/")
        .and_then(|(_, id)| id.parse::<inferadb_protocols::VaultId>().ok())
        .and_then(|id| context.vaults.get(id))
        .filter(|route| route.mailbox.name() == name)
        .ok_or_else(|| {
            Problem::not_found(
                "actor-not-found",
                format!(
                    "`{name}` is not a running vault actor (fault injection targets vault actors)"
                ),
            )
        })?;
    route
        .mailbox
        .cast(VaultMsg::InjectFailure {
            reason: "requested by an operator".to_string(),
        })
        .map_err(mailbox_problem)?;
    Ok((StatusCode::ACCEPTED, Json(json!({ "failing": name }))))
}

//! The router and the helpers every handler shares.

mod cluster;
mod errors;
mod evaluate;
mod ledger;
mod ops;
mod relationships;
mod vaults;

use std::sync::Arc;
use std::time::Duration;

use axum::error_handling::HandleErrorLayer;
use axum::extract::DefaultBodyLimit;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{BoxError, Router};
use inferadb_messages::VaultRoute;
use inferadb_protocols::VaultId;
use tower::ServiceBuilder;

use crate::context::GatewayContext;
use crate::problem::Problem;

pub use errors::mailbox_problem;

/// How much later than `http.request_timeout_ms` the whole-request timeout fires.
const REQUEST_TIMEOUT_SLACK_MS: u64 = 1_000;

/// Shared state of every handler.
pub type Context = Arc<GatewayContext>;

/// The whole HTTP API.
pub fn router(context: Arc<GatewayContext>) -> Router {
    let limits = context.limits.clone();
    let api = Router::new()
        .route("/v1/vaults", post(vaults::create).get(vaults::list))
        .route("/v1/vaults/{id}", get(vaults::get).delete(vaults::delete))
        .route(
            "/v1/vaults/{id}/schema",
            get(vaults::schema).put(vaults::deploy_schema),
        )
        .route(
            "/v1/vaults/{id}/schema/versions",
            get(vaults::schema_versions),
        )
        .route("/v1/vaults/{id}/relationships", post(relationships::write))
        .route(
            "/v1/vaults/{id}/relationships/read",
            post(relationships::read),
        )
        .route(
            "/v1/vaults/{id}/relationships/delete",
            post(relationships::delete),
        )
        .route(
            "/v1/vaults/{id}/relationships/import",
            post(relationships::import).layer(DefaultBodyLimit::max(limits.import_body_max_bytes)),
        )
        .route("/v1/vaults/{id}/check", post(evaluate::check))
        .route("/v1/vaults/{id}/check/batch", post(evaluate::batch_check))
        .route("/v1/vaults/{id}/expand", post(evaluate::expand))
        .route(
            "/v1/vaults/{id}/lookup/resources",
            post(evaluate::lookup_resources),
        )
        .route(
            "/v1/vaults/{id}/lookup/subjects",
            post(evaluate::lookup_subjects),
        )
        .route("/v1/vaults/{id}/blocks", get(ledger::blocks))
        .route("/v1/vaults/{id}/blocks/{height}", get(ledger::block))
        .route("/v1/vaults/{id}/ledger/verify", get(ledger::verify))
        .route("/v1/cluster", get(cluster::cluster))
        .route("/v1/cluster/members", post(cluster::add_member))
        .route("/v1/cluster/shards/{id}/leader", post(cluster::move_leader))
        .route(
            "/v1/cluster/members/{id}",
            axum::routing::delete(cluster::remove_member),
        )
        .route("/v1/admin/actors", get(ops::actors))
        .route("/v1/admin/actors/{*name}", post(ops::restart_actor))
        .route("/livez", get(ops::livez))
        .route("/readyz", get(ops::readyz))
        .route("/healthz", get(ops::healthz))
        .route("/metrics", get(ops::metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(context);
    api.layer(
        ServiceBuilder::new()
            .layer(axum::middleware::from_fn(crate::metrics_layer::record))
            .layer(HandleErrorLayer::new(timeout_problem))
            // Later than the actor-call deadline (the same setting), so a slow actor is
            // reported as such (504) rather than as a generic timeout.
            .timeout(Duration::from_millis(
                limits.request_timeout_ms + REQUEST_TIMEOUT_SLACK_MS,
            ))
            .layer(DefaultBodyLimit::max(limits.request_body_max_bytes)),
    )
}

async fn method_not_allowed() -> Problem {
    Problem::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        "Method not allowed",
        "this endpoint does not accept that method; see docs/api.md",
    )
}

async fn not_found() -> Problem {
    Problem::not_found("no-route", "no such endpoint; see docs/api.md")
}

async fn timeout_problem(error: BoxError) -> axum::response::Response {
    if error.is::<tower::timeout::error::Elapsed>() {
        Problem::unavailable("the request exceeded http.request_timeout_ms").into_response()
    } else {
        Problem::internal(error.to_string()).into_response()
    }
}

/// Parses a vault id from the path.
pub fn vault_id(text: &str) -> Result<VaultId, Problem> {
    text.parse::<VaultId>()
        .map_err(|error| Problem::invalid_field("path.id", error))
}

/// The route to vault `text`. A vault this node has not heard of yet may have been created
/// through another member a moment ago: after a read barrier (this replica then holds
/// everything committed before the request) the directory is asked again, so a client
/// that got a creation's answer anywhere finds the vault everywhere.
pub async fn vault_route(
    context: &GatewayContext,
    text: &str,
) -> Result<(VaultId, VaultRoute), Problem> {
    let id = vault_id(text)?;
    if let Some(route) = context.vaults.get(id) {
        return Ok((id, route));
    }
    if context.cluster.is_some() {
        // The vault may be in any data shard: catch up with all of them.
        for shard in context.shards.keys() {
            let _ = crate::consistency::read_barrier(context, *shard).await;
        }
        if let Some(route) = context.vaults.get(id) {
            return Ok((id, route));
        }
    }
    missing_route(context, id)
}

/// Why there is no route to `id`: out of service on this node, or no such vault.
fn missing_route(context: &GatewayContext, id: VaultId) -> Result<(VaultId, VaultRoute), Problem> {
    // A vault whose actor gave up is listed but not served: say why, not "no such vault".
    let record = context
        .actors
        .get(&format!("{}/vault/{id}", context.root_name));
    match record.filter(|record| record.status() == inferadb_messages::ActorStatus::Stopped) {
        Some(record) => Err(Problem::unavailable(format!(
            "vault `{id}` is out of service: {}",
            record.snapshot(0).last_failure.unwrap_or_default()
        ))),
        None => Err(Problem::not_found(
            "vault-not-found",
            format!("vault `{id}` does not exist"),
        )),
    }
}

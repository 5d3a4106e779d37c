//! Per-route request metrics: a counter by route, method and status, and a latency
//! histogram by route and method. Routes are the matched templates
//! (`/v1/vaults/{id}/check`), never raw paths, so label cardinality stays bounded.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;

/// Name of the request counter.
pub const REQUESTS_TOTAL: &str = "inferadb_http_requests_total";
/// Name of the latency histogram.
pub const REQUEST_DURATION_SECONDS: &str = "inferadb_http_request_duration_seconds";

/// Records one request's route, status and latency.
#[allow(clippy::disallowed_methods)] // latency measurement needs a monotonic clock
pub async fn record(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |path| path.as_str().to_string());
    let method = request.method().as_str().to_string();
    let started = Instant::now();
    let response = next.run(request).await;
    let elapsed_s = started.elapsed().as_secs_f64();
    let status = response.status().as_u16().to_string();
    metrics::counter!(REQUESTS_TOTAL, "route" => route.clone(), "method" => method.clone(), "status" => status)
        .increment(1);
    metrics::histogram!(REQUEST_DURATION_SECONDS, "route" => route, "method" => method)
        .record(elapsed_s);
    response
}

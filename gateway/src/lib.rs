//! The gateway actor tree: the HTTP front end (axum) of a node.
//!
//! This crate owns the public HTTP contract: routes, JSON shapes, RFC 9457 problems, request
//! limits, consistency handling (which snapshot a read may use), revision tokens on the wire,
//! per-route metrics and the operator endpoints. It must never evaluate or write anything
//! itself: handlers validate input, then talk to the vault registry, the vault actors and the
//! evaluator pool through their protocols (`inferadb-messages`).
//!
//! - [`GatewayActor`] supervises [`HttpActor`], which owns the listener and the server task.
//! - [`GatewayContext`]: what handlers need (mailboxes, directories, limits, clock).
//! - `routes`: the handlers; `problem`: errors; `wire`: JSON shapes and conversions.

mod actor;
mod consistency;
mod context;
mod metrics_layer;
pub mod problem;
mod routes;
mod wire;

pub use actor::{GatewayActor, HttpActor};
pub use context::{ClusterView, GatewayContext, GatewayLimits, PeerView};
pub use metrics_layer::{REQUESTS_TOTAL, REQUEST_DURATION_SECONDS};
pub use routes::router;

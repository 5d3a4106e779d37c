//! [`GatewayMsg`]: the protocol of the gateway actor, which supervises the HTTP front end.

use std::net::SocketAddr;

use ractor::RpcReplyPort;

/// Messages to the gateway actor.
pub enum GatewayMsg {
    /// The address the HTTP listener is bound to.
    HttpAddress {
        /// The bound address.
        reply: RpcReplyPort<SocketAddr>,
    },
    /// Stop accepting connections and wait for in-flight requests to finish (bounded by the
    /// configured grace period).
    Drain {
        /// Answered when the listener has stopped and requests have drained.
        reply: RpcReplyPort<()>,
    },
}

/// Messages to the HTTP listener actor (a child of the gateway).
pub enum HttpMsg {
    /// The address the listener is bound to.
    Address {
        /// The bound address.
        reply: RpcReplyPort<SocketAddr>,
    },
}

// Local only: never sent to another node (ractor's `cluster` feature needs the impl spelled out).
impl ractor::Message for GatewayMsg {}

// Local only: never sent to another node (ractor's `cluster` feature needs the impl spelled out).
impl ractor::Message for HttpMsg {}

//! [`NodeMsg`]: the protocol of the node's root supervisor.

use ractor::RpcReplyPort;

/// Why an operator's request to the supervisor was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AdminError {
    /// No actor is registered under the name.
    #[error("no actor is named `{name}`")]
    UnknownActor {
        /// The name asked for.
        name: String,
    },
    /// The node is configured not to accept operator restarts.
    #[error("operator restarts are disabled on this node (admin.allow_restart = false)")]
    RestartDisabled,
    /// The root supervisor itself cannot be restarted through itself.
    #[error("`{name}` is the root supervisor; stop the process instead")]
    RootNotRestartable {
        /// The root's name.
        name: String,
    },
}

/// Messages to the root supervisor.
pub enum NodeMsg {
    /// An operator asks to restart the actor registered under `name`: it is stopped as if it
    /// had failed, and its supervisor restarts it under its restart policy.
    RestartActor {
        /// The actor's stable name.
        name: String,
        /// Answered once the actor has been told to stop.
        reply: RpcReplyPort<Result<(), AdminError>>,
    },
    /// Stop every child in reverse start order, flush storage, then stop.
    Shutdown {
        /// Answered when everything has stopped and storage is flushed.
        reply: RpcReplyPort<()>,
    },
}

// Local only: never sent to another node (ractor's `cluster` feature needs the impl spelled out).
impl ractor::Message for NodeMsg {}

//! [`PeerHandler`]: what the node plugs into the peer inbox.

use std::future::Future;
use std::pin::Pin;

use inferadb_messages::{Applied, ProposeError};
use inferadb_raft::transport::PeerEnvelope;

/// A boxed, sendable future: what a handler returns for a request that needs an answer.
pub type HandlerFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// Receives what other nodes send to this one. The inbox calls these from its own actor, so
/// none of them may block: hand the work to the right actor and return (the futures are
/// awaited on a separate task).
pub trait PeerHandler: Send + Sync + 'static {
    /// A raft message for this node's member of `envelope.group` (the inbox has checked that
    /// `envelope.to` is this node).
    fn raft(&self, envelope: PeerEnvelope);

    /// A proposal a follower forwarded to this node for `group`: the applied entry's index
    /// and the state machine's output, or why there is none.
    fn propose(&self, group: u64, data: Vec<u8>) -> HandlerFuture<Result<Applied, ProposeError>>;

    /// A read barrier on `group`: the applied index after a read-index round.
    fn read_barrier(&self, group: u64) -> HandlerFuture<Result<u64, ProposeError>>;
}

//! The peer inbox: the one actor of this node that other nodes reach. It decodes each
//! payload and hands it to the [`PeerHandler`]; requests that need an answer are awaited on
//! their own task, so the inbox never waits on the node.

use std::future::Future;
use std::sync::Arc;

use inferadb_messages::peer::{
    decode_forwarded_proposal, decode_read_barrier_request, encode_propose_reply,
    encode_read_barrier_reply,
};
use inferadb_messages::PeerMsg;
use inferadb_raft::transport::PeerEnvelope;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

use crate::handler::PeerHandler;
use crate::links::inbox_group;
use crate::stats::Counters;

/// The peer inbox actor.
pub(crate) struct PeerInbox;

/// What the inbox starts from (and keeps).
pub(crate) struct InboxArguments {
    /// This node, whose process group the inbox joins and to which envelopes must be
    /// addressed.
    pub(crate) node_id: u64,
    /// Where decoded messages go.
    pub(crate) handler: Arc<dyn PeerHandler>,
    /// The transport's counters.
    pub(crate) counters: Arc<Counters>,
}

impl Actor for PeerInbox {
    type Msg = PeerMsg;
    type State = InboxArguments;
    type Arguments = InboxArguments;

    async fn pre_start(
        &self,
        myself: ActorRef<PeerMsg>,
        arguments: InboxArguments,
    ) -> Result<InboxArguments, ActorProcessingErr> {
        // Joining the group is what publishes the inbox: every session (present and future)
        // announces this node's process groups to its peer.
        ractor::pg::join(inbox_group(arguments.node_id), vec![myself.get_cell()]);
        Ok(arguments)
    }

    async fn handle(
        &self,
        _myself: ActorRef<PeerMsg>,
        message: PeerMsg,
        state: &mut InboxArguments,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            PeerMsg::Raft(bytes) => deliver_raft(state, &bytes),
            PeerMsg::Propose(bytes, reply) => answer_proposal(state, &bytes, reply),
            PeerMsg::ReadBarrier(bytes, reply) => answer_read_barrier(state, &bytes, reply),
        }
        // Nothing a peer sends may stop the inbox: every refusal above is counted and logged.
        Ok(())
    }
}

fn deliver_raft(state: &InboxArguments, bytes: &[u8]) {
    match PeerEnvelope::decode(bytes) {
        // Raft member ids are node ids: an envelope for another member was misrouted.
        Ok(envelope) if envelope.to != state.node_id => {
            state.counters.refused();
            tracing::warn!(
                to = envelope.to,
                from = envelope.from,
                "refused a raft envelope addressed to another node"
            );
        }
        Ok(envelope) => {
            state.counters.received();
            state.handler.raft(envelope);
        }
        Err(error) => {
            state.counters.refused();
            tracing::warn!(%error, "refused a raft envelope from a peer");
        }
    }
}

fn answer_proposal(state: &InboxArguments, bytes: &[u8], reply: RpcReplyPort<Vec<u8>>) {
    match decode_forwarded_proposal(bytes) {
        Ok(proposal) => {
            state.counters.received();
            let answer = state.handler.propose(proposal.group, proposal.data);
            reply_when_ready(reply, async move { encode_propose_reply(&answer.await) });
        }
        Err(error) => refuse_request(state, &error, reply),
    }
}

fn answer_read_barrier(state: &InboxArguments, bytes: &[u8], reply: RpcReplyPort<Vec<u8>>) {
    match decode_read_barrier_request(bytes) {
        Ok(group) => {
            state.counters.received();
            let answer = state.handler.read_barrier(group);
            reply_when_ready(
                reply,
                async move { encode_read_barrier_reply(&answer.await) },
            );
        }
        Err(error) => refuse_request(state, &error, reply),
    }
}

/// Answers a request this node cannot read with an empty payload, which every reply decoder
/// refuses: the caller learns at once instead of waiting for its timeout.
fn refuse_request(
    state: &InboxArguments,
    error: &dyn std::error::Error,
    reply: RpcReplyPort<Vec<u8>>,
) {
    state.counters.refused();
    tracing::warn!(%error, "refused a request from a peer");
    let _ = reply.send(Vec::new());
}

/// Awaits `answer` on its own task and sends it, unless the caller's deadline passes first
/// (then nobody is listening, and the task must not outlive the request).
fn reply_when_ready<F>(reply: RpcReplyPort<Vec<u8>>, answer: F)
where
    F: Future<Output = Vec<u8>> + Send + 'static,
{
    let deadline = reply.get_timeout();
    tokio::spawn(async move {
        let bytes = match deadline {
            Some(deadline) => match tokio::time::timeout(deadline, answer).await {
                Ok(bytes) => bytes,
                Err(_) => return,
            },
            None => answer.await,
        };
        // The caller may have given up already; there is nobody else to tell.
        let _ = reply.send(bytes);
    });
}

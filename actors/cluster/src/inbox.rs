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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use inferadb_messages::peer::{decode_propose_reply, encode_forwarded_proposal};
    use inferadb_messages::{Applied, ForwardedProposal, ProposeError};
    use parking_lot::Mutex;
    use ractor::rpc::CallResult;

    use super::*;
    use crate::handler::HandlerFuture;
    use crate::stats::ClusterStats;

    /// Records envelopes; answers proposals with their data.
    #[derive(Default)]
    struct Probe {
        envelopes: Mutex<Vec<PeerEnvelope>>,
    }

    impl PeerHandler for Probe {
        fn raft(&self, envelope: PeerEnvelope) {
            self.envelopes.lock().push(envelope);
        }

        fn propose(
            &self,
            group: u64,
            data: Vec<u8>,
        ) -> HandlerFuture<Result<Applied, ProposeError>> {
            Box::pin(async move {
                Ok(Applied {
                    index: group,
                    output: data,
                })
            })
        }

        fn read_barrier(&self, _group: u64) -> HandlerFuture<Result<u64, ProposeError>> {
            Box::pin(async { Ok(1) })
        }
    }

    fn envelope(to: u64) -> Vec<u8> {
        PeerEnvelope {
            version: 1,
            group: 1,
            from: 1,
            to,
            bytes: Vec::new(),
        }
        .encode()
    }

    async fn call(
        inbox: &ActorRef<PeerMsg>,
        build: impl FnOnce(RpcReplyPort<Vec<u8>>) -> PeerMsg,
    ) -> Vec<u8> {
        match inbox
            .call(build, Some(Duration::from_secs(5)))
            .await
            .unwrap()
        {
            CallResult::Success(bytes) => bytes,
            _ => panic!("the inbox did not answer"),
        }
    }

    #[tokio::test]
    async fn the_inbox_delivers_what_it_reads_and_refuses_the_rest_without_stopping() {
        let handler = Arc::new(Probe::default());
        let counters = Arc::new(Counters::default());
        let arguments = InboxArguments {
            node_id: 2,
            handler: handler.clone(),
            counters: counters.clone(),
        };
        let (inbox, _) = Actor::spawn(None, PeerInbox, arguments).await.unwrap();
        inbox.cast(PeerMsg::Raft(envelope(2))).unwrap();
        inbox.cast(PeerMsg::Raft(envelope(3))).unwrap(); // misrouted
        inbox.cast(PeerMsg::Raft(vec![2, 0])).unwrap(); // another version
        let request = encode_forwarded_proposal(&ForwardedProposal {
            group: 4,
            data: b"x".to_vec(),
        });
        let reply = call(&inbox, |port| PeerMsg::Propose(request, port)).await;
        assert_eq!(
            decode_propose_reply(&reply),
            Ok(Ok(Applied {
                index: 4,
                output: b"x".to_vec()
            }))
        );
        // A malformed request is answered at once, with an empty payload.
        assert!(call(&inbox, |port| PeerMsg::ReadBarrier(vec![1, 0], port))
            .await
            .is_empty());

        assert_eq!(handler.envelopes.lock().len(), 1);
        assert_eq!(
            counters.snapshot(),
            ClusterStats {
                messages_sent: 0,
                messages_dropped_no_link: 0,
                messages_received: 2,
                messages_refused: 3,
            }
        );
        inbox.stop_and_wait(None, None).await.unwrap();
    }
}

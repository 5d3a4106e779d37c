//! [`ShardMsg`]: the protocol of a shard actor, which owns one raft group member and routes
//! proposals to the group's leader (its own member, or another node's through the cluster
//! transport).

use ractor::RpcReplyPort;

use crate::raft::{GroupStatus, ProposeError};

/// Why a proposal has no answer from the state machine. Each variant tells the client
/// whether retrying is safe.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProposalFailure {
    /// The command did not take effect and may be retried: no leader is known (an
    /// election, or this node is in a minority partition), the leader could not be
    /// reached, or a new leader overwrote the entry.
    #[error("not applied, retry: {reason}")]
    NotApplied {
        /// Why.
        reason: String,
    },
    /// The command may or may not have taken effect (the answer was lost: a timeout, a
    /// snapshot covered the entry, the member failed). Read back before retrying.
    #[error("outcome unknown: {reason}")]
    OutcomeUnknown {
        /// Why.
        reason: String,
    },
}

impl ProposalFailure {
    /// The failure a raft member's [`ProposeError`] means for the client.
    pub fn from_propose_error(error: &ProposeError) -> ProposalFailure {
        match error {
            ProposeError::NotLeader { leader_hint } => ProposalFailure::NotApplied {
                reason: match leader_hint {
                    Some(leader) => format!("node {leader} leads but could not be reached"),
                    None => "no leader is known (an election is running, or this node cannot \
                        reach a majority)"
                        .to_string(),
                },
            },
            ProposeError::Dropped => ProposalFailure::NotApplied {
                reason: error.to_string(),
            },
            ProposeError::Unknown | ProposeError::Failed(_) => ProposalFailure::OutcomeUnknown {
                reason: error.to_string(),
            },
        }
    }
}

/// Messages to a shard actor.
pub enum ShardMsg {
    /// Proposes an encoded shard command to the group's leader (forwarded when this node's
    /// member does not lead); answered with the encoded answer once the entry is committed
    /// and applied.
    Propose {
        /// The encoded command.
        data: Vec<u8>,
        /// The encoded answer, or why there is none.
        reply: RpcReplyPort<Result<Vec<u8>, ProposalFailure>>,
    },
    /// A linearizable read barrier: answered once this node's replica has applied every
    /// entry committed before the barrier was asked for (read-index through the leader).
    ReadBarrier {
        /// This replica's applied index at the barrier.
        reply: RpcReplyPort<Result<u64, ProposalFailure>>,
    },
    /// This node's member's view of the group.
    Status {
        /// The status, or why the member cannot answer (it is restarting).
        reply: RpcReplyPort<Option<GroupStatus>>,
    },
    /// Asks the group's leader to hand leadership to member `to` (see
    /// `RaftMsg::TransferLeader`); answered once the request is passed on (false: the member
    /// is restarting), not when the leadership has moved.
    TransferLeader {
        /// The member to become leader.
        to: u64,
        /// Whether the request reached this node's member.
        reply: RpcReplyPort<bool>,
    },
}

// Local only: never sent to another node (ractor's `cluster` feature needs the impl spelled out).
impl ractor::Message for ShardMsg {}

//! [`RaftMsg`]: the protocol of a raft group actor.

use inferadb_raft::transport::PeerEnvelope;
use ractor::RpcReplyPort;

/// Why a proposal or a read barrier was not answered with a result.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProposeError {
    /// This member is not the leader; `leader_hint` names the one it knows of.
    #[error("not the leader (leader: {leader_hint:?})")]
    NotLeader {
        /// The leader this member knows of, if any.
        leader_hint: Option<u64>,
    },
    /// A later leader overwrote the entry: it never took effect. Safe to retry.
    #[error("the proposal was overwritten by a new leader and never took effect")]
    Dropped,
    /// A snapshot covered the entry before its member could tell whether it took effect:
    /// read back before retrying.
    #[error(
        "the proposal's outcome is unknown (a snapshot covered it); read back before retrying"
    )]
    Unknown,
    /// The group failed (storage error): the outcome is unknown.
    #[error("the raft group failed: {0}")]
    Failed(String),
}

/// A member's view of its group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupStatus {
    /// This member.
    pub id: u64,
    /// Its term.
    pub term: u64,
    /// Whether it leads.
    pub is_leader: bool,
    /// Its role: `follower`, `pre_candidate`, `candidate` or `leader`.
    pub role: &'static str,
    /// The leader it knows of.
    pub leader_id: Option<u64>,
    /// Its commit index.
    pub commit: u64,
    /// Its applied index.
    pub applied: u64,
    /// The last index of its log.
    pub last_index: u64,
    /// The voters (the incoming configuration during a joint change).
    pub voters: Vec<u64>,
    /// The outgoing voters during a joint change (empty otherwise).
    pub voters_outgoing: Vec<u64>,
    /// Non-voting members.
    pub learners: Vec<u64>,
    /// On the leader, each member's replicated (matched) index; empty elsewhere.
    pub progress: Vec<(u64, u64)>,
}

/// A proposal that took effect: the log index its entry was applied at, and the state
/// machine's answer. A follower that forwarded the proposal waits until it has applied that
/// index itself before it answers its client, so the client reads its own write there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Applied {
    /// The entry's log index.
    pub index: u64,
    /// What the state machine answered.
    pub output: Vec<u8>,
}

/// Messages to a raft group actor.
pub enum RaftMsg {
    /// A tick of the group's logical clock (sent by the actor's own timer).
    Tick,
    /// A message from a peer member.
    Peer(PeerEnvelope),
    /// Proposes `data`; answered with the entry's index and the state machine's output once
    /// the entry is committed **and** applied.
    Propose {
        /// The command.
        data: Vec<u8>,
        /// The applied entry, or why there is none.
        reply: RpcReplyPort<Result<Applied, ProposeError>>,
    },
    /// Answered (with the applied index) once this member has applied log index `index`, or
    /// with an error when the request's deadline passes first.
    WaitApplied {
        /// The index to wait for.
        index: u64,
        /// This member's applied index once it reached `index`.
        reply: RpcReplyPort<Result<u64, ProposeError>>,
    },
    /// A linearizable read barrier: answered (with the applied index) once leadership is
    /// confirmed by a quorum and the state machine has applied through the read index.
    ReadBarrier {
        /// The applied index the read may be served at.
        reply: RpcReplyPort<Result<u64, ProposeError>>,
    },
    /// Ready point: persist (one fsync for every input since the last one), send, apply and
    /// answer. Sent by the actor to itself behind the inputs already queued, so inputs that
    /// arrive together share one Ready cycle (group commit).
    Drain,
    /// Start an election now.
    Campaign,
    /// Asks the group's leader to hand leadership to member `to` once it has caught up
    /// (raft's leadership transfer; a follower forwards the request to its leader).
    TransferLeader {
        /// The member to become leader.
        to: u64,
    },
    /// A compaction's snapshot, built off the actor (sent by the actor's own build task):
    /// its bytes at applied index `index`, or why there are none.
    SnapshotBuilt {
        /// The applied index the snapshot was started at.
        index: u64,
        /// The snapshot's bytes, or why it could not be built.
        data: Result<Vec<u8>, String>,
    },
    /// A periodic persist, run off the actor (sent by the actor's own persist task): done,
    /// or why the state machine could not be made durable.
    Persisted {
        /// `Ok` once the state noted at the persist's start is durable.
        result: Result<(), String>,
    },
    /// This member's view of the group.
    Status {
        /// The status.
        reply: RpcReplyPort<GroupStatus>,
    },
}

// Local only: never sent to another node (ractor's `cluster` feature needs the impl spelled out).
impl ractor::Message for RaftMsg {}

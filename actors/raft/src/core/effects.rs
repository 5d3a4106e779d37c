//! What the core hands back: [`Effects`] of one Ready cycle, [`Status`], and the errors.

use raft::eraftpb::{ConfState, Entry, Message, MessageType, Snapshot};
use raft::StateRole;

use crate::store::LogError;

/// What one Ready cycle asks of the shell, in the order it must be done. By the time
/// [`super::RaftCore::ready`] returns, the log store already holds (and has synced) this
/// cycle's entries, hard state and snapshot.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Effects {
    /// The Ready's number (raft-rs counts them; useful in traces).
    pub number: u64,
    /// Messages raft-rs allows to leave before the persistence of this cycle (a leader's
    /// appends: the leader counts itself in the quorum only once its own write is persisted,
    /// so followers may write in parallel — Raft thesis §10.2.1).
    pub messages_first: Vec<Message>,
    /// Whether this cycle's writes were synced (false when nothing needed durability).
    pub synced: bool,
    /// Messages that may only leave after this cycle's persistence (votes, append
    /// acknowledgements, and whatever the leader learnt from its own persisted entries).
    pub messages_after_persist: Vec<Message>,
    /// A snapshot received from the leader: restore the state machine from its data
    /// (before applying `committed_entries`, which all follow it).
    pub snapshot: Option<Snapshot>,
    /// Committed entries to apply to the state machine, in order. Configuration changes
    /// among them are already applied to the Raft group and the store by the core.
    pub committed_entries: Vec<Entry>,
    /// The membership after the configuration changes of `committed_entries`, if any.
    pub conf_state: Option<ConfState>,
    /// Answers to `read_index` requests: serve each read once the state machine has applied
    /// up to its index.
    pub read_states: Vec<ReadAnswer>,
    /// The member's term, role or known leader, when any changed since the last report.
    pub role_change: Option<RoleChange>,
}

impl Effects {
    /// Every outgoing message of the cycle, in the order the shell sends them.
    pub fn all_messages(&self) -> impl Iterator<Item = &Message> {
        self.messages_first
            .iter()
            .chain(self.messages_after_persist.iter())
    }
}

/// A confirmed read point: a read with id `request_id` may be served once the state machine
/// has applied `index`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadAnswer {
    /// The id passed to [`super::RaftCore::read_index`].
    pub request_id: u64,
    /// The commit index when leadership was confirmed.
    pub index: u64,
}

/// Where a proposal landed in the leader's log. It is committed if a committed entry with
/// this index has this term; an entry at this index with another term means it was lost
/// (a new leader overwrote it) and must be retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Proposed {
    /// The entry's index.
    pub index: u64,
    /// The leader's term when it was appended.
    pub term: u64,
}

/// A member's role in its group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Follows a leader (or waits for one).
    Follower,
    /// Asking for pre-votes: checking it could win before disturbing the term.
    PreCandidate,
    /// Asking for votes in a new term.
    Candidate,
    /// The leader of its term.
    Leader,
}

impl From<StateRole> for Role {
    fn from(role: StateRole) -> Self {
        match role {
            StateRole::Follower => Role::Follower,
            StateRole::PreCandidate => Role::PreCandidate,
            StateRole::Candidate => Role::Candidate,
            StateRole::Leader => Role::Leader,
        }
    }
}

/// A member's term, role and known leader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoleChange {
    /// The current term.
    pub term: u64,
    /// The current role.
    pub role: Role,
    /// The leader this member knows of in `term`, if any.
    pub leader_id: Option<u64>,
}

/// A member's view of its group (for `/v1/cluster` and the simulator's checkers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// This member's id.
    pub id: u64,
    /// The current term.
    pub term: u64,
    /// The current role.
    pub role: Role,
    /// The leader this member knows of, if any.
    pub leader_id: Option<u64>,
    /// The commit index.
    pub commit: u64,
    /// The index the state machine has been handed (applied) up to.
    pub applied: u64,
    /// The last index in the log.
    pub last_index: u64,
    /// Voting members (the incoming configuration during a joint change), sorted.
    pub voters: Vec<u64>,
    /// The outgoing voters during a joint change (empty otherwise), sorted.
    pub voters_outgoing: Vec<u64>,
    /// Non-voting members, sorted.
    pub learners: Vec<u64>,
    /// On a leader, each member's replicated index (`matched`), by member id; empty on
    /// other members (only the leader tracks replication).
    pub progress: Vec<(u64, u64)>,
}

/// Why a core operation failed.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    /// Only the leader accepts proposals; `leader_hint` is the leader this member knows of.
    #[error("not the leader (leader: {leader_hint:?})")]
    NotLeader {
        /// The leader this member knows of, if any.
        leader_hint: Option<u64>,
    },
    /// The leader refused the proposal (a leadership transfer is in progress, or too many
    /// uncommitted bytes): retry later.
    #[error("proposal dropped by the leader")]
    ProposalDropped,
    /// A configuration change is still pending, or the change is not valid from the current
    /// configuration (e.g. leaving a joint configuration one is not in).
    #[error("configuration change rejected: one is pending or the transition is invalid")]
    ConfChangeRejected,
    /// A committed configuration change could not be applied (a bug somewhere).
    #[error("configuration change at index {index} cannot be applied: {reason}")]
    ConfChangeFailed {
        /// The entry's index.
        index: u64,
        /// raft-rs's reason.
        reason: String,
    },
    /// `compact` was asked for an index the state machine has not been handed yet.
    #[error("cannot compact at {index}: only {applied} is applied")]
    CompactBeyondApplied {
        /// The requested index.
        index: u64,
        /// The applied index.
        applied: u64,
    },
    /// The membership at the requested compaction index is not known (after a restart, the
    /// stored membership is that of a later index): compact at or after `known_from`.
    #[error("cannot compact at {index}: the membership is known from index {known_from} on")]
    MembershipUnknown {
        /// The requested index.
        index: u64,
        /// The first index whose membership is known.
        known_from: u64,
    },
    /// The configuration or the restart point is invalid.
    #[error("invalid raft configuration: {0}")]
    Config(String),
    /// The state machine cannot be snapshotted now (the log is kept until it can).
    #[error("no snapshot can be taken now: {0}")]
    SnapshotBlocked(String),
    /// Local message types (ticks, beats...) cannot arrive over the network.
    #[error("message type {0:?} cannot be stepped from the network")]
    LocalMessage(MessageType),
    /// The log store failed.
    #[error(transparent)]
    Store(#[from] LogError),
    /// raft-rs refused an operation.
    #[error("raft: {0}")]
    Raft(#[from] raft::Error),
    /// An earlier store failure left this core unusable: recreate it from its store (a
    /// Ready may have been half persisted, so nothing after it may be acknowledged).
    #[error("the raft core failed earlier and must be recreated from its store: {0}")]
    Failed(String),
}

//! The mailbox protocol of every actor of a node: one message enum per actor, plus the small
//! shared handles the gateway and the node use to reach actors by their stable names.
//!
//! This crate owns *what* actors say to each other, never *how* they do it: it holds no actor
//! implementation, performs no I/O and starts nothing. It sits above the pure cores (storage,
//! evaluator, vault) because messages carry their request and answer types, and below the
//! shells (`node/`, `gateway/`) that implement and call the actors.
//!
//! - [`node`]: [`NodeMsg`], the root supervisor.
//! - [`storage`]: [`StorageMsg`], the storage actor that owns the node's database.
//! - [`raft`]: [`RaftMsg`], a raft group member.
//! - [`peer`]: [`PeerMsg`], the peer inbox (the only message that crosses nodes), and its
//!   versioned payload encodings; [`ConnectorMsg`], the actor keeping the links up.
//! - [`shard`]: [`ShardMsg`], a shard: its raft member and the routing of proposals.
//! - [`registry`]: [`RegistryMsg`], the vault registry (create, list, delete vaults).
//! - [`vault`]: [`VaultMsg`], one vault's actor (the front of its write path).
//! - [`evaluator`]: [`EvaluatorMsg`], the evaluator pool (checks, lookups, expand).
//! - [`election`]: [`ElectionMsg`], the leader-election actor that runs cluster-wide
//!   singleton jobs under shard 0's leases.
//! - [`gateway`]: [`GatewayMsg`], the gateway tree.
//! - [`mailbox`]: [`Mailbox`], a typed handle that finds an actor by its stable name and
//!   counts what is sent to it, and [`ActorDirectory`], the live introspection records.
//! - [`supervision`]: [`RestartTracker`], restart intensity as a pure type.
//! - [`directory`]: [`VaultDirectory`], the published routes to each vault's snapshots.

pub mod directory;
pub mod election;
pub mod evaluator;
pub mod gateway;
pub mod mailbox;
pub mod node;
pub mod peer;
pub mod raft;
pub mod registry;
pub mod shard;
pub mod storage;
pub mod supervision;
pub mod vault;

pub use directory::{
    SnapshotHistory, VaultDirectory, VaultRoute, CURSOR_SNAPSHOT_TTL_MS, SNAPSHOT_HISTORY_MAX,
};
pub use election::{ElectionMsg, JobStatus, LeaseAnswer};
pub use evaluator::{EvaluationJob, EvaluationOutput, EvaluatorMsg, EvaluatorRejection};
pub use gateway::{GatewayMsg, HttpMsg};
pub use mailbox::{ActorDirectory, ActorRecord, ActorStatus, ActorTreeNode, Mailbox, MailboxError};
pub use node::{AdminError, NodeMsg};
pub use peer::{ConnectorMsg, ForwardedProposal, PayloadError, PayloadKind, PeerMsg};
pub use raft::{Applied, GroupStatus, ProposeError, RaftMsg};
pub use registry::{RegistryError, RegistryMsg};
pub use shard::{ProposalFailure, ShardMsg};
pub use storage::StorageMsg;
pub use supervision::{RestartDecision, RestartIntensity, RestartTracker};
pub use vault::{DeployFailure, VaultMsg, WriteFailure};

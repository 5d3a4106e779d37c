//! The pure core of a shard's replicated state machine.
//!
//! A shard is a Raft group whose log carries [`ShardCommand`]s; every replica applies the
//! committed commands to its own copy of the shard's vaults through a [`ShardMachine`]
//! (an `inferadb_raft::group::StateMachine`) and answers the proposer with a
//! [`ShardAnswer`]. This crate owns the commands' and answers' canonical encodings, the
//! deterministic application of commands to the shard's catalog, vault files, lease
//! table, member registry, vault placements and fence epochs, the recovery rule that makes
//! re-applying log entries after a crash idempotent, the quarantine of vaults whose file
//! fails to open, and logical snapshots that rebuild identical vaults (same blocks, hashes
//! and state roots), leases, members, placements and fence epochs.
//!
//! It must never read the clock, draw randomness, spawn threads or tasks, or depend on an
//! async runtime: ids and `now_ms` travel inside the commands, chosen once by the proposer,
//! so that every replica applies the same bytes to the same state and gets the same
//! result. Files are reached only through the [`VaultFiles`] seam and the catalog's
//! `Database`, so tests and the simulator run it over memory.
//!
//! - [`command`]: [`ShardCommand`] and its encoding.
//! - [`answer`]: [`ShardAnswer`] and its encoding.
//! - [`machine`]: [`ShardMachine`]: applying, durability and the recovery rule.
//! - [`lease`]: [`LeaseTable`]: cluster-wide leases for singleton jobs, fenced by epoch
//!   (kept in shard 0; its documentation says how the leader-election actor uses them).
//! - [`members`]: [`MemberRecord`]: the cluster's desired membership, a registry of nodes
//!   (kept in shard 0) that the leader's shell drives Raft's configuration towards.
//! - [`placements`]: [`Placement`]: which data shard holds each vault, with cluster-wide
//!   unique names (kept in shard 0).
//! - [`snapshot`]: the logical snapshot's encoding.
//! - [`files`]: [`VaultFiles`], over a directory or over memory.
//! - [`observer`]: [`observer::ShardObserver`], how the node hears what applied entries
//!   changed (to publish snapshots).

pub mod answer;
pub mod command;
pub mod error;
pub mod files;
pub mod lease;
pub mod machine;
pub mod members;
pub mod observer;
pub mod placements;
mod refusal;
pub mod snapshot;
mod wire;

pub use answer::{GroupItem, ShardAnswer};

/// The version of the rules that turn a command into its outcome. Bumped whenever applying
/// the same command could give a different result, so that members applying different
/// rules refuse to link (it is part of the cluster's rules fingerprint) instead of
/// diverging. 2: a purge of expired relationships removes the soonest expiries first
/// (version 1 went in forward-key order).
pub const APPLY_RULES_VERSION: u32 = 2;
pub use command::ShardCommand;
pub use error::ShardError;
pub use files::{DirVaultFiles, MemoryVaultFiles, VaultFiles};
pub use lease::{Fenced, Lease, LeaseError, LeaseLimits, LeaseTable};
pub use machine::{ShardMachine, ShardOptions};
pub use members::MemberRecord;
pub use placements::Placement;
pub use wire::DecodeError;

//! [`VaultMsg`]: the protocol of one vault's actor on a node, the front of that vault's
//! write path: it queues writes, proposes each group to the vault's shard as one command
//! and answers the writers once the shard applied it.

use inferadb_vault::{SchemaDeployed, SchemaError, WriteBatch, WriteError, WriteOutcome};
use ractor::RpcReplyPort;

use crate::shard::ProposalFailure;

/// Why a write batch has no outcome.
#[derive(Debug, thiserror::Error)]
pub enum WriteFailure {
    /// The shard applied the command and refused the batch: nothing was written.
    #[error(transparent)]
    Refused(WriteError),
    /// The command has no answer from the shard (see [`ProposalFailure`]).
    #[error(transparent)]
    Proposal(#[from] ProposalFailure),
}

/// Why a schema deploy has no outcome.
#[derive(Debug, thiserror::Error)]
pub enum DeployFailure {
    /// The shard applied the command and refused the schema: nothing changed.
    #[error(transparent)]
    Refused(SchemaError),
    /// The command has no answer from the shard (see [`ProposalFailure`]).
    #[error(transparent)]
    Proposal(#[from] ProposalFailure),
}

/// Messages to a vault actor.
pub enum VaultMsg {
    /// Compile and deploy a new schema version (refused if it would orphan relationships),
    /// after every write queued before it.
    DeploySchema {
        /// The IPL source.
        text: String,
        /// The new version and the revision of its ledger block.
        reply: RpcReplyPort<Result<SchemaDeployed, DeployFailure>>,
    },
    /// Validate and apply a write batch atomically with its ledger block. The reply comes
    /// after the shard committed and applied it on this node, so a read here sees it.
    Write {
        /// The mutations and preconditions.
        batch: WriteBatch,
        /// The revision that includes the batch.
        reply: RpcReplyPort<Result<WriteOutcome, WriteFailure>>,
    },
    /// Group point: propose the writes queued since the last flush as one command. Sent by
    /// the actor to itself.
    Flush,
    /// Fault injection (dev and tests only): fail while handling this message, so that the
    /// supervisor's restart path runs for real.
    InjectFailure {
        /// The failure message recorded as the actor's last failure.
        reason: String,
    },
}

// Local only: never sent to another node (ractor's `cluster` feature needs the impl spelled out).
impl ractor::Message for VaultMsg {}

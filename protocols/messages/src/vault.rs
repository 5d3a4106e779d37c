//! [`VaultMsg`]: the protocol of one vault's state actor, the only writer of that vault.

use inferadb_vault::{
    SchemaDeployed, SchemaError, SchemaVersion, WriteBatch, WriteError, WriteOutcome,
};
use ractor::RpcReplyPort;

/// Messages to a vault state actor.
pub enum VaultMsg {
    /// Compile and deploy a new schema version (refused if it would orphan relationships).
    DeploySchema {
        /// The IPL source.
        text: String,
        /// The new version and the revision of its ledger block.
        reply: RpcReplyPort<Result<SchemaDeployed, SchemaError>>,
    },
    /// Validate and apply a write batch atomically with its ledger block. The reply comes
    /// after the commit is durable and the new snapshot is published.
    Write {
        /// The mutations and preconditions.
        batch: WriteBatch,
        /// The revision that includes the batch.
        reply: RpcReplyPort<Result<WriteOutcome, WriteError>>,
    },
    /// Every schema version deployed so far, oldest first.
    SchemaVersions {
        /// The versions.
        reply: RpcReplyPort<Vec<SchemaVersion>>,
    },
    /// Group-commit point: make the commits since the last flush durable, publish the newest
    /// snapshot and answer their writers. Sent by the actor to itself.
    Flush,
    /// Fault injection (dev and tests only): fail while handling this message, so that the
    /// supervisor's restart path runs for real.
    InjectFailure {
        /// The failure message recorded as the actor's last failure.
        reason: String,
    },
}

//! [`RegistryMsg`]: the protocol of the vault registry, which creates and deletes vaults
//! (through the shard) and supervises one vault actor per vault the shard holds.

use inferadb_protocols::VaultId;
use inferadb_vault::{CatalogError, VaultRecord};
use ractor::RpcReplyPort;

use crate::mailbox::MailboxError;
use crate::shard::ProposalFailure;

/// Why a registry request failed.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// No vault has this id.
    #[error("vault `{id}` does not exist")]
    NotFound {
        /// The id asked for.
        id: VaultId,
    },
    /// The catalog refused the request (bad or taken name, storage failure).
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    /// The vault's actor could not be started or stopped.
    #[error(transparent)]
    Actor(#[from] MailboxError),
    /// The shard did not answer the command (see [`ProposalFailure`]).
    #[error(transparent)]
    Proposal(#[from] ProposalFailure),
    /// The vault's actor could not be spawned.
    #[error("vault actor for `{id}` failed to start: {message}")]
    SpawnFailed {
        /// The vault.
        id: VaultId,
        /// Why.
        message: String,
    },
}

/// Messages to the vault registry.
pub enum RegistryMsg {
    /// Create a vault named `name`, start its actor and publish its route.
    Create {
        /// The vault's name (unique on the node).
        name: String,
        /// The new vault's record.
        reply: RpcReplyPort<Result<VaultRecord, RegistryError>>,
    },
    /// Every vault of the node.
    List {
        /// The records, by id.
        reply: RpcReplyPort<Result<Vec<VaultRecord>, RegistryError>>,
    },
    /// The shard's set of vaults changed (a vault was created or deleted through any
    /// node): start or stop vault actors to match. Sent by the shard after applying.
    Reconcile,
    /// Delete a vault: withdraw its route, stop its actor, delete its data.
    Delete {
        /// The vault.
        id: VaultId,
        /// Answered once the data is gone.
        reply: RpcReplyPort<Result<(), RegistryError>>,
    },
}

// Local only: never sent to another node (ractor's `cluster` feature needs the impl spelled out).
impl ractor::Message for RegistryMsg {}

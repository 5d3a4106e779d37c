//! [`RegistryMsg`]: the protocol of the vault registry, which creates and deletes vaults and
//! supervises one vault state actor per vault.

use inferadb_protocols::VaultId;
use inferadb_vault::{CatalogError, VaultRecord};
use ractor::RpcReplyPort;

use crate::mailbox::MailboxError;

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
    /// Delete a vault: withdraw its route, stop its actor, delete its data.
    Delete {
        /// The vault.
        id: VaultId,
        /// Answered once the data is gone.
        reply: RpcReplyPort<Result<(), RegistryError>>,
    },
}

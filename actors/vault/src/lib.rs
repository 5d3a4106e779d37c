//! The pure core of a vault: one tenant's relationships, schema versions and ledger, stored
//! in the node's single database.
//!
//! This crate owns the vault's storage layout (forward and reverse indexes, blocks, schema
//! versions, state buckets, the node catalog of vaults), validation of writes against the
//! active schema, the atomic application of a write batch together with its ledger block,
//! immutable read snapshots that serve the evaluator, and verification of the whole ledger.
//! It must never spawn threads or tasks, depend on an async runtime, read the clock
//! (`now_ms` is always a parameter) or draw randomness (the caller supplies the token
//! secret), so that the actor layer and the simulator can drive it deterministically.
//!
//! - [`NodeCatalog`]: which vaults exist, and the revision-token secret.
//! - [`Vault`]: the writer side of one vault ([`Vault::deploy_schema`], [`Vault::write`],
//!   [`Vault::purge_expired`]).
//! - [`VaultSnapshot`]: a read view at one revision; implements
//!   [`inferadb_evaluator::RelationshipReader`], pages relationships, reads blocks and
//!   verifies the ledger.
//! - [`ledger`]: blocks, operations, their canonical encoding and roots.
//! - [`RevisionToken`]: authenticated revision tokens.

mod catalog;
pub mod error;
mod filter;
pub mod keys;
pub mod ledger;
pub mod limits;
mod purge;
mod read;
mod replay;
mod snapshot;
pub mod tables;
mod token;
mod validate;
mod vault;
mod verify;
mod write;

pub use catalog::{
    open_database, open_database_with_io, validate_vault_name, NodeCatalog, VaultRecord, PAGE_SIZE,
};
pub use error::{
    CatalogError, DatabaseError, Field, FilterError, ReadError, SchemaError, SchemaProblem,
    TokenError, VaultError, WriteError,
};
pub use filter::{IndexKind, RelationshipFilter};
pub use ledger::{Block, Operation};
pub use limits::VaultLimits;
pub use read::RelationshipPage;
pub use snapshot::{ActiveSchema, VaultSnapshot};
pub use token::{RevisionToken, TokenRevision};
pub use validate::{allowed_text, validate_relationship};
pub use vault::{
    Mutation, Precondition, PreconditionKind, SchemaDeployed, SchemaVersion, Vault, VaultOptions,
    WriteBatch, WriteOutcome,
};
pub use verify::LedgerReport;

//! Shared domain types (object and subject references, relationships, revisions) and the
//! mailbox protocol of every actor.
//!
//! This crate owns the vocabulary the other crates speak. It must never perform I/O, spawn
//! tasks or depend on tokio: it is pure data plus validation, so that the simulator, the
//! storage engine and the gateway can all share it.
//!
//! - [`ids`]: validated [`TypeName`], [`RelationName`] and [`ObjectId`], with the exact
//!   character rules.
//! - [`reference`](mod@reference): [`ObjectRef`] (`type:id`) and [`SubjectRef`] (`type:id`,
//!   `type:id#relation`, `type:*`).
//! - [`relationship`]: [`Relationship`] (`resource#relation@subject`, optional expiry), in
//!   text and JSON form.
//! - [`revision`]: [`Revision`], a vault's ledger height.
//! - [`vault`]: [`VaultId`], a vault's identity.
//! - [`clock`]: [`Clock`], the injected source of time.
//! - [`error`]: [`ParseError`], which names the wrong part and the rule it broke.

pub mod clock;
pub mod error;
pub mod ids;
pub mod reference;
pub mod relationship;
pub mod revision;
pub mod vault;

pub use clock::Clock;
pub use error::{ParseError, Part};
pub use ids::{ObjectId, RelationName, TypeName, NAME_LENGTH_MAX, OBJECT_ID_LENGTH_MAX};
pub use reference::{ObjectRef, Role, SubjectRef};
pub use relationship::Relationship;
pub use revision::Revision;
pub use vault::VaultId;

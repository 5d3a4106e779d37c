//! Typed errors. Each names the field or mutation and the rule it broke, with enough
//! structure (index, field, limit) for the HTTP layer to build an RFC 9457 problem.
//!
//! The errors a shard can answer as a refusal ([`WriteError`], [`SchemaError`],
//! [`CatalogError`]) are `serde` types so that they cross the wire whole, from the replica
//! that applied the command to the gateway that answers the client. Their variants that
//! carry an engine error ([`StorageError`]) are `#[serde(skip)]`: serializing one fails,
//! which is fine because such a failure is the replica's own, never a refusal.

use std::borrow::Cow;

use inferadb_protocols::{Relationship, VaultId};
use inferadb_storage::{OpenError, StorageError};

/// Opening the node's database failed.
#[derive(Debug, thiserror::Error)]
pub enum DatabaseError {
    /// The storage engine refused to open or create the file.
    #[error("opening the database failed: {0}")]
    Open(#[from] OpenError),
    /// The file exists with a page size other than [`crate::PAGE_SIZE`].
    #[error("the database has {found}-byte pages; vaults need {expected}-byte pages")]
    PageSize {
        /// The required page size.
        expected: usize,
        /// The file's page size.
        found: usize,
    },
}

/// A node catalog operation failed.
#[derive(Debug, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum CatalogError {
    /// The vault name broke a rule.
    #[error("vault name: {rule}")]
    NameInvalid {
        /// The rule (e.g. "must be 1 to 128 bytes"). A `Cow` so that a decoded error
        /// (which owns its text) has the same type as a built one.
        rule: Cow<'static, str>,
    },
    /// Another vault has this name.
    #[error("vault name `{name}`: already used by vault {existing}")]
    NameTaken {
        /// The name.
        name: String,
        /// The vault that has it.
        existing: VaultId,
    },
    /// A vault with this id exists.
    #[error("vault id {id}: already exists")]
    IdTaken {
        /// The id.
        id: VaultId,
    },
    /// No vault has this id.
    #[error("vault {id} does not exist")]
    VaultNotFound {
        /// The id.
        id: VaultId,
    },
    /// Stored bytes are not what this version writes.
    #[error("corrupt catalog data: {what}")]
    Corrupt {
        /// What was malformed.
        what: String,
    },
    /// The storage engine failed.
    #[error(transparent)]
    #[serde(skip)]
    Storage(#[from] StorageError),
}

/// Opening a vault or reading its ledger failed.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    /// No vault has this id.
    #[error("vault {id} does not exist")]
    VaultNotFound {
        /// The id.
        id: VaultId,
    },
    /// A page of blocks larger than `block_page_max` was asked for.
    #[error("limit {limit}: must be between 1 and block_page_max ({max})")]
    LimitInvalid {
        /// The requested limit.
        limit: usize,
        /// The configured maximum.
        max: usize,
    },
    /// Stored bytes are not what this version writes.
    #[error("corrupt vault data: {what}")]
    Corrupt {
        /// What was malformed.
        what: String,
    },
    /// The storage engine failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// One problem found in a schema text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SchemaProblem {
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// The diagnostic code (`E…`).
    pub code: &'static str,
    /// What is wrong.
    pub message: String,
}

/// A schema deploy was refused or failed.
#[derive(Debug, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum SchemaError {
    /// The text does not compile: every error, with line and column.
    #[error("{0}")]
    Invalid(inferadb_ipl::Diagnostics),
    /// The text is longer than `schema_text_max`.
    #[error("schema text of {length} bytes exceeds schema_text_max ({limit})")]
    TooLarge {
        /// Its length in bytes.
        length: usize,
        /// The configured limit.
        limit: usize,
    },
    /// Stored relationships would not be valid under the new schema.
    #[error("{total} stored relationships would be invalid under the new schema, e.g. {}",
        examples.first().map(ToString::to_string).unwrap_or_default())]
    WouldOrphan {
        /// The first `orphan_examples_max` of them, in key order.
        examples: Vec<Relationship>,
        /// How many there are.
        total: u64,
    },
    /// Stored bytes are not what this version writes.
    #[error("corrupt vault data: {what}")]
    Corrupt {
        /// What was malformed.
        what: String,
    },
    /// The storage engine failed.
    #[error(transparent)]
    #[serde(skip)]
    Storage(#[from] StorageError),
}

impl SchemaError {
    /// The compile errors of an `Invalid` error, flattened (empty for other variants).
    pub fn problems(&self) -> Vec<SchemaProblem> {
        let SchemaError::Invalid(diagnostics) = self else {
            return Vec::new();
        };
        diagnostics
            .errors
            .iter()
            .map(|diagnostic| SchemaProblem {
                line: diagnostic.line,
                column: diagnostic.column,
                code: diagnostic.kind.code(),
                message: diagnostic.message.clone(),
            })
            .collect()
    }
}

/// Which part of a relationship (or filter) an error is about. Serialized as its API name
/// ([`Field::as_str`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Field {
    /// `resource_type`.
    ResourceType,
    /// `resource_id`.
    ResourceId,
    /// `relation`.
    Relation,
    /// `subject_type`.
    SubjectType,
    /// `subject_id`.
    SubjectId,
    /// `subject_relation`.
    SubjectRelation,
    /// `expires_at_ms`.
    ExpiresAtMs,
}

impl Field {
    /// The field's name as in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Field::ResourceType => "resource_type",
            Field::ResourceId => "resource_id",
            Field::Relation => "relation",
            Field::SubjectType => "subject_type",
            Field::SubjectId => "subject_id",
            Field::SubjectRelation => "subject_relation",
            Field::ExpiresAtMs => "expires_at_ms",
        }
    }
}

impl std::fmt::Display for Field {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// A relationship filter broke a rule.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
#[error("filter field {field}: {rule}")]
pub struct FilterError {
    /// The offending field.
    pub field: Field,
    /// The rule it broke (a `Cow` so that a decoded error has the same type as a built one).
    pub rule: Cow<'static, str>,
}

/// A write batch was refused or failed; nothing was written.
#[derive(Debug, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum WriteError {
    /// The vault has no schema yet.
    #[error("the vault has no schema: deploy one before writing relationships")]
    NoSchema,
    /// More mutations than `write_batch_max`.
    #[error("batch of {len} mutations exceeds write_batch_max ({limit})")]
    BatchTooLarge {
        /// Mutations in the batch.
        len: usize,
        /// The configured limit.
        limit: usize,
    },
    /// More preconditions than `preconditions_max`.
    #[error("{len} preconditions exceed preconditions_max ({limit})")]
    TooManyPreconditions {
        /// Preconditions in the batch.
        len: usize,
        /// The configured limit.
        limit: usize,
    },
    /// A type the schema does not define.
    #[error("mutation {index}: {field} `{name}` is not a type of the schema")]
    UnknownType {
        /// The mutation's index in the batch.
        index: usize,
        /// `resource_type` or `subject_type`.
        field: Field,
        /// The unknown type.
        name: String,
    },
    /// A relation the type does not define.
    #[error("mutation {index}: {field} `{name}` is not a relation of type `{type_name}`")]
    UnknownRelation {
        /// The mutation's index in the batch.
        index: usize,
        /// `relation` or `subject_relation`.
        field: Field,
        /// The type.
        type_name: String,
        /// The unknown relation.
        name: String,
    },
    /// The relation is computed (a permission or `relation r = …`): it stores nothing.
    #[error("mutation {index}: `{type_name}#{relation}` is computed, not a direct relation")]
    NotADirectRelation {
        /// The mutation's index in the batch.
        index: usize,
        /// The type.
        type_name: String,
        /// The relation.
        relation: String,
    },
    /// The subject's shape is not one the relation accepts.
    #[error("mutation {index}: subject `{subject}` is not allowed; allowed: {}", allowed.join(", "))]
    SubjectNotAllowed {
        /// The mutation's index in the batch.
        index: usize,
        /// The subject as written.
        subject: String,
        /// The accepted shapes (`T`, `T:*`, `T#rel`).
        allowed: Vec<String>,
    },
    /// `expires_at_ms <= now_ms`.
    #[error("mutation {index}: expires_at_ms {expires_at_ms} is not after now ({now_ms})")]
    ExpiryInPast {
        /// The mutation's index in the batch.
        index: usize,
        /// The expiry.
        expires_at_ms: u64,
        /// The caller's clock.
        now_ms: u64,
    },
    /// A `Create` of a relationship that exists (and is live).
    #[error("mutation {index}: relationship `{relationship}` already exists")]
    AlreadyExists {
        /// The mutation's index in the batch.
        index: usize,
        /// The relationship (boxed: it is large and errors travel by value).
        relationship: Box<Relationship>,
    },
    /// A `DeleteMatching` filter matches more than `delete_by_filter_max` relationships.
    #[error("mutation {index}: the filter matches more than delete_by_filter_max ({limit})")]
    TooManyMatches {
        /// The mutation's index in the batch.
        index: usize,
        /// The configured limit.
        limit: u64,
    },
    /// A filter (of a `DeleteMatching` mutation) broke a rule.
    #[error("mutation {index}: {error}")]
    FilterInvalid {
        /// The mutation's index in the batch.
        index: usize,
        /// The rule broken.
        error: FilterError,
    },
    /// A precondition's filter broke a rule.
    #[error("precondition {index}: {error}")]
    PreconditionInvalid {
        /// The precondition's index.
        index: usize,
        /// The rule broken.
        error: FilterError,
    },
    /// A precondition did not hold on the state before the batch.
    #[error("precondition {index} failed: {}", if *must_match { "no relationship matches" } else { "a relationship matches" })]
    PreconditionFailed {
        /// The precondition's index.
        index: usize,
        /// Whether it was `MustMatch` (else `MustNotMatch`).
        must_match: bool,
    },
    /// The block recording the batch would exceed the storage value limit.
    #[error("the batch's block of {bytes} bytes exceeds the storage value limit ({limit})")]
    BlockTooLarge {
        /// The encoded block's size.
        bytes: usize,
        /// The limit.
        limit: usize,
    },
    /// Stored bytes are not what this version writes.
    #[error("corrupt vault data: {what}")]
    Corrupt {
        /// What was malformed.
        what: String,
    },
    /// The storage engine failed under a group commit this batch belonged to.
    #[error("the group commit this batch belonged to failed: {message}")]
    GroupFailed {
        /// The engine's error.
        message: String,
    },
    /// The storage engine failed.
    #[error(transparent)]
    #[serde(skip)]
    Storage(#[from] StorageError),
}

/// A relationship read was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The filter broke a rule.
    #[error(transparent)]
    FilterInvalid(#[from] FilterError),
    /// `limit` is 0 or above `read_page_max`.
    #[error("limit {limit}: must be between 1 and read_page_max ({max})")]
    LimitInvalid {
        /// The requested limit.
        limit: usize,
        /// The configured maximum.
        max: usize,
    },
    /// The cursor is not one this vault issued.
    #[error("cursor: {reason}")]
    CursorMalformed {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The cursor was issued for another filter.
    #[error("cursor: it continues another filter's read")]
    CursorMismatch,
    /// Stored bytes are not what this version writes.
    #[error("corrupt vault data: {what}")]
    Corrupt {
        /// What was malformed.
        what: String,
    },
    /// The storage engine failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// A revision token was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not a token of this format.
    #[error("revision token: malformed ({reason})")]
    Malformed {
        /// What is wrong.
        reason: &'static str,
    },
    /// A token of another vault.
    #[error("revision token: issued for vault {found}, not {expected}")]
    OtherVault {
        /// The vault asked about.
        expected: VaultId,
        /// The vault the token names.
        found: VaultId,
    },
    /// The MAC does not match: forged or altered, or issued by another node secret.
    #[error("revision token: not issued by this node (authentication failed)")]
    Forged,
}

#[cfg(test)]
#[path = "error_tests.rs"]
mod tests;

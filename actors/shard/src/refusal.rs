//! Refusals of vault and catalog rules: each error's stable kind, and its structured
//! `detail` (the error's JSON), which lets the proposer rebuild the very error the vault
//! returned (index, field, compiler diagnostics, orphans) instead of only its message.

use inferadb_vault::{CatalogError, SchemaError, WriteError};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::answer::{GroupItem, ShardAnswer};

/// The refusal kind of a write error; `None` for a failure of the replica's own (storage,
/// corrupt data), which is never a refusal.
pub(crate) fn write_kind(error: &WriteError) -> Option<&'static str> {
    Some(match error {
        WriteError::Storage(_) | WriteError::Corrupt { .. } | WriteError::GroupFailed { .. } => {
            return None
        }
        WriteError::NoSchema => "no_schema",
        WriteError::BatchTooLarge { .. } => "batch_too_large",
        WriteError::TooManyPreconditions { .. } => "too_many_preconditions",
        WriteError::UnknownType { .. } => "unknown_type",
        WriteError::UnknownRelation { .. } => "unknown_relation",
        WriteError::NotADirectRelation { .. } => "not_a_direct_relation",
        WriteError::SubjectNotAllowed { .. } => "subject_not_allowed",
        WriteError::ExpiryInPast { .. } => "expiry_in_past",
        WriteError::AlreadyExists { .. } => "already_exists",
        WriteError::TooManyMatches { .. } => "too_many_matches",
        WriteError::FilterInvalid { .. } => "filter_invalid",
        WriteError::PreconditionInvalid { .. } => "precondition_invalid",
        WriteError::PreconditionFailed { .. } => "precondition_failed",
        WriteError::BlockTooLarge { .. } => "block_too_large",
    })
}

/// The refusal kind of a schema error; `None` for a failure of the replica's own.
pub(crate) fn schema_kind(error: &SchemaError) -> Option<&'static str> {
    Some(match error {
        SchemaError::Storage(_) | SchemaError::Corrupt { .. } => return None,
        SchemaError::Invalid(_) => "schema_invalid",
        SchemaError::TooLarge { .. } => "schema_too_large",
        SchemaError::WouldOrphan { .. } => "schema_would_orphan",
    })
}

/// The refusal kind of a catalog error; `None` for a failure of the replica's own.
pub(crate) fn catalog_kind(error: &CatalogError) -> Option<&'static str> {
    Some(match error {
        CatalogError::Storage(_) | CatalogError::Corrupt { .. } => return None,
        CatalogError::NameInvalid { .. } => "vault_name_invalid",
        CatalogError::NameTaken { .. } => "vault_name_taken",
        CatalogError::IdTaken { .. } => "vault_id_taken",
        CatalogError::VaultNotFound { .. } => "vault_not_found",
    })
}

/// A refused error's `detail`. Every variant that is a refusal serializes (only the
/// engine-error variants refuse to, and those are never refusals), so the fallback to "no
/// detail" is unreachable; it is still deterministic, which is what replicas need.
fn detail<E: Serialize>(error: &E) -> Vec<u8> {
    serde_json::to_vec(error).unwrap_or_default()
}

/// Decodes a refusal's `detail` as an error of the family `kind_of` names: `None` when the
/// detail is empty or undecodable, or when the decoded error's kind is not `kind` (a kind
/// of another family whose JSON happens to decode as this one).
pub(crate) fn decode<E: DeserializeOwned>(
    kind: &str,
    detail: &[u8],
    kind_of: fn(&E) -> Option<&'static str>,
) -> Option<E> {
    if detail.is_empty() {
        return None;
    }
    let error: E = serde_json::from_slice(detail).ok()?;
    (kind_of(&error) == Some(kind)).then_some(error)
}

/// A refusal's parts, before they become an answer or a group item.
pub(crate) struct Refusal {
    kind: &'static str,
    message: String,
    detail: Vec<u8>,
}

impl Refusal {
    /// The refusal of `error`, or `None` when `kind_of` says it is a failure of the
    /// replica's own.
    pub(crate) fn of<E: Serialize + std::fmt::Display>(
        error: &E,
        kind_of: fn(&E) -> Option<&'static str>,
    ) -> Option<Self> {
        Some(Refusal {
            kind: kind_of(error)?,
            message: error.to_string(),
            detail: detail(error),
        })
    }

    /// As a command's answer.
    pub(crate) fn answer(self) -> ShardAnswer {
        ShardAnswer::Refused {
            kind: self.kind.to_owned(),
            message: self.message,
            detail: self.detail,
        }
    }

    /// As one batch's outcome in a group.
    pub(crate) fn item(self) -> GroupItem {
        GroupItem::Refused {
            kind: self.kind.to_owned(),
            message: self.message,
            detail: self.detail,
        }
    }
}

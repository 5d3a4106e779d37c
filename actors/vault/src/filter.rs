//! Relationship filters: which relationships a read, a `DeleteMatching` or a precondition
//! is about, and which index range serves it.

use std::borrow::Cow;
use std::ops::ControlFlow;

use inferadb_protocols::{ObjectId, RelationName, Relationship, TypeName};
use inferadb_storage::{Range, StorageError};

use crate::error::{Field, FilterError};
use crate::keys::{
    decode_forward, decode_reverse, push_components, push_id, subject_parts, SEPARATOR,
};

/// Selects relationships; every field that is set must match. `resource_id` needs
/// `resource_type`, and `subject_id` needs `subject_type`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct RelationshipFilter {
    /// The resource's type.
    pub resource_type: Option<TypeName>,
    /// The resource's id.
    pub resource_id: Option<ObjectId>,
    /// The relation.
    pub relation: Option<RelationName>,
    /// The subject's type.
    pub subject_type: Option<TypeName>,
    /// The subject's id, or `*` for wildcard subjects.
    pub subject_id: Option<String>,
    /// The userset relation of the subject (only userset subjects match when set).
    pub subject_relation: Option<RelationName>,
}

/// Which index a filter's scan walks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IndexKind {
    /// The forward index (resource first).
    Forward,
    /// The reverse index (subject first).
    Reverse,
}

/// The index and key prefix that hold every relationship a filter can match.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ScanPlan {
    pub(crate) index: IndexKind,
    pub(crate) prefix: Vec<u8>,
}

impl RelationshipFilter {
    /// Checks the field rules.
    pub fn validate(&self) -> Result<(), FilterError> {
        if self.resource_id.is_some() && self.resource_type.is_none() {
            return Err(FilterError {
                field: Field::ResourceId,
                rule: Cow::Borrowed("requires resource_type"),
            });
        }
        if let Some(subject_id) = &self.subject_id {
            if self.subject_type.is_none() {
                return Err(FilterError {
                    field: Field::SubjectId,
                    rule: Cow::Borrowed("requires subject_type"),
                });
            }
            if subject_id != "*" && ObjectId::new(subject_id.as_str()).is_err() {
                return Err(FilterError {
                    field: Field::SubjectId,
                    rule: Cow::Borrowed("must be an object id or `*`"),
                });
            }
        }
        Ok(())
    }

    /// Whether a relationship matches (expiry is not considered).
    pub fn matches(&self, relationship: &Relationship) -> bool {
        let (subject_type, subject_id, subject_relation) = subject_parts(&relationship.subject);
        let equal = |want: Option<&str>, have: &str| want.is_none_or(|want| want == have);
        equal(
            self.resource_type.as_ref().map(AsRef::as_ref),
            relationship.resource.object_type.as_ref(),
        ) && equal(
            self.resource_id.as_ref().map(AsRef::as_ref),
            relationship.resource.object_id.as_ref(),
        ) && equal(
            self.relation.as_ref().map(AsRef::as_ref),
            relationship.relation.as_ref(),
        ) && equal(self.subject_type.as_ref().map(AsRef::as_ref), subject_type)
            && equal(self.subject_id.as_deref(), subject_id)
            && self
                .subject_relation
                .as_ref()
                .is_none_or(|want| Some(want.as_ref()) == subject_relation)
    }

    /// The scan that serves this filter: the forward index when the resource type is set,
    /// else the reverse index when the subject type is set, else the whole forward index.
    /// The prefix extends over leading fields as long as they are set.
    pub(crate) fn plan(&self) -> ScanPlan {
        let mut prefix = Vec::new();
        if let Some(resource_type) = &self.resource_type {
            push_components(&mut prefix, &[resource_type.as_ref().as_bytes()]);
            if let Some(resource_id) = &self.resource_id {
                push_id(&mut prefix, resource_id.as_ref());
                prefix.push(SEPARATOR);
                if let Some(relation) = &self.relation {
                    push_components(&mut prefix, &[relation.as_ref().as_bytes()]);
                }
            }
            return ScanPlan {
                index: IndexKind::Forward,
                prefix,
            };
        }
        if let Some(subject_type) = &self.subject_type {
            push_components(&mut prefix, &[subject_type.as_ref().as_bytes()]);
            if let Some(subject_id) = &self.subject_id {
                push_id(&mut prefix, subject_id);
                prefix.push(SEPARATOR);
                if let Some(relation) = &self.subject_relation {
                    push_components(&mut prefix, &[relation.as_ref().as_bytes()]);
                }
            }
            return ScanPlan {
                index: IndexKind::Reverse,
                prefix,
            };
        }
        ScanPlan {
            index: IndexKind::Forward,
            prefix,
        }
    }

    /// A fingerprint of the filter, so a cursor can only continue the read it came from.
    pub(crate) fn fingerprint(&self) -> [u8; 8] {
        let mut hasher = blake3::Hasher::new();
        let fields: [Option<&str>; 6] = [
            self.resource_type.as_ref().map(AsRef::as_ref),
            self.resource_id.as_ref().map(AsRef::as_ref),
            self.relation.as_ref().map(AsRef::as_ref),
            self.subject_type.as_ref().map(AsRef::as_ref),
            self.subject_id.as_deref(),
            self.subject_relation.as_ref().map(AsRef::as_ref),
        ];
        for field in fields {
            match field {
                None => hasher.update(&[0]),
                Some(text) => {
                    hasher.update(&[1]);
                    hasher.update(&(text.len() as u64).to_be_bytes());
                    hasher.update(text.as_bytes())
                }
            };
        }
        let mut out = [0u8; 8];
        out.copy_from_slice(&hasher.finalize().as_bytes()[..8]);
        out
    }
}

/// Why a scan stopped early with an error.
#[derive(Debug)]
pub(crate) enum ScanError {
    Storage(StorageError),
    Corrupt(String),
}

impl From<StorageError> for ScanError {
    fn from(error: StorageError) -> Self {
        ScanError::Storage(error)
    }
}

/// Decodes an index entry into a relationship.
pub(crate) fn decode_entry(
    index: IndexKind,
    key: &[u8],
    value: &[u8],
) -> Result<Relationship, ScanError> {
    let decoded = match index {
        IndexKind::Forward => decode_forward(key, value),
        IndexKind::Reverse => decode_reverse(key, value),
    };
    decoded.ok_or_else(|| ScanError::Corrupt("an index entry is malformed".into()))
}

/// Visits every relationship of `range` (entries of `index`) that matches `filter`, live
/// or not, with its key.
pub(crate) fn scan_matching(
    range: Range<'_>,
    index: IndexKind,
    filter: &RelationshipFilter,
    visit: &mut dyn FnMut(&[u8], Relationship) -> ControlFlow<()>,
) -> Result<(), ScanError> {
    for entry in range {
        let (key, value) = entry?;
        let relationship = decode_entry(index, key, &value)?;
        if filter.matches(&relationship) && visit(key, relationship).is_break() {
            break;
        }
    }
    Ok(())
}

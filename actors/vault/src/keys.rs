//! Index keys: how a relationship becomes a forward and a reverse key.
//!
//! Components are separated by one 0x00 byte. Names and ids never contain 0x00, and 0x00
//! sorts before every character they may contain, so byte order of keys is component order
//! and "every key under these leading components" is one prefix scan.
//!
//! - Forward: `resource_type 0 resource_id 0 relation 0 kind 0 subject_type 0 subject_id
//!   [0 subject_relation]`, where `kind` is `o` for objects and wildcards and `u` for
//!   usersets, so the evaluator's `SubjectFilter::Objects` and `Usersets` are single scans.
//! - Reverse: `subject_type 0 subject_id 0 subject_relation_or_empty 0 resource_type 0
//!   relation 0 resource_id`.
//! - Value (both indexes): empty, or the 8-byte little-endian `expires_at_ms`.

use inferadb_protocols::{ObjectId, ObjectRef, RelationName, Relationship, SubjectRef, TypeName};

/// The separator between key components.
pub const SEPARATOR: u8 = 0;
/// The kind byte of object and wildcard subjects in forward keys.
pub const KIND_OBJECT: u8 = b'o';
/// The kind byte of userset subjects in forward keys.
pub const KIND_USERSET: u8 = b'u';

/// Appends components, each followed by the separator.
pub(crate) fn push_components(key: &mut Vec<u8>, components: &[&[u8]]) {
    for component in components {
        key.extend_from_slice(component);
        key.push(SEPARATOR);
    }
}

/// A subject's type, id (`*` for a wildcard) and userset relation.
pub(crate) fn subject_parts(subject: &SubjectRef) -> (&str, &str, Option<&str>) {
    match subject {
        SubjectRef::Object(object) => {
            (object.object_type.as_ref(), object.object_id.as_ref(), None)
        }
        SubjectRef::Userset { object, relation } => (
            object.object_type.as_ref(),
            object.object_id.as_ref(),
            Some(relation.as_ref()),
        ),
        SubjectRef::Wildcard(type_name) => (type_name.as_ref(), "*", None),
    }
}

/// The forward key of a relationship (also its canonical key bytes for hashing).
pub fn forward_key(relationship: &Relationship) -> Vec<u8> {
    let (subject_type, subject_id, subject_relation) = subject_parts(&relationship.subject);
    let kind = if subject_relation.is_some() {
        KIND_USERSET
    } else {
        KIND_OBJECT
    };
    let mut key = Vec::with_capacity(64);
    push_components(
        &mut key,
        &[
            relationship.resource.object_type.as_ref().as_bytes(),
            relationship.resource.object_id.as_ref().as_bytes(),
            relationship.relation.as_ref().as_bytes(),
            &[kind],
            subject_type.as_bytes(),
        ],
    );
    key.extend_from_slice(subject_id.as_bytes());
    if let Some(relation) = subject_relation {
        key.push(SEPARATOR);
        key.extend_from_slice(relation.as_bytes());
    }
    key
}

/// The reverse key of a relationship.
pub fn reverse_key(relationship: &Relationship) -> Vec<u8> {
    let (subject_type, subject_id, subject_relation) = subject_parts(&relationship.subject);
    let mut key = Vec::with_capacity(64);
    push_components(
        &mut key,
        &[
            subject_type.as_bytes(),
            subject_id.as_bytes(),
            subject_relation.unwrap_or("").as_bytes(),
            relationship.resource.object_type.as_ref().as_bytes(),
            relationship.relation.as_ref().as_bytes(),
        ],
    );
    key.extend_from_slice(relationship.resource.object_id.as_ref().as_bytes());
    key
}

/// The expiry-index key of a relationship stored under `forward_key` with `expires_at_ms`.
pub fn expiry_key(expires_at_ms: u64, forward_key: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(8 + forward_key.len());
    key.extend_from_slice(&expires_at_ms.to_be_bytes());
    key.extend_from_slice(forward_key);
    key
}

/// Splits an expiry-index key into the expiry and the forward key.
pub fn decode_expiry_key(key: &[u8]) -> Option<(u64, &[u8])> {
    let (expiry, forward) = key.split_first_chunk::<8>()?;
    Some((u64::from_be_bytes(*expiry), forward))
}

/// The stored value for an expiry.
pub fn encode_expiry(expires_at_ms: Option<u64>) -> Vec<u8> {
    expires_at_ms.map_or_else(Vec::new, |expiry| expiry.to_le_bytes().to_vec())
}

/// Decodes a stored value; `None` when it is neither empty nor 8 bytes.
pub fn decode_expiry(value: &[u8]) -> Option<Option<u64>> {
    match value.len() {
        0 => Some(None),
        8 => Some(Some(u64::from_le_bytes(value.try_into().ok()?))),
        _ => None,
    }
}

/// Splits a key into its components as `&str`; `None` when one is not UTF-8.
pub(crate) fn components(key: &[u8]) -> Option<smallvec::SmallVec<[&str; 8]>> {
    key.split(|byte| *byte == SEPARATOR)
        .map(|part| std::str::from_utf8(part).ok())
        .collect()
}

fn subject_from(type_text: &str, id: &str, relation: Option<&str>) -> Option<SubjectRef> {
    let subject_type = TypeName::new(type_text).ok()?;
    if id == "*" && relation.is_none() {
        return Some(SubjectRef::Wildcard(subject_type));
    }
    let object = ObjectRef::new(subject_type, ObjectId::new(id).ok()?);
    Some(match relation {
        None => SubjectRef::Object(object),
        Some(relation) => SubjectRef::Userset {
            object,
            relation: RelationName::new(relation).ok()?,
        },
    })
}

fn relationship_from(
    resource: (&str, &str),
    relation: &str,
    subject: SubjectRef,
    expires_at_ms: Option<u64>,
) -> Option<Relationship> {
    Some(Relationship {
        resource: ObjectRef::new(
            TypeName::new(resource.0).ok()?,
            ObjectId::new(resource.1).ok()?,
        ),
        relation: RelationName::new(relation).ok()?,
        subject,
        expires_at_ms,
    })
}

/// Decodes a forward key (and its expiry) back into a relationship; `None` when the key is
/// not a well-formed forward key.
pub fn decode_forward(key: &[u8], expires_at_ms: Option<u64>) -> Option<Relationship> {
    let parts = components(key)?;
    let (subject_relation, kind) = match (parts.len(), parts.get(3).copied()) {
        (6, Some("o")) => (None, KIND_OBJECT),
        (7, Some("u")) => (Some(parts[6]), KIND_USERSET),
        _ => return None,
    };
    let subject = subject_from(parts[4], parts[5], subject_relation)?;
    // A userset kind byte must hold a userset and an object kind byte must not.
    let is_userset = matches!(subject, SubjectRef::Userset { .. });
    if is_userset != (kind == KIND_USERSET) {
        return None;
    }
    relationship_from((parts[0], parts[1]), parts[2], subject, expires_at_ms)
}

/// Decodes a reverse key (and its expiry) back into a relationship.
pub fn decode_reverse(key: &[u8], expires_at_ms: Option<u64>) -> Option<Relationship> {
    let parts = components(key)?;
    if parts.len() != 6 {
        return None;
    }
    let relation = Some(parts[2]).filter(|relation| !relation.is_empty());
    let subject = subject_from(parts[0], parts[1], relation)?;
    relationship_from((parts[3], parts[5]), parts[4], subject, expires_at_ms)
}

/// The forward prefix of every subject of `resource#relation` (with an optional kind).
pub(crate) fn forward_prefix(
    key: &mut Vec<u8>,
    resource_type: &str,
    resource_id: &str,
    relation: &str,
    kind: Option<u8>,
) {
    key.clear();
    push_components(
        key,
        &[
            resource_type.as_bytes(),
            resource_id.as_bytes(),
            relation.as_bytes(),
        ],
    );
    if let Some(kind) = kind {
        push_components(key, &[&[kind]]);
    }
}

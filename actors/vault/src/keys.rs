//! Index keys and values: how a relationship becomes a forward and a reverse entry, and its
//! canonical bytes for the ledger.
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
//! - Canonical (the ledger's bytes and the state bucket of a relationship): the forward
//!   layout with every id verbatim.
//!
//! **Long ids.** An id of up to [`KEY_ID_LENGTH_MAX`] bytes is stored in index keys
//! verbatim. A longer one (ids may have up to 1,024 bytes) is *shortened*: its first
//! [`SHORTENED_PREFIX_LENGTH`] bytes, the marker byte 0x01 and 32 hex digits of the BLAKE3
//! digest of the whole id — exactly `KEY_ID_LENGTH_MAX` bytes. This keeps every key within
//! a quarter of a 4 KiB vault page (see [`INDEX_KEY_LENGTH_MAX`]), where small pages make
//! each commit copy a quarter of what 16 KiB pages did. The marker is below every byte an id
//! may contain, so a shortened id equals no verbatim one; equal ids shorten equally, so an
//! exact-id prefix scan stays one scan. Order differs from byte order only after the first
//! 223 bytes: a long id sorts before every id of 224–256 bytes that shares them, and long
//! ids sharing them sort by digest. No reader depends on it (lookups sort their results).
//! A shortened key cannot be read back, so its entry's value carries both ids, and a point
//! lookup compares them with the ids it asked for (a digest match alone is not trusted).
//!
//! Values (forward, reverse and expiry index alike): empty, or the 8-byte little-endian
//! `expires_at_ms`; when an id is shortened, [`LONG_VALUE_TAG`], an expiry flag byte, the
//! expiry (8 bytes little-endian, when flagged), the resource id's length (u16
//! little-endian), the resource id and the subject id.

use inferadb_protocols::ids::{NAME_LENGTH_MAX, OBJECT_ID_LENGTH_MAX};
use inferadb_protocols::{ObjectId, ObjectRef, RelationName, Relationship, SubjectRef, TypeName};

/// The separator between key components.
pub const SEPARATOR: u8 = 0;
/// The kind byte of object and wildcard subjects in forward keys.
pub const KIND_OBJECT: u8 = b'o';
/// The kind byte of userset subjects in forward keys.
pub const KIND_USERSET: u8 = b'u';
/// The longest id stored verbatim in an index key; longer ids are shortened to this length.
pub const KEY_ID_LENGTH_MAX: usize = 256;
/// The byte after the kept prefix of a shortened id.
pub const SHORTENED_MARKER: u8 = 0x01;
/// Hex digits of the digest that ends a shortened id (128 bits).
const DIGEST_HEX_LENGTH: usize = 32;
/// The bytes of a long id kept at the front of its shortened form.
pub const SHORTENED_PREFIX_LENGTH: usize = KEY_ID_LENGTH_MAX - 1 - DIGEST_HEX_LENGTH;
/// The longest index key: four names, two ids, the kind byte, six separators, and the
/// 8-byte expiry in front of a forward key in the expiry index.
pub const INDEX_KEY_LENGTH_MAX: usize = 4 * NAME_LENGTH_MAX + 2 * KEY_ID_LENGTH_MAX + 1 + 6 + 8;
/// The first byte of a value that carries both ids of a shortened entry.
pub const LONG_VALUE_TAG: u8 = 0xFF;

const _: () = assert!(
    INDEX_KEY_LENGTH_MAX <= inferadb_storage::key_size_max(crate::catalog::PAGE_SIZE),
    "every index key fits the vault page size"
);
const _: () = assert!(KEY_ID_LENGTH_MAX < OBJECT_ID_LENGTH_MAX);

/// Appends components, each followed by the separator.
pub(crate) fn push_components(key: &mut Vec<u8>, components: &[&[u8]]) {
    for component in components {
        key.extend_from_slice(component);
        key.push(SEPARATOR);
    }
}

/// Whether an id is shortened in index keys.
pub fn is_long_id(id: &str) -> bool {
    id.len() > KEY_ID_LENGTH_MAX
}

/// Appends an id as index keys hold it: verbatim, or shortened when long.
pub(crate) fn push_id(key: &mut Vec<u8>, id: &str) {
    if !is_long_id(id) {
        key.extend_from_slice(id.as_bytes());
        return;
    }
    key.extend_from_slice(&id.as_bytes()[..SHORTENED_PREFIX_LENGTH]);
    key.push(SHORTENED_MARKER);
    let digest = blake3::hash(id.as_bytes());
    key.extend_from_slice(
        crate::ledger::hex(&digest.as_bytes()[..DIGEST_HEX_LENGTH / 2]).as_bytes(),
    );
}

/// Appends an id verbatim (the canonical layout).
fn push_verbatim(key: &mut Vec<u8>, id: &str) {
    key.extend_from_slice(id.as_bytes());
}

/// Whether a key component is a shortened id.
fn is_shortened(component: &str) -> bool {
    component.as_bytes().get(SHORTENED_PREFIX_LENGTH) == Some(&SHORTENED_MARKER)
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

/// Appends the forward layout of a relationship, each id through `push`.
fn push_forward(key: &mut Vec<u8>, relationship: &Relationship, push: fn(&mut Vec<u8>, &str)) {
    let (subject_type, subject_id, subject_relation) = subject_parts(&relationship.subject);
    let kind = if subject_relation.is_some() {
        KIND_USERSET
    } else {
        KIND_OBJECT
    };
    push_components(
        key,
        &[relationship.resource.object_type.as_ref().as_bytes()],
    );
    push(key, relationship.resource.object_id.as_ref());
    key.push(SEPARATOR);
    push_components(
        key,
        &[
            relationship.relation.as_ref().as_bytes(),
            &[kind],
            subject_type.as_bytes(),
        ],
    );
    push(key, subject_id);
    if let Some(relation) = subject_relation {
        key.push(SEPARATOR);
        key.extend_from_slice(relation.as_bytes());
    }
}

/// The canonical bytes of a relationship: the forward layout with every id verbatim. The
/// ledger hashes these, so state roots do not depend on how the indexes store ids.
pub fn canonical_key(relationship: &Relationship) -> Vec<u8> {
    let mut key = Vec::with_capacity(64);
    push_forward(&mut key, relationship, push_verbatim);
    key
}

/// The forward index key of a relationship.
pub fn forward_key(relationship: &Relationship) -> Vec<u8> {
    let mut key = Vec::with_capacity(64);
    push_forward(&mut key, relationship, push_id);
    key
}

/// The reverse index key of a relationship.
pub fn reverse_key(relationship: &Relationship) -> Vec<u8> {
    let (subject_type, subject_id, subject_relation) = subject_parts(&relationship.subject);
    let mut key = Vec::with_capacity(64);
    push_components(&mut key, &[subject_type.as_bytes()]);
    push_id(&mut key, subject_id);
    key.push(SEPARATOR);
    push_components(
        &mut key,
        &[
            subject_relation.unwrap_or("").as_bytes(),
            relationship.resource.object_type.as_ref().as_bytes(),
            relationship.relation.as_ref().as_bytes(),
        ],
    );
    push_id(&mut key, relationship.resource.object_id.as_ref());
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

/// The ids of a relationship with a shortened id, as its index values carry them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FullIds<'a> {
    /// The resource's id.
    pub resource_id: &'a str,
    /// The subject's id (`*` for a wildcard).
    pub subject_id: &'a str,
}

/// An index entry's value, decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IndexValue<'a> {
    /// The relationship's expiry.
    pub expires_at_ms: Option<u64>,
    /// Both ids, present exactly when the key shortens one.
    pub full_ids: Option<FullIds<'a>>,
}

/// The value of a relationship's index entries.
pub fn encode_index_value(relationship: &Relationship) -> Vec<u8> {
    let resource_id = relationship.resource.object_id.as_ref();
    let (_, subject_id, _) = subject_parts(&relationship.subject);
    if !is_long_id(resource_id) && !is_long_id(subject_id) {
        return relationship
            .expires_at_ms
            .map_or_else(Vec::new, |expiry| expiry.to_le_bytes().to_vec());
    }
    let mut value = Vec::with_capacity(12 + resource_id.len() + subject_id.len());
    value.push(LONG_VALUE_TAG);
    match relationship.expires_at_ms {
        None => value.push(0),
        Some(expiry) => {
            value.push(1);
            value.extend_from_slice(&expiry.to_le_bytes());
        }
    }
    let length = u16::try_from(resource_id.len()).expect("invariant: ids are at most 1,024 bytes");
    value.extend_from_slice(&length.to_le_bytes());
    value.extend_from_slice(resource_id.as_bytes());
    value.extend_from_slice(subject_id.as_bytes());
    value
}

/// Decodes an index value; `None` when it is malformed.
pub fn decode_index_value(value: &[u8]) -> Option<IndexValue<'_>> {
    match value.len() {
        0 => Some(IndexValue {
            expires_at_ms: None,
            full_ids: None,
        }),
        8 => Some(IndexValue {
            expires_at_ms: Some(u64::from_le_bytes(value.try_into().ok()?)),
            full_ids: None,
        }),
        _ => decode_long_value(value),
    }
}

fn decode_long_value(value: &[u8]) -> Option<IndexValue<'_>> {
    let (&tag, rest) = value.split_first()?;
    let (&flag, rest) = rest.split_first()?;
    if tag != LONG_VALUE_TAG {
        return None;
    }
    let (expires_at_ms, rest) = match flag {
        0 => (None, rest),
        1 => {
            let (expiry, rest) = rest.split_first_chunk::<8>()?;
            (Some(u64::from_le_bytes(*expiry)), rest)
        }
        _ => return None,
    };
    let (length, rest) = rest.split_first_chunk::<2>()?;
    let length = usize::from(u16::from_le_bytes(*length));
    if rest.len() < length {
        return None;
    }
    let (resource_id, subject_id) = rest.split_at(length);
    let full_ids = FullIds {
        resource_id: std::str::from_utf8(resource_id).ok()?,
        subject_id: std::str::from_utf8(subject_id).ok()?,
    };
    // A long value exists only for a long id.
    (is_long_id(full_ids.resource_id) || is_long_id(full_ids.subject_id)).then_some(IndexValue {
        expires_at_ms,
        full_ids: Some(full_ids),
    })
}

/// The id a key component stands for: the component itself, or the full id from the value
/// when the component is a shortened id (which must be the full id's shortening).
pub(crate) fn resolve_id<'a>(component: &'a str, full: Option<&'a str>) -> Option<&'a str> {
    match (is_shortened(component), full) {
        (false, None) => Some(component),
        (false, Some(full)) => (full == component).then_some(component),
        (true, Some(full)) => {
            let mut shortened = Vec::with_capacity(KEY_ID_LENGTH_MAX);
            push_id(&mut shortened, full);
            (shortened == component.as_bytes()).then_some(full)
        }
        (true, None) => None,
    }
}

/// Whether a value's whole ids (if it carries any) are the ids a point lookup asked for:
/// a key with a shortened id stands for them only if they are.
pub(crate) fn names_ids(value: &IndexValue<'_>, resource_id: &str, subject_id: &str) -> bool {
    value
        .full_ids
        .is_none_or(|ids| ids.resource_id == resource_id && ids.subject_id == subject_id)
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

/// Decodes the forward layout, each id component through [`resolve_id`] with the whole
/// ids of `full` (canonical keys hold every id whole, so they pass none).
fn decode_forward_with(
    key: &[u8],
    expires_at_ms: Option<u64>,
    full: Option<FullIds<'_>>,
) -> Option<Relationship> {
    let parts = components(key)?;
    let (subject_relation, kind) = match (parts.len(), parts.get(3).copied()) {
        (6, Some("o")) => (None, KIND_OBJECT),
        (7, Some("u")) => (Some(parts[6]), KIND_USERSET),
        _ => return None,
    };
    let subject_id = resolve_id(parts[5], full.map(|ids| ids.subject_id))?;
    let subject = subject_from(parts[4], subject_id, subject_relation)?;
    // A userset kind byte must hold a userset and an object kind byte must not.
    let is_userset = matches!(subject, SubjectRef::Userset { .. });
    if is_userset != (kind == KIND_USERSET) {
        return None;
    }
    let resource_id = resolve_id(parts[1], full.map(|ids| ids.resource_id))?;
    relationship_from((parts[0], resource_id), parts[2], subject, expires_at_ms)
}

/// Decodes canonical bytes (see [`canonical_key`]) back into a relationship; `None` when
/// they are malformed.
pub fn decode_canonical(key: &[u8], expires_at_ms: Option<u64>) -> Option<Relationship> {
    decode_forward_with(key, expires_at_ms, None)
}

/// Decodes a forward index entry back into a relationship; `None` when it is malformed.
pub fn decode_forward(key: &[u8], value: &[u8]) -> Option<Relationship> {
    let value = decode_index_value(value)?;
    decode_forward_with(key, value.expires_at_ms, value.full_ids)
}

/// Decodes a reverse index entry back into a relationship; `None` when it is malformed.
pub fn decode_reverse(key: &[u8], value: &[u8]) -> Option<Relationship> {
    let value = decode_index_value(value)?;
    let full = value.full_ids;
    let parts = components(key)?;
    if parts.len() != 6 {
        return None;
    }
    let relation = Some(parts[2]).filter(|relation| !relation.is_empty());
    let subject_id = resolve_id(parts[1], full.map(|ids| ids.subject_id))?;
    let resource_id = resolve_id(parts[5], full.map(|ids| ids.resource_id))?;
    let subject = subject_from(parts[0], subject_id, relation)?;
    relationship_from(
        (parts[3], resource_id),
        parts[4],
        subject,
        value.expires_at_ms,
    )
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
    push_components(key, &[resource_type.as_bytes()]);
    push_id(key, resource_id);
    key.push(SEPARATOR);
    push_components(key, &[relation.as_bytes()]);
    if let Some(kind) = kind {
        push_components(key, &[&[kind]]);
    }
}

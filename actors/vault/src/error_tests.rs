//! The errors a shard answers as refusals survive JSON whole: every variant that can be a
//! refusal decodes to the same variant with the same fields (and so the same message).

#![allow(clippy::unwrap_used)]

use std::borrow::Cow;
use std::fmt::Display;

use inferadb_protocols::{Relationship, VaultId};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{CatalogError, Field, FilterError, SchemaError, WriteError};

/// Encodes, decodes, and checks the decoded error encodes and prints identically.
fn round_trip<E: Serialize + DeserializeOwned + Display>(error: &E) -> E {
    let json = serde_json::to_string(error).unwrap();
    let decoded: E = serde_json::from_str(&json).unwrap();
    assert_eq!(serde_json::to_string(&decoded).unwrap(), json);
    assert_eq!(decoded.to_string(), error.to_string());
    decoded
}

fn relationship(text: &str) -> Relationship {
    text.parse().unwrap()
}

fn filter_error() -> FilterError {
    FilterError {
        field: Field::SubjectId,
        rule: Cow::Borrowed("requires subject_type"),
    }
}

/// One of each `WriteError` variant a shard refuses with.
fn write_refusals() -> Vec<WriteError> {
    vec![
        WriteError::NoSchema,
        WriteError::BatchTooLarge { len: 9, limit: 8 },
        WriteError::TooManyPreconditions { len: 3, limit: 2 },
        WriteError::UnknownType {
            index: 2,
            field: Field::SubjectType,
            name: "folder".into(),
        },
        WriteError::UnknownRelation {
            index: 1,
            field: Field::Relation,
            type_name: "doc".into(),
            name: "editor".into(),
        },
        WriteError::NotADirectRelation {
            index: 0,
            type_name: "doc".into(),
            relation: "view".into(),
        },
        WriteError::SubjectNotAllowed {
            index: 4,
            subject: "group:g".into(),
            allowed: vec!["user".into(), "group#member".into()],
        },
        WriteError::ExpiryInPast {
            index: 5,
            expires_at_ms: 10,
            now_ms: 11,
        },
        WriteError::AlreadyExists {
            index: 6,
            relationship: Box::new(relationship("doc:a#viewer@user:b[expires_at_ms:99]")),
        },
        WriteError::TooManyMatches { index: 7, limit: 3 },
        WriteError::FilterInvalid {
            index: 8,
            error: filter_error(),
        },
        WriteError::PreconditionInvalid {
            index: 9,
            error: filter_error(),
        },
        WriteError::PreconditionFailed {
            index: 1,
            must_match: true,
        },
        WriteError::BlockTooLarge {
            bytes: 70_000,
            limit: 65_536,
        },
    ]
}

#[test]
fn write_refusals_round_trip() {
    for error in write_refusals() {
        round_trip(&error);
    }
    let decoded = round_trip(&WriteError::FilterInvalid {
        index: 8,
        error: filter_error(),
    });
    assert!(matches!(
        decoded,
        WriteError::FilterInvalid { index: 8, error } if error == filter_error()
    ));
    let original = relationship("doc:a#viewer@group:g#member");
    let decoded = round_trip(&WriteError::AlreadyExists {
        index: 3,
        relationship: Box::new(original.clone()),
    });
    assert!(matches!(
        decoded,
        WriteError::AlreadyExists { index: 3, relationship } if *relationship == original
    ));
}

#[test]
fn schema_refusals_round_trip() {
    let diagnostics = inferadb_ipl::compile("type doc {\n  relation owner: nobody\n}")
        .err()
        .unwrap();
    let invalid = SchemaError::Invalid(diagnostics.clone());
    let decoded = round_trip(&invalid);
    assert_eq!(decoded.problems(), invalid.problems());
    assert!(matches!(decoded, SchemaError::Invalid(found) if found == diagnostics));
    round_trip(&SchemaError::TooLarge {
        length: 10,
        limit: 9,
    });
    let examples = vec![
        relationship("doc:a#viewer@user:*"),
        relationship("doc:b#viewer@group:g#member[expires_at_ms:5]"),
    ];
    let decoded = round_trip(&SchemaError::WouldOrphan {
        examples: examples.clone(),
        total: 7,
    });
    assert!(matches!(
        decoded,
        SchemaError::WouldOrphan { examples: found, total: 7 } if found == examples
    ));
}

#[test]
fn catalog_refusals_round_trip() {
    let decoded = round_trip(&CatalogError::NameInvalid {
        rule: Cow::Borrowed("must be 1 to 128 bytes long"),
    });
    assert!(matches!(
        decoded,
        CatalogError::NameInvalid { rule } if rule == "must be 1 to 128 bytes long"
    ));
    round_trip(&CatalogError::NameTaken {
        name: "alpha".into(),
        existing: VaultId(0x0f3a),
    });
    round_trip(&CatalogError::IdTaken { id: VaultId(7) });
    round_trip(&CatalogError::VaultNotFound {
        id: VaultId(u64::MAX),
    });
}

#[test]
fn fields_serialize_as_their_api_names_and_engine_errors_not_at_all() {
    assert_eq!(
        serde_json::to_string(&Field::SubjectRelation).unwrap(),
        "\"subject_relation\""
    );
    let storage = || inferadb_storage::StorageError::KeyTooLarge {
        length: 2,
        limit: 1,
    };
    assert!(serde_json::to_string(&WriteError::Storage(storage())).is_err());
    assert!(serde_json::to_string(&SchemaError::Storage(storage())).is_err());
    assert!(serde_json::to_string(&CatalogError::Storage(storage())).is_err());
}

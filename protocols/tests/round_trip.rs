//! Round-trip properties of the domain types.
//!
//! Goal: every valid reference and relationship survives text -> value -> text and
//! value -> JSON -> value unchanged, and ids use exactly the documented character set.
//! Method: proptest generates names and ids from the documented rules (including the
//! extremes: 64-byte names, 1,024-byte ids, every special id character).

// Generators build values from strings that match the rules by construction.
#![allow(clippy::unwrap_used)]

use inferadb_protocols::{ObjectId, ObjectRef, RelationName, Relationship, SubjectRef, TypeName};
use proptest::prelude::*;

fn name() -> impl Strategy<Value = String> {
    "[a-z][a-zA-Z0-9_]{0,63}"
}

fn id() -> impl Strategy<Value = String> {
    prop_oneof![
        "[A-Za-z0-9_./+=|@-]{1,40}",
        "[A-Za-z0-9_./+=|@-]{1000,1024}",
    ]
}

fn object() -> impl Strategy<Value = ObjectRef> {
    (name(), id()).prop_map(|(type_name, object_id)| {
        ObjectRef::new(
            TypeName::new(type_name).unwrap(),
            ObjectId::new(object_id).unwrap(),
        )
    })
}

fn subject() -> impl Strategy<Value = SubjectRef> {
    prop_oneof![
        object().prop_map(SubjectRef::Object),
        (object(), name()).prop_map(|(object, relation)| SubjectRef::Userset {
            object,
            relation: RelationName::new(relation).unwrap(),
        }),
        name().prop_map(|type_name| SubjectRef::Wildcard(TypeName::new(type_name).unwrap())),
    ]
}

fn relationship() -> impl Strategy<Value = Relationship> {
    (
        object(),
        name(),
        subject(),
        proptest::option::of(any::<u64>()),
    )
        .prop_map(
            |(resource, relation, subject, expires_at_ms)| Relationship {
                resource,
                relation: RelationName::new(relation).unwrap(),
                subject,
                expires_at_ms,
            },
        )
}

proptest! {
    #[test]
    fn subject_text_round_trips(subject in subject()) {
        let text = subject.to_string();
        prop_assert_eq!(SubjectRef::parse(&text).unwrap(), subject);
    }

    #[test]
    fn relationship_text_round_trips(relationship in relationship()) {
        let text = relationship.to_string();
        prop_assert_eq!(Relationship::parse(&text).unwrap(), relationship);
    }

    #[test]
    fn relationship_json_round_trips(relationship in relationship()) {
        let json = serde_json::to_string(&relationship).unwrap();
        let back: Relationship = serde_json::from_str(&json).unwrap();
        prop_assert_eq!(back, relationship);
    }

    #[test]
    fn ids_accept_exactly_the_documented_bytes(byte in any::<u8>()) {
        let text = format!("a{}", byte as char);
        let documented = byte.is_ascii_alphanumeric() || b"_-./+=|@".contains(&byte);
        prop_assert_eq!(ObjectId::new(text).is_ok(), documented);
    }

    #[test]
    fn parsing_arbitrary_text_never_panics(text in "\\PC{0,80}") {
        let _ = Relationship::parse(&text);
        let _ = SubjectRef::parse(&text);
    }
}

#[test]
fn corpus_ids_are_accepted() {
    let long_id = "x".repeat(1024);
    for text in [
        "document:a|b#viewer@user:c/d+e=".to_owned(),
        "document:-1#viewer@user:ann".to_owned(),
        format!("resource:{long_id}#viewer@user:{long_id}"),
    ] {
        Relationship::parse(&text).unwrap();
    }
}

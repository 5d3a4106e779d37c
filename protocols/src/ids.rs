//! Validated names and ids: [`TypeName`], [`RelationName`] and [`ObjectId`].
//!
//! # Rules
//!
//! - Type and relation names match `[a-z][a-zA-Z0-9_]{0,63}`: 1 to 64 bytes of ASCII
//!   letters, digits and `_`, starting with a lowercase letter. Uppercase letters after the
//!   first are accepted because the IPL compiler accepts them (with a style warning) and the
//!   OpenFGA conformance cases use names such as `scopeA`; every name a schema can declare
//!   must be writable and checkable.
//! - Object ids are 1 to [`OBJECT_ID_LENGTH_MAX`] (1,024) bytes from `A-Z a-z 0-9` and
//!   `_ - . / + = | @`. This covers what peer systems accept (SpiceDB allows
//!   `[a-zA-Z0-9/_|\-=+]`), e-mail addresses, paths and base64.
//! - `:`, `#` and `*` are never part of an id: they are the separators of the text form
//!   (`type:id#relation`) and the wildcard, so excluding them keeps parsing unambiguous
//!   without escapes. `@` is allowed because it can be placed unambiguously: in
//!   `resource#relation@subject` the relation (a name) cannot contain `@`, so the first `@`
//!   after the `#` always ends the relation.

use std::fmt;

use crate::error::{quote, ParseError, Part};

/// The longest type or relation name, in bytes.
pub const NAME_LENGTH_MAX: usize = 64;

/// The longest object id, in bytes.
pub const OBJECT_ID_LENGTH_MAX: usize = 1024;

/// Whether a byte may appear in an object id.
pub fn is_object_id_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric()
        || matches!(byte, b'_' | b'-' | b'.' | b'/' | b'+' | b'=' | b'|' | b'@')
}

/// Checks `text` against the name rule `[a-z][a-zA-Z0-9_]{0,63}`.
pub fn validate_name(text: &str, part: Part) -> Result<(), ParseError> {
    if text.is_empty() {
        return Err(ParseError::Empty { part });
    }
    let bytes = text.as_bytes();
    let valid = bytes.len() <= NAME_LENGTH_MAX
        && bytes[0].is_ascii_lowercase()
        && bytes
            .iter()
            .all(|byte| byte.is_ascii_alphanumeric() || *byte == b'_');
    if valid {
        Ok(())
    } else {
        Err(ParseError::InvalidName {
            part,
            value: quote(text),
        })
    }
}

/// Checks `text` against the object id rule (see the module documentation). `*` is refused
/// with [`ParseError::WildcardNotAllowed`]; wildcards are a subject shape, not an id.
pub fn validate_object_id(text: &str, part: Part) -> Result<(), ParseError> {
    if text.is_empty() {
        return Err(ParseError::Empty { part });
    }
    if text == "*" {
        return Err(ParseError::WildcardNotAllowed { part });
    }
    if text.len() > OBJECT_ID_LENGTH_MAX {
        return Err(ParseError::IdTooLong {
            part,
            value: quote(text),
            length_bytes: text.len(),
        });
    }
    match text
        .char_indices()
        .find(|(_, character)| !(character.is_ascii() && is_object_id_byte(*character as u8)))
    {
        None => Ok(()),
        Some((position, character)) => Err(ParseError::InvalidIdCharacter {
            part,
            value: quote(text),
            character,
            position,
        }),
    }
}

macro_rules! validated_string {
    ($(#[$meta:meta])* $name:ident, $validate:ident, $part:expr) => {
        $(#[$meta])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// Validates `text` and wraps it.
            pub fn new(text: impl Into<String>) -> Result<Self, ParseError> {
                Self::new_as(text, $part)
            }

            /// Validates `text`, naming `part` in the error if it is invalid.
            pub fn new_as(text: impl Into<String>, part: Part) -> Result<Self, ParseError> {
                let text = text.into();
                $validate(&text, part)?;
                Ok(Self(text))
            }

            /// The text.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// The text, by value.
            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(formatter, "{}({:?})", stringify!($name), self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::str::FromStr for $name {
            type Err = ParseError;

            fn from_str(text: &str) -> Result<Self, Self::Err> {
                Self::new(text)
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                Self::new(text).map_err(serde::de::Error::custom)
            }
        }
    };
}

validated_string!(
    /// A type name such as `document`: matches `[a-z][a-zA-Z0-9_]{0,63}`.
    TypeName,
    validate_name,
    Part::TypeName
);

validated_string!(
    /// A relation or permission name such as `viewer`: matches `[a-z][a-zA-Z0-9_]{0,63}`.
    RelationName,
    validate_name,
    Part::RelationName
);

validated_string!(
    /// An object id such as `alice@example.com`: 1 to 1,024 bytes of `A-Z a-z 0-9` and
    /// `_ - . / + = | @`.
    ObjectId,
    validate_object_id,
    Part::ObjectId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_rule() {
        assert!(TypeName::new("document").is_ok());
        assert!(TypeName::new("a").is_ok());
        assert!(TypeName::new("a_1").is_ok());
        assert!(TypeName::new("a".repeat(64)).is_ok());
        assert!(TypeName::new("a".repeat(65)).is_err());
        assert!(TypeName::new("Doc").is_err());
        assert!(TypeName::new("scopeA").is_ok());
        assert!(TypeName::new("scopeA").is_ok());
        assert!(TypeName::new("1doc").is_err());
        assert!(TypeName::new("_doc").is_err());
        assert!(TypeName::new("do-c").is_err());
        assert_eq!(
            TypeName::new(""),
            Err(ParseError::Empty {
                part: Part::TypeName
            })
        );
    }

    #[test]
    fn name_errors_say_which_part_and_rule() {
        let error = TypeName::new_as("Doc", Part::ResourceType).unwrap_err();
        assert_eq!(
            error.to_string(),
            "resource type `Doc`: must match [a-z][a-zA-Z0-9_]{0,63}"
        );
    }

    #[test]
    fn ids_follow_the_rule() {
        for id in [
            "1",
            "ann",
            "a|b",
            "a/b",
            "a+b=",
            "a-b",
            "a.b@example.com",
            "A_Z",
        ] {
            assert!(ObjectId::new(id).is_ok(), "{id}");
        }
        assert!(ObjectId::new("x".repeat(1024)).is_ok());
        let error = ObjectId::new("x".repeat(1025)).unwrap_err();
        assert!(matches!(
            error,
            ParseError::IdTooLong {
                length_bytes: 1025,
                ..
            }
        ));
        assert!(error.to_string().contains("at most 1024 bytes"));
        for id in ["a:b", "a#b", "a b", "é", "a*"] {
            assert!(ObjectId::new(id).is_err(), "{id}");
        }
        assert_eq!(
            ObjectId::new("*"),
            Err(ParseError::WildcardNotAllowed {
                part: Part::ObjectId
            })
        );
    }

    #[test]
    fn id_errors_name_the_character() {
        let error = ObjectId::new_as("a:b", Part::SubjectId).unwrap_err();
        assert_eq!(
            error.to_string(),
            "subject id `a:b`: character ':' at byte 1 is not allowed; \
             ids use only A-Z a-z 0-9 and _ - . / + = | @"
        );
    }
}

//! Errors for parsing and validating references and relationships.
//!
//! Every error names the part of the input that is wrong (the resource type, the subject id,
//! ...) and the rule it broke, so a client can fix its request without reading our code.

use std::fmt;

/// Which part of a reference or relationship an error is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Part {
    /// The type of a standalone object reference (`type` in `type:id`).
    ObjectType,
    /// The id of a standalone object reference (`id` in `type:id`).
    ObjectId,
    /// The type of a relationship's or request's resource.
    ResourceType,
    /// The id of a relationship's or request's resource.
    ResourceId,
    /// The relation (or permission) of a relationship or request.
    Relation,
    /// The type of a subject.
    SubjectType,
    /// The id of a subject.
    SubjectId,
    /// The relation of a userset subject (`member` in `group:eng#member`).
    SubjectRelation,
    /// A standalone type name.
    TypeName,
    /// A standalone relation name.
    RelationName,
}

impl Part {
    /// The part's name as shown in error messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Part::ObjectType => "object type",
            Part::ObjectId => "object id",
            Part::ResourceType => "resource type",
            Part::ResourceId => "resource id",
            Part::Relation => "relation",
            Part::SubjectType => "subject type",
            Part::SubjectId => "subject id",
            Part::SubjectRelation => "subject relation",
            Part::TypeName => "type name",
            Part::RelationName => "relation name",
        }
    }
}

impl fmt::Display for Part {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// The longest excerpt of offending input an error message quotes. Ids may be 1,024 bytes
/// long and a message quoting all of that helps nobody.
pub const QUOTED_INPUT_LENGTH_MAX: usize = 80;

/// Shortens `text` for quoting in an error message (on a character boundary).
pub(crate) fn quote(text: &str) -> String {
    if text.len() <= QUOTED_INPUT_LENGTH_MAX {
        return text.to_owned();
    }
    let mut end = QUOTED_INPUT_LENGTH_MAX;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// Why a reference, a relationship or a revision could not be parsed or validated.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// A required part is empty (`:1`, `doc:`, `doc:1#@user:a`).
    #[error("{part}: must not be empty")]
    Empty {
        /// The empty part.
        part: Part,
    },
    /// A type or relation name breaks the name rule.
    #[error("{part} `{value}`: must match [a-z][a-zA-Z0-9_]{{0,63}}")]
    InvalidName {
        /// The offending part.
        part: Part,
        /// The offending text (shortened when long).
        value: String,
    },
    /// An id is longer than [`crate::OBJECT_ID_LENGTH_MAX`] bytes.
    #[error("{part} `{value}`: must be at most 1024 bytes long, is {length_bytes}")]
    IdTooLong {
        /// The offending part.
        part: Part,
        /// The offending text (shortened).
        value: String,
        /// The id's length in bytes.
        length_bytes: usize,
    },
    /// An id contains a character outside the id character set.
    #[error(
        "{part} `{value}`: character {character:?} at byte {position} is not allowed; \
         ids use only A-Z a-z 0-9 and _ - . / + = | @"
    )]
    InvalidIdCharacter {
        /// The offending part.
        part: Part,
        /// The offending text (shortened when long).
        value: String,
        /// The first character that is not allowed.
        character: char,
        /// Its byte offset in the id.
        position: usize,
    },
    /// `*` was used where only a concrete id is allowed (resources, usersets).
    #[error("{part} `*`: a wildcard is only allowed as a whole subject (`type:*`)")]
    WildcardNotAllowed {
        /// The offending part.
        part: Part,
    },
    /// A separator (`:`, `#`, `@`) is missing.
    #[error("{what} `{value}`: missing `{separator}` ({expected})")]
    MissingSeparator {
        /// What was being parsed ("object", "subject", "relationship").
        what: &'static str,
        /// The offending text (shortened when long).
        value: String,
        /// The missing separator.
        separator: char,
        /// The expected shape, e.g. "expected type:id".
        expected: &'static str,
    },
    /// A relationship's expiry suffix is malformed.
    #[error("expiry `{value}`: must be `[expires_at_ms:<unix milliseconds>]`")]
    InvalidExpiry {
        /// The offending text (shortened when long).
        value: String,
    },
    /// A vault id is not 16 lowercase hexadecimal digits.
    #[error("vault id `{value}`: must be 16 lowercase hexadecimal digits")]
    InvalidVaultId {
        /// The offending text (shortened when long).
        value: String,
    },
    /// A revision is not a non-negative integer.
    #[error("revision `{value}`: must be a decimal integer in 0..=18446744073709551615")]
    InvalidRevision {
        /// The offending text (shortened when long).
        value: String,
    },
}

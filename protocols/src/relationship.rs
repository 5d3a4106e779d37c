//! Relationships: `resource#relation@subject`, with an optional expiry.
//!
//! # Text form
//!
//! `document:1#viewer@user:ann`, `document:1#viewer@group:eng#member`,
//! `document:1#viewer@user:*`, and with an expiry
//! `document:1#viewer@user:ann[expires_at_ms:1700000000000]`. The resource ends at the first
//! `#` (ids never contain `#`), the relation at the next `@` (names never contain `@`), and
//! the subject runs to the end or to a trailing `[expires_at_ms:…]` (ids never contain `[`).
//!
//! # JSON form
//!
//! `{"resource":"doc:1","relation":"viewer","subject":"user:ann"}`, plus
//! `"expires_at_ms": <u64>` when the relationship expires (omitted otherwise).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{quote, ParseError, Part};
use crate::ids::RelationName;
use crate::reference::{ObjectRef, Role, SubjectRef};

const EXPIRY_PREFIX: &str = "[expires_at_ms:";

/// One stored fact: `subject` has `relation` on `resource`, until `expires_at_ms` if set.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "RelationshipJson")]
pub struct Relationship {
    /// The object the relation is on.
    pub resource: ObjectRef,
    /// The relation (always a direct relation of the resource's type in a valid vault).
    pub relation: RelationName,
    /// Who has the relation.
    pub subject: SubjectRef,
    /// Unix time in milliseconds from which the relationship no longer holds; `None` means
    /// it never expires. Evaluation ignores a relationship when `now_ms >= expires_at_ms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at_ms: Option<u64>,
}

impl Relationship {
    /// Builds a relationship that never expires.
    pub fn new(resource: ObjectRef, relation: RelationName, subject: SubjectRef) -> Self {
        Self {
            resource,
            relation,
            subject,
            expires_at_ms: None,
        }
    }

    /// Returns the relationship with an expiry time.
    pub fn with_expiry(mut self, expires_at_ms: u64) -> Self {
        self.expires_at_ms = Some(expires_at_ms);
        self
    }

    /// Whether the relationship holds at `now_ms` (it has not expired).
    pub fn is_live_at(&self, now_ms: u64) -> bool {
        self.expires_at_ms
            .is_none_or(|expires_at_ms| now_ms < expires_at_ms)
    }

    /// Parses the text form (see the module documentation).
    pub fn parse(text: &str) -> Result<Self, ParseError> {
        let missing = |separator, expected| ParseError::MissingSeparator {
            what: "relationship",
            value: quote(text),
            separator,
            expected,
        };
        let (body, expires_at_ms) = split_expiry(text)?;
        let (resource_text, rest) = body
            .split_once('#')
            .ok_or(missing('#', "expected resource#relation@subject"))?;
        let (relation_text, subject_text) = rest
            .split_once('@')
            .ok_or(missing('@', "expected resource#relation@subject"))?;
        let resource = ObjectRef::parse_as(resource_text, Role::Resource)?;
        let relation = RelationName::new_as(relation_text, Part::Relation)?;
        let subject = SubjectRef::parse(subject_text)?;
        Ok(Self {
            resource,
            relation,
            subject,
            expires_at_ms,
        })
    }
}

/// The JSON shape before validation, so that errors name the resource or subject part.
#[derive(Deserialize)]
struct RelationshipJson {
    resource: String,
    relation: String,
    subject: String,
    #[serde(default)]
    expires_at_ms: Option<u64>,
}

impl TryFrom<RelationshipJson> for Relationship {
    type Error = ParseError;

    fn try_from(json: RelationshipJson) -> Result<Self, Self::Error> {
        Ok(Self {
            resource: ObjectRef::parse_as(&json.resource, Role::Resource)?,
            relation: RelationName::new_as(json.relation, Part::Relation)?,
            subject: SubjectRef::parse(&json.subject)?,
            expires_at_ms: json.expires_at_ms,
        })
    }
}

fn split_expiry(text: &str) -> Result<(&str, Option<u64>), ParseError> {
    let Some(start) = text.find(EXPIRY_PREFIX) else {
        return Ok((text, None));
    };
    let invalid = || ParseError::InvalidExpiry {
        value: quote(&text[start..]),
    };
    let digits = text[start + EXPIRY_PREFIX.len()..]
        .strip_suffix(']')
        .ok_or_else(invalid)?;
    if digits.is_empty() || !digits.bytes().all(|byte| byte.is_ascii_digit()) {
        return Err(invalid());
    }
    let expires_at_ms = digits.parse::<u64>().map_err(|_| invalid())?;
    Ok((&text[..start], Some(expires_at_ms)))
}

impl FromStr for Relationship {
    type Err = ParseError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text)
    }
}

impl fmt::Display for Relationship {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            formatter,
            "{}#{}@{}",
            self.resource, self.relation, self.subject
        )?;
        if let Some(expires_at_ms) = self.expires_at_ms {
            write!(formatter, "{EXPIRY_PREFIX}{expires_at_ms}]")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_forms_parse() {
        for text in [
            "document:1#viewer@user:ann",
            "document:1#viewer@group:eng#member",
            "document:1#viewer@user:*",
            "document:1#viewer@user:ann@example.com",
            "document:a|b/c+d=#viewer@user:ann[expires_at_ms:1700000000000]",
        ] {
            let relationship = Relationship::parse(text).unwrap();
            assert_eq!(relationship.to_string(), text);
        }
    }

    #[test]
    fn errors_name_the_part() {
        let cases = [
            ("Doc:1#viewer@user:ann", "resource type `Doc`: must match"),
            ("doc:1#Viewer@user:ann", "relation `Viewer`: must match"),
            ("doc:*#viewer@user:ann", "resource id `*`"),
            ("doc:1#viewer@user:", "subject id: must not be empty"),
            (
                "doc:1viewer@user:ann",
                "relationship `doc:1viewer@user:ann`: missing `#`",
            ),
            ("doc:1#viewer", "relationship `doc:1#viewer`: missing `@`"),
            (
                "doc:1#viewer@user:a[expires_at_ms:x]",
                "expiry `[expires_at_ms:x]`",
            ),
        ];
        for (text, message) in cases {
            let error = Relationship::parse(text).unwrap_err().to_string();
            assert!(error.starts_with(message), "{text}: {error}");
        }
    }

    #[test]
    fn json_form_matches_the_corpus() {
        let text = r#"{"resource":"doc:1","relation":"viewer","subject":"group:eng#member"}"#;
        let relationship: Relationship = serde_json::from_str(text).unwrap();
        assert_eq!(relationship.to_string(), "doc:1#viewer@group:eng#member");
        assert_eq!(serde_json::to_string(&relationship).unwrap(), text);
        let expiring = relationship.with_expiry(5);
        let json = serde_json::to_string(&expiring).unwrap();
        assert!(json.ends_with(r#""expires_at_ms":5}"#), "{json}");
        assert!(!expiring.is_live_at(5));
        assert!(expiring.is_live_at(4));
    }

    #[test]
    fn json_errors_name_the_part() {
        let text = r#"{"resource":"Doc:1","relation":"viewer","subject":"user:ann"}"#;
        let error = serde_json::from_str::<Relationship>(text)
            .unwrap_err()
            .to_string();
        assert!(error.contains("resource type `Doc`"), "{error}");
    }
}

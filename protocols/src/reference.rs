//! Object and subject references: `type:id`, `type:id#relation` and `type:*`.

use std::fmt;
use std::str::FromStr;

use crate::error::{quote, ParseError, Part};
use crate::ids::{ObjectId, RelationName, TypeName};

/// Where a reference appears, which decides how its parts are named in errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// A standalone object (`object type`, `object id`).
    Object,
    /// The resource of a relationship or request (`resource type`, `resource id`).
    Resource,
    /// The subject of a relationship or request (`subject type`, `subject id`).
    Subject,
}

impl Role {
    fn type_part(self) -> Part {
        match self {
            Role::Object => Part::ObjectType,
            Role::Resource => Part::ResourceType,
            Role::Subject => Part::SubjectType,
        }
    }

    fn id_part(self) -> Part {
        match self {
            Role::Object => Part::ObjectId,
            Role::Resource => Part::ResourceId,
            Role::Subject => Part::SubjectId,
        }
    }
}

/// An object: `document:readme`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectRef {
    /// The object's type.
    pub object_type: TypeName,
    /// The object's id within its type.
    pub object_id: ObjectId,
}

impl ObjectRef {
    /// Builds a reference from validated parts.
    pub fn new(object_type: TypeName, object_id: ObjectId) -> Self {
        Self {
            object_type,
            object_id,
        }
    }

    /// Parses `type:id`, naming the parts after `role` in errors.
    pub fn parse_as(text: &str, role: Role) -> Result<Self, ParseError> {
        let Some((type_text, id_text)) = text.split_once(':') else {
            return Err(ParseError::MissingSeparator {
                what: "object",
                value: quote(text),
                separator: ':',
                expected: "expected type:id",
            });
        };
        let object_type = TypeName::new_as(type_text, role.type_part())?;
        let object_id = ObjectId::new_as(id_text, role.id_part())?;
        Ok(Self {
            object_type,
            object_id,
        })
    }
}

impl FromStr for ObjectRef {
    type Err = ParseError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse_as(text, Role::Object)
    }
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}:{}", self.object_type, self.object_id)
    }
}

/// A subject: an object, a userset or a wildcard.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SubjectRef {
    /// One object: `user:ann`.
    Object(ObjectRef),
    /// Every subject that has `relation` on `object`: `group:eng#member`.
    Userset {
        /// The object whose relation is the set.
        object: ObjectRef,
        /// The relation on that object.
        relation: RelationName,
    },
    /// Every object of a type, including ids that appear in no relationship: `user:*`.
    Wildcard(TypeName),
}

impl SubjectRef {
    /// The subject's type (the object's type for usersets).
    pub fn subject_type(&self) -> &TypeName {
        match self {
            SubjectRef::Object(object) | SubjectRef::Userset { object, .. } => &object.object_type,
            SubjectRef::Wildcard(type_name) => type_name,
        }
    }

    /// Parses `type:id`, `type:id#relation` or `type:*`, naming the parts as subject parts.
    pub fn parse(text: &str) -> Result<Self, ParseError> {
        let Some((type_text, rest)) = text.split_once(':') else {
            return Err(ParseError::MissingSeparator {
                what: "subject",
                value: quote(text),
                separator: ':',
                expected: "expected type:id, type:id#relation or type:*",
            });
        };
        let subject_type = TypeName::new_as(type_text, Part::SubjectType)?;
        if rest == "*" {
            return Ok(SubjectRef::Wildcard(subject_type));
        }
        match rest.split_once('#') {
            None => {
                let object_id = ObjectId::new_as(rest, Part::SubjectId)?;
                Ok(SubjectRef::Object(ObjectRef::new(subject_type, object_id)))
            }
            Some((id_text, relation_text)) => {
                let object_id = ObjectId::new_as(id_text, Part::SubjectId)?;
                let relation = RelationName::new_as(relation_text, Part::SubjectRelation)?;
                let object = ObjectRef::new(subject_type, object_id);
                Ok(SubjectRef::Userset { object, relation })
            }
        }
    }
}

impl FromStr for SubjectRef {
    type Err = ParseError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text)
    }
}

impl fmt::Display for SubjectRef {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SubjectRef::Object(object) => write!(formatter, "{object}"),
            SubjectRef::Userset { object, relation } => write!(formatter, "{object}#{relation}"),
            SubjectRef::Wildcard(type_name) => write!(formatter, "{type_name}:*"),
        }
    }
}

impl From<ObjectRef> for SubjectRef {
    fn from(object: ObjectRef) -> Self {
        SubjectRef::Object(object)
    }
}

macro_rules! serde_as_text {
    ($name:ident) => {
        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = std::borrow::Cow::<str>::deserialize(deserializer)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

serde_as_text!(ObjectRef);
serde_as_text!(SubjectRef);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_parse_in_three_shapes() {
        assert!(matches!(
            SubjectRef::parse("user:ann"),
            Ok(SubjectRef::Object(_))
        ));
        assert!(matches!(
            SubjectRef::parse("group:eng#member"),
            Ok(SubjectRef::Userset { .. })
        ));
        assert!(matches!(
            SubjectRef::parse("user:*"),
            Ok(SubjectRef::Wildcard(_))
        ));
        assert_eq!(SubjectRef::parse("user:*").unwrap().to_string(), "user:*");
    }

    #[test]
    fn bad_subjects_name_the_part() {
        let cases = [
            ("user", "subject `user`: missing `:`"),
            (":ann", "subject type: must not be empty"),
            ("user:", "subject id: must not be empty"),
            ("group:eng#", "subject relation: must not be empty"),
            ("group:eng#Member", "subject relation `Member`"),
            ("group:*#member", "subject id `*`: a wildcard"),
            ("User:ann", "subject type `User`"),
        ];
        for (text, message) in cases {
            let error = SubjectRef::parse(text).unwrap_err().to_string();
            assert!(error.starts_with(message), "{text}: {error}");
        }
    }

    #[test]
    fn objects_refuse_wildcards_and_usersets() {
        assert!(ObjectRef::parse_as("doc:*", Role::Resource).is_err());
        let error = ObjectRef::parse_as("doc:1#viewer", Role::Resource).unwrap_err();
        assert!(
            error.to_string().starts_with("resource id `1#viewer`"),
            "{error}"
        );
    }
}

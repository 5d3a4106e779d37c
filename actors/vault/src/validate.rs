//! Validation of relationships against a compiled schema.

use inferadb_ipl::{AllowedSubject, CompiledSchema, RelationRef};
use inferadb_protocols::{Relationship, SubjectRef};

use crate::error::{Field, WriteError};

/// How an allowed subject shape is written: `T`, `T:*` or `T#rel`.
pub fn allowed_text(schema: &CompiledSchema, allowed: &AllowedSubject) -> String {
    match *allowed {
        AllowedSubject::Object(type_id) => schema.type_name(type_id).to_owned(),
        AllowedSubject::Wildcard(type_id) => format!("{}:*", schema.type_name(type_id)),
        AllowedSubject::Userset(type_id, relation_id) => format!(
            "{}#{}",
            schema.type_name(type_id),
            schema.relation_name(type_id, relation_id)
        ),
    }
}

/// Checks that `relationship` (mutation `index` of a batch) may be stored under `schema`:
/// known resource type, a direct relation of it, a known subject type (and userset
/// relation) and a subject shape the relation allows.
pub fn validate_relationship(
    schema: &CompiledSchema,
    index: usize,
    relationship: &Relationship,
) -> Result<(), WriteError> {
    let resource_type = relationship.resource.object_type.as_ref();
    let type_id = schema
        .type_id(resource_type)
        .ok_or_else(|| WriteError::UnknownType {
            index,
            field: Field::ResourceType,
            name: resource_type.to_owned(),
        })?;
    let relation = relationship.relation.as_ref();
    let relation_id =
        schema
            .relation_id(type_id, relation)
            .ok_or_else(|| WriteError::UnknownRelation {
                index,
                field: Field::Relation,
                type_name: resource_type.to_owned(),
                name: relation.to_owned(),
            })?;
    let definition = schema.relation(RelationRef::new(type_id, relation_id));
    if !definition.is_direct() {
        return Err(WriteError::NotADirectRelation {
            index,
            type_name: resource_type.to_owned(),
            relation: relation.to_owned(),
        });
    }
    let shape = subject_shape(schema, index, &relationship.subject)?;
    if definition.allowed_subjects().contains(&shape) {
        return Ok(());
    }
    Err(WriteError::SubjectNotAllowed {
        index,
        subject: relationship.subject.to_string(),
        allowed: definition
            .allowed_subjects()
            .iter()
            .map(|allowed| allowed_text(schema, allowed))
            .collect(),
    })
}

/// The shape of a subject in the schema's ids; unknown types and relations are errors.
fn subject_shape(
    schema: &CompiledSchema,
    index: usize,
    subject: &SubjectRef,
) -> Result<AllowedSubject, WriteError> {
    let subject_type = subject.subject_type().as_ref();
    let type_id = schema
        .type_id(subject_type)
        .ok_or_else(|| WriteError::UnknownType {
            index,
            field: Field::SubjectType,
            name: subject_type.to_owned(),
        })?;
    Ok(match subject {
        SubjectRef::Object(_) => AllowedSubject::Object(type_id),
        SubjectRef::Wildcard(_) => AllowedSubject::Wildcard(type_id),
        SubjectRef::Userset { relation, .. } => {
            let relation_id = schema
                .relation_id(type_id, relation.as_ref())
                .ok_or_else(|| WriteError::UnknownRelation {
                    index,
                    field: Field::SubjectRelation,
                    type_name: subject_type.to_owned(),
                    name: relation.to_string(),
                })?;
            AllowedSubject::Userset(type_id, relation_id)
        }
    })
}

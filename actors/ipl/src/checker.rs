//! The checker: runs resolution and stratification over a parsed schema, computes the
//! warnings, and assembles the [`CompiledSchema`].

use std::collections::HashSet;

use crate::ast::Schema;
use crate::compiled::{
    AllowedSubject, CompiledSchema, Dependency, DependencyKind, RelationKeyword, RelationRef,
    SchemaFingerprint, SubjectUse, TypeDefinition,
};
use crate::diagnostics::{push_capped, Diagnostic, DiagnosticKind, Diagnostics};
use crate::limits::ERRORS_MAX;
use crate::resolver::{resolve, Edge, Resolution};
use crate::{formatter, stratification, Compiled};

/// Checks a parsed schema and compiles it, or returns every error found.
pub(crate) fn check(source: &str, schema: &Schema) -> Result<Compiled, Diagnostics> {
    let mut errors = Vec::new();
    let mut resolution = resolve(source, schema, &mut errors);
    let mut warnings = unused_relation_warnings(source, &resolution);
    warnings.extend(non_snake_case_warnings(source, schema));
    warnings.sort_by_key(|diagnostic| diagnostic.span);
    warnings.truncate(ERRORS_MAX);
    if !errors.is_empty() {
        return Err(crate::finish(errors, warnings));
    }
    stratification::add_forbid_edges(
        &resolution.types,
        &resolution.name_spans,
        &mut resolution.edges,
    );
    stratification::check(source, &resolution.types, &resolution.edges, &mut errors);
    if !errors.is_empty() {
        return Err(crate::finish(errors, warnings));
    }
    let schema = assemble(resolution, formatter::format(schema));
    Ok(Compiled { schema, warnings })
}

/// The unused-relation rule: warn about a direct relation declared with `relation` that no
/// expression, arrow or userset subject refers to, in a type that declares at least one
/// `permission`. When a type has permissions, those are its interface, and a direct relation
/// nothing reads is dead data. A type without permissions is checked through its relations,
/// so they are never reported; permissions, computed relations and forbids never are either.
fn unused_relation_warnings(source: &str, resolution: &Resolution) -> Vec<Diagnostic> {
    let referenced: HashSet<RelationRef> = resolution
        .edges
        .iter()
        .map(|edge| edge.dependency.to)
        .collect();
    let mut warnings = Vec::new();
    for definition in &resolution.types {
        if !definition
            .relations
            .iter()
            .any(|relation| relation.is_permission())
        {
            continue;
        }
        for relation in &definition.relations {
            let address = RelationRef::new(definition.id, relation.id);
            if relation.keyword != RelationKeyword::Relation
                || !relation.is_direct()
                || referenced.contains(&address)
            {
                continue;
            }
            let message = format!(
                "unused relation `{}#{}`: no permission, arrow or userset refers to it, while \
                 type `{}` exposes permissions; refer to it from a permission or remove it",
                definition.name, relation.name, definition.name
            );
            let span = resolution.name_spans[definition.id.index()][relation.id.index()];
            push_capped(
                &mut warnings,
                DiagnosticKind::UnusedRelation,
                message,
                span,
                source,
            );
        }
    }
    warnings
}

/// Warns once per declared type or member name that has uppercase letters (references to it
/// are not reported again). Such names are accepted for compatibility with models converted
/// from OpenFGA, but lowercase snake_case is the convention.
fn non_snake_case_warnings(source: &str, schema: &Schema) -> Vec<Diagnostic> {
    let declared = schema.types.iter().flat_map(|declaration| {
        std::iter::once(&declaration.name)
            .chain(declaration.members.iter().map(|member| &member.name))
    });
    declared
        .filter(|name| name.text.bytes().any(|byte| byte.is_ascii_uppercase()))
        .take(ERRORS_MAX)
        .map(|name| {
            let message = format!(
                "name `{}` has uppercase letters: it is accepted, but names are conventionally \
                 lowercase snake_case (`{}`)",
                name.text,
                snake_case(&name.text)
            );
            Diagnostic::new(DiagnosticKind::NonSnakeCaseName, message, name.span, source)
        })
        .collect()
}

fn snake_case(text: &str) -> String {
    let mut output = String::with_capacity(text.len() + 4);
    for character in text.chars() {
        if character.is_ascii_uppercase() {
            output.push('_');
            output.push(character.to_ascii_lowercase());
        } else {
            output.push(character);
        }
    }
    output
}

/// Builds the compiled schema and its indexes from a resolution that passed every check.
fn assemble(resolution: Resolution, canonical_text: String) -> CompiledSchema {
    let Resolution {
        types,
        types_by_name,
        edges,
        ..
    } = resolution;
    let mut dependencies = empty_table(&types);
    let mut dependents = empty_table(&types);
    let mut seen = HashSet::new();
    for Edge { dependency, .. } in edges {
        // One relation can name another several times (`a | (a & b)`); one edge is enough.
        if !seen.insert(dependency) {
            continue;
        }
        let Dependency { from, to, .. } = dependency;
        dependencies[from.type_id.index()][from.relation_id.index()].push(dependency);
        dependents[to.type_id.index()][to.relation_id.index()].push(dependency);
    }
    let subject_uses = subject_uses(&types);
    let fingerprint = SchemaFingerprint::of_canonical_text(&canonical_text);
    debug_assert!(dependencies
        .iter()
        .flatten()
        .flatten()
        .all(|dependency| dependency.kind != DependencyKind::Forbid || dependency.negative));
    CompiledSchema {
        types,
        types_by_name,
        dependencies,
        dependents,
        subject_uses,
        canonical_text,
        fingerprint,
    }
}

fn empty_table(types: &[TypeDefinition]) -> Vec<Vec<Vec<Dependency>>> {
    types
        .iter()
        .map(|definition| vec![Vec::new(); definition.relations.len()])
        .collect()
}

fn subject_uses(types: &[TypeDefinition]) -> Vec<Vec<SubjectUse>> {
    let mut uses = vec![Vec::new(); types.len()];
    for definition in types {
        for relation in &definition.relations {
            for subject in relation.allowed_subjects() {
                let subject_type: &mut Vec<SubjectUse> = &mut uses[subject.type_id().index()];
                subject_type.push(SubjectUse {
                    relation: RelationRef::new(definition.id, relation.id),
                    subject: *subject,
                });
            }
        }
    }
    debug_assert!(uses.iter().flatten().all(|subject_use| !matches!(
        subject_use.subject,
        AllowedSubject::Userset(type_id, _) if type_id.index() >= types.len()
    )));
    uses
}

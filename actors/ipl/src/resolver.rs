//! The resolver: turns names into ids, checks every reference, and records the dependency
//! edges (with the span that created each) for the stratification check and the compiled
//! schema's graph.

use std::collections::HashMap;

use crate::ast::{Expression, Member, MemberBody, Name, Schema, Subject, SubjectShape};
use crate::compiled::{
    AllowedSubject, Arrow, ArrowTarget, Dependency, DependencyKind, Expr, RelationDefinition,
    RelationId, RelationKeyword, RelationKind, RelationRef, TypeDefinition, TypeId,
};
use crate::diagnostics::{push_capped, Diagnostic, DiagnosticKind, Span};
use crate::limits::ERRORS_MAX;

/// A dependency edge and the source text that created it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Edge {
    pub(crate) dependency: Dependency,
    pub(crate) span: Span,
}

/// The resolved schema, before the stratification check.
pub(crate) struct Resolution {
    pub(crate) types: Vec<TypeDefinition>,
    pub(crate) types_by_name: HashMap<String, TypeId>,
    pub(crate) edges: Vec<Edge>,
    /// The span of each relation's name, indexed `[type][relation]`.
    pub(crate) name_spans: Vec<Vec<Span>>,
}

/// Resolves `schema`, reporting every unresolvable reference into `errors`.
pub(crate) fn resolve(source: &str, schema: &Schema, errors: &mut Vec<Diagnostic>) -> Resolution {
    let mut resolver = Resolver {
        source,
        errors,
        resolution: Resolution {
            types: Vec::new(),
            types_by_name: HashMap::new(),
            edges: Vec::new(),
            name_spans: Vec::new(),
        },
    };
    let members = resolver.declare(schema);
    for (relation, member) in &members {
        if let MemberBody::Direct(subjects) = &member.body {
            let allowed = resolver.subjects(*relation, subjects);
            resolver.definition_mut(*relation).kind = RelationKind::Direct { allowed };
        }
    }
    // Mark every computed member before resolving any expression, so that an arrow over a
    // computed relation declared later is rejected instead of seeing the direct-relation
    // placeholder. The empty union is replaced below; it survives only when resolving the
    // body reported an error, and then the schema does not compile.
    for (relation, member) in &members {
        if let MemberBody::Computed(_) = &member.body {
            resolver.definition_mut(*relation).kind =
                RelationKind::Computed(Expr::Union(Vec::new()));
        }
    }
    // Expressions last: arrows need the allowed subjects of every direct relation.
    for (relation, member) in &members {
        if let MemberBody::Computed(expression) = &member.body {
            if let Some(resolved) = resolver.expression(*relation, expression, false) {
                resolver.definition_mut(*relation).kind = RelationKind::Computed(resolved);
            }
        }
    }
    resolver.resolution
}

struct Resolver<'input> {
    source: &'input str,
    errors: &'input mut Vec<Diagnostic>,
    resolution: Resolution,
}

impl<'input> Resolver<'input> {
    fn report(&mut self, kind: DiagnosticKind, message: String, span: Span) {
        push_capped(self.errors, kind, message, span, self.source);
    }

    fn definition_mut(&mut self, relation: RelationRef) -> &mut RelationDefinition {
        &mut self.resolution.types[relation.type_id.index()].relations[relation.relation_id.index()]
    }

    fn type_name(&self, type_id: TypeId) -> &str {
        &self.resolution.types[type_id.index()].name
    }

    /// `type#relation`, for messages.
    fn display(&self, relation: RelationRef) -> String {
        let definition = &self.resolution.types[relation.type_id.index()];
        format!(
            "{}#{}",
            definition.name,
            definition.relation(relation.relation_id).name
        )
    }

    /// Whether no further error would be kept: lets costly messages be skipped.
    fn is_full(&self) -> bool {
        self.errors.len() >= ERRORS_MAX
    }

    fn line_of(&self, span: Span) -> usize {
        self.source[..span.start.min(self.source.len())]
            .matches('\n')
            .count()
            + 1
    }

    /// Declares every type and member (first declaration wins), returning the members to
    /// resolve.
    fn declare<'schema>(&mut self, schema: &'schema Schema) -> Vec<(RelationRef, &'schema Member)> {
        let mut members = Vec::new();
        let mut type_spans: HashMap<&str, Span> = HashMap::new();
        for declaration in &schema.types {
            let name = &declaration.name;
            if let Some(first) = type_spans.get(name.text.as_str()) {
                if self.is_full() {
                    continue;
                }
                let message = format!(
                    "duplicate type `{}`: it is already declared at line {}; type names are \
                     unique in a schema",
                    name.text,
                    self.line_of(*first)
                );
                self.report(DiagnosticKind::DuplicateType, message, name.span);
                continue;
            }
            type_spans.insert(&name.text, name.span);
            let type_id = TypeId(self.resolution.types.len() as u32);
            self.resolution
                .types_by_name
                .insert(name.text.clone(), type_id);
            self.resolution.types.push(TypeDefinition {
                id: type_id,
                name: name.text.clone(),
                relations: Vec::new(),
                forbids: Vec::new(),
                relations_by_name: HashMap::new(),
            });
            self.resolution.name_spans.push(Vec::new());
            for member in &declaration.members {
                if let Some(relation_id) = self.declare_member(type_id, member) {
                    members.push((RelationRef::new(type_id, relation_id), member));
                }
            }
        }
        members
    }

    fn declare_member(&mut self, type_id: TypeId, member: &Member) -> Option<RelationId> {
        let name = &member.name;
        let definition = &self.resolution.types[type_id.index()];
        if let Some(first) = definition.relation_id(&name.text) {
            if self.is_full() {
                return None;
            }
            let first_span = self.resolution.name_spans[type_id.index()][first.index()];
            let message = format!(
                "duplicate relation `{}` in type `{}`: it is already declared at line {}; \
                 relations, permissions and forbids of a type share one name space",
                name.text,
                definition.name,
                self.line_of(first_span)
            );
            self.report(DiagnosticKind::DuplicateRelation, message, name.span);
            return None;
        }
        let definition = &mut self.resolution.types[type_id.index()];
        let relation_id = RelationId(definition.relations.len() as u32);
        definition.relations.push(RelationDefinition {
            name: name.text.clone(),
            id: relation_id,
            keyword: member.keyword,
            // Replaced once every name is declared; an unresolvable body leaves it empty,
            // which only happens when an error is reported.
            kind: RelationKind::Direct {
                allowed: Vec::new(),
            },
        });
        definition
            .relations_by_name
            .insert(name.text.clone(), relation_id);
        if member.keyword == RelationKeyword::Forbid {
            definition.forbids.push(relation_id);
        }
        self.resolution.name_spans[type_id.index()].push(name.span);
        Some(relation_id)
    }

    fn lookup_type(&mut self, name: &Name, context: &str) -> Option<TypeId> {
        let found = self.resolution.types_by_name.get(&name.text).copied();
        if found.is_none() {
            let message = format!(
                "unknown type `{}` {context}: no `type {}` is declared in this schema",
                name.text, name.text
            );
            self.report(DiagnosticKind::UnknownType, message, name.span);
        }
        found
    }

    fn subjects(&mut self, relation: RelationRef, subjects: &[Subject]) -> Vec<AllowedSubject> {
        let context = format!("in the subject types of `{}`", self.display(relation));
        let mut allowed: Vec<AllowedSubject> = Vec::new();
        for subject in subjects {
            let Some(resolved) = self.subject(relation, subject, &context) else {
                continue;
            };
            if allowed.contains(&resolved) {
                let message = format!(
                    "duplicate subject type {} {context}: list each subject type once",
                    self.describe_subject(subject)
                );
                self.report(
                    DiagnosticKind::DuplicateSubject,
                    message,
                    subject.type_name.span,
                );
                continue;
            }
            allowed.push(resolved);
        }
        allowed
    }

    fn describe_subject(&self, subject: &Subject) -> String {
        match &subject.shape {
            SubjectShape::Object => format!("`{}`", subject.type_name.text),
            SubjectShape::Userset(relation) => {
                format!("`{}#{}`", subject.type_name.text, relation.text)
            }
            SubjectShape::Wildcard => format!("`{}:*`", subject.type_name.text),
        }
    }

    fn subject(
        &mut self,
        relation: RelationRef,
        subject: &Subject,
        context: &str,
    ) -> Option<AllowedSubject> {
        let type_id = self.lookup_type(&subject.type_name, context)?;
        match &subject.shape {
            SubjectShape::Object => Some(AllowedSubject::Object(type_id)),
            SubjectShape::Wildcard => Some(AllowedSubject::Wildcard(type_id)),
            SubjectShape::Userset(name) => {
                let Some(target) = self.resolution.types[type_id.index()].relation_id(&name.text)
                else {
                    let message = format!(
                        "unknown relation `{}` in subject `{}#{}` {context}: type `{}` has no \
                         relation, permission or forbid named `{}`",
                        name.text,
                        subject.type_name.text,
                        name.text,
                        subject.type_name.text,
                        name.text
                    );
                    self.report(DiagnosticKind::UnknownSubjectRelation, message, name.span);
                    return None;
                };
                let to = RelationRef::new(type_id, target);
                self.edge(
                    relation,
                    to,
                    DependencyKind::DirectUserset,
                    false,
                    name.span,
                );
                Some(AllowedSubject::Userset(type_id, target))
            }
        }
    }

    fn edge(
        &mut self,
        from: RelationRef,
        to: RelationRef,
        kind: DependencyKind,
        negative: bool,
        span: Span,
    ) {
        let dependency = Dependency {
            from,
            to,
            kind,
            negative,
        };
        self.resolution.edges.push(Edge { dependency, span });
    }

    /// Resolves an expression of `relation`; `negative` is true inside the right side of `-`.
    fn expression(
        &mut self,
        relation: RelationRef,
        expression: &Expression,
        negative: bool,
    ) -> Option<Expr> {
        match expression {
            Expression::Relation(name) => {
                let to = self.same_type_relation(relation, name, "")?;
                self.edge(relation, to, DependencyKind::Computed, negative, name.span);
                Some(Expr::Relation(to.relation_id))
            }
            Expression::Union(operands) => {
                let operands = self.operands(relation, operands, negative)?;
                Some(Expr::Union(flatten(operands, |expr| {
                    matches!(expr, Expr::Union(_))
                })))
            }
            Expression::Intersection(operands) => {
                let operands = self.operands(relation, operands, negative)?;
                let is_intersection = |expr: &Expr| matches!(expr, Expr::Intersection(_));
                Some(Expr::Intersection(flatten(operands, is_intersection)))
            }
            Expression::Exclusion(base, subtract) => {
                let base = self.expression(relation, base, negative);
                let subtract = self.expression(relation, subtract, true);
                Some(Expr::Exclusion {
                    base: Box::new(base?),
                    subtract: Box::new(subtract?),
                })
            }
            Expression::Arrow { tupleset, target } => self
                .arrow(relation, tupleset, target, negative)
                .map(Expr::Arrow),
            Expression::Module(name) => {
                if name.text.is_empty() {
                    let message = format!(
                        "empty module name in `{}`: `module(\"name\")` needs the name of a \
                         WASM module",
                        self.display(relation)
                    );
                    self.report(DiagnosticKind::EmptyModuleName, message, name.span);
                    return None;
                }
                Some(Expr::Module(name.text.clone()))
            }
        }
    }

    /// Resolves every operand (reporting all errors), or `None` if any failed.
    fn operands(
        &mut self,
        relation: RelationRef,
        operands: &[Expression],
        negative: bool,
    ) -> Option<Vec<Expr>> {
        let resolved: Vec<Option<Expr>> = operands
            .iter()
            .map(|operand| self.expression(relation, operand, negative))
            .collect();
        resolved.into_iter().collect()
    }

    fn same_type_relation(
        &mut self,
        relation: RelationRef,
        name: &Name,
        role: &str,
    ) -> Option<RelationRef> {
        let type_id = relation.type_id;
        if let Some(found) = self.resolution.types[type_id.index()].relation_id(&name.text) {
            return Some(RelationRef::new(type_id, found));
        }
        let message = format!(
            "unknown relation `{}`{role} in `{}`: type `{}` has no relation, permission or \
             forbid named `{}`",
            name.text,
            self.display(relation),
            self.type_name(type_id),
            name.text
        );
        self.report(DiagnosticKind::UnknownRelation, message, name.span);
        None
    }
}

/// Merges operands that are themselves the same operator into one chain (same meaning).
fn flatten(operands: Vec<Expr>, same_operator: impl Fn(&Expr) -> bool) -> Vec<Expr> {
    let mut flat = Vec::with_capacity(operands.len());
    for operand in operands {
        if same_operator(&operand) {
            match operand {
                Expr::Union(inner) | Expr::Intersection(inner) => flat.extend(inner),
                other => flat.push(other),
            }
        } else {
            flat.push(operand);
        }
    }
    flat
}

impl Resolver<'_> {
    fn arrow(
        &mut self,
        relation: RelationRef,
        tupleset: &Name,
        target: &Name,
        negative: bool,
    ) -> Option<Arrow> {
        let arrow_text = format!("{}->{}", tupleset.text, target.text);
        let role = format!(" (left side of `{arrow_text}`)");
        let tupleset_ref = self.same_type_relation(relation, tupleset, &role)?;
        self.edge(
            relation,
            tupleset_ref,
            DependencyKind::ArrowTupleset,
            negative,
            tupleset.span,
        );
        let subject_types =
            self.tupleset_subject_types(tupleset_ref, &arrow_text, tupleset.span)?;
        let mut targets = Vec::with_capacity(subject_types.len());
        for subject_type in subject_types {
            let found = self.resolution.types[subject_type.index()].relation_id(&target.text);
            if let Some(found) = found {
                let to = RelationRef::new(subject_type, found);
                let kind = DependencyKind::Arrow {
                    tupleset: tupleset_ref.relation_id,
                };
                self.edge(relation, to, kind, negative, target.span);
            }
            targets.push(ArrowTarget {
                subject_type,
                relation: found,
            });
        }
        if targets
            .iter()
            .all(|arrow_target| arrow_target.relation.is_none())
        {
            self.report_missing_target(tupleset_ref, &targets, &arrow_text, target);
            return None;
        }
        let target_name = target.text.clone();
        Some(Arrow {
            tupleset: tupleset_ref.relation_id,
            target_name,
            targets,
        })
    }

    fn report_missing_target(
        &mut self,
        tupleset: RelationRef,
        targets: &[ArrowTarget],
        arrow_text: &str,
        target: &Name,
    ) {
        let names: Vec<String> = targets
            .iter()
            .map(|arrow_target| format!("`{}`", self.type_name(arrow_target.subject_type)))
            .collect();
        let message = format!(
            "arrow `{arrow_text}` has no target: none of the subject types of `{}` ({}) has a \
             relation named `{}`; `a->b` needs `b` on at least one of `a`'s subject types",
            self.display(tupleset),
            names.join(", "),
            target.text
        );
        self.report(DiagnosticKind::ArrowTargetMissing, message, target.span);
    }

    /// The object types an arrow's tupleset points to, or `None` (reported) if the tupleset is
    /// not a direct relation of plain objects.
    fn tupleset_subject_types(
        &mut self,
        tupleset: RelationRef,
        arrow_text: &str,
        span: Span,
    ) -> Option<Vec<TypeId>> {
        let definition = &self.resolution.types[tupleset.type_id.index()].relations
            [tupleset.relation_id.index()];
        let RelationKind::Direct { allowed } = &definition.kind else {
            let message = format!(
                "arrow `{arrow_text}` follows `{}`, which is computed: the left side of an \
                 arrow must be a direct relation (`relation r: type | ...`) of plain objects",
                self.display(tupleset)
            );
            self.report(DiagnosticKind::ArrowOverComputed, message, span);
            return None;
        };
        let mut types = Vec::with_capacity(allowed.len());
        let mut offending = Vec::new();
        for subject in allowed.clone() {
            match subject {
                AllowedSubject::Object(type_id) => types.push(type_id),
                AllowedSubject::Userset(type_id, relation_id) => offending.push(format!(
                    "`{}`",
                    self.display(RelationRef::new(type_id, relation_id))
                )),
                AllowedSubject::Wildcard(type_id) => {
                    offending.push(format!("`{}:*`", self.type_name(type_id)));
                }
            }
        }
        if offending.is_empty() {
            // No types at all means every subject type was unknown, which is already reported.
            return (!types.is_empty()).then_some(types);
        }
        let message = format!(
            "arrow `{arrow_text}` follows `{}`, which allows {}: the left side of an arrow must \
             allow only plain object types, not usersets (`type#relation`) or wildcards \
             (`type:*`)",
            self.display(tupleset),
            offending.join(" and ")
        );
        self.report(DiagnosticKind::ArrowOverNonObject, message, span);
        None
    }
}

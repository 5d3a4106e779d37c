//! [`SchemaIndex`]: a compiled schema plus the lookup tables the evaluator needs on its hot
//! path (names to ids with a fast hash, subject shapes of direct relations, and the reverse
//! edges that lookup-resources walks from a subject back to the permissions it feeds).

use std::fmt::Write as _;
use std::sync::Arc;

use inferadb_ipl::{
    AllowedSubject, CompiledSchema, Expr, RelationId, RelationKind, RelationRef, TypeId,
};
use smallvec::SmallVec;

use crate::hashing::FxHashMap;

/// The subject shapes a direct relation accepts, split by shape.
#[derive(Clone, Debug, Default)]
pub(crate) struct DirectPlan {
    /// `T`: plain objects of these types.
    pub objects: SmallVec<[TypeId; 4]>,
    /// `T:*`: wildcards of these types.
    pub wildcards: SmallVec<[TypeId; 2]>,
    /// `T#r`: usersets of these relations.
    pub usersets: SmallVec<[(TypeId, RelationId); 4]>,
}

/// What the evaluator needs to know about one relation besides its definition.
#[derive(Clone, Debug)]
pub(crate) struct RelationPlan {
    /// Subject shapes, for direct relations.
    pub direct: Option<DirectPlan>,
    /// Whether forbids of the type deny this relation (computed, not a forbid, and the type
    /// has at least one forbid).
    pub filtered_by_forbids: bool,
}

/// How membership flows backwards along a [`ReverseEdge`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ReverseVia {
    /// `from` is direct and stores the userset `to` as a subject: read resources of
    /// `from` whose subject is the userset.
    DirectUserset,
    /// `from` (same type as `to`) names `to` in its expression: same object.
    Computed,
    /// `from` has `tupleset->to`: read resources of `from`'s type whose `tupleset` holds the
    /// object.
    Arrow {
        /// The tupleset relation on `from`'s type.
        tupleset: RelationId,
    },
}

/// What still decides `from` once a subject is known to be in `to`, when the use of `to`
/// sits under unions and the left sides of exclusions only: if no subtracted expression
/// holds (and no forbid, when `from` is filtered), `from` holds. (If one does hold, `from`
/// may still hold through another operand, so the candidate then gets a full check.)
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Residual {
    /// The subtracted expressions (on `from`'s type) between the root and the use.
    pub subtracts: Vec<Expr>,
    /// Whether `from` is filtered by its type's forbids.
    pub forbids: bool,
}

impl Residual {
    /// Whether nothing is left to verify: membership in `to` implies membership in `from`.
    pub fn is_exact(&self) -> bool {
        self.subtracts.is_empty() && !self.forbids
    }
}

/// A positive dependency seen from its target: if a subject is in `to` (the relation that
/// owns the edge list) of some object, it may be in `from` of a related object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ReverseEdge {
    /// The relation that may gain the subject.
    pub from: RelationRef,
    /// How to find the related objects.
    pub via: ReverseVia,
    /// What is left to verify, or `None` when the use sits under an intersection and only a
    /// full check decides.
    pub residual: Option<Arc<Residual>>,
}

/// How much an edge's residual leaves to verify: 0 nothing, 1 some subtractions, 2 all.
fn residual_rank(residual: Option<&Arc<Residual>>) -> u8 {
    match residual {
        Some(residual) if residual.is_exact() => 0,
        Some(_) => 1,
        None => 2,
    }
}

/// A compiled schema and the evaluator's tables over it. Immutable; share it behind an `Arc`.
#[derive(Debug)]
pub struct SchemaIndex {
    compiled: Arc<CompiledSchema>,
    type_ids: FxHashMap<Box<str>, TypeId>,
    relation_ids: Vec<FxHashMap<Box<str>, RelationId>>,
    plans: Vec<Vec<RelationPlan>>,
    reverse_edges: Vec<Vec<Vec<ReverseEdge>>>,
    /// Direct relations accepting plain objects of each type, indexed by subject type.
    object_uses: Vec<Vec<RelationRef>>,
    /// Direct relations accepting the wildcard of each type, indexed by subject type.
    wildcard_uses: Vec<Vec<RelationRef>>,
    /// Per relation, a module through which it can hold for a subject that no
    /// relationship names (so lookups cannot enumerate it).
    generating_modules: Vec<Vec<Option<String>>>,
    /// Per relation, a module anywhere in what its evaluation can reach (expressions,
    /// arrow targets, stored usersets, forbids), whether or not it can grant on its own.
    reachable_modules: Vec<Vec<Option<String>>>,
    /// Per relation, whether some direct relation stores usersets of it (`group#member`):
    /// its sub-problems recur across requests, so they are worth sharing.
    userset_targets: Vec<Vec<bool>>,
    fingerprint: u64,
}

impl SchemaIndex {
    /// Builds the tables for a compiled schema.
    pub fn new(compiled: Arc<CompiledSchema>) -> Self {
        let mut type_ids = FxHashMap::default();
        let mut relation_ids = Vec::new();
        let mut plans = Vec::new();
        for definition in compiled.types() {
            type_ids.insert(Box::from(definition.name.as_str()), definition.id);
            let names = definition.relations.iter();
            relation_ids.push(
                names
                    .map(|relation| (Box::from(relation.name.as_str()), relation.id))
                    .collect(),
            );
            let has_forbids = !definition.forbids.is_empty();
            plans.push(
                definition
                    .relations
                    .iter()
                    .map(|relation| RelationPlan {
                        direct: direct_plan(relation.allowed_subjects(), relation.is_direct()),
                        filtered_by_forbids: has_forbids && relation.is_filtered_by_forbids(),
                    })
                    .collect(),
            );
        }
        let reverse_edges = build_reverse_edges(&compiled, &plans);
        let (object_uses, wildcard_uses) = subject_uses(&compiled, &plans);
        let fingerprint = compiled.fingerprint().as_u64();
        let generating_modules = generating_modules(&compiled);
        let reachable_modules = reachable_modules(&compiled);
        let userset_targets = userset_targets(&compiled);
        Self {
            userset_targets,
            generating_modules,
            reachable_modules,
            compiled,
            type_ids,
            relation_ids,
            plans,
            reverse_edges,
            object_uses,
            wildcard_uses,
            fingerprint,
        }
    }

    /// The compiled schema.
    pub fn compiled(&self) -> &CompiledSchema {
        &self.compiled
    }

    /// The first 8 bytes of the schema fingerprint, for cache keys.
    pub fn fingerprint(&self) -> u64 {
        self.fingerprint
    }

    /// The id of the type named `name`.
    pub fn type_id(&self, name: &str) -> Option<TypeId> {
        self.type_ids.get(name).copied()
    }

    /// The id of relation `name` on `type_id`.
    pub fn relation_id(&self, type_id: TypeId, name: &str) -> Option<RelationId> {
        self.relation_ids.get(type_id.index())?.get(name).copied()
    }

    /// The name of a type.
    pub fn type_name(&self, type_id: TypeId) -> &str {
        self.compiled.type_name(type_id)
    }

    /// The name of a relation.
    pub fn relation_name(&self, type_id: TypeId, relation_id: RelationId) -> &str {
        self.compiled.relation_name(type_id, relation_id)
    }

    pub(crate) fn plan(&self, type_id: TypeId, relation_id: RelationId) -> &RelationPlan {
        &self.plans[type_id.index()][relation_id.index()]
    }

    /// The direct relations that accept plain objects of `subject_type`.
    pub(crate) fn object_uses(&self, subject_type: TypeId) -> &[RelationRef] {
        &self.object_uses[subject_type.index()]
    }

    /// The direct relations that accept the wildcard `subject_type:*`.
    pub(crate) fn wildcard_uses(&self, subject_type: TypeId) -> &[RelationRef] {
        &self.wildcard_uses[subject_type.index()]
    }

    pub(crate) fn reverse_edges(&self, relation: RelationRef) -> &[ReverseEdge] {
        &self.reverse_edges[relation.type_id.index()][relation.relation_id.index()]
    }

    /// The module that can grant `relation` to a subject no relationship names, if any:
    /// such a relation cannot be enumerated by lookups (a union with `module("m")` holds for
    /// objects no relationship names, directly, through a stored userset, or an arrow).
    pub fn generating_module(&self, relation: RelationRef) -> Option<String> {
        self.generating_modules[relation.type_id.index()][relation.relation_id.index()].clone()
    }

    /// A module the evaluation of `relation` can consult, if any: its answer may differ
    /// per subject id, so lookup subjects cannot stand the wildcard in for unnamed ids.
    pub fn reachable_module(&self, relation: RelationRef) -> Option<String> {
        self.reachable_modules[relation.type_id.index()][relation.relation_id.index()].clone()
    }

    /// Whether some direct relation stores usersets of `type_id#relation_id`.
    pub(crate) fn is_userset_target(&self, type_id: u32, relation_id: u32) -> bool {
        self.userset_targets
            .get(type_id as usize)
            .and_then(|relations| relations.get(relation_id as usize))
            .copied()
            .unwrap_or(false)
    }

    /// The expression as IPL text, for traces (`(edit | viewer | parent->view) - blocked`).
    pub fn expression_text(&self, type_id: TypeId, expression: &Expr) -> String {
        let mut text = String::new();
        self.write_expression(type_id, expression, &mut text, false);
        text
    }

    fn write_expression(
        &self,
        type_id: TypeId,
        expression: &Expr,
        text: &mut String,
        nested: bool,
    ) {
        let operands = |children: &[Expr], separator: &str, text: &mut String| {
            if nested {
                text.push('(');
            }
            for (position, child) in children.iter().enumerate() {
                if position > 0 {
                    text.push_str(separator);
                }
                self.write_expression(type_id, child, text, true);
            }
            if nested {
                text.push(')');
            }
        };
        match expression {
            Expr::Relation(relation_id) => text.push_str(self.relation_name(type_id, *relation_id)),
            Expr::Union(children) => operands(children, " | ", text),
            Expr::Intersection(children) => operands(children, " & ", text),
            Expr::Exclusion { base, subtract } => {
                operands(&[(**base).clone(), (**subtract).clone()], " - ", text);
            }
            Expr::Arrow(arrow) => {
                let tupleset = self.relation_name(type_id, arrow.tupleset);
                let _ = write!(text, "{tupleset}->{}", arrow.target_name);
            }
            Expr::Module(name) => {
                let _ = write!(text, "module({name:?})");
            }
        }
    }
}

fn direct_plan(allowed: &[AllowedSubject], is_direct: bool) -> Option<DirectPlan> {
    if !is_direct {
        return None;
    }
    let mut plan = DirectPlan::default();
    for subject in allowed {
        match *subject {
            AllowedSubject::Object(type_id) => plan.objects.push(type_id),
            AllowedSubject::Wildcard(type_id) => plan.wildcards.push(type_id),
            AllowedSubject::Userset(type_id, relation_id) => {
                plan.usersets.push((type_id, relation_id))
            }
        }
    }
    Some(plan)
}

type UsesByType = Vec<Vec<RelationRef>>;

fn subject_uses(
    compiled: &CompiledSchema,
    plans: &[Vec<RelationPlan>],
) -> (UsesByType, UsesByType) {
    let mut object_uses = vec![Vec::new(); compiled.type_count()];
    let mut wildcard_uses = vec![Vec::new(); compiled.type_count()];
    for definition in compiled.types() {
        for relation in &definition.relations {
            let Some(plan) = &plans[definition.id.index()][relation.id.index()].direct else {
                continue;
            };
            let relation_ref = RelationRef::new(definition.id, relation.id);
            for type_id in &plan.objects {
                object_uses[type_id.index()].push(relation_ref);
            }
            for type_id in &plan.wildcards {
                wildcard_uses[type_id.index()].push(relation_ref);
            }
        }
    }
    (object_uses, wildcard_uses)
}

fn build_reverse_edges(
    compiled: &CompiledSchema,
    plans: &[Vec<RelationPlan>],
) -> Vec<Vec<Vec<ReverseEdge>>> {
    let mut edges: Vec<Vec<Vec<ReverseEdge>>> = compiled
        .types()
        .iter()
        .map(|definition| vec![Vec::new(); definition.relations.len()])
        .collect();
    let mut add = |to: RelationRef, edge: ReverseEdge| {
        let list = &mut edges[to.type_id.index()][to.relation_id.index()];
        if let Some(existing) = list
            .iter_mut()
            .find(|existing| existing.from == edge.from && existing.via == edge.via)
        {
            if residual_rank(edge.residual.as_ref()) < residual_rank(existing.residual.as_ref()) {
                existing.residual = edge.residual;
            }
        } else {
            list.push(edge);
        }
    };
    for definition in compiled.types() {
        for relation in &definition.relations {
            let from = RelationRef::new(definition.id, relation.id);
            match &relation.kind {
                RelationKind::Direct { allowed } => {
                    for subject in allowed {
                        if let AllowedSubject::Userset(type_id, relation_id) = *subject {
                            let edge = ReverseEdge {
                                from,
                                via: ReverseVia::DirectUserset,
                                residual: Some(Arc::new(Residual::default())),
                            };
                            add(RelationRef::new(type_id, relation_id), edge);
                        }
                    }
                }
                RelationKind::Computed(expression) => {
                    let forbids =
                        plans[definition.id.index()][relation.id.index()].filtered_by_forbids;
                    let residual = Residual {
                        subtracts: Vec::new(),
                        forbids,
                    };
                    collect_expression_edges(from, expression, Some(residual), &mut add);
                }
            }
        }
    }
    edges
}

fn collect_expression_edges(
    from: RelationRef,
    expression: &Expr,
    residual: Option<Residual>,
    add: &mut impl FnMut(RelationRef, ReverseEdge),
) {
    let shared = |residual: &Option<Residual>| residual.clone().map(Arc::new);
    match expression {
        Expr::Relation(relation_id) => {
            let edge = ReverseEdge {
                from,
                via: ReverseVia::Computed,
                residual: shared(&residual),
            };
            add(RelationRef::new(from.type_id, *relation_id), edge);
        }
        Expr::Union(children) => {
            for child in children {
                collect_expression_edges(from, child, residual.clone(), add);
            }
        }
        Expr::Intersection(children) => {
            for child in children {
                collect_expression_edges(from, child, None, add);
            }
        }
        // The subtracted side only removes subjects: it is no source of candidates.
        Expr::Exclusion { base, subtract } => {
            let residual = residual.map(|mut residual| {
                residual.subtracts.push((**subtract).clone());
                residual
            });
            collect_expression_edges(from, base, residual, add);
        }
        Expr::Arrow(arrow) => {
            for target in &arrow.targets {
                if let Some(relation_id) = target.relation {
                    let via = ReverseVia::Arrow {
                        tupleset: arrow.tupleset,
                    };
                    let edge = ReverseEdge {
                        from,
                        via,
                        residual: shared(&residual),
                    };
                    add(RelationRef::new(target.subject_type, relation_id), edge);
                }
            }
        }
        Expr::Module(_) => {}
    }
}

/// For every relation, whether some direct relation allows usersets of it.
fn userset_targets(compiled: &CompiledSchema) -> Vec<Vec<bool>> {
    let mut table: Vec<Vec<bool>> = compiled
        .types()
        .iter()
        .map(|definition| vec![false; definition.relations.len()])
        .collect();
    for relation in compiled.relation_refs() {
        for allowed in compiled.relation(relation).allowed_subjects() {
            if let AllowedSubject::Userset(type_id, relation_id) = allowed {
                table[type_id.index()][relation_id.index()] = true;
            }
        }
    }
    table
}

/// Which relations a module can make hold without a relationship naming the subject: the
/// least fixpoint of "generates", iterated over every relation until nothing changes (values
/// only go from `None` to `Some`, so at most one round per relation). Cycles therefore get
/// the fixpoint answer, and a relation reached along several paths gets the same answer
/// on each.
fn generating_modules(compiled: &CompiledSchema) -> Vec<Vec<Option<String>>> {
    let mut table: Vec<Vec<Option<String>>> = compiled
        .types()
        .iter()
        .map(|definition| vec![None; definition.relations.len()])
        .collect();
    loop {
        let mut changed = false;
        for relation in compiled.relation_refs() {
            if table[relation.type_id.index()][relation.relation_id.index()].is_some() {
                continue;
            }
            let found = generating_module_of_relation(compiled, &table, relation);
            if found.is_some() {
                table[relation.type_id.index()][relation.relation_id.index()] = found;
                changed = true;
            }
        }
        if !changed {
            return table;
        }
    }
}

fn generating_module_of_relation(
    compiled: &CompiledSchema,
    table: &[Vec<Option<String>>],
    relation: RelationRef,
) -> Option<String> {
    let lookup = |relation: RelationRef| {
        table[relation.type_id.index()][relation.relation_id.index()].clone()
    };
    let definition = compiled.relation(relation);
    match definition.expression() {
        Some(expression) => generating_module_of_expression(relation.type_id, expression, &lookup),
        // A stored userset subject whose relation a module generates holds for subjects
        // no relationship names.
        None => definition
            .allowed_subjects()
            .iter()
            .find_map(|allowed| match allowed {
                AllowedSubject::Userset(type_id, relation_id) => {
                    lookup(RelationRef::new(*type_id, *relation_id))
                }
                AllowedSubject::Object(_) | AllowedSubject::Wildcard(_) => None,
            }),
    }
}

fn generating_module_of_expression(
    type_id: TypeId,
    expression: &Expr,
    lookup: &dyn Fn(RelationRef) -> Option<String>,
) -> Option<String> {
    match expression {
        Expr::Module(name) => Some(name.clone()),
        Expr::Relation(relation_id) => lookup(RelationRef::new(type_id, *relation_id)),
        Expr::Union(children) => children
            .iter()
            .find_map(|child| generating_module_of_expression(type_id, child, lookup)),
        Expr::Intersection(children) => {
            let mut found = None;
            for child in children {
                found = Some(generating_module_of_expression(type_id, child, lookup)?);
            }
            found
        }
        Expr::Exclusion { base, .. } => generating_module_of_expression(type_id, base, lookup),
        Expr::Arrow(arrow) => arrow
            .targets
            .iter()
            .find_map(|target| lookup(RelationRef::new(target.subject_type, target.relation?))),
    }
}

/// For every relation, a module reachable from it (see [`SchemaIndex::reachable_module`]).
fn reachable_modules(compiled: &CompiledSchema) -> Vec<Vec<Option<String>>> {
    compiled
        .types()
        .iter()
        .map(|definition| {
            (0..definition.relations.len())
                .map(|index| {
                    let start = RelationRef::new(definition.id, RelationId(index as u32));
                    first_reachable_module(compiled, start)
                })
                .collect()
        })
        .collect()
}

/// Depth-first search over everything `start`'s evaluation can read.
fn first_reachable_module(compiled: &CompiledSchema, start: RelationRef) -> Option<String> {
    let mut visited = crate::hashing::FxHashSet::default();
    let mut stack = vec![start];
    while let Some(relation) = stack.pop() {
        if !visited.insert(relation) {
            continue;
        }
        let definition = compiled.relation(relation);
        if let Some(expression) = definition.expression() {
            if let Some(module) = push_expression(relation.type_id, expression, &mut stack) {
                return Some(module);
            }
        }
        for allowed in definition.allowed_subjects() {
            if let AllowedSubject::Userset(type_id, relation_id) = allowed {
                stack.push(RelationRef::new(*type_id, *relation_id));
            }
        }
        if definition.is_filtered_by_forbids() {
            let forbids = compiled.type_definition(relation.type_id).forbids.iter();
            stack.extend(forbids.map(|forbid| RelationRef::new(relation.type_id, *forbid)));
        }
    }
    None
}

/// Pushes the relations `expression` reads; returns a module it calls directly.
fn push_expression(
    type_id: TypeId,
    expression: &Expr,
    stack: &mut Vec<RelationRef>,
) -> Option<String> {
    match expression {
        Expr::Module(name) => Some(name.clone()),
        Expr::Relation(relation_id) => {
            stack.push(RelationRef::new(type_id, *relation_id));
            None
        }
        Expr::Union(children) | Expr::Intersection(children) => children
            .iter()
            .find_map(|child| push_expression(type_id, child, stack)),
        Expr::Exclusion { base, subtract } => push_expression(type_id, base, stack)
            .or_else(|| push_expression(type_id, subtract, stack)),
        Expr::Arrow(arrow) => {
            stack.push(RelationRef::new(type_id, arrow.tupleset));
            let targets = arrow
                .targets
                .iter()
                .filter_map(|target| Some(RelationRef::new(target.subject_type, target.relation?)));
            stack.extend(targets);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(source: &str) -> SchemaIndex {
        SchemaIndex::new(Arc::new(inferadb_ipl::compile(source).unwrap().schema))
    }

    const SCHEMA: &str = "
        type user {}
        type group { relation member: user | group#member }
        type doc {
            relation viewer: user | group#member
            relation blocked: user
            relation reviewer: user
            permission view = viewer - blocked
            permission review = viewer & reviewer
            permission open = view | module(\"m\")
        }
    ";

    #[test]
    fn reverse_edges_carry_what_is_left_to_verify() {
        let schema = index(SCHEMA);
        let viewer = schema.compiled().resolve("doc", "viewer").unwrap();
        let view = schema.compiled().resolve("doc", "view").unwrap();
        let review = schema.compiled().resolve("doc", "review").unwrap();
        let edges = schema.reverse_edges(viewer);
        let to_view = edges.iter().find(|edge| edge.from == view).unwrap();
        let residual = to_view.residual.as_ref().unwrap();
        assert_eq!(
            residual.subtracts.len(),
            1,
            "view = viewer - blocked leaves `blocked`"
        );
        assert!(!residual.is_exact());
        let to_review = edges.iter().find(|edge| edge.from == review).unwrap();
        assert!(
            to_review.residual.is_none(),
            "an intersection needs a full check"
        );
        let member = schema.compiled().resolve("group", "member").unwrap();
        let into_viewer = schema
            .reverse_edges(member)
            .iter()
            .find(|edge| edge.from == viewer)
            .unwrap();
        assert!(
            into_viewer.residual.as_ref().unwrap().is_exact(),
            "a stored userset is exact"
        );
        assert!(schema
            .reverse_edges(schema.compiled().resolve("doc", "blocked").unwrap())
            .is_empty());
    }

    #[test]
    fn modules_in_unions_make_relations_not_enumerable() {
        let schema = index(SCHEMA);
        let open = schema.compiled().resolve("doc", "open").unwrap();
        let view = schema.compiled().resolve("doc", "view").unwrap();
        assert_eq!(schema.generating_module(open), Some("m".to_owned()));
        assert_eq!(schema.generating_module(view), None);
    }

    #[test]
    fn expressions_render_as_ipl() {
        let schema = index(SCHEMA);
        let view = schema.compiled().resolve("doc", "view").unwrap();
        let expression = schema.compiled().relation(view).expression().unwrap();
        assert_eq!(
            schema.expression_text(view.type_id, expression),
            "viewer - blocked"
        );
    }
}

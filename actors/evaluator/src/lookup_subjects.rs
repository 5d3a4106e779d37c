//! Lookup subjects: every object of a type (or every userset `type:id#relation`) that has
//! a permission on one resource.
//!
//! A forward walk from `resource#permission` collects every object of the wanted type that
//! any reachable relationship names (on every branch, subtracted and forbid ones included,
//! so that denied subjects are found too), then a check decides each candidate, sharing one
//! memo. An object that no reachable relationship names behaves exactly like the wildcard
//! subject `type:*` (only wildcard relationships can match it), so one check of `type:*`
//! answers for all of them at once. Usersets have no such stand-in (a wildcard grants
//! objects only): the candidates are the usersets of the wanted type and relation the walk
//! reaches (stored as subjects, or the resource itself), each decided by a check.

use std::ops::ControlFlow;

use inferadb_ipl::{Expr, RelationId, RelationKind, RelationRef, TypeId};
use inferadb_protocols::{ObjectRef, RelationName, Revision, SubjectRef, TypeName};

use crate::error::EvaluationError;
use crate::evaluator::{Evaluator, ReadView};
use crate::hashing::{FxHashMap, FxHashSet};
use crate::reader::{ObjectKey, RelationshipReader, SubjectFilter};
use crate::schema::SchemaIndex;
use crate::state::{NodeKey, RequestState};

/// Which objects of `subject_type` have `permission` on `resource`?
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LookupSubjectsRequest {
    /// The resource.
    pub resource: ObjectRef,
    /// A permission or relation of the resource's type.
    pub permission: RelationName,
    /// The type of the subjects to return.
    pub subject_type: TypeName,
    /// With a relation, return usersets `subject_type:id#relation` instead of objects.
    pub subject_relation: Option<RelationName>,
}

/// The answer to a [`LookupSubjectsRequest`]: a subject of the type has the permission iff
/// it is in `subject_ids`, or `wildcard` is true and it is not in `excluded_ids`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LookupSubjectsResponse {
    /// Ids named by relationships that have the permission, ascending (for a userset
    /// lookup, the ids of the usersets that have it).
    pub subject_ids: Vec<String>,
    /// Whether every other id of the type (including ids no relationship names) has it;
    /// always false for a userset lookup.
    pub wildcard: bool,
    /// When `wildcard`: the ids named by relationships that do not have it, ascending.
    pub excluded_ids: Vec<String>,
    /// The revision the answer was computed at.
    pub revision: Revision,
}

type WalkNode = (TypeId, RelationId, u32);

impl Evaluator {
    /// Lookup subjects (see the module documentation for the method).
    pub fn lookup_subjects<R: RelationshipReader + ?Sized>(
        &self,
        view: &ReadView<'_, R>,
        request: &LookupSubjectsRequest,
    ) -> Result<LookupSubjectsResponse, EvaluationError> {
        let (type_id, relation_id) = self.resolve(&request.resource, &request.permission)?;
        let target = RelationRef::new(type_id, relation_id);
        self.ensure_enumerable(target)?;
        // The wildcard's answer stands in for every id no relationship names; a module
        // may answer differently per id, so such a relation cannot be enumerated here.
        if let Some(module) = self.schema.reachable_module(target) {
            return Err(self.not_enumerable(target, module));
        }
        let (subject_type, subject_relation) = self.subject_shape(request)?;
        let mut state = RequestState::new(self.limits.lookup_work_budget);
        let object = state.objects.intern(request.resource.object_id.as_str());
        let mut walk = ForwardWalk {
            schema: &self.schema,
            subject_type,
            subject_relation,
            found: FxHashSet::default(),
        };
        walk.run(view, &mut state, (type_id, relation_id, object))?;
        let mut found: Vec<String> = walk.found.into_iter().collect();
        found.sort_unstable();
        if let Some(relation) = &request.subject_relation {
            let target = (type_id, relation_id, object);
            let subject_ids =
                self.decide_usersets(view, &mut state, request, relation, found, target)?;
            self.record(&state);
            return Ok(LookupSubjectsResponse {
                subject_ids,
                wildcard: false,
                excluded_ids: Vec::new(),
                revision: view.revision,
            });
        }
        let decide =
            |subject: SubjectRef, state: &mut RequestState| -> Result<bool, EvaluationError> {
                let subject = state.subject(&self.schema, &subject)?;
                let key = NodeKey {
                    subject,
                    type_id: type_id.0,
                    relation: relation_id.0,
                    object,
                };
                self.engine(view, state).check(key)
            };
        let wildcard = decide(
            SubjectRef::Wildcard(request.subject_type.clone()),
            &mut state,
        )?;
        let (mut subject_ids, mut excluded_ids) = (Vec::new(), Vec::new());
        for id in found {
            let object = ObjectRef::new(
                request.subject_type.clone(),
                id.parse().map_err(|_| invalid_id(&id))?,
            );
            if decide(SubjectRef::Object(object), &mut state)? {
                subject_ids.push(id);
            } else if wildcard {
                excluded_ids.push(id);
            }
        }
        self.record(&state);
        let revision = view.revision;
        Ok(LookupSubjectsResponse {
            subject_ids,
            wildcard,
            excluded_ids,
            revision,
        })
    }
}

impl Evaluator {
    /// The candidate usersets `subject_type:id#relation` that hold on the target.
    fn decide_usersets<R: RelationshipReader + ?Sized>(
        &self,
        view: &ReadView<'_, R>,
        state: &mut RequestState,
        request: &LookupSubjectsRequest,
        relation: &RelationName,
        candidates: Vec<String>,
        (type_id, relation_id, object): WalkNode,
    ) -> Result<Vec<String>, EvaluationError> {
        let mut subject_ids = Vec::new();
        for id in candidates {
            let userset = SubjectRef::Userset {
                object: ObjectRef::new(
                    request.subject_type.clone(),
                    id.parse().map_err(|_| invalid_id(&id))?,
                ),
                relation: relation.clone(),
            };
            let subject = state.subject(&self.schema, &userset)?;
            let key = NodeKey {
                subject,
                type_id: type_id.0,
                relation: relation_id.0,
                object,
            };
            if self.engine(view, state).check(key)? {
                subject_ids.push(id);
            }
        }
        Ok(subject_ids)
    }

    /// The wanted subject type and, for a userset lookup, its relation.
    fn subject_shape(
        &self,
        request: &LookupSubjectsRequest,
    ) -> Result<(TypeId, Option<RelationId>), EvaluationError> {
        let subject_type = self
            .schema
            .type_id(request.subject_type.as_str())
            .ok_or_else(|| EvaluationError::UnknownType {
                part: "subject type",
                name: request.subject_type.to_string(),
            })?;
        let Some(relation) = &request.subject_relation else {
            return Ok((subject_type, None));
        };
        self.schema
            .relation_id(subject_type, relation.as_str())
            .map(|relation_id| (subject_type, Some(relation_id)))
            .ok_or_else(|| EvaluationError::UnknownRelation {
                part: "subject relation",
                type_name: request.subject_type.to_string(),
                relation: relation.to_string(),
            })
    }
}

fn invalid_id(id: &str) -> EvaluationError {
    EvaluationError::Read(crate::reader::ReadError {
        message: format!("stored subject id `{id}` is not a valid id"),
    })
}

/// The forward walk collecting candidate subject ids.
struct ForwardWalk<'a> {
    schema: &'a SchemaIndex,
    subject_type: TypeId,
    /// For a userset lookup, the wanted relation: reached usersets of `subject_type` with
    /// it are the candidates, instead of objects.
    subject_relation: Option<RelationId>,
    found: FxHashSet<String>,
}

impl ForwardWalk<'_> {
    fn run<R: RelationshipReader + ?Sized>(
        &mut self,
        view: &ReadView<'_, R>,
        state: &mut RequestState,
        start: WalkNode,
    ) -> Result<(), EvaluationError> {
        let mut reached: FxHashMap<WalkNode, ()> = FxHashMap::default();
        let mut pending = vec![start];
        while let Some(node) = pending.pop() {
            if reached.insert(node, ()).is_some() {
                continue;
            }
            state.spend(1)?;
            let (type_id, relation_id, object) = node;
            // A reached userset of the wanted shape (the start included: a userset always
            // has itself) is a candidate.
            if type_id == self.subject_type && Some(relation_id) == self.subject_relation {
                self.found.insert(state.objects.name(object).to_string());
            }
            let definition = self
                .schema
                .compiled()
                .type_definition(type_id)
                .relation(relation_id);
            match &definition.kind {
                RelationKind::Direct { .. } => self.direct(view, state, node, &mut pending)?,
                RelationKind::Computed(expression) => {
                    self.expression(view, state, node, expression, &mut pending)?;
                    if definition.is_filtered_by_forbids() {
                        for forbid in self.schema.compiled().forbids(type_id) {
                            pending.push((type_id, *forbid, object));
                        }
                    }
                }
            }
        }
        Ok(())
    }

    fn direct<R: RelationshipReader + ?Sized>(
        &mut self,
        view: &ReadView<'_, R>,
        state: &mut RequestState,
        (type_id, relation_id, object): WalkNode,
        pending: &mut Vec<WalkNode>,
    ) -> Result<(), EvaluationError> {
        let schema = self.schema;
        let resource_id = state.objects.name(object);
        let resource = ObjectKey {
            object_type: schema.type_name(type_id),
            object_id: &resource_id,
        };
        let relation = schema.relation_name(type_id, relation_id);
        let mut visited = 0_u64;
        let found = &mut self.found;
        let subject_type = self.subject_type;
        let want_objects = self.subject_relation.is_none();
        let objects = &mut state.objects;
        let mut visit = |subject: crate::reader::SubjectKey<'_>, _expires_at_ms: Option<u64>| {
            visited += 1;
            let Some(type_id) = schema.type_id(subject.subject_type) else {
                return ControlFlow::Continue(());
            };
            match subject.subject_relation {
                None if want_objects && type_id == subject_type && !subject.is_wildcard() => {
                    found.insert(subject.subject_id.to_owned());
                }
                None => {}
                Some(relation) => {
                    if let Some(relation_id) = schema.relation_id(type_id, relation) {
                        pending.push((type_id, relation_id, objects.intern(subject.subject_id)));
                    }
                }
            }
            ControlFlow::Continue(())
        };
        view.reader.for_each_subject(
            resource,
            relation,
            SubjectFilter::All,
            view.now_ms,
            &mut visit,
        )?;
        state.spend(1 + visited)
    }

    fn expression<R: RelationshipReader + ?Sized>(
        &mut self,
        view: &ReadView<'_, R>,
        state: &mut RequestState,
        (type_id, relation_id, object): WalkNode,
        expression: &Expr,
        pending: &mut Vec<WalkNode>,
    ) -> Result<(), EvaluationError> {
        match expression {
            Expr::Relation(relation_id) => pending.push((type_id, *relation_id, object)),
            Expr::Union(children) | Expr::Intersection(children) => {
                for child in children {
                    self.expression(view, state, (type_id, relation_id, object), child, pending)?;
                }
            }
            Expr::Exclusion { base, subtract } => {
                self.expression(view, state, (type_id, relation_id, object), base, pending)?;
                self.expression(
                    view,
                    state,
                    (type_id, relation_id, object),
                    subtract,
                    pending,
                )?;
            }
            Expr::Arrow(arrow) => {
                // The tupleset is a direct relation: walking it reads its objects (and
                // collects those of the wanted type); the targets are walked from there.
                let schema = self.schema;
                let resource_id = state.objects.name(object);
                let resource = ObjectKey {
                    object_type: schema.type_name(type_id),
                    object_id: &resource_id,
                };
                let tupleset = schema.relation_name(type_id, arrow.tupleset);
                let mut targets = Vec::new();
                let objects = &mut state.objects;
                let mut visit = |subject: crate::reader::SubjectKey<'_>,
                                 _expires_at_ms: Option<u64>| {
                    let target = schema
                        .type_id(subject.subject_type)
                        .and_then(|subject_type| {
                            Some((subject_type, arrow.target_on(subject_type)?))
                        });
                    if let (Some((subject_type, target)), false) = (target, subject.is_wildcard()) {
                        targets.push((subject_type, target, objects.intern(subject.subject_id)));
                    }
                    ControlFlow::Continue(())
                };
                view.reader.for_each_subject(
                    resource,
                    tupleset,
                    SubjectFilter::Objects,
                    view.now_ms,
                    &mut visit,
                )?;
                state.spend(1 + targets.len() as u64)?;
                pending.extend(targets);
            }
            Expr::Module(_) => {}
        }
        Ok(())
    }
}

//! Explain: the evaluation trace of one check, as a tree a person can read: which rules were
//! tried, in which order, and which relationships decided the answer.
//!
//! The trace evaluates like check (same short-circuits, same operators) but without a memo,
//! cutting cycles on the current path (a cut contributes nothing, which gives the least
//! fixpoint; see [`crate::ExpandTree`]). It is a diagnostic tool: its cost grows with the
//! number of paths, bounded by [`crate::EvaluatorLimits::tree_nodes_max`].

use std::fmt;
use std::ops::ControlFlow;
use std::rc::Rc;

use inferadb_ipl::{Expr, RelationId, RelationKind, TypeId};
use inferadb_protocols::Revision;

use crate::error::EvaluationError;
use crate::evaluator::{CheckRequest, Evaluator, ReadView};
use crate::hashing::{FxHashMap, FxHashSet};
use crate::module::ModuleRequest;
use crate::reader::{ObjectKey, RelationshipReader, SubjectFilter, SubjectKey, WILDCARD_ID};
use crate::schema::SchemaIndex;
use crate::state::{RequestState, Subject, SubjectShape};

/// The trace of one check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Explanation {
    /// The decision (always equal to what check answers).
    pub allowed: bool,
    /// How it was reached.
    pub trace: TraceNode,
    /// The revision the trace was computed at.
    pub revision: Revision,
}

/// One step of a trace and the steps it took to decide.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceNode {
    /// What this step decided.
    pub allowed: bool,
    /// The step.
    pub step: TraceStep,
    /// The steps evaluated to decide it, in order (later operands that short-circuiting
    /// skipped are absent).
    pub children: Vec<TraceNode>,
}

/// What one trace step evaluated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TraceStep {
    /// A relation of an object, with its rule (`direct` or the expression).
    Relation {
        /// The object, `type:id`.
        resource: String,
        /// The relation's name.
        relation: String,
        /// `direct` or the expression as IPL text.
        rule: String,
    },
    /// The subject is this very userset (a userset always contains itself).
    UsersetItself,
    /// A relationship granting the subject directly (or through a wildcard).
    Relationship {
        /// The relationship, in text form.
        relationship: String,
    },
    /// No relationship of a direct relation names the subject (or its wildcard).
    NoDirectRelationship,
    /// An operator: `union`, `intersection`, `exclusion`, or the union of the usersets
    /// stored in a direct relation.
    Operator {
        /// Its name.
        operator: &'static str,
    },
    /// An arrow, `tupleset->target`.
    Arrow {
        /// The arrow as IPL text.
        text: String,
    },
    /// A policy module's decision.
    Module {
        /// The module's name.
        name: String,
    },
    /// A forbid of the type: when it holds, the relation is denied.
    Forbid {
        /// The forbid's name.
        name: String,
    },
    /// A relation whose answer was already explained earlier in this trace.
    Repeated {
        /// The object, `type:id`.
        resource: String,
        /// The relation's name.
        relation: String,
    },
    /// A relation already being evaluated on this path: contributes nothing here.
    Cycle {
        /// The object, `type:id`.
        resource: String,
        /// The relation's name.
        relation: String,
    },
}

impl fmt::Display for TraceStep {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TraceStep::Relation {
                resource,
                relation,
                rule,
            } => write!(formatter, "{resource}#{relation} = {rule}"),
            TraceStep::UsersetItself => formatter.write_str("the subject is this userset"),
            TraceStep::Relationship { relationship } => {
                write!(formatter, "relationship {relationship}")
            }
            TraceStep::NoDirectRelationship => {
                formatter.write_str("no relationship names the subject")
            }
            TraceStep::Operator { operator } => formatter.write_str(operator),
            TraceStep::Arrow { text } => formatter.write_str(text),
            TraceStep::Module { name } => write!(formatter, "module({name:?})"),
            TraceStep::Forbid { name } => write!(formatter, "forbid {name} (denies when it holds)"),
            TraceStep::Repeated { resource, relation } => {
                write!(formatter, "{resource}#{relation}: explained above")
            }
            TraceStep::Cycle { resource, relation } => {
                write!(formatter, "{resource}#{relation}: cycle, adds nothing")
            }
        }
    }
}

impl TraceNode {
    fn leaf(allowed: bool, step: TraceStep) -> Self {
        Self {
            allowed,
            step,
            children: Vec::new(),
        }
    }

    fn write_indented(&self, formatter: &mut fmt::Formatter<'_>, depth: usize) -> fmt::Result {
        let verdict = if self.allowed {
            "[allowed]"
        } else {
            "[denied] "
        };
        writeln!(formatter, "{}{verdict} {}", "  ".repeat(depth), self.step)?;
        for child in &self.children {
            child.write_indented(formatter, depth + 1)?;
        }
        Ok(())
    }
}

impl fmt::Display for TraceNode {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write_indented(formatter, 0)
    }
}

impl fmt::Display for Explanation {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.trace.fmt(formatter)
    }
}

impl Evaluator {
    /// Checks `request` and returns the trace of the evaluation.
    pub fn explain<R: RelationshipReader + ?Sized>(
        &self,
        view: &ReadView<'_, R>,
        request: &CheckRequest,
    ) -> Result<Explanation, EvaluationError> {
        let (type_id, relation_id) = self.resolve(&request.resource, &request.permission)?;
        let mut state = RequestState::new(self.limits.lookup_work_budget);
        let subject = state.subject(&self.schema, &request.subject)?;
        let subject = Rc::clone(&state.subjects[subject as usize]);
        let mut explainer = Explainer {
            evaluator: self,
            schema: &self.schema,
            state,
            subject,
            path: FxHashSet::default(),
            explained: FxHashMap::default(),
            cycle_cuts: 0,
            nodes: 0,
        };
        let trace = explainer.relation(
            view,
            type_id,
            relation_id,
            request.resource.object_id.as_str(),
        )?;
        let checked = self.check(view, request)?;
        // Both compute the same least fixpoint; only a non-deterministic module can make
        // them differ, and that is the module's fault, not a reason to crash.
        if trace.allowed != checked.allowed {
            return Err(EvaluationError::ExplainDiverged {
                trace_allowed: trace.allowed,
                check_allowed: checked.allowed,
            });
        }
        Ok(Explanation {
            allowed: trace.allowed,
            trace,
            revision: view.revision,
        })
    }
}

struct Explainer<'a> {
    evaluator: &'a Evaluator,
    schema: &'a SchemaIndex,
    state: RequestState,
    subject: Rc<Subject>,
    path: FxHashSet<(TypeId, RelationId, String)>,
    /// Answers already explained whose subtree cut no cycle (so they hold on any path), as
    /// check's memo would have them: repeated nodes render as a reference, which keeps
    /// explain within the depth check needs.
    explained: FxHashMap<(TypeId, RelationId, String), bool>,
    /// Cycle cuts made so far; a subtree that added none is path-independent.
    cycle_cuts: u64,
    nodes: u64,
}

impl Explainer<'_> {
    fn count(&mut self) -> Result<(), EvaluationError> {
        let tree_nodes_max = self.evaluator.limits.tree_nodes_max;
        self.state.spend_tree_node(&mut self.nodes, tree_nodes_max)
    }

    fn relation<R: RelationshipReader + ?Sized>(
        &mut self,
        view: &ReadView<'_, R>,
        type_id: TypeId,
        relation_id: RelationId,
        object_id: &str,
    ) -> Result<TraceNode, EvaluationError> {
        self.count()?;
        let schema = self.schema;
        let resource = format!("{}:{object_id}", schema.type_name(type_id));
        let relation = schema.relation_name(type_id, relation_id).to_owned();
        let subject = Rc::clone(&self.subject);
        if subject.shape == SubjectShape::Userset(relation_id)
            && subject.type_id == type_id
            && *subject.id == *object_id
        {
            let rule = "the subject itself".to_owned();
            let children = vec![TraceNode::leaf(true, TraceStep::UsersetItself)];
            return Ok(TraceNode {
                allowed: true,
                step: TraceStep::Relation {
                    resource,
                    relation,
                    rule,
                },
                children,
            });
        }
        let node = (type_id, relation_id, object_id.to_owned());
        if let Some(allowed) = self.explained.get(&node) {
            return Ok(TraceNode::leaf(
                *allowed,
                TraceStep::Repeated { resource, relation },
            ));
        }
        if self.path.contains(&node) {
            self.cycle_cuts += 1;
            return Ok(TraceNode::leaf(
                false,
                TraceStep::Cycle { resource, relation },
            ));
        }
        let cycle_cuts_before = self.cycle_cuts;
        let depth_max = self.evaluator.limits.depth_max;
        if self.path.len() >= depth_max as usize {
            return Err(EvaluationError::DepthLimitExceeded { depth_max });
        }
        self.path.insert(node.clone());
        let definition = schema
            .compiled()
            .type_definition(type_id)
            .relation(relation_id);
        let (rule, children) = match &definition.kind {
            RelationKind::Direct { .. } => (
                "direct".to_owned(),
                self.direct(view, type_id, relation_id, object_id)?,
            ),
            RelationKind::Computed(expression) => {
                self.computed(view, type_id, relation_id, object_id, expression)?
            }
        };
        self.path.remove(&node);
        let allowed = children.iter().all(|child| child.allowed) && !children.is_empty();
        // A proof found under cycle assumptions is still a proof (rules are monotone).
        if allowed || self.cycle_cuts == cycle_cuts_before {
            self.explained.insert(node, allowed);
        }
        Ok(TraceNode {
            allowed,
            step: TraceStep::Relation {
                resource,
                relation,
                rule,
            },
            children,
        })
    }

    /// The rule text and steps of a computed relation: its expression, then its type's
    /// forbids (until one denies).
    fn computed<R: RelationshipReader + ?Sized>(
        &mut self,
        view: &ReadView<'_, R>,
        type_id: TypeId,
        relation_id: RelationId,
        object_id: &str,
        expression: &Expr,
    ) -> Result<(String, Vec<TraceNode>), EvaluationError> {
        let schema = self.schema;
        let mut children =
            vec![self.expression(view, type_id, relation_id, object_id, expression)?];
        if children[0].allowed && schema.plan(type_id, relation_id).filtered_by_forbids {
            for forbid in schema.compiled().forbids(type_id) {
                let holds = self.relation(view, type_id, *forbid, object_id)?;
                let name = schema.relation_name(type_id, *forbid).to_owned();
                let denied = holds.allowed;
                let step = TraceStep::Forbid { name };
                children.push(TraceNode {
                    allowed: !denied,
                    step,
                    children: vec![holds],
                });
                if denied {
                    break;
                }
            }
        }
        Ok((schema.expression_text(type_id, expression), children))
    }

    /// The relationship that grants the subject itself (or its wildcard), if any.
    fn direct_probe<R: RelationshipReader + ?Sized>(
        &mut self,
        view: &ReadView<'_, R>,
        type_id: TypeId,
        relation_id: RelationId,
        object_id: &str,
    ) -> Result<Option<TraceNode>, EvaluationError> {
        let schema = self.schema;
        let subject = Rc::clone(&self.subject);
        let resource = ObjectKey {
            object_type: schema.type_name(type_id),
            object_id,
        };
        let relation = schema.relation_name(type_id, relation_id);
        let wildcard = SubjectKey {
            subject_type: &subject.type_name,
            subject_id: WILDCARD_ID,
            subject_relation: None,
        };
        let plan = schema
            .plan(type_id, relation_id)
            .direct
            .as_ref()
            .expect("invariant: a direct relation has a plan");
        let mut probes = Vec::new();
        let shape_allowed = match subject.shape {
            SubjectShape::Object => plan.objects.contains(&subject.type_id),
            SubjectShape::Wildcard => plan.wildcards.contains(&subject.type_id),
            SubjectShape::Userset(relation) => plan.usersets.contains(&(subject.type_id, relation)),
        };
        if shape_allowed {
            probes.push(subject.key());
        }
        if subject.shape == SubjectShape::Object && plan.wildcards.contains(&subject.type_id) {
            probes.push(wildcard);
        }
        for probe in probes {
            self.state.spend(1)?;
            if view
                .reader
                .contains(resource, relation, probe, view.now_ms)?
                .is_some()
            {
                let relationship = format!(
                    "{}:{object_id}#{relation}@{}",
                    resource.object_type,
                    key_text(probe)
                );
                return Ok(Some(TraceNode::leaf(
                    true,
                    TraceStep::Relationship { relationship },
                )));
            }
        }
        Ok(None)
    }

    /// The steps of a direct relation; the last one decides (a single child that says
    /// whether any relationship grants the subject).
    fn direct<R: RelationshipReader + ?Sized>(
        &mut self,
        view: &ReadView<'_, R>,
        type_id: TypeId,
        relation_id: RelationId,
        object_id: &str,
    ) -> Result<Vec<TraceNode>, EvaluationError> {
        let schema = self.schema;
        let resource = ObjectKey {
            object_type: schema.type_name(type_id),
            object_id,
        };
        let relation = schema.relation_name(type_id, relation_id);
        if let Some(found) = self.direct_probe(view, type_id, relation_id, object_id)? {
            return Ok(vec![found]);
        }
        let plan = schema
            .plan(type_id, relation_id)
            .direct
            .as_ref()
            .expect("invariant: a direct relation has a plan");
        let mut usersets = Vec::new();
        let mut visit = |stored: SubjectKey<'_>, _expires_at_ms: Option<u64>| {
            let resolved = schema.type_id(stored.subject_type).and_then(|stored_type| {
                Some((
                    stored_type,
                    schema.relation_id(stored_type, stored.subject_relation?)?,
                ))
            });
            if let Some((stored_type, stored_relation)) =
                resolved.filter(|shape| plan.usersets.contains(shape))
            {
                usersets.push((stored_type, stored_relation, stored.subject_id.to_owned()));
            }
            ControlFlow::Continue(())
        };
        view.reader.for_each_subject(
            resource,
            relation,
            SubjectFilter::Usersets,
            view.now_ms,
            &mut visit,
        )?;
        self.state.spend(1 + usersets.len() as u64)?;
        let mut tried = Vec::new();
        for (stored_type, stored_relation, stored_id) in usersets {
            let child = self.relation(view, stored_type, stored_relation, &stored_id)?;
            let allowed = child.allowed;
            tried.push(child);
            if allowed {
                return Ok(vec![TraceNode {
                    allowed: true,
                    step: TraceStep::Operator {
                        operator: "any stored userset",
                    },
                    children: tried,
                }]);
            }
        }
        let none = TraceNode::leaf(false, TraceStep::NoDirectRelationship);
        if tried.is_empty() {
            return Ok(vec![none]);
        }
        tried.push(none);
        let step = TraceStep::Operator {
            operator: "any stored userset",
        };
        Ok(vec![TraceNode {
            allowed: false,
            step,
            children: tried,
        }])
    }

    fn expression<R: RelationshipReader + ?Sized>(
        &mut self,
        view: &ReadView<'_, R>,
        type_id: TypeId,
        relation_id: RelationId,
        object_id: &str,
        expression: &Expr,
    ) -> Result<TraceNode, EvaluationError> {
        self.count()?;
        let operator = |operator: &'static str| TraceStep::Operator { operator };
        match expression {
            Expr::Relation(target) => self.relation(view, type_id, *target, object_id),
            Expr::Union(operands) | Expr::Intersection(operands) => {
                let union = matches!(expression, Expr::Union(_));
                let mut children = Vec::new();
                for operand in operands {
                    let child = self.expression(view, type_id, relation_id, object_id, operand)?;
                    let decisive = child.allowed == union;
                    children.push(child);
                    if decisive {
                        break;
                    }
                }
                let allowed = if union {
                    children.iter().any(|child| child.allowed)
                } else {
                    children.iter().all(|child| child.allowed)
                };
                Ok(TraceNode {
                    allowed,
                    step: operator(if union { "union" } else { "intersection" }),
                    children,
                })
            }
            Expr::Exclusion { base, subtract } => {
                let mut children =
                    vec![self.expression(view, type_id, relation_id, object_id, base)?];
                if children[0].allowed {
                    children.push(self.expression(
                        view,
                        type_id,
                        relation_id,
                        object_id,
                        subtract,
                    )?);
                }
                let allowed = children[0].allowed
                    && !children.get(1).is_some_and(|subtracted| subtracted.allowed);
                Ok(TraceNode {
                    allowed,
                    step: operator("exclusion (first minus second)"),
                    children,
                })
            }
            Expr::Arrow(arrow) => self.arrow(view, type_id, object_id, arrow),
            Expr::Module(name) => self.module(type_id, relation_id, object_id, name),
        }
    }

    fn arrow<R: RelationshipReader + ?Sized>(
        &mut self,
        view: &ReadView<'_, R>,
        type_id: TypeId,
        object_id: &str,
        arrow: &inferadb_ipl::Arrow,
    ) -> Result<TraceNode, EvaluationError> {
        let schema = self.schema;
        let resource = ObjectKey {
            object_type: schema.type_name(type_id),
            object_id,
        };
        let tupleset = schema.relation_name(type_id, arrow.tupleset);
        let mut targets = Vec::new();
        let mut visit = |stored: SubjectKey<'_>, _expires_at_ms: Option<u64>| {
            let target = schema
                .type_id(stored.subject_type)
                .and_then(|stored_type| Some((stored_type, arrow.target_on(stored_type)?)));
            if let (Some((stored_type, target)), false) = (target, stored.is_wildcard()) {
                targets.push((stored_type, target, stored.subject_id.to_owned()));
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
        self.state.spend(1 + targets.len() as u64)?;
        let mut children = Vec::new();
        for (target_type, target, target_id) in targets {
            let child = self.relation(view, target_type, target, &target_id)?;
            let allowed = child.allowed;
            children.push(child);
            if allowed {
                break;
            }
        }
        let allowed = children.iter().any(|child| child.allowed);
        let text = format!("{tupleset}->{}", arrow.target_name);
        Ok(TraceNode {
            allowed,
            step: TraceStep::Arrow { text },
            children,
        })
    }

    fn module(
        &mut self,
        type_id: TypeId,
        relation_id: RelationId,
        object_id: &str,
        name: &str,
    ) -> Result<TraceNode, EvaluationError> {
        let module =
            self.evaluator
                .modules
                .get(name)
                .ok_or_else(|| EvaluationError::ModuleNotLoaded {
                    name: name.to_owned(),
                })?;
        let request = ModuleRequest {
            module: name,
            resource_type: self.schema.type_name(type_id),
            resource_id: object_id,
            relation: self.schema.relation_name(type_id, relation_id),
            subject: self.subject.key(),
        };
        let allowed = module
            .evaluate(&request)
            .map_err(|error| EvaluationError::ModuleFailed {
                name: name.to_owned(),
                message: error.message,
            })?;
        Ok(TraceNode::leaf(
            allowed,
            TraceStep::Module {
                name: name.to_owned(),
            },
        ))
    }
}

fn key_text(subject: SubjectKey<'_>) -> String {
    match subject.subject_relation {
        Some(relation) => format!("{}:{}#{relation}", subject.subject_type, subject.subject_id),
        None => format!("{}:{}", subject.subject_type, subject.subject_id),
    }
}

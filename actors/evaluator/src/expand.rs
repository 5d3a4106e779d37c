//! Expand: the userset tree of `resource#relation`: who has it, and through which rules and
//! relationships, as a tree a client can walk or print.
//!
//! Userset subjects and arrow targets are expanded in place. A relation met again on the
//! current path becomes a [`ExpandTree::Cycle`] leaf, which contributes nothing: every
//! derivation in the least fixpoint has a form that never revisits a node on its own path,
//! so cutting there loses no subject (and [`ExpandTree::contains`] agrees with check).

use std::fmt;
use std::ops::ControlFlow;

use inferadb_ipl::{Expr, RelationId, RelationKind, TypeId};
use inferadb_protocols::{ObjectRef, RelationName, Revision, SubjectRef};

use crate::error::EvaluationError;
use crate::evaluator::{Evaluator, ReadView};
use crate::hashing::FxHashSet;
use crate::reader::{ObjectKey, RelationshipReader, SubjectFilter, SubjectKey};
use crate::schema::SchemaIndex;
use crate::state::RequestState;

/// A node of an expand tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExpandTree {
    /// The relation `relation` of object `resource` (`type:id`).
    Relation {
        /// The object, `type:id`.
        resource: String,
        /// The relation's name.
        relation: String,
        /// Its definition, expanded.
        body: Box<ExpandTree>,
        /// The forbids of the type that deny it (empty when it is not filtered).
        forbids: Vec<ExpandTree>,
    },
    /// The relationships of a direct relation.
    Direct {
        /// Plain object and wildcard subjects.
        subjects: Vec<SubjectRef>,
        /// Userset subjects, each expanded.
        usersets: Vec<ExpandTree>,
    },
    /// Any operand.
    Union(Vec<ExpandTree>),
    /// Every operand.
    Intersection(Vec<ExpandTree>),
    /// `base` except `subtract`.
    Exclusion {
        /// The left side.
        base: Box<ExpandTree>,
        /// The right side.
        subtract: Box<ExpandTree>,
    },
    /// `tupleset->target`: one expanded branch per object the tupleset holds.
    Arrow {
        /// The tupleset relation.
        tupleset: String,
        /// The target relation's name.
        target: String,
        /// The target relation on each object.
        branches: Vec<ExpandTree>,
    },
    /// `module("name")`: decided per request, not expandable.
    Module {
        /// The module's name.
        name: String,
    },
    /// A relation already being expanded on this path: contributes nothing here.
    Cycle {
        /// The object, `type:id`.
        resource: String,
        /// The relation's name.
        relation: String,
    },
}

/// The answer to an expand: the tree and the revision it was computed at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expansion {
    /// The userset tree.
    pub tree: ExpandTree,
    /// The revision the tree was computed at.
    pub revision: Revision,
}

impl ExpandTree {
    /// Whether the tree grants `subject` (modules count as not granting).
    pub fn contains(&self, subject: &SubjectRef) -> bool {
        match self {
            ExpandTree::Relation {
                resource,
                relation,
                body,
                forbids,
            } => {
                is_userset(subject, resource, relation)
                    || (body.contains(subject)
                        && !forbids.iter().any(|forbid| forbid.contains(subject)))
            }
            ExpandTree::Direct { subjects, usersets } => {
                subjects
                    .iter()
                    .any(|stored| matches_subject(stored, subject))
                    || usersets.iter().any(|userset| userset.contains(subject))
            }
            ExpandTree::Union(children) => children.iter().any(|child| child.contains(subject)),
            ExpandTree::Intersection(children) => {
                children.iter().all(|child| child.contains(subject))
            }
            ExpandTree::Exclusion { base, subtract } => {
                base.contains(subject) && !subtract.contains(subject)
            }
            ExpandTree::Arrow { branches, .. } => {
                branches.iter().any(|branch| branch.contains(subject))
            }
            ExpandTree::Module { .. } => false,
            ExpandTree::Cycle { resource, relation } => is_userset(subject, resource, relation),
        }
    }

    fn write_indented(&self, formatter: &mut fmt::Formatter<'_>, depth: usize) -> fmt::Result {
        let indent = "  ".repeat(depth);
        let children: Vec<&ExpandTree> = match self {
            ExpandTree::Relation {
                resource,
                relation,
                body,
                forbids,
            } => {
                writeln!(formatter, "{indent}{resource}#{relation}")?;
                body.write_indented(formatter, depth + 1)?;
                for forbid in forbids {
                    writeln!(formatter, "{indent}  denied where:")?;
                    forbid.write_indented(formatter, depth + 2)?;
                }
                return Ok(());
            }
            ExpandTree::Direct { subjects, usersets } => {
                let names: Vec<String> = subjects.iter().map(ToString::to_string).collect();
                writeln!(formatter, "{indent}direct: [{}]", names.join(", "))?;
                usersets.iter().collect()
            }
            ExpandTree::Union(children) => {
                writeln!(formatter, "{indent}union")?;
                children.iter().collect()
            }
            ExpandTree::Intersection(children) => {
                writeln!(formatter, "{indent}intersection")?;
                children.iter().collect()
            }
            ExpandTree::Exclusion { base, subtract } => {
                writeln!(formatter, "{indent}exclusion (first minus second)")?;
                vec![&**base, &**subtract]
            }
            ExpandTree::Arrow {
                tupleset,
                target,
                branches,
            } => {
                writeln!(formatter, "{indent}{tupleset}->{target}")?;
                branches.iter().collect()
            }
            ExpandTree::Module { name } => return writeln!(formatter, "{indent}module({name:?})"),
            ExpandTree::Cycle { resource, relation } => {
                return writeln!(
                    formatter,
                    "{indent}{resource}#{relation} (cycle: adds nothing)"
                );
            }
        };
        for child in children {
            child.write_indented(formatter, depth + 1)?;
        }
        Ok(())
    }
}

impl fmt::Display for ExpandTree {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write_indented(formatter, 0)
    }
}

fn is_userset(subject: &SubjectRef, resource: &str, relation: &str) -> bool {
    match subject {
        SubjectRef::Userset {
            object,
            relation: subject_relation,
        } => subject_relation.as_str() == relation && object.to_string() == resource,
        _ => false,
    }
}

/// Whether a stored subject grants `subject`: the same subject, or the wildcard of an object
/// subject's type.
pub(crate) fn matches_subject(stored: &SubjectRef, subject: &SubjectRef) -> bool {
    match (stored, subject) {
        (SubjectRef::Wildcard(type_name), SubjectRef::Object(object)) => {
            *type_name == object.object_type
        }
        _ => stored == subject,
    }
}

pub(crate) fn subject_ref(subject: SubjectKey<'_>) -> Option<SubjectRef> {
    let text = match subject.subject_relation {
        Some(relation) => format!("{}:{}#{relation}", subject.subject_type, subject.subject_id),
        None => format!("{}:{}", subject.subject_type, subject.subject_id),
    };
    text.parse().ok()
}

impl Evaluator {
    /// Expands `resource#relation` into its userset tree.
    pub fn expand<R: RelationshipReader + ?Sized>(
        &self,
        view: &ReadView<'_, R>,
        resource: &ObjectRef,
        relation: &RelationName,
    ) -> Result<Expansion, EvaluationError> {
        let (type_id, relation_id) = self.resolve(resource, relation)?;
        let mut expander = Expander {
            schema: &self.schema,
            state: RequestState::new(self.limits.lookup_work_budget),
            path: FxHashSet::default(),
            nodes: 0,
            evaluator: self,
        };
        let tree = expander.relation(view, type_id, relation_id, resource.object_id.as_str())?;
        Ok(Expansion {
            tree,
            revision: view.revision,
        })
    }
}

struct Expander<'a> {
    schema: &'a SchemaIndex,
    state: RequestState,
    path: FxHashSet<(TypeId, RelationId, String)>,
    nodes: u64,
    evaluator: &'a Evaluator,
}

impl Expander<'_> {
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
    ) -> Result<ExpandTree, EvaluationError> {
        self.count()?;
        let schema = self.schema;
        let resource = format!("{}:{object_id}", schema.type_name(type_id));
        let relation = schema.relation_name(type_id, relation_id).to_owned();
        let node = (type_id, relation_id, object_id.to_owned());
        if self.path.contains(&node) {
            return Ok(ExpandTree::Cycle { resource, relation });
        }
        let depth_max = self.evaluator.limits.depth_max;
        if self.path.len() >= depth_max as usize {
            return Err(EvaluationError::DepthLimitExceeded { depth_max });
        }
        self.path.insert(node.clone());
        let definition = schema
            .compiled()
            .type_definition(type_id)
            .relation(relation_id);
        let (body, forbids) = match &definition.kind {
            RelationKind::Direct { .. } => (
                self.direct(view, type_id, relation_id, object_id)?,
                Vec::new(),
            ),
            RelationKind::Computed(expression) => {
                let body = self.expression(view, type_id, object_id, expression)?;
                let mut forbids = Vec::new();
                if schema.plan(type_id, relation_id).filtered_by_forbids {
                    for forbid in schema.compiled().forbids(type_id) {
                        forbids.push(self.relation(view, type_id, *forbid, object_id)?);
                    }
                }
                (body, forbids)
            }
        };
        self.path.remove(&node);
        Ok(ExpandTree::Relation {
            resource,
            relation,
            body: Box::new(body),
            forbids,
        })
    }

    fn direct<R: RelationshipReader + ?Sized>(
        &mut self,
        view: &ReadView<'_, R>,
        type_id: TypeId,
        relation_id: RelationId,
        object_id: &str,
    ) -> Result<ExpandTree, EvaluationError> {
        let schema = self.schema;
        let resource = ObjectKey {
            object_type: schema.type_name(type_id),
            object_id,
        };
        let mut subjects = Vec::new();
        let mut userset_keys = Vec::new();
        // Only subjects of the shapes the schema allows count, exactly as in check.
        let plan = schema
            .plan(type_id, relation_id)
            .direct
            .as_ref()
            .expect("invariant: a direct relation has a plan");
        let mut visit = |subject: SubjectKey<'_>, _expires_at_ms: Option<u64>| {
            let Some(subject_type) = schema.type_id(subject.subject_type) else {
                return ControlFlow::Continue(());
            };
            match subject.subject_relation {
                Some(relation) => {
                    let shape = schema
                        .relation_id(subject_type, relation)
                        .map(|relation| (subject_type, relation));
                    if let Some((subject_type, relation)) =
                        shape.filter(|shape| plan.usersets.contains(shape))
                    {
                        userset_keys.push((subject_type, relation, subject.subject_id.to_owned()));
                    }
                }
                None if subject.is_wildcard() && plan.wildcards.contains(&subject_type) => {
                    subjects.extend(subject_ref(subject));
                }
                None if !subject.is_wildcard() && plan.objects.contains(&subject_type) => {
                    subjects.extend(subject_ref(subject));
                }
                None => {}
            }
            ControlFlow::Continue(())
        };
        let relation = schema.relation_name(type_id, relation_id);
        view.reader.for_each_subject(
            resource,
            relation,
            SubjectFilter::All,
            view.now_ms,
            &mut visit,
        )?;
        self.state
            .spend(1 + (subjects.len() + userset_keys.len()) as u64)?;
        let mut usersets = Vec::new();
        for (subject_type, subject_relation, subject_id) in userset_keys {
            usersets.push(self.relation(view, subject_type, subject_relation, &subject_id)?);
        }
        Ok(ExpandTree::Direct { subjects, usersets })
    }

    fn expression<R: RelationshipReader + ?Sized>(
        &mut self,
        view: &ReadView<'_, R>,
        type_id: TypeId,
        object_id: &str,
        expression: &Expr,
    ) -> Result<ExpandTree, EvaluationError> {
        self.count()?;
        let all =
            |expander: &mut Self, children: &[Expr]| -> Result<Vec<ExpandTree>, EvaluationError> {
                children
                    .iter()
                    .map(|child| expander.expression(view, type_id, object_id, child))
                    .collect()
            };
        Ok(match expression {
            Expr::Relation(relation_id) => self.relation(view, type_id, *relation_id, object_id)?,
            Expr::Union(children) => ExpandTree::Union(all(self, children)?),
            Expr::Intersection(children) => ExpandTree::Intersection(all(self, children)?),
            Expr::Exclusion { base, subtract } => ExpandTree::Exclusion {
                base: Box::new(self.expression(view, type_id, object_id, base)?),
                subtract: Box::new(self.expression(view, type_id, object_id, subtract)?),
            },
            Expr::Arrow(arrow) => {
                let schema = self.schema;
                let resource = ObjectKey {
                    object_type: schema.type_name(type_id),
                    object_id,
                };
                let tupleset = schema.relation_name(type_id, arrow.tupleset);
                let mut targets = Vec::new();
                let mut visit = |subject: SubjectKey<'_>, _expires_at_ms: Option<u64>| {
                    let target = schema
                        .type_id(subject.subject_type)
                        .and_then(|subject_type| {
                            Some((subject_type, arrow.target_on(subject_type)?))
                        });
                    if let (Some((subject_type, target)), false) = (target, subject.is_wildcard()) {
                        targets.push((subject_type, target, subject.subject_id.to_owned()));
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
                let mut branches = Vec::new();
                for (subject_type, target, subject_id) in targets {
                    branches.push(self.relation(view, subject_type, target, &subject_id)?);
                }
                ExpandTree::Arrow {
                    tupleset: tupleset.to_owned(),
                    target: arrow.target_name.clone(),
                    branches,
                }
            }
            Expr::Module(name) => ExpandTree::Module { name: name.clone() },
        })
    }
}

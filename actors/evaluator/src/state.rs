//! [`RequestState`]: everything one request (or one batch) accumulates while it evaluates:
//! interned object ids, the subjects asked about, the memo of sub-problems and the work spent.
//!
//! Interning turns every `(subject, type, relation, object)` sub-problem into four integers,
//! so the memo is a map of 16-byte keys and the recursion never clones strings.

use std::rc::Rc;

use inferadb_ipl::{RelationId, TypeId};
use inferadb_protocols::SubjectRef;

use crate::error::EvaluationError;
use crate::hashing::FxHashMap;
use crate::reader::{SubjectKey, WILDCARD_ID};
use crate::schema::SchemaIndex;

/// Interned object ids, numbered from 0 in order of first use.
#[derive(Debug, Default)]
pub(crate) struct Interner {
    indexes: FxHashMap<Rc<str>, u32>,
    names: Vec<Rc<str>>,
}

impl Interner {
    /// An empty interner with room for `capacity` ids.
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            indexes: FxHashMap::with_capacity_and_hasher(capacity, Default::default()),
            names: Vec::with_capacity(capacity),
        }
    }

    /// The number of `text`, assigned on first use.
    pub fn intern(&mut self, text: &str) -> u32 {
        if let Some(index) = self.indexes.get(text) {
            return *index;
        }
        let index = u32::try_from(self.names.len())
            .expect("invariant: fewer than 2^32 objects per request");
        let name: Rc<str> = Rc::from(text);
        self.names.push(Rc::clone(&name));
        self.indexes.insert(name, index);
        index
    }

    /// The text of an interned id.
    pub fn name(&self, index: u32) -> Rc<str> {
        Rc::clone(&self.names[index as usize])
    }
}

/// The shape of the subject of a check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SubjectShape {
    /// `type:id`.
    Object,
    /// `type:id#relation`.
    Userset(RelationId),
    /// `type:*`.
    Wildcard,
}

/// A subject of a check, resolved against the schema.
#[derive(Debug)]
pub(crate) struct Subject {
    pub shape: SubjectShape,
    pub type_id: TypeId,
    pub type_name: Box<str>,
    /// The id, or [`WILDCARD_ID`].
    pub id: Box<str>,
    pub relation_name: Option<Box<str>>,
    /// The interned id (for the "a userset contains itself" rule).
    pub object: u32,
}

impl Subject {
    /// The subject as a reader key.
    pub fn key(&self) -> SubjectKey<'_> {
        SubjectKey {
            subject_type: &self.type_name,
            subject_id: &self.id,
            subject_relation: self.relation_name.as_deref(),
        }
    }
}

/// One sub-problem: does subject `subject` have `relation` on object `object` of `type_id`?
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct NodeKey {
    pub subject: u32,
    pub type_id: u32,
    pub relation: u32,
    pub object: u32,
}

impl NodeKey {
    pub fn type_id(self) -> TypeId {
        TypeId(self.type_id)
    }

    pub fn relation_id(self) -> RelationId {
        RelationId(self.relation)
    }

    /// The same object and subject, another relation of the same type.
    pub fn with_relation(self, relation: RelationId) -> Self {
        Self {
            relation: relation.0,
            ..self
        }
    }
}

/// What the memo knows about a sub-problem.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Slot {
    /// Holds in the least fixpoint.
    True,
    /// Does not hold in the least fixpoint.
    False,
    /// Being evaluated, at this position of the evaluation stack.
    InProgress(u32),
    /// Evaluated to false while assuming that the stack entry at this position (and those
    /// after it) is false; final once that entry is settled.
    Provisional(u32),
}

/// Per-request (or per-batch) evaluation state.
#[derive(Debug)]
pub(crate) struct RequestState {
    pub objects: Interner,
    pub subjects: Vec<Rc<Subject>>,
    subject_indexes: FxHashMap<SubjectRef, u32>,
    pub memo: FxHashMap<NodeKey, Slot>,
    pub stack: Vec<NodeKey>,
    pub provisional: Vec<NodeKey>,
    pub work_used: u64,
    pub work_budget: u64,
    /// The earliest expiry among the relationships read: answers stay valid until then.
    pub valid_until_ms: Option<u64>,
    pub memo_hits: u64,
    pub memo_misses: u64,
}

impl RequestState {
    /// Fresh state with a work budget.
    pub fn new(work_budget: u64) -> Self {
        Self {
            objects: Interner::with_capacity(32),
            subjects: Vec::new(),
            subject_indexes: FxHashMap::default(),
            // Sized for a typical check (tens of sub-problems) so it rarely grows.
            memo: FxHashMap::with_capacity_and_hasher(64, Default::default()),
            stack: Vec::new(),
            provisional: Vec::new(),
            work_used: 0,
            work_budget,
            valid_until_ms: None,
            memo_hits: 0,
            memo_misses: 0,
        }
    }

    /// Resolves and registers a subject, returning its number.
    pub fn subject(
        &mut self,
        schema: &SchemaIndex,
        subject: &SubjectRef,
    ) -> Result<u32, EvaluationError> {
        if let Some(index) = self.subject_indexes.get(subject) {
            return Ok(*index);
        }
        let type_name = subject.subject_type().as_str();
        let type_id = schema
            .type_id(type_name)
            .ok_or_else(|| EvaluationError::UnknownType {
                part: "subject type",
                name: type_name.to_owned(),
            })?;
        let (shape, id, relation_name) = match subject {
            SubjectRef::Object(object) => (SubjectShape::Object, object.object_id.as_str(), None),
            SubjectRef::Wildcard(_) => (SubjectShape::Wildcard, WILDCARD_ID, None),
            SubjectRef::Userset { object, relation } => {
                let relation_id =
                    schema
                        .relation_id(type_id, relation.as_str())
                        .ok_or_else(|| EvaluationError::UnknownRelation {
                            part: "subject relation",
                            type_name: type_name.to_owned(),
                            relation: relation.to_string(),
                        })?;
                (
                    SubjectShape::Userset(relation_id),
                    object.object_id.as_str(),
                    Some(relation.as_str()),
                )
            }
        };
        let object = if shape == SubjectShape::Wildcard {
            u32::MAX
        } else {
            self.objects.intern(id)
        };
        let index = u32::try_from(self.subjects.len())
            .expect("invariant: fewer than 2^32 subjects per request");
        self.subjects.push(Rc::new(Subject {
            shape,
            type_id,
            type_name: type_name.into(),
            id: id.into(),
            relation_name: relation_name.map(Box::from),
            object,
        }));
        self.subject_indexes.insert(subject.clone(), index);
        Ok(index)
    }

    /// Forgets every sub-problem that an aborted evaluation left unsettled, so the memo only
    /// holds final answers when the next item of a batch starts.
    pub fn abort(&mut self) {
        for key in self.stack.drain(..).chain(self.provisional.drain(..)) {
            self.memo.remove(&key);
        }
    }

    /// Spends `units` of the work budget.
    pub fn spend(&mut self, units: u64) -> Result<(), EvaluationError> {
        self.work_used += units;
        if self.work_used > self.work_budget {
            return Err(EvaluationError::WorkBudgetExceeded {
                work_budget: self.work_budget,
            });
        }
        Ok(())
    }

    /// Counts one more node of an expand tree or explain trace (`nodes` so far), within
    /// both the tree size limit and the work budget.
    pub fn spend_tree_node(
        &mut self,
        nodes: &mut u64,
        tree_nodes_max: u64,
    ) -> Result<(), EvaluationError> {
        *nodes += 1;
        if *nodes > tree_nodes_max {
            return Err(EvaluationError::TreeTooLarge { tree_nodes_max });
        }
        self.spend(1)
    }

    /// Records that an answer depends on a relationship expiring at `expires_at_ms`.
    pub fn note_expiry(&mut self, expires_at_ms: Option<u64>) {
        if let Some(expires_at_ms) = expires_at_ms {
            self.valid_until_ms = Some(
                self.valid_until_ms
                    .map_or(expires_at_ms, |until| until.min(expires_at_ms)),
            );
        }
    }
}

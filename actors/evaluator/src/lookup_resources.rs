//! Lookup resources: every object of a type on which a subject has a permission.
//!
//! The cost scales with the answer, not the vault: the walk starts at the subject and
//! follows the schema's positive dependencies backwards through reverse reads (which
//! resources hold this subject? which hold those as usersets? which point at them through an
//! arrow's tupleset?). Every object reached through unions only is in the answer and is
//! recorded as `true` in the request memo; objects reached through an intersection, an
//! exclusion or a forbid-filtered permission are candidates, verified by a check that
//! reuses that memo.

use std::collections::VecDeque;
use std::ops::ControlFlow;
use std::rc::Rc;
use std::sync::Arc;

use inferadb_ipl::{RelationRef, TypeId};
use inferadb_protocols::{RelationName, Revision, SubjectRef, TypeName};

use crate::error::EvaluationError;
use crate::evaluator::{Evaluator, ReadView};
use crate::hashing::FxHashMap;
use crate::reader::{RelationshipReader, SubjectKey, WILDCARD_ID};
use crate::schema::{Residual, ReverseEdge, ReverseVia, SchemaIndex};
use crate::state::{NodeKey, RequestState, Slot, SubjectShape};

/// The version tag of lookup cursors: `v1:<revision>:<lookup fingerprint>:<last id>`. A
/// cursor continues exactly the lookup it came from (same vault, schema, resource type,
/// permission and subject) at the revision it was issued at, so pages never skip or repeat
/// ids. Object ids never contain `:`, so the last field is the whole id.
const CURSOR_VERSION: &str = "v1";

/// Which resources of `resource_type` may `subject` have `permission` on?
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LookupResourcesRequest {
    /// The type of the resources to return.
    pub resource_type: TypeName,
    /// A permission or relation of that type.
    pub permission: RelationName,
    /// An object, a userset or a wildcard.
    pub subject: SubjectRef,
    /// Where to resume: the `cursor` of the previous page, or `None` for the first page.
    pub cursor: Option<String>,
    /// Most ids to return in this page (at least 1; capped by the evaluator's limits).
    pub limit: usize,
}

/// One page of a lookup. Ids are in ascending byte order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LookupResourcesPage {
    /// The resource ids of this page.
    pub resource_ids: Vec<String>,
    /// Pass this back to get the next page; `None` when `complete`.
    pub cursor: Option<String>,
    /// True only when no resource after this page has the permission.
    pub complete: bool,
    /// The revision the page was computed at.
    pub revision: Revision,
}

impl Evaluator {
    /// One page of lookup resources (see the module documentation for the method).
    pub fn lookup_resources<R: RelationshipReader + ?Sized>(
        &self,
        view: &ReadView<'_, R>,
        request: &LookupResourcesRequest,
    ) -> Result<LookupResourcesPage, EvaluationError> {
        let (type_id, relation_id) =
            self.resolve_names(request.resource_type.as_str(), request.permission.as_str())?;
        let target = RelationRef::new(type_id, relation_id);
        self.ensure_enumerable(target)?;
        let fingerprint = self.lookup_fingerprint(view, request);
        let cursor = LookupCursor {
            revision: view.revision.0,
            fingerprint,
        };
        let after = cursor.parse(request.cursor.as_deref())?;
        // A page of zero ids could never make progress: it is read as one.
        let limit = request
            .limit
            .clamp(1, self.limits.lookup_page_size_max.max(1));
        let mut state = RequestState::new(self.limits.lookup_work_budget);
        let subject = state.subject(&self.schema, &request.subject)?;
        // A continued lookup reuses the candidates its first page found: paging through a
        // large answer walks the graph once, not once per page.
        let kept = after.and_then(|_| self.kept_candidates(&cursor, view.now_ms));
        let (candidates, fresh) = match kept {
            Some(kept) => (kept.intern(&mut state), false),
            None => (
                self.walk_candidates(view, &mut state, subject, target)?,
                true,
            ),
        };
        let scope = PageScope {
            target,
            subject,
            cursor,
        };
        let page = self.verify_page(view, &mut state, &scope, &candidates, after, limit)?;
        if fresh && !page.complete {
            self.keep_candidates(&cursor, &candidates, view.now_ms, state.valid_until_ms);
        }
        self.record(&state);
        Ok(page)
    }

    /// Walks back from the subject and returns the sorted candidates of `target`.
    fn walk_candidates<R: RelationshipReader + ?Sized>(
        &self,
        view: &ReadView<'_, R>,
        state: &mut RequestState,
        subject: u32,
        target: RelationRef,
    ) -> Result<Vec<Candidate>, EvaluationError> {
        let mut walk = ReverseWalk::new(&self.schema, view, subject);
        walk.seed(state)?;
        walk.run(state)?;
        let mut candidates = walk.candidates(state, target);
        candidates.sort_unstable_by(|left, right| left.id.cmp(&right.id));
        Ok(candidates)
    }

    fn kept_candidates(&self, cursor: &LookupCursor, now_ms: u64) -> Option<Arc<CandidateSet>> {
        let kept = self
            .lookup_candidates
            .get(&(cursor.fingerprint, cursor.revision))?;
        let valid =
            kept.valid_from_ms <= now_ms && kept.valid_until_ms.is_none_or(|until| now_ms < until);
        valid.then_some(kept)
    }

    fn keep_candidates(
        &self,
        cursor: &LookupCursor,
        candidates: &[Candidate],
        now_ms: u64,
        valid_until_ms: Option<u64>,
    ) {
        let set = CandidateSet {
            candidates: candidates
                .iter()
                .map(|candidate| KeptCandidate {
                    id: Box::from(&*candidate.id),
                    exact: candidate.exact,
                    residuals: candidate.residuals.clone(),
                })
                .collect(),
            valid_from_ms: now_ms,
            valid_until_ms,
        };
        self.lookup_candidates
            .insert((cursor.fingerprint, cursor.revision), Arc::new(set));
    }

    pub(crate) fn ensure_enumerable(&self, target: RelationRef) -> Result<(), EvaluationError> {
        match self.schema.generating_module(target) {
            None => Ok(()),
            Some(module) => Err(self.not_enumerable(target, module)),
        }
    }

    pub(crate) fn not_enumerable(&self, target: RelationRef, module: String) -> EvaluationError {
        EvaluationError::NotEnumerable {
            type_name: self.schema.type_name(target.type_id).to_owned(),
            relation: self
                .schema
                .relation_name(target.type_id, target.relation_id)
                .to_owned(),
            module,
        }
    }

    /// Identifies a lookup for its cursors: vault, schema, resource type, permission and
    /// subject (a stable hash: cursors survive a process restart).
    fn lookup_fingerprint<R: RelationshipReader + ?Sized>(
        &self,
        view: &ReadView<'_, R>,
        request: &LookupResourcesRequest,
    ) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut hasher = crate::hashing::FxHasher::default();
        view.vault_id.hash(&mut hasher);
        self.schema.fingerprint().hash(&mut hasher);
        request.resource_type.as_str().hash(&mut hasher);
        request.permission.as_str().hash(&mut hasher);
        request.subject.to_string().hash(&mut hasher);
        hasher.finish()
    }

    fn verify_page<R: RelationshipReader + ?Sized>(
        &self,
        view: &ReadView<'_, R>,
        state: &mut RequestState,
        scope: &PageScope,
        candidates: &[Candidate],
        after: Option<&str>,
        limit: usize,
    ) -> Result<LookupResourcesPage, EvaluationError> {
        let (target, subject) = (scope.target, scope.subject);
        let start = after.map_or(0, |after| {
            candidates.partition_point(|candidate| &*candidate.id <= after)
        });
        let mut resource_ids = Vec::new();
        for (position, candidate) in candidates.iter().enumerate().skip(start) {
            if resource_ids.len() == limit {
                let complete = position == candidates.len();
                let cursor = resource_ids
                    .last()
                    .map(|last: &String| scope.cursor.format(last));
                let revision = view.revision;
                return Ok(LookupResourcesPage {
                    resource_ids,
                    cursor,
                    complete,
                    revision,
                });
            }
            let key = NodeKey {
                subject,
                type_id: target.type_id.0,
                relation: target.relation_id.0,
                object: candidate.object,
            };
            if self.verify(view, state, key, candidate)? {
                resource_ids.push(candidate.id.to_string());
            }
        }
        Ok(LookupResourcesPage {
            resource_ids,
            cursor: None,
            complete: true,
            revision: view.revision,
        })
    }

    /// Whether a candidate holds: exact ones do; otherwise a passing residual condition
    /// suffices, and a full check decides the rest.
    fn verify<R: RelationshipReader + ?Sized>(
        &self,
        view: &ReadView<'_, R>,
        state: &mut RequestState,
        key: NodeKey,
        candidate: &Candidate,
    ) -> Result<bool, EvaluationError> {
        if candidate.exact {
            return Ok(true);
        }
        for residual in &candidate.residuals {
            if self.residual_passes(view, state, key, residual)? {
                return Ok(true);
            }
        }
        self.engine(view, state).check(key)
    }

    fn residual_passes<R: RelationshipReader + ?Sized>(
        &self,
        view: &ReadView<'_, R>,
        state: &mut RequestState,
        key: NodeKey,
        residual: &Residual,
    ) -> Result<bool, EvaluationError> {
        for subtract in &residual.subtracts {
            if self.engine(view, state).holds_expression(key, subtract)? {
                return Ok(false);
            }
        }
        if residual.forbids {
            for forbid in self.schema.compiled().forbids(key.type_id()) {
                if self.engine(view, state).check(key.with_relation(*forbid))? {
                    return Ok(false);
                }
            }
        }
        Ok(true)
    }
}

/// What a page is about: the relation looked up, the subject, and its cursor identity.
struct PageScope {
    target: RelationRef,
    subject: u32,
    cursor: LookupCursor,
}

/// The identity a cursor carries.
#[derive(Clone, Copy)]
struct LookupCursor {
    revision: u64,
    fingerprint: u64,
}

impl LookupCursor {
    fn format(&self, last_id: &str) -> String {
        format!(
            "{CURSOR_VERSION}:{}:{:016x}:{last_id}",
            self.revision, self.fingerprint
        )
    }

    /// The last id of the previous page, if `cursor` continues this lookup.
    fn parse<'c>(&self, cursor: Option<&'c str>) -> Result<Option<&'c str>, EvaluationError> {
        let Some(text) = cursor else {
            return Ok(None);
        };
        let refuse = |rule: String| EvaluationError::InvalidCursor {
            cursor: text.to_owned(),
            rule,
        };
        let mut parts = text.splitn(4, ':');
        let (Some(CURSOR_VERSION), Some(revision), Some(fingerprint), Some(after)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(refuse("not a cursor this evaluator issued".to_owned()));
        };
        let revision: u64 = revision
            .parse()
            .map_err(|_| refuse("not a cursor this evaluator issued".to_owned()))?;
        if fingerprint != format!("{:016x}", self.fingerprint) || after.is_empty() {
            return Err(refuse(
                "issued for another lookup (vault, schema, type, permission or subject differ)"
                    .to_owned(),
            ));
        }
        if revision != self.revision {
            return Err(refuse(format!(
                "issued at revision {revision}: continue the lookup at that revision (this \
                 read is at revision {})",
                self.revision
            )));
        }
        Ok(Some(after))
    }
}

/// A node of the reverse walk: `(type, relation, object)`.
type WalkNode = (TypeId, inferadb_ipl::RelationId, u32);

/// What the walk knows about a reached node.
#[derive(Debug, Default)]
struct Reach {
    /// The node holds the subject (reached through exact edges only).
    exact: bool,
    /// Sufficient conditions found on the way: the node holds if one of them passes.
    residuals: Vec<Arc<Residual>>,
}

/// Most residual conditions kept per node; more would only be tried in vain before the full
/// check.
const RESIDUALS_PER_NODE_MAX: usize = 4;

/// A reached object of the target relation and what decides it.
struct Candidate {
    id: Rc<str>,
    object: u32,
    exact: bool,
    residuals: Vec<Arc<Residual>>,
}

/// The sorted candidates of a lookup, kept between its pages (per lookup fingerprint and
/// revision), with the times they are valid between: a relationship the walk read expires
/// at `valid_until_ms`.
pub(crate) struct CandidateSet {
    candidates: Vec<KeptCandidate>,
    valid_from_ms: u64,
    valid_until_ms: Option<u64>,
}

struct KeptCandidate {
    id: Box<str>,
    exact: bool,
    residuals: Vec<Arc<Residual>>,
}

impl CandidateSet {
    /// Candidates for a new request: ids interned into its state.
    fn intern(&self, state: &mut RequestState) -> Vec<Candidate> {
        self.candidates
            .iter()
            .map(|kept| {
                let object = state.objects.intern(&kept.id);
                Candidate {
                    id: state.objects.name(object),
                    object,
                    exact: kept.exact,
                    residuals: kept.residuals.clone(),
                }
            })
            .collect()
    }

    /// The weight a set has in its cache: its number of candidates.
    pub(crate) fn weight(&self) -> u32 {
        u32::try_from(self.candidates.len())
            .unwrap_or(u32::MAX)
            .max(1)
    }
}

/// The backward walk from a subject to every object-relation that may hold it.
struct ReverseWalk<'a, R: ?Sized> {
    schema: &'a SchemaIndex,
    view: &'a ReadView<'a, R>,
    subject: u32,
    reached: FxHashMap<WalkNode, Reach>,
    queue: VecDeque<(WalkNode, bool)>,
}

impl<'a, R: RelationshipReader + ?Sized> ReverseWalk<'a, R> {
    fn new(schema: &'a SchemaIndex, view: &'a ReadView<'a, R>, subject: u32) -> Self {
        let reached = FxHashMap::default();
        Self {
            schema,
            view,
            subject,
            reached,
            queue: VecDeque::new(),
        }
    }

    /// Records that `node` was reached from a node known (`from_exact`) or not known to hold
    /// the subject, through an edge with `residual`.
    fn reach(&mut self, node: WalkNode, from_exact: bool, residual: Option<&Arc<Residual>>) {
        let exact = from_exact && residual.is_some_and(|residual| residual.is_exact());
        let condition = residual.filter(|residual| from_exact && !residual.is_exact());
        let (reach, first) = match self.reached.get_mut(&node) {
            Some(reach) => (reach, false),
            None => (self.reached.entry(node).or_default(), true),
        };
        if let Some(condition) = condition {
            let known = reach
                .residuals
                .iter()
                .any(|known| Arc::ptr_eq(known, condition));
            if !known && reach.residuals.len() < RESIDUALS_PER_NODE_MAX {
                reach.residuals.push(Arc::clone(condition));
            }
        }
        if first || (exact && !reach.exact) {
            reach.exact |= exact;
            self.queue.push_back((node, exact));
        }
    }

    /// Starts from the relationships that name the subject (or its type's wildcard).
    fn seed(&mut self, state: &mut RequestState) -> Result<(), EvaluationError> {
        let subject = Rc::clone(&state.subjects[self.subject as usize]);
        let schema = self.schema;
        let exact = Arc::new(Residual::default());
        let wildcard = SubjectKey {
            subject_type: &subject.type_name,
            subject_id: WILDCARD_ID,
            subject_relation: None,
        };
        let mut starts = Vec::new();
        match subject.shape {
            SubjectShape::Userset(relation_id) => {
                self.reach(
                    (subject.type_id, relation_id, subject.object),
                    true,
                    Some(&exact),
                );
            }
            SubjectShape::Object => {
                starts.extend(
                    schema
                        .object_uses(subject.type_id)
                        .iter()
                        .map(|relation| (subject.key(), *relation)),
                );
                starts.extend(
                    schema
                        .wildcard_uses(subject.type_id)
                        .iter()
                        .map(|relation| (wildcard, *relation)),
                );
            }
            SubjectShape::Wildcard => {
                starts.extend(
                    schema
                        .wildcard_uses(subject.type_id)
                        .iter()
                        .map(|relation| (wildcard, *relation)),
                );
            }
        }
        for (key, relation) in starts {
            self.read_resources(state, key, relation, relation, (true, Some(&exact)))?;
        }
        Ok(())
    }

    /// Reads the resources whose `read` relation holds `subject` and reaches `reach` on each
    /// (with `how`: whether the subject node is exact, and the edge's residual).
    fn read_resources(
        &mut self,
        state: &mut RequestState,
        subject: SubjectKey<'_>,
        read: RelationRef,
        reach: RelationRef,
        how: (bool, Option<&Arc<Residual>>),
    ) -> Result<(), EvaluationError> {
        let schema = self.schema;
        let mut found = Vec::new();
        let mut visit = |resource_id: &str, expires_at_ms: Option<u64>| {
            // Kept candidate sets are valid only until a relationship they came from
            // expires.
            state.note_expiry(expires_at_ms);
            found.push(state.objects.intern(resource_id));
            ControlFlow::Continue(())
        };
        let resource_type = schema.type_name(read.type_id);
        let relation = schema.relation_name(read.type_id, read.relation_id);
        let now_ms = self.view.now_ms;
        self.view
            .reader
            .for_each_resource(subject, resource_type, relation, now_ms, &mut visit)?;
        state.spend(1 + found.len() as u64)?;
        for object in found {
            self.reach((reach.type_id, reach.relation_id, object), how.0, how.1);
        }
        Ok(())
    }

    fn run(&mut self, state: &mut RequestState) -> Result<(), EvaluationError> {
        while let Some((node, exact)) = self.queue.pop_front() {
            state.spend(1)?;
            let edges = self.schema.reverse_edges(RelationRef::new(node.0, node.1));
            for edge in edges {
                self.follow(state, node, exact, edge)?;
            }
        }
        Ok(())
    }

    fn follow(
        &mut self,
        state: &mut RequestState,
        (type_id, relation_id, object): WalkNode,
        exact: bool,
        edge: &ReverseEdge,
    ) -> Result<(), EvaluationError> {
        let schema = self.schema;
        let name = state.objects.name(object);
        let how = (exact, edge.residual.as_ref());
        let type_name = schema.type_name(type_id);
        match edge.via {
            ReverseVia::Computed => {
                self.reach(
                    (edge.from.type_id, edge.from.relation_id, object),
                    how.0,
                    how.1,
                );
                Ok(())
            }
            ReverseVia::DirectUserset => {
                let relation_name = schema.relation_name(type_id, relation_id);
                let subject = SubjectKey {
                    subject_type: type_name,
                    subject_id: &name,
                    subject_relation: Some(relation_name),
                };
                self.read_resources(state, subject, edge.from, edge.from, how)
            }
            ReverseVia::Arrow { tupleset } => {
                let subject = SubjectKey {
                    subject_type: type_name,
                    subject_id: &name,
                    subject_relation: None,
                };
                let read = RelationRef::new(edge.from.type_id, tupleset);
                self.read_resources(state, subject, read, edge.from, how)
            }
        }
    }

    /// The reached objects of `target`; exact nodes of every relation are recorded as true
    /// in the memo so that verifying the others reuses them.
    fn candidates(&mut self, state: &mut RequestState, target: RelationRef) -> Vec<Candidate> {
        let mut candidates = Vec::new();
        for (&(type_id, relation_id, object), reach) in &mut self.reached {
            if reach.exact {
                let key = NodeKey {
                    subject: self.subject,
                    type_id: type_id.0,
                    relation: relation_id.0,
                    object,
                };
                state.memo.insert(key, Slot::True);
            }
            if type_id == target.type_id && relation_id == target.relation_id {
                candidates.push(Candidate {
                    id: state.objects.name(object),
                    object,
                    exact: reach.exact,
                    residuals: std::mem::take(&mut reach.residuals),
                });
            }
        }
        candidates
    }
}

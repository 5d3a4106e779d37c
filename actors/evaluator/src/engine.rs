//! The check engine: depth-first evaluation of sub-problems with a memo, short-circuiting,
//! and a cycle strategy that yields the least fixpoint.
//!
//! # Cycles
//!
//! A sub-problem met again while it is still being evaluated (it is on the stack) is assumed
//! false, and the answer of everything computed under that assumption carries a *lowlink*:
//! the lowest stack position it relied on. Then:
//!
//! - `true` is final at once: all rules are monotone within a stratum, so a proof built
//!   while assuming some facts false is still a proof.
//! - `false` with a lowlink at or above its own stack position relied on nothing outside its
//!   own evaluation: it is final, and so is every provisional `false` computed inside it
//!   that relied only on entries at or above that position (a set of facts that are all
//!   false and whose rules all evaluate to false given that is a post-fixpoint, so the least
//!   fixpoint has them false too). A provisional `false` inside it that relied on an entry
//!   further down the stack may never have fed this answer (an intersection or exclusion
//!   can short-circuit past it), so it stays provisional until that entry settles.
//! - `false` with a lower lowlink is *provisional*: memoized only until the stack entry it
//!   relied on settles. If that entry turns out true, the provisional answers are dropped
//!   and recomputed when needed; if it settles false, they become final.
//!
//! Negation (`-` and forbids) only reaches lower strata, which the compiler guarantees have
//! no path back to anything on the stack; the engine asserts it.

use std::ops::ControlFlow;

use inferadb_ipl::{Arrow, Expr, RelationKind, TypeId};
use smallvec::SmallVec;

use crate::cache::SubproblemParts;
use crate::cache::{CacheKey, CachedDecision, DecisionCache, Lookup, SubjectParts};
use crate::error::EvaluationError;
use crate::limits::EvaluatorLimits;
use crate::module::{ModuleRegistry, ModuleRequest};
use crate::reader::{ObjectKey, RelationshipReader, SubjectFilter, SubjectKey, WILDCARD_ID};
use crate::schema::SchemaIndex;
use crate::state::{NodeKey, RequestState, Slot, SubjectShape};

/// No dependency on any evaluation in progress.
const SETTLED: u32 = u32::MAX;

/// The answer to a sub-problem plus what it assumed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Outcome {
    pub allowed: bool,
    /// The lowest stack position whose in-progress (assumed false) answer this relied on.
    pub lowlink: u32,
}

impl Outcome {
    const TRUE: Outcome = Outcome {
        allowed: true,
        lowlink: SETTLED,
    };
    const FALSE: Outcome = Outcome {
        allowed: false,
        lowlink: SETTLED,
    };

    fn denied(lowlink: u32) -> Self {
        Outcome {
            allowed: false,
            lowlink,
        }
    }
}

/// Sub-problems gathered from one read before recursing into them (the visitor cannot
/// recurse: the evaluation borrows the state mutably).
type Targets = SmallVec<[NodeKey; 8]>;

/// One evaluation over one snapshot; borrows the request state it accumulates into.
pub(crate) struct Engine<'a, R: RelationshipReader + ?Sized> {
    pub schema: &'a SchemaIndex,
    pub reader: &'a R,
    pub modules: &'a ModuleRegistry,
    pub limits: &'a EvaluatorLimits,
    pub now_ms: u64,
    pub state: &'a mut RequestState,
    /// The cross-request cache, when the evaluator has one.
    pub shared: Option<SharedSubproblems<'a>>,
}

/// Where sub-problems are shared across requests, and the identity of this snapshot.
pub(crate) struct SharedSubproblems<'a> {
    pub cache: &'a DecisionCache,
    pub vault_id: u64,
    pub revision: u64,
    pub schema_fingerprint: u64,
}

impl<R: RelationshipReader + ?Sized> Engine<'_, R> {
    /// Decides one sub-problem from scratch (nothing in progress). On error the memo is
    /// cleaned of unsettled entries so the state stays usable for the next item.
    pub fn check(&mut self, key: NodeKey) -> Result<bool, EvaluationError> {
        assert!(
            self.state.stack.is_empty(),
            "invariant: a check starts with an empty stack"
        );
        match self.node(key) {
            Ok(outcome) => {
                assert_eq!(
                    outcome.lowlink, SETTLED,
                    "invariant: the root settles every assumption"
                );
                assert!(
                    self.state.provisional.is_empty(),
                    "invariant: no provisional answer outlives its root"
                );
                Ok(outcome.allowed)
            }
            Err(error) => {
                self.state.abort();
                Err(error)
            }
        }
    }

    /// Whether `expression` (of `key`'s type) holds for `key`'s object and subject,
    /// evaluated from scratch like [`Self::check`].
    pub fn holds_expression(
        &mut self,
        key: NodeKey,
        expression: &Expr,
    ) -> Result<bool, EvaluationError> {
        assert!(
            self.state.stack.is_empty(),
            "invariant: evaluation starts with an empty stack"
        );
        match self.expression(key, expression) {
            Ok(outcome) => {
                assert_eq!(
                    outcome.lowlink, SETTLED,
                    "invariant: nothing is in progress at the root"
                );
                Ok(outcome.allowed)
            }
            Err(error) => {
                self.state.abort();
                Err(error)
            }
        }
    }

    fn spend(&mut self, units: u64) -> Result<(), EvaluationError> {
        self.state.spend(units)
    }

    fn node(&mut self, key: NodeKey) -> Result<Outcome, EvaluationError> {
        if let Some(slot) = self.state.memo.get(&key) {
            self.state.memo_hits += 1;
            return Ok(match *slot {
                Slot::True => Outcome::TRUE,
                Slot::False => Outcome::FALSE,
                Slot::InProgress(position) | Slot::Provisional(position) => {
                    Outcome::denied(position)
                }
            });
        }
        self.state.memo_misses += 1;
        let shared_key = self.shared_key(key);
        if let Some(outcome) = self.shared_answer(key, shared_key.as_ref()) {
            return Ok(outcome);
        }
        let work_before = self.state.work_used;
        self.spend(1)?;
        let position = u32::try_from(self.state.stack.len())
            .expect("invariant: the stack is bounded by depth_max");
        if position >= self.limits.depth_max {
            return Err(EvaluationError::DepthLimitExceeded {
                depth_max: self.limits.depth_max,
            });
        }
        self.state.stack.push(key);
        self.state.memo.insert(key, Slot::InProgress(position));
        let provisional_start = self.state.provisional.len();
        let outcome = self.evaluate_relation(key)?;
        let popped = self.state.stack.pop();
        assert_eq!(
            popped,
            Some(key),
            "invariant: evaluation is strictly nested"
        );
        let settled = self.settle(key, position, provisional_start, outcome);
        self.share(shared_key, settled, work_before);
        Ok(settled)
    }

    /// The cross-request key of `key`, when it is a sub-problem worth sharing.
    fn shared_key(&self, key: NodeKey) -> Option<CacheKey> {
        let shared = self.shared.as_ref()?;
        let disabled = self.limits.shared_subproblem_work_min == u64::MAX;
        if disabled || !self.schema.is_userset_target(key.type_id, key.relation) {
            return None;
        }
        let subject = &self.state.subjects[key.subject as usize];
        let relation_name = match subject.shape {
            SubjectShape::Userset(_) => subject.relation_name.as_deref(),
            SubjectShape::Object | SubjectShape::Wildcard => None,
        };
        let resource_id = self.state.objects.name(key.object);
        Some(CacheKey::for_subproblem(
            &SubproblemParts {
                vault_id: shared.vault_id,
                revision: shared.revision,
                schema_fingerprint: shared.schema_fingerprint,
                type_id: key.type_id,
                relation: key.relation,
                resource_id: &resource_id,
            },
            SubjectParts {
                type_name: &subject.type_name,
                id: &subject.id,
                relation: relation_name,
                wildcard: subject.shape == SubjectShape::Wildcard,
            },
        ))
    }

    /// A shared answer for `key`, recorded in the memo; its validity bounds this request's.
    fn shared_answer(&mut self, key: NodeKey, shared_key: Option<&CacheKey>) -> Option<Outcome> {
        let cache = self.shared.as_ref()?.cache;
        let decision = cache.get_decision(shared_key?, self.now_ms, Lookup::Subproblem)?;
        if let Some(until) = decision.valid_until_ms {
            let current = self.state.valid_until_ms.get_or_insert(until);
            *current = (*current).min(until);
        }
        let (slot, outcome) = if decision.allowed {
            (Slot::True, Outcome::TRUE)
        } else {
            (Slot::False, Outcome::FALSE)
        };
        self.state.memo.insert(key, slot);
        Some(outcome)
    }

    /// Shares a final answer that was expensive enough to be worth a cache entry. Only
    /// final answers qualify: a provisional one depends on this request's stack.
    fn share(&self, shared_key: Option<CacheKey>, outcome: Outcome, work_before: u64) {
        let (Some(shared), Some(shared_key)) = (self.shared.as_ref(), shared_key) else {
            return;
        };
        let spent = self.state.work_used.saturating_sub(work_before);
        if outcome.lowlink != SETTLED || spent < self.limits.shared_subproblem_work_min {
            return;
        }
        let decision = CachedDecision {
            allowed: outcome.allowed,
            valid_from_ms: self.now_ms,
            // Conservative: the earliest expiry among everything this request read so far,
            // which includes everything this sub-problem read.
            valid_until_ms: self.state.valid_until_ms,
        };
        shared.cache.insert(&shared_key, decision);
    }

    /// Records the answer of `key` and settles the provisional answers computed under it.
    fn settle(
        &mut self,
        key: NodeKey,
        position: u32,
        provisional_start: usize,
        outcome: Outcome,
    ) -> Outcome {
        let state = &mut *self.state;
        if outcome.allowed {
            for provisional in state.provisional.drain(provisional_start..) {
                state.memo.remove(&provisional);
            }
            state.memo.insert(key, Slot::True);
            return Outcome::TRUE;
        }
        if outcome.lowlink >= position {
            // Only provisional answers that relied on nothing below this node are final
            // now. One that assumed an entry further down the stack false may not have fed
            // this node's answer at all (a short-circuited intersection or exclusion): it
            // stays provisional until that entry settles.
            let inside: Vec<NodeKey> = state.provisional.drain(provisional_start..).collect();
            for provisional in inside {
                match state.memo.get(&provisional) {
                    Some(Slot::Provisional(lowlink)) if *lowlink < position => {
                        state.provisional.push(provisional);
                    }
                    _ => {
                        state.memo.insert(provisional, Slot::False);
                    }
                }
            }
            state.memo.insert(key, Slot::False);
            return Outcome::FALSE;
        }
        for provisional in &state.provisional[provisional_start..] {
            if let Some(Slot::Provisional(lowlink)) = state.memo.get_mut(provisional) {
                *lowlink = (*lowlink).min(outcome.lowlink);
            }
        }
        state.provisional.push(key);
        state.memo.insert(key, Slot::Provisional(outcome.lowlink));
        outcome
    }

    fn evaluate_relation(&mut self, key: NodeKey) -> Result<Outcome, EvaluationError> {
        let subject = &self.state.subjects[key.subject as usize];
        let is_self = subject.shape == SubjectShape::Userset(key.relation_id())
            && subject.type_id == key.type_id()
            && subject.object == key.object;
        if is_self {
            // A userset always contains itself (`group:eng#member` is in `group:eng#member`).
            return Ok(Outcome::TRUE);
        }
        let schema = self.schema;
        let definition = schema
            .compiled()
            .type_definition(key.type_id())
            .relation(key.relation_id());
        match &definition.kind {
            RelationKind::Direct { .. } => self.direct(key),
            RelationKind::Computed(expression) => {
                let outcome = self.expression(key, expression)?;
                if outcome.allowed
                    && schema
                        .plan(key.type_id(), key.relation_id())
                        .filtered_by_forbids
                {
                    return self.forbids(key);
                }
                Ok(outcome)
            }
        }
    }

    fn forbids(&mut self, key: NodeKey) -> Result<Outcome, EvaluationError> {
        let schema = self.schema;
        for forbid in schema.compiled().forbids(key.type_id()) {
            let outcome = self.negated(key.with_relation(*forbid))?;
            if outcome {
                return Ok(Outcome::FALSE);
            }
        }
        Ok(Outcome::TRUE)
    }

    /// Evaluates a sub-problem on the negative side of a rule (a subtrahend or a forbid).
    fn negated(&mut self, key: NodeKey) -> Result<bool, EvaluationError> {
        let depth = u32::try_from(self.state.stack.len())
            .expect("invariant: the stack is bounded by depth_max");
        let outcome = self.node(key)?;
        assert!(
            outcome.allowed || outcome.lowlink >= depth,
            "invariant: a negated sub-problem never depends on an evaluation in progress \
             (the compiler rejects recursion through negation)"
        );
        Ok(outcome.allowed)
    }

    fn negated_expression(
        &mut self,
        key: NodeKey,
        expression: &Expr,
    ) -> Result<bool, EvaluationError> {
        let depth = u32::try_from(self.state.stack.len())
            .expect("invariant: the stack is bounded by depth_max");
        let outcome = self.expression(key, expression)?;
        assert!(
            outcome.allowed || outcome.lowlink >= depth,
            "invariant: a subtracted expression never depends on an evaluation in progress"
        );
        Ok(outcome.allowed)
    }

    fn expression(&mut self, key: NodeKey, expression: &Expr) -> Result<Outcome, EvaluationError> {
        match expression {
            Expr::Relation(relation_id) => self.node(key.with_relation(*relation_id)),
            Expr::Union(children) => {
                let mut lowlink = SETTLED;
                for child in children {
                    let outcome = self.expression(key, child)?;
                    if outcome.allowed {
                        return Ok(Outcome::TRUE);
                    }
                    lowlink = lowlink.min(outcome.lowlink);
                }
                Ok(Outcome::denied(lowlink))
            }
            Expr::Intersection(children) => {
                for child in children {
                    let outcome = self.expression(key, child)?;
                    if !outcome.allowed {
                        return Ok(outcome);
                    }
                }
                Ok(Outcome::TRUE)
            }
            Expr::Exclusion { base, subtract } => {
                let outcome = self.expression(key, base)?;
                if !outcome.allowed {
                    return Ok(outcome);
                }
                let subtracted = self.negated_expression(key, subtract)?;
                Ok(if subtracted {
                    Outcome::FALSE
                } else {
                    Outcome::TRUE
                })
            }
            Expr::Arrow(arrow) => self.arrow(key, arrow),
            Expr::Module(name) => self.module(key, name),
        }
    }

    fn any_of(&mut self, targets: &Targets) -> Result<Outcome, EvaluationError> {
        let mut lowlink = SETTLED;
        for target in targets {
            let outcome = self.node(*target)?;
            if outcome.allowed {
                return Ok(Outcome::TRUE);
            }
            lowlink = lowlink.min(outcome.lowlink);
        }
        Ok(Outcome::denied(lowlink))
    }

    fn direct(&mut self, key: NodeKey) -> Result<Outcome, EvaluationError> {
        let schema = self.schema;
        let plan = schema
            .plan(key.type_id(), key.relation_id())
            .direct
            .as_ref()
            .expect("invariant: a direct relation has a direct plan");
        let subject = std::rc::Rc::clone(&self.state.subjects[key.subject as usize]);
        let resource_id = self.state.objects.name(key.object);
        let resource = ObjectKey {
            object_type: schema.type_name(key.type_id()),
            object_id: &resource_id,
        };
        let relation = schema.relation_name(key.type_id(), key.relation_id());
        let shape_allowed = match subject.shape {
            SubjectShape::Object => plan.objects.contains(&subject.type_id),
            SubjectShape::Wildcard => plan.wildcards.contains(&subject.type_id),
            SubjectShape::Userset(relation_id) => {
                plan.usersets.contains(&(subject.type_id, relation_id))
            }
        };
        let wildcard = SubjectKey {
            subject_type: &subject.type_name,
            subject_id: WILDCARD_ID,
            subject_relation: None,
        };
        let mut probes: SmallVec<[SubjectKey<'_>; 2]> = SmallVec::new();
        if shape_allowed {
            probes.push(subject.key());
        }
        if subject.shape == SubjectShape::Object && plan.wildcards.contains(&subject.type_id) {
            probes.push(wildcard);
        }
        let mut targets = Targets::new();
        let mut visited = 0_u64;
        let state = &mut *self.state;
        let mut visit = |stored: SubjectKey<'_>, expires_at_ms: Option<u64>| {
            visited += 1;
            let resolved = schema.type_id(stored.subject_type).and_then(|type_id| {
                let relation_id = schema.relation_id(type_id, stored.subject_relation?)?;
                plan.usersets
                    .contains(&(type_id, relation_id))
                    .then_some((type_id, relation_id))
            });
            if let Some((type_id, relation_id)) = resolved {
                state.note_expiry(expires_at_ms);
                let object = state.objects.intern(stored.subject_id);
                targets.push(NodeKey {
                    subject: key.subject,
                    type_id: type_id.0,
                    relation: relation_id.0,
                    object,
                });
            }
            ControlFlow::Continue(())
        };
        let usersets = !plan.usersets.is_empty();
        let found = self.reader.find_direct(
            resource,
            relation,
            &probes,
            usersets,
            self.now_ms,
            &mut visit,
        )?;
        self.spend(1 + visited)?;
        if let Some(found) = found {
            self.state.note_expiry(found.expires_at_ms);
            return Ok(Outcome::TRUE);
        }
        self.any_of(&targets)
    }

    fn arrow(&mut self, key: NodeKey, arrow: &Arrow) -> Result<Outcome, EvaluationError> {
        let schema = self.schema;
        let resource_id = self.state.objects.name(key.object);
        let resource = ObjectKey {
            object_type: schema.type_name(key.type_id()),
            object_id: &resource_id,
        };
        let tupleset = schema.relation_name(key.type_id(), arrow.tupleset);
        let mut targets = Targets::new();
        let mut visited = 0_u64;
        let state = &mut *self.state;
        let mut visit = |subject: SubjectKey<'_>, expires_at_ms: Option<u64>| {
            visited += 1;
            let target = schema.type_id(subject.subject_type).and_then(|type_id| {
                Some(NodeKey {
                    subject: key.subject,
                    type_id: type_id.0,
                    relation: arrow.target_on(type_id)?.0,
                    object: 0,
                })
            });
            // Objects of types without the target relation contribute nothing.
            if let (Some(mut target), false) = (target, subject.is_wildcard()) {
                state.note_expiry(expires_at_ms);
                target.object = state.objects.intern(subject.subject_id);
                targets.push(target);
            }
            ControlFlow::Continue(())
        };
        self.reader.for_each_subject(
            resource,
            tupleset,
            SubjectFilter::Objects,
            self.now_ms,
            &mut visit,
        )?;
        self.spend(1 + visited)?;
        self.any_of(&targets)
    }

    fn module(&mut self, key: NodeKey, name: &str) -> Result<Outcome, EvaluationError> {
        self.spend(1)?;
        let module = self
            .modules
            .get(name)
            .ok_or_else(|| EvaluationError::ModuleNotLoaded {
                name: name.to_owned(),
            })?;
        let subject = std::rc::Rc::clone(&self.state.subjects[key.subject as usize]);
        let resource_id = self.state.objects.name(key.object);
        let type_id: TypeId = key.type_id();
        let request = ModuleRequest {
            module: name,
            resource_type: self.schema.type_name(type_id),
            resource_id: &resource_id,
            relation: self.schema.relation_name(type_id, key.relation_id()),
            subject: subject.key(),
        };
        match module.evaluate(&request) {
            Ok(allowed) => Ok(if allowed {
                Outcome::TRUE
            } else {
                Outcome::FALSE
            }),
            Err(error) => Err(EvaluationError::ModuleFailed {
                name: name.to_owned(),
                message: error.message,
            }),
        }
    }
}

//! [`Evaluator`]: the entry point. One evaluator serves one schema version of one or more
//! vaults; it is `Sync` and meant to be shared by the worker threads of the evaluator pool.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use inferadb_ipl::{CompiledSchema, RelationId, TypeId};
use inferadb_protocols::{ObjectRef, RelationName, Revision, SubjectRef};

use crate::cache::{CacheKey, CachedDecision, DecisionCache, KeyParts};
use crate::engine::{Engine, SharedSubproblems};
use crate::error::EvaluationError;
use crate::limits::EvaluatorLimits;
use crate::lookup_resources::CandidateSet;
use crate::module::ModuleRegistry;
use crate::reader::RelationshipReader;
use crate::schema::SchemaIndex;
use crate::state::{NodeKey, RequestState};

/// What an evaluation reads: one vault's relationships at one revision, as of `now_ms`.
#[derive(Clone, Copy, Debug)]
pub struct ReadView<'a, R: ?Sized> {
    /// The snapshot.
    pub reader: &'a R,
    /// The vault the snapshot belongs to (part of cache keys).
    pub vault_id: u64,
    /// The snapshot's revision (part of cache keys, returned with every answer).
    pub revision: Revision,
    /// The caller's current time; relationships with `expires_at_ms <= now_ms` are ignored.
    pub now_ms: u64,
}

/// May `subject` have `permission` on `resource`?
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CheckRequest {
    /// The resource.
    pub resource: ObjectRef,
    /// A permission or relation of the resource's type.
    pub permission: RelationName,
    /// An object, a userset or a wildcard.
    pub subject: SubjectRef,
}

/// The answer to a [`CheckRequest`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CheckResponse {
    /// Whether the subject has the permission.
    pub allowed: bool,
    /// The revision the answer was computed at.
    pub revision: Revision,
}

/// Counters of an evaluator since it was built.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvaluatorStats {
    /// Checks (and batch items) answered.
    pub checks: u64,
    /// Checks answered from the cross-request cache.
    pub cache_hits: u64,
    /// Checks the cross-request cache could not answer.
    pub cache_misses: u64,
    /// Decisions in the cross-request cache (checks and shared sub-problems).
    pub cache_entries: u64,
    /// Sub-problems met inside an evaluation that the cross-request cache answered.
    pub subproblem_cache_hits: u64,
    /// Shareable sub-problems the cross-request cache could not answer.
    pub subproblem_cache_misses: u64,
    /// Sub-problems answered from a request's memo.
    pub memo_hits: u64,
    /// Sub-problems evaluated.
    pub memo_misses: u64,
}

/// What the decision cache said about a request, with the resolved names.
struct Probe {
    type_id: TypeId,
    relation_id: RelationId,
    /// The cache key, when the evaluator has a cache.
    key: Option<CacheKey>,
    /// The cached answer, if the cache had a valid one.
    cached: Option<bool>,
}

/// Capacity of the decision cache unless configured.
pub const DECISION_CACHE_ENTRIES_DEFAULT: u64 = 1_000_000;

/// The evaluation engine for one compiled schema.
pub struct Evaluator {
    pub(crate) schema: Arc<SchemaIndex>,
    pub(crate) modules: ModuleRegistry,
    pub(crate) limits: EvaluatorLimits,
    cache: Option<DecisionCache>,
    /// Candidate sets of lookups that have more pages, for their next pages.
    pub(crate) lookup_candidates: CandidateCache,
    checks: AtomicU64,
    memo_hits: AtomicU64,
    memo_misses: AtomicU64,
}

/// Lookup candidate sets by (lookup fingerprint, revision).
pub(crate) type CandidateCache = moka::sync::Cache<(u64, u64), Arc<CandidateSet>>;

fn candidate_cache(limits: &EvaluatorLimits) -> CandidateCache {
    moka::sync::Cache::builder()
        .max_capacity(limits.lookup_candidates_kept_max)
        .weigher(|_, set: &Arc<CandidateSet>| set.weight())
        .build()
}

impl Evaluator {
    /// An evaluator with default limits, no modules and no cross-request cache.
    pub fn new(schema: Arc<CompiledSchema>) -> Self {
        Self {
            schema: Arc::new(SchemaIndex::new(schema)),
            modules: ModuleRegistry::new(),
            limits: EvaluatorLimits::default(),
            cache: None,
            lookup_candidates: candidate_cache(&EvaluatorLimits::default()),
            checks: AtomicU64::new(0),
            memo_hits: AtomicU64::new(0),
            memo_misses: AtomicU64::new(0),
        }
    }

    /// Replaces the limits.
    pub fn with_limits(mut self, limits: EvaluatorLimits) -> Self {
        self.lookup_candidates = candidate_cache(&limits);
        self.limits = limits;
        self
    }

    /// Replaces the policy modules.
    pub fn with_modules(mut self, modules: ModuleRegistry) -> Self {
        self.modules = modules;
        self
    }

    /// Adds a cross-request decision cache holding up to `capacity_entries` decisions.
    pub fn with_cache(mut self, capacity_entries: u64) -> Self {
        self.cache = Some(DecisionCache::new(capacity_entries));
        self
    }

    /// The schema and its tables.
    pub fn schema(&self) -> &SchemaIndex {
        &self.schema
    }

    /// The limits in force.
    pub fn limits(&self) -> &EvaluatorLimits {
        &self.limits
    }

    /// Counters since the evaluator was built.
    pub fn stats(&self) -> EvaluatorStats {
        let cache = self.cache.as_ref();
        EvaluatorStats {
            checks: self.checks.load(Ordering::Relaxed),
            cache_hits: cache.map_or(0, DecisionCache::hits),
            cache_misses: cache.map_or(0, DecisionCache::misses),
            cache_entries: cache.map_or(0, DecisionCache::entry_count),
            subproblem_cache_hits: cache.map_or(0, DecisionCache::subproblem_hits),
            subproblem_cache_misses: cache.map_or(0, DecisionCache::subproblem_misses),
            memo_hits: self.memo_hits.load(Ordering::Relaxed),
            memo_misses: self.memo_misses.load(Ordering::Relaxed),
        }
    }

    /// Decides one check.
    pub fn check<R: RelationshipReader + ?Sized>(
        &self,
        view: &ReadView<'_, R>,
        request: &CheckRequest,
    ) -> Result<CheckResponse, EvaluationError> {
        self.checks.fetch_add(1, Ordering::Relaxed);
        // A cache hit needs no request state: probe before building one.
        let probe = self.probe(view, request)?;
        if let Some(allowed) = probe.cached {
            return Ok(CheckResponse {
                allowed,
                revision: view.revision,
            });
        }
        let mut state = RequestState::new(self.limits.check_work_budget);
        let result = self.evaluate(view, &mut state, request, probe);
        self.record(&state);
        result
    }

    /// Decides many checks over one snapshot, sharing sub-problems between items (one memo
    /// for the whole batch). Each item gets its own answer or error.
    pub fn batch_check<R: RelationshipReader + ?Sized>(
        &self,
        view: &ReadView<'_, R>,
        requests: &[CheckRequest],
    ) -> Vec<Result<CheckResponse, EvaluationError>> {
        let mut state = RequestState::new(0);
        let answers = requests
            .iter()
            .map(|request| {
                self.checks.fetch_add(1, Ordering::Relaxed);
                let probe = self.probe(view, request)?;
                if let Some(allowed) = probe.cached {
                    return Ok(CheckResponse {
                        allowed,
                        revision: view.revision,
                    });
                }
                // Each item may spend one check's budget, and the batch its own total.
                let budget = state
                    .work_used
                    .saturating_add(self.limits.check_work_budget);
                state.work_budget = budget.min(self.limits.batch_work_budget);
                self.evaluate(view, &mut state, request, probe)
            })
            .collect();
        self.record(&state);
        answers
    }

    /// Resolves the request's names and asks the decision cache (if any).
    fn probe<R: RelationshipReader + ?Sized>(
        &self,
        view: &ReadView<'_, R>,
        request: &CheckRequest,
    ) -> Result<Probe, EvaluationError> {
        let (type_id, relation_id) = self.resolve(&request.resource, &request.permission)?;
        let Some(cache) = &self.cache else {
            return Ok(Probe {
                type_id,
                relation_id,
                key: None,
                cached: None,
            });
        };
        let key = CacheKey::new(&KeyParts {
            vault_id: view.vault_id,
            revision: view.revision.height(),
            schema_fingerprint: self.schema.fingerprint(),
            type_id: type_id.0,
            relation: relation_id.0,
            resource_id: request.resource.object_id.as_str(),
            subject: &request.subject,
        });
        let cached = cache.get(&key, view.now_ms);
        Ok(Probe {
            type_id,
            relation_id,
            key: Some(key),
            cached,
        })
    }

    /// Evaluates a request the cache could not answer, and caches the decision.
    fn evaluate<R: RelationshipReader + ?Sized>(
        &self,
        view: &ReadView<'_, R>,
        state: &mut RequestState,
        request: &CheckRequest,
        probe: Probe,
    ) -> Result<CheckResponse, EvaluationError> {
        let subject = state.subject(&self.schema, &request.subject)?;
        let object = state.objects.intern(request.resource.object_id.as_str());
        let key = NodeKey {
            subject,
            type_id: probe.type_id.0,
            relation: probe.relation_id.0,
            object,
        };
        let allowed = self.engine(view, state).check(key)?;
        if let (Some(cache), Some(key)) = (&self.cache, &probe.key) {
            cache.insert(
                key,
                CachedDecision {
                    allowed,
                    valid_from_ms: view.now_ms,
                    valid_until_ms: state.valid_until_ms,
                },
            );
        }
        Ok(CheckResponse {
            allowed,
            revision: view.revision,
        })
    }

    pub(crate) fn engine<'a, R: RelationshipReader + ?Sized>(
        &'a self,
        view: &ReadView<'a, R>,
        state: &'a mut RequestState,
    ) -> Engine<'a, R> {
        let shared = self.cache.as_ref().map(|cache| SharedSubproblems {
            cache,
            vault_id: view.vault_id,
            revision: view.revision.height(),
            schema_fingerprint: self.schema.fingerprint(),
        });
        Engine {
            schema: &self.schema,
            reader: view.reader,
            modules: &self.modules,
            limits: &self.limits,
            now_ms: view.now_ms,
            state,
            shared,
        }
    }

    pub(crate) fn record(&self, state: &RequestState) {
        self.memo_hits.fetch_add(state.memo_hits, Ordering::Relaxed);
        self.memo_misses
            .fetch_add(state.memo_misses, Ordering::Relaxed);
    }

    /// Resolves `resource`'s type and `permission` on it.
    pub(crate) fn resolve(
        &self,
        resource: &ObjectRef,
        permission: &RelationName,
    ) -> Result<(TypeId, RelationId), EvaluationError> {
        self.resolve_names(resource.object_type.as_str(), permission.as_str())
    }

    pub(crate) fn resolve_names(
        &self,
        type_name: &str,
        permission: &str,
    ) -> Result<(TypeId, RelationId), EvaluationError> {
        let type_id =
            self.schema
                .type_id(type_name)
                .ok_or_else(|| EvaluationError::UnknownType {
                    part: "resource type",
                    name: type_name.to_owned(),
                })?;
        let relation_id = self
            .schema
            .relation_id(type_id, permission)
            .ok_or_else(|| EvaluationError::UnknownRelation {
                part: "permission",
                type_name: type_name.to_owned(),
                relation: permission.to_owned(),
            })?;
        Ok((type_id, relation_id))
    }
}

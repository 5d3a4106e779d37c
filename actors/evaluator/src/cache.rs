//! The cross-request decision cache, keyed by (vault, revision, schema, sub-problem).
//!
//! A revision is immutable, so a decision at a revision never goes stale, except through
//! expiry: every entry carries the earliest expiry among the relationships its evaluation
//! read, and is ignored from that time on. A new schema version has a new fingerprint, so it
//! never sees answers computed under the old one.

use std::sync::atomic::{AtomicU64, Ordering};

use inferadb_protocols::SubjectRef;

use crate::hashing::FxBuildHasher;

/// The identity of a cached decision.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct CacheKey {
    pub vault_id: u64,
    pub revision: u64,
    pub schema_fingerprint: u64,
    pub type_id: u32,
    pub relation: u32,
    pub resource_id: Box<str>,
    pub subject: SubjectRef,
}

/// A cached decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct CachedDecision {
    pub allowed: bool,
    /// The `now_ms` it was computed at: an earlier time may still see relationships that
    /// had expired by then, so the decision is not reused for it.
    pub valid_from_ms: u64,
    /// From this time on the decision may be wrong (a relationship it read expired).
    pub valid_until_ms: Option<u64>,
}

impl CachedDecision {
    /// Whether the decision holds at `now_ms`.
    pub fn is_valid_at(&self, now_ms: u64) -> bool {
        self.valid_from_ms <= now_ms && self.valid_until_ms.is_none_or(|until| now_ms < until)
    }
}

/// A bounded, concurrent cache of check decisions shared by every request of an evaluator.
pub(crate) struct DecisionCache {
    entries: moka::sync::Cache<CacheKey, CachedDecision, FxBuildHasher>,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl DecisionCache {
    pub fn new(capacity_entries: u64) -> Self {
        let entries = moka::sync::Cache::builder()
            .max_capacity(capacity_entries)
            .build_with_hasher(FxBuildHasher::default());
        Self {
            entries,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// The decision for `key` if it is cached and still valid at `now_ms`.
    pub fn get(&self, key: &CacheKey, now_ms: u64) -> Option<bool> {
        let found = self
            .entries
            .get(key)
            .filter(|decision| decision.is_valid_at(now_ms));
        let counter = if found.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        found.map(|decision| decision.allowed)
    }

    pub fn insert(&self, key: CacheKey, decision: CachedDecision) {
        self.entries.insert(key, decision);
    }

    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }

    pub fn misses(&self) -> u64 {
        self.misses.load(Ordering::Relaxed)
    }

    pub fn entry_count(&self) -> u64 {
        self.entries.run_pending_tasks();
        self.entries.entry_count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(revision: u64) -> CacheKey {
        CacheKey {
            vault_id: 1,
            revision,
            schema_fingerprint: 7,
            type_id: 0,
            relation: 0,
            resource_id: "1".into(),
            subject: "user:ann".parse().unwrap(),
        }
    }

    #[test]
    fn decisions_are_valid_only_between_their_bounds() {
        let cache = DecisionCache::new(10);
        let decision = CachedDecision {
            allowed: true,
            valid_from_ms: 10,
            valid_until_ms: Some(20),
        };
        cache.insert(key(1), decision);
        assert_eq!(cache.get(&key(1), 9), None, "before it was computed");
        assert_eq!(cache.get(&key(1), 10), Some(true));
        assert_eq!(cache.get(&key(1), 19), Some(true));
        assert_eq!(
            cache.get(&key(1), 20),
            None,
            "a relationship it read has expired"
        );
        assert_eq!(cache.get(&key(2), 15), None, "another revision");
        assert_eq!((cache.hits(), cache.misses()), (2, 3));
    }
}

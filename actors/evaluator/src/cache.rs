//! The cross-request decision cache, keyed by (vault, revision, schema, sub-problem).
//!
//! A revision is immutable, so a decision at a revision never goes stale, except through
//! expiry: every entry carries the earliest expiry among the relationships its evaluation
//! read, and is ignored from that time on. A new schema version has a new fingerprint, so it
//! never sees answers computed under the old one.
//!
//! Keys are an injective byte encoding of the full identity ([`CacheKey`]), built in a
//! stack buffer: a lookup borrows it (moka compares it byte for byte against the stored
//! key, so two different checks can never share an entry) and only an insert copies it to
//! the heap.

use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};

use inferadb_protocols::SubjectRef;

use crate::front_cache;
use crate::hashing::FxBuildHasher;

/// Encoded keys up to this many bytes (every key of the reference dataset) stay on the
/// stack.
const KEY_INLINE_BYTES: usize = 128;

/// The identity of a cached decision, as an injective byte string: integers as LEB128
/// varints, then every name and id behind its varint length, with a tag for the subject's
/// shape. Every field is self-delimiting, so two keys are equal exactly when every field
/// is.
#[derive(Clone, Debug)]
pub(crate) struct CacheKey {
    inline: [u8; KEY_INLINE_BYTES],
    /// Bytes used in `inline`, or the length of `spilled` once the key outgrew it.
    length: usize,
    /// The whole key, for keys longer than `inline` (empty otherwise).
    spilled: Vec<u8>,
    /// The [`FxHasher`](crate::hashing::FxHasher) hash of the bytes, computed once.
    hash: u64,
}

/// The parts of a [`CacheKey`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct KeyParts<'a> {
    pub vault_id: u64,
    pub revision: u64,
    pub schema_fingerprint: u64,
    pub type_id: u32,
    pub relation: u32,
    pub resource_id: &'a str,
    pub subject: &'a SubjectRef,
}

/// The parts of a sub-problem's key other than its subject.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SubproblemParts<'a> {
    pub vault_id: u64,
    pub revision: u64,
    pub schema_fingerprint: u64,
    pub type_id: u32,
    pub relation: u32,
    pub resource_id: &'a str,
}

/// A subject given by its parts (a sub-problem's subject is held interned, not as a
/// `SubjectRef`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct SubjectParts<'a> {
    pub type_name: &'a str,
    /// The id (ignored for a wildcard).
    pub id: &'a str,
    /// The userset relation, for userset subjects.
    pub relation: Option<&'a str>,
    pub wildcard: bool,
}

const SUBJECT_OBJECT: u64 = 0;
const SUBJECT_USERSET: u64 = 1;
const SUBJECT_WILDCARD: u64 = 2;

impl CacheKey {
    /// Encodes `parts` without touching the heap (unless the ids are unusually long).
    pub fn new(parts: &KeyParts<'_>) -> Self {
        let mut key = Self {
            inline: [0; KEY_INLINE_BYTES],
            length: 0,
            spilled: Vec::new(),
            hash: 0,
        };
        key.push_number(parts.vault_id);
        key.push_number(parts.revision);
        key.push(&parts.schema_fingerprint.to_le_bytes());
        key.push_number(u64::from(parts.type_id));
        key.push_number(u64::from(parts.relation));
        key.push_text(parts.resource_id);
        match parts.subject {
            SubjectRef::Object(object) => key.push_subject(SubjectParts {
                type_name: object.object_type.as_str(),
                id: object.object_id.as_str(),
                relation: None,
                wildcard: false,
            }),
            SubjectRef::Userset { object, relation } => key.push_subject(SubjectParts {
                type_name: object.object_type.as_str(),
                id: object.object_id.as_str(),
                relation: Some(relation.as_str()),
                wildcard: false,
            }),
            SubjectRef::Wildcard(type_name) => key.push_subject(SubjectParts {
                type_name: type_name.as_str(),
                id: "",
                relation: None,
                wildcard: true,
            }),
        }
        key.hash = FxBuildHasher::default().hash_one(key.as_bytes());
        key
    }

    /// The key of a sub-problem met inside an evaluation, from its parts: the same bytes
    /// [`CacheKey::new`] gives for the equal `SubjectRef`, so a sub-problem cached inside
    /// one check answers a later check of it, and the other way round.
    pub fn for_subproblem(parts: &SubproblemParts<'_>, subject: SubjectParts<'_>) -> Self {
        let mut key = Self {
            inline: [0; KEY_INLINE_BYTES],
            length: 0,
            spilled: Vec::new(),
            hash: 0,
        };
        key.push_number(parts.vault_id);
        key.push_number(parts.revision);
        key.push(&parts.schema_fingerprint.to_le_bytes());
        key.push_number(u64::from(parts.type_id));
        key.push_number(u64::from(parts.relation));
        key.push_text(parts.resource_id);
        key.push_subject(subject);
        key.hash = FxBuildHasher::default().hash_one(key.as_bytes());
        key
    }

    fn push_subject(&mut self, subject: SubjectParts<'_>) {
        match (subject.wildcard, subject.relation) {
            (true, _) => {
                self.push_number(SUBJECT_WILDCARD);
                self.push_text(subject.type_name);
            }
            (false, None) => {
                self.push_number(SUBJECT_OBJECT);
                self.push_text(subject.type_name);
                self.push_text(subject.id);
            }
            (false, Some(relation)) => {
                self.push_number(SUBJECT_USERSET);
                self.push_text(subject.type_name);
                self.push_text(subject.id);
                self.push_text(relation);
            }
        }
    }

    /// The encoding.
    pub fn as_bytes(&self) -> &[u8] {
        if self.spilled.is_empty() {
            &self.inline[..self.length]
        } else {
            &self.spilled
        }
    }

    /// The hash of the encoding.
    pub fn hash(&self) -> u64 {
        self.hash
    }

    fn push(&mut self, bytes: &[u8]) {
        let end = self.length + bytes.len();
        if self.spilled.is_empty() && end <= KEY_INLINE_BYTES {
            self.inline[self.length..end].copy_from_slice(bytes);
        } else {
            if self.spilled.is_empty() {
                self.spilled.extend_from_slice(&self.inline[..self.length]);
            }
            self.spilled.extend_from_slice(bytes);
        }
        self.length = end;
    }

    /// Appends `number` as a LEB128 varint (7 bits a byte, high bit set on all but the
    /// last).
    fn push_number(&mut self, mut number: u64) {
        let mut buffer = [0_u8; 10];
        let mut used = 0;
        loop {
            // Truncation is the point: the low 7 bits.
            let low = (number & 0x7f) as u8;
            number >>= 7;
            if number == 0 {
                buffer[used] = low;
                used += 1;
                break;
            }
            buffer[used] = low | 0x80;
            used += 1;
        }
        self.push(&buffer[..used]);
    }

    /// Appends `text` behind its length, so that no field can run into the next.
    fn push_text(&mut self, text: &str) {
        self.push_number(text.len() as u64);
        self.push(text.as_bytes());
    }
}

impl PartialEq for CacheKey {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for CacheKey {}

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

/// The number of the next cache built (0 marks an empty front-cache slot).
static NEXT_OWNER: AtomicU64 = AtomicU64::new(1);

/// A bounded, concurrent cache of check decisions shared by every request of an evaluator.
pub(crate) struct DecisionCache {
    /// This cache's number in the per-thread front caches (unique in the process).
    owner: u64,
    entries: moka::sync::Cache<Box<[u8]>, CachedDecision, FxBuildHasher>,
    hits: AtomicU64,
    misses: AtomicU64,
    subproblem_hits: AtomicU64,
    subproblem_misses: AtomicU64,
}

/// Which counters a lookup feeds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Lookup {
    /// A check (or batch item) as asked.
    Check,
    /// A sub-problem met inside an evaluation.
    Subproblem,
}

impl DecisionCache {
    pub fn new(capacity_entries: u64) -> Self {
        let entries = moka::sync::Cache::builder()
            .max_capacity(capacity_entries)
            .build_with_hasher(FxBuildHasher::default());
        Self {
            owner: NEXT_OWNER.fetch_add(1, Ordering::Relaxed),
            entries,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            subproblem_hits: AtomicU64::new(0),
            subproblem_misses: AtomicU64::new(0),
        }
    }

    /// The decision for `key` if it is cached and still valid at `now_ms`: from this
    /// thread's front cache if it has it, else from the shared cache (and then kept in
    /// the front cache).
    pub fn get(&self, key: &CacheKey, now_ms: u64) -> Option<bool> {
        self.get_decision(key, now_ms, Lookup::Check)
            .map(|decision| decision.allowed)
    }

    /// Like [`DecisionCache::get`], with the decision's validity bounds, counted as `kind`.
    pub fn get_decision(
        &self,
        key: &CacheKey,
        now_ms: u64,
        kind: Lookup,
    ) -> Option<CachedDecision> {
        let found = front_cache::get(self.owner, key)
            .filter(|decision| decision.is_valid_at(now_ms))
            .or_else(|| {
                let shared = self.entries.get(key.as_bytes())?;
                front_cache::put(self.owner, key, shared);
                Some(shared).filter(|decision| decision.is_valid_at(now_ms))
            });
        let counter = match (kind, found.is_some()) {
            (Lookup::Check, true) => &self.hits,
            (Lookup::Check, false) => &self.misses,
            (Lookup::Subproblem, true) => &self.subproblem_hits,
            (Lookup::Subproblem, false) => &self.subproblem_misses,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    pub fn insert(&self, key: &CacheKey, decision: CachedDecision) {
        self.entries.insert(Box::from(key.as_bytes()), decision);
        front_cache::put(self.owner, key, decision);
    }

    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }

    pub fn misses(&self) -> u64 {
        self.misses.load(Ordering::Relaxed)
    }

    pub fn subproblem_hits(&self) -> u64 {
        self.subproblem_hits.load(Ordering::Relaxed)
    }

    pub fn subproblem_misses(&self) -> u64 {
        self.subproblem_misses.load(Ordering::Relaxed)
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
        key_for(revision, "1", "user:ann")
    }

    fn key_for(revision: u64, resource_id: &str, subject: &str) -> CacheKey {
        let subject: SubjectRef = subject.parse().unwrap();
        CacheKey::new(&KeyParts {
            vault_id: 1,
            revision,
            schema_fingerprint: 7,
            type_id: 0,
            relation: 0,
            resource_id,
            subject: &subject,
        })
    }

    #[test]
    fn decisions_are_valid_only_between_their_bounds() {
        let cache = DecisionCache::new(10);
        let decision = CachedDecision {
            allowed: true,
            valid_from_ms: 10,
            valid_until_ms: Some(20),
        };
        cache.insert(&key(1), decision);
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

    #[test]
    fn keys_differ_whenever_a_part_does() {
        let keys = [
            key_for(1, "1", "user:ann"),
            key_for(1, "1", "user:an"),
            key_for(1, "1a", "user:nn"),
            key_for(1, "1", "user:*"),
            key_for(1, "1", "group:ann#member"),
            key_for(1, "1", "group:ann#members"),
            key_for(1, "1", "group:annm#ember"),
            key_for(1, "1", "group:ann"),
            key_for(2, "1", "user:ann"),
            key_for(128, "1", "user:ann"),
            key_for(1, &"x".repeat(200), "user:ann"),
            key_for(1, &"x".repeat(199), "user:xann"),
        ];
        for (index, first) in keys.iter().enumerate() {
            for second in &keys[index + 1..] {
                assert_ne!(first.as_bytes(), second.as_bytes());
            }
        }
        assert_eq!(key_for(1, "1", "user:ann"), key_for(1, "1", "user:ann"));
        let long = key_for(1, &"x".repeat(200), "user:ann");
        assert_eq!(
            long.as_bytes().len(),
            1 + 1 + 8 + 1 + 1 + 2 + 200 + 1 + 1 + 4 + 1 + 3
        );
        assert_eq!(long, key_for(1, &"x".repeat(200), "user:ann"));
    }
}

//! A small per-thread cache in front of the shared decision cache.
//!
//! A moka lookup costs several dependent cache misses and records the read in a log that
//! the calling thread drains every 64 reads (several µs on a large cache). The front cache
//! answers repeated checks on the same worker thread by probing two 4-way sets, with no
//! synchronisation. It is a copy, never the authority: it holds only decisions that were
//! also put in the shared cache, each with its full key bytes, compared exactly, and with
//! its validity bounds. A decision at a revision never changes, so a copy can never
//! disagree with the shared cache, only outlive an eviction there.
//!
//! Slots belong to one [`DecisionCache`](crate::cache::DecisionCache) each (its `owner`
//! number, never reused), so evaluators on the same thread never see each other's
//! entries. Keys longer than [`FRONT_KEY_BYTES`] bypass it.

use std::cell::RefCell;

use crate::cache::{CacheKey, CachedDecision};

/// Ways per set.
const WAYS: usize = 4;

/// Sets per thread (a power of two). A key may live in either of two sets chosen by its
/// hash (two-choice hashing), which keeps sets from overflowing until the cache is nearly
/// full: 32,768 slots of 128 bytes, 4 MiB per worker thread.
const SETS: usize = 8_192;

/// The longest encoded key the front cache holds (two 36-character UUIDs fit).
pub(crate) const FRONT_KEY_BYTES: usize = 102;

/// One cached decision with its full key: exactly two cache lines.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Slot {
    /// The owning cache's number; 0 for an empty slot.
    owner: u64,
    valid_from_ms: u64,
    valid_until_ms: u64,
    /// Bit 0: allowed; bit 1: `valid_until_ms` is set.
    flags: u8,
    length: u8,
    bytes: [u8; FRONT_KEY_BYTES],
}

const _: () = assert!(
    std::mem::size_of::<Slot>() == 128,
    "a slot is two cache lines"
);

const ALLOWED: u8 = 1;
const HAS_UNTIL: u8 = 2;

impl Slot {
    fn holds(&self, owner: u64, key: &[u8]) -> bool {
        self.owner == owner && self.bytes.get(..usize::from(self.length)) == Some(key)
    }

    fn decision(&self) -> CachedDecision {
        CachedDecision {
            allowed: self.flags & ALLOWED != 0,
            valid_from_ms: self.valid_from_ms,
            valid_until_ms: (self.flags & HAS_UNTIL != 0).then_some(self.valid_until_ms),
        }
    }
}

const EMPTY_SLOT: Slot = Slot {
    owner: 0,
    valid_from_ms: 0,
    valid_until_ms: 0,
    flags: 0,
    length: 0,
    bytes: [0; FRONT_KEY_BYTES],
};

/// One thread's front cache (allocated on first insert).
#[derive(Default)]
struct FrontCache {
    /// The key hash of each way of each set, checked before the slot itself.
    hashes: Vec<[u64; WAYS]>,
    /// `WAYS` slots per set.
    slots: Vec<Slot>,
    /// Picks the way to replace when both candidate sets are full.
    next_victim: usize,
}

thread_local! {
    static FRONT: RefCell<FrontCache> = RefCell::new(FrontCache::default());
}

/// The two sets `hash` may live in.
fn set_indexes(hash: u64) -> [usize; 2] {
    // Truncation is the point: two independent groups of bits pick the sets.
    [
        (hash as usize) & (SETS - 1),
        ((hash >> 32) as usize) & (SETS - 1),
    ]
}

impl FrontCache {
    /// The slot index holding `key` of `owner`, if any.
    fn find(&self, owner: u64, hash: u64, key: &[u8]) -> Option<usize> {
        set_indexes(hash).into_iter().find_map(|set| {
            let hashes = self.hashes.get(set)?;
            (0..WAYS)
                .filter(|way| hashes[*way] == hash)
                .map(|way| set * WAYS + way)
                .find(|slot| self.slots[*slot].holds(owner, key))
        })
    }

    /// Where to put a new key: its own slot, an empty way of either set, or a victim.
    fn place(&mut self, owner: u64, hash: u64, key: &[u8]) -> usize {
        if let Some(slot) = self.find(owner, hash, key) {
            return slot;
        }
        let sets = set_indexes(hash);
        let empty_ways =
            |set: usize| (set * WAYS..(set + 1) * WAYS).filter(|slot| self.slots[*slot].owner == 0);
        // The emptier of the two sets keeps both from overflowing early.
        let emptier = sets
            .into_iter()
            .max_by_key(|set| empty_ways(*set).count())
            .unwrap_or(sets[0]);
        let empty = empty_ways(emptier).next();
        empty.unwrap_or_else(|| {
            self.next_victim = self.next_victim.wrapping_add(1);
            let set = sets[self.next_victim % 2];
            set * WAYS + (self.next_victim / 2) % WAYS
        })
    }
}

/// The decision this thread holds for `key` of cache `owner`, if any.
pub(crate) fn get(owner: u64, key: &CacheKey) -> Option<CachedDecision> {
    FRONT
        .try_with(|front| {
            let front = front.try_borrow().ok()?;
            let slot = front.find(owner, key.hash(), key.as_bytes())?;
            Some(front.slots[slot].decision())
        })
        .ok()
        .flatten()
}

/// Keeps a copy of `decision` for `key` of cache `owner` on this thread.
pub(crate) fn put(owner: u64, key: &CacheKey, decision: CachedDecision) {
    let bytes = key.as_bytes();
    let Ok(length) = u8::try_from(bytes.len()) else {
        return;
    };
    if bytes.len() > FRONT_KEY_BYTES {
        return;
    }
    let hash = key.hash();
    // During thread teardown the front cache is gone: nothing to keep.
    let _ = FRONT.try_with(|front| {
        let Ok(mut front) = front.try_borrow_mut() else {
            return;
        };
        if front.slots.is_empty() {
            front.hashes = vec![[0; WAYS]; SETS];
            front.slots = vec![EMPTY_SLOT; SETS * WAYS];
        }
        let index = front.place(owner, hash, bytes);
        front.hashes[index / WAYS][index % WAYS] = hash;
        let slot = &mut front.slots[index];
        slot.owner = owner;
        slot.valid_from_ms = decision.valid_from_ms;
        slot.valid_until_ms = decision.valid_until_ms.unwrap_or(0);
        slot.flags = u8::from(decision.allowed) * ALLOWED
            + u8::from(decision.valid_until_ms.is_some()) * HAS_UNTIL;
        slot.length = length;
        slot.bytes[..bytes.len()].copy_from_slice(bytes);
    });
}

#[cfg(test)]
mod tests {
    use inferadb_protocols::SubjectRef;

    use super::*;
    use crate::cache::KeyParts;

    fn key(resource_id: &str, subject: &SubjectRef) -> CacheKey {
        CacheKey::new(&KeyParts {
            vault_id: 1,
            revision: 1,
            schema_fingerprint: 7,
            type_id: 2,
            relation: 3,
            resource_id,
            subject,
        })
    }

    const DECISION: CachedDecision = CachedDecision {
        allowed: true,
        valid_from_ms: 5,
        valid_until_ms: Some(9),
    };

    #[test]
    fn copies_are_exact_and_private_to_their_cache() {
        let subject: SubjectRef = "user:ann".parse().unwrap();
        put(1_001, &key("1", &subject), DECISION);
        assert_eq!(get(1_001, &key("1", &subject)), Some(DECISION));
        assert_eq!(get(1_002, &key("1", &subject)), None, "another cache");
        assert_eq!(get(1_001, &key("2", &subject)), None, "another key");
        let denied = CachedDecision {
            allowed: false,
            valid_from_ms: 0,
            valid_until_ms: None,
        };
        put(1_001, &key("1", &subject), denied);
        assert_eq!(get(1_001, &key("1", &subject)), Some(denied), "replaced");
        let long = key(&"x".repeat(FRONT_KEY_BYTES), &subject);
        put(1_001, &long, DECISION);
        assert_eq!(get(1_001, &long), None, "too long to copy");
    }

    #[test]
    fn two_choices_hold_a_working_set_of_most_of_the_slots() {
        let subject: SubjectRef = "user:u123".parse().unwrap();
        let keys: Vec<CacheKey> = (0..20_000)
            .map(|index| key(&format!("d{index}"), &subject))
            .collect();
        for key in &keys {
            put(1_003, key, DECISION);
        }
        let held = keys.iter().filter(|key| get(1_003, key).is_some()).count();
        assert!(held >= 19_900, "{held} of 20,000 held in 32,768 slots");
    }
}

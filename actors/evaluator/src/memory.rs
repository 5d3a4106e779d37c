//! [`InMemoryReader`]: a [`RelationshipReader`] over hash maps of sorted vectors, for tests,
//! benchmarks and the simulator. It mirrors the storage engine's two indexes (forward and
//! reverse) so that evaluation costs measured here carry over.
//!
//! Every name and id is interned to a `u32` once, when written. The indexes are keyed by
//! integers and the subject lists are plain integers, so a read touches the interned strings
//! only to translate the query (and the subjects it visits): profiling showed pointer
//! chasing through per-part string allocations to be most of a check's time.

use std::ops::ControlFlow;

use inferadb_protocols::{Relationship, SubjectRef};
use smallvec::SmallVec;

use crate::hashing::FxHashMap;
use crate::reader::{
    Found, ObjectKey, ReadError, RelationshipReader, ResourceVisitor, SubjectFilter, SubjectKey,
    SubjectVisitor, WILDCARD_ID,
};

/// The interned number of a string.
type Name = u32;

/// Stands for "no relation" (plain objects and wildcards) in interned keys.
const NO_RELATION: Name = Name::MAX;

/// Stands for "never expires" in stored entries (keeps an entry at 20 bytes).
const NEVER_MS: u64 = u64::MAX;

/// Ids up to this many bytes live inside the forward key itself.
const INLINE_ID_BYTES: usize = 22;

/// An object id as part of a hash key: short ids inline, so finding a resource's entry
/// chases no pointer; longer ids by their interned number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum IdKey {
    Inline {
        length: u8,
        bytes: [u8; INLINE_ID_BYTES],
    },
    Interned(Name),
}

fn inline_id(id: &str) -> Option<IdKey> {
    let length = u8::try_from(id.len())
        .ok()
        .filter(|length| usize::from(*length) <= INLINE_ID_BYTES)?;
    let mut bytes = [0_u8; INLINE_ID_BYTES];
    bytes[..id.len()].copy_from_slice(id.as_bytes());
    Some(IdKey::Inline { length, bytes })
}

fn expiry(stored_ms: u64) -> Option<u64> {
    (stored_ms != NEVER_MS).then_some(stored_ms)
}

/// One stored subject of a forward entry (interned).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct StoredSubject {
    subject_type: Name,
    subject_id: Name,
    subject_relation: Name,
    /// [`NEVER_MS`] when it never expires.
    expires_at_ms: u64,
}

impl StoredSubject {
    fn sort_key(&self) -> (Name, Name, Name) {
        (self.subject_type, self.subject_id, self.subject_relation)
    }
}

/// The subjects of one `resource#relation`, plain objects (and wildcards) apart from
/// usersets, each list sorted by interned (type, id, relation).
/// Most entries hold one or two subjects, so they live inside the hash table's slot.
#[derive(Debug, Default)]
struct SubjectLists {
    objects: SmallVec<[StoredSubject; 2]>,
    usersets: SmallVec<[StoredSubject; 2]>,
}

impl SubjectLists {
    /// The live entry for exactly `subject` (interned), if stored.
    fn find(&self, subject: (Name, Name, Name), now_ms: u64) -> Option<Found> {
        let list = if subject.2 == NO_RELATION {
            &self.objects
        } else {
            &self.usersets
        };
        let position = list
            .binary_search_by(|stored| stored.sort_key().cmp(&subject))
            .ok()?;
        let expires_at_ms = expiry(list[position].expires_at_ms);
        is_live(expires_at_ms, now_ms).then_some(Found { expires_at_ms })
    }
}

fn is_live(expires_at_ms: Option<u64>, now_ms: u64) -> bool {
    expires_at_ms.is_none_or(|expires_at_ms| now_ms < expires_at_ms)
}

fn subject_parts(subject: &SubjectRef) -> (&str, &str, Option<&str>) {
    match subject {
        SubjectRef::Object(object) => {
            (object.object_type.as_str(), object.object_id.as_str(), None)
        }
        SubjectRef::Userset { object, relation } => (
            object.object_type.as_str(),
            object.object_id.as_str(),
            Some(relation.as_str()),
        ),
        SubjectRef::Wildcard(type_name) => (type_name.as_str(), WILDCARD_ID, None),
    }
}

/// One resource id of a reverse entry, with its expiry.
type StoredResource = (Name, Option<u64>);

/// Forward key: (resource type, relation, resource id).
type ForwardKey = (Name, Name, IdKey);

/// Reverse key: (subject type, subject id, subject relation, resource type, relation).
type ReverseKey = (Name, Name, Name, Name, Name);

/// Relationships held in memory, indexed forward (resource → subjects) and in reverse
/// (subject → resources). Writing a relationship that exists replaces its expiry.
#[derive(Debug, Default)]
pub struct InMemoryReader {
    numbers: FxHashMap<Box<str>, Name>,
    strings: Vec<Box<str>>,
    forward: FxHashMap<ForwardKey, SubjectLists>,
    reverse: FxHashMap<ReverseKey, Vec<StoredResource>>,
    relationship_count: usize,
}

impl InMemoryReader {
    /// An empty reader.
    pub fn new() -> Self {
        Self::default()
    }

    /// A reader holding `relationships`.
    pub fn from_relationships<'r>(
        relationships: impl IntoIterator<Item = &'r Relationship>,
    ) -> Self {
        let mut reader = Self::new();
        for relationship in relationships {
            reader.insert(relationship);
        }
        reader
    }

    /// The number of relationships stored (live or expired).
    pub fn len(&self) -> usize {
        self.relationship_count
    }

    /// Whether no relationship is stored.
    pub fn is_empty(&self) -> bool {
        self.relationship_count == 0
    }

    fn intern(&mut self, text: &str) -> Name {
        if let Some(number) = self.numbers.get(text) {
            return *number;
        }
        let number =
            Name::try_from(self.strings.len()).expect("invariant: fewer than 2^32 distinct names");
        assert_ne!(
            number, NO_RELATION,
            "invariant: the last number is reserved"
        );
        self.strings.push(text.into());
        self.numbers.insert(text.into(), number);
        number
    }

    /// The number of a name, if any relationship uses it (a name never written cannot match).
    fn number(&self, text: &str) -> Option<Name> {
        self.numbers.get(text).copied()
    }

    fn string(&self, number: Name) -> &str {
        &self.strings[number as usize]
    }

    fn forward_key(&self, resource: ObjectKey<'_>, relation: &str) -> Option<ForwardKey> {
        let id = match inline_id(resource.object_id) {
            Some(inline) => inline,
            None => IdKey::Interned(self.number(resource.object_id)?),
        };
        Some((
            self.number(resource.object_type)?,
            self.number(relation)?,
            id,
        ))
    }

    fn subject_key(&self, subject: SubjectKey<'_>) -> Option<(Name, Name, Name)> {
        let relation = match subject.subject_relation {
            Some(relation) => self.number(relation)?,
            None => NO_RELATION,
        };
        Some((
            self.number(subject.subject_type)?,
            self.number(subject.subject_id)?,
            relation,
        ))
    }

    fn visit_subject(
        &self,
        stored: &StoredSubject,
        visit: &mut SubjectVisitor<'_>,
    ) -> ControlFlow<()> {
        let key = SubjectKey {
            subject_type: self.string(stored.subject_type),
            subject_id: self.string(stored.subject_id),
            subject_relation: (stored.subject_relation != NO_RELATION)
                .then(|| self.string(stored.subject_relation)),
        };
        visit(key, expiry(stored.expires_at_ms))
    }

    /// Writes one relationship (replacing the expiry of an identical one).
    pub fn insert(&mut self, relationship: &Relationship) {
        let resource_type = self.intern(relationship.resource.object_type.as_str());
        let resource_id = self.intern(relationship.resource.object_id.as_str());
        let relation = self.intern(relationship.relation.as_str());
        let (subject_type, subject_id, subject_relation) = subject_parts(&relationship.subject);
        let subject_type = self.intern(subject_type);
        let subject_id = self.intern(subject_id);
        let subject_relation =
            subject_relation.map_or(NO_RELATION, |relation| self.intern(relation));
        let expires_at_ms = relationship.expires_at_ms;
        let stored_ms = expires_at_ms.unwrap_or(NEVER_MS);
        let stored = StoredSubject {
            subject_type,
            subject_id,
            subject_relation,
            expires_at_ms: stored_ms,
        };
        let id_key = inline_id(relationship.resource.object_id.as_str())
            .unwrap_or(IdKey::Interned(resource_id));
        let lists = self
            .forward
            .entry((resource_type, relation, id_key))
            .or_default();
        let list = if subject_relation == NO_RELATION {
            &mut lists.objects
        } else {
            &mut lists.usersets
        };
        match list.binary_search_by(|existing| existing.sort_key().cmp(&stored.sort_key())) {
            Ok(position) => list[position].expires_at_ms = stored_ms,
            Err(position) => {
                list.insert(position, stored);
                self.relationship_count += 1;
            }
        }
        let reverse_key = (
            subject_type,
            subject_id,
            subject_relation,
            resource_type,
            relation,
        );
        let resources = self.reverse.entry(reverse_key).or_default();
        match resources.binary_search_by(|(id, _)| id.cmp(&resource_id)) {
            Ok(position) => resources[position].1 = expires_at_ms,
            Err(position) => resources.insert(position, (resource_id, expires_at_ms)),
        }
    }
}

impl RelationshipReader for InMemoryReader {
    fn for_each_subject(
        &self,
        resource: ObjectKey<'_>,
        relation: &str,
        filter: SubjectFilter,
        now_ms: u64,
        visit: &mut SubjectVisitor<'_>,
    ) -> Result<(), ReadError> {
        let Some(lists) = self
            .forward_key(resource, relation)
            .and_then(|key| self.forward.get(&key))
        else {
            return Ok(());
        };
        let (objects, usersets): (&[StoredSubject], &[StoredSubject]) = match filter {
            SubjectFilter::All => (&lists.objects, &lists.usersets),
            SubjectFilter::Objects => (&lists.objects, &[]),
            SubjectFilter::Usersets => (&[], &lists.usersets),
        };
        for stored in objects.iter().chain(usersets) {
            if is_live(expiry(stored.expires_at_ms), now_ms)
                && self.visit_subject(stored, visit).is_break()
            {
                break;
            }
        }
        Ok(())
    }

    fn contains(
        &self,
        resource: ObjectKey<'_>,
        relation: &str,
        subject: SubjectKey<'_>,
        now_ms: u64,
    ) -> Result<Option<Found>, ReadError> {
        let Some(lists) = self
            .forward_key(resource, relation)
            .and_then(|key| self.forward.get(&key))
        else {
            return Ok(None);
        };
        Ok(self
            .subject_key(subject)
            .and_then(|subject| lists.find(subject, now_ms)))
    }

    fn find_direct(
        &self,
        resource: ObjectKey<'_>,
        relation: &str,
        probes: &[SubjectKey<'_>],
        usersets: bool,
        now_ms: u64,
        visit: &mut SubjectVisitor<'_>,
    ) -> Result<Option<Found>, ReadError> {
        let Some(lists) = self
            .forward_key(resource, relation)
            .and_then(|key| self.forward.get(&key))
        else {
            return Ok(None);
        };
        for probe in probes {
            if let Some(found) = self
                .subject_key(*probe)
                .and_then(|subject| lists.find(subject, now_ms))
            {
                return Ok(Some(found));
            }
        }
        if usersets {
            for stored in &lists.usersets {
                if is_live(expiry(stored.expires_at_ms), now_ms)
                    && self.visit_subject(stored, visit).is_break()
                {
                    break;
                }
            }
        }
        Ok(None)
    }

    fn for_each_resource(
        &self,
        subject: SubjectKey<'_>,
        resource_type: &str,
        relation: &str,
        now_ms: u64,
        visit: &mut ResourceVisitor<'_>,
    ) -> Result<(), ReadError> {
        let key =
            self.subject_key(subject)
                .and_then(|(subject_type, subject_id, subject_relation)| {
                    Some((
                        subject_type,
                        subject_id,
                        subject_relation,
                        self.number(resource_type)?,
                        self.number(relation)?,
                    ))
                });
        let Some(resources) = key.and_then(|key| self.reverse.get(&key)) else {
            return Ok(());
        };
        for (resource_id, expires_at_ms) in resources {
            if is_live(*expires_at_ms, now_ms)
                && visit(self.string(*resource_id), *expires_at_ms).is_break()
            {
                break;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn relationship(text: &str) -> Relationship {
        Relationship::parse(text).unwrap()
    }

    #[test]
    fn expired_relationships_are_invisible() {
        let reader = InMemoryReader::from_relationships(&[
            relationship("doc:1#viewer@user:ann[expires_at_ms:100]"),
            relationship("doc:1#viewer@group:eng#member"),
        ]);
        let resource = ObjectKey {
            object_type: "doc",
            object_id: "1",
        };
        let ann = SubjectKey {
            subject_type: "user",
            subject_id: "ann",
            subject_relation: None,
        };
        assert!(reader
            .contains(resource, "viewer", ann, 99)
            .unwrap()
            .is_some());
        assert!(reader
            .contains(resource, "viewer", ann, 100)
            .unwrap()
            .is_none());
        let mut seen = Vec::new();
        let mut visit = |subject: SubjectKey<'_>, _| {
            seen.push(format!("{}:{}", subject.subject_type, subject.subject_id));
            ControlFlow::Continue(())
        };
        reader
            .for_each_subject(resource, "viewer", SubjectFilter::All, 100, &mut visit)
            .unwrap();
        assert_eq!(seen, ["group:eng"]);
        let mut resources = Vec::new();
        let mut visit = |id: &str, _| {
            resources.push(id.to_owned());
            ControlFlow::Continue(())
        };
        reader
            .for_each_resource(ann, "doc", "viewer", 50, &mut visit)
            .unwrap();
        assert_eq!(resources, ["1"]);
        assert_eq!(reader.len(), 2);
    }
}

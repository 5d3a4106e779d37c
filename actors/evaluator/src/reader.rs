//! The read interface the evaluator needs from a storage snapshot.
//!
//! Reads are visitor-based: the reader calls `visit` with keys borrowed from its own storage
//! (a B+tree page, a vector), so the hot path allocates nothing per relationship, and a
//! visitor can stop a scan early with [`ControlFlow::Break`]. Every method maps onto one
//! prefix range scan (or one point lookup) over sorted keys:
//!
//! - forward: `resource_type / resource_id / relation / subject...` answers
//!   [`RelationshipReader::for_each_subject`] and [`RelationshipReader::contains`];
//! - reverse: `subject_type / subject_id / subject_relation / resource_type / relation /
//!   resource_id` answers [`RelationshipReader::for_each_resource`].
//!
//! Readers never return expired relationships: a relationship with `expires_at_ms <= now_ms`
//! does not exist for the evaluator. `now_ms` always comes from the caller (never the clock),
//! so a snapshot evaluated at the same `now_ms` always gives the same answer.

use std::ops::ControlFlow;

/// The id of a wildcard subject (`user:*`). Object ids never contain `*`.
pub const WILDCARD_ID: &str = "*";

/// A borrowed object: `type:id`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ObjectKey<'a> {
    /// The object's type name.
    pub object_type: &'a str,
    /// The object's id.
    pub object_id: &'a str,
}

/// A borrowed subject: an object (`user:ann`), a userset (`group:eng#member`) or a wildcard
/// (`user:*`, whose id is [`WILDCARD_ID`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SubjectKey<'a> {
    /// The subject's type name.
    pub subject_type: &'a str,
    /// The subject's id, or [`WILDCARD_ID`].
    pub subject_id: &'a str,
    /// The userset relation, for userset subjects.
    pub subject_relation: Option<&'a str>,
}

impl SubjectKey<'_> {
    /// Whether this is a wildcard subject.
    pub fn is_wildcard(&self) -> bool {
        self.subject_id == WILDCARD_ID
    }
}

/// Which subjects of a forward read the caller wants. Storage may keep usersets in their own
/// key range so that a userset scan skips the (possibly many) plain subjects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SubjectFilter {
    /// Every subject.
    All,
    /// Only plain objects and wildcards.
    Objects,
    /// Only usersets.
    Usersets,
}

/// A live relationship found by [`RelationshipReader::contains`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Found {
    /// When the relationship stops holding, if it expires.
    pub expires_at_ms: Option<u64>,
}

/// A read failed (storage error, corrupted page...). The evaluation that needed it fails.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("relationship read failed: {message}")]
pub struct ReadError {
    /// What went wrong, from the storage engine.
    pub message: String,
}

/// The visitor of a forward read: receives each subject and its expiry time.
pub type SubjectVisitor<'v> = dyn FnMut(SubjectKey<'_>, Option<u64>) -> ControlFlow<()> + 'v;

/// The visitor of a reverse read: receives each resource id and its expiry time.
pub type ResourceVisitor<'v> = dyn FnMut(&str, Option<u64>) -> ControlFlow<()> + 'v;

/// Read access to the relationships of one vault at one revision (a snapshot).
pub trait RelationshipReader {
    /// Visits the live subjects of `resource#relation` that pass `filter`, in an order fixed
    /// by the reader (the evaluator never relies on it).
    fn for_each_subject(
        &self,
        resource: ObjectKey<'_>,
        relation: &str,
        filter: SubjectFilter,
        now_ms: u64,
        visit: &mut SubjectVisitor<'_>,
    ) -> Result<(), ReadError>;

    /// Whether the relationship `resource#relation@subject` exists and is live (one point
    /// lookup; `subject` may be a wildcard or a userset, matched exactly).
    fn contains(
        &self,
        resource: ObjectKey<'_>,
        relation: &str,
        subject: SubjectKey<'_>,
        now_ms: u64,
    ) -> Result<Option<Found>, ReadError>;

    /// The read a direct relation needs, in one call: whether one of `probes` (the subject
    /// itself, its type's wildcard) is stored live on `resource#relation` and, when none is
    /// and `usersets` is set, a visit of the userset subjects. The default makes point
    /// lookups and one range scan; a reader that locates `resource#relation` once (a hash
    /// index, a B+tree leaf that holds the whole prefix) can answer from that one probe.
    #[allow(clippy::too_many_arguments)] // The read's whole input; a struct would only rename it.
    fn find_direct(
        &self,
        resource: ObjectKey<'_>,
        relation: &str,
        probes: &[SubjectKey<'_>],
        usersets: bool,
        now_ms: u64,
        visit: &mut SubjectVisitor<'_>,
    ) -> Result<Option<Found>, ReadError> {
        for probe in probes {
            if let Some(found) = self.contains(resource, relation, *probe, now_ms)? {
                return Ok(Some(found));
            }
        }
        if usersets {
            self.for_each_subject(resource, relation, SubjectFilter::Usersets, now_ms, visit)?;
        }
        Ok(None)
    }

    /// Visits the ids of the live resources of type `resource_type` that have `relation`
    /// to exactly `subject` (a wildcard or userset subject is matched as written).
    fn for_each_resource(
        &self,
        subject: SubjectKey<'_>,
        resource_type: &str,
        relation: &str,
        now_ms: u64,
        visit: &mut ResourceVisitor<'_>,
    ) -> Result<(), ReadError>;
}

//! The compiled schema: the resolved, checked, index-addressed form of an IPL v1 schema that
//! the evaluator runs.
//!
//! Identifiers are dense so the evaluator can use plain vectors instead of maps on its hot
//! path:
//!
//! - [`TypeId`] numbers the types of one schema `0..type_count`, in declaration order.
//! - [`RelationId`] numbers the relations *of one type* `0..relation_count`, in declaration
//!   order, and is only meaningful together with its type. Relations, permissions and forbids
//!   share this numbering (they share one name space per type). [`RelationRef`] is the
//!   global address of a relation: `(TypeId, RelationId)`.
//!
//! Ids are only valid for the schema that produced them: a new schema version may number
//! things differently, so caches key on [`CompiledSchema::fingerprint`].

use std::collections::HashMap;
use std::fmt;

/// Dense index of a type within one compiled schema (declaration order, from 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TypeId(pub u32);

impl TypeId {
    /// The id as a vector index.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// Dense index of a relation, permission or forbid within its type (declaration order,
/// from 0). Only meaningful together with the [`TypeId`] of the type that declares it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RelationId(pub u32);

impl RelationId {
    /// The id as a vector index.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// The schema-wide address of a relation: its type and its id within that type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RelationRef {
    /// The type that declares the relation.
    pub type_id: TypeId,
    /// The relation within that type.
    pub relation_id: RelationId,
}

impl RelationRef {
    /// Builds a reference from its two parts.
    pub fn new(type_id: TypeId, relation_id: RelationId) -> Self {
        Self {
            type_id,
            relation_id,
        }
    }
}

/// The keyword that declared a relation. It does not change what the relation means except
/// for forbids; it is kept so tools can show the schema as written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RelationKeyword {
    /// `relation r: ...` (direct) or `relation r = ...` (computed).
    Relation,
    /// `permission p = ...` (always computed).
    Permission,
    /// `forbid f = ...` (computed) or `forbid f: ...` (direct, stores tuples). When a forbid
    /// holds for (resource, subject), every computed relation of its type is denied for that
    /// subject. Forbids themselves are never filtered by forbids.
    Forbid,
}

/// One subject shape that a direct relation accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AllowedSubject {
    /// `T`: an object of type `T` (`user:alice`).
    Object(TypeId),
    /// `T#r`: a userset, every subject that has `r` on an object of type `T`.
    Userset(TypeId, RelationId),
    /// `T:*`: every object of type `T`, including ids that appear in no relationship.
    Wildcard(TypeId),
}

impl AllowedSubject {
    /// The type of the subject's object.
    pub fn type_id(&self) -> TypeId {
        match *self {
            AllowedSubject::Object(type_id)
            | AllowedSubject::Userset(type_id, _)
            | AllowedSubject::Wildcard(type_id) => type_id,
        }
    }
}

/// What a relation is made of.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RelationKind {
    /// Stores tuples whose subjects have one of the allowed shapes (never empty).
    Direct {
        /// The allowed subject shapes, in declaration order, without duplicates.
        allowed: Vec<AllowedSubject>,
    },
    /// Computed from other relations by an expression; stores no tuples.
    Computed(Expr),
}

/// Where an arrow's target lands on one subject type of its tupleset.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ArrowTarget {
    /// A type of object the tupleset relation may point to.
    pub subject_type: TypeId,
    /// The target relation on that type, or `None` when the type has no relation of that
    /// name: objects of that type then contribute nothing.
    pub relation: Option<RelationId>,
}

/// `tupleset->target`: follow the objects in `tupleset` and evaluate `target` on each.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Arrow {
    /// The relation (on the expression's own type) whose objects are followed. The checker
    /// guarantees it is a direct relation whose allowed subjects are all plain objects.
    pub tupleset: RelationId,
    /// The target relation's name as written.
    pub target_name: String,
    /// One entry per object type the tupleset allows, in the tupleset's declaration order.
    /// At least one entry has a relation.
    pub targets: Vec<ArrowTarget>,
}

impl Arrow {
    /// The target relation on objects of `subject_type`, if that type has it.
    pub fn target_on(&self, subject_type: TypeId) -> Option<RelationId> {
        self.targets
            .iter()
            .find(|target| target.subject_type == subject_type)
            .and_then(|target| target.relation)
    }
}

/// A resolved permission expression. Relation ids refer to the type that declares the
/// expression, except arrow targets, which refer to the tupleset's subject types.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expr {
    /// Another relation of the same type.
    Relation(RelationId),
    /// Any of the operands holds (`a | b | c`, flattened, at least two operands).
    Union(Vec<Expr>),
    /// Every operand holds (`a & b & c`, flattened, at least two operands).
    Intersection(Vec<Expr>),
    /// `base` holds and `subtract` does not (`a - b`; `a - b - c` is `(a - b) - c`).
    Exclusion {
        /// The left side.
        base: Box<Expr>,
        /// The right side: evaluated in a lower stratum, never recursive with this relation.
        subtract: Box<Expr>,
    },
    /// `tupleset->target`.
    Arrow(Arrow),
    /// `module("name")`: a WASM predicate that receives the request and its context.
    Module(String),
}

/// One relation, permission or forbid of a type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RelationDefinition {
    /// The relation's name.
    pub name: String,
    /// The relation's id within its type.
    pub id: RelationId,
    /// The keyword that declared it.
    pub keyword: RelationKeyword,
    /// Direct or computed.
    pub kind: RelationKind,
}

impl RelationDefinition {
    /// Whether it was declared with `permission`.
    pub fn is_permission(&self) -> bool {
        self.keyword == RelationKeyword::Permission
    }

    /// Whether it was declared with `forbid`.
    pub fn is_forbid(&self) -> bool {
        self.keyword == RelationKeyword::Forbid
    }

    /// Whether it stores tuples.
    pub fn is_direct(&self) -> bool {
        matches!(self.kind, RelationKind::Direct { .. })
    }

    /// Whether forbids of its type deny it: every computed relation that is not itself a
    /// forbid. Direct relations are raw data and are never filtered.
    pub fn is_filtered_by_forbids(&self) -> bool {
        !self.is_direct() && !self.is_forbid()
    }

    /// The allowed subject shapes of a direct relation; empty for a computed one.
    pub fn allowed_subjects(&self) -> &[AllowedSubject] {
        match &self.kind {
            RelationKind::Direct { allowed } => allowed,
            RelationKind::Computed(_) => &[],
        }
    }

    /// The expression of a computed relation.
    pub fn expression(&self) -> Option<&Expr> {
        match &self.kind {
            RelationKind::Direct { .. } => None,
            RelationKind::Computed(expression) => Some(expression),
        }
    }
}

/// One type of the schema.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TypeDefinition {
    /// The type's id.
    pub id: TypeId,
    /// The type's name.
    pub name: String,
    /// Relations, permissions and forbids, indexed by [`RelationId`].
    pub relations: Vec<RelationDefinition>,
    /// The forbids of this type, in declaration order.
    pub forbids: Vec<RelationId>,
    pub(crate) relations_by_name: HashMap<String, RelationId>,
}

impl TypeDefinition {
    /// The id of the relation named `name`, if the type has one.
    pub fn relation_id(&self, name: &str) -> Option<RelationId> {
        self.relations_by_name.get(name).copied()
    }

    /// The relation with this id. Panics if the id does not belong to this type.
    pub fn relation(&self, id: RelationId) -> &RelationDefinition {
        &self.relations[id.index()]
    }
}

/// How one relation depends on another. Each edge is stored twice: as an outgoing edge of
/// `from` ([`CompiledSchema::dependencies`]) and as an incoming edge of `to`
/// ([`CompiledSchema::dependents`]), which is what lookup-resources walks backwards.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DependencyKind {
    /// `from` is a direct relation that allows the userset `to` (`relation r: T#to`).
    DirectUserset,
    /// `from`'s expression names `to`, a relation of the same type.
    Computed,
    /// `from`'s expression uses `to` (same type) as the tupleset of an arrow.
    ArrowTupleset,
    /// `from`'s expression has `tupleset->target` where `to` is `target` on one of the
    /// tupleset's subject types; `tupleset` is a relation of `from`'s type.
    Arrow {
        /// The tupleset relation, on `from`'s type.
        tupleset: RelationId,
    },
    /// `to` is a forbid of `from`'s type, and `from` is a computed relation it filters.
    Forbid,
}

/// One edge of the dependency graph.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Dependency {
    /// The relation whose meaning depends on `to`.
    pub from: RelationRef,
    /// The relation depended on.
    pub to: RelationRef,
    /// How.
    pub kind: DependencyKind,
    /// Whether `from` depends on `to` negatively: `to` is inside the right side of an
    /// exclusion, or is a forbid. The checker guarantees no cycle contains such an edge.
    pub negative: bool,
}

/// A direct relation that accepts subjects of some type, for walking from a subject to the
/// relations that may hold it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SubjectUse {
    /// The direct relation.
    pub relation: RelationRef,
    /// The subject shape it accepts.
    pub subject: AllowedSubject,
}

/// A BLAKE3 hash of the schema's canonical text: two sources that format the same (differing
/// only in layout and comments) have the same fingerprint.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SchemaFingerprint(pub [u8; 32]);

impl SchemaFingerprint {
    /// The fingerprint of a canonical text.
    pub fn of_canonical_text(text: &str) -> Self {
        Self(*blake3::hash(text.as_bytes()).as_bytes())
    }

    /// The full 32-byte hash.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The first 8 bytes as a little-endian integer, for compact cache keys.
    pub fn as_u64(&self) -> u64 {
        let mut first = [0_u8; 8];
        first.copy_from_slice(&self.0[..8]);
        u64::from_le_bytes(first)
    }

    /// The full hash as 64 lowercase hex digits.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|byte| format!("{byte:02x}")).collect()
    }
}

impl fmt::Display for SchemaFingerprint {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.to_hex())
    }
}

impl fmt::Debug for SchemaFingerprint {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "SchemaFingerprint({})", self.to_hex())
    }
}

/// A schema that passed every check. Immutable; share it behind an `Arc`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompiledSchema {
    pub(crate) types: Vec<TypeDefinition>,
    pub(crate) types_by_name: HashMap<String, TypeId>,
    /// Outgoing edges, indexed `[type][relation]`.
    pub(crate) dependencies: Vec<Vec<Vec<Dependency>>>,
    /// Incoming edges, indexed `[type][relation]`.
    pub(crate) dependents: Vec<Vec<Vec<Dependency>>>,
    /// Direct relations accepting each subject type, indexed `[subject type]`.
    pub(crate) subject_uses: Vec<Vec<SubjectUse>>,
    pub(crate) canonical_text: String,
    pub(crate) fingerprint: SchemaFingerprint,
}

impl CompiledSchema {
    /// All types, indexed by [`TypeId`].
    pub fn types(&self) -> &[TypeDefinition] {
        &self.types
    }

    /// The number of types.
    pub fn type_count(&self) -> usize {
        self.types.len()
    }

    /// The id of the type named `name`.
    pub fn type_id(&self, name: &str) -> Option<TypeId> {
        self.types_by_name.get(name).copied()
    }

    /// The type with this id. Panics if the id is not from this schema.
    pub fn type_definition(&self, type_id: TypeId) -> &TypeDefinition {
        &self.types[type_id.index()]
    }

    /// The type with this id, or `None` if the id is not from this schema.
    pub fn get_type(&self, type_id: TypeId) -> Option<&TypeDefinition> {
        self.types.get(type_id.index())
    }

    /// The name of a type. Panics if the id is not from this schema.
    pub fn type_name(&self, type_id: TypeId) -> &str {
        &self.type_definition(type_id).name
    }

    /// The id of relation `name` on `type_id`.
    pub fn relation_id(&self, type_id: TypeId, name: &str) -> Option<RelationId> {
        self.get_type(type_id)?.relation_id(name)
    }

    /// Looks a relation up by type and relation name.
    pub fn resolve(&self, type_name: &str, relation_name: &str) -> Option<RelationRef> {
        let type_id = self.type_id(type_name)?;
        let relation_id = self.relation_id(type_id, relation_name)?;
        Some(RelationRef::new(type_id, relation_id))
    }

    /// The relation at this address. Panics if the address is not from this schema.
    pub fn relation(&self, relation: RelationRef) -> &RelationDefinition {
        self.type_definition(relation.type_id)
            .relation(relation.relation_id)
    }

    /// The name of a relation. Panics if the address is not from this schema.
    pub fn relation_name(&self, type_id: TypeId, relation_id: RelationId) -> &str {
        &self.type_definition(type_id).relation(relation_id).name
    }

    /// Every relation of every type, in id order (types first, then relations).
    pub fn relation_refs(&self) -> impl Iterator<Item = RelationRef> + '_ {
        self.types.iter().flat_map(|definition| {
            definition
                .relations
                .iter()
                .map(|relation| RelationRef::new(definition.id, relation.id))
        })
    }

    /// The forbids of a type. Panics if the id is not from this schema.
    pub fn forbids(&self, type_id: TypeId) -> &[RelationId] {
        &self.type_definition(type_id).forbids
    }

    /// The relations `relation` depends on (outgoing edges).
    pub fn dependencies(&self, relation: RelationRef) -> &[Dependency] {
        &self.dependencies[relation.type_id.index()][relation.relation_id.index()]
    }

    /// The relations that depend on `relation` (incoming edges): what lookup-resources
    /// walks from a relation back to the relations and permissions it feeds.
    pub fn dependents(&self, relation: RelationRef) -> &[Dependency] {
        &self.dependents[relation.type_id.index()][relation.relation_id.index()]
    }

    /// The direct relations that accept subjects of `subject_type` as objects, usersets or
    /// wildcards: where lookup-resources starts from a subject.
    pub fn subject_uses(&self, subject_type: TypeId) -> &[SubjectUse] {
        &self.subject_uses[subject_type.index()]
    }

    /// The schema in canonical form (the formatter's output).
    pub fn canonical_text(&self) -> &str {
        &self.canonical_text
    }

    /// The BLAKE3 hash of [`Self::canonical_text`]; caches key on it.
    pub fn fingerprint(&self) -> SchemaFingerprint {
        self.fingerprint
    }
}

//! The syntax tree of an IPL v1 schema, as written: names are unresolved strings, and every
//! node that a diagnostic can point at carries a [`Span`]. Equality ignores spans (see
//! [`Name`]), so a re-parsed formatted schema equals the original.

use crate::compiled::RelationKeyword;
use crate::diagnostics::Span;

/// A name and where it was written. Two names are equal when their text is, wherever they
/// are.
#[derive(Clone, Debug, Eq)]
pub struct Name {
    /// The name.
    pub text: String,
    /// Where it was written.
    pub span: Span,
}

impl PartialEq for Name {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Name {
    /// A name with an empty span, for building trees in code.
    pub fn new(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            span: Span::default(),
        }
    }
}

/// A whole schema: its types in declaration order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Schema {
    /// The `type` declarations.
    pub types: Vec<TypeDeclaration>,
}

/// `type name { members }`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TypeDeclaration {
    /// The type's name.
    pub name: Name,
    /// Relations, permissions and forbids in declaration order.
    pub members: Vec<Member>,
}

/// One `relation`, `permission` or `forbid` line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// The keyword that opened it.
    pub keyword: RelationKeyword,
    /// The member's name.
    pub name: Name,
    /// `: subjects` or `= expression`.
    pub body: MemberBody,
}

/// The right-hand side of a member.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MemberBody {
    /// `: T | T#r | T:*` (at least one subject).
    Direct(Vec<Subject>),
    /// `= expression`.
    Computed(Expression),
}

/// One allowed subject of a direct relation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subject {
    /// The subject's type.
    pub type_name: Name,
    /// Object, userset or wildcard.
    pub shape: SubjectShape,
}

/// The three subject shapes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SubjectShape {
    /// `T`
    Object,
    /// `T#relation`
    Userset(Name),
    /// `T:*`
    Wildcard,
}

/// A permission expression. Parentheses are not kept: the tree's shape says how operands
/// group, and the formatter writes parentheses exactly where the shape needs them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expression {
    /// A relation of the same type.
    Relation(Name),
    /// `a | b | ...` (a chain of one operator at one level is one node, two operands or more).
    Union(Vec<Expression>),
    /// `a & b & ...`
    Intersection(Vec<Expression>),
    /// `base - subtract` (left-associative: `a - b - c` is `(a - b) - c`).
    Exclusion(Box<Expression>, Box<Expression>),
    /// `tupleset->target`
    Arrow {
        /// The relation whose objects are followed.
        tupleset: Name,
        /// The relation evaluated on each of them.
        target: Name,
    },
    /// `module("name")`
    Module(Name),
}

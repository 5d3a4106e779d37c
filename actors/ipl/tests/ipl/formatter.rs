//! Goal: the canonical formatter is stable and faithful: `format(parse(x))` is idempotent
//! and parses back to the same tree (ignoring spans). Method: fixed examples, then proptest
//! over generated syntax trees of every construct and operator nesting.

use inferadb_ipl::ast::{
    Expression, Member, MemberBody, Name, Schema, Subject, SubjectShape, TypeDeclaration,
};
use inferadb_ipl::{format, format_source, parse, RelationKeyword};
use proptest::prelude::*;

#[test]
fn canonical_layout() {
    let source = "type user{}type group{relation member:user|group#member}\n\
                  type doc {  relation viewer :user| user:*  permission view=viewer-(a|b)&c\n\
                  forbid f: user forbid g = parent->x }";
    let expected = "type user {}\n\
                    \n\
                    type group {\n    relation member: user | group#member\n}\n\
                    \n\
                    type doc {\n    relation viewer: user | user:*\n\
                    \x20   permission view = viewer - (a | b) & c\n\
                    \x20   forbid f: user\n    forbid g = parent->x\n}\n";
    assert_eq!(format_source(source).unwrap(), expected);
}

#[test]
fn parentheses_only_where_needed() {
    let cases = [
        ("(a | b) | c", "(a | b) | c"),
        ("a | (b & c)", "a | b & c"),
        ("(a - b) - c", "a - b - c"),
        ("a - (b - c)", "a - (b - c)"),
        ("a & (b | c)", "a & (b | c)"),
        ("(a & b) - c", "(a & b) - c"),
        ("a - (p->q)", "a - p->q"),
        ("((module(\"m\")))", "module(\"m\")"),
        ("a & (b & c)", "a & (b & c)"),
    ];
    for (input, expected) in cases {
        let source = format!("type t {{ permission p = {input} }}");
        let formatted = format_source(&source).unwrap();
        assert_eq!(
            formatted,
            format!("type t {{\n    permission p = {expected}\n}}\n"),
            "{input}"
        );
    }
}

#[test]
fn empty_schema_formats_to_nothing() {
    assert_eq!(format_source("// nothing\n").unwrap(), "");
}

#[test]
fn architecture_example_is_idempotent_and_faithful() {
    let first = format_source(super::ARCHITECTURE_EXAMPLE).unwrap();
    assert_eq!(format_source(&first).unwrap(), first);
    assert_eq!(
        parse(&first).unwrap(),
        parse(super::ARCHITECTURE_EXAMPLE).unwrap()
    );
}

#[test]
fn format_source_reports_syntax_errors() {
    assert!(format_source("type {").is_err());
}

const KEYWORDS: [&str; 5] = ["type", "relation", "permission", "forbid", "module"];

fn name() -> impl Strategy<Value = Name> {
    "[a-z][a-z0-9_]{0,8}"
        .prop_filter("keywords are not names", |text| {
            !KEYWORDS.contains(&text.as_str())
        })
        .prop_map(Name::new)
}

fn leaf() -> impl Strategy<Value = Expression> {
    prop_oneof![
        4 => name().prop_map(Expression::Relation),
        2 => (name(), name()).prop_map(|(tupleset, target)| Expression::Arrow { tupleset, target }),
        1 => "[a-zA-Z0-9_./ -]{0,12}".prop_map(|text| Expression::Module(Name::new(text))),
    ]
}

fn expression() -> impl Strategy<Value = Expression> {
    leaf().prop_recursive(5, 32, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 2..4).prop_map(Expression::Union),
            prop::collection::vec(inner.clone(), 2..4).prop_map(Expression::Intersection),
            (inner.clone(), inner).prop_map(|(base, subtract)| Expression::Exclusion(
                Box::new(base),
                Box::new(subtract)
            )),
        ]
    })
}

fn subject() -> impl Strategy<Value = Subject> {
    let shape = prop_oneof![
        Just(SubjectShape::Object),
        Just(SubjectShape::Wildcard),
        name().prop_map(SubjectShape::Userset),
    ];
    (name(), shape).prop_map(|(type_name, shape)| Subject { type_name, shape })
}

fn member() -> impl Strategy<Value = Member> {
    let keyword = prop_oneof![
        Just(RelationKeyword::Relation),
        Just(RelationKeyword::Permission),
        Just(RelationKeyword::Forbid),
    ];
    let body = prop_oneof![
        prop::collection::vec(subject(), 1..4).prop_map(MemberBody::Direct),
        expression().prop_map(MemberBody::Computed),
    ];
    (keyword, name(), body).prop_map(|(keyword, name, body)| {
        // A permission is always computed: give a direct body to a relation instead.
        let keyword = match (&body, keyword) {
            (MemberBody::Direct(_), RelationKeyword::Permission) => RelationKeyword::Relation,
            (_, keyword) => keyword,
        };
        Member {
            keyword,
            name,
            body,
        }
    })
}

fn schema() -> impl Strategy<Value = Schema> {
    let declaration = (name(), prop::collection::vec(member(), 0..5))
        .prop_map(|(name, members)| TypeDeclaration { name, members });
    prop::collection::vec(declaration, 0..5).prop_map(|types| Schema { types })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn formatted_tree_parses_back_to_itself(schema in schema()) {
        let text = format(&schema);
        let reparsed = parse(&text).map_err(|diagnostics| {
            TestCaseError::fail(format!("{diagnostics}\n{text}"))
        })?;
        prop_assert_eq!(&reparsed, &schema, "{}", text);
        prop_assert_eq!(format(&reparsed), text);
    }
}

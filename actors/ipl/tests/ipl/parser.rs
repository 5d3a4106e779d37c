//! Goal: every construct of IPL v1 parses to the tree it should. Method: parse small schemas
//! and compare with trees built by hand (equality ignores spans).

use inferadb_ipl::ast::{Expression, Member, MemberBody, Name, Schema, Subject, SubjectShape};
use inferadb_ipl::{parse, RelationKeyword};

fn name(text: &str) -> Name {
    Name::new(text)
}

fn relation(text: &str) -> Expression {
    Expression::Relation(name(text))
}

/// Parses `permission p = <expression>` inside a type and returns the expression.
fn expression(text: &str) -> Expression {
    let source = format!("type t {{\n    permission p = {text}\n}}");
    let schema = parse(&source).unwrap_or_else(|diagnostics| panic!("{diagnostics}"));
    match &schema.types[0].members[0].body {
        MemberBody::Computed(expression) => expression.clone(),
        MemberBody::Direct(_) => panic!("expected a computed member"),
    }
}

fn only_member(source: &str) -> Member {
    let schema = parse(source).unwrap_or_else(|diagnostics| panic!("{diagnostics}"));
    schema.types[0].members[0].clone()
}

#[test]
fn empty_source_is_an_empty_schema() {
    assert_eq!(parse("").unwrap(), Schema::default());
    assert_eq!(
        parse("  // only a comment\n/* and another */\n").unwrap(),
        Schema::default()
    );
}

#[test]
fn empty_type() {
    let schema = parse("type user {}").unwrap();
    assert_eq!(schema.types.len(), 1);
    assert_eq!(schema.types[0].name.text, "user");
    assert!(schema.types[0].members.is_empty());
}

#[test]
fn type_name_span_points_at_the_name() {
    let schema = parse("type user {}").unwrap();
    assert_eq!(schema.types[0].name.span.start, 5);
    assert_eq!(schema.types[0].name.span.end, 9);
}

#[test]
fn direct_relation_with_every_subject_shape() {
    let member = only_member("type doc { relation viewer: user | group#member | user:* }");
    assert_eq!(member.keyword, RelationKeyword::Relation);
    assert_eq!(member.name.text, "viewer");
    let expected = vec![
        Subject {
            type_name: name("user"),
            shape: SubjectShape::Object,
        },
        Subject {
            type_name: name("group"),
            shape: SubjectShape::Userset(name("member")),
        },
        Subject {
            type_name: name("user"),
            shape: SubjectShape::Wildcard,
        },
    ];
    assert_eq!(member.body, MemberBody::Direct(expected));
}

#[test]
fn subjects_may_span_lines() {
    let member = only_member("type doc {\n relation viewer: user\n   | group#member\n}");
    let MemberBody::Direct(subjects) = member.body else {
        panic!("direct")
    };
    assert_eq!(subjects.len(), 2);
}

#[test]
fn permission_is_computed() {
    let member = only_member("type doc { permission view = viewer }");
    assert_eq!(member.keyword, RelationKeyword::Permission);
    assert_eq!(member.body, MemberBody::Computed(relation("viewer")));
}

#[test]
fn relation_with_expression_is_computed() {
    let member = only_member("type doc { relation view = viewer }");
    assert_eq!(member.keyword, RelationKeyword::Relation);
    assert_eq!(member.body, MemberBody::Computed(relation("viewer")));
}

#[test]
fn forbid_with_expression() {
    let member = only_member("type doc { forbid banned_here = parent->banned }");
    assert_eq!(member.keyword, RelationKeyword::Forbid);
    let arrow = Expression::Arrow {
        tupleset: name("parent"),
        target: name("banned"),
    };
    assert_eq!(member.body, MemberBody::Computed(arrow));
}

#[test]
fn forbid_with_subject_types() {
    let member = only_member("type doc { forbid banned: user | user:* }");
    assert_eq!(member.keyword, RelationKeyword::Forbid);
    assert!(matches!(member.body, MemberBody::Direct(ref subjects) if subjects.len() == 2));
}

#[test]
fn union_chain_is_one_node() {
    let expected = Expression::Union(vec![relation("a"), relation("b"), relation("c")]);
    assert_eq!(expression("a | b | c"), expected);
}

#[test]
fn intersection_chain_is_one_node() {
    let expected = Expression::Intersection(vec![relation("a"), relation("b"), relation("c")]);
    assert_eq!(expression("a & b & c"), expected);
}

#[test]
fn exclusion_is_left_associative() {
    let inner = Expression::Exclusion(Box::new(relation("a")), Box::new(relation("b")));
    let expected = Expression::Exclusion(Box::new(inner), Box::new(relation("c")));
    assert_eq!(expression("a - b - c"), expected);
}

#[test]
fn union_binds_loosest_then_intersection_then_exclusion() {
    // a | b & c - d  ==  a | (b & (c - d))
    let exclusion = Expression::Exclusion(Box::new(relation("c")), Box::new(relation("d")));
    let intersection = Expression::Intersection(vec![relation("b"), exclusion]);
    let expected = Expression::Union(vec![relation("a"), intersection]);
    assert_eq!(expression("a | b & c - d"), expected);
}

#[test]
fn arrow_binds_tighter_than_exclusion() {
    let arrow = Expression::Arrow {
        tupleset: name("parent"),
        target: name("view"),
    };
    let expected = Expression::Exclusion(Box::new(arrow), Box::new(relation("blocked")));
    assert_eq!(expression("parent->view - blocked"), expected);
}

#[test]
fn parentheses_group_and_are_not_kept() {
    let union = Expression::Union(vec![relation("a"), relation("b")]);
    let expected = Expression::Exclusion(Box::new(union), Box::new(relation("c")));
    assert_eq!(expression("(a | b) - c"), expected);
    assert_eq!(expression("((a))"), relation("a"));
}

#[test]
fn parenthesized_union_inside_union_stays_nested() {
    let inner = Expression::Union(vec![relation("b"), relation("c")]);
    let expected = Expression::Union(vec![relation("a"), inner]);
    assert_eq!(expression("a | (b | c)"), expected);
}

#[test]
fn module_call() {
    assert_eq!(
        expression("module(\"ip_allowlist\")"),
        Expression::Module(name("ip_allowlist"))
    );
    let expected =
        Expression::Intersection(vec![relation("viewer"), Expression::Module(name("m"))]);
    assert_eq!(expression("viewer & module(\"m\")"), expected);
}

#[test]
fn comments_are_ignored_everywhere() {
    let source = "// schema\ntype /* inline */ user {} // trailing\n/* multi\nline */ type doc {\n\
                  relation viewer: user // who may view\n}";
    let schema = parse(source).unwrap();
    assert_eq!(schema.types.len(), 2);
    assert_eq!(schema.types[1].members.len(), 1);
}

#[test]
fn members_need_no_separators_and_may_share_a_line() {
    let schema =
        parse("type doc { relation a: user relation b: user permission c = a | b }").unwrap();
    assert_eq!(schema.types[0].members.len(), 3);
}

#[test]
fn names_may_contain_digits_and_underscores() {
    let schema = parse("type user_2 {} type doc { relation owner__direct: user_2 }").unwrap();
    assert_eq!(schema.types[0].name.text, "user_2");
    assert_eq!(schema.types[1].members[0].name.text, "owner__direct");
}

#[test]
fn keyword_suffixed_with_underscore_is_a_name() {
    let schema = parse("type module_ {} type permission_ { relation type_: module_ }").unwrap();
    assert_eq!(schema.types[1].members[0].name.text, "type_");
}

#[test]
fn the_architecture_example_parses() {
    let schema = parse(super::ARCHITECTURE_EXAMPLE).unwrap();
    let names: Vec<&str> = schema.types.iter().map(|t| t.name.text.as_str()).collect();
    assert_eq!(names, ["user", "group", "folder", "document"]);
    assert_eq!(schema.types[3].members.len(), 7);
}

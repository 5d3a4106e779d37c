//! Goal: the compiler accepts a schema exactly when its negation is stratified. Method:
//! proptest generates schemas that always resolve (three types with the same five members,
//! random expressions, arrows and userset subjects), computes the dependency graph
//! independently from the syntax tree, and compares the compiler's verdict with a naive
//! oracle: unstratified iff some negative edge `u -> v` has a path `v ->* u`.

use std::collections::{HashSet, VecDeque};

use inferadb_ipl::{compile, DiagnosticKind};
use proptest::prelude::*;

const TYPES: usize = 3;
/// Members per type: r0 direct (objects of every type, the arrow tupleset), r1 direct with
/// usersets, r2 and r3 computed permissions, r4 a computed forbid (or absent).
const MEMBERS: usize = 5;

#[derive(Clone, Debug)]
enum Generated {
    Relation(usize),
    Arrow(usize),
    Union(Vec<Generated>),
    Intersection(Vec<Generated>),
    Exclusion(Box<Generated>, Box<Generated>),
}

fn generated() -> impl Strategy<Value = Generated> {
    let leaf = prop_oneof![
        (0..MEMBERS).prop_map(Generated::Relation),
        (0..MEMBERS).prop_map(Generated::Arrow),
    ];
    leaf.prop_recursive(3, 12, 3, |inner| {
        // Exclusions are rarer so that both verdicts are common (about a quarter accepted).
        prop_oneof![
            3 => prop::collection::vec(inner.clone(), 2..3).prop_map(Generated::Union),
            3 => prop::collection::vec(inner.clone(), 2..3).prop_map(Generated::Intersection),
            1 => (inner.clone(), inner)
                .prop_map(|(a, b)| Generated::Exclusion(Box::new(a), Box::new(b))),
        ]
    })
}

#[derive(Clone, Debug)]
struct TypeShape {
    /// Userset subjects of r1: (type, member).
    usersets: Vec<(usize, usize)>,
    r2: Generated,
    r3: Generated,
    forbid: Option<Generated>,
}

fn type_shape() -> impl Strategy<Value = TypeShape> {
    (
        prop::collection::hash_set((0..TYPES, 0..MEMBERS), 0..3),
        generated(),
        generated(),
        prop::option::weighted(0.25, generated()),
    )
        .prop_map(|(usersets, r2, r3, forbid)| TypeShape {
            usersets: usersets.into_iter().collect(),
            r2,
            r3,
            forbid,
        })
}

fn text(expression: &Generated) -> String {
    match expression {
        Generated::Relation(member) => format!("r{member}"),
        Generated::Arrow(member) => format!("r0->r{member}"),
        Generated::Union(operands) => {
            format!(
                "({})",
                operands.iter().map(text).collect::<Vec<_>>().join(" | ")
            )
        }
        Generated::Intersection(operands) => {
            format!(
                "({})",
                operands.iter().map(text).collect::<Vec<_>>().join(" & ")
            )
        }
        Generated::Exclusion(base, subtract) => format!("({} - {})", text(base), text(subtract)),
    }
}

fn source(shapes: &[TypeShape]) -> String {
    let mut source = String::new();
    let all_types: Vec<String> = (0..TYPES).map(|index| format!("t{index}")).collect();
    for (index, shape) in shapes.iter().enumerate() {
        let mut r1 = all_types.clone();
        r1.extend(shape.usersets.iter().map(|(t, m)| format!("t{t}#r{m}")));
        source.push_str(&format!(
            "type t{index} {{\n relation r0: {}\n",
            all_types.join(" | ")
        ));
        source.push_str(&format!(" relation r1: {}\n", r1.join(" | ")));
        source.push_str(&format!(" permission r2 = {}\n", text(&shape.r2)));
        source.push_str(&format!(" permission r3 = {}\n", text(&shape.r3)));
        match &shape.forbid {
            Some(forbid) => source.push_str(&format!(" forbid r4 = {}\n}}\n", text(forbid))),
            None => source.push_str(" relation r4: t0\n}\n"),
        }
    }
    source
}

type Node = (usize, usize);

fn expression_edges(
    from: Node,
    expression: &Generated,
    negative: bool,
    edges: &mut Vec<(Node, Node, bool)>,
) {
    match expression {
        Generated::Relation(member) => edges.push((from, (from.0, *member), negative)),
        Generated::Arrow(member) => {
            edges.push((from, (from.0, 0), negative));
            for target_type in 0..TYPES {
                edges.push((from, (target_type, *member), negative));
            }
        }
        Generated::Union(operands) | Generated::Intersection(operands) => {
            for operand in operands {
                expression_edges(from, operand, negative, edges);
            }
        }
        Generated::Exclusion(base, subtract) => {
            expression_edges(from, base, negative, edges);
            expression_edges(from, subtract, true, edges);
        }
    }
}

fn oracle_is_stratified(shapes: &[TypeShape]) -> bool {
    let mut edges = Vec::new();
    for (index, shape) in shapes.iter().enumerate() {
        for &userset in &shape.usersets {
            edges.push(((index, 1), userset, false));
        }
        expression_edges((index, 2), &shape.r2, false, &mut edges);
        expression_edges((index, 3), &shape.r3, false, &mut edges);
        if let Some(forbid) = &shape.forbid {
            expression_edges((index, 4), forbid, false, &mut edges);
            edges.push(((index, 2), (index, 4), true));
            edges.push(((index, 3), (index, 4), true));
        }
    }
    let reaches = |start: Node, goal: Node| {
        let mut seen = HashSet::from([start]);
        let mut queue = VecDeque::from([start]);
        while let Some(node) = queue.pop_front() {
            if node == goal {
                return true;
            }
            for &(from, to, _) in &edges {
                if from == node && seen.insert(to) {
                    queue.push_back(to);
                }
            }
        }
        false
    };
    edges
        .iter()
        .filter(|edge| edge.2)
        .all(|&(from, to, _)| !reaches(to, from))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn accepted_exactly_when_stratified(
        shapes in prop::collection::vec(type_shape(), TYPES..=TYPES)
    ) {
        let source = source(&shapes);
        let expected = oracle_is_stratified(&shapes);
        match compile(&source) {
            Ok(_) => prop_assert!(expected, "accepted an unstratified schema:\n{}", source),
            Err(diagnostics) => {
                let only_stratification = diagnostics
                    .errors
                    .iter()
                    .all(|error| error.kind == DiagnosticKind::UnstratifiedRecursion);
                prop_assert!(only_stratification, "{}\n{}", diagnostics, source);
                prop_assert!(!expected, "rejected a stratified schema:\n{}\n{}", diagnostics, source);
            }
        }
    }
}

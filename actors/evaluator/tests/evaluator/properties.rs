//! Property tests against a naive reference model.
//!
//! Goal: on random stratified schemas and random relationships, every operation agrees with
//! the least-fixpoint meaning of IPL. Method: a seeded generator writes a schema (as IPL
//! text, compiled by `inferadb-ipl`, and as a small tree the model reads) in three strata —
//! direct relations, forbids over direct relations, then two layers of computed relations
//! whose subtracted sides only reach lower layers — plus random relationships, some of them
//! expired. The model computes, for each subject, every fact by iterating the rules of each
//! stratum until nothing changes. Then check, batch check, explain and expand agree with the
//! model on every (object, relation, subject), and lookup resources and lookup subjects
//! return exactly the model's sets.

use std::collections::{BTreeSet, HashMap};

use inferadb_evaluator::{
    CheckRequest, Evaluator, EvaluatorLimits, InMemoryReader, LookupResourcesRequest,
    LookupSubjectsRequest, ReadView,
};
use inferadb_protocols::{Relationship, Revision, SubjectRef};
use proptest::prelude::*;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::common::compile;

const IDS: [&str; 3] = ["a", "b", "c"];
const USERS: [&str; 3] = ["u0", "u1", "u2"];
const NOW_MS: u64 = 1_000;
// Relation positions inside every generated type.
const D0: usize = 0;
const D1: usize = 1;
const P: usize = 2;
const C0: usize = 3;
const C1: usize = 4;
const E0: usize = 5;
const F0: usize = 6;
const NAMES: [&str; 7] = ["d0", "d1", "p", "c0", "c1", "e0", "f0"];

#[derive(Clone, Debug)]
enum Expression {
    Relation(usize),
    Union(Vec<Expression>),
    Intersection(Vec<Expression>),
    Exclusion(Box<Expression>, Box<Expression>),
    /// `p->target` (target by position).
    Arrow(usize),
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Shape {
    Object(usize),
    Wildcard(usize),
    Userset(usize, usize),
}

#[derive(Clone, Debug)]
struct Model {
    /// Per generated type (type `t{n}` is index n + 1; index 0 is `user`).
    direct: Vec<Vec<Vec<Shape>>>,
    computed: Vec<Vec<Expression>>,
    forbid: Vec<Option<Expression>>,
    /// `(type, id, relation, subject, live)`.
    tuples: Vec<(usize, &'static str, usize, Subject, bool)>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Subject {
    Object(usize, &'static str),
    Wildcard(usize),
    Userset(usize, &'static str, usize),
}

fn type_name(type_index: usize) -> String {
    if type_index == 0 {
        "user".to_owned()
    } else {
        format!("t{}", type_index - 1)
    }
}

impl Subject {
    fn text(&self) -> String {
        match self {
            Subject::Object(type_index, id) => format!("{}:{id}", type_name(*type_index)),
            Subject::Wildcard(type_index) => format!("{}:*", type_name(*type_index)),
            Subject::Userset(type_index, id, relation) => {
                format!("{}:{id}#{}", type_name(*type_index), NAMES[*relation])
            }
        }
    }
}

fn leaf(rng: &mut SmallRng, choices: &[Expression]) -> Expression {
    choices[rng.gen_range(0..choices.len())].clone()
}

fn expression(
    rng: &mut SmallRng,
    depth: u32,
    positive: &[Expression],
    negative: &[Expression],
) -> Expression {
    if depth == 0 || rng.gen_bool(0.35) {
        return leaf(rng, positive);
    }
    match rng.gen_range(0..3) {
        0 => Expression::Union(vec![
            expression(rng, depth - 1, positive, negative),
            expression(rng, depth - 1, positive, negative),
        ]),
        1 => Expression::Intersection(vec![
            expression(rng, depth - 1, positive, negative),
            expression(rng, depth - 1, positive, negative),
        ]),
        _ => Expression::Exclusion(
            Box::new(expression(rng, depth - 1, positive, negative)),
            Box::new(expression(rng, depth - 1, negative, negative)),
        ),
    }
}

fn shapes(rng: &mut SmallRng, type_count: usize) -> Vec<Shape> {
    let mut all = vec![Shape::Object(0), Shape::Wildcard(0)];
    for type_index in 1..type_count {
        all.push(Shape::Object(type_index));
        all.push(Shape::Userset(type_index, D0));
        all.push(Shape::Userset(type_index, D1));
    }
    let mut chosen: Vec<Shape> = all.into_iter().filter(|_| rng.gen_bool(0.35)).collect();
    if chosen.is_empty() {
        chosen.push(Shape::Object(0));
    }
    chosen
}

fn generate(seed: u64) -> Model {
    let mut rng = SmallRng::seed_from_u64(seed);
    let type_count = rng.gen_range(2..=3) + 1;
    let use_arrow = Expression::Arrow;
    let layer_one = [
        Expression::Relation(D0),
        Expression::Relation(D1),
        Expression::Relation(C0),
        Expression::Relation(C1),
        use_arrow(D0),
        use_arrow(C0),
        use_arrow(C1),
    ];
    let direct_only = [
        Expression::Relation(D0),
        Expression::Relation(D1),
        use_arrow(D0),
        use_arrow(D1),
    ];
    let mut layer_two = layer_one.to_vec();
    layer_two.extend([Expression::Relation(E0), use_arrow(E0)]);
    let mut model = Model {
        direct: vec![Vec::new()],
        computed: vec![Vec::new()],
        forbid: vec![None],
        tuples: Vec::new(),
    };
    for _ in 1..type_count {
        let mut tupleset: Vec<Shape> = (1..type_count)
            .filter(|_| rng.gen_bool(0.6))
            .map(Shape::Object)
            .collect();
        if tupleset.is_empty() {
            tupleset.push(Shape::Object(1));
        }
        model.direct.push(vec![
            shapes(&mut rng, type_count),
            shapes(&mut rng, type_count),
            tupleset,
        ]);
        let c0 = expression(&mut rng, 2, &layer_one, &direct_only);
        let c1 = expression(&mut rng, 2, &layer_one, &direct_only);
        let e0 = expression(&mut rng, 2, &layer_two, &layer_one);
        model.computed.push(vec![c0, c1, e0]);
        let forbid = rng
            .gen_bool(0.3)
            .then(|| expression(&mut rng, 1, &direct_only, &direct_only));
        // A forbid may not subtract: keep its expression positive.
        model.forbid.push(forbid.map(strip_exclusions));
    }
    add_tuples(&mut rng, &mut model, type_count);
    model
}

fn strip_exclusions(expression: Expression) -> Expression {
    match expression {
        Expression::Exclusion(base, _) => strip_exclusions(*base),
        Expression::Union(children) => {
            Expression::Union(children.into_iter().map(strip_exclusions).collect())
        }
        Expression::Intersection(children) => {
            Expression::Intersection(children.into_iter().map(strip_exclusions).collect())
        }
        other => other,
    }
}

fn add_tuples(rng: &mut SmallRng, model: &mut Model, type_count: usize) {
    let count = rng.gen_range(0..30);
    for _ in 0..count {
        let type_index = rng.gen_range(1..type_count);
        let relation = [D0, D1, P][rng.gen_range(0..3)];
        let allowed = &model.direct[type_index][relation];
        let subject = match &allowed[rng.gen_range(0..allowed.len())] {
            Shape::Object(0) => Subject::Object(0, USERS[rng.gen_range(0..USERS.len())]),
            Shape::Object(subject_type) => {
                Subject::Object(*subject_type, IDS[rng.gen_range(0..IDS.len())])
            }
            Shape::Wildcard(subject_type) => Subject::Wildcard(*subject_type),
            Shape::Userset(subject_type, relation) => {
                Subject::Userset(*subject_type, IDS[rng.gen_range(0..IDS.len())], *relation)
            }
        };
        let live = rng.gen_bool(0.9);
        let id = IDS[rng.gen_range(0..IDS.len())];
        // Writing a relationship again replaces it (and its expiry), as in the store.
        model.tuples.retain(|tuple| {
            (tuple.0, tuple.1, tuple.2, &tuple.3) != (type_index, id, relation, &subject)
        });
        model.tuples.push((type_index, id, relation, subject, live));
    }
}

fn expression_text(expression: &Expression) -> String {
    match expression {
        Expression::Relation(position) => NAMES[*position].to_owned(),
        Expression::Union(children) => {
            format!(
                "({})",
                children
                    .iter()
                    .map(expression_text)
                    .collect::<Vec<_>>()
                    .join(" | ")
            )
        }
        Expression::Intersection(children) => {
            format!(
                "({})",
                children
                    .iter()
                    .map(expression_text)
                    .collect::<Vec<_>>()
                    .join(" & ")
            )
        }
        Expression::Exclusion(base, subtract) => {
            format!(
                "({} - {})",
                expression_text(base),
                expression_text(subtract)
            )
        }
        Expression::Arrow(target) => format!("p->{}", NAMES[*target]),
    }
}

fn shape_text(shape: &Shape) -> String {
    match shape {
        Shape::Object(type_index) => type_name(*type_index),
        Shape::Wildcard(type_index) => format!("{}:*", type_name(*type_index)),
        Shape::Userset(type_index, relation) => {
            format!("{}#{}", type_name(*type_index), NAMES[*relation])
        }
    }
}

fn schema_text(model: &Model) -> String {
    let mut text = String::from("type user {}\n");
    for type_index in 1..model.direct.len() {
        text.push_str(&format!("type {} {{\n", type_name(type_index)));
        for (position, allowed) in model.direct[type_index].iter().enumerate() {
            let shapes: Vec<String> = allowed.iter().map(shape_text).collect();
            text.push_str(&format!(
                "    relation {}: {}\n",
                NAMES[position],
                shapes.join(" | ")
            ));
        }
        for (offset, expression) in model.computed[type_index].iter().enumerate() {
            text.push_str(&format!(
                "    permission {} = {}\n",
                NAMES[C0 + offset],
                expression_text(expression)
            ));
        }
        if let Some(forbid) = &model.forbid[type_index] {
            text.push_str(&format!("    forbid f0 = {}\n", expression_text(forbid)));
        }
        text.push_str("}\n");
    }
    text
}

/// Every fact `(type, id, relation)` that holds for `subject`, by stratified iteration.
fn reference(model: &Model, subject: &Subject) -> BTreeSet<(usize, &'static str, usize)> {
    let mut facts = BTreeSet::new();
    let strata: [&[usize]; 4] = [&[D0, D1, P], &[F0], &[C0, C1], &[E0]];
    for stratum in strata {
        loop {
            let mut changed = false;
            for type_index in 1..model.direct.len() {
                for id in IDS {
                    for &relation in stratum {
                        let key = (type_index, id, relation);
                        if !facts.contains(&key) && holds(model, &facts, subject, key) {
                            facts.insert(key);
                            changed = true;
                        }
                    }
                }
            }
            if !changed {
                break;
            }
        }
    }
    facts
}

type Facts = BTreeSet<(usize, &'static str, usize)>;

fn holds(
    model: &Model,
    facts: &Facts,
    subject: &Subject,
    (type_index, id, relation): (usize, &'static str, usize),
) -> bool {
    if *subject == Subject::Userset(type_index, id, relation) {
        return true;
    }
    match relation {
        D0 | D1 | P => {
            model
                .tuples
                .iter()
                .any(|(tuple_type, tuple_id, tuple_relation, stored, live)| {
                    *live
                        && (*tuple_type, *tuple_id, *tuple_relation) == (type_index, id, relation)
                        && match (stored, subject) {
                            (
                                Subject::Wildcard(wildcard_type),
                                Subject::Object(subject_type, _),
                            ) if wildcard_type == subject_type => true,
                            (Subject::Userset(userset_type, userset_id, userset_relation), _)
                                if stored != subject =>
                            {
                                facts.contains(&(*userset_type, *userset_id, *userset_relation))
                            }
                            _ => stored == subject,
                        }
                })
        }
        F0 => model.forbid[type_index]
            .as_ref()
            .is_some_and(|forbid| evaluate(model, facts, type_index, id, forbid)),
        _ => {
            let expression = &model.computed[type_index][relation - C0];
            evaluate(model, facts, type_index, id, expression)
                && !facts.contains(&(type_index, id, F0))
        }
    }
}

fn evaluate(
    model: &Model,
    facts: &Facts,
    type_index: usize,
    id: &'static str,
    expression: &Expression,
) -> bool {
    match expression {
        Expression::Relation(relation) => facts.contains(&(type_index, id, *relation)),
        Expression::Union(children) => children.iter().any(|child| evaluate(model, facts, type_index, id, child)),
        Expression::Intersection(children) => {
            children.iter().all(|child| evaluate(model, facts, type_index, id, child))
        }
        Expression::Exclusion(base, subtract) => {
            evaluate(model, facts, type_index, id, base) && !evaluate(model, facts, type_index, id, subtract)
        }
        Expression::Arrow(target) => model.tuples.iter().any(|(tuple_type, tuple_id, relation, stored, live)| {
            *live
                && (*tuple_type, *tuple_id, *relation) == (type_index, id, P)
                && matches!(stored, Subject::Object(stored_type, stored_id) if facts.contains(&(*stored_type, *stored_id, *target)))
        }),
    }
}

fn relationships(model: &Model) -> Vec<Relationship> {
    model
        .tuples
        .iter()
        .map(|(type_index, id, relation, subject, live)| {
            let text = format!(
                "{}:{id}#{}@{}",
                type_name(*type_index),
                NAMES[*relation],
                subject.text()
            );
            let relationship = Relationship::parse(&text).unwrap();
            if *live {
                relationship.with_expiry(NOW_MS + 1)
            } else {
                relationship.with_expiry(NOW_MS)
            }
        })
        .collect()
}

fn subjects(model: &Model) -> Vec<Subject> {
    let mut subjects: Vec<Subject> = USERS.iter().map(|user| Subject::Object(0, user)).collect();
    subjects.push(Subject::Object(0, "unseen"));
    subjects.push(Subject::Wildcard(0));
    subjects.push(Subject::Userset(1, "a", D0));
    subjects.push(Subject::Userset(model.direct.len() - 1, "b", C0));
    subjects.push(Subject::Object(1, "a"));
    subjects
}

fn relations_of(model: &Model, type_index: usize) -> Vec<usize> {
    let mut relations = vec![D0, D1, P, C0, C1, E0];
    if model.forbid[type_index].is_some() {
        relations.push(F0);
    }
    relations
}

fn agree_with_reference(seed: u64) {
    let model = generate(seed);
    let schema = schema_text(&model);
    let evaluator = Evaluator::new(compile(&schema));
    let reader = InMemoryReader::from_relationships(&relationships(&model));
    let view = ReadView {
        reader: &reader,
        vault_id: 1,
        revision: Revision(1),
        now_ms: NOW_MS,
    };
    let mut all_requests = Vec::new();
    let mut all_expected = Vec::new();
    for subject in subjects(&model) {
        let facts = reference(&model, &subject);
        let subject_ref: SubjectRef = subject.text().parse().unwrap();
        for type_index in 1..model.direct.len() {
            for relation in relations_of(&model, type_index) {
                check_lookup_resources(
                    &evaluator,
                    &view,
                    &facts,
                    &subject_ref,
                    type_index,
                    relation,
                    &schema,
                );
                for id in IDS {
                    let request = CheckRequest {
                        resource: format!("{}:{id}", type_name(type_index)).parse().unwrap(),
                        permission: NAMES[relation].parse().unwrap(),
                        subject: subject_ref.clone(),
                    };
                    let expected = facts.contains(&(type_index, id, relation));
                    let context = format!(
                        "{}#{}@{subject_ref}\n{schema}\n{:?}",
                        request.resource, NAMES[relation], model.tuples
                    );
                    assert_eq!(
                        evaluator.check(&view, &request).unwrap().allowed,
                        expected,
                        "check {context}"
                    );
                    assert_eq!(
                        evaluator.explain(&view, &request).unwrap().allowed,
                        expected,
                        "explain {context}"
                    );
                    let tree = evaluator
                        .expand(&view, &request.resource, &request.permission)
                        .unwrap()
                        .tree;
                    assert_eq!(
                        tree.contains(&subject_ref),
                        expected,
                        "expand {context}\n{tree}"
                    );
                    all_requests.push(request);
                    all_expected.push(expected);
                }
            }
        }
    }
    let batch: Vec<bool> = evaluator
        .batch_check(&view, &all_requests)
        .into_iter()
        .map(|answer| answer.unwrap().allowed)
        .collect();
    assert_eq!(batch, all_expected, "batch check\n{schema}");
    check_with_cache(&schema, &view, &all_requests, &all_expected);
    check_lookup_subjects(&evaluator, &view, &model, &schema);
}

/// A cached evaluator gives the same answers when it computes them (reusing sub-problems
/// earlier requests shared) and when it serves them from its caches.
fn check_with_cache(
    schema: &str,
    view: &ReadView<'_, InMemoryReader>,
    requests: &[CheckRequest],
    expected: &[bool],
) {
    // Share every userset sub-problem, however cheap, so the cross-request path is
    // exercised on every generated schema.
    let limits = EvaluatorLimits {
        shared_subproblem_work_min: 0,
        ..EvaluatorLimits::default()
    };
    let cached = Evaluator::new(compile(schema))
        .with_limits(limits)
        .with_cache(10_000);
    // First every check as its own request: later ones reuse the sub-problems earlier
    // ones shared. Then a batch and single checks again, answered from the caches.
    for (request, expected) in requests.iter().zip(expected) {
        let allowed = cached.check(view, request).unwrap().allowed;
        assert_eq!(
            allowed, *expected,
            "computed with shared sub-problems: {request:?}\n{schema}"
        );
    }
    let batch: Vec<bool> = cached
        .batch_check(view, requests)
        .into_iter()
        .map(|answer| answer.unwrap().allowed)
        .collect();
    assert_eq!(batch, expected, "cached batch\n{schema}");
    for (request, expected) in requests.iter().zip(expected) {
        let allowed = cached.check(view, request).unwrap().allowed;
        assert_eq!(
            allowed, *expected,
            "served from the cache: {request:?}\n{schema}"
        );
    }
}

fn check_lookup_resources(
    evaluator: &Evaluator,
    view: &ReadView<'_, InMemoryReader>,
    facts: &Facts,
    subject: &SubjectRef,
    type_index: usize,
    relation: usize,
    schema: &str,
) {
    let request = LookupResourcesRequest {
        resource_type: type_name(type_index).parse().unwrap(),
        permission: NAMES[relation].parse().unwrap(),
        subject: subject.clone(),
        cursor: None,
        limit: 2,
    };
    let mut found = Vec::new();
    let mut request = request;
    loop {
        let page = evaluator.lookup_resources(view, &request).unwrap();
        found.extend(page.resource_ids);
        if page.complete {
            break;
        }
        request.cursor = page.cursor;
    }
    let expected: Vec<String> = IDS
        .iter()
        .filter(|id| facts.contains(&(type_index, **id, relation)))
        .map(|id| (*id).to_owned())
        .collect();
    assert_eq!(
        found,
        expected,
        "lookup resources {}#{}@{subject}\n{schema}",
        type_name(type_index),
        NAMES[relation]
    );
}

fn check_lookup_subjects(
    evaluator: &Evaluator,
    view: &ReadView<'_, InMemoryReader>,
    model: &Model,
    schema: &str,
) {
    let user_facts: HashMap<&str, Facts> = USERS
        .iter()
        .copied()
        .chain(["unseen"])
        .map(|user| (user, reference(model, &Subject::Object(0, user))))
        .collect();
    for type_index in 1..model.direct.len() {
        for relation in relations_of(model, type_index) {
            for id in IDS {
                let request = LookupSubjectsRequest {
                    resource: format!("{}:{id}", type_name(type_index)).parse().unwrap(),
                    permission: NAMES[relation].parse().unwrap(),
                    subject_type: "user".parse().unwrap(),
                    subject_relation: None,
                };
                let response = evaluator.lookup_subjects(view, &request).unwrap();
                for (user, facts) in &user_facts {
                    let listed = response.subject_ids.iter().any(|listed| listed == user);
                    let excluded = response
                        .excluded_ids
                        .iter()
                        .any(|excluded| excluded == user);
                    let answer = listed || (response.wildcard && !excluded);
                    let expected = facts.contains(&(type_index, id, relation));
                    assert_eq!(
                        answer, expected,
                        "lookup subjects {}#{} for {user}: {response:?}\n{schema}",
                        request.resource, NAMES[relation]
                    );
                }
            }
        }
    }
    check_userset_lookups(evaluator, view, model, schema);
}

/// Userset lookups (`subject_relation`) list exactly the usersets the model says hold.
fn check_userset_lookups(
    evaluator: &Evaluator,
    view: &ReadView<'_, InMemoryReader>,
    model: &Model,
    schema: &str,
) {
    for (subject_type, subject_relation) in [(1, D0), (model.direct.len() - 1, C0)] {
        let facts: Vec<(&str, Facts)> = IDS
            .iter()
            .map(|id| {
                (
                    *id,
                    reference(model, &Subject::Userset(subject_type, id, subject_relation)),
                )
            })
            .collect();
        for type_index in 1..model.direct.len() {
            for relation in relations_of(model, type_index) {
                for id in IDS {
                    let request = LookupSubjectsRequest {
                        resource: format!("{}:{id}", type_name(type_index)).parse().unwrap(),
                        permission: NAMES[relation].parse().unwrap(),
                        subject_type: type_name(subject_type).parse().unwrap(),
                        subject_relation: Some(NAMES[subject_relation].parse().unwrap()),
                    };
                    let response = evaluator.lookup_subjects(view, &request).unwrap();
                    let expected: Vec<String> = facts
                        .iter()
                        .filter(|(_, facts)| facts.contains(&(type_index, id, relation)))
                        .map(|(userset, _)| (*userset).to_owned())
                        .collect();
                    assert_eq!(
                        response.subject_ids,
                        expected,
                        "userset lookup {}#{} for {}#{}\n{schema}",
                        request.resource,
                        NAMES[relation],
                        type_name(subject_type),
                        NAMES[subject_relation]
                    );
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn every_operation_agrees_with_the_reference_model(seed in any::<u64>()) {
        agree_with_reference(seed);
    }
}

#[test]
fn the_generator_compiles_its_schemas() {
    for seed in 0..200 {
        let model = generate(seed);
        compile(&schema_text(&model));
    }
}

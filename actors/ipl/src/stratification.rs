//! The stratification check. A schema means the least fixpoint of its rules, stratified by
//! negation; that meaning exists only if no relation depends on itself through a negative
//! edge (the right side of `-`, or a forbid filtering a computed relation). We find strongly
//! connected components of the dependency graph and reject every negative edge inside one.

use crate::compiled::{Dependency, DependencyKind, RelationRef, TypeDefinition};
use crate::diagnostics::{push_capped, Diagnostic, DiagnosticKind, Span};
use crate::limits::ERRORS_MAX;
use crate::resolver::Edge;

/// Adds the implicit forbid edges: every computed, non-forbid relation of a type depends
/// negatively on each forbid of that type. The span is the forbid's name.
pub(crate) fn add_forbid_edges(
    types: &[TypeDefinition],
    name_spans: &[Vec<Span>],
    edges: &mut Vec<Edge>,
) {
    for definition in types {
        for relation in definition
            .relations
            .iter()
            .filter(|r| r.is_filtered_by_forbids())
        {
            for forbid in &definition.forbids {
                let dependency = Dependency {
                    from: RelationRef::new(definition.id, relation.id),
                    to: RelationRef::new(definition.id, *forbid),
                    kind: DependencyKind::Forbid,
                    negative: true,
                };
                let span = name_spans[definition.id.index()][forbid.index()];
                edges.push(Edge { dependency, span });
            }
        }
    }
}

/// Dense numbering of every relation in the schema, for graph algorithms.
struct Nodes {
    /// The first node of each type.
    offsets: Vec<usize>,
    /// The relation of each node.
    relations: Vec<RelationRef>,
}

impl Nodes {
    fn new(types: &[TypeDefinition]) -> Self {
        let mut offsets = Vec::with_capacity(types.len());
        let mut relations = Vec::new();
        for definition in types {
            offsets.push(relations.len());
            relations.extend(
                definition
                    .relations
                    .iter()
                    .map(|relation| RelationRef::new(definition.id, relation.id)),
            );
        }
        Self { offsets, relations }
    }

    fn count(&self) -> usize {
        self.relations.len()
    }

    fn index(&self, relation: RelationRef) -> usize {
        self.offsets[relation.type_id.index()] + relation.relation_id.index()
    }
}

/// Reports every negative edge that lies on a cycle.
pub(crate) fn check(
    source: &str,
    types: &[TypeDefinition],
    edges: &[Edge],
    errors: &mut Vec<Diagnostic>,
) {
    let nodes = Nodes::new(types);
    let mut forward = vec![Vec::new(); nodes.count()];
    let mut backward = vec![Vec::new(); nodes.count()];
    for edge in edges {
        let from = nodes.index(edge.dependency.from);
        let to = nodes.index(edge.dependency.to);
        forward[from].push(to);
        backward[to].push(from);
    }
    let component = strongly_connected_components(&forward, &backward);
    // A forbid on a cycle would otherwise be reported once per permission it filters.
    let mut forbids_reported = std::collections::HashSet::new();
    for edge in edges.iter().filter(|edge| edge.dependency.negative) {
        let from = nodes.index(edge.dependency.from);
        let to = nodes.index(edge.dependency.to);
        if component[from] != component[to] {
            continue;
        }
        if errors.len() >= ERRORS_MAX {
            // Each message costs a search of the graph: stop once no more would be kept.
            break;
        }
        if edge.dependency.kind == DependencyKind::Forbid && !forbids_reported.insert(to) {
            continue;
        }
        let cycle = cycle_through(&forward, &component, to, from);
        let names = describe_cycle(types, &nodes, &cycle, edge.dependency.from);
        let message = message_for(types, &edge.dependency, &names);
        push_capped(
            errors,
            DiagnosticKind::UnstratifiedRecursion,
            message,
            edge.span,
            source,
        );
    }
}

fn display(types: &[TypeDefinition], relation: RelationRef) -> String {
    let definition = &types[relation.type_id.index()];
    format!(
        "{}#{}",
        definition.name,
        definition.relation(relation.relation_id).name
    )
}

fn message_for(types: &[TypeDefinition], dependency: &Dependency, cycle: &str) -> String {
    let from = display(types, dependency.from);
    let to = display(types, dependency.to);
    if dependency.kind == DependencyKind::Forbid {
        return format!(
            "unstratified recursion: forbid `{to}` filters `{from}`, but depends on it \
             (cycle: {cycle}); a forbid must not depend on the permissions it denies"
        );
    }
    format!(
        "unstratified recursion: `{from}` uses `{to}` on the right side of `-`, but `{to}` \
         depends on `{from}` (cycle: {cycle}); a relation must not depend on itself through an \
         exclusion"
    )
}

fn describe_cycle(
    types: &[TypeDefinition],
    nodes: &Nodes,
    cycle: &[usize],
    start: RelationRef,
) -> String {
    let mut names = vec![display(types, start)];
    names.extend(
        cycle
            .iter()
            .map(|&node| display(types, nodes.relations[node])),
    );
    names.join(" -> ")
}

/// The nodes of a shortest path `from ->* to` inside one component (both ends included).
fn cycle_through(
    forward: &[Vec<usize>],
    component: &[usize],
    from: usize,
    to: usize,
) -> Vec<usize> {
    let mut previous = vec![usize::MAX; forward.len()];
    let mut queue = std::collections::VecDeque::from([from]);
    previous[from] = from;
    while let Some(node) = queue.pop_front() {
        if node == to {
            break;
        }
        for &next in &forward[node] {
            if previous[next] == usize::MAX && component[next] == component[from] {
                previous[next] = node;
                queue.push_back(next);
            }
        }
    }
    let mut path = vec![to];
    let mut node = to;
    while node != from && previous[node] != usize::MAX {
        node = previous[node];
        path.push(node);
    }
    path.reverse();
    path
}

/// Kosaraju's algorithm, iterative so a long dependency chain cannot overflow the stack.
/// Returns the component number of every node.
fn strongly_connected_components(forward: &[Vec<usize>], backward: &[Vec<usize>]) -> Vec<usize> {
    let count = forward.len();
    let mut visited = vec![false; count];
    let mut order = Vec::with_capacity(count);
    for root in 0..count {
        if visited[root] {
            continue;
        }
        visited[root] = true;
        let mut stack = vec![(root, 0_usize)];
        while let Some((node, next_edge)) = stack.pop() {
            if let Some(&next) = forward[node].get(next_edge) {
                stack.push((node, next_edge + 1));
                if !visited[next] {
                    visited[next] = true;
                    stack.push((next, 0));
                }
            } else {
                order.push(node);
            }
        }
    }
    let mut component = vec![usize::MAX; count];
    let mut components = 0;
    for &root in order.iter().rev() {
        if component[root] != usize::MAX {
            continue;
        }
        let mut stack = vec![root];
        component[root] = components;
        while let Some(node) = stack.pop() {
            for &previous in &backward[node] {
                if component[previous] == usize::MAX {
                    component[previous] = components;
                    stack.push(previous);
                }
            }
        }
        components += 1;
    }
    component
}

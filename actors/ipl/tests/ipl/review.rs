//! Review regression tests (compiler): arrow rules independent of declaration order, and
//! stratification accepting legitimate recursion while rejecting recursion through negation
//! however it closes (userset subjects, forbids reached through other types), with positions.

use inferadb_ipl::{compile, DiagnosticKind};

/// BUG (resolver.rs `tupleset_subject_types`, with the placeholder set in
/// `declare_member`): an arrow whose tupleset is a *computed* relation must be rejected
/// with `arrow-over-computed`, whatever the declaration order. When the computed tupleset
/// is declared after the permission that uses it, the resolver still sees its placeholder
/// (`Direct { allowed: [] }`), finds no subject types and returns `None` without an error
/// (it assumes "unknown types, already reported"): the schema compiles and `doc#view`
/// becomes an empty *direct* relation, so every check of it is silently denied.
#[test]
fn arrow_over_computed_tupleset_declared_later_is_rejected() {
    let source = "
type user {}
type folder { relation viewer: user }
type doc {
    relation parent: folder
    permission view = link->viewer
    permission link = parent
}
";
    match compile(source) {
        Ok(compiled) => {
            let view = compiled.schema.resolve("doc", "view").unwrap();
            let kind = &compiled.schema.relation(view).kind;
            panic!("accepted; doc#view compiled to {kind:?}");
        }
        Err(diagnostics) => assert!(
            diagnostics.has(DiagnosticKind::ArrowOverComputed),
            "{diagnostics}"
        ),
    }
}

/// The same hole with a computed *forbid* (and a `relation p = ...`) as the tupleset: any
/// computed tupleset must be rejected, declared before or after its use.
#[test]
fn arrow_over_any_computed_tupleset_is_rejected_in_either_order() {
    for (first, second) in [
        ("permission view = hidden->viewer", "forbid hidden = parent"),
        ("permission view = link->viewer", "relation link = parent"),
        ("relation link = parent", "permission view = link->viewer"),
    ] {
        let source = format!(
            "type user {{}}\ntype folder {{ relation viewer: user }}\n\
             type doc {{\n relation parent: folder\n {first}\n {second}\n}}\n"
        );
        let result = compile(&source);
        assert!(
            matches!(&result, Err(d) if d.has(DiagnosticKind::ArrowOverComputed)),
            "{source}\n{:?}",
            result.map(|compiled| compiled.schema.canonical_text().to_owned())
        );
    }
}

/// Legitimate recursion is accepted: a forbid recursing through an arrow into the same
/// forbid on the parent (forbids are not filtered by forbids), recursion on the left side
/// of `-`, and mutual recursion between two permissions through usersets and arrows.
#[test]
fn legitimate_recursion_is_accepted() {
    let source = "
type user {}
type group {
    relation member: user | group#member | group#admin
    relation admin: user
    permission everyone = member | admin
}
type folder {
    relation parent: folder
    relation viewer: user | group#everyone
    relation blocked: user
    forbid blocked_deep = blocked | parent->blocked_deep
    permission view = (viewer | parent->view) - blocked
    permission browse = view | parent->peek
    permission peek = browse & viewer
}
";
    let compiled = compile(source);
    assert!(compiled.is_ok(), "{}", compiled.unwrap_err());
}

/// Recursion through negation is rejected however it closes: through a userset subject
/// (`banned: group#allowed` with `allowed = member - banned`), and through a forbid that
/// reaches back to a permission of its own type via another type.
#[test]
fn recursion_through_negation_via_usersets_and_other_types_is_rejected() {
    let through_userset = "
type user {}
type group {
    relation member: user
    relation banned: user | group#allowed
    permission allowed = member - banned
}
";
    let diagnostics = compile(through_userset).unwrap_err();
    assert!(
        diagnostics.has(DiagnosticKind::UnstratifiedRecursion),
        "{diagnostics}"
    );
    let error = &diagnostics.errors[0];
    assert_eq!((error.line, error.column), (6, 35), "{error}");
    let through_forbid = "
type user {}
type folder {
    relation child: doc
    permission hides = child->view
}
type doc {
    relation parent: folder
    relation viewer: user
    permission view = viewer
    forbid hidden = parent->hides
}
";
    let diagnostics = compile(through_forbid).unwrap_err();
    assert!(
        diagnostics.has(DiagnosticKind::UnstratifiedRecursion),
        "{diagnostics}"
    );
    assert_eq!(diagnostics.errors.len(), 1, "{diagnostics}");
    let error = &diagnostics.errors[0];
    assert_eq!((error.line, error.column), (11, 12), "{error}");
}

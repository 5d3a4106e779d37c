//! Goal: the compiled schema resolves every construct to the right ids, keeps the dependency
//! graph the evaluator's lookups need, reports warnings sensibly, and fingerprints the
//! canonical text. Method: compile schemas and inspect the model through its public API.

use inferadb_ipl::{
    compile, AllowedSubject, CompiledSchema, DependencyKind, DiagnosticKind, Expr, RelationId,
    RelationKeyword, RelationKind, RelationRef, TypeId,
};

fn compiled(source: &str) -> CompiledSchema {
    match compile(source) {
        Ok(compiled) => compiled.schema,
        Err(diagnostics) => panic!("{diagnostics}"),
    }
}

fn address(schema: &CompiledSchema, type_name: &str, relation: &str) -> RelationRef {
    schema
        .resolve(type_name, relation)
        .unwrap_or_else(|| panic!("{type_name}#{relation}"))
}

#[test]
fn ids_are_dense_in_declaration_order() {
    let schema = compiled(super::ARCHITECTURE_EXAMPLE);
    assert_eq!(schema.type_count(), 4);
    for (index, name) in ["user", "group", "folder", "document"].iter().enumerate() {
        let type_id = schema.type_id(name).unwrap();
        assert_eq!(type_id, TypeId(index as u32));
        assert_eq!(schema.type_name(type_id), *name);
    }
    let document = schema.type_id("document").unwrap();
    let names: Vec<&str> = schema
        .type_definition(document)
        .relations
        .iter()
        .map(|r| r.name.as_str())
        .collect();
    assert_eq!(
        names,
        [
            "parent",
            "owner",
            "editor",
            "blocked",
            "edit",
            "view",
            "banned_here"
        ]
    );
    assert_eq!(schema.relation_id(document, "view"), Some(RelationId(5)));
    assert_eq!(schema.relation_name(document, RelationId(5)), "view");
    assert_eq!(schema.relation_id(document, "nope"), None);
    assert_eq!(schema.type_id("nope"), None);
    assert!(schema.get_type(TypeId(99)).is_none());
}

#[test]
fn relation_refs_list_every_relation_in_id_order() {
    let schema = compiled(super::ARCHITECTURE_EXAMPLE);
    let all: Vec<RelationRef> = schema.relation_refs().collect();
    assert_eq!(all.len(), 1 + 4 + 7);
    assert_eq!(all[0], address(&schema, "group", "member"));
    assert_eq!(all[11], address(&schema, "document", "banned_here"));
    assert!(all.windows(2).all(|pair| pair[0] < pair[1]));
}

#[test]
fn direct_relations_resolve_every_subject_shape() {
    let schema = compiled(super::ARCHITECTURE_EXAMPLE);
    let user = schema.type_id("user").unwrap();
    let group = schema.type_id("group").unwrap();
    let member = schema.relation_id(group, "member").unwrap();
    let viewer = schema.relation(address(&schema, "folder", "viewer"));
    assert_eq!(viewer.keyword, RelationKeyword::Relation);
    assert!(viewer.is_direct());
    assert_eq!(
        viewer.allowed_subjects(),
        [
            AllowedSubject::Object(user),
            AllowedSubject::Wildcard(user),
            AllowedSubject::Userset(group, member)
        ]
    );
    assert_eq!(viewer.expression(), None);
}

#[test]
fn expressions_resolve_to_ids() {
    let schema = compiled(super::ARCHITECTURE_EXAMPLE);
    let document = schema.type_id("document").unwrap();
    let folder = schema.type_id("folder").unwrap();
    let id = |name| schema.relation_id(document, name).unwrap();
    let view = schema.relation(address(&schema, "document", "view"));
    assert!(view.is_permission());
    let Some(Expr::Exclusion { base, subtract }) = view.expression() else {
        panic!("view is an exclusion: {:?}", view.kind)
    };
    assert_eq!(**subtract, Expr::Relation(id("blocked")));
    let Expr::Union(operands) = &**base else {
        panic!("base is a union")
    };
    assert_eq!(operands[0], Expr::Relation(id("edit")));
    let Expr::Arrow(arrow) = &operands[1] else {
        panic!("arrow")
    };
    assert_eq!(arrow.tupleset, id("parent"));
    assert_eq!(arrow.target_name, "view");
    assert_eq!(arrow.target_on(folder), schema.relation_id(folder, "view"));
    assert_eq!(arrow.target_on(document), None);
}

#[test]
fn nested_chains_of_one_operator_are_flattened() {
    let schema = compiled("type user {}\ntype doc {\n relation a: user\n relation b: user\n\
                           relation c: user\n permission p = a | (b | c)\n permission q = (a & b) & c\n}");
    let doc = schema.type_id("doc").unwrap();
    let p = schema.relation(address(&schema, "doc", "p"));
    let expected: Vec<Expr> = (0..3)
        .map(|index| Expr::Relation(RelationId(index)))
        .collect();
    assert_eq!(p.expression(), Some(&Expr::Union(expected.clone())));
    let q = schema
        .type_definition(doc)
        .relation(schema.relation_id(doc, "q").unwrap());
    assert_eq!(q.expression(), Some(&Expr::Intersection(expected)));
}

#[test]
fn arrow_target_missing_on_some_subject_types_compiles() {
    let schema = compiled(
        "type user {}\ntype organization {}\ntype team {\n relation maintainer: user\n\
                           permission change_name = maintainer\n}\n\
                           type repo {\n relation parent: organization | team\n\
                           permission change_name = parent->change_name\n}",
    );
    let organization = schema.type_id("organization").unwrap();
    let team = schema.type_id("team").unwrap();
    let change_name = schema.relation(address(&schema, "repo", "change_name"));
    let Some(Expr::Arrow(arrow)) = change_name.expression() else {
        panic!("arrow")
    };
    assert_eq!(arrow.targets.len(), 2);
    assert_eq!(arrow.target_on(organization), None);
    assert_eq!(
        arrow.target_on(team),
        schema.relation_id(team, "change_name")
    );
}

#[test]
fn module_and_computed_relation() {
    let schema = compiled(
        "type user {}\ntype doc {\n relation viewer: user\n\
                           relation allowed = viewer & module(\"business_hours\")\n}",
    );
    let allowed = schema.relation(address(&schema, "doc", "allowed"));
    assert_eq!(allowed.keyword, RelationKeyword::Relation);
    assert!(!allowed.is_permission());
    let Some(Expr::Intersection(operands)) = allowed.expression() else {
        panic!()
    };
    assert_eq!(operands[1], Expr::Module("business_hours".to_owned()));
}

#[test]
fn forbids_are_listed_and_filter_computed_relations_only() {
    let schema = compiled(
        "type user {}\ntype doc {\n relation viewer: user\n\
                           permission view = viewer\n relation computed = viewer\n\
                           forbid blocked: user\n forbid hidden = blocked\n}",
    );
    let doc = schema.type_id("doc").unwrap();
    let forbid_names: Vec<&str> = schema
        .forbids(doc)
        .iter()
        .map(|&id| schema.relation_name(doc, id))
        .collect();
    assert_eq!(forbid_names, ["blocked", "hidden"]);
    let blocked = schema.relation(address(&schema, "doc", "blocked"));
    assert!(blocked.is_forbid() && blocked.is_direct());
    let filtered = |name| {
        schema
            .relation(address(&schema, "doc", name))
            .is_filtered_by_forbids()
    };
    assert!(filtered("view") && filtered("computed"));
    assert!(!filtered("viewer") && !filtered("blocked") && !filtered("hidden"));
    let view_forbids: Vec<RelationRef> = schema
        .dependencies(address(&schema, "doc", "view"))
        .iter()
        .filter(|dependency| dependency.kind == DependencyKind::Forbid)
        .map(|dependency| dependency.to)
        .collect();
    assert_eq!(
        view_forbids,
        [
            address(&schema, "doc", "blocked"),
            address(&schema, "doc", "hidden")
        ]
    );
}

#[test]
fn dependents_record_every_way_a_relation_is_used() {
    let schema = compiled(super::ARCHITECTURE_EXAMPLE);
    let folder_view = address(&schema, "folder", "view");
    let parent = schema
        .relation_id(schema.type_id("document").unwrap(), "parent")
        .unwrap();
    let mut uses: Vec<(RelationRef, DependencyKind)> = schema
        .dependents(folder_view)
        .iter()
        .map(|dependency| (dependency.from, dependency.kind))
        .collect();
    uses.sort_by_key(|(from, _)| *from);
    assert_eq!(
        uses,
        [
            (
                folder_view,
                DependencyKind::Arrow {
                    tupleset: address(&schema, "folder", "parent").relation_id
                }
            ),
            (
                address(&schema, "document", "view"),
                DependencyKind::Arrow { tupleset: parent }
            ),
        ]
    );
    let member = address(&schema, "group", "member");
    let userset_users: Vec<RelationRef> = schema
        .dependents(member)
        .iter()
        .map(|dependency| dependency.from)
        .collect();
    assert!(userset_users.contains(&member));
    assert!(userset_users.contains(&address(&schema, "document", "editor")));
    assert!(schema
        .dependents(member)
        .iter()
        .all(|d| d.kind == DependencyKind::DirectUserset));
}

#[test]
fn exclusion_right_side_edges_are_negative() {
    let schema = compiled(super::ARCHITECTURE_EXAMPLE);
    let view = address(&schema, "document", "view");
    for dependency in schema.dependencies(view) {
        let to = schema.relation_name(dependency.to.type_id, dependency.to.relation_id);
        let expect_negative = to == "blocked" || dependency.kind == DependencyKind::Forbid;
        assert_eq!(dependency.negative, expect_negative, "{dependency:?}");
        assert_eq!(dependency.from, view);
    }
}

#[test]
fn dependency_edges_are_deduplicated() {
    let schema = compiled(
        "type user {}\ntype doc {\n relation a: user\n relation b: user\n\
                           permission p = a | (a & b)\n}",
    );
    let p = address(&schema, "doc", "p");
    assert_eq!(schema.dependencies(p).len(), 2);
}

#[test]
fn subject_uses_index_relations_by_subject_type() {
    let schema = compiled(super::ARCHITECTURE_EXAMPLE);
    let user = schema.type_id("user").unwrap();
    let uses = schema.subject_uses(user);
    assert!(uses.iter().any(|subject_use| subject_use.relation
        == address(&schema, "folder", "viewer")
        && subject_use.subject == AllowedSubject::Wildcard(user)));
    assert_eq!(uses.len(), 7, "{uses:?}");
    let group = schema.type_id("group").unwrap();
    assert!(schema
        .subject_uses(group)
        .iter()
        .all(|subject_use| matches!(subject_use.subject, AllowedSubject::Userset(..))));
}

#[test]
fn fingerprint_ignores_layout_and_comments() {
    let tidy = compiled("type user {}\n\ntype doc {\n    relation viewer: user\n}\n");
    let messy = compiled("// hello\ntype   user{ }type doc{relation viewer:user/* c */}");
    assert_eq!(tidy.fingerprint(), messy.fingerprint());
    assert_eq!(tidy.canonical_text(), messy.canonical_text());
    let other = compiled("type user {}\n\ntype doc {\n    relation editor: user\n}\n");
    assert_ne!(tidy.fingerprint(), other.fingerprint());
    assert_eq!(tidy.fingerprint().to_hex().len(), 64);
    assert_eq!(tidy.fingerprint().to_string(), tidy.fingerprint().to_hex());
    assert_ne!(tidy.fingerprint().as_u64(), other.fingerprint().as_u64());
}

#[test]
fn types_may_be_used_before_they_are_declared() {
    let schema = compiled(
        "type doc { relation viewer: user | group#member }\n\
                           type group { relation member: user }\ntype user {}",
    );
    assert_eq!(schema.type_count(), 3);
}

#[test]
fn relation_named_like_a_type_is_fine() {
    let schema =
        compiled("type user {}\ntype group {\n relation user: user\n permission member = user\n}");
    assert!(matches!(
        schema.relation(address(&schema, "group", "user")).kind,
        RelationKind::Direct { .. }
    ));
}

#[test]
fn unused_direct_relation_warns_when_the_type_has_permissions() {
    let result = compile(
        "type user {}\ntype doc {\n relation viewer: user\n relation old: user\n\
                          permission view = viewer\n}",
    )
    .unwrap();
    assert_eq!(result.warnings.len(), 1, "{:?}", result.warnings);
    let warning = &result.warnings[0];
    assert_eq!(warning.kind, DiagnosticKind::UnusedRelation);
    assert_eq!((warning.line, warning.column), (4, 11));
    assert!(warning.message.contains("`doc#old`"), "{warning}");
}

#[test]
fn relations_of_a_type_without_permissions_never_warn() {
    let result =
        compile("type user {}\ntype doc {\n relation viewer: user\n relation owner: user\n}")
            .unwrap();
    assert!(result.warnings.is_empty(), "{:?}", result.warnings);
}

#[test]
fn relations_used_through_arrows_or_usersets_do_not_warn() {
    let result = compile(super::ARCHITECTURE_EXAMPLE).unwrap();
    assert!(result.warnings.is_empty(), "{:?}", result.warnings);
}

#[test]
fn uppercase_names_compile_with_one_warning_per_declaration() {
    let result = compile(
        "type user {}\ntype scopeA { relation public: user:* }\n\
                          type resource { relation access: scopeA#public }",
    )
    .unwrap();
    assert_eq!(result.warnings.len(), 1, "{:?}", result.warnings);
    assert_eq!(result.warnings[0].kind, DiagnosticKind::NonSnakeCaseName);
    assert!(result.warnings[0].message.contains("`scope_a`"));
}

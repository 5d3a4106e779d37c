//! Goal: every error kind is reported, at the right line and column, with a message that
//! names the thing and the rule, and a snippet with a caret; and one run reports every error
//! in a file. Method: compile small broken schemas and inspect the diagnostics.

use inferadb_ipl::{compile, Diagnostic, DiagnosticKind, Diagnostics, Severity};

fn errors(source: &str) -> Diagnostics {
    match compile(source) {
        Ok(_) => panic!("expected errors compiling:\n{source}"),
        Err(diagnostics) => diagnostics,
    }
}

/// Asserts exactly one error, of `kind`, at `line`:`column`, whose message contains each of
/// `fragments`; returns it.
fn single(source: &str, kind: DiagnosticKind, line: usize, column: usize) -> Diagnostic {
    let diagnostics = errors(source);
    assert_eq!(diagnostics.errors.len(), 1, "{diagnostics}");
    let error = diagnostics.errors[0].clone();
    assert_eq!(error.kind, kind, "{error}");
    assert_eq!(error.severity, Severity::Error);
    assert_eq!((error.line, error.column), (line, column), "{error}");
    error
}

fn assert_mentions(diagnostic: &Diagnostic, fragments: &[&str]) {
    for fragment in fragments {
        assert!(
            diagnostic.message.contains(fragment),
            "{fragment:?} not in: {diagnostic}"
        );
    }
}

#[test]
fn unexpected_character() {
    let error = single(
        "type user {}\n  @",
        DiagnosticKind::UnexpectedCharacter,
        2,
        3,
    );
    assert_mentions(&error, &["'@'", "expected"]);
    assert!(error.snippet.ends_with("  ^"), "{}", error.snippet);
}

#[test]
fn non_ascii_character_is_reported_once_with_character_column() {
    let error = single("type user {} é", DiagnosticKind::UnexpectedCharacter, 1, 14);
    assert_mentions(&error, &["'é'"]);
}

#[test]
fn unterminated_comment() {
    let error = single(
        "type user {}\n/* open",
        DiagnosticKind::UnterminatedComment,
        2,
        1,
    );
    assert_mentions(&error, &["`*/`"]);
}

#[test]
fn unterminated_string() {
    let source = "type user {}\ntype doc { permission p = module(\"m) }";
    let diagnostics = errors(source);
    assert_eq!(
        diagnostics.errors[0].kind,
        DiagnosticKind::UnterminatedString
    );
    assert_eq!(
        (diagnostics.errors[0].line, diagnostics.errors[0].column),
        (2, 34)
    );
}

#[test]
fn invalid_name_starting_with_uppercase() {
    let error = single("type User {}", DiagnosticKind::InvalidName, 1, 6);
    assert_mentions(&error, &["`User`", "lowercase", "[a-z][a-z0-9_]{0,63}"]);
}

#[test]
fn invalid_name_starting_with_digit_or_underscore() {
    single("type 1user {}", DiagnosticKind::InvalidName, 1, 6);
    single("type _user {}", DiagnosticKind::InvalidName, 1, 6);
}

#[test]
fn invalid_name_too_long() {
    let long = "a".repeat(65);
    let error = single(
        &format!("type {long} {{}}"),
        DiagnosticKind::InvalidName,
        1,
        6,
    );
    assert_mentions(&error, &["64 characters"]);
    let longest = "a".repeat(64);
    assert!(compile(&format!("type {longest} {{}}")).is_ok());
}

#[test]
fn unexpected_token_says_what_was_expected() {
    let error = single(
        "type user {}\ntype doc { relation viewer user }",
        DiagnosticKind::UnexpectedToken,
        2,
        28,
    );
    assert_mentions(
        &error,
        &[
            "expected `:` (subject types) or `=` (expression)",
            "found name `user`",
        ],
    );
}

#[test]
fn permission_with_subject_types_is_rejected() {
    let error = single(
        "type user {}\ntype doc { permission p: user }",
        DiagnosticKind::UnexpectedToken,
        2,
        24,
    );
    assert_mentions(&error, &["expected `=` after permission `p`", "computed"]);
}

#[test]
fn keyword_as_name_is_rejected_with_a_hint() {
    let error = single(
        "type user {}\ntype doc { relation module: user }",
        DiagnosticKind::UnexpectedToken,
        2,
        21,
    );
    assert_mentions(&error, &["keyword `module`", "reserved", "module_"]);
}

#[test]
fn missing_closing_brace() {
    let error = single(
        "type user {\ntype doc {}",
        DiagnosticKind::UnexpectedToken,
        2,
        1,
    );
    assert_mentions(
        &error,
        &["expected `}` to close the type", "found keyword `type`"],
    );
}

#[test]
fn stray_token_at_top_level() {
    let error = single(
        "relation viewer: user\ntype user {}",
        DiagnosticKind::UnexpectedToken,
        1,
        1,
    );
    assert_mentions(&error, &["expected `type`"]);
}

#[test]
fn wildcard_needs_a_star() {
    let error = single(
        "type user {}\ntype doc { relation v: user:user }",
        DiagnosticKind::UnexpectedToken,
        2,
        29,
    );
    assert_mentions(&error, &["`*` after `:`"]);
}

#[test]
fn expression_needs_an_operand() {
    let error = single(
        "type doc { relation a: doc permission p = a | }",
        DiagnosticKind::UnexpectedToken,
        1,
        47,
    );
    assert_mentions(
        &error,
        &[
            "expected a relation name, `(` or `module(\"name\")`",
            "found `}`",
        ],
    );
}

#[test]
fn unbalanced_parenthesis() {
    let error = single(
        "type doc { relation a: doc permission p = (a\n}",
        DiagnosticKind::UnexpectedToken,
        2,
        1,
    );
    assert_mentions(&error, &["`)` to close `(`"]);
}

#[test]
fn nesting_too_deep_parentheses() {
    let depth = inferadb_ipl::limits::EXPRESSION_DEPTH_MAX + 1;
    let source = format!(
        "type doc {{ relation a: doc\npermission p = {}a{} }}",
        "(".repeat(depth),
        ")".repeat(depth)
    );
    let diagnostics = errors(&source);
    assert!(
        diagnostics.has(DiagnosticKind::NestingTooDeep),
        "{diagnostics}"
    );
}

#[test]
fn nesting_too_deep_exclusion_chain() {
    let chain = vec!["a"; 200].join(" - ");
    let source = format!("type doc {{ relation a: doc\npermission p = {chain} }}");
    let error = single(&source, DiagnosticKind::NestingTooDeep, 2, 16);
    assert_mentions(&error, &["limit is 64"]);
}

#[test]
fn duplicate_type() {
    let error = single(
        "type user {}\n\ntype user {}",
        DiagnosticKind::DuplicateType,
        3,
        6,
    );
    assert_mentions(&error, &["duplicate type `user`", "line 1"]);
}

#[test]
fn duplicate_relation_across_keywords() {
    let source = "type user {}\ntype doc {\n relation view: user\n permission view = view\n}";
    let error = single(source, DiagnosticKind::DuplicateRelation, 4, 13);
    assert_mentions(
        &error,
        &["duplicate relation `view` in type `doc`", "line 3"],
    );
}

#[test]
fn duplicate_subject() {
    let error = single(
        "type user {}\ntype doc { relation v: user | user }",
        DiagnosticKind::DuplicateSubject,
        2,
        31,
    );
    assert_mentions(&error, &["`user`", "doc#v"]);
}

#[test]
fn unknown_subject_type() {
    let error = single(
        "type doc { relation owner: user }",
        DiagnosticKind::UnknownType,
        1,
        28,
    );
    assert_mentions(
        &error,
        &["unknown type `user`", "doc#owner", "no `type user`"],
    );
}

#[test]
fn unknown_relation_in_expression() {
    let error = single(
        "type user {}\ntype doc { relation owner: user\n permission view = owner | editor }",
        DiagnosticKind::UnknownRelation,
        3,
        28,
    );
    assert_mentions(
        &error,
        &["unknown relation `editor`", "doc#view", "type `doc`"],
    );
}

#[test]
fn unknown_tupleset_relation() {
    let error = single(
        "type doc { permission view = parent->view }",
        DiagnosticKind::UnknownRelation,
        1,
        30,
    );
    assert_mentions(&error, &["`parent`", "left side of `parent->view`"]);
}

#[test]
fn unknown_subject_relation() {
    let error = single(
        "type user {}\ntype group {}\ntype doc { relation v: group#member }",
        DiagnosticKind::UnknownSubjectRelation,
        3,
        30,
    );
    assert_mentions(
        &error,
        &[
            "unknown relation `member`",
            "`group#member`",
            "type `group`",
        ],
    );
}

#[test]
fn arrow_over_userset() {
    let source = "type user {}\ntype group { relation member: user }\n\
                  type doc {\n relation parent: group#member\n permission view = parent->member\n}";
    let error = single(source, DiagnosticKind::ArrowOverNonObject, 5, 20);
    assert_mentions(
        &error,
        &[
            "`parent->member`",
            "doc#parent",
            "`group#member`",
            "plain object",
        ],
    );
}

#[test]
fn arrow_over_wildcard() {
    let source = "type user { relation self: user }\n\
                  type doc {\n relation parent: user | user:*\n permission view = parent->self\n}";
    let error = single(source, DiagnosticKind::ArrowOverNonObject, 4, 20);
    assert_mentions(&error, &["`user:*`"]);
}

#[test]
fn arrow_over_computed() {
    let source = "type user {}\ntype doc {\n relation owner: user\n permission p = owner\n permission view = p->owner\n}";
    let error = single(source, DiagnosticKind::ArrowOverComputed, 5, 20);
    assert_mentions(
        &error,
        &["`p->owner`", "doc#p", "computed", "direct relation"],
    );
}

#[test]
fn arrow_target_missing_on_every_subject_type() {
    let source = "type user {}\ntype team {}\ntype folder {}\n\
                  type doc {\n relation parent: folder | team\n permission view = parent->view\n}";
    let error = single(source, DiagnosticKind::ArrowTargetMissing, 6, 28);
    assert_mentions(
        &error,
        &["`parent->view`", "`folder`, `team`", "named `view`"],
    );
}

#[test]
fn empty_module_name() {
    let error = single(
        "type doc { permission p = module(\"\") }",
        DiagnosticKind::EmptyModuleName,
        1,
        34,
    );
    assert_mentions(&error, &["doc#p"]);
}

#[test]
fn recursion_through_exclusion() {
    let source =
        "type user {}\ntype doc {\n relation viewer: user\n permission view = viewer - view\n}";
    let error = single(source, DiagnosticKind::UnstratifiedRecursion, 4, 29);
    assert_mentions(
        &error,
        &[
            "`doc#view` uses `doc#view` on the right side of `-`",
            "cycle: doc#view -> doc#view",
        ],
    );
}

#[test]
fn recursion_through_exclusion_across_types_and_arrows() {
    let source = "type user {}\n\
                  type folder {\n relation parent: doc\n relation viewer: user\n permission view = viewer - parent->view\n}\n\
                  type doc {\n relation parent: folder\n permission view = parent->view\n}";
    let error = single(source, DiagnosticKind::UnstratifiedRecursion, 5, 37);
    assert_mentions(&error, &["folder#view", "doc#view"]);
}

#[test]
fn recursion_through_userset_and_exclusion() {
    let source = "type user {}\ntype group {\n relation member: user | group#allowed\n relation banned: user\n\
                  permission allowed = member - banned_members\n permission banned_members = banned | member\n}";
    let diagnostics = errors(source);
    assert!(
        diagnostics.has(DiagnosticKind::UnstratifiedRecursion),
        "{diagnostics}"
    );
}

#[test]
fn recursion_through_forbid() {
    let source = "type user {}\ntype doc {\n relation viewer: user\n permission view = viewer\n forbid hidden = view\n}";
    let error = single(source, DiagnosticKind::UnstratifiedRecursion, 5, 9);
    assert_mentions(&error, &["forbid `doc#hidden` filters `doc#view`"]);
}

#[test]
fn positive_recursion_is_fine() {
    let source = "type user {}\ntype group { relation member: user | group#member\n permission all = member | all }\n\
                  type folder { relation parent: folder\n relation viewer: user\n permission view = viewer | parent->view }";
    assert!(compile(source).is_ok());
}

#[test]
fn exclusion_of_a_lower_stratum_is_fine() {
    let source = "type user {}\ntype doc {\n relation viewer: user\n relation blocked: user\n\
                  permission view = viewer - blocked\n permission edit = view - (blocked | view)\n\
                  forbid hidden = blocked\n}";
    assert!(compile(source).is_ok(), "{:?}", compile(source).err());
}

#[test]
fn every_syntax_error_in_a_file_is_reported() {
    let source = "type user {}\n\
                  type doc {\n relation viewer user\n permission view = viewer |\n}\n\
                  type folder {\n relation parent folder\n}\n\
                  type x {\n forbid f =\n}";
    let diagnostics = errors(source);
    let lines: Vec<usize> = diagnostics.errors.iter().map(|error| error.line).collect();
    assert_eq!(lines, [3, 5, 7, 11], "{diagnostics}");
}

#[test]
fn every_resolution_error_in_a_file_is_reported() {
    let source = "type doc {\n relation owner: user\n relation editor: group#member\n\
                  permission view = owner | viewer | parent->view\n}\ntype doc {}";
    let diagnostics = errors(source);
    let kinds: Vec<DiagnosticKind> = diagnostics.errors.iter().map(|error| error.kind).collect();
    assert_eq!(
        kinds,
        [
            DiagnosticKind::UnknownType,
            DiagnosticKind::UnknownType,
            DiagnosticKind::UnknownRelation,
            DiagnosticKind::UnknownRelation,
            DiagnosticKind::DuplicateType,
        ],
        "{diagnostics}"
    );
}

#[test]
fn display_has_code_location_snippet_and_caret() {
    let diagnostics = errors("type doc {\n    relation owner: person\n}");
    let text = diagnostics.to_string();
    assert!(
        text.starts_with("schema rejected with 1 error:\n"),
        "{text}"
    );
    assert!(
        text.contains("error[unknown-type] at 2:21: unknown type `person`"),
        "{text}"
    );
    assert!(
        text.contains("   2 |     relation owner: person\n     |                     ^^^^^^"),
        "{text}"
    );
}

#[test]
fn caret_lines_up_after_tabs() {
    let diagnostics = errors("type doc {\n\trelation owner: person\n}");
    let snippet = &diagnostics.errors[0].snippet;
    assert!(
        snippet.ends_with("| \t                ^^^^^^"),
        "{snippet:?}"
    );
}

#[test]
fn error_kinds_have_distinct_codes() {
    use DiagnosticKind::*;
    let kinds = [
        UnexpectedCharacter,
        UnterminatedComment,
        UnterminatedString,
        InvalidName,
        UnexpectedToken,
        NestingTooDeep,
        DuplicateType,
        DuplicateRelation,
        DuplicateSubject,
        UnknownType,
        UnknownRelation,
        UnknownSubjectRelation,
        ArrowOverNonObject,
        ArrowOverComputed,
        ArrowTargetMissing,
        EmptyModuleName,
        UnstratifiedRecursion,
        UnusedRelation,
        NonSnakeCaseName,
    ];
    let codes: std::collections::HashSet<&str> = kinds.iter().map(|kind| kind.code()).collect();
    assert_eq!(codes.len(), kinds.len());
}

//! Goal: no input can panic the compiler or overflow its stack, and every diagnostic points
//! inside the source. Method: proptest over random text, random token soup, and mutations of
//! a valid schema; plus pathological shapes (deep nesting, long chains, huge error counts).

use inferadb_ipl::{compile, limits, Diagnostics};
use proptest::prelude::*;

/// Compiles, asserting every diagnostic is well-formed whatever the outcome.
fn compile_checked(source: &str) -> Result<(), TestCaseError> {
    let diagnostics: Vec<_> = match compile(source) {
        Ok(compiled) => compiled.warnings,
        Err(Diagnostics { errors, warnings }) => {
            prop_assert!(!errors.is_empty());
            prop_assert!(errors.len() <= limits::ERRORS_MAX);
            errors.into_iter().chain(warnings).collect()
        }
    };
    for diagnostic in diagnostics {
        prop_assert!(diagnostic.span.start <= diagnostic.span.end);
        prop_assert!(diagnostic.span.end <= source.len());
        prop_assert!(diagnostic.line >= 1 && diagnostic.column >= 1);
        prop_assert!(diagnostic.snippet.contains('^'));
        prop_assert!(!diagnostic.message.is_empty());
    }
    Ok(())
}

const VOCABULARY: [&str; 30] = [
    "type",
    "relation",
    "permission",
    "forbid",
    "module",
    "user",
    "doc",
    "group",
    "viewer",
    "parent",
    "member",
    "{",
    "}",
    "(",
    ")",
    ":",
    "=",
    "|",
    "&",
    "-",
    "->",
    "#",
    "*",
    "\"m\"",
    "\n",
    " ",
    "//c\n",
    "/*",
    "*/",
    "X",
];

fn token_soup() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(&VOCABULARY[..]), 0..80)
        .prop_map(|tokens| tokens.join(" "))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        compile_checked(&String::from_utf8_lossy(&bytes))?;
    }

    #[test]
    fn random_tokens_never_panic(source in token_soup()) {
        compile_checked(&source)?;
    }

    #[test]
    fn mutated_schemas_never_panic(
        position in 0..super::ARCHITECTURE_EXAMPLE.len(),
        length in 0..12_usize,
        insert in prop::sample::select(&VOCABULARY[..]),
    ) {
        let mut source = super::ARCHITECTURE_EXAMPLE.to_owned();
        let end = (position + length).min(source.len());
        source.replace_range(position..end, insert);
        compile_checked(&source)?;
    }
}

#[test]
fn deep_parentheses_do_not_overflow() {
    let depth = 100_000;
    let source = format!(
        "type t {{ permission p = {}a{} }}",
        "(".repeat(depth),
        ")".repeat(depth)
    );
    assert!(compile(&source).is_err());
}

#[test]
fn long_chains_do_not_overflow() {
    for operator in [" | ", " & ", " - "] {
        let chain = vec!["a"; 50_000].join(operator);
        let source = format!("type t {{ relation a: t\npermission p = {chain} }}");
        let result = compile(&source);
        assert_eq!(result.is_ok(), operator != " - ", "{operator}");
    }
}

#[test]
fn long_dependency_chain_does_not_overflow() {
    // 20,000 permissions each using the next: recursive graph passes would overflow here.
    let mut source = String::from("type user {}\ntype t {\n relation r0: user\n");
    for index in 1..20_000 {
        source.push_str(&format!(" permission r{index} = r{} - r0\n", index - 1));
    }
    source.push_str("}\n");
    assert!(compile(&source).is_ok());
}

#[test]
fn error_count_is_capped() {
    let source = "@".repeat(10_000);
    let diagnostics = compile(&source).unwrap_err();
    assert_eq!(diagnostics.errors.len(), limits::ERRORS_MAX);
}

#[test]
fn many_errors_in_a_large_file_stay_fast() {
    // 200,000 errors of each stage in a multi-megabyte file: locating every one of them
    // (a scan from the start of the source each) would take minutes.
    let lexical = "@\n".repeat(200_000);
    assert_eq!(
        compile(&lexical).unwrap_err().errors.len(),
        limits::ERRORS_MAX
    );
    let syntax = format!("type t {{ {} }}", "relation relation ".repeat(200_000));
    assert_eq!(
        compile(&syntax).unwrap_err().errors.len(),
        limits::ERRORS_MAX
    );
    let duplicates = "type t {}\n".repeat(200_000);
    assert_eq!(
        compile(&duplicates).unwrap_err().errors.len(),
        limits::ERRORS_MAX
    );
    let mut unresolved = String::from("type t {\n");
    for index in 0..100_000 {
        unresolved.push_str(&format!(" relation r{index}: nowhere\n"));
    }
    unresolved.push('}');
    assert_eq!(
        compile(&unresolved).unwrap_err().errors.len(),
        limits::ERRORS_MAX
    );
    let mut unstratified = String::from("type user {}\ntype t {\n");
    for index in 0..20_000 {
        unstratified.push_str(&format!(" permission p{index} = p{index} - p{index}\n"));
    }
    unstratified.push('}');
    assert_eq!(
        compile(&unstratified).unwrap_err().errors.len(),
        limits::ERRORS_MAX
    );
}

#[test]
fn many_warnings_are_capped() {
    let mut source = String::from("type user {}\n");
    for index in 0..50_000 {
        source.push_str(&format!("type tA{index} {{}}\n"));
    }
    let compiled = compile(&source).unwrap();
    assert_eq!(compiled.warnings.len(), limits::ERRORS_MAX);
}

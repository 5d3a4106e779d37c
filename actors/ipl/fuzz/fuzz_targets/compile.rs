//! Fuzz target: any bytes, as text, must compile or fail with well-formed diagnostics, and a
//! schema that compiles must format to text that compiles to the same fingerprint.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let source = String::from_utf8_lossy(data);
    match inferadb_ipl::compile(&source) {
        Ok(compiled) => {
            let canonical = compiled.schema.canonical_text();
            let again = inferadb_ipl::compile(canonical).expect("canonical text compiles");
            assert_eq!(again.schema.fingerprint(), compiled.schema.fingerprint());
            assert_eq!(again.schema.canonical_text(), canonical);
        }
        Err(diagnostics) => {
            assert!(!diagnostics.errors.is_empty());
            for error in &diagnostics.errors {
                assert!(error.span.end <= source.len());
            }
        }
    }
});

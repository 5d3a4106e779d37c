//! Limits on schema shape. They keep the recursive passes of the compiler and of the
//! evaluator bounded for any input, including adversarial or fuzzed text.

/// Longest name: `[a-z][a-z0-9_]{0,63}` allows 64 characters.
pub const NAME_LENGTH_MAX: usize = 64;

/// Deepest expression tree (parentheses, operator chains of `-`, nested operators). Deeper
/// schemas are rejected with `nesting-too-deep` rather than risking a stack overflow.
pub const EXPRESSION_DEPTH_MAX: usize = 64;

/// Most errors (and, separately, warnings) reported for one source: the first ones found are
/// kept and the rest dropped, so that a binary file pasted as a schema neither produces
/// megabytes of diagnostics nor takes quadratic time to locate them.
pub const ERRORS_MAX: usize = 100;

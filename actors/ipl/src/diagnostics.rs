//! Typed compiler diagnostics: every error and warning names its kind, the thing and the rule,
//! and points into the source with line, column and a snippet with a caret.

use std::fmt;

use crate::limits::ERRORS_MAX;

/// A byte range `start..end` in the source text.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    serde::Serialize,
    serde::Deserialize,
)]
pub struct Span {
    /// Offset of the first byte.
    pub start: usize,
    /// Offset one past the last byte (equal to `start` for a point, such as end of input).
    pub end: usize,
}

impl Span {
    /// Builds a span.
    pub fn new(start: usize, end: usize) -> Self {
        debug_assert!(start <= end, "a span never ends before it starts");
        Self { start, end }
    }

    /// The smallest span covering both.
    pub fn join(self, other: Span) -> Span {
        Span::new(self.start.min(other.start), self.end.max(other.end))
    }
}

/// Whether a diagnostic stops compilation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Severity {
    /// The schema is rejected.
    Error,
    /// The schema compiles; the diagnostic points at something probably unintended.
    Warning,
}

/// What went wrong. The stable code of each kind (see [`DiagnosticKind::code`]) appears in
/// messages and in `docs/ipl.md`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum DiagnosticKind {
    /// A character that starts no token.
    UnexpectedCharacter,
    /// A `/*` comment with no `*/`.
    UnterminatedComment,
    /// A `"` string with no closing `"` on the same line.
    UnterminatedString,
    /// A name that breaks `[a-z][a-z0-9_]{0,63}`.
    InvalidName,
    /// A token where the grammar expected something else.
    UnexpectedToken,
    /// Parentheses or arrows nested deeper than the limit.
    NestingTooDeep,
    /// A type declared twice.
    DuplicateType,
    /// A relation, permission or forbid name declared twice in one type.
    DuplicateRelation,
    /// A subject type listed twice in one direct relation.
    DuplicateSubject,
    /// A type name that no `type` declares.
    UnknownType,
    /// A relation name that the type does not declare.
    UnknownRelation,
    /// `T#r` where `T` has no relation `r`.
    UnknownSubjectRelation,
    /// `a->b` where `a` allows usersets or wildcards.
    ArrowOverNonObject,
    /// `a->b` where `a` is computed, not direct.
    ArrowOverComputed,
    /// `a->b` where no subject type of `a` has `b`.
    ArrowTargetMissing,
    /// `module("")`.
    EmptyModuleName,
    /// A dependency cycle through the right side of `-` or through a forbid.
    UnstratifiedRecursion,
    /// A relation nothing refers to (warning).
    UnusedRelation,
    /// A declared name with uppercase letters, accepted for compatibility (warning).
    NonSnakeCaseName,
}

impl DiagnosticKind {
    /// A short stable code for the kind, used in messages and documentation.
    pub fn code(self) -> &'static str {
        match self {
            DiagnosticKind::UnexpectedCharacter => "unexpected-character",
            DiagnosticKind::UnterminatedComment => "unterminated-comment",
            DiagnosticKind::UnterminatedString => "unterminated-string",
            DiagnosticKind::InvalidName => "invalid-name",
            DiagnosticKind::UnexpectedToken => "unexpected-token",
            DiagnosticKind::NestingTooDeep => "nesting-too-deep",
            DiagnosticKind::DuplicateType => "duplicate-type",
            DiagnosticKind::DuplicateRelation => "duplicate-relation",
            DiagnosticKind::DuplicateSubject => "duplicate-subject",
            DiagnosticKind::UnknownType => "unknown-type",
            DiagnosticKind::UnknownRelation => "unknown-relation",
            DiagnosticKind::UnknownSubjectRelation => "unknown-subject-relation",
            DiagnosticKind::ArrowOverNonObject => "arrow-over-non-object",
            DiagnosticKind::ArrowOverComputed => "arrow-over-computed",
            DiagnosticKind::ArrowTargetMissing => "arrow-target-missing",
            DiagnosticKind::EmptyModuleName => "empty-module-name",
            DiagnosticKind::UnstratifiedRecursion => "unstratified-recursion",
            DiagnosticKind::UnusedRelation => "unused-relation",
            DiagnosticKind::NonSnakeCaseName => "non-snake-case-name",
        }
    }

    /// The severity every diagnostic of this kind has.
    pub fn severity(self) -> Severity {
        match self {
            DiagnosticKind::UnusedRelation | DiagnosticKind::NonSnakeCaseName => Severity::Warning,
            _ => Severity::Error,
        }
    }
}

/// One error or warning, located in the source.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Diagnostic {
    /// What went wrong.
    pub kind: DiagnosticKind,
    /// Error or warning (always `kind.severity()`).
    pub severity: Severity,
    /// A sentence naming the thing and the rule it breaks.
    pub message: String,
    /// Where, in bytes.
    pub span: Span,
    /// 1-based line of `span.start`.
    pub line: usize,
    /// 1-based column of `span.start`, in characters.
    pub column: usize,
    /// The source line, then a line with carets under the span.
    pub snippet: String,
}

impl Diagnostic {
    /// Builds a diagnostic, computing line, column and snippet from the source.
    pub fn new(kind: DiagnosticKind, message: String, span: Span, source: &str) -> Self {
        let location = Location::of(source, span);
        Self {
            kind,
            severity: kind.severity(),
            message,
            span,
            line: location.line,
            column: location.column,
            snippet: location.snippet,
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let severity = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        writeln!(
            formatter,
            "{severity}[{}] at {}:{}: {}",
            self.kind.code(),
            self.line,
            self.column,
            self.message
        )?;
        write!(formatter, "{}", self.snippet)
    }
}

/// Every error found in a schema (at least one), in source order, plus the warnings.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub struct Diagnostics {
    /// The errors, sorted by position.
    pub errors: Vec<Diagnostic>,
    /// The warnings found before compilation stopped, sorted by position.
    pub warnings: Vec<Diagnostic>,
}

impl Diagnostics {
    /// Whether an error of this kind was reported.
    pub fn has(&self, kind: DiagnosticKind) -> bool {
        self.errors.iter().any(|diagnostic| diagnostic.kind == kind)
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count = self.errors.len();
        let noun = if count == 1 { "error" } else { "errors" };
        writeln!(formatter, "schema rejected with {count} {noun}:")?;
        for diagnostic in &self.errors {
            writeln!(formatter, "{diagnostic}")?;
        }
        Ok(())
    }
}

/// Adds a diagnostic to `list` unless it already holds [`ERRORS_MAX`] of them. Locating a
/// diagnostic costs time proportional to the source length, so the cap is what keeps the
/// compiler linear on garbage input; the first diagnostics found are the ones kept.
pub(crate) fn push_capped(
    list: &mut Vec<Diagnostic>,
    kind: DiagnosticKind,
    message: String,
    span: Span,
    source: &str,
) {
    if list.len() < ERRORS_MAX {
        list.push(Diagnostic::new(kind, message, span, source));
    }
}

/// Line, column and snippet of a span.
struct Location {
    line: usize,
    column: usize,
    snippet: String,
}

impl Location {
    fn of(source: &str, span: Span) -> Self {
        // Clamp to a character boundary so a span from a fuzzed input can never panic here.
        let mut start = span.start.min(source.len());
        while !source.is_char_boundary(start) {
            start -= 1;
        }
        let line_start = source[..start].rfind('\n').map_or(0, |newline| newline + 1);
        let line_end = source[start..]
            .find('\n')
            .map_or(source.len(), |newline| start + newline);
        let line = source[..start].matches('\n').count() + 1;
        let prefix = &source[line_start..start];
        let column = prefix.chars().count() + 1;
        let text = source[line_start..line_end].trim_end_matches('\r');
        let span_end = span.end.clamp(start, line_end);
        let width = source
            .get(start..span_end)
            .map_or(1, |spanned| spanned.chars().count());
        // Tabs stay tabs under the caret so the caret lines up in any tab width.
        let padding: String = prefix
            .chars()
            .map(|character| if character == '\t' { '\t' } else { ' ' })
            .collect();
        let snippet = format!(
            "{line:>4} | {text}\n     | {padding}{}",
            "^".repeat(width.max(1))
        );
        Self {
            line,
            column,
            snippet,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    /// Diagnostics cross the wire (a shard's refusal carries them to the gateway): every
    /// field, line and column included, must survive JSON.
    #[test]
    fn diagnostics_round_trip_through_json() {
        let diagnostics = crate::compile("type doc { relation owner: nobody }\ntype {")
            .err()
            .unwrap();
        assert!(!diagnostics.errors.is_empty());
        let json = serde_json::to_string(&diagnostics).unwrap();
        let decoded: super::Diagnostics = serde_json::from_str(&json).unwrap();
        assert_eq!(decoded, diagnostics);
    }
}

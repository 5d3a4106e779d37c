//! The lexer: source text to tokens. It never stops at the first problem: a bad character or
//! a malformed name is reported and skipped (or kept as a name) so the parser can report
//! everything else too.

use crate::diagnostics::{push_capped, Diagnostic, DiagnosticKind, Span};
use crate::limits::NAME_LENGTH_MAX;

/// The kinds of token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum TokenKind {
    /// `type`
    Type,
    /// `relation`
    Relation,
    /// `permission`
    Permission,
    /// `forbid`
    Forbid,
    /// `module`
    Module,
    /// A name (possibly invalid; the lexer reported it).
    Name(String),
    /// A double-quoted string, without its quotes.
    String(String),
    LeftBrace,
    RightBrace,
    LeftParenthesis,
    RightParenthesis,
    Colon,
    Equals,
    Pipe,
    Ampersand,
    Minus,
    Arrow,
    Hash,
    Star,
    EndOfInput,
}

impl TokenKind {
    /// How the token reads in an error message.
    pub(crate) fn describe(&self) -> String {
        let fixed = match self {
            TokenKind::Type => "keyword `type`",
            TokenKind::Relation => "keyword `relation`",
            TokenKind::Permission => "keyword `permission`",
            TokenKind::Forbid => "keyword `forbid`",
            TokenKind::Module => "keyword `module`",
            TokenKind::Name(name) => return format!("name `{name}`"),
            TokenKind::String(text) => return format!("string \"{text}\""),
            TokenKind::LeftBrace => "`{`",
            TokenKind::RightBrace => "`}`",
            TokenKind::LeftParenthesis => "`(`",
            TokenKind::RightParenthesis => "`)`",
            TokenKind::Colon => "`:`",
            TokenKind::Equals => "`=`",
            TokenKind::Pipe => "`|`",
            TokenKind::Ampersand => "`&`",
            TokenKind::Minus => "`-`",
            TokenKind::Arrow => "`->`",
            TokenKind::Hash => "`#`",
            TokenKind::Star => "`*`",
            TokenKind::EndOfInput => "end of input",
        };
        fixed.to_owned()
    }
}

/// One token and where it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Token {
    pub(crate) kind: TokenKind,
    pub(crate) span: Span,
}

/// Splits `source` into tokens, always ending with [`TokenKind::EndOfInput`], and reports
/// lexical errors into `errors`.
pub(crate) fn tokenize(source: &str, errors: &mut Vec<Diagnostic>) -> Vec<Token> {
    let mut lexer = Lexer {
        source,
        bytes: source.as_bytes(),
        position: 0,
        tokens: Vec::new(),
    };
    lexer.run(errors);
    lexer.tokens
}

struct Lexer<'source> {
    source: &'source str,
    bytes: &'source [u8],
    position: usize,
    tokens: Vec<Token>,
}

impl Lexer<'_> {
    fn run(&mut self, errors: &mut Vec<Diagnostic>) {
        while let Some(&byte) = self.bytes.get(self.position) {
            let start = self.position;
            match byte {
                b' ' | b'\t' | b'\r' | b'\n' => self.position += 1,
                b'/' if self.peek(1) == Some(b'/') => self.skip_line_comment(),
                b'/' if self.peek(1) == Some(b'*') => self.skip_block_comment(errors),
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' => self.word(errors),
                b'"' => self.string(errors),
                b'-' if self.peek(1) == Some(b'>') => {
                    self.position += 2;
                    self.push(TokenKind::Arrow, start);
                }
                _ => self.punctuation(byte, errors),
            }
        }
        let end = self.source.len();
        self.tokens.push(Token {
            kind: TokenKind::EndOfInput,
            span: Span::new(end, end),
        });
    }

    fn peek(&self, ahead: usize) -> Option<u8> {
        self.bytes.get(self.position + ahead).copied()
    }

    fn push(&mut self, kind: TokenKind, start: usize) {
        self.tokens.push(Token {
            kind,
            span: Span::new(start, self.position),
        });
    }

    fn punctuation(&mut self, byte: u8, errors: &mut Vec<Diagnostic>) {
        let start = self.position;
        let kind = match byte {
            b'{' => TokenKind::LeftBrace,
            b'}' => TokenKind::RightBrace,
            b'(' => TokenKind::LeftParenthesis,
            b')' => TokenKind::RightParenthesis,
            b':' => TokenKind::Colon,
            b'=' => TokenKind::Equals,
            b'|' => TokenKind::Pipe,
            b'&' => TokenKind::Ampersand,
            b'-' => TokenKind::Minus,
            b'#' => TokenKind::Hash,
            b'*' => TokenKind::Star,
            _ => {
                self.unexpected_character(errors);
                return;
            }
        };
        self.position += 1;
        self.push(kind, start);
    }

    fn unexpected_character(&mut self, errors: &mut Vec<Diagnostic>) {
        let start = self.position;
        let character = self.source[start..].chars().next().unwrap_or('\u{fffd}');
        self.position += character.len_utf8();
        let message = format!(
            "unexpected character {character:?}: expected a name, a keyword, a comment or one \
             of `{{ }} ( ) : = | & - -> # * \"`"
        );
        let span = Span::new(start, self.position);
        push_capped(
            errors,
            DiagnosticKind::UnexpectedCharacter,
            message,
            span,
            self.source,
        );
    }

    fn skip_line_comment(&mut self) {
        while let Some(&byte) = self.bytes.get(self.position) {
            if byte == b'\n' {
                break;
            }
            self.position += 1;
        }
    }

    fn skip_block_comment(&mut self, errors: &mut Vec<Diagnostic>) {
        let start = self.position;
        // Block comments do not nest, as in C: the first `*/` closes the comment.
        match self.source[start + 2..].find("*/") {
            Some(offset) => self.position = start + 2 + offset + 2,
            None => {
                self.position = self.source.len();
                let message =
                    "unterminated block comment: expected `*/` before the end of input".to_owned();
                let span = Span::new(start, start + 2);
                push_capped(
                    errors,
                    DiagnosticKind::UnterminatedComment,
                    message,
                    span,
                    self.source,
                );
            }
        }
    }

    fn string(&mut self, errors: &mut Vec<Diagnostic>) {
        let start = self.position;
        let rest = &self.source[start + 1..];
        let closing = rest.find(['"', '\n']);
        match closing {
            Some(offset) if rest.as_bytes()[offset] == b'"' => {
                let text = rest[..offset].to_owned();
                self.position = start + 1 + offset + 1;
                self.push(TokenKind::String(text), start);
            }
            _ => {
                self.position = closing.map_or(self.source.len(), |offset| start + 1 + offset);
                let message =
                    "unterminated string: expected a closing `\"` on the same line".to_owned();
                let span = Span::new(start, self.position);
                push_capped(
                    errors,
                    DiagnosticKind::UnterminatedString,
                    message,
                    span,
                    self.source,
                );
                let text = self.source[start + 1..self.position].to_owned();
                self.push(TokenKind::String(text), start);
            }
        }
    }

    fn word(&mut self, errors: &mut Vec<Diagnostic>) {
        let start = self.position;
        while let Some(b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_') = self.peek(0) {
            self.position += 1;
        }
        let text = &self.source[start..self.position];
        let kind = match text {
            "type" => TokenKind::Type,
            "relation" => TokenKind::Relation,
            "permission" => TokenKind::Permission,
            "forbid" => TokenKind::Forbid,
            "module" => TokenKind::Module,
            _ => {
                if let Some(rule) = name_rule_broken(text) {
                    let message = format!(
                        "invalid name `{text}`: {rule}; names match `[a-z][a-z0-9_]{{0,63}}`"
                    );
                    let span = Span::new(start, self.position);
                    push_capped(
                        errors,
                        DiagnosticKind::InvalidName,
                        message,
                        span,
                        self.source,
                    );
                }
                TokenKind::Name(text.to_owned())
            }
        };
        self.push(kind, start);
    }
}

/// Which part of the name rule `text` breaks, if any. Names are `[a-z][a-z0-9_]{0,63}`, except
/// that uppercase letters after the first character are accepted (with a warning from the
/// checker): the conformance corpus converted from OpenFGA, and the reference model, use
/// names such as `scopeA`.
pub(crate) fn name_rule_broken(text: &str) -> Option<&'static str> {
    let first = text.bytes().next()?;
    if !first.is_ascii_lowercase() {
        return Some("a name starts with a lowercase letter `a`-`z`");
    }
    if text.len() > NAME_LENGTH_MAX {
        return Some("a name is at most 64 characters long");
    }
    None
}

#[cfg(test)]
mod tests {
    //! Token-level checks; whole-language behaviour is tested in `tests/ipl`.

    use super::*;

    fn kinds(source: &str) -> Vec<TokenKind> {
        let mut errors = Vec::new();
        let tokens = tokenize(source, &mut errors);
        assert!(errors.is_empty(), "{errors:?}");
        tokens.into_iter().map(|token| token.kind).collect()
    }

    #[test]
    fn every_token_kind() {
        use TokenKind::*;
        let expected = vec![
            Type,
            Relation,
            Permission,
            Forbid,
            Module,
            Name("n_1".to_owned()),
            String("s".to_owned()),
            LeftBrace,
            RightBrace,
            LeftParenthesis,
            RightParenthesis,
            Colon,
            Equals,
            Pipe,
            Ampersand,
            Minus,
            Arrow,
            Hash,
            Star,
            EndOfInput,
        ];
        let source = "type relation permission forbid module n_1 \"s\" { } ( ) : = | & - -> # *";
        assert_eq!(kinds(source), expected);
    }

    #[test]
    fn arrow_and_minus_need_no_spaces() {
        use TokenKind::*;
        let name = |text: &str| Name(text.to_owned());
        assert_eq!(
            kinds("a->b-c"),
            vec![name("a"), Arrow, name("b"), Minus, name("c"), EndOfInput]
        );
    }

    #[test]
    fn comments_and_whitespace_vanish() {
        assert_eq!(
            kinds("// x\n/* y\n z */\t\r\n"),
            vec![TokenKind::EndOfInput]
        );
        assert_eq!(kinds("a/**/b").len(), 3);
    }

    #[test]
    fn spans_are_byte_ranges() {
        let mut errors = Vec::new();
        let tokens = tokenize("type  user", &mut errors);
        assert_eq!(tokens[1].span, Span::new(6, 10));
        assert_eq!(tokens[2].span, Span::new(10, 10));
    }

    #[test]
    fn bad_input_is_reported_and_skipped() {
        let mut errors = Vec::new();
        let tokens = tokenize("a $ b", &mut errors);
        assert_eq!(errors.len(), 1);
        assert_eq!(tokens.len(), 3);
    }

    #[test]
    fn name_rule() {
        assert_eq!(name_rule_broken("user"), None);
        assert_eq!(name_rule_broken("scopeA"), None);
        assert!(name_rule_broken("User").is_some());
        assert!(name_rule_broken("_user").is_some());
        assert!(name_rule_broken("1user").is_some());
        assert!(name_rule_broken(&"a".repeat(65)).is_some());
        assert_eq!(name_rule_broken(&"a".repeat(64)), None);
    }
}

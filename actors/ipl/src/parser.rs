//! The parser: tokens to a [`Schema`], by recursive descent. On an error it reports what it
//! expected, then skips to the next `type`, `relation`, `permission` or `forbid` keyword (or
//! a closing `}`) and carries on, so one run reports every syntax error in the file.

use crate::ast::{
    Expression, Member, MemberBody, Name, Schema, Subject, SubjectShape, TypeDeclaration,
};
use crate::compiled::RelationKeyword;
use crate::diagnostics::{push_capped, Diagnostic, DiagnosticKind, Span};
use crate::lexer::{Token, TokenKind};
use crate::limits::EXPRESSION_DEPTH_MAX;

/// A syntax error was reported; the caller recovers at the next boundary.
struct Reported;

type Parsed<T> = Result<T, Reported>;

/// Parses a token stream (ending in `EndOfInput`) into a schema, reporting into `errors`.
pub(crate) fn parse_tokens(source: &str, tokens: &[Token], errors: &mut Vec<Diagnostic>) -> Schema {
    let mut parser = Parser {
        source,
        tokens,
        position: 0,
        errors,
    };
    parser.schema()
}

struct Parser<'input> {
    source: &'input str,
    tokens: &'input [Token],
    position: usize,
    errors: &'input mut Vec<Diagnostic>,
}

/// An expression and the depth of its tree, tracked so no recursive pass over it (here, in
/// the checker, the formatter or the evaluator) can overflow the stack.
struct Measured {
    expression: Expression,
    depth: usize,
}

impl Parser<'_> {
    fn current(&self) -> &Token {
        // The lexer always ends the stream with `EndOfInput`, so `last` exists.
        let last = self.tokens.len() - 1;
        &self.tokens[self.position.min(last)]
    }

    fn kind(&self) -> &TokenKind {
        &self.current().kind
    }

    fn advance(&mut self) -> Token {
        let token = self.current().clone();
        if token.kind != TokenKind::EndOfInput {
            self.position += 1;
        }
        token
    }

    fn eat(&mut self, kind: &TokenKind) -> bool {
        if self.kind() == kind {
            self.advance();
            return true;
        }
        false
    }

    fn expect(&mut self, kind: &TokenKind, what: &str) -> Parsed<Token> {
        if self.kind() == kind {
            return Ok(self.advance());
        }
        Err(self.unexpected(what))
    }

    fn unexpected(&mut self, expected: &str) -> Reported {
        let token = self.current().clone();
        let message = format!("expected {expected}, found {}", token.kind.describe());
        self.report(DiagnosticKind::UnexpectedToken, message, token.span);
        Reported
    }

    fn report(&mut self, kind: DiagnosticKind, message: String, span: Span) {
        push_capped(self.errors, kind, message, span, self.source);
    }

    fn name(&mut self, what: &str) -> Parsed<Name> {
        let token = self.current().clone();
        match token.kind {
            TokenKind::Name(text) => {
                self.advance();
                Ok(Name {
                    text,
                    span: token.span,
                })
            }
            TokenKind::Type
            | TokenKind::Relation
            | TokenKind::Permission
            | TokenKind::Forbid
            | TokenKind::Module => {
                let keyword = &self.source[token.span.start..token.span.end];
                let message = format!(
                    "expected {what}, found keyword `{keyword}`: keywords are reserved and \
                     cannot be names (write `{keyword}_`)"
                );
                self.report(DiagnosticKind::UnexpectedToken, message, token.span);
                Err(Reported)
            }
            _ => Err(self.unexpected(what)),
        }
    }

    fn schema(&mut self) -> Schema {
        let mut schema = Schema::default();
        loop {
            match self.kind() {
                TokenKind::EndOfInput => return schema,
                TokenKind::Type => {
                    if let Some(declaration) = self.type_declaration() {
                        schema.types.push(declaration);
                    }
                }
                _ => {
                    let _ = self.unexpected("`type` to start a type declaration");
                    self.recover_to_type();
                }
            }
        }
    }

    /// Skips to the next `type` keyword (or the end).
    fn recover_to_type(&mut self) {
        while !matches!(self.kind(), TokenKind::Type | TokenKind::EndOfInput) {
            self.advance();
        }
    }

    /// Skips to the next member keyword, `}`, `type` or the end.
    fn recover_to_member(&mut self) {
        while !matches!(
            self.kind(),
            TokenKind::Type
                | TokenKind::Relation
                | TokenKind::Permission
                | TokenKind::Forbid
                | TokenKind::RightBrace
                | TokenKind::EndOfInput
        ) {
            self.advance();
        }
    }

    fn type_declaration(&mut self) -> Option<TypeDeclaration> {
        self.advance();
        let name = match self.name("a type name after `type`") {
            Ok(name) => name,
            Err(Reported) => {
                // Skip this declaration's body too, so its members are not reported as strays.
                self.advance();
                self.recover_to_type();
                return None;
            }
        };
        if self
            .expect(&TokenKind::LeftBrace, "`{` after the type name")
            .is_err()
        {
            self.recover_to_type();
            return None;
        }
        let members = self.members();
        Some(TypeDeclaration { name, members })
    }

    fn members(&mut self) -> Vec<Member> {
        let mut members = Vec::new();
        loop {
            let keyword = match self.kind() {
                TokenKind::RightBrace => {
                    self.advance();
                    return members;
                }
                TokenKind::Relation => RelationKeyword::Relation,
                TokenKind::Permission => RelationKeyword::Permission,
                TokenKind::Forbid => RelationKeyword::Forbid,
                TokenKind::Type | TokenKind::EndOfInput => {
                    let _ = self.unexpected("`}` to close the type");
                    return members;
                }
                _ => {
                    let _ = self.unexpected("`relation`, `permission`, `forbid` or `}`");
                    self.advance();
                    self.recover_to_member();
                    continue;
                }
            };
            self.advance();
            match self.member(keyword) {
                Ok(member) => members.push(member),
                Err(Reported) => self.recover_to_member(),
            }
        }
    }

    fn member(&mut self, keyword: RelationKeyword) -> Parsed<Member> {
        let what = match keyword {
            RelationKeyword::Relation => "a relation name after `relation`",
            RelationKeyword::Permission => "a permission name after `permission`",
            RelationKeyword::Forbid => "a forbid name after `forbid`",
        };
        let name = self.name(what)?;
        let body = match (self.kind(), keyword) {
            (TokenKind::Equals, _) => {
                self.advance();
                MemberBody::Computed(self.expression()?)
            }
            (TokenKind::Colon, RelationKeyword::Permission) => {
                let message = format!(
                    "expected `=` after permission `{}`, found `:`: a permission is computed \
                     (`permission p = expression`); use `relation` for allowed subject types",
                    name.text
                );
                let span = self.current().span;
                self.report(DiagnosticKind::UnexpectedToken, message, span);
                return Err(Reported);
            }
            (TokenKind::Colon, _) => {
                self.advance();
                MemberBody::Direct(self.subjects()?)
            }
            (_, RelationKeyword::Permission) => {
                return Err(self.unexpected(&format!("`=` after permission `{}`", name.text)))
            }
            _ => {
                let expected = format!(
                    "`:` (subject types) or `=` (expression) after `{}`",
                    name.text
                );
                return Err(self.unexpected(&expected));
            }
        };
        Ok(Member {
            keyword,
            name,
            body,
        })
    }

    fn subjects(&mut self) -> Parsed<Vec<Subject>> {
        let mut subjects = vec![self.subject()?];
        while self.eat(&TokenKind::Pipe) {
            subjects.push(self.subject()?);
        }
        Ok(subjects)
    }

    fn subject(&mut self) -> Parsed<Subject> {
        let type_name = self.name("a subject type name")?;
        let shape = if self.eat(&TokenKind::Hash) {
            SubjectShape::Userset(self.name("a relation name after `#`")?)
        } else if self.eat(&TokenKind::Colon) {
            self.expect(
                &TokenKind::Star,
                "`*` after `:` (a wildcard subject is `type:*`)",
            )?;
            SubjectShape::Wildcard
        } else {
            SubjectShape::Object
        };
        Ok(Subject { type_name, shape })
    }

    fn expression(&mut self) -> Parsed<Expression> {
        let start = self.current().span;
        let sized = self.union(0)?;
        if sized.depth > EXPRESSION_DEPTH_MAX {
            let span = start.join(self.tokens[self.position.saturating_sub(1)].span);
            let message = format!(
                "expression nested {} levels deep: the limit is {EXPRESSION_DEPTH_MAX}; split it \
                 into several permissions",
                sized.depth
            );
            self.report(DiagnosticKind::NestingTooDeep, message, span);
            return Err(Reported);
        }
        Ok(sized.expression)
    }

    fn union(&mut self, parentheses: usize) -> Parsed<Measured> {
        let first = self.intersection(parentheses)?;
        if self.kind() != &TokenKind::Pipe {
            return Ok(first);
        }
        let mut depth = first.depth;
        let mut operands = vec![first.expression];
        while self.eat(&TokenKind::Pipe) {
            let operand = self.intersection(parentheses)?;
            depth = depth.max(operand.depth);
            operands.push(operand.expression);
        }
        Ok(Measured {
            expression: Expression::Union(operands),
            depth: depth + 1,
        })
    }

    fn intersection(&mut self, parentheses: usize) -> Parsed<Measured> {
        let first = self.exclusion(parentheses)?;
        if self.kind() != &TokenKind::Ampersand {
            return Ok(first);
        }
        let mut depth = first.depth;
        let mut operands = vec![first.expression];
        while self.eat(&TokenKind::Ampersand) {
            let operand = self.exclusion(parentheses)?;
            depth = depth.max(operand.depth);
            operands.push(operand.expression);
        }
        Ok(Measured {
            expression: Expression::Intersection(operands),
            depth: depth + 1,
        })
    }

    fn exclusion(&mut self, parentheses: usize) -> Parsed<Measured> {
        let mut base = self.primary(parentheses)?;
        while self.eat(&TokenKind::Minus) {
            let subtract = self.primary(parentheses)?;
            let depth = base.depth.max(subtract.depth) + 1;
            if depth > EXPRESSION_DEPTH_MAX {
                // Stop growing the tree: a long `a - b - c - ...` chain nests leftwards, and
                // `expression` rejects it once the whole chain is read.
                base.depth = depth;
                continue;
            }
            let expression =
                Expression::Exclusion(Box::new(base.expression), Box::new(subtract.expression));
            base = Measured { expression, depth };
        }
        Ok(base)
    }

    fn primary(&mut self, parentheses: usize) -> Parsed<Measured> {
        let leaf = |expression| {
            Ok(Measured {
                expression,
                depth: 1,
            })
        };
        match self.kind().clone() {
            TokenKind::LeftParenthesis => self.parenthesized(parentheses),
            TokenKind::Module => leaf(self.module()?),
            TokenKind::Name(_) => {
                let name = self.name("a relation name")?;
                if !self.eat(&TokenKind::Arrow) {
                    return leaf(Expression::Relation(name));
                }
                let target = self.name("a relation name after `->`")?;
                leaf(Expression::Arrow {
                    tupleset: name,
                    target,
                })
            }
            _ => Err(self.unexpected("a relation name, `(` or `module(\"name\")`")),
        }
    }

    fn parenthesized(&mut self, parentheses: usize) -> Parsed<Measured> {
        let open = self.advance();
        if parentheses >= EXPRESSION_DEPTH_MAX {
            let message = format!(
                "parentheses nested more than {EXPRESSION_DEPTH_MAX} deep: split the expression \
                 into several permissions"
            );
            self.report(DiagnosticKind::NestingTooDeep, message, open.span);
            return Err(Reported);
        }
        let inner = self.union(parentheses + 1)?;
        self.expect(&TokenKind::RightParenthesis, "`)` to close `(`")?;
        Ok(inner)
    }

    fn module(&mut self) -> Parsed<Expression> {
        self.advance();
        self.expect(&TokenKind::LeftParenthesis, "`(` after `module`")?;
        let token = self.current().clone();
        let TokenKind::String(text) = token.kind else {
            return Err(self.unexpected("a quoted module name, as in `module(\"name\")`"));
        };
        self.advance();
        self.expect(&TokenKind::RightParenthesis, "`)` after the module name")?;
        Ok(Expression::Module(Name {
            text,
            span: token.span,
        }))
    }
}

//! The canonical formatter: one layout for every schema, so that formatting is idempotent,
//! re-parses to the same tree, and gives the text the schema fingerprint hashes.
//!
//! Layout: types separated by one blank line; `type t {}` when empty; one member per line,
//! indented four spaces; single spaces around `|`, `&`, `-`, `=` and after `:`; no spaces
//! around `->`, `#` and `:*`; parentheses only where the tree's shape needs them. Comments are
//! not part of the tree and are not kept.

use crate::ast::{Expression, Member, MemberBody, Schema, Subject, SubjectShape};
use crate::compiled::RelationKeyword;

/// Formats a schema canonically. The result ends with a newline (or is empty for an empty
/// schema).
pub fn format(schema: &Schema) -> String {
    let mut output = String::new();
    for (index, declaration) in schema.types.iter().enumerate() {
        if index > 0 {
            output.push('\n');
        }
        output.push_str("type ");
        output.push_str(&declaration.name.text);
        if declaration.members.is_empty() {
            output.push_str(" {}\n");
            continue;
        }
        output.push_str(" {\n");
        for member in &declaration.members {
            output.push_str("    ");
            write_member(&mut output, member);
            output.push('\n');
        }
        output.push_str("}\n");
    }
    output
}

/// Formats one expression canonically (as it appears after `=`).
pub fn format_expression(expression: &Expression) -> String {
    let mut output = String::new();
    write_expression(&mut output, expression);
    output
}

fn write_member(output: &mut String, member: &Member) {
    output.push_str(match member.keyword {
        RelationKeyword::Relation => "relation ",
        RelationKeyword::Permission => "permission ",
        RelationKeyword::Forbid => "forbid ",
    });
    output.push_str(&member.name.text);
    match &member.body {
        MemberBody::Direct(subjects) => {
            output.push_str(": ");
            for (index, subject) in subjects.iter().enumerate() {
                if index > 0 {
                    output.push_str(" | ");
                }
                write_subject(output, subject);
            }
        }
        MemberBody::Computed(expression) => {
            output.push_str(" = ");
            write_expression(output, expression);
        }
    }
}

fn write_subject(output: &mut String, subject: &Subject) {
    output.push_str(&subject.type_name.text);
    match &subject.shape {
        SubjectShape::Object => {}
        SubjectShape::Userset(relation) => {
            output.push('#');
            output.push_str(&relation.text);
        }
        SubjectShape::Wildcard => output.push_str(":*"),
    }
}

/// Binding strength, loosest first: `|`, `&`, `-`, then arrows and leaves.
fn precedence(expression: &Expression) -> u8 {
    match expression {
        Expression::Union(_) => 1,
        Expression::Intersection(_) => 2,
        Expression::Exclusion(..) => 3,
        Expression::Relation(_) | Expression::Arrow { .. } | Expression::Module(_) => 4,
    }
}

fn write_expression(output: &mut String, expression: &Expression) {
    match expression {
        Expression::Relation(name) => output.push_str(&name.text),
        Expression::Arrow { tupleset, target } => {
            output.push_str(&tupleset.text);
            output.push_str("->");
            output.push_str(&target.text);
        }
        Expression::Module(name) => {
            output.push_str("module(\"");
            output.push_str(&name.text);
            output.push_str("\")");
        }
        Expression::Union(operands) => write_chain(output, operands, " | ", 1),
        Expression::Intersection(operands) => write_chain(output, operands, " & ", 2),
        Expression::Exclusion(base, subtract) => {
            // Left-associative: a left operand of the same strength needs no parentheses, a
            // right one does.
            write_operand(output, base, precedence(base) < 3);
            output.push_str(" - ");
            write_operand(output, subtract, precedence(subtract) <= 3);
        }
    }
}

/// Writes an n-ary chain. An operand of the same operator is parenthesized so that it parses
/// back as a nested node rather than being merged into this chain.
fn write_chain(output: &mut String, operands: &[Expression], separator: &str, strength: u8) {
    for (index, operand) in operands.iter().enumerate() {
        if index > 0 {
            output.push_str(separator);
        }
        write_operand(output, operand, precedence(operand) <= strength);
    }
}

fn write_operand(output: &mut String, operand: &Expression, parenthesize: bool) {
    if parenthesize {
        output.push('(');
        write_expression(output, operand);
        output.push(')');
    } else {
        write_expression(output, operand);
    }
}

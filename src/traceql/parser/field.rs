//! Field expressions: what stands inside `{ }` and in aggregate and `by()` arguments.
//!
//! Precedence, loosest first: `&&` `||` (equal, left) · comparisons and regex (left) ·
//! `+ -` · prefix `!` · `* / %` · `^` (right) · prefix `-`.

use super::super::ast::{
    ArithOp, Attribute, BinaryOp, CmpOp, FieldExpr, FieldRef, Intrinsic, Kind, Static, Status,
    UnaryOp,
};
use super::super::lexer::{Token, TokenKind};
use super::{NestingGuard, PResult, Tokens, expected, fail, peek, pos, token};

const NOT_PRECEDENCE: u8 = 4;
const NEG_PRECEDENCE: u8 = 7;

/// fieldExpression
pub(crate) fn field_expression(input: Tokens<'_>) -> PResult<'_, FieldExpr> {
    field_binary(input, 1)
}

/// Binary operators of a field expression with their precedence and associativity.
fn field_operator(kind: &TokenKind) -> Option<(BinaryOp, u8, bool)> {
    use TokenKind as T;
    Some(match kind {
        T::And => (BinaryOp::And, 1, false),
        T::Or => (BinaryOp::Or, 1, false),
        T::Eq => (BinaryOp::Cmp(CmpOp::Eq), 2, false),
        T::Neq => (BinaryOp::Cmp(CmpOp::Neq), 2, false),
        T::Lt => (BinaryOp::Cmp(CmpOp::Lt), 2, false),
        T::Lte => (BinaryOp::Cmp(CmpOp::Lte), 2, false),
        T::Gt => (BinaryOp::Cmp(CmpOp::Gt), 2, false),
        T::Gte => (BinaryOp::Cmp(CmpOp::Gte), 2, false),
        T::Regex => (BinaryOp::Regex, 2, false),
        T::NotRegex => (BinaryOp::NotRegex, 2, false),
        T::Add => (BinaryOp::Arith(ArithOp::Add), 3, false),
        T::Sub => (BinaryOp::Arith(ArithOp::Sub), 3, false),
        T::Mul => (BinaryOp::Arith(ArithOp::Mul), 5, false),
        T::Div => (BinaryOp::Arith(ArithOp::Div), 5, false),
        T::Mod => (BinaryOp::Arith(ArithOp::Mod), 5, false),
        T::Pow => (BinaryOp::Arith(ArithOp::Pow), 6, true),
        _ => return None,
    })
}

/// Precedence climbing: parses operators that bind at least as tightly as `min_precedence`.
fn field_binary(input: Tokens<'_>, min_precedence: u8) -> PResult<'_, FieldExpr> {
    let (mut input, mut lhs) = field_prefix(input)?;
    while let Some((op, precedence, right_assoc)) = field_operator(peek(input)) {
        if precedence < min_precedence {
            break;
        }
        let op_pos = pos(input);
        let next_min = if right_assoc {
            precedence
        } else {
            precedence + 1
        };
        let (rest, rhs) = field_binary(&input[1..], next_min)?;
        lhs = FieldExpr::Binary {
            op,
            lhs: Box::new(lhs),
            rhs: Box::new(rhs),
            pos: op_pos,
        };
        input = rest;
    }
    Ok((input, lhs))
}

/// Prefix `!` and `-`. A minus before a number is folded into the number (`-5s`).
fn field_prefix(input: Tokens<'_>) -> PResult<'_, FieldExpr> {
    let op_pos = pos(input);
    let (op, precedence) = match peek(input) {
        TokenKind::Not => (UnaryOp::Not, NOT_PRECEDENCE + 1),
        TokenKind::Sub => (UnaryOp::Neg, NEG_PRECEDENCE + 1),
        _ => return field_primary(input),
    };
    let _guard = NestingGuard::enter(input)?;
    let (rest, operand) = field_binary(&input[1..], precedence)?;
    if op == UnaryOp::Neg
        && let FieldExpr::Static(value) = &operand
        && let Some(negated) = negate(value)
    {
        return Ok((rest, FieldExpr::Static(negated)));
    }
    Ok((
        rest,
        FieldExpr::Unary {
            op,
            expr: Box::new(operand),
            pos: op_pos,
        },
    ))
}

/// The negation of a numeric literal; `None` for anything else.
pub(crate) fn negate(value: &Static) -> Option<Static> {
    match value {
        Static::Int(n) => n.checked_neg().map(Static::Int),
        Static::Float(f) => Some(Static::Float(-f)),
        Static::Duration(d) => d.checked_neg().map(Static::Duration),
        _ => None,
    }
}

fn field_primary(input: Tokens<'_>) -> PResult<'_, FieldExpr> {
    let at = pos(input);
    if let TokenKind::LParen = peek(input) {
        let _guard = NestingGuard::enter(input)?;
        let (rest, inner) = field_expression(&input[1..])?;
        let (rest, _) = token(TokenKind::RParen, "')'")(rest)?;
        return Ok((rest, inner));
    }
    if let Some(value) = static_value(peek(input)) {
        return Ok((&input[1..], FieldExpr::Static(value)));
    }
    match field_ref(input) {
        Ok((rest, field)) => Ok((rest, FieldExpr::Field(field, at))),
        Err(nom::Err::Error(_)) => match peek(input) {
            TokenKind::Ident(word) => fail(input, unknown_identifier(word)),
            _ => expected(input, "a field expression"),
        },
        Err(e) => Err(e),
    }
}

pub(crate) fn unknown_identifier(word: &str) -> String {
    format!(
        "unknown identifier '{word}': attributes need a scope or a leading dot \
         (.{word}, span.{word}, resource.{word})"
    )
}

/// Literal tokens: strings, numbers, durations, `true`/`false`/`nil`, status and kind names,
/// `minInt`/`maxInt`.
pub(crate) fn static_value(kind: &TokenKind) -> Option<Static> {
    Some(match kind {
        TokenKind::Str(s) => Static::String(s.clone()),
        TokenKind::Int(n) => Static::Int(*n),
        TokenKind::Float(f) => Static::Float(*f),
        TokenKind::Duration(d) => Static::Duration(*d),
        TokenKind::Ident(word) => match word.as_str() {
            "true" => Static::Bool(true),
            "false" => Static::Bool(false),
            "nil" => Static::Nil,
            "ok" => Static::Status(Status::Ok),
            "error" => Static::Status(Status::Error),
            "unset" => Static::Status(Status::Unset),
            "unspecified" => Static::Kind(Kind::Unspecified),
            "internal" => Static::Kind(Kind::Internal),
            "client" => Static::Kind(Kind::Client),
            "server" => Static::Kind(Kind::Server),
            "producer" => Static::Kind(Kind::Producer),
            "consumer" => Static::Kind(Kind::Consumer),
            "minInt" => Static::Int(i64::MIN),
            "maxInt" => Static::Int(i64::MAX),
            _ => return None,
        },
        _ => return None,
    })
}

/// A static with an optional leading minus (hint values, quantiles).
pub(crate) fn signed_static(input: Tokens<'_>) -> PResult<'_, Static> {
    if let TokenKind::Sub = peek(input)
        && let Some(value) = static_value(peek(&input[1..])).as_ref().and_then(negate)
    {
        return Ok((&input[2..], value));
    }
    match static_value(peek(input)) {
        Some(value) => Ok((&input[1..], value)),
        None => expected(input, "a value"),
    }
}

/// attribute | intrinsic: what `select()`, `by (…)` and `*_over_time()` take.
pub(crate) fn field_ref(input: Tokens<'_>) -> PResult<'_, FieldRef> {
    match &input[0] {
        Token {
            kind:
                TokenKind::Attribute {
                    scope,
                    parent,
                    name,
                },
            ..
        } => Ok((
            &input[1..],
            FieldRef::Attribute(Attribute {
                scope: *scope,
                parent: *parent,
                name: name.clone(),
            }),
        )),
        Token {
            kind: TokenKind::Ident(word),
            ..
        } => match Intrinsic::from_unscoped(word) {
            Some(intrinsic) => Ok((&input[1..], FieldRef::Intrinsic(intrinsic))),
            None => expected(input, "an attribute or intrinsic"),
        },
        Token {
            kind: TokenKind::ScopedIntrinsic { scope, name },
            ..
        } => match Intrinsic::from_scoped(scope, name) {
            Some(intrinsic) => Ok((&input[1..], FieldRef::Intrinsic(intrinsic))),
            None => fail(
                input,
                format!(
                    "unknown intrinsic '{scope}:{name}'; the {scope}: intrinsics are {}",
                    Intrinsic::names_in_scope(scope).join(", ")
                ),
            ),
        },
        _ => expected(input, "an attribute or intrinsic"),
    }
}

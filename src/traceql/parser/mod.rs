//! The TraceQL parser: nom over the lexer's tokens.
//!
//! Parsing runs in two steps. `root` and `field` are precedence-climbing nom parsers, one
//! function per grammar production (see `grammar/traceql.ebnf`); `root` yields a loose
//! expression tree because at the top level the same operators mean different things (`>` is a
//! structural operator between spansets and a comparison after `count()`). `shape` then turns
//! that tree into the typed AST, rejecting the combinations TraceQL does not allow, with the
//! position of the offending operator.

mod field;
mod root;
mod shape;
mod tree;

use std::cell::Cell;

use nom::error::{ErrorKind as NomErrorKind, ParseError};

use super::ast::{FieldRef, Pos, Query};
use super::bounds;
use super::error::{ErrorKind, TraceqlError};
use super::lexer::{Token, TokenKind, tokenize};

pub(crate) type Tokens<'a> = &'a [Token];
pub(crate) type PResult<'a, T> = nom::IResult<Tokens<'a>, T, SyntaxError>;

/// How deeply parentheses, braces and prefix operators may nest. Real queries nest a handful
/// of levels; the limit keeps hostile input from exhausting the stack.
pub const MAX_NESTING: usize = 64;

/// Parses TraceQL text into a typed AST. Checks only the size bounds of [`super::bounds`]
/// (they keep the parser's own recursion safe); the rest of validation is [`super::validate`].
pub fn parse(query: &str) -> Result<Query, TraceqlError> {
    bounds::check_size(query)?;
    let tokens = tokenize(query)?;
    bounds::check_operators(&tokens)?;
    DEPTH.with(|d| d.set(0));
    let result = root::query(&tokens);
    match result {
        Ok((_, query)) => Ok(query),
        Err(nom::Err::Error(e) | nom::Err::Failure(e)) => Err(e.into_traceql(&tokens)),
        Err(nom::Err::Incomplete(_)) => unreachable!("complete input"),
    }
}

/// Parses one attribute or intrinsic (`.a`, `resource.service.name`, `span:status`), as tag
/// discovery names the field it lists values of.
pub fn parse_field(text: &str) -> Result<FieldRef, TraceqlError> {
    bounds::check_size(text)?;
    let tokens = tokenize(text)?;
    let result = field::field_ref(&tokens).and_then(|(rest, field)| match peek(rest) {
        TokenKind::Eof => Ok((rest, field)),
        _ => expected(rest, "end of the field"),
    });
    match result {
        Ok((_, field)) => Ok(field),
        Err(nom::Err::Error(e) | nom::Err::Failure(e)) => Err(e.into_traceql(&tokens)),
        Err(nom::Err::Incomplete(_)) => unreachable!("complete input"),
    }
}

/// A parse failure, positioned by how many tokens were left when it happened: of several
/// alternatives, the one that got furthest explains the error best.
#[derive(Debug, Clone)]
pub struct SyntaxError {
    remaining: usize,
    expected: Vec<&'static str>,
    message: Option<String>,
    /// Set when the error belongs to an earlier token than the one at `remaining`.
    pos: Option<Pos>,
}

impl SyntaxError {
    fn into_traceql(self, tokens: &[Token]) -> TraceqlError {
        let index = tokens
            .len()
            .saturating_sub(self.remaining)
            .min(tokens.len() - 1);
        let found = &tokens[index];
        let pos = self.pos.unwrap_or(found.pos);
        let message = match self.message {
            Some(message) => message,
            None => {
                let mut expected = self.expected;
                expected.sort_unstable();
                expected.dedup();
                match expected.as_slice() {
                    [] => format!("unexpected {}", found.kind),
                    [one] => format!("expected {one} but found {}", found.kind),
                    [init @ .., last] => {
                        format!(
                            "expected {} or {last} but found {}",
                            init.join(", "),
                            found.kind
                        )
                    }
                }
            }
        };
        TraceqlError::new(ErrorKind::Parse, pos.line, pos.col, message)
    }
}

impl<'a> ParseError<Tokens<'a>> for SyntaxError {
    fn from_error_kind(input: Tokens<'a>, _: NomErrorKind) -> Self {
        SyntaxError {
            remaining: input.len(),
            expected: Vec::new(),
            message: None,
            pos: None,
        }
    }

    fn append(_: Tokens<'a>, _: NomErrorKind, other: Self) -> Self {
        other
    }

    fn or(mut self, other: Self) -> Self {
        if self.message.is_some() || other.message.is_some() || self.remaining != other.remaining {
            // The furthest failure wins; a committed message wins ties.
            return if other.remaining < self.remaining
                || (other.remaining == self.remaining && self.message.is_none())
            {
                other
            } else {
                self
            };
        }
        self.expected.extend(other.expected);
        self
    }
}

/// A recoverable failure at `input` that lists what would have been accepted there.
pub(crate) fn expected<'a, T>(input: Tokens<'a>, what: &'static str) -> PResult<'a, T> {
    Err(nom::Err::Error(SyntaxError {
        remaining: input.len(),
        expected: vec![what],
        message: None,
        pos: None,
    }))
}

/// A committed failure with a message, at the token `input` starts with.
pub(crate) fn fail<T>(input: Tokens<'_>, message: impl Into<String>) -> PResult<'_, T> {
    Err(nom::Err::Failure(SyntaxError {
        remaining: input.len(),
        expected: Vec::new(),
        message: Some(message.into()),
        pos: None,
    }))
}

/// A committed failure at an earlier position (used by `shape`, which works on whole trees).
pub(crate) fn fail_at_pos(input: Tokens<'_>, pos: Pos, message: impl Into<String>) -> SyntaxError {
    SyntaxError {
        remaining: input.len(),
        expected: Vec::new(),
        message: Some(message.into()),
        pos: Some(pos),
    }
}

/// Consumes one token equal to `kind`.
pub(crate) fn token<'a>(
    kind: TokenKind,
    what: &'static str,
) -> impl Fn(Tokens<'a>) -> PResult<'a, Pos> {
    move |input: Tokens<'a>| match input.first() {
        Some(t) if t.kind == kind => Ok((&input[1..], t.pos)),
        _ => expected(input, what),
    }
}

/// Consumes the identifier `word` (TraceQL keywords are case-sensitive).
pub(crate) fn keyword<'a>(word: &'static str) -> impl Fn(Tokens<'a>) -> PResult<'a, Pos> {
    move |input: Tokens<'a>| match input.first() {
        Some(Token {
            kind: TokenKind::Ident(w),
            pos,
        }) if w == word => Ok((&input[1..], *pos)),
        _ => expected(input, word),
    }
}

pub(crate) fn peek(input: Tokens<'_>) -> &TokenKind {
    &input.first().expect("token streams end with Eof").kind
}

pub(crate) fn pos(input: Tokens<'_>) -> Pos {
    input.first().expect("token streams end with Eof").pos
}

thread_local! {
    static DEPTH: Cell<usize> = const { Cell::new(0) };
}

/// Counts one level of nesting for as long as it lives.
pub(crate) struct NestingGuard;

impl NestingGuard {
    pub(crate) fn enter(input: Tokens<'_>) -> Result<NestingGuard, nom::Err<SyntaxError>> {
        let depth = DEPTH.with(|d| {
            d.set(d.get() + 1);
            d.get()
        });
        if depth > MAX_NESTING {
            DEPTH.with(|d| d.set(d.get() - 1));
            return Err(nom::Err::Failure(SyntaxError {
                remaining: input.len(),
                expected: Vec::new(),
                message: Some(format!(
                    "query nests more than {MAX_NESTING} levels of parentheses, braces or prefix operators"
                )),
                pos: None,
            }));
        }
        Ok(NestingGuard)
    }
}

impl Drop for NestingGuard {
    fn drop(&mut self) {
        DEPTH.with(|d| d.set(d.get().saturating_sub(1)));
    }
}

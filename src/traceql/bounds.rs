//! Size bounds a query must meet before it is parsed.
//!
//! Parsing, validation, lowering and DataFusion's own expression handling all recurse over the
//! query's tree, and a chain of `n` operators is a tree `n` deep. The bounds are checked here, on
//! the flat token list, so a hostile query is refused before anything recursive sees it; they
//! sit far above what people write and far below what the query threads' stacks can take.

use super::ast::Pos;
use super::error::{ErrorKind, TraceqlError};
use super::lexer::{Token, TokenKind};

/// Tempo's `max_query_expression_size_bytes`.
pub const MAX_QUERY_BYTES: usize = 128 << 10;
/// Operators in one spanset filter `{ … }` (a 128-value `||` list has 255).
pub const MAX_FILTER_OPERATORS: usize = 256;
/// `^` in one filter: right-associative chains plan in time cubic in their length.
pub const MAX_FILTER_POWERS: usize = 32;
/// Operators outside filters: between spansets (`&&`, `>>`, `~`, `&>>`, …; each reads the
/// spans again) and in scalar filters (`count() > 1`).
pub const MAX_QUERY_OPERATORS: usize = 16;
/// `|` between pipeline stages.
pub const MAX_PIPES: usize = 16;

fn over(pos: Pos, message: String) -> TraceqlError {
    TraceqlError::new(ErrorKind::Validate, pos.line, pos.col, message)
}

/// Refuses a query text longer than [`MAX_QUERY_BYTES`].
pub fn check_size(query: &str) -> Result<(), TraceqlError> {
    if query.len() > MAX_QUERY_BYTES {
        return Err(TraceqlError::new(
            ErrorKind::Validate,
            1,
            1,
            format!(
                "query is {} bytes, more than the {MAX_QUERY_BYTES} allowed",
                query.len()
            ),
        ));
    }
    Ok(())
}

/// Counts operators per filter and outside filters; the error points at the first operator
/// past a bound.
pub(crate) fn check_operators(tokens: &[Token]) -> Result<(), TraceqlError> {
    use TokenKind as T;
    let mut brace_depth = 0usize;
    let (mut in_filter, mut powers) = (0usize, 0usize);
    let (mut outside, mut pipes) = (0usize, 0usize);
    for token in tokens {
        let inside = brace_depth > 0;
        match &token.kind {
            T::LBrace => {
                brace_depth += 1;
                (in_filter, powers) = (0, 0);
            }
            T::RBrace => brace_depth = brace_depth.saturating_sub(1),
            kind if inside && is_field_operator(kind) => {
                in_filter += 1;
                powers += usize::from(*kind == T::Pow);
                if powers > MAX_FILTER_POWERS {
                    return Err(over(
                        token.pos,
                        format!(
                            "a spanset filter may have at most {MAX_FILTER_POWERS} `^` operators"
                        ),
                    ));
                }
                if in_filter > MAX_FILTER_OPERATORS {
                    return Err(over(
                        token.pos,
                        format!(
                            "a spanset filter may have at most {MAX_FILTER_OPERATORS} operators"
                        ),
                    ));
                }
            }
            T::Pipe if !inside => {
                pipes += 1;
                if pipes > MAX_PIPES {
                    return Err(over(
                        token.pos,
                        format!(
                            "a query may have at most {MAX_PIPES} pipeline stages after the first"
                        ),
                    ));
                }
            }
            kind if !inside && (is_field_operator(kind) || is_structural(kind)) => {
                outside += 1;
                if outside > MAX_QUERY_OPERATORS {
                    return Err(over(
                        token.pos,
                        format!(
                            "a query may have at most {MAX_QUERY_OPERATORS} operators outside spanset filters"
                        ),
                    ));
                }
            }
            _ => {}
        }
    }
    Ok(())
}

fn is_field_operator(kind: &TokenKind) -> bool {
    use TokenKind as T;
    matches!(
        kind,
        T::And
            | T::Or
            | T::Not
            | T::Eq
            | T::Neq
            | T::Lt
            | T::Lte
            | T::Gt
            | T::Gte
            | T::Regex
            | T::NotRegex
            | T::Add
            | T::Sub
            | T::Mul
            | T::Div
            | T::Mod
            | T::Pow
    )
}

/// Structural operators that are not also field operators.
fn is_structural(kind: &TokenKind) -> bool {
    use TokenKind as T;
    matches!(
        kind,
        T::Descendant
            | T::Ancestor
            | T::Tilde
            | T::NotChild
            | T::NotParent
            | T::NotDescendant
            | T::NotAncestor
            | T::UnionChild
            | T::UnionParent
            | T::UnionDescendant
            | T::UnionAncestor
            | T::UnionSibling
    )
}

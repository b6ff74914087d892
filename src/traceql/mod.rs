//! TraceQL front end: lexer and nom parser to a typed AST, validation, canonical printing, and
//! errors with line and column. Knows nothing of DataFusion, storage or HTTP.

pub mod ast;
pub mod bounds;
pub mod error;
mod lenient;
mod lexer;
mod parser;
mod printer;
mod validate;
pub mod visit;

pub use error::{ErrorKind, TraceqlError};
pub use lenient::autocomplete_filter;
pub use parser::{MAX_NESTING, parse, parse_field};
pub use validate::validate;

/// Parses and validates: the one call a query path needs.
pub fn compile(query: &str) -> Result<ast::Query, TraceqlError> {
    let parsed = parse(query)?;
    validate(&parsed)?;
    Ok(parsed)
}

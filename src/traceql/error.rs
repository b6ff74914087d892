//! TraceQL errors: three kinds, each with the line and column where the problem starts.

use std::fmt;

/// How a query was rejected. Tempo tells these apart, and so do clients (a query that is
/// merely unsupported is not a typo).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The text is not TraceQL.
    Parse,
    /// TraceQL, but meaningless: wrong types, bad regex, aggregate of a constant, …
    Validate,
    /// TraceQL that Tempo parses but does not execute either (e.g. `parent.` scopes).
    Unsupported,
}

impl ErrorKind {
    /// The name used in JSON output: `parse`, `validate` or `unsupported`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Parse => "parse",
            ErrorKind::Validate => "validate",
            ErrorKind::Unsupported => "unsupported",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceqlError {
    pub kind: ErrorKind,
    /// 1-based line of the query text.
    pub line: u32,
    /// 1-based column, counted in characters.
    pub col: u32,
    pub message: String,
}

impl TraceqlError {
    pub fn new(kind: ErrorKind, line: u32, col: u32, message: impl Into<String>) -> Self {
        Self {
            kind,
            line,
            col,
            message: message.into(),
        }
    }

    /// The error under the offending line of the query, with a caret at the column.
    pub fn render(&self, query: &str) -> String {
        let line = query
            .lines()
            .nth(self.line.saturating_sub(1) as usize)
            .unwrap_or("");
        let caret_at = line
            .chars()
            .take(self.col.saturating_sub(1) as usize)
            .map(|c| if c == '\t' { '\t' } else { ' ' })
            .collect::<String>();
        format!("{self}\n  {line}\n  {caret_at}^")
    }
}

impl fmt::Display for TraceqlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            ErrorKind::Parse => "parse error",
            ErrorKind::Validate => "invalid query",
            ErrorKind::Unsupported => "unsupported query",
        };
        write!(
            f,
            "{kind} at line {}, col {}: {}",
            self.line, self.col, self.message
        )
    }
}

impl std::error::Error for TraceqlError {}

//! Lenient reading of the `q` filter that narrows tag and tag-value autocomplete.
//!
//! Grafana sends the other query-builder filters, or the editor text up to the cursor, so the
//! query is often unfinished: `{ .a = "x" && .b = }`, `{ .a = "x"`, `{ .a = "fo`. The filter is
//! split into its top-level `&&`/`||` matchers, and each matcher that does not compile is taken
//! as `true`, as Tempo's lenient parser does. Anything but one spanset filter does not narrow.

use super::ast::{FieldExpr, Pipeline, RootExpr, SpansetExpr, Stage, Static};
use super::compile;

/// The field expression of `q`'s one spanset filter, repaired where unfinished; `None` when
/// `q` does not narrow anything (blank, `{}`, only `true` left after repair, pipelines,
/// structural operators, or text that is no spanset filter at all).
pub fn autocomplete_filter(q: &str) -> Option<FieldExpr> {
    if q.trim().is_empty() || q.len() > super::bounds::MAX_QUERY_BYTES {
        return None;
    }
    let expr = match compile(q) {
        Ok(query) => single_filter(query.expr)?,
        Err(_) => single_filter(compile(&repair(q)?).ok()?.expr)?,
    };
    match expr {
        FieldExpr::Static(Static::Bool(true)) => None,
        expr => Some(expr),
    }
}

fn single_filter(root: RootExpr) -> Option<FieldExpr> {
    match root {
        RootExpr::Pipeline(Pipeline { mut stages }) if stages.len() == 1 => match stages.pop() {
            Some(Stage::Spanset(SpansetExpr::Filter { expr, .. })) => Some(expr),
            _ => None,
        },
        _ => None,
    }
}

/// `q` rewritten as one spanset filter whose unfinished matchers are `true`, or `None` when
/// it does not start with `{` or goes on after the filter's `}`.
fn repair(q: &str) -> Option<String> {
    let body = q.trim_start().strip_prefix('{')?;
    let mut matchers = Vec::new();
    let mut operators = Vec::new();
    let mut start = 0;
    let mut depth = 0usize;
    let mut quote: Option<char> = None;
    let mut escaped = false;
    let mut end = body.len();
    let mut chars = body.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if let Some(q) = quote {
            match c {
                _ if escaped => escaped = false,
                '\\' if q == '"' => escaped = true,
                _ if c == q => quote = None,
                _ => {}
            }
            continue;
        }
        match c {
            '"' | '`' => quote = Some(c),
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            '}' if depth == 0 => {
                end = i;
                break;
            }
            '&' | '|' if depth == 0 && chars.peek().is_some_and(|&(_, next)| next == c) => {
                chars.next();
                matchers.push(&body[start..i]);
                operators.push(if c == '&' { "&&" } else { "||" });
                start = i + 2;
            }
            _ => {}
        }
    }
    if end < body.len() && !body[end + 1..].trim().is_empty() {
        return None;
    }
    matchers.push(&body[start..end]);
    let mut repaired = String::from("{ ");
    for (i, matcher) in matchers.iter().enumerate() {
        if i > 0 {
            repaired.push_str(&format!(" {} ", operators[i - 1]));
        }
        let complete = !matcher.trim().is_empty() && compile(&format!("{{ {matcher} }}")).is_ok();
        repaired.push_str(if complete { matcher.trim() } else { "true" });
    }
    repaired.push_str(" }");
    Some(repaired)
}

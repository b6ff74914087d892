//! The TraceQL lexer (nom over a located `&str`): text → tokens with line and column.
//!
//! Lexing is where TraceQL is least like other languages: attribute names run until one of a
//! few stop characters (`.http.status_code`, `.foo-bar` and `.a/b` are single names), numbers
//! glued to a unit are durations (`1h30m`), and `span:name` is one scoped-intrinsic token.

use std::fmt;

use nom::bytes::complete::{tag, take_until, take_while, take_while1};
use nom::character::complete::{char, digit0, digit1, multispace1, one_of, satisfy};
use nom::combinator::{opt, recognize};
use nom::sequence::pair;
use nom::{IResult, Parser};
use nom_locate::LocatedSpan;

use super::ast::{AttributeScope, Pos};
use super::error::{ErrorKind, TraceqlError};

type Span<'a> = LocatedSpan<&'a str>;

#[derive(Debug, Clone, PartialEq)]
pub enum TokenKind {
    LBrace,
    RBrace,
    LParen,
    RParen,
    Comma,
    Pipe,
    /// `=`
    Eq,
    Neq,
    Lt,
    Lte,
    Gt,
    Gte,
    /// `=~`
    Regex,
    /// `!~`: not-regex inside filters, not-sibling between spansets.
    NotRegex,
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Pow,
    And,
    Or,
    Not,
    /// `>>`
    Descendant,
    /// `<<`
    Ancestor,
    /// `~`
    Tilde,
    NotChild,
    NotParent,
    NotDescendant,
    NotAncestor,
    UnionChild,
    UnionParent,
    UnionDescendant,
    UnionAncestor,
    UnionSibling,
    Ident(String),
    /// `scope:name`, resolved to an intrinsic by the parser.
    ScopedIntrinsic {
        scope: String,
        name: String,
    },
    Attribute {
        scope: AttributeScope,
        parent: bool,
        name: String,
    },
    Str(String),
    Int(i64),
    Float(f64),
    /// Nanoseconds.
    Duration(i64),
    Eof,
}

impl fmt::Display for TokenKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let symbol = match self {
            TokenKind::LBrace => "{",
            TokenKind::RBrace => "}",
            TokenKind::LParen => "(",
            TokenKind::RParen => ")",
            TokenKind::Comma => ",",
            TokenKind::Pipe => "|",
            TokenKind::Eq => "=",
            TokenKind::Neq => "!=",
            TokenKind::Lt => "<",
            TokenKind::Lte => "<=",
            TokenKind::Gt => ">",
            TokenKind::Gte => ">=",
            TokenKind::Regex => "=~",
            TokenKind::NotRegex => "!~",
            TokenKind::Add => "+",
            TokenKind::Sub => "-",
            TokenKind::Mul => "*",
            TokenKind::Div => "/",
            TokenKind::Mod => "%",
            TokenKind::Pow => "^",
            TokenKind::And => "&&",
            TokenKind::Or => "||",
            TokenKind::Not => "!",
            TokenKind::Descendant => ">>",
            TokenKind::Ancestor => "<<",
            TokenKind::Tilde => "~",
            TokenKind::NotChild => "!>",
            TokenKind::NotParent => "!<",
            TokenKind::NotDescendant => "!>>",
            TokenKind::NotAncestor => "!<<",
            TokenKind::UnionChild => "&>",
            TokenKind::UnionParent => "&<",
            TokenKind::UnionDescendant => "&>>",
            TokenKind::UnionAncestor => "&<<",
            TokenKind::UnionSibling => "&~",
            TokenKind::Ident(name) => return write!(f, "'{name}'"),
            TokenKind::ScopedIntrinsic { scope, name } => return write!(f, "'{scope}:{name}'"),
            TokenKind::Attribute {
                scope,
                parent,
                name,
            } => {
                let parent = if *parent { "parent." } else { "" };
                let prefix = match (parent.is_empty(), scope) {
                    (false, AttributeScope::None) => "",
                    _ => scope.prefix(),
                };
                return write!(f, "attribute '{parent}{prefix}{name}'");
            }
            TokenKind::Str(s) => return write!(f, "string {s:?}"),
            TokenKind::Int(n) => return write!(f, "'{n}'"),
            TokenKind::Float(n) => return write!(f, "'{n}'"),
            TokenKind::Duration(_) => "duration",
            TokenKind::Eof => return f.write_str("end of query"),
        };
        write!(f, "'{symbol}'")
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Token {
    pub kind: TokenKind,
    pub pos: Pos,
}

/// Splits a query into tokens; the last token is always `Eof`.
pub fn tokenize(query: &str) -> Result<Vec<Token>, TraceqlError> {
    let mut input = Span::new(query);
    let mut tokens = Vec::new();
    let mut cursor = Cursor::default();
    loop {
        input = skip_trivia(input)?;
        let pos = cursor.advance_to(query, input.location_offset());
        if input.fragment().is_empty() {
            tokens.push(Token {
                kind: TokenKind::Eof,
                pos,
            });
            return Ok(tokens);
        }
        let (rest, kind) = next_token(input)?;
        tokens.push(Token { kind, pos });
        input = rest;
    }
}

/// Line and column of a byte offset, moved forward incrementally: asking the span for its
/// column would rescan the line for every token (quadratic on long one-line queries).
struct Cursor {
    offset: usize,
    line: u32,
    col: u32,
}

impl Default for Cursor {
    fn default() -> Self {
        Cursor {
            offset: 0,
            line: 1,
            col: 1,
        }
    }
}

impl Cursor {
    fn advance_to(&mut self, text: &str, offset: usize) -> Pos {
        for c in text[self.offset..offset].chars() {
            if c == '\n' {
                self.line += 1;
                self.col = 1;
            } else {
                self.col += 1;
            }
        }
        self.offset = offset;
        Pos {
            line: self.line,
            col: self.col,
        }
    }
}

fn pos_of(span: &Span) -> Pos {
    Pos {
        line: span.location_line(),
        col: span.get_utf8_column() as u32,
    }
}

fn error_at(span: &Span, message: impl Into<String>) -> TraceqlError {
    let pos = pos_of(span);
    TraceqlError::new(ErrorKind::Parse, pos.line, pos.col, message)
}

/// Skips whitespace, `// line` and `/* block */` comments.
fn skip_trivia(mut input: Span) -> Result<Span, TraceqlError> {
    loop {
        if let Ok((rest, _)) = multispace1::<Span, nom::error::Error<Span>>(input) {
            input = rest;
        } else if input.fragment().starts_with("//") {
            let (rest, _) = take_while::<_, Span, nom::error::Error<Span>>(|c| c != '\n')(input)
                .expect("take_while cannot fail");
            input = rest;
        } else if input.fragment().starts_with("/*") {
            let body: IResult<Span, Span> = take_until("*/")(input);
            match body {
                Ok((rest, _)) => input = nom::Input::take_from(&rest, 2),
                Err(_) => return Err(error_at(&input, "comment is not closed: expected '*/'")),
            }
        } else {
            return Ok(input);
        }
    }
}

fn next_token(input: Span) -> Result<(Span, TokenKind), TraceqlError> {
    let first = input.fragment().chars().next().expect("not empty");
    let second = input.fragment().chars().nth(1);
    match first {
        '"' => double_quoted(input),
        '`' => raw_string(input),
        '0'..='9' => number(input),
        '.' if second.is_some_and(|c| c.is_ascii_digit()) => number(input),
        '.' => attribute(input, AttributeScope::None, false, 1),
        c if c.is_ascii_alphabetic() || c == '_' => word(input),
        '\'' => Err(error_at(
            &input,
            "single quotes do not make a string in TraceQL: use \"…\" or `…`",
        )),
        _ => operator(input),
    }
}

fn operator(input: Span) -> Result<(Span, TokenKind), TraceqlError> {
    // Longest first, so that `!>>` wins over `!>` and `!`.
    const OPERATORS: &[(&str, TokenKind)] = &[
        ("!>>", TokenKind::NotDescendant),
        ("!<<", TokenKind::NotAncestor),
        ("&>>", TokenKind::UnionDescendant),
        ("&<<", TokenKind::UnionAncestor),
        ("!=", TokenKind::Neq),
        ("!~", TokenKind::NotRegex),
        ("!>", TokenKind::NotChild),
        ("!<", TokenKind::NotParent),
        ("=~", TokenKind::Regex),
        ("<=", TokenKind::Lte),
        (">=", TokenKind::Gte),
        (">>", TokenKind::Descendant),
        ("<<", TokenKind::Ancestor),
        ("&&", TokenKind::And),
        ("||", TokenKind::Or),
        ("&>", TokenKind::UnionChild),
        ("&<", TokenKind::UnionParent),
        ("&~", TokenKind::UnionSibling),
        ("{", TokenKind::LBrace),
        ("}", TokenKind::RBrace),
        ("(", TokenKind::LParen),
        (")", TokenKind::RParen),
        (",", TokenKind::Comma),
        ("|", TokenKind::Pipe),
        ("=", TokenKind::Eq),
        ("<", TokenKind::Lt),
        (">", TokenKind::Gt),
        ("+", TokenKind::Add),
        ("-", TokenKind::Sub),
        ("*", TokenKind::Mul),
        ("/", TokenKind::Div),
        ("%", TokenKind::Mod),
        ("^", TokenKind::Pow),
        ("!", TokenKind::Not),
        ("~", TokenKind::Tilde),
    ];
    for (text, kind) in OPERATORS {
        let matched: IResult<Span, Span> = tag(*text)(input);
        if let Ok((rest, _)) = matched {
            return Ok((rest, kind.clone()));
        }
    }
    let c = input.fragment().chars().next().unwrap_or(' ');
    Err(error_at(&input, format!("unexpected character '{c}'")))
}

const ATTRIBUTE_SCOPES: &[(&str, AttributeScope)] = &[
    ("span", AttributeScope::Span),
    ("resource", AttributeScope::Resource),
    ("event", AttributeScope::Event),
    ("link", AttributeScope::Link),
    ("instrumentation", AttributeScope::Instrumentation),
];

const INTRINSIC_SCOPES: &[&str] = &["span", "trace", "event", "link", "instrumentation"];

/// An identifier, a scoped attribute (`span.x`), a parent attribute (`parent.x`) or a scoped
/// intrinsic (`span:name`).
fn word(input: Span) -> Result<(Span, TokenKind), TraceqlError> {
    let (rest, ident) = identifier(input).expect("starts with a letter");
    let ident = *ident.fragment();
    let next = rest.fragment().chars().next();
    if next == Some('.') {
        if ident == "parent" {
            // `parent.span.x` and `parent.resource.x` take a second scope; nothing else does.
            let after = &rest.fragment()[1..];
            for (word, scope) in &ATTRIBUTE_SCOPES[..2] {
                if after.starts_with(word) && after[word.len()..].starts_with('.') {
                    return attribute(rest, *scope, true, 1 + word.len() + 1);
                }
            }
            return attribute(rest, AttributeScope::None, true, 1);
        }
        if let Some((_, scope)) = ATTRIBUTE_SCOPES.iter().find(|(w, _)| *w == ident) {
            return attribute(rest, *scope, false, 1);
        }
    }
    if next == Some(':') && INTRINSIC_SCOPES.contains(&ident) {
        let after_colon: Span = nom::Input::take_from(&rest, 1);
        return match identifier(after_colon) {
            Ok((rest, name)) => Ok((
                rest,
                TokenKind::ScopedIntrinsic {
                    scope: ident.to_string(),
                    name: name.fragment().to_string(),
                },
            )),
            Err(_) => Err(error_at(
                &after_colon,
                format!("expected an intrinsic name after '{ident}:'"),
            )),
        };
    }
    Ok((rest, TokenKind::Ident(ident.to_string())))
}

fn identifier(input: Span) -> IResult<Span, Span> {
    recognize(pair(
        satisfy(|c| c.is_ascii_alphabetic() || c == '_'),
        take_while(|c: char| c.is_ascii_alphanumeric() || c == '_'),
    ))
    .parse(input)
}

/// Characters that end an attribute name (besides whitespace).
fn ends_attribute(c: char) -> bool {
    c.is_whitespace() || "{}()=~!<>&|^,".contains(c)
}

/// The name after a scope prefix of `prefix_len` bytes: unquoted runs and `"quoted"`
/// segments (only `\"` and `\\` escapes), concatenated.
fn attribute(
    input: Span,
    scope: AttributeScope,
    parent: bool,
    prefix_len: usize,
) -> Result<(Span, TokenKind), TraceqlError> {
    let mut rest: Span = nom::Input::take_from(&input, prefix_len);
    let mut name = String::new();
    loop {
        if rest.fragment().starts_with('"') {
            let (after, segment) = quoted_attribute_segment(rest)?;
            name.push_str(&segment);
            rest = after;
            continue;
        }
        let run: IResult<Span, Span> = take_while1(|c: char| !ends_attribute(c) && c != '"')(rest);
        match run {
            Ok((after, text)) => {
                name.push_str(text.fragment());
                rest = after;
            }
            Err(_) => break,
        }
    }
    if name.is_empty() {
        return Err(error_at(&rest, "expected an attribute name after '.'"));
    }
    Ok((
        rest,
        TokenKind::Attribute {
            scope,
            parent,
            name,
        },
    ))
}

fn quoted_attribute_segment(input: Span) -> Result<(Span, String), TraceqlError> {
    let mut out = String::new();
    let mut chars = input.fragment().char_indices().skip(1);
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((nom::Input::take_from(&input, i + 1), out)),
            '\\' => match chars.next() {
                Some((_, '"')) => out.push('"'),
                Some((_, '\\')) => out.push('\\'),
                _ => {
                    let at: Span = nom::Input::take_from(&input, i);
                    return Err(error_at(
                        &at,
                        "invalid escape sequence in quoted attribute name: only \\\" and \\\\ are allowed",
                    ));
                }
            },
            c => out.push(c),
        }
    }
    Err(error_at(
        &input,
        "quoted attribute name is not closed: expected '\"'",
    ))
}

/// A Go-syntax double-quoted string with Go's escapes.
fn double_quoted(input: Span) -> Result<(Span, TokenKind), TraceqlError> {
    let text = input.fragment();
    let mut out = String::new();
    let mut chars = text.char_indices().skip(1).peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((nom::Input::take_from(&input, i + 1), TokenKind::Str(out))),
            '\n' => break,
            '\\' => {
                let at: Span = nom::Input::take_from(&input, i);
                let bad = || error_at(&at, "invalid escape sequence in string");
                let (_, e) = chars.next().ok_or_else(bad)?;
                let mut hex = |n: usize| -> Result<u32, TraceqlError> {
                    let digits: String = (0..n)
                        .filter_map(|_| chars.next().map(|(_, c)| c))
                        .collect();
                    if digits.len() != n {
                        return Err(bad());
                    }
                    u32::from_str_radix(&digits, 16).map_err(|_| bad())
                };
                match e {
                    'a' => out.push('\x07'),
                    'b' => out.push('\x08'),
                    'f' => out.push('\x0c'),
                    'n' => out.push('\n'),
                    'r' => out.push('\r'),
                    't' => out.push('\t'),
                    'v' => out.push('\x0b'),
                    '\\' => out.push('\\'),
                    '"' => out.push('"'),
                    'x' => {
                        // Go allows any byte here; only the ASCII range is valid UTF-8 alone.
                        let v = hex(2)?;
                        out.push(char::from_u32(v).filter(|c| c.is_ascii()).ok_or_else(bad)?);
                    }
                    'u' => out.push(char::from_u32(hex(4)?).ok_or_else(bad)?),
                    'U' => out.push(char::from_u32(hex(8)?).ok_or_else(bad)?),
                    '0'..='7' => {
                        let mut v = e.to_digit(8).unwrap();
                        for _ in 0..2 {
                            let d = chars
                                .next()
                                .and_then(|(_, c)| c.to_digit(8))
                                .ok_or_else(bad)?;
                            v = v * 8 + d;
                        }
                        out.push(char::from_u32(v).filter(|c| c.is_ascii()).ok_or_else(bad)?);
                    }
                    _ => return Err(bad()),
                }
            }
            c => out.push(c),
        }
    }
    Err(error_at(&input, "string is not closed: expected '\"'"))
}

/// A back-quoted raw string: no escapes, may span lines.
fn raw_string(input: Span) -> Result<(Span, TokenKind), TraceqlError> {
    let body: IResult<Span, Span> = take_until("`")(nom::Input::take_from(&input, 1));
    match body {
        Ok((rest, text)) => Ok((
            nom::Input::take_from(&rest, 1),
            TokenKind::Str(text.fragment().to_string()),
        )),
        Err(_) => Err(error_at(&input, "raw string is not closed: expected '`'")),
    }
}

/// Integers, floats (`1.5`, `.5`, `1.`, `1e3`) and durations (`100ms`, `1h30m`, `1.5s`, `2d`).
fn number(input: Span) -> Result<(Span, TokenKind), TraceqlError> {
    let parsed: IResult<Span, Span> = recognize((
        digit0,
        opt(pair(char('.'), digit0)),
        opt((one_of("eE"), opt(one_of("+-")), digit1)),
    ))
    .parse(input);
    let (rest, text) = parsed.map_err(|_| error_at(&input, "invalid number"))?;
    let text = *text.fragment();

    // A unit glued to the number makes a duration; if it does not parse, the number stands
    // alone and the letters become the next token (and a parse error there).
    let unit_run: IResult<Span, Span> =
        take_while(|c: char| c.is_ascii_digit() || c == '.' || "nsuµmhdwy".contains(c))(rest);
    if let Ok((after, unit)) = unit_run
        && unit
            .fragment()
            .starts_with(|c: char| "nsuµmhdwy".contains(c))
    {
        let whole = &input.fragment()[..text.len() + unit.fragment().len()];
        match parse_duration_checked(whole) {
            Some(Ok(nanos)) => return Ok((after, TokenKind::Duration(nanos))),
            Some(Err(message)) => return Err(error_at(&input, message)),
            None => {}
        }
    }

    let is_float = text.contains(['.', 'e', 'E']);
    if is_float {
        let value: f64 = text
            .parse()
            .map_err(|_| error_at(&input, format!("invalid number '{text}'")))?;
        // Go's ParseFloat refuses what overflows f64, and an infinity has no literal to print.
        if value.is_infinite() {
            return Err(error_at(
                &input,
                format!("number {text} is out of range for a float"),
            ));
        }
        Ok((rest, TokenKind::Float(value)))
    } else {
        let value: i64 = text.parse().map_err(|_| {
            error_at(
                &input,
                format!("integer {text} is out of range (at most {})", i64::MAX),
            )
        })?;
        Ok((rest, TokenKind::Int(value)))
    }
}

/// Parses a duration made of number+unit segments (`1h30m`, `1.5s`, `2d`, `100µs`) into
/// nanoseconds: `None` when the text is not a duration, `Some(Err)` when it overflows.
fn parse_duration_checked(text: &str) -> Option<Result<i64, String>> {
    const UNITS: &[(&str, f64)] = &[
        ("ns", 1.0),
        ("us", 1e3),
        ("µs", 1e3),
        ("ms", 1e6),
        ("s", 1e9),
        ("m", 60e9),
        ("h", 3600e9),
        ("d", 86400e9),
        ("w", 7.0 * 86400e9),
        ("y", 365.0 * 86400e9),
    ];
    let mut rest = text;
    let mut total: i128 = 0;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number = &rest[..digits_len];
        if number.is_empty() || number == "." || number.matches('.').count() > 1 {
            return None;
        }
        rest = &rest[digits_len..];
        // Two-letter units before their one-letter prefixes (`ms` before `m`).
        let (unit, size) = UNITS
            .iter()
            .filter(|(u, _)| rest.starts_with(u))
            .max_by_key(|(u, _)| u.len())?;
        rest = &rest[unit.len()..];
        let out_of_range = || Some(Err(format!("duration {text} is out of range")));
        let value = if number.contains('.') {
            let v: f64 = number.parse().ok()?;
            let nanos = (v * size).round();
            if !nanos.is_finite() || nanos > i64::MAX as f64 {
                return out_of_range();
            }
            nanos as i128
        } else {
            // All digits: a parse failure can only be overflow.
            match number
                .parse::<i128>()
                .ok()
                .and_then(|v| v.checked_mul(*size as i128))
            {
                Some(v) => v,
                None => return out_of_range(),
            }
        };
        total += value;
        if total > i64::MAX as i128 {
            return out_of_range();
        }
    }
    Some(Ok(total as i64))
}

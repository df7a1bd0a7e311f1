//! JSON text read as Python's `json` module reads it, without building
//! values: the top-level object's members are located by byte span, so a
//! rewrite can change one member's value and keep every other byte.
//!
//! The state files are written by the gateway with Python's `json`, which
//! accepts (and writes by default) more than RFC 8259: `NaN`, `Infinity`,
//! `-Infinity`, numbers of any size (`1e400`, 40-digit integers), lone
//! surrogate escapes (`"\ud800"`), duplicate keys (the last one counts)
//! and nesting deeper than serde_json's 128 levels. The upstream readers
//! open the file as `utf-8-sig` (one leading BOM skipped) and call
//! `json.loads`; this module accepts exactly that language:
//!
//! * the bytes after an optional BOM are valid UTF-8;
//! * whitespace is space, tab, CR and LF only;
//! * strings hold no control character below 0x20 (`strict=True`);
//!   escapes are `\" \\ \/ \b \f \n \r \t` and `\u` with 4 hex digits;
//! * numbers are `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?`, plus
//!   the three literals above;
//! * one value, then only whitespace.
//!
//! The scanner keeps its own stack (no recursion, so no depth limit and no
//! stack overflow) and never copies the text. Keys and string values of
//! the top-level object are decoded to UTF-16 code units, as Python's
//! `str` holds them (lone surrogates included).

use std::fmt;
use std::ops::Range;

/// The UTF-8 byte order mark `utf-8-sig` skips.
const BOM: &[u8] = b"\xef\xbb\xbf";

/// What a JSON value is, as Python's `json` would type it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A JSON object.
    Object,
    /// A JSON array.
    Array,
    /// A string.
    String,
    /// No fraction, no exponent: a Python `int`, whatever its size.
    Integer,
    /// A fraction or an exponent, `NaN` or an infinity: a Python `float`.
    Float,
    /// `true`.
    True,
    /// `false`.
    False,
    /// `null`.
    Null,
}

impl Kind {
    /// "an array", "a string", … for messages.
    fn article(self) -> &'static str {
        match self {
            Kind::Object => "an object",
            Kind::Array => "an array",
            Kind::String => "a string",
            Kind::Integer | Kind::Float => "a number",
            Kind::True | Kind::False => "a boolean",
            Kind::Null => "null",
        }
    }
}

/// One member of the top-level object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The key, decoded.
    pub key: Vec<u16>,
    /// The value's bytes in the text.
    pub value: Range<usize>,
    /// What the value is.
    pub kind: Kind,
    /// The value, decoded, when it is a string.
    pub text: Option<Vec<u16>>,
}

impl Member {
    /// Whether the key is `name`.
    pub fn is(&self, name: &str) -> bool {
        self.key.iter().copied().eq(name.encode_utf16())
    }
}

/// The top-level object of a text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Object {
    /// In the order of the text, duplicates included.
    pub members: Vec<Member>,
    /// The offset of the opening brace.
    pub open: usize,
}

impl Object {
    /// The member Python's `dict` keeps for `name`: the last one.
    pub fn get(&self, name: &str) -> Option<&Member> {
        self.members.iter().rev().find(|m| m.is(name))
    }
}

/// Why a text is not a JSON object Python would read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invalid {
    /// Not UTF-8 (Python's decoder fails before `json` sees it).
    NotUtf8 {
        /// 1-based line.
        line: usize,
        /// 1-based column, in bytes.
        column: usize,
    },
    /// Not JSON: Python's message, and where (1-based, columns in bytes).
    Syntax {
        /// Python's message.
        what: &'static str,
        /// 1-based line.
        line: usize,
        /// 1-based column, in bytes.
        column: usize,
    },
    /// JSON, but not an object.
    NotObject(Kind),
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Invalid::NotUtf8 { line, column } => write!(f, "not valid JSON (not UTF-8 at line {line}, column {column})"),
            Invalid::Syntax { what, line, column } => write!(f, "not valid JSON ({what} at line {line}, column {column})"),
            Invalid::NotObject(kind) => write!(f, "not a JSON object ({})", kind.article()),
        }
    }
}

/// Line and column (1-based) of a byte offset.
fn position(bytes: &[u8], at: usize) -> (usize, usize) {
    let before = &bytes[..at.min(bytes.len())];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let column = at - before.iter().rposition(|&b| b == b'\n').map_or(0, |nl| nl + 1) + 1;
    (line, column)
}

/// An open container on the scanner's stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Open {
    Object,
    Array,
}

struct Scanner<'a> {
    b: &'a [u8],
    i: usize,
}

type Step<T> = std::result::Result<T, &'static str>;

impl Scanner<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    fn literal(&mut self, word: &[u8]) -> bool {
        if self.b[self.i..].starts_with(word) {
            self.i += word.len();
            return true;
        }
        false
    }

    fn digits(&mut self) -> usize {
        let from = self.i;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.i += 1;
        }
        self.i - from
    }

    /// A number at `i` (its first byte is `-` or a digit).
    fn number(&mut self) -> Step<Kind> {
        if self.peek() == Some(b'-') {
            self.i += 1;
            if self.literal(b"Infinity") {
                return Ok(Kind::Float);
            }
        }
        match self.peek() {
            Some(b'0') => self.i += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return Err("Expecting value"),
        }
        let mut kind = Kind::Integer;
        if self.peek() == Some(b'.') && matches!(self.b.get(self.i + 1), Some(b'0'..=b'9')) {
            self.i += 1;
            self.digits();
            kind = Kind::Float;
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            let back = self.i;
            self.i += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.i += 1;
            }
            if self.digits() == 0 {
                // Python ends the number before the `e`; what follows is
                // then an error of its own.
                self.i = back;
            } else {
                kind = Kind::Float;
            }
        }
        Ok(kind)
    }

    /// A string at `i` (on its opening quote); decoded into `out` if given.
    fn string(&mut self, mut out: Option<&mut Vec<u16>>) -> Step<()> {
        self.i += 1;
        loop {
            let run = self.i;
            while matches!(self.peek(), Some(c) if c >= 0x20 && c != b'"' && c != b'\\') {
                self.i += 1;
            }
            if let Some(out) = out.as_deref_mut() {
                // The whole text was checked to be UTF-8, and runs end on ASCII.
                let s = std::str::from_utf8(&self.b[run..self.i]).map_err(|_| "Invalid UTF-8")?;
                out.extend(s.encode_utf16());
            }
            match self.peek() {
                Some(b'"') => {
                    self.i += 1;
                    return Ok(());
                }
                Some(b'\\') => {
                    let unit = match self.b.get(self.i + 1) {
                        Some(b'"') => b'"' as u16,
                        Some(b'\\') => b'\\' as u16,
                        Some(b'/') => b'/' as u16,
                        Some(b'b') => 8,
                        Some(b'f') => 12,
                        Some(b'n') => b'\n' as u16,
                        Some(b'r') => b'\r' as u16,
                        Some(b't') => b'\t' as u16,
                        Some(b'u') => {
                            let hex = self.b.get(self.i + 2..self.i + 6).ok_or("Invalid \\uXXXX escape")?;
                            let s = std::str::from_utf8(hex).map_err(|_| "Invalid \\uXXXX escape")?;
                            if !s.bytes().all(|c| c.is_ascii_hexdigit()) {
                                return Err("Invalid \\uXXXX escape");
                            }
                            let unit = u16::from_str_radix(s, 16).map_err(|_| "Invalid \\uXXXX escape")?;
                            self.i += 4;
                            unit
                        }
                        Some(_) => return Err("Invalid \\escape"),
                        None => return Err("Unterminated string starting"),
                    };
                    self.i += 2;
                    if let Some(out) = out.as_deref_mut() {
                        out.push(unit);
                    }
                }
                Some(_) => return Err("Invalid control character"),
                None => return Err("Unterminated string starting"),
            }
        }
    }

    /// A scalar, or the opening of a container (pushed on `stack`).
    /// `Ok(None)`: a container was opened.
    fn value_start(&mut self, stack: &mut Vec<Open>, text: Option<&mut Vec<u16>>) -> Step<Option<Kind>> {
        let kind = match self.peek() {
            Some(b'{') => {
                self.i += 1;
                stack.push(Open::Object);
                return Ok(None);
            }
            Some(b'[') => {
                self.i += 1;
                stack.push(Open::Array);
                return Ok(None);
            }
            Some(b'"') => {
                self.string(text)?;
                Kind::String
            }
            Some(b'-' | b'0'..=b'9') => self.number()?,
            _ if self.literal(b"null") => Kind::Null,
            _ if self.literal(b"true") => Kind::True,
            _ if self.literal(b"false") => Kind::False,
            _ if self.literal(b"NaN") || self.literal(b"Infinity") => Kind::Float,
            _ => return Err("Expecting value"),
        };
        Ok(Some(kind))
    }
}

/// Reads `bytes` (one leading BOM allowed) as a JSON object.
pub fn parse(bytes: &[u8]) -> Result<Object, Invalid> {
    let start = if bytes.starts_with(BOM) { BOM.len() } else { 0 };
    if let Err(e) = std::str::from_utf8(&bytes[start..]) {
        let (line, column) = position(bytes, start + e.valid_up_to());
        return Err(Invalid::NotUtf8 { line, column });
    }
    let mut s = Scanner { b: bytes, i: start };
    let syntax = |what: &'static str, at: usize| {
        let (line, column) = position(bytes, at);
        Invalid::Syntax { what, line, column }
    };
    s.ws();
    let open = s.i;
    let mut stack: Vec<Open> = Vec::new();
    let mut members = Vec::new();
    // The member of the top-level object being read: key, value start.
    let mut member: Option<(Vec<u16>, usize)> = None;
    let top: Kind;
    // Expecting a value at `s.i` (whitespace skipped).
    'value: loop {
        let at_top = stack.len() == 1 && stack[0] == Open::Object;
        let mut text = Vec::new();
        let started = s.i;
        let scalar = s.value_start(&mut stack, at_top.then_some(&mut text)).map_err(|w| syntax(w, started))?;
        let mut done = match scalar {
            Some(kind) => Some(kind),
            None => {
                // A container was opened: it may be empty.
                s.ws();
                match (stack.last(), s.peek()) {
                    (Some(Open::Object), Some(b'}')) | (Some(Open::Array), Some(b']')) => {
                        s.i += 1;
                        let kind = if stack.pop() == Some(Open::Object) { Kind::Object } else { Kind::Array };
                        Some(kind)
                    }
                    (Some(Open::Array), _) => continue 'value,
                    _ => None, // an object: its first key follows
                }
            }
        };
        // After each completed value (or an opened object), find what comes next.
        loop {
            if let Some(kind) = done.take() {
                if stack.is_empty() {
                    top = kind;
                    break 'value;
                }
                if stack.len() == 1
                    && let Some((key, from)) = member.take()
                {
                    let text = (kind == Kind::String).then(|| std::mem::take(&mut text));
                    members.push(Member { key, value: from..s.i, kind, text });
                }
                s.ws();
                match (stack.last(), s.peek()) {
                    (Some(_), Some(b',')) => {
                        s.i += 1;
                        s.ws();
                        if stack.last() == Some(&Open::Array) {
                            continue 'value;
                        }
                    }
                    (Some(Open::Object), Some(b'}')) | (Some(Open::Array), Some(b']')) => {
                        s.i += 1;
                        let kind = if stack.pop() == Some(Open::Object) { Kind::Object } else { Kind::Array };
                        done = Some(kind);
                        continue;
                    }
                    _ => return Err(syntax("Expecting ',' delimiter", s.i)),
                }
            }
            // In an object, a key is expected.
            if s.peek() != Some(b'"') {
                return Err(syntax("Expecting property name enclosed in double quotes", s.i));
            }
            let mut key = Vec::new();
            let key_at = s.i;
            let top_level = stack.len() == 1;
            s.string(top_level.then_some(&mut key)).map_err(|w| syntax(w, key_at))?;
            s.ws();
            if s.peek() != Some(b':') {
                return Err(syntax("Expecting ':' delimiter", s.i));
            }
            s.i += 1;
            s.ws();
            if top_level {
                member = Some((key, s.i));
            }
            continue 'value;
        }
    }
    s.ws();
    if s.i != bytes.len() {
        return Err(syntax("Extra data", s.i));
    }
    match top {
        Kind::Object => Ok(Object { members, open }),
        kind => Err(Invalid::NotObject(kind)),
    }
}

/// `bytes` (a text `parse` gave `object` for) with every member named
/// `name` set to the JSON text `value`, for each `(name, value)` of
/// `sets`; a name not present is added after the last member. Every other
/// byte stays as it was.
pub fn set_members(bytes: &[u8], object: &Object, sets: &[(&str, &str)]) -> Vec<u8> {
    let mut edits: Vec<(Range<usize>, String)> = Vec::new();
    let mut added = String::new();
    for (name, value) in sets {
        let mut found = false;
        for m in object.members.iter().filter(|m| m.is(name)) {
            edits.push((m.value.clone(), value.to_string()));
            found = true;
        }
        if !found {
            if !object.members.is_empty() || !added.is_empty() {
                added.push(',');
            }
            added.push_str(&quote(name));
            added.push(':');
            added.push_str(value);
        }
    }
    if !added.is_empty() {
        let at = object.members.last().map_or(object.open + 1, |m| m.value.end);
        edits.push((at..at, added));
    }
    edits.sort_by_key(|(r, _)| r.start);
    let mut out = Vec::with_capacity(bytes.len() + 64);
    let mut from = 0;
    for (range, text) in edits {
        out.extend_from_slice(&bytes[from..range.start]);
        out.extend_from_slice(text.as_bytes());
        from = range.end;
    }
    out.extend_from_slice(&bytes[from..]);
    out
}

/// A string as JSON text (only `"`, `\` and control characters escaped).
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(text: &str) -> Vec<(String, String, Kind)> {
        let o = parse(text.as_bytes()).unwrap_or_else(|e| panic!("{text}: {e}"));
        o.members.iter().map(|m| (String::from_utf16_lossy(&m.key), text[m.value.clone()].to_string(), m.kind)).collect()
    }

    #[test]
    fn finds_the_top_level_members_and_their_spans() {
        let got = members("\u{feff} {\"a\" : [1, {\"b\": NaN}] ,\"c\":-Infinity, \"d\\u0000\": \"x\\ud800\", \"e\": 1e400, \"f\": {}}\n");
        let want = [
            ("a", "[1, {\"b\": NaN}]", Kind::Array),
            ("c", "-Infinity", Kind::Float),
            ("d\0", "\"x\\ud800\"", Kind::String),
            ("e", "1e400", Kind::Float),
            ("f", "{}", Kind::Object),
        ];
        assert_eq!(got, want.map(|(k, v, t)| (k.to_string(), v.to_string(), t)));
        let o = parse(b"{\"s\": \"a\\ud800\\u00e9\\n\"}").unwrap();
        assert_eq!(o.members[0].text.as_deref(), Some(&[0x61, 0xd800, 0xe9, 0x0a][..]));
        assert_eq!(members("{}"), []);
        assert_eq!(members("{\"k\": 1234567890123456789012345678901234567890}")[0].2, Kind::Integer);
    }

    #[test]
    fn accepts_and_refuses_what_python_does() {
        let ok = [
            "{\"a\": [[[]]], \"b\": -0, \"c\": 0.5e-3, \"d\": true, \"e\": false, \"f\": null}",
            "{\"a\": 1, \"a\": 2}",
            " \t\r\n{}\n ",
            "{\"\\/\\b\\f\\r\\t\": \"\\\"\"}",
        ];
        for t in ok {
            assert!(parse(t.as_bytes()).is_ok(), "{t}");
        }
        let bad: &[(&[u8], &str)] = &[
            (b"", "Expecting value"),
            (b"{", "Expecting property name enclosed in double quotes"),
            (b"{\"a\" 1}", "Expecting ':' delimiter"),
            (b"{\"a\": 1 \"b\": 2}", "Expecting ',' delimiter"),
            (b"{\"a\": 1,}", "Expecting property name enclosed in double quotes"),
            (b"[1,]", "Expecting value"),
            (b"{\"a\": 01}", "Expecting ',' delimiter"),
            (b"{\"a\": 1.}", "Expecting ',' delimiter"),
            (b"{\"a\": 1e}", "Expecting ',' delimiter"),
            (b"{\"a\": -}", "Expecting value"),
            (b"{\"a\": nan}", "Expecting value"),
            (b"{\"a\": -NaN}", "Expecting value"),
            (b"{\"a\": \"\x01\"}", "Invalid control character"),
            (b"{\"a\": \"\\x\"}", "Invalid \\escape"),
            (b"{\"a\": \"\\u12g4\"}", "Invalid \\uXXXX escape"),
            (b"{\"a\": \"abc", "Unterminated string starting"),
            (b"{} {}", "Extra data"),
            (b"{}\x0b", "Extra data"),
            (b"\xef\xbb\xbf\xef\xbb\xbf{}", "Expecting value"),
            (b"{'a': 1}", "Expecting property name enclosed in double quotes"),
        ];
        for (t, what) in bad {
            match parse(t) {
                Err(Invalid::Syntax { what: w, .. }) => assert_eq!(w, *what, "{}", String::from_utf8_lossy(t)),
                other => panic!("{}: {other:?}", String::from_utf8_lossy(t)),
            }
        }
        assert!(matches!(parse(b"{\"a\": \"\xff\"}"), Err(Invalid::NotUtf8 { line: 1, column: 8 })));
        assert!(matches!(parse(b"{\"a\": \"\xed\xa0\x80\"}"), Err(Invalid::NotUtf8 { .. })));
        assert_eq!(parse(b"[1]"), Err(Invalid::NotObject(Kind::Array)));
        assert_eq!(parse(b" \"x\" "), Err(Invalid::NotObject(Kind::String)));
        assert_eq!(parse(b"NaN"), Err(Invalid::NotObject(Kind::Float)));
        assert_eq!(parse(b"null"), Err(Invalid::NotObject(Kind::Null)));
    }

    #[test]
    fn nesting_has_no_limit_and_no_recursion() {
        let deep = format!("{{\"x\": {}{}}}", "[".repeat(1_000_000), "]".repeat(1_000_000));
        assert_eq!(parse(deep.as_bytes()).unwrap().members[0].kind, Kind::Array);
        let unbalanced = format!("{{\"x\": {}{}}}", "[".repeat(1000), "]".repeat(999));
        assert!(parse(unbalanced.as_bytes()).is_err());
    }

    #[test]
    fn edits_keep_every_other_byte() {
        let text = "\u{feff}{ \"a\" : NaN,\n  \"desired_state\": \"running\", \"b\": [1e400], \"desired_state\" :null }\n";
        let o = parse(text.as_bytes()).unwrap();
        let out = set_members(text.as_bytes(), &o, &[("desired_state", "\"stopped\""), ("updated_at", "17")]);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "\u{feff}{ \"a\" : NaN,\n  \"desired_state\": \"stopped\", \"b\": [1e400], \"desired_state\" :\"stopped\",\"updated_at\":17 }\n"
        );
        let o = parse(b" { } ").unwrap();
        assert_eq!(set_members(b" { } ", &o, &[("a", "1"), ("b", "2")]), b" {\"a\":1,\"b\":2 } ");
    }

    #[test]
    fn positions_are_one_based() {
        assert_eq!(
            parse(b"{\n  x"),
            Err(Invalid::Syntax { what: "Expecting property name enclosed in double quotes", line: 2, column: 3 })
        );
    }
}

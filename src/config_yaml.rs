//! The two gateway switches a profile's `config.yaml` may hold, read as
//! untrusted input: `multiplex_profiles` (top level or under `gateway:`)
//! and `gateway.standalone` (upstream-hermes §2.4, R-3 and R-4).
//!
//! The file is the user's, so it is read like the state files
//! ([`Dir::read_file`]: not followed if a symlink, never blocking on a
//! FIFO, a regular file with one link, at most [`CAP`] bytes). The YAML is
//! walked as a stream of parser events (yaml-rust2): no document tree is
//! built, so neither a deep nesting nor an alias bomb costs more than the
//! bytes read, and every key but the two is skipped.
//!
//! Values are read the way Python's `yaml.safe_load` (YAML 1.1) types
//! them: a plain `true`, `yes`, `on` (and their `True`/`TRUE` forms) is
//! true, `false`, `no`, `off` false. A quoted string, a number, a list or
//! anything else is not a boolean: the key counts as unset. A key given
//! twice keeps its last value (PyYAML). `gateway.multiplex_profiles`
//! wins over the top-level one. A file with several documents, a top
//! level that is not a mapping, or invalid YAML gives no configuration
//! (the caller warns and treats the file as absent).

use std::ffi::OsStr;
use std::fmt;

use yaml_rust2::parser::{Event, Parser};
use yaml_rust2::scanner::TScalarStyle;

use crate::error::{Error, Result};
use crate::fs::Dir;

/// The configuration file in every profile home.
pub const CONFIG_FILE: &str = "config.yaml";
/// Largest configuration file read, in bytes.
pub const CAP: u64 = 1 << 20;

/// What a `config.yaml` says about the gateway. `None`: not said (or not
/// as a boolean).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GatewayConfig {
    /// `multiplex_profiles`, top level or under `gateway:`.
    pub multiplex_profiles: Option<bool>,
    /// `gateway.standalone`: this profile keeps a gateway of its own.
    pub standalone: Option<bool>,
}

/// Why a file's bytes give no configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invalid {
    /// Not UTF-8.
    Encoding,
    /// The YAML parser refused it, at this line and column (its own
    /// message may repeat the file's bytes and is never shown).
    Yaml { line: usize, column: usize },
    /// More than one document.
    Documents,
    /// Valid YAML whose top level is not a mapping.
    NotMapping,
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Invalid::Encoding => f.write_str("not valid YAML (not UTF-8)"),
            Invalid::Yaml { line, column } => write!(f, "not valid YAML (syntax error at line {line}, column {column})"),
            Invalid::Documents => f.write_str("not valid YAML here (more than one document)"),
            Invalid::NotMapping => f.write_str("not a YAML mapping"),
        }
    }
}

/// A YAML 1.1 boolean as PyYAML resolves a plain scalar.
fn yaml_bool(value: &str) -> Option<bool> {
    match value {
        "true" | "True" | "TRUE" | "yes" | "Yes" | "YES" | "on" | "On" | "ON" => Some(true),
        "false" | "False" | "FALSE" | "no" | "No" | "NO" | "off" | "Off" | "OFF" => Some(false),
        _ => None,
    }
}

/// The events of one document, pulled one at a time.
struct Events<'a> {
    parser: Parser<std::str::Chars<'a>>,
}

impl Events<'_> {
    fn next(&mut self) -> std::result::Result<Event, Invalid> {
        match self.parser.next_token() {
            Ok((event, _)) => Ok(event),
            Err(e) => Err(Invalid::Yaml { line: e.marker().line(), column: e.marker().col() + 1 }),
        }
    }

    /// Consumes the rest of the node that `first` opened.
    fn skip(&mut self, first: &Event) -> std::result::Result<(), Invalid> {
        let mut depth: usize = match first {
            Event::MappingStart(..) | Event::SequenceStart(..) => 1,
            _ => return Ok(()),
        };
        while depth > 0 {
            match self.next()? {
                Event::MappingStart(..) | Event::SequenceStart(..) => depth += 1,
                Event::MappingEnd | Event::SequenceEnd => depth -= 1,
                Event::StreamEnd => return Err(Invalid::Yaml { line: 0, column: 0 }),
                _ => {}
            }
        }
        Ok(())
    }

    /// A value node: `Some(b)` for a plain untagged boolean scalar, else
    /// `None` (the node is consumed either way).
    fn boolean(&mut self) -> std::result::Result<Option<bool>, Invalid> {
        match self.next()? {
            Event::Scalar(v, TScalarStyle::Plain, _, None) => Ok(yaml_bool(&v)),
            other => self.skip(&other).map(|()| None),
        }
    }

    /// The entries of a mapping whose start was consumed: `on_key` gets
    /// each scalar key and consumes its value (returning false when it
    /// did not want it, so it is skipped here).
    fn mapping(
        &mut self,
        mut on_key: impl FnMut(&mut Self, &str) -> std::result::Result<bool, Invalid>,
    ) -> std::result::Result<(), Invalid> {
        loop {
            match self.next()? {
                Event::MappingEnd => return Ok(()),
                Event::Scalar(key, ..) => {
                    if !on_key(self, &key)? {
                        let value = self.next()?;
                        self.skip(&value)?;
                    }
                }
                Event::StreamEnd => return Err(Invalid::Yaml { line: 0, column: 0 }),
                complex_key => {
                    self.skip(&complex_key)?;
                    let value = self.next()?;
                    self.skip(&value)?;
                }
            }
        }
    }
}

/// What a `config.yaml`'s bytes say about the gateway.
pub fn parse(bytes: &[u8]) -> std::result::Result<GatewayConfig, Invalid> {
    let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
    let text = std::str::from_utf8(bytes).map_err(|_| Invalid::Encoding)?;
    let mut events = Events { parser: Parser::new_from_str(text) };
    let mut top = None;
    let mut under_gateway = None;
    let mut standalone = None;
    let mut documents = 0;
    loop {
        match events.next()? {
            Event::StreamEnd => break,
            Event::DocumentStart => {
                documents += 1;
                if documents > 1 {
                    return Err(Invalid::Documents);
                }
            }
            Event::MappingStart(..) => events.mapping(|ev, key| match key {
                "multiplex_profiles" => ev.boolean().map(|b| {
                    top = b;
                    true
                }),
                "gateway" => match ev.next()? {
                    Event::MappingStart(..) => ev
                        .mapping(|ev, key| match key {
                            "multiplex_profiles" => ev.boolean().map(|b| {
                                under_gateway = b;
                                true
                            }),
                            "standalone" => ev.boolean().map(|b| {
                                standalone = b;
                                true
                            }),
                            _ => Ok(false),
                        })
                        .map(|()| true),
                    other => ev.skip(&other).map(|()| true),
                },
                _ => Ok(false),
            })?,
            // An empty document is PyYAML's None: no configuration at all.
            Event::Scalar(v, TScalarStyle::Plain, _, None) if v == "~" || v == "null" || v.is_empty() => {}
            Event::Scalar(..) | Event::SequenceStart(..) | Event::Alias(_) => return Err(Invalid::NotMapping),
            _ => {}
        }
    }
    Ok(GatewayConfig { multiplex_profiles: under_gateway.or(top), standalone })
}

/// Reads `home/config.yaml`. `Ok(None)`: no such file. `Err`: the file
/// exists but gives no configuration (not a regular file, too big, not
/// YAML): the caller warns and treats it as absent.
pub fn read(home: &Dir) -> Result<Option<GatewayConfig>> {
    let name = OsStr::new(CONFIG_FILE);
    let Some(bytes) = home.read_file(name, CAP)? else { return Ok(None) };
    parse(&bytes).map(Some).map_err(|why| Error::refused("parse", home.child_path(name), why.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(text: &str) -> GatewayConfig {
        parse(text.as_bytes()).unwrap_or_else(|e| panic!("{text:?}: {e}"))
    }

    #[test]
    fn multiplex_profiles_at_the_top_or_under_gateway() {
        assert_eq!(cfg("multiplex_profiles: true\n").multiplex_profiles, Some(true));
        assert_eq!(cfg("gateway:\n  multiplex_profiles: yes\n").multiplex_profiles, Some(true));
        assert_eq!(cfg("gateway: {multiplex_profiles: off}\n").multiplex_profiles, Some(false));
        // The one under gateway: wins.
        assert_eq!(cfg("multiplex_profiles: true\ngateway:\n  multiplex_profiles: false\n").multiplex_profiles, Some(false));
        assert_eq!(cfg("gateway:\n  multiplex_profiles: false\nmultiplex_profiles: true\n").multiplex_profiles, Some(false));
        // The last of duplicates.
        assert_eq!(cfg("multiplex_profiles: true\nmultiplex_profiles: false\n").multiplex_profiles, Some(false));
        assert_eq!(cfg("model: x\n").multiplex_profiles, None);
    }

    #[test]
    fn standalone_only_under_gateway() {
        assert_eq!(cfg("gateway:\n  standalone: true\n").standalone, Some(true));
        assert_eq!(cfg("gateway: {standalone: True, port: 8642}\n").standalone, Some(true));
        assert_eq!(cfg("standalone: true\n").standalone, None);
        assert_eq!(cfg("gateway: true\n").standalone, None);
        assert_eq!(cfg("gateway:\n  - standalone: true\n").standalone, None);
    }

    #[test]
    fn only_plain_booleans_are_booleans() {
        for (text, want) in [
            ("multiplex_profiles: TRUE", Some(true)),
            ("multiplex_profiles: on", Some(true)),
            ("multiplex_profiles: No", Some(false)),
            ("multiplex_profiles: 'true'", None),
            ("multiplex_profiles: \"yes\"", None),
            ("multiplex_profiles: 1", None),
            ("multiplex_profiles: maybe", None),
            ("multiplex_profiles: y", None),
            ("multiplex_profiles:", None),
            ("multiplex_profiles: [true]", None),
            ("multiplex_profiles: {a: true}", None),
            ("multiplex_profiles: !!str true", None),
            ("a: &x true\nmultiplex_profiles: *x", None),
        ] {
            assert_eq!(cfg(text).multiplex_profiles, want, "{text}");
        }
    }

    #[test]
    fn other_content_is_skipped_whatever_its_shape() {
        let text = "platforms:\n  api_server:\n    extra: {port: 8642, list: [1, [2, {3: 4}]]}\n? [complex, key]\n: value\n\
                    gateway:\n  nested: {deep: [[[]]]}\n  standalone: yes\nmultiplex_profiles: on\n";
        assert_eq!(cfg(text), GatewayConfig { multiplex_profiles: Some(true), standalone: Some(true) });
        let deep = format!("x: {}{}\nmultiplex_profiles: true\n", "[".repeat(100), "]".repeat(100));
        assert_eq!(cfg(&deep).multiplex_profiles, Some(true));
        // The parser bounds nesting itself: deeper is an error, not a crash.
        let deeper = format!("x: {}{}\nmultiplex_profiles: true\n", "[".repeat(100_000), "]".repeat(100_000));
        assert!(matches!(parse(deeper.as_bytes()), Err(Invalid::Yaml { .. })));
    }

    #[test]
    fn empty_files_say_nothing() {
        for text in ["", "\n", "# only a comment\n", "---\n", "~\n", "null\n", "\u{feff}"] {
            assert_eq!(cfg(text), GatewayConfig::default(), "{text:?}");
        }
    }

    #[test]
    fn bad_files_give_no_configuration() {
        assert_eq!(parse(b"a: b: c\n"), Err(Invalid::Yaml { line: 1, column: 5 }));
        assert!(matches!(parse(b"gateway: {standalone: true\n"), Err(Invalid::Yaml { .. })));
        assert_eq!(parse(b"a: 1\n---\nb: 2\n"), Err(Invalid::Documents));
        assert_eq!(parse(b"- multiplex_profiles: true\n"), Err(Invalid::NotMapping));
        assert_eq!(parse(b"just text\n"), Err(Invalid::NotMapping));
        assert_eq!(parse(b"a: \xff\n"), Err(Invalid::Encoding));
    }

    #[test]
    fn errors_never_repeat_the_files_bytes() {
        let evil = "a: \"x\nreconcile: forged\x1b[31m";
        let why = parse(evil.as_bytes()).unwrap_err().to_string();
        assert!(!why.contains("forged") && !why.contains('\x1b'), "{why}");
    }
}

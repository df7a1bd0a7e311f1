//! A profile's recorded intent (`gateway_state.json`) and how its last
//! gateway ended (`state/gateway.lifecycle.json`), read as untrusted input.
//!
//! Both files are written by the user's own processes, so they are read
//! the way fs-safety §5 says: one component at a time without following
//! symlinks, non-blocking (a FIFO cannot hang a boot), regular files with
//! one link only, at most [`CAP`] bytes (read `CAP + 1` to notice growth),
//! one leading UTF-8 BOM tolerated, parsed by serde_json (nesting bounded
//! at 128 levels). Anything else means "no state". Error texts are our
//! own constants plus a line and column: serde's own messages repeat the
//! file's bytes and are never shown.
//!
//! The intent rule (upstream-hermes §2.4): `desired_state` when present
//! and not null, verbatim; else `gateway_state`, where `draining` and
//! `degraded` count as `running`. Only the exact string `running`
//! autostarts. A value that is not a string is reported as its JSON text
//! when a boolean or an integer, else as `<number>`, `<array>` or
//! `<object>`.

use std::borrow::Cow;
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::path::Path;

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::error::{Error, Result};
use crate::fs::Dir;
use crate::fs::publish::{Rename, rename_at};
use crate::skeleton::Owner;

/// The state file in every profile home.
pub const STATE_FILE: &str = "gateway_state.json";
/// The directory of the lifecycle ledger in a profile home.
pub const LEDGER_DIR: &str = "state";
/// The lifecycle ledger written by the gateway.
pub const LEDGER_FILE: &str = "gateway.lifecycle.json";
/// Largest state or ledger file read, in bytes.
pub const CAP: u64 = 1 << 20;
/// The one intent that autostarts a gateway.
pub const RUNNING: &str = "running";
/// `migrated_from` of the record written by the legacy migration.
pub const MIGRATED_FROM: &str = "legacy-container-cmd";

/// Where the migration record is written before it is renamed into place.
const MIGRATION_STAGING: &str = ".gateway_state.json.migrating";

/// Why the bytes of a state file give no state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invalid {
    /// serde_json refused it: its category, line and column.
    Json { what: &'static str, line: usize, column: usize },
    /// More than serde_json's 128 levels of nesting.
    TooDeep,
    /// Valid JSON, but not an object: what it is instead.
    NotObject(&'static str),
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Invalid::Json { what, line, column } => write!(f, "not valid JSON ({what} at line {line}, column {column})"),
            Invalid::TooDeep => f.write_str("not valid JSON (nested deeper than 128 levels)"),
            Invalid::NotObject(what) => write!(f, "not a JSON object ({what})"),
        }
    }
}

/// Parses a state file's bytes into an object.
fn parse_object(bytes: &[u8]) -> std::result::Result<serde_json::Map<String, Value>, Invalid> {
    let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(Invalid::NotObject(match other {
            Value::Array(_) => "an array",
            Value::String(_) => "a string",
            Value::Number(_) => "a number",
            Value::Bool(_) => "a boolean",
            _ => "null",
        })),
        Err(e) => {
            use serde_json::error::Category;
            // serde's Display repeats input; its fixed message for this one
            // code does not, so it is safe to test for (and never printed).
            if e.to_string().starts_with("recursion limit exceeded") {
                return Err(Invalid::TooDeep);
            }
            let what = match e.classify() {
                Category::Eof => "truncated",
                Category::Syntax => "syntax error",
                Category::Data => "invalid data",
                Category::Io => "read error",
            };
            Err(Invalid::Json { what, line: e.line(), column: e.column() })
        }
    }
}

/// A JSON value as a prior state: strings verbatim; booleans and
/// integers as their JSON text; other values by their kind (none of them
/// autostarts; upstream returns them as they are).
fn as_state(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => i.to_string(),
            (_, Some(u)) => u.to_string(),
            _ => "<number>".to_string(),
        },
        Value::Array(_) => "<array>".to_string(),
        Value::Object(_) => "<object>".to_string(),
        Value::Null => "null".to_string(),
    }
}

/// The intent recorded in a state file's bytes; `Ok(None)` when the
/// object has neither key (or both are null).
pub fn parse_intent(bytes: &[u8]) -> std::result::Result<Option<String>, Invalid> {
    let map = parse_object(bytes)?;
    if let Some(desired) = map.get("desired_state").filter(|v| !v.is_null()) {
        return Ok(Some(as_state(desired)));
    }
    Ok(map.get("gateway_state").filter(|v| !v.is_null()).map(|v| match v.as_str() {
        // A gateway caught draining or degraded was meant to be running.
        Some("draining" | "degraded") => RUNNING.to_string(),
        _ => as_state(v),
    }))
}

/// Reads the intent in `home`'s state file. `Ok(None)`: no file, or no
/// intent in it. `Err`: the file exists but gives no state (the caller
/// warns and treats it as none).
pub fn read_intent(home: &Dir) -> Result<Option<String>> {
    let name = OsStr::new(STATE_FILE);
    let Some(bytes) = home.read_file(name, CAP)? else { return Ok(None) };
    parse_intent(&bytes).map_err(|why| Error::refused("parse", home.child_path(name), why.to_string()))
}

/// Whether a prior state autostarts the gateway: only exactly `running`.
pub fn autostarts(prior: Option<&str>) -> bool {
    prior == Some(RUNNING)
}

/// A prior state as one printable token for line-oriented output: short
/// plain values as they are; otherwise bytes outside printable ASCII (and
/// spaces, quotes, backslashes) as `\xNN`, cut after 64 bytes with `...`.
pub fn printable(state: &str) -> Cow<'_, str> {
    const SHOWN: usize = 64;
    let plain = |b: u8| b.is_ascii_graphic() && b != b'\\' && b != b'"';
    if state.len() <= SHOWN && !state.is_empty() && state.bytes().all(plain) {
        return Cow::Borrowed(state);
    }
    let mut out = String::with_capacity(SHOWN * 2);
    for &b in state.as_bytes().iter().take(SHOWN) {
        if plain(b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    if state.len() > SHOWN {
        out.push_str("...");
    }
    if out.is_empty() {
        out.push_str("\"\"");
    }
    Cow::Owned(out)
}

/// How the previous gateway of a profile ended, from its lifecycle ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PriorExit {
    /// The ledger says `exited`: it stopped on its own terms.
    Clean,
    /// The ledger still says `running`: it died with the old container.
    Unclean,
    /// No ledger, an unreadable one, or another phase.
    Unknown,
}

impl PriorExit {
    pub fn as_str(self) -> &'static str {
        match self {
            PriorExit::Clean => "clean",
            PriorExit::Unclean => "unclean",
            PriorExit::Unknown => "unknown",
        }
    }
}

/// The label for a ledger's bytes.
pub fn parse_prior_exit(bytes: &[u8]) -> PriorExit {
    match parse_object(bytes).ok().as_ref().and_then(|m| m.get("phase")).and_then(Value::as_str) {
        Some("exited") => PriorExit::Clean,
        Some("running") => PriorExit::Unclean,
        _ => PriorExit::Unknown,
    }
}

/// Reads `home/state/gateway.lifecycle.json`; any problem is `Unknown`.
pub fn read_prior_exit(home: &Dir) -> PriorExit {
    let bytes = home.open_dir_if_present(OsStr::new(LEDGER_DIR)).and_then(|state| match state {
        Some(state) => state.read_file(OsStr::new(LEDGER_FILE), CAP),
        None => Ok(None),
    });
    match bytes {
        Ok(Some(bytes)) => parse_prior_exit(&bytes),
        _ => PriorExit::Unknown,
    }
}

/// The record the legacy migration writes: what Python's `json.dumps`
/// prints for it, and a newline.
pub fn migration_record(epoch: i64) -> String {
    format!(
        "{{\"gateway_state\": \"{RUNNING}\", \"desired_state\": \"{RUNNING}\", \"timestamp\": {epoch}, \"migrated_from\": \"{MIGRATED_FROM}\"}}\n"
    )
}

/// Writes the migration record as `home`'s state file, which must not
/// exist: built under a dot-name, then renamed into place without
/// replacing anything, so a crash leaves either no file or the whole one.
/// Run as root (`Owner::Chown`), the file is given to the user.
pub fn write_migration(home: &Dir, epoch: i64, owner: Owner) -> Result<()> {
    let staging = OsStr::new(MIGRATION_STAGING);
    home.unlink_at(staging)?;
    home.create_file(staging, 0o644, migration_record(epoch).as_bytes())?;
    let placed = (|| {
        if let Owner::Chown { uid, gid } = owner {
            home.open_node(staging)?.chown(uid, gid)?;
        }
        rename_at(home, staging, home, OsStr::new(STATE_FILE), Rename::NoReplace)
    })();
    if let Err(e) = placed {
        let _ = home.unlink_at(staging);
        return Err(e);
    }
    home.sync()
}

/// A state file's object with every value kept as the exact JSON text it
/// had, in the order of the file: a rewrite changes only the keys it sets.
/// A key given twice keeps its first place and its last value (Python's
/// `json.load`, which the gateway uses).
#[derive(Debug, Default)]
pub struct RawObject(Vec<(String, Box<RawValue>)>);

impl<'de> Deserialize<'de> for RawObject {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<RawObject, D::Error> {
        struct Entries;
        impl<'de> Visitor<'de> for Entries {
            type Value = RawObject;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<RawObject, A::Error> {
                let mut out = RawObject::default();
                let mut at = std::collections::HashMap::new();
                while let Some((key, value)) = map.next_entry::<String, Box<RawValue>>()? {
                    match at.get(&key) {
                        Some(&i) => out.0[i] = (key, value),
                        None => {
                            at.insert(key.clone(), out.0.len());
                            out.0.push((key, value));
                        }
                    }
                }
                Ok(out)
            }
        }
        d.deserialize_map(Entries)
    }
}

impl RawObject {
    /// Parses a state file's bytes (one leading UTF-8 BOM tolerated).
    pub fn parse(bytes: &[u8]) -> std::result::Result<RawObject, Invalid> {
        // The same checks and messages as the intent reader's, first.
        parse_object(bytes)?;
        let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
        serde_json::from_slice(bytes).map_err(|_| Invalid::NotObject("unreadable"))
    }

    /// Sets `key` to the JSON text `raw` (which must be valid JSON): in
    /// place if present, else at the end.
    pub fn set(&mut self, key: &str, raw: String) -> Result<()> {
        let value = RawValue::from_string(raw).map_err(|_| Error::refused("set", Path::new(key), "not a JSON value"))?;
        match self.0.iter_mut().find(|(k, _)| k == key) {
            Some(entry) => entry.1 = value,
            None => self.0.push((key.to_string(), value)),
        }
        Ok(())
    }

    /// The raw text of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v.get())
    }

    /// Compact JSON (separators `,` and `:`, as upstream writes it) and a
    /// newline; values byte for byte as read.
    pub fn to_line(&self) -> String {
        let mut out = String::from("{");
        for (i, (k, v)) in self.0.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(&serde_json::to_string(k).unwrap_or_else(|_| "\"\"".into()));
            out.push(':');
            out.push_str(v.get());
        }
        out.push_str("}\n");
        out
    }
}

/// What [`record_desired`] found in the file it rewrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Previous {
    /// No state file: a new one was written.
    Absent,
    /// An object: its other keys were kept.
    Kept,
    /// Not an object, or not JSON: replaced by a fresh object (upstream).
    Replaced(Invalid),
}

/// Records the runtime lifecycle's intent in `home`'s state file:
/// `desired_state` = `desired` and `updated_at` = `now` (integer epoch
/// seconds), every other key kept as it was. Read as untrusted input
/// ([`Dir::read_file`]: a symlink, FIFO, hard-linked or oversized file is
/// refused, and nothing is written); written under a dot-name then renamed
/// over the file, so readers see the old or the new file, never a part.
/// The file keeps its permission bits (0644 when new); run as root
/// (`Owner::Chown`) it is given to the user.
pub fn record_desired(home: &Dir, desired: &str, now: i64, owner: Owner) -> Result<Previous> {
    let name = OsStr::new(STATE_FILE);
    let old = home.read_file(name, CAP)?;
    let (mut object, previous) = match old.as_deref().map(RawObject::parse) {
        None => (RawObject::default(), Previous::Absent),
        Some(Ok(o)) => (o, Previous::Kept),
        Some(Err(why)) => (RawObject::default(), Previous::Replaced(why)),
    };
    let mode = match home.stat_at(name)? {
        Some(st) => st.mode & 0o777,
        None => 0o644,
    };
    object.set("desired_state", serde_json::to_string(desired).unwrap_or_else(|_| "null".into()))?;
    object.set("updated_at", now.to_string())?;
    replace_file(home, name, &object.to_line(), mode, owner)?;
    Ok(previous)
}

/// Writes `text` as `home/name` through a unique dot-name and one rename.
pub fn replace_file(home: &Dir, name: &OsStr, text: &str, mode: u32, owner: Owner) -> Result<()> {
    let staging = OsString::from(format!(".{}.{}.tmp", name.to_string_lossy(), std::process::id()));
    home.unlink_at(&staging)?;
    home.create_file(&staging, mode, text.as_bytes())?;
    let placed = (|| {
        if let Owner::Chown { uid, gid } = owner {
            home.open_node(&staging)?.chown(uid, gid)?;
        }
        rename_at(home, &staging, home, name, Rename::Replace)
    })();
    if let Err(e) = placed {
        let _ = home.unlink_at(&staging);
        return Err(e);
    }
    home.sync()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_objects_keep_every_value_byte_for_byte() {
        let text = "\u{feff}{\"gateway_state\": \"running\", \"pid\":  42 , \"platforms\": {\"a\" : [1, 2.50, \"\\u00e9\"]},\n \"updated_at\": \"2026-01-01T00:00:00Z\", \"x\": 1e3}";
        let mut o = RawObject::parse(text.as_bytes()).unwrap();
        o.set("desired_state", "\"stopped\"".into()).unwrap();
        o.set("updated_at", "1700000000".into()).unwrap();
        assert_eq!(
            o.to_line(),
            "{\"gateway_state\":\"running\",\"pid\":42,\"platforms\":{\"a\" : [1, 2.50, \"\\u00e9\"]},\"updated_at\":1700000000,\"x\":1e3,\"desired_state\":\"stopped\"}\n"
        );
        assert_eq!(o.get("pid"), Some("42"));
        // Duplicates: first place, last value.
        let d = RawObject::parse(br#"{"a": 1, "b": 2, "a": 3}"#).unwrap();
        assert_eq!(d.to_line(), "{\"a\":3,\"b\":2}\n");
        assert!(matches!(RawObject::parse(b"[1]"), Err(Invalid::NotObject("an array"))));
        assert!(matches!(RawObject::parse(b"{x"), Err(Invalid::Json { .. })));
        assert!(o.set("k", "not json".into()).is_err());
    }

    fn intent(json: &str) -> Option<String> {
        parse_intent(json.as_bytes()).unwrap()
    }

    /// upstream-hermes §3.3, the autostart rules, as (file, prior, starts).
    #[test]
    fn the_intent_table() {
        let table: &[(&str, Option<&str>, bool)] = &[
            (r#"{"timestamp": 1234567890, "gateway_state": "running"}"#, Some("running"), true),
            (r#"{"gateway_state": "stopped"}"#, Some("stopped"), false),
            (r#"{"gateway_state": "starting"}"#, Some("starting"), false),
            (r#"{"gateway_state": "startup_failed"}"#, Some("startup_failed"), false),
            (r#"{"gateway_state": "draining"}"#, Some("running"), true),
            (r#"{"gateway_state": "degraded"}"#, Some("running"), true),
            (r#"{"desired_state": "running", "gateway_state": "startup_failed"}"#, Some("running"), true),
            (r#"{"desired_state": "stopped", "gateway_state": "running"}"#, Some("stopped"), false),
            // desired_state is taken verbatim: no draining mapping there.
            (r#"{"desired_state": "draining", "gateway_state": "running"}"#, Some("draining"), false),
            (r#"{"desired_state": null, "gateway_state": "running"}"#, Some("running"), true),
            (r#"{"desired_state": "Running"}"#, Some("Running"), false),
            (r#"{"desired_state": " running"}"#, Some(" running"), false),
            (r#"{"desired_state": 1}"#, Some("1"), false),
            (r#"{"gateway_state": true}"#, Some("true"), false),
            (r#"{"desired_state": 1.5}"#, Some("<number>"), false),
            (r#"{"desired_state": ["running"]}"#, Some("<array>"), false),
            (r#"{"desired_state": {"running": true}}"#, Some("<object>"), false),
            (r#"{"gateway_state": null}"#, None, false),
            (r#"{"timestamp": 1}"#, None, false),
            ("{}", None, false),
            // Duplicate keys: the last one wins, as in Python's json.
            (r#"{"desired_state": "stopped", "desired_state": "running"}"#, Some("running"), true),
        ];
        for (json, prior, starts) in table {
            let got = intent(json);
            assert_eq!(got.as_deref(), *prior, "{json}");
            assert_eq!(autostarts(got.as_deref()), *starts, "{json}");
        }
    }

    #[test]
    fn a_bom_is_tolerated() {
        assert_eq!(parse_intent(b"\xef\xbb\xbf{\"gateway_state\": \"running\"}").unwrap().as_deref(), Some("running"));
        // Only one.
        assert!(parse_intent(b"\xef\xbb\xbf\xef\xbb\xbf{}").is_err());
    }

    #[test]
    fn non_objects_and_corrupt_files_give_no_state() {
        let cases: &[(&[u8], &str)] = &[
            (b"[\"running\"]", "not a JSON object (an array)"),
            (b"\"running\"", "not a JSON object (a string)"),
            (b"42", "not a JSON object (a number)"),
            (b"null", "not a JSON object (null)"),
            (b"", "not valid JSON (truncated at line 1, column 0)"),
            (b"{\"gateway_state\": \"runn", "not valid JSON (truncated at line 1, column 23)"),
            (b"{garbage", "not valid JSON (syntax error at line 1, column 2)"),
            (b"{} {}", "not valid JSON (syntax error at line 1, column 4)"),
            (b"{\"a\": \"\xff\"}", "not valid JSON (syntax error at line 1, column 8)"),
        ];
        for (bytes, why) in cases {
            assert_eq!(parse_intent(bytes).unwrap_err().to_string(), *why, "{bytes:?}");
        }
    }

    #[test]
    fn deep_nesting_is_refused_without_blowing_the_stack() {
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert_eq!(parse_intent(deep.as_bytes()), Err(Invalid::TooDeep));
        let deep_in_a_key = format!("{{\"x\": {}{}}}", "[".repeat(200), "]".repeat(200));
        assert_eq!(parse_intent(deep_in_a_key.as_bytes()), Err(Invalid::TooDeep));
    }

    #[test]
    fn errors_never_repeat_the_files_bytes() {
        let evil = b"{\"desired_state\": \"x\nreconcile: forged\x1b[31m";
        let why = parse_intent(evil).unwrap_err().to_string();
        assert!(!why.contains("forged") && !why.contains('\n') && !why.contains('\x1b'), "{why}");
    }

    #[test]
    fn printable_keeps_one_token_per_state() {
        assert_eq!(printable("running"), "running");
        assert_eq!(printable("startup_failed"), "startup_failed");
        assert_eq!(printable("a b"), "a\\x20b");
        assert_eq!(printable("x\nreconcile: y"), "x\\x0areconcile:\\x20y");
        assert_eq!(printable(""), "\"\"");
        assert_eq!(printable("é"), "\\xc3\\xa9");
        let long = "r".repeat(100);
        assert_eq!(printable(&long), format!("{}...", "r".repeat(64)));
    }

    #[test]
    fn the_ledger_labels() {
        assert_eq!(parse_prior_exit(br#"{"phase": "exited", "pid": 7, "exit_code": 0}"#), PriorExit::Clean);
        assert_eq!(parse_prior_exit(br#"{"phase": "running", "pid": 7}"#), PriorExit::Unclean);
        assert_eq!(parse_prior_exit(br#"{"phase": "starting"}"#), PriorExit::Unknown);
        assert_eq!(parse_prior_exit(br#"{"phase": 1}"#), PriorExit::Unknown);
        assert_eq!(parse_prior_exit(b"garbage"), PriorExit::Unknown);
        assert_eq!(parse_prior_exit(b"[]"), PriorExit::Unknown);
    }

    #[test]
    fn the_migration_record_is_what_python_writes() {
        assert_eq!(
            migration_record(1700000000),
            "{\"gateway_state\": \"running\", \"desired_state\": \"running\", \"timestamp\": 1700000000, \"migrated_from\": \"legacy-container-cmd\"}\n"
        );
        assert_eq!(intent(migration_record(5).trim_end()).as_deref(), Some("running"));
    }
}

//! A profile's recorded intent (`gateway_state.json`) and how its last
//! gateway ended (`state/gateway.lifecycle.json`), read as untrusted input.
//!
//! Both files are written by the user's own processes (the gateway writes
//! them with Python's `json`), so they are read the way doc/design.md#untrusted-files says:
//! one component at a time without following symlinks, non-blocking (a
//! FIFO cannot hang a boot), regular files with one link only, at most
//! [`CAP`] bytes (read `CAP + 1` to notice growth). Their JSON is read by
//! [`json_text`] exactly as the upstream readers read it (`utf-8-sig`,
//! then `json.loads`): `NaN`, `1e400`, lone surrogates, duplicate keys
//! (the last one counts) and any depth of nesting are valid. Anything
//! else means "no state". Error texts are our own constants plus a line
//! and column: the file's bytes are never shown.
//!
//! The intent rule (doc/design.md#intent): `desired_state` when present
//! and not null, verbatim; else `gateway_state`, where `draining` and
//! `degraded` count as `running`. Only the exact string `running`
//! autostarts. A value that is not a string is reported as its JSON text
//! when a boolean or an integer (as Python prints it), else as
//! `<number>`, `<array>` or `<object>`.
//!
//! Rewrites ([`record_desired`]) change only the members they set and
//! keep every other byte of the file.

use std::borrow::Cow;
use std::ffi::{OsStr, OsString};
use std::path::PathBuf;

use nix::errno::Errno;

use crate::error::{Error, Result};
use crate::fs::publish::{Rename, file_staging_name, rename_at};
use crate::fs::{Dir, Owner, Stat, Sync, Version};
use crate::json_text::{self, Kind, Member, Object};

pub use crate::json_text::Invalid;

/// The state file in every profile home.
pub const STATE_FILE: &str = "gateway_state.json";
/// The directory of the lifecycle ledger in a profile home.
const LEDGER_DIR: &str = "state";
/// The lifecycle ledger written by the gateway.
const LEDGER_FILE: &str = "gateway.lifecycle.json";
/// Largest state or ledger file read, in bytes.
pub const CAP: u64 = 1 << 20;
/// The one intent that autostarts a gateway.
pub const RUNNING: &str = "running";
/// `migrated_from` of the record written by the legacy migration.
const MIGRATED_FROM: &str = "legacy-container-cmd";

/// Where the migration record is written before it is renamed into place.
const MIGRATION_STAGING: &str = ".gateway_state.json.migrating";

/// Parses a state file's bytes into its top-level object.
fn parse_object(bytes: &[u8]) -> std::result::Result<Object, Invalid> {
    json_text::parse(bytes)
}

/// A member's value as a prior state: strings as Python holds them (a
/// lone surrogate becomes U+FFFD); booleans and integers as Python prints
/// them; other values by their kind (none of them autostarts; upstream
/// returns them as they are).
fn as_state(bytes: &[u8], m: &Member) -> String {
    match m.kind {
        Kind::String => String::from_utf16_lossy(m.text.as_deref().unwrap_or_default()),
        Kind::True => "true".to_string(),
        Kind::False => "false".to_string(),
        Kind::Integer => {
            let digits = String::from_utf8_lossy(&bytes[m.value.clone()]).into_owned();
            // Python's int() of "-0" prints as 0.
            if digits.trim_start_matches('-').bytes().all(|b| b == b'0') { "0".to_string() } else { digits }
        }
        Kind::Float => "<number>".to_string(),
        Kind::Array => "<array>".to_string(),
        Kind::Object => "<object>".to_string(),
        Kind::Null => "null".to_string(),
    }
}

/// The intent recorded in a state file's bytes; `Ok(None)` when the
/// object has neither key (or both are null).
pub fn parse_intent(bytes: &[u8]) -> std::result::Result<Option<String>, Invalid> {
    let object = parse_object(bytes)?;
    // Python's dict keeps the last of duplicate keys, null included.
    if let Some(desired) = object.get("desired_state").filter(|m| m.kind != Kind::Null) {
        return Ok(Some(as_state(bytes, desired)));
    }
    Ok(object.get("gateway_state").filter(|m| m.kind != Kind::Null).map(|m| {
        let state = as_state(bytes, m);
        // A gateway caught draining or degraded was meant to be running.
        match (m.kind, state.as_str()) {
            (Kind::String, "draining" | "degraded") => RUNNING.to_string(),
            _ => state,
        }
    }))
}

/// Reads `name` in `dir` with its stat, again when it was replaced between
/// our open and our fstat (0 links: the gateway renamed a new one in).
fn read_current(dir: &Dir, name: &OsStr) -> Result<Option<(Vec<u8>, Stat, Version)>> {
    for _ in 0..REWRITE_TRIES {
        match dir.read_file_stat(name, CAP)? {
            Some((_, st, _)) if st.nlink == 0 => continue,
            other => return Ok(other),
        }
    }
    Err(Error::refused("read", dir.child_path(name), "keeps being replaced"))
}

/// Reads the intent in `home`'s state file. `Ok(None)`: no file, or no
/// intent in it. `Err`: the file exists but gives no state (the caller
/// warns and treats it as none).
pub fn read_intent(home: &Dir) -> Result<Option<String>> {
    let name = OsStr::new(STATE_FILE);
    let Some((bytes, _, _)) = read_current(home, name)? else { return Ok(None) };
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
    /// The word the report and the boot log print.
    pub fn as_str(self) -> &'static str {
        match self {
            PriorExit::Clean => "clean",
            PriorExit::Unclean => "unclean",
            PriorExit::Unknown => "unknown",
        }
    }
}

/// The label for a ledger's bytes.
fn parse_prior_exit(bytes: &[u8]) -> PriorExit {
    let Ok(object) = parse_object(bytes) else { return PriorExit::Unknown };
    let phase = object.get("phase").filter(|m| m.kind == Kind::String).and_then(|m| m.text.as_deref());
    if phase == Some(&*"exited".encode_utf16().collect::<Vec<_>>()) {
        PriorExit::Clean
    } else if phase == Some(&*"running".encode_utf16().collect::<Vec<_>>()) {
        PriorExit::Unclean
    } else {
        PriorExit::Unknown
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
fn migration_record(epoch: i64) -> String {
    format!(
        "{{\"gateway_state\": \"{RUNNING}\", \"desired_state\": \"{RUNNING}\", \"timestamp\": {epoch}, \"migrated_from\": \"{MIGRATED_FROM}\"}}\n"
    )
}

/// Writes the migration record as `home`'s state file, which must not
/// exist: built under a dot-name, then renamed into place without
/// replacing anything, so a crash leaves either no file or the whole one.
/// Run as root (`Owner::Chown`), the file is given to the user through the
/// fd it was created with (never by name: the user can swap names here).
pub fn write_migration(home: &Dir, epoch: i64, owner: Owner) -> Result<()> {
    let staging = OsStr::new(MIGRATION_STAGING);
    home.unlink_at(staging)?;
    home.create_public_file(staging, 0o644, migration_record(epoch).as_bytes(), owner.chown_to(), Sync::Yes)?;
    if let Err(e) = rename_at(home, staging, home, OsStr::new(STATE_FILE), Rename::NoReplace) {
        let _ = home.unlink_at(staging);
        return Err(e);
    }
    home.sync()
}

/// How many times a rewrite reads again when the file changed under it.
const REWRITE_TRIES: usize = 64;

/// What [`record_desired`] found in the file it rewrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Previous {
    /// No state file: a new one was written.
    Absent,
    /// An object: every other byte of it was kept.
    Kept,
    /// Not a JSON object: it was renamed to `kept_as` and a fresh object
    /// written (nothing is lost, upstream would have overwritten it).
    Replaced {
        /// What was wrong with it.
        why: Invalid,
        /// Where the old bytes are kept.
        kept_as: PathBuf,
    },
}

/// The file is still the one that was read (same inode, size and mtime),
/// or still absent.
fn unchanged(read: Option<&Version>, now: Option<&Version>) -> bool {
    read == now
}

/// Records the runtime lifecycle's intent in `home`'s state file:
/// `desired_state` = `desired` and `updated_at` = `now` (integer epoch
/// seconds). Only those members' values change (every duplicate of them;
/// added after the last member when absent): every other byte of the file
/// is kept. Read as untrusted input ([`Dir::read_file`]: a symlink, FIFO,
/// hard-linked or oversized file is refused, and nothing is written);
/// written under a dot-name then renamed over the file, so readers see the
/// old or the new file, never a part. Just before that rename the file is
/// checked to still be the one read (inode, size, ctime); if the gateway
/// replaced it meanwhile, the new one is read and edited instead, up to
/// `REWRITE_TRIES` times. A file that is not a JSON object is renamed to
/// `gateway_state.json.corrupt-<now>` first. The file keeps its permission
/// bits (0644 when new); run as root (`Owner::Chown`) it is given to the
/// user through the fd it was written with.
pub fn record_desired(home: &Dir, desired: &str, now: i64, owner: Owner) -> Result<Previous> {
    let name = OsStr::new(STATE_FILE);
    let sets = [("desired_state", json_text::quote(desired)), ("updated_at", now.to_string())];
    let sets: Vec<(&str, &str)> = sets.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let fresh = || {
        let mut text = json_text::set_members(b"{}", &Object { members: Vec::new(), open: 0 }, &sets);
        text.push(b'\n');
        text
    };
    for _ in 0..REWRITE_TRIES {
        let read = read_current(home, name)?;
        let (text, corrupt) = match &read {
            None => (fresh(), None),
            Some((bytes, _, _)) => match parse_object(bytes) {
                Ok(object) => (json_text::set_members(bytes, &object, &sets), None),
                Err(why) => (fresh(), Some(why)),
            },
        };
        let read_version = read.as_ref().map(|(_, _, v)| *v);
        let mode = read.as_ref().map_or(0o644, |(_, st, _)| st.mode & 0o777);
        let staging = file_staging_name(name);
        home.unlink_at(&staging)?;
        home.create_public_file(&staging, mode, &text, owner.chown_to(), Sync::Yes)?;
        let placed = (|| -> Result<Option<Previous>> {
            if !unchanged(read_version.as_ref(), home.version_at(name)?.as_ref()) {
                return Ok(None);
            }
            let previous = match (&read_version, corrupt) {
                (None, _) => Previous::Absent,
                (Some(_), None) => Previous::Kept,
                (Some(_), Some(why)) => Previous::Replaced { why, kept_as: keep_aside(home, name, now)? },
            };
            if previous == Previous::Kept {
                return exchange_if_unchanged(home, &staging, name, read_version.as_ref()).map(|done| done.then_some(previous));
            }
            // Into a free name when there was none (or it was just moved
            // aside): a file that appeared meanwhile wins this round, and
            // is edited in the next.
            match rename_at(home, &staging, home, name, Rename::NoReplace) {
                Ok(()) => Ok(Some(previous)),
                Err(e) if e.errno() == Some(Errno::EEXIST) => Ok(None),
                Err(e) => Err(e),
            }
        })();
        match placed {
            Ok(Some(previous)) => {
                home.sync()?;
                return Ok(previous);
            }
            Ok(None) => {
                let _ = home.unlink_at(&staging);
            }
            Err(e) => {
                let _ = home.unlink_at(&staging);
                return Err(e);
            }
        }
    }
    Err(Error::refused("rewrite", home.child_path(name), "it keeps being replaced"))
}

/// Puts `staging` in place of `name` by exchanging the two, then checks
/// that what it displaced is the file that was read (`read`). If not, a
/// writer replaced the file between our last check and the exchange: the
/// two are exchanged back, so that writer's file is in place again, and
/// `Ok(false)` asks for another round on it. Either way `staging` is
/// removed. This leaves no window in which another writer's file is lost
/// unless two of its writes fall within these few system calls.
fn exchange_if_unchanged(home: &Dir, staging: &OsStr, name: &OsStr, read: Option<&Version>) -> Result<bool> {
    match rename_at(home, staging, home, name, Rename::Exchange) {
        Ok(()) => {}
        // Removed since our check: another round writes into a free name.
        Err(e) if e.errno() == Some(Errno::ENOENT) => return Ok(false),
        Err(e) => return Err(e),
    }
    let displaced = home.version_at(staging)?;
    if unchanged(read, displaced.as_ref()) {
        home.unlink_at(staging)?;
        return Ok(true);
    }
    rename_at(home, staging, home, name, Rename::Exchange)?;
    home.unlink_at(staging)?;
    Ok(false)
}

/// Renames `name` (not a JSON object) to `<name>.corrupt-<now>` (with
/// `.N` added if taken), never replacing anything.
fn keep_aside(home: &Dir, name: &OsStr, now: i64) -> Result<PathBuf> {
    let base = format!("{}.corrupt-{now}", name.to_string_lossy());
    for n in 0..100 {
        let aside = if n == 0 { OsString::from(&base) } else { OsString::from(format!("{base}.{n}")) };
        match rename_at(home, name, home, &aside, Rename::NoReplace) {
            Ok(()) => return Ok(home.child_path(&aside)),
            Err(e) if e.errno() == Some(Errno::EEXIST) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(Error::refused("rename", home.child_path(name), "no free name to keep it aside"))
}

/// Whether `name` is a writer's staging file of the state file
/// (`.gateway_state.json.<pid>.tmp`, [`file_staging_name`]), and that
/// writer's pid.
fn staging_writer(name: &[u8]) -> Option<i32> {
    let pid = name.strip_prefix(b".gateway_state.json.")?.strip_suffix(b".tmp")?;
    if pid.is_empty() || pid.len() > 10 || !pid.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(pid).ok()?.parse().ok()
}

/// Removes the state file's staging files (`.gateway_state.json.<pid>.tmp`)
/// whose writer is gone (ENOSPC or kill -9 left them), and a migration
/// record never renamed into place. Returns what could not be removed.
pub fn sweep_stale_staging(home: &Dir) -> Vec<Error> {
    let names = match home.entries(1 << 16) {
        Ok(n) => n,
        Err(e) => return vec![e],
    };
    let mut failed = Vec::new();
    for name in names {
        let bytes = name.as_encoded_bytes();
        let stale = match staging_writer(bytes) {
            // SAFETY: kill with signal 0 only checks the pid.
            Some(pid) => pid > 0 && Errno::result(unsafe { libc::kill(pid, 0) }) == Err(Errno::ESRCH),
            None => bytes == MIGRATION_STAGING.as_bytes(),
        };
        if stale && let Err(e) = home.unlink_at(&name) {
            failed.push(e);
        }
    }
    failed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn intent(json: &str) -> Option<String> {
        parse_intent(json.as_bytes()).unwrap()
    }

    /// doc/design.md#intent, the autostart rules, as (file, prior, starts).
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
            (r#"{"desired_state": NaN}"#, Some("<number>"), false),
            (r#"{"desired_state": 1234567890123456789012345678901234567890}"#, Some("1234567890123456789012345678901234567890"), false),
            (r#"{"desired_state": -0}"#, Some("0"), false),
            (r#"{"desired_state": "\ud800running"}"#, Some("\u{fffd}running"), false),
            (r#"{"desired_state": "r\u0075nning"}"#, Some("running"), true),
            (r#"{"desired_\u0073tate": "running"}"#, Some("running"), true),
            (r#"{"gateway_state": "draining", "desired_state": null}"#, Some("running"), true),
            // The last duplicate counts, even when it is null.
            (r#"{"desired_state": "running", "desired_state": null}"#, None, false),
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
            (b"", "not valid JSON (Expecting value at line 1, column 1)"),
            (b"{\"gateway_state\": \"runn", "not valid JSON (Unterminated string starting at line 1, column 19)"),
            (b"{garbage", "not valid JSON (Expecting property name enclosed in double quotes at line 1, column 2)"),
            (b"{} {}", "not valid JSON (Extra data at line 1, column 4)"),
            (b"{\"a\": \"\xff\"}", "not valid JSON (not UTF-8 at line 1, column 8)"),
        ];
        for (bytes, why) in cases {
            assert_eq!(parse_intent(bytes).unwrap_err().to_string(), *why, "{bytes:?}");
        }
    }

    #[test]
    fn deep_nesting_is_read_without_blowing_the_stack() {
        let deep = format!("{{\"desired_state\": \"running\", \"x\": {}{}}}", "[".repeat(100_000), "]".repeat(100_000));
        assert_eq!(parse_intent(deep.as_bytes()).unwrap().as_deref(), Some("running"));
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

//! The supervise skeleton: what s6-supervise would otherwise create
//! root-owned, created beforehand owned by the user, so the user can read
//! the status, send commands and subscribe to events (doc/design.md#supervise-skeleton).
//!
//! s6-supervise keeps whatever already exists (it never chowns or chmods an
//! existing `event/`, `supervise/` or `control`), so these entries survive
//! a root supervisor unchanged. `supervise/event/`, which the upstream
//! Python helper also made, is not used by any s6 release and is left out.
//!
//! Everything is checked before anything is created: a symlink or an entry
//! of the wrong type anywhere in the skeleton is refused and nothing is
//! touched (s6-supervise would die in a loop on it).
//!
//! Run as root on a directory the user may write (or on a live one), a
//! missing entry is never made in place and then changed by name: it is
//! built in a private directory made for the purpose inside the service
//! directory (0700 root, so on the same filesystem and out of the user's
//! reach), given to the user through its fd there, and only then renamed
//! into place, never over anything ([`crate::fs::handover`]).
//!
//! Under a root supervisor a user-owned skeleton is a risk of its own: the
//! user may then plant symlinks where root's s6-supervise writes
//! (`supervise/status.new`, entries of `event/`) and make root overwrite
//! any file. See doc/topologies.md.

use std::ffi::OsStr;

use crate::error::{Error, Result};
use crate::fs::handover::{self, Handover};
use crate::fs::publish::{Rename, rename_at};
use crate::fs::{Dir, Kind, Owner};
use crate::s6;

/// `supervise/` in the skeleton: the user owns it, everyone may search it.
pub const SUPERVISE_MODE: u32 = 0o755;
/// `supervise/control` in the skeleton: the user and its group may write.
pub const CONTROL_MODE: u32 = 0o660;

/// One entry of the skeleton, relative to a service directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    /// Inside `supervise/` (else at the top of the service directory).
    in_supervise: bool,
    name: &'static str,
    kind: Kind,
    mode: u32,
}

const SKELETON: [Entry; 3] = [
    Entry { in_supervise: false, name: s6::EVENT, kind: Kind::Dir, mode: s6::EVENT_MODE },
    Entry { in_supervise: false, name: s6::SUPERVISE, kind: Kind::Dir, mode: SUPERVISE_MODE },
    Entry { in_supervise: true, name: s6::CONTROL, kind: Kind::Fifo, mode: CONTROL_MODE },
];

/// What seeding did, for `-v` and warnings.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    /// Paths created.
    pub created: Vec<String>,
    /// Existing entries kept although their mode or owner differs from the
    /// skeleton's (the user may be unable to use them).
    pub kept_different: Vec<(String, u32, u32, u32)>,
}

/// Seeds `svc` and, when it has a `log/` directory, `svc/log`.
pub fn seed(svc: &Dir, owner: Owner) -> Result<Report> {
    let log = match svc.stat_at(OsStr::new(s6::LOG))? {
        Some(st) if st.kind == Kind::Dir => Some(svc.open_dir(OsStr::new(s6::LOG))?),
        Some(st) if st.kind == Kind::Symlink => {
            return Err(Error::refused("seed", svc.child_path(OsStr::new(s6::LOG)), "is a symlink"));
        }
        // No logger (a non-directory `log` is ignored by s6-svscan too).
        _ => None,
    };
    let mut todo = vec![svc];
    todo.extend(log.as_ref());
    // Check everything first, so that a refusal leaves nothing behind.
    for dir in &todo {
        check(dir)?;
    }
    let mut report = Report::default();
    for dir in todo {
        apply(dir, owner, &mut report)?;
    }
    Ok(report)
}

/// Seeds `svc`, and `log` when given, both directories the caller has
/// just created and that nobody else can write (root-owned while root
/// builds them, or the caller's own): the same entries, modes and owners
/// as [`seed`], at a fraction of the cost. Nothing can exist there yet and
/// nobody can swap an entry, so there is no check pass and entries are
/// set by name instead of through pinned fds. `parent` says whether they
/// were made in a setgid directory (see [`Parent`]). Anything already
/// there is an error.
pub fn seed_fresh(svc: &Dir, log: Option<&Dir>, owner: Owner, parent: Parent) -> Result<()> {
    for dir in std::iter::once(svc).chain(log) {
        for e in SKELETON.iter().filter(|e| !e.in_supervise) {
            create(dir, e, owner, parent)?;
        }
        let inner = SKELETON.iter().filter(|e| e.in_supervise);
        let plain = parent == Parent::Plain && matches!(owner, Owner::Caller { .. });
        if plain && inner.clone().all(|e| crate::fs::creation_mode_is_exact(e.mode)) {
            // Nothing to set after creation: no need to open supervise/.
            for e in inner {
                if !dir.mkfifo_in(OsStr::new(s6::SUPERVISE), OsStr::new(e.name), e.mode)? {
                    return Err(Error::refused(
                        "seed",
                        dir.child_path(OsStr::new(s6::SUPERVISE)).join(e.name),
                        "exists in a fresh directory",
                    ));
                }
            }
            continue;
        }
        let sup = dir.open_dir(OsStr::new(s6::SUPERVISE))?;
        for e in inner {
            create(&sup, e, owner, parent)?;
        }
    }
    Ok(())
}

/// Pins, for a [`Handover`], what [`seed_fresh`] made in `dir` (a
/// directory nobody else can write): `supervise/control`, `supervise/`
/// and `event/`, with the skeleton's modes.
pub fn pin_fresh(dir: &Dir, hand: &mut Handover) -> Result<()> {
    let sup = dir.open_dir(OsStr::new(s6::SUPERVISE))?;
    for e in SKELETON.iter().filter(|e| e.in_supervise) {
        hand.pin(&sup, OsStr::new(e.name), e.mode)?;
    }
    for e in SKELETON.iter().filter(|e| !e.in_supervise) {
        hand.pin(dir, OsStr::new(e.name), e.mode)?;
    }
    Ok(())
}

/// What the directories given to [`seed_fresh`] were created in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parent {
    /// A directory without the setgid bit: new entries get the caller's
    /// group and no set-id bit of their own.
    Plain,
    /// A setgid directory: new directories inherit its group and setgid
    /// bit, so every mode is set explicitly, and a caller that is not
    /// root reads set-id modes back (chmod drops them silently for a
    /// group the caller is not in).
    Setgid,
}

/// One entry of [`seed_fresh`].
fn create(dir: &Dir, e: &Entry, owner: Owner, parent: Parent) -> Result<()> {
    let name = OsStr::new(e.name);
    let created = match e.kind {
        Kind::Dir => dir.mkdir_at(name, e.mode & 0o777)?,
        _ => dir.mkfifo_at(name, e.mode & 0o777)?,
    };
    if !created {
        return Err(Error::refused("seed", dir.child_path(name), "exists in a fresh directory"));
    }
    if let Owner::Chown { uid, gid } = owner {
        dir.chown_at(name, uid, gid)?;
    }
    if parent == Parent::Setgid || !crate::fs::creation_mode_is_exact(e.mode) {
        dir.chmod_at(name, e.mode)?;
    }
    if e.mode & 0o7000 != 0 && parent == Parent::Setgid && matches!(owner, Owner::Caller { .. }) {
        let (uid, gid) = owner.ids();
        match dir.stat_at(name)? {
            Some(st) if st.mode == e.mode && st.uid == uid && st.gid == gid => {}
            Some(st) => {
                return Err(Error::refused(
                    "seed",
                    dir.child_path(name),
                    format!("ended up {:04o} {}:{} instead of {:04o} {uid}:{gid}", st.mode, st.uid, st.gid, e.mode),
                ));
            }
            None => return Err(Error::refused("seed", dir.child_path(name), "vanished while being seeded")),
        }
    }
    Ok(())
}

/// The kind `name` must have if it exists; `Ok(false)` if it is absent.
fn expect_kind(dir: &Dir, name: &str, kind: Kind) -> Result<bool> {
    match dir.stat_at(OsStr::new(name))? {
        None => Ok(false),
        Some(st) if st.kind == kind => Ok(true),
        Some(st) => {
            let what = crate::fs::dir_describe(st.kind);
            let want = if kind == Kind::Dir { "a directory" } else { "a FIFO" };
            Err(Error::refused("seed", dir.child_path(OsStr::new(name)), format!("{what}, expected {want}")))
        }
    }
}

fn check(svc: &Dir) -> Result<()> {
    let mut supervise_exists = false;
    for e in SKELETON.iter().filter(|e| !e.in_supervise) {
        let exists = expect_kind(svc, e.name, e.kind)?;
        supervise_exists |= exists && e.name == s6::SUPERVISE;
    }
    if supervise_exists {
        let sup = svc.open_dir(OsStr::new(s6::SUPERVISE))?;
        for e in SKELETON.iter().filter(|e| e.in_supervise) {
            expect_kind(&sup, e.name, e.kind)?;
        }
    }
    Ok(())
}

fn apply(svc: &Dir, owner: Owner, report: &mut Report) -> Result<()> {
    if let Owner::Chown { uid, gid } = owner {
        return apply_as_root(svc, uid, gid, report);
    }
    for e in SKELETON.iter().filter(|e| !e.in_supervise) {
        place(svc, e, owner, report)?;
    }
    let sup = svc.open_dir(OsStr::new(s6::SUPERVISE))?;
    for e in SKELETON.iter().filter(|e| e.in_supervise) {
        place(&sup, e, owner, report)?;
    }
    Ok(())
}

/// Root's [`apply`] (module docs): the missing entries are built in a
/// private workshop in `svc`, handed over, then renamed into place.
fn apply_as_root(svc: &Dir, uid: u32, gid: u32, report: &mut Report) -> Result<()> {
    if complete(svc)? {
        // Nothing to build: no workshop, nothing changed (a live service).
        let sup = svc.open_dir(OsStr::new(s6::SUPERVISE))?;
        for e in &SKELETON {
            let dir = if e.in_supervise { &sup } else { svc };
            match dir.stat_at(OsStr::new(e.name))? {
                Some(st) => keep(dir, e, st, (uid, gid), report)?,
                None => return Err(Error::refused("seed", dir.child_path(OsStr::new(e.name)), "vanished while being seeded")),
            }
        }
        return Ok(());
    }
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let ws_name = std::ffi::OsString::from(format!(".hermes-seed-supervise.{}.{nanos}", std::process::id()));
    let Some(ws) = handover::private_dir(svc, &ws_name)? else {
        return Err(Error::refused("seed", svc.child_path(&ws_name), "exists already"));
    };
    let built = build_as_root(svc, &ws, uid, gid, report);
    drop(ws);
    // Empty unless a step failed; what is left is ours alone.
    let cleaned = crate::fs::tree::remove_tree(svc, &ws_name, crate::fs::tree::Limits { depth: 4, entries: 16 });
    built.and(cleaned.map(drop))
}

fn build_as_root(svc: &Dir, ws: &Dir, uid: u32, gid: u32, report: &mut Report) -> Result<()> {
    let mut hand = Handover::new(uid, gid);
    let mut made = Vec::new();
    for e in SKELETON.iter().filter(|e| !e.in_supervise) {
        let name = OsStr::new(e.name);
        if let Some(st) = svc.stat_at(name)? {
            keep(svc, e, st, (uid, gid), report)?;
            continue;
        }
        if e.kind == Kind::Dir {
            ws.mkdir_at(name, 0o700)?;
        } else {
            ws.mkfifo_at(name, 0o600)?;
        }
        made.push(svc.child_path(name).display().to_string());
        if e.name == s6::SUPERVISE {
            // A new supervise/ goes in whole, its control included.
            let sup = ws.open_dir(name)?;
            for inner in SKELETON.iter().filter(|i| i.in_supervise) {
                sup.mkfifo_at(OsStr::new(inner.name), 0o600)?;
                hand.pin(&sup, OsStr::new(inner.name), inner.mode)?;
                made.push(svc.child_path(name).join(inner.name).display().to_string());
            }
        }
        hand.pin(ws, name, e.mode)?;
    }
    hand.give(None)?;
    for e in SKELETON.iter().filter(|e| !e.in_supervise) {
        move_in(ws, svc, e.name)?;
    }
    // An existing supervise/: only its control may be missing.
    let sup = svc.open_dir(OsStr::new(s6::SUPERVISE))?;
    let mut hand = Handover::new(uid, gid);
    let mut missing = Vec::new();
    for e in SKELETON.iter().filter(|e| e.in_supervise) {
        let name = OsStr::new(e.name);
        match sup.stat_at(name)? {
            Some(st) => {
                if !made.contains(&sup.child_path(name).display().to_string()) {
                    keep(&sup, e, st, (uid, gid), report)?;
                }
            }
            None => {
                ws.mkfifo_at(name, 0o600)?;
                hand.pin(ws, name, e.mode)?;
                missing.push(e);
            }
        }
    }
    hand.give(None)?;
    for e in missing {
        move_in(ws, &sup, e.name)?;
        made.push(sup.child_path(OsStr::new(e.name)).display().to_string());
    }
    report.created.extend(made);
    Ok(())
}

/// Whether every entry of the skeleton exists in `svc`.
fn complete(svc: &Dir) -> Result<bool> {
    for e in SKELETON.iter().filter(|e| !e.in_supervise) {
        if svc.stat_at(OsStr::new(e.name))?.is_none() {
            return Ok(false);
        }
    }
    let sup = svc.open_dir(OsStr::new(s6::SUPERVISE))?;
    for e in SKELETON.iter().filter(|e| e.in_supervise) {
        if sup.stat_at(OsStr::new(e.name))?.is_none() {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Renames `name` from the workshop into `to`, never over anything: an
/// entry made there meanwhile is refused (ours is removed with the
/// workshop).
fn move_in(ws: &Dir, to: &Dir, name: &str) -> Result<()> {
    let name = OsStr::new(name);
    if ws.stat_at(name)?.is_none() {
        return Ok(()); // existed already: not built
    }
    rename_at(ws, name, to, name, Rename::NoReplace).map_err(|e| {
        if e.errno() == Some(nix::errno::Errno::EEXIST) {
            Error::refused("seed", to.child_path(name), "appeared while being seeded")
        } else {
            e
        }
    })
}

/// An existing entry: the right type (or refused), left exactly as it
/// is; a mode or owner other than the skeleton's is reported.
fn keep(dir: &Dir, e: &Entry, st: crate::fs::Stat, (uid, gid): (u32, u32), report: &mut Report) -> Result<()> {
    if st.kind != e.kind {
        expect_kind(dir, e.name, e.kind)?;
        return Err(Error::refused("seed", dir.child_path(OsStr::new(e.name)), "changed while being seeded"));
    }
    if st.mode != e.mode || st.uid != uid || st.gid != gid {
        report.kept_different.push((dir.child_path(OsStr::new(e.name)).display().to_string(), st.mode, st.uid, st.gid));
    }
    Ok(())
}

/// Creates one entry if absent (mode exact, owner set, both verified) or
/// checks the existing one, which is left exactly as it is.
fn place(dir: &Dir, e: &Entry, owner: Owner, report: &mut Report) -> Result<()> {
    let name = OsStr::new(e.name);
    let path = dir.child_path(name);
    // Created 0700/0600 first: nobody else can use it before it is ours.
    let created = match e.kind {
        Kind::Dir => dir.mkdir_at(name, 0o700)?,
        _ => dir.mkfifo_at(name, 0o600)?,
    };
    let mut node = dir.open_node(name)?;
    if node.stat().kind != e.kind {
        // Replaced between our check and now: refuse, as the check would have.
        expect_kind(dir, e.name, e.kind)?;
        return Err(Error::refused("seed", &path, "changed while being seeded"));
    }
    let (uid, gid) = owner.ids();
    if !created {
        let st = node.stat();
        if st.mode != e.mode || st.uid != uid || st.gid != gid {
            report.kept_different.push((path.display().to_string(), st.mode, st.uid, st.gid));
        }
        return Ok(());
    }
    if let Owner::Chown { uid, gid } = owner {
        node.chown(uid, gid)?;
    }
    // Mode last: a chown may clear set-id bits, the mode puts them back.
    node.chmod(e.mode)?;
    let st = *node.restat()?;
    if st.mode != e.mode || st.uid != uid || st.gid != gid {
        return Err(Error::refused(
            "seed",
            &path,
            format!("ended up {:04o} {}:{} instead of {:04o} {uid}:{gid}", st.mode, st.uid, st.gid, e.mode),
        ));
    }
    report.created.push(path.display().to_string());
    Ok(())
}

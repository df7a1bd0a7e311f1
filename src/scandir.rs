//! Scan directories: what the user may do with root's (shared topology),
//! the user's own (isolated topology), and the leftovers of interrupted
//! slot builds in either (doc/design.md#topologies, #slot).
//!
//! * Shared: the scan directory belongs to the user (who may then add and
//!   remove slots), and `.s6-svscan/` is 0710 root:GROUP with its `control`
//!   FIFO 0620 root:GROUP, the least that lets `s6-svscanctl -a` and `-an`
//!   work for GROUP with s6 2.11 (the tool opens `.s6-svscan/control` for
//!   writing, so it needs search on the directory and write on the FIFO;
//!   `lock` is never touched by s6-svscanctl and stays 0600 root).
//! * Isolated: the user's scan directory is created, parents included, and
//!   owned by the user; root's is not touched.
//! * A slot is built as `.gateway-<profile>.tmp` and renamed into place; an
//!   interrupted build leaves the dot-directory behind, possibly root-owned
//!   and unreadable by the user (upstream issue #60774). Those are removed
//!   with [`remove_tree`], which never follows anything.
//!
//! Every step is an fd-relative, `O_NOFOLLOW` open; changes go through
//! [`perms`](mod@crate::perms) and are recorded as [`Change`]s.

use std::ffi::{OsStr, OsString};
use std::path::{Component, Path};

use crate::error::{Error, Result};
use crate::fs::tree::{Limits, remove_tree};
use crate::fs::{Dir, Kind, Stat};
use crate::perms::{self, Act, Answer, Change, Cred, Found, W, Want, X, shown};
use crate::s6;

/// Mode of the user's scan directory and of the parents created for it.
const USER_SCANDIR_MODE: u32 = 0o755;

/// Entries read from a scan directory, at most.
const MAX_ENTRIES: usize = 100_000;

/// What the user can do with a scan directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScandirAccess {
    /// Create and remove slots: write and search the directory.
    pub slots: Answer,
    /// `s6-svscanctl`: search `.s6-svscan/`, write its `control`.
    pub svscanctl: Answer,
}

impl std::fmt::Display for ScandirAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "slots {}, svscanctl {}", self.slots, self.svscanctl)
    }
}

/// The answers for a scan directory from the stats of its parts.
pub fn access(cred: &Cred, top: &Stat, ctl_dir: Option<&Stat>, control: Option<&Stat>) -> ScandirAccess {
    let slots = if cred.may(top, W | X) { Answer::Yes } else { Answer::No(shown("scan directory", top)) };
    let svscanctl = if !cred.may(top, X) {
        Answer::No(shown("scan directory", top))
    } else {
        match (ctl_dir, control) {
            (None, _) => Answer::No(".s6-svscan/ missing".into()),
            (Some(d), _) if !cred.may(d, X) => Answer::No(shown(".s6-svscan/", d)),
            (Some(_), None) => Answer::No(".s6-svscan/control missing".into()),
            (Some(_), Some(c)) if !cred.may(c, W) => Answer::No(shown(".s6-svscan/control", c)),
            _ => Answer::Yes,
        }
    };
    ScandirAccess { slots, svscanctl }
}

/// Shared topology: `.s6-svscan/` and its `control` opened to `gid`, then
/// the scan directory given to `uid:gid` (last, so nothing is changed
/// inside it once the user may write it). Its mode is the owner's business
/// and is left as it is.
pub fn share(scandir: &Dir, uid: u32, gid: u32, cred: &Cred, act: Act, log: &mut Vec<Change>) -> Result<ScandirAccess> {
    let mut top = scandir.stat()?;
    let mount = Some(scandir.mount_id()?);
    let want = |kind, mode| Want { kind, mode, uid: 0, gid };
    let ctl_dir = perms::conform_dir(scandir, s6::SVSCAN_DIR, &want(Kind::Dir, perms::SVSCAN_DIR_MODE), mount, act, log)?;
    let control = match &ctl_dir {
        Found::Present(dir, _) => {
            perms::conform_fifo(dir, s6::CONTROL, &want(Kind::Fifo, perms::SVSCAN_CONTROL_MODE), mount, act, log)?.stat().copied()
        }
        Found::Absent => None,
    };
    if (top.uid, top.gid) != (uid, gid) {
        log.push(Change::Chown { path: scandir.path().to_path_buf(), from: (top.uid, top.gid), to: (uid, gid) });
        if act == Act::Change {
            scandir.chown(uid, gid)?;
            top = scandir.stat()?;
        }
    }
    Ok(access(cred, &top, ctl_dir.stat(), control.as_ref()))
}

/// What the user can do with root's scan directory as it is (isolated
/// topology: nothing is changed there, the answers should be no).
pub fn inspect(scandir: &Dir, cred: &Cred) -> Result<ScandirAccess> {
    let top = scandir.stat()?;
    let ctl = scandir.stat_at(OsStr::new(s6::SVSCAN_DIR))?.filter(|st| st.kind == Kind::Dir);
    let control = match ctl {
        Some(_) => scandir.open_dir(OsStr::new(s6::SVSCAN_DIR))?.stat_at(OsStr::new(s6::CONTROL))?,
        None => None,
    };
    Ok(access(cred, &top, ctl.as_ref(), control.as_ref()))
}

/// The components of `path` after its root (or `.`), refusing `..`.
fn components(path: &Path) -> Result<(Dir, Vec<&OsStr>)> {
    let start = if path.is_absolute() { Dir::open_trusted(Path::new("/"))? } else { Dir::open_trusted(Path::new("."))? };
    let mut names = Vec::new();
    for c in path.components() {
        match c {
            Component::Normal(n) => names.push(n),
            Component::RootDir | Component::CurDir => {}
            Component::ParentDir | Component::Prefix(_) => {
                return Err(Error::refused("use", path, "must not contain .."));
            }
        }
    }
    if names.is_empty() {
        return Err(Error::refused("use", path, "is not a directory below / or ."));
    }
    Ok((start, names))
}

/// Opens the directory at `path` one component at a time, following no
/// symlink anywhere on the way. `Ok(None)` if some component is absent.
pub fn open_strict(path: &Path) -> Result<Option<Dir>> {
    let (mut dir, names) = components(path)?;
    for name in names {
        match dir.open_dir_if_present(name)? {
            Some(next) => dir = next,
            None => return Ok(None),
        }
    }
    Ok(Some(dir))
}

/// Isolated topology: the user's scan directory at `path`, created with its
/// missing parents (root-owned, 0755) and owned by `uid:gid`, 0755. No
/// symlink is followed on the way. Returns the directory (`Absent` under
/// [`Act::Check`] when it does not exist yet) and what the user may do.
pub fn create_user_scandir(path: &Path, uid: u32, gid: u32, cred: &Cred, act: Act, log: &mut Vec<Change>) -> Result<(Found<Dir>, Answer)> {
    let (mut dir, names) = components(path)?;
    let last = names.len() - 1;
    for (i, name) in names.iter().enumerate() {
        let name = name.to_str().ok_or_else(|| Error::refused("use", path, "is not valid UTF-8"))?;
        if i < last && dir.stat_at(OsStr::new(name))?.is_some() {
            dir = dir.open_dir(OsStr::new(name))?;
            continue;
        }
        // Parents we create are root's; only the scan directory is the user's.
        let (u, g) = if i < last { (0, 0) } else { (uid, gid) };
        let want = Want { kind: Kind::Dir, mode: USER_SCANDIR_MODE, uid: u, gid: g };
        match perms::conform_dir(&dir, name, &want, None, act, log)? {
            Found::Present(next, st) if i == last => {
                let answer = if cred.may(&st, W | X) { Answer::Yes } else { Answer::No(shown("scan directory", &st)) };
                return Ok((Found::Present(next, st), answer));
            }
            Found::Present(next, _) => dir = next,
            Found::Absent => {
                // Under Check: the rest of the path would be created too.
                let mut p = dir.child_path(OsStr::new(name));
                for rest in &names[i + 1..] {
                    p.push(rest);
                    log.push(Change::Create { path: p.clone(), kind: Kind::Dir });
                }
                return Ok((Found::Absent, Answer::No("missing".into())));
            }
        }
    }
    // (components() never returns an empty list)
    Err(Error::refused("use", path, "is not a directory below / or ."))
}

/// Whether `name` is a leftover of an interrupted slot build: the shell
/// pattern `.gateway-*.tmp*` that upstream's sweep used.
pub fn is_leftover(name: &OsStr) -> bool {
    let b = name.as_encoded_bytes();
    b.strip_prefix(b".gateway-").is_some_and(|rest| rest.windows(4).any(|w| w == b".tmp"))
}

/// The leftovers in `dir`, sorted.
pub fn leftovers(dir: &Dir) -> Result<Vec<OsString>> {
    let mut names: Vec<OsString> = dir.entries(MAX_ENTRIES)?.into_iter().filter(|n| is_leftover(n)).collect();
    names.sort();
    Ok(names)
}

/// Removes the leftover `name` in `dir` and everything below it, following
/// nothing (a symlink is unlinked, a FIFO is never opened).
pub fn sweep(dir: &Dir, name: &OsStr, act: Act, log: &mut Vec<Change>) -> Result<()> {
    if act == Act::Change && !remove_tree(dir, name, Limits::default())? {
        return Ok(()); // gone meanwhile
    }
    log.push(Change::Remove { path: dir.child_path(name) });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(kind: Kind, mode: u32, uid: u32, gid: u32) -> Stat {
        Stat { kind, mode, uid, gid, nlink: 1, size: 0, dev: 1, ino: 1, ctime: (0, 0) }
    }

    #[test]
    fn leftovers_match_the_upstream_glob() {
        for yes in [".gateway-default.tmp", ".gateway-a.tmp.123", ".gateway-.tmp", ".gateway-x.tmpfoo", ".gateway-a.b.tmp"] {
            assert!(is_leftover(OsStr::new(yes)), "{yes}");
        }
        for no in ["gateway-default.tmp", ".gateway-default", ".gateway.tmp", ".s6-svscan", ".gateway-tmp", "x.gateway-a.tmp"] {
            assert!(!is_leftover(OsStr::new(no)), "{no}");
        }
    }

    #[test]
    fn svscanctl_needs_search_on_the_control_dir_and_write_on_the_fifo() {
        let c = Cred { uid: 10000, groups: vec![10000] };
        let top = st(Kind::Dir, 0o755, 0, 0);
        let a = access(&c, &top, Some(&st(Kind::Dir, 0o700, 0, 0)), Some(&st(Kind::Fifo, 0o600, 10000, 10000)));
        // Upstream's fix (control and lock chowned, the directory left 0700).
        assert_eq!(a.to_string(), "slots no (scan directory 0755 0:0), svscanctl no (.s6-svscan/ 0700 0:0)");
        let shared = st(Kind::Dir, 0o755, 10000, 10000);
        let a = access(&c, &shared, Some(&st(Kind::Dir, 0o710, 0, 10000)), Some(&st(Kind::Fifo, 0o620, 0, 10000)));
        assert_eq!(a.to_string(), "slots yes, svscanctl yes");
        let a = access(&c, &shared, None, None);
        assert_eq!(a.svscanctl, Answer::No(".s6-svscan/ missing".into()));
    }
}

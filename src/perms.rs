//! The permission model of `s6-svperms -G GROUP`, applied through the fd
//! layer, and the user's resulting access to a service (DESIGN §2).
//!
//! A service directory supervised by root is controllable by GROUP when
//! `supervise/` is 0710 root:GROUP (members may search it and read
//! `status`) and `supervise/control` is a 0620 root:GROUP FIFO (members may
//! send commands). The owner stays root: a `supervise/` the user could
//! write would let the user plant symlinks where the root supervisor
//! writes its status.
//!
//! Events are never granted (no `s6-svperms -E`): root's s6-supervise
//! opens every `ftrig1:@…` entry of `event/` for writing and follows
//! symlinks, so a user who may create entries there makes root overwrite
//! any file. `event/` stays what s6-supervise makes, 03730 root:root, and
//! one that an earlier run opened to GROUP is closed again and emptied of
//! everything but single-link FIFOs. The tools wait on such services by
//! polling the status ([`crate::s6::listen::Watch`]).
//!
//! Every object is pinned first (`O_NOFOLLOW`; FIFOs only with `O_PATH`),
//! decided on with `fstat` of that fd and changed through the same fd. A
//! symlink, an object of the wrong type, a non-directory with more than one
//! link or an object on another filesystem is refused and left alone.
//! What is absent is created root-owned with a closed mode first, then given
//! to GROUP, exactly as s6-supervise would keep it.
//!
//! Errors are returned, never printed; [`Act::Check`] changes nothing and
//! records what [`Act::Change`] would do.

use std::ffi::OsStr;
use std::fmt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;

use crate::error::{Error, Result};
use crate::fs::{Dir, Kind, Node, Stat, dir_describe};
use crate::s6;

/// `supervise/` for `-G`: group members may search it (read `status`).
pub const SUPERVISE_MODE: u32 = 0o710;
/// `supervise/control` for `-G`: group members may write commands.
pub const CONTROL_MODE: u32 = 0o620;
/// `event/` of a root-supervised service: s6-supervise's own 03730
/// root:root, never opened to GROUP (module docs).
pub const EVENT_MODE: u32 = s6::EVENT_MODE;
/// `.s6-svscan/` when the group may use `s6-svscanctl`: searchable only.
pub const SVSCAN_DIR_MODE: u32 = 0o710;
/// `.s6-svscan/control` when the group may use `s6-svscanctl`.
pub const SVSCAN_CONTROL_MODE: u32 = 0o620;

/// Read permission, as asked of [`Cred::may`].
pub const R: u32 = 4;
/// Write permission.
pub const W: u32 = 2;
/// Search (directories) or execute permission.
pub const X: u32 = 1;

/// Whether a run changes the filesystem or only looks at it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Act {
    Change,
    Check,
}

/// The state an object must end up in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Want {
    pub kind: Kind,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

/// One change, made or (under [`Act::Check`]) due.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Create { path: PathBuf, kind: Kind },
    Chown { path: PathBuf, from: (u32, u32), to: (u32, u32) },
    Chmod { path: PathBuf, from: u32, to: u32 },
    Remove { path: PathBuf },
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use crate::msg::printable;
        match self {
            Change::Create { path, kind } => {
                let what = if *kind == Kind::Fifo { "fifo" } else { "directory" };
                write!(f, "create {what} {}", printable(&path.to_string_lossy()))
            }
            Change::Chown { path, from, to } => {
                write!(f, "chown {} {}:{} -> {}:{}", printable(&path.to_string_lossy()), from.0, from.1, to.0, to.1)
            }
            Change::Chmod { path, from, to } => write!(f, "chmod {} {from:04o} -> {to:04o}", printable(&path.to_string_lossy())),
            Change::Remove { path } => write!(f, "remove {}", printable(&path.to_string_lossy())),
        }
    }
}

/// The user whose access is judged: the kernel's DAC rules, no ACLs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cred {
    pub uid: u32,
    /// Primary and supplementary groups.
    pub groups: Vec<u32>,
}

impl Cred {
    /// Whether the user gets all of `bits` (R, W, X) on an inode: the owner
    /// class if the user owns it, else the group class if a member, else
    /// other (Linux picks exactly one class).
    pub fn may(&self, st: &Stat, bits: u32) -> bool {
        if self.uid == 0 {
            return true;
        }
        let class = if st.uid == self.uid {
            st.mode >> 6
        } else if self.groups.contains(&st.gid) {
            st.mode >> 3
        } else {
            st.mode
        };
        class & bits & 7 == bits & 7
    }
}

/// Yes, or no with the first reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Yes,
    No(String),
}

impl Answer {
    /// Whether the answer is yes.
    pub fn is_yes(&self) -> bool {
        *self == Answer::Yes
    }

    /// Yes if every step is allowed, else no with the first refusal.
    fn all(steps: &[(bool, &dyn Fn() -> String)]) -> Answer {
        match steps.iter().find(|(ok, _)| !ok) {
            None => Answer::Yes,
            Some((_, why)) => Answer::No(why()),
        }
    }
}

impl fmt::Display for Answer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Answer::Yes => f.write_str("yes"),
            Answer::No(why) => write!(f, "no ({})", crate::msg::printable(why)),
        }
    }
}

/// `name MODE UID:GID`, as the reasons show an object.
pub fn shown(name: &str, st: &Stat) -> String {
    format!("{name} {:04o} {}:{}", st.mode, st.uid, st.gid)
}

/// What the user can do with one service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceAccess {
    /// `s6-svstat`, `s6-svok`: search `supervise/`, read `status`.
    pub status: Answer,
    /// `s6-svc`: write `supervise/control`.
    pub control: Answer,
    /// `s6-svwait`, `s6-svc -w…`: create a FIFO in `event/`. For a
    /// root-supervised service this must be no (module docs).
    pub events: Answer,
}

/// Why a root-supervised service never lets the user subscribe.
pub const EVENTS_WHY: &str = "root's s6-supervise writes to every entry of event/ and follows symlinks";

impl ServiceAccess {
    /// The model: the user may read the status and control the service,
    /// and may not create entries in `event/`.
    pub fn as_wanted(&self) -> bool {
        self.status.is_yes() && self.control.is_yes() && !self.events.is_yes()
    }
}

impl fmt::Display for ServiceAccess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "status {}, control {}, ", self.status, self.control)?;
        match &self.events {
            Answer::No(why) => write!(f, "events not granted ({}; {EVENTS_WHY})", crate::msg::printable(why)),
            Answer::Yes => {
                write!(f, "events RISK (the user may create entries in event/: {EVENTS_WHY}, so the user can make root overwrite any file)")
            }
        }
    }
}

/// A pinned object as a walk step sees it.
pub enum Found<T> {
    /// Not there (only under [`Act::Check`]: a change creates it).
    Absent,
    /// The pinned handle and its stat (after the changes, if any).
    Present(T, Stat),
}

impl<T> Found<T> {
    /// The stat of a present object; `None` when absent.
    pub fn stat(&self) -> Option<&Stat> {
        match self {
            Found::Absent => None,
            Found::Present(_, st) => Some(st),
        }
    }
}

/// What can be changed through a pinned fd.
trait Pinned {
    fn path(&self) -> &Path;
    fn fresh_stat(&mut self) -> Result<Stat>;
    fn set_owner(&self, uid: u32, gid: u32) -> Result<()>;
    fn set_mode(&self, mode: u32) -> Result<()>;
}

impl Pinned for Dir {
    fn path(&self) -> &Path {
        Dir::path(self)
    }
    fn fresh_stat(&mut self) -> Result<Stat> {
        self.stat()
    }
    fn set_owner(&self, uid: u32, gid: u32) -> Result<()> {
        self.chown(uid, gid)
    }
    fn set_mode(&self, mode: u32) -> Result<()> {
        self.chmod(mode)
    }
}

impl Pinned for Node {
    fn path(&self) -> &Path {
        Node::path(self)
    }
    fn fresh_stat(&mut self) -> Result<Stat> {
        self.restat().copied()
    }
    fn set_owner(&self, uid: u32, gid: u32) -> Result<()> {
        self.chown(uid, gid)
    }
    fn set_mode(&self, mode: u32) -> Result<()> {
        self.chmod(mode)
    }
}

/// The refusals every pinned object goes through before it is changed.
/// `mount` is the only mount allowed and `on` the object's (both from
/// `mount_id()`, not `st_dev`: see `fs::dir::mount_of`).
fn vet(path: &Path, st: &Stat, want: &Want, mount: Option<u64>, on: Option<u64>) -> Result<()> {
    if st.kind != want.kind {
        let expected = if want.kind == Kind::Dir { "a directory" } else { "a FIFO" };
        return Err(Error::refused("use", path, format!("{}, expected {expected}", dir_describe(st.kind))));
    }
    // A second name could be an inode outside the tree linked in.
    if st.kind != Kind::Dir && st.nlink != 1 {
        return Err(Error::refused("use", path, format!("has {} hard links", st.nlink)));
    }
    if mount.is_some() && on != mount {
        return Err(Error::refused("use", path, "is on another filesystem"));
    }
    Ok(())
}

/// Brings the pinned object to `want`, recording each change; returns its
/// stat afterwards (under [`Act::Check`], the stat as it is).
fn conform<P: Pinned>(obj: &mut P, st: Stat, want: &Want, act: Act, log: &mut Vec<Change>) -> Result<Stat> {
    let owner_ok = (st.uid, st.gid) == (want.uid, want.gid);
    let mode_ok = st.mode == want.mode;
    if !owner_ok {
        log.push(Change::Chown { path: obj.path().to_path_buf(), from: (st.uid, st.gid), to: (want.uid, want.gid) });
    }
    if !mode_ok {
        log.push(Change::Chmod { path: obj.path().to_path_buf(), from: st.mode, to: want.mode });
    }
    if act == Act::Check || (owner_ok && mode_ok) {
        return Ok(st);
    }
    if !owner_ok {
        // Take away what the target mode does not grant before the new
        // owner or group can get it: access only ever narrows, then widens
        // for GROUP alone.
        let narrowed = st.mode & want.mode;
        if narrowed != st.mode {
            obj.set_mode(narrowed)?;
        }
        obj.set_owner(want.uid, want.gid)?;
    }
    // Last, and always after a chown: a chown may clear set-id bits.
    obj.set_mode(want.mode)?;
    let now = obj.fresh_stat()?;
    if (now.mode, now.uid, now.gid) != (want.mode, want.uid, want.gid) {
        return Err(Error::refused(
            "set permissions of",
            obj.path(),
            format!("ended up {:04o} {}:{} instead of {:04o} {}:{}", now.mode, now.uid, now.gid, want.mode, want.uid, want.gid),
        ));
    }
    Ok(now)
}

/// The directory `name` in `parent`, brought to `want`; created (0700 root
/// first) when absent. `mount`, when given, is the only mount allowed.
pub fn conform_dir(parent: &Dir, name: &str, want: &Want, mount: Option<u64>, act: Act, log: &mut Vec<Change>) -> Result<Found<Dir>> {
    let name = OsStr::new(name);
    // Open first: the common case (it exists) costs no extra stat.
    let (mut dir, created) = match parent.open_dir_if_present(name)? {
        Some(dir) => (dir, false),
        None if act == Act::Check => {
            log.push(Change::Create { path: parent.child_path(name), kind: Kind::Dir });
            log_fresh(parent.child_path(name), want, log);
            return Ok(Found::Absent);
        }
        None => {
            let created = parent.mkdir_at(name, 0o700)?;
            (parent.open_dir(name)?, created)
        }
    };
    let st = dir.stat()?;
    let on = if mount.is_some() { Some(dir.mount_id()?) } else { None };
    vet(dir.path(), &st, want, mount, on)?;
    if created {
        log.push(Change::Create { path: dir.path().to_path_buf(), kind: Kind::Dir });
    }
    let st = conform(&mut dir, st, want, act, log)?;
    Ok(Found::Present(dir, st))
}

/// The FIFO `name` in `parent`, brought to `want`; created (0600 root
/// first) when absent. It is pinned with `O_PATH` and never opened for I/O.
pub fn conform_fifo(parent: &Dir, name: &str, want: &Want, mount: Option<u64>, act: Act, log: &mut Vec<Change>) -> Result<Found<Node>> {
    let name = OsStr::new(name);
    let (mut node, created) = match parent.open_node(name) {
        Ok(node) => (node, false),
        Err(e) if e.errno() != Some(Errno::ENOENT) => return Err(e),
        Err(_) if act == Act::Check => {
            log.push(Change::Create { path: parent.child_path(name), kind: Kind::Fifo });
            log_fresh(parent.child_path(name), want, log);
            return Ok(Found::Absent);
        }
        Err(_) => {
            let created = parent.mkfifo_at(name, 0o600)?;
            (parent.open_node(name)?, created)
        }
    };
    let st = *node.stat();
    let on = if mount.is_some() { Some(node.mount_id()?) } else { None };
    vet(node.path(), &st, want, mount, on)?;
    if created {
        log.push(Change::Create { path: node.path().to_path_buf(), kind: Kind::Fifo });
    }
    let st = conform(&mut node, st, want, act, log)?;
    Ok(Found::Present(node, st))
}

/// Under [`Act::Check`], what creating an object would also do.
fn log_fresh(path: PathBuf, want: &Want, log: &mut Vec<Change>) {
    let fresh = if want.kind == Kind::Dir { 0o700 } else { 0o600 };
    if (want.uid, want.gid) != (0, 0) {
        log.push(Change::Chown { path: path.clone(), from: (0, 0), to: (want.uid, want.gid) });
    }
    log.push(Change::Chmod { path, from: fresh, to: want.mode });
}

/// Applies (or checks) the `-G gid` model on one service directory and
/// answers what `cred` can do with it afterwards (under [`Act::Check`], as
/// things are now). `mount` is the mount the service must be on.
pub fn service(svc: &Dir, gid: u32, cred: &Cred, mount: Option<u64>, act: Act, log: &mut Vec<Change>) -> Result<ServiceAccess> {
    let top = svc.stat()?;
    let want = |kind, mode| Want { kind, mode, uid: 0, gid };
    let event = close_events(svc, mount, act, log)?;
    let supervise = conform_dir(svc, s6::SUPERVISE, &want(Kind::Dir, SUPERVISE_MODE), mount, act, log)?;
    let (control, status) = match &supervise {
        Found::Present(dir, _) => {
            let control = conform_fifo(dir, s6::CONTROL, &want(Kind::Fifo, CONTROL_MODE), mount, act, log)?;
            (control.stat().copied(), dir.stat_at(OsStr::new(s6::STATUS))?)
        }
        Found::Absent => {
            let path = svc.child_path(OsStr::new(s6::SUPERVISE)).join(s6::CONTROL);
            log.push(Change::Create { path: path.clone(), kind: Kind::Fifo });
            log_fresh(path, &want(Kind::Fifo, CONTROL_MODE), log);
            (None, None)
        }
    };
    Ok(access(cred, &top, event.stat(), supervise.stat(), control.as_ref(), status.as_ref()))
}

/// `event/` as s6-supervise makes it, 03730 root:root. One that was open
/// to anyone else (an earlier run's `-E` grant) is closed first, then
/// emptied of whatever the user may have planted: every entry but a
/// single-link FIFO (a live subscriber) is removed, from a directory only
/// root can write by then.
fn close_events(svc: &Dir, mount: Option<u64>, act: Act, log: &mut Vec<Change>) -> Result<Found<Dir>> {
    let want = Want { kind: Kind::Dir, mode: EVENT_MODE, uid: 0, gid: 0 };
    let before = log.len();
    let event = conform_dir(svc, s6::EVENT, &want, mount, act, log)?;
    let changed = log[before..].iter().any(|c| !matches!(c, Change::Create { .. }));
    if let (true, Found::Present(dir, _)) = (changed, &event) {
        for (name, _) in dir.entries_typed(MAX_EVENT_ENTRIES)? {
            let keep = matches!(dir.stat_at(&name)?, Some(st) if st.kind == Kind::Fifo && st.nlink == 1);
            if !keep {
                log.push(Change::Remove { path: dir.child_path(&name) });
                if act == Act::Change {
                    // Absent already is fine: s6-supervise cleans too.
                    crate::fs::tree::remove_tree(dir, &name, crate::fs::tree::Limits::default())?;
                }
            }
        }
    }
    Ok(event)
}

/// Entries of an `event/` looked at, at most (each is a waiting subscriber).
const MAX_EVENT_ENTRIES: usize = 100_000;

/// The answers for one service from the stats of its parts (`None`: absent).
pub fn access(
    cred: &Cred,
    top: &Stat,
    event: Option<&Stat>,
    supervise: Option<&Stat>,
    control: Option<&Stat>,
    status: Option<&Stat>,
) -> ServiceAccess {
    let top_ok = cred.may(top, X);
    let top_why = || shown("service directory", top);
    let missing = |name: &'static str| move || format!("{name} missing");
    let sup_x = supervise.is_some_and(|st| cred.may(st, X));
    let sup_why = || supervise.map_or_else(|| missing("supervise/")(), |st| shown("supervise/", st));
    // A status file not written yet is no refusal: there is nothing to read.
    let status_ok = status.is_none_or(|st| st.kind == Kind::File && cred.may(st, R));
    let status_why = || status.map_or_else(String::new, |st| shown("supervise/status", st));
    let control_ok = control.is_some_and(|st| cred.may(st, W));
    let control_why = || control.map_or_else(|| missing("supervise/control")(), |st| shown("supervise/control", st));
    let event_ok = event.is_some_and(|st| cred.may(st, W | X));
    let event_why = || event.map_or_else(|| missing("event/")(), |st| shown("event/", st));
    ServiceAccess {
        status: Answer::all(&[(top_ok, &top_why), (sup_x, &sup_why), (status_ok, &status_why)]),
        control: Answer::all(&[(top_ok, &top_why), (sup_x, &sup_why), (control_ok, &control_why)]),
        events: Answer::all(&[(top_ok, &top_why), (event_ok, &event_why)]),
    }
}

/// What a user-owned (or user-writable) supervise skeleton under a root
/// supervisor lets the user do, as the doctor says it.
pub const SKELETON_RISK: &str = "under root's s6-supervise the user can make root overwrite any file \
(a symlink at supervise/status.new, or in event/)";

/// Whether the user may write, under root's s6-supervise, where that
/// supervisor writes: the service directory (which holds `supervise/`
/// and `event/`), `supervise/` or `event/`, of `svc` or of its `log/`.
/// `Some(what)` names the first such directory.
pub fn skeleton_risk(svc: &Dir, cred: &Cred) -> Result<Option<String>> {
    let log = match svc.stat_at(OsStr::new(s6::LOG))? {
        Some(st) if st.kind == Kind::Dir => svc.open_dir_if_present(OsStr::new(s6::LOG))?,
        _ => None,
    };
    for (prefix, dir) in [("", Some(svc)), ("log/", log.as_ref())] {
        let Some(dir) = dir else { continue };
        let top = dir.stat()?;
        if cred.may(&top, W) {
            return Ok(Some(shown(&format!("{prefix}service directory"), &top)));
        }
        for name in [s6::SUPERVISE, s6::EVENT] {
            if let Some(st) = dir.stat_at(OsStr::new(name))?
                && st.kind == Kind::Dir
                && (st.uid == cred.uid || cred.may(&st, W))
            {
                return Ok(Some(shown(&format!("{prefix}{name}/"), &st)));
            }
        }
    }
    Ok(None)
}

/// Whether s6-svscan treats `name` in a service-directory set as a static
/// service of the user's: not s6-rc's own (`s6rc-*`), not s6-linux-init's
/// (`s6-linux-*`), not hidden.
pub fn is_static_service(name: &OsStr) -> bool {
    let b = name.as_encoded_bytes();
    !(b.is_empty() || b.starts_with(b".") || b.starts_with(b"s6rc-") || b.starts_with(b"s6-linux-"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(kind: Kind, mode: u32, uid: u32, gid: u32) -> Stat {
        Stat { kind, mode, uid, gid, nlink: 1, size: 0, dev: 1, ino: 1, ctime: (0, 0) }
    }

    fn hermes() -> Cred {
        Cred { uid: 10000, groups: vec![10000, 29] }
    }

    #[test]
    fn exactly_one_permission_class_applies() {
        let c = hermes();
        assert!(c.may(&st(Kind::Dir, 0o710, 0, 10000), X));
        assert!(!c.may(&st(Kind::Dir, 0o710, 0, 10000), R));
        assert!(c.may(&st(Kind::Dir, 0o701, 0, 0), X), "other class");
        assert!(c.may(&st(Kind::Dir, 0o070, 0, 29), R | W | X), "supplementary group");
        // The owner class wins even when the group class would allow more.
        assert!(!c.may(&st(Kind::Dir, 0o070, 10000, 10000), R));
        assert!(Cred { uid: 0, groups: vec![0] }.may(&st(Kind::Dir, 0, 5, 5), R | W | X));
        assert!(c.may(&st(Kind::Dir, EVENT_MODE, 0, 10000), W | X), "an earlier run's -E grant");
        assert!(!c.may(&st(Kind::Dir, EVENT_MODE, 0, 0), W), "s6-supervise's own event/");
    }

    #[test]
    fn a_root_only_service_answers_no_with_reasons() {
        let top = st(Kind::Dir, 0o755, 0, 0);
        let a = access(
            &hermes(),
            &top,
            Some(&st(Kind::Dir, 0o3730, 0, 0)),
            Some(&st(Kind::Dir, 0o700, 0, 0)),
            Some(&st(Kind::Fifo, 0o600, 0, 0)),
            Some(&st(Kind::File, 0o644, 0, 0)),
        );
        assert_eq!(
            a.to_string(),
            "status no (supervise/ 0700 0:0), control no (supervise/ 0700 0:0), events not granted (event/ 3730 0:0; root's s6-supervise writes to every entry of event/ and follows symlinks)"
        );
        assert!(!a.as_wanted());
    }

    #[test]
    fn the_model_gives_status_and_control_and_never_events() {
        let top = st(Kind::Dir, 0o755, 0, 0);
        let a = access(
            &hermes(),
            &top,
            Some(&st(Kind::Dir, EVENT_MODE, 0, 0)),
            Some(&st(Kind::Dir, SUPERVISE_MODE, 0, 10000)),
            Some(&st(Kind::Fifo, CONTROL_MODE, 0, 10000)),
            Some(&st(Kind::File, 0o644, 0, 0)),
        );
        assert!(a.as_wanted(), "{a}");
        assert_eq!(
            a.to_string(),
            "status yes, control yes, events not granted (event/ 3730 0:0; root's s6-supervise writes to every entry of event/ and follows symlinks)"
        );
        // Not supervised yet: no status to read is not a refusal.
        let a = access(
            &hermes(),
            &top,
            Some(&st(Kind::Dir, EVENT_MODE, 0, 0)),
            Some(&st(Kind::Dir, SUPERVISE_MODE, 0, 10000)),
            Some(&st(Kind::Fifo, CONTROL_MODE, 0, 10000)),
            None,
        );
        assert!(a.as_wanted());
        // An earlier run's -E grant is a risk, named as such.
        let a = access(
            &hermes(),
            &top,
            Some(&st(Kind::Dir, EVENT_MODE, 0, 10000)),
            Some(&st(Kind::Dir, SUPERVISE_MODE, 0, 10000)),
            Some(&st(Kind::Fifo, CONTROL_MODE, 0, 10000)),
            None,
        );
        assert!(!a.as_wanted());
        assert!(a.to_string().contains("events RISK (the user may create entries in event/"), "{a}");
    }

    #[test]
    fn missing_parts_and_a_closed_service_directory_are_named() {
        let a = access(&hermes(), &st(Kind::Dir, 0o700, 0, 0), None, None, None, None);
        assert_eq!(a.status, Answer::No("service directory 0700 0:0".into()));
        let a = access(&hermes(), &st(Kind::Dir, 0o755, 0, 0), None, None, None, None);
        assert_eq!(
            a.to_string(),
            "status no (supervise/ missing), control no (supervise/ missing), events not granted (event/ missing; root's s6-supervise writes to every entry of event/ and follows symlinks)"
        );
        let a = access(
            &hermes(),
            &st(Kind::Dir, 0o755, 0, 0),
            None,
            Some(&st(Kind::Dir, 0o710, 0, 10000)),
            None,
            Some(&st(Kind::File, 0o600, 0, 0)),
        );
        assert_eq!(a.status, Answer::No("supervise/status 0600 0:0".into()));
        assert_eq!(a.control, Answer::No("supervise/control missing".into()));
    }

    #[test]
    fn static_services_exclude_s6rc_s6_linux_and_dot_names() {
        for yes in ["app", "gateway-default", "s6rcx", "s6-rc-thing", "log"] {
            assert!(is_static_service(OsStr::new(yes)), "{yes}");
        }
        for no in ["s6rc-oneshot-runner", "s6rc-fdholder", "s6-linux-init-shutdownd", ".hidden", ".s6-svscan", ""] {
            assert!(!is_static_service(OsStr::new(no)), "{no}");
        }
    }

    #[test]
    fn changes_read_as_one_line_each() {
        let p = PathBuf::from("/s/app/supervise");
        assert_eq!(Change::Chmod { path: p.clone(), from: 0o700, to: 0o710 }.to_string(), "chmod /s/app/supervise 0700 -> 0710");
        assert_eq!(Change::Chown { path: p.clone(), from: (0, 0), to: (0, 10000) }.to_string(), "chown /s/app/supervise 0:0 -> 0:10000");
        assert_eq!(Change::Create { path: p.join("control"), kind: Kind::Fifo }.to_string(), "create fifo /s/app/supervise/control");
        assert_eq!(Change::Remove { path: "/s/.gateway-x.tmp".into() }.to_string(), "remove /s/.gateway-x.tmp");
        assert_eq!(Change::Remove { path: "/s/a\nb".into() }.to_string(), "remove /s/a\\nb");
    }
}

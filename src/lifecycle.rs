//! The runtime lifecycle of a gateway slot, speaking s6's own files and
//! FIFOs (doc/hermes-slot.md, doc/design.md#tools): register, unregister, control, observe.
//!
//! Every wait is a subscription or a watch armed *before* the action it
//! waits for, followed by a fresh read of the state after every wake-up
//! ([`crate::s6::listen`]); none sleeps for a fixed time. Where the user
//! may not subscribe (the `event/` of a root-supervised service, never
//! opened to the user: doc/design.md#events-never-granted) the wait polls the status files with a
//! bounded backoff instead ([`Watch`]).
//!
//! * [`register`]: the slot is built and published by the same code as the
//!   boot reconcile ([`slot::install`], refusing an existing slot); then
//!   subscriptions go into the slot's `event/` and `log/event/`, the scan
//!   directory is told to rescan, and the call returns once a supervisor
//!   holds each lock and has written its status (its `s` event). A
//!   supervisor started meanwhile by someone else's rescan is seen by the
//!   check made after subscribing. A rescan that cannot be sent withdraws
//!   the slot again.
//! * [`unregister`]: down (subscribe, `d`, until down with finish done),
//!   out of the scan by a rename to a dot-name (the entry never dangles),
//!   `s6-svscanctl -an`, then until both supervisors have exited (a
//!   pidfd of each lock's holder), then the tree is removed through the
//!   fd layer.
//! * [`control()`]: one command byte, and with a deadline the wait for its
//!   effect, as `s6-svc -w…` does.
//!
//! Error policy: system failures are `Err`; every outcome a caller must
//! tell apart (timeouts, nobody listening, already registered) is a value.

use std::ffi::{OsStr, OsString};
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use nix::errno::Errno;

use crate::error::{Error, Result};
use crate::fs::publish::{Rename, rename_at};
use crate::fs::tree::{self, Limits};
use crate::fs::{Dir, Kind, Owner};
use crate::profile::Profile;
use crate::s6;
use crate::s6::control::{self, Sent};
use crate::s6::listen::{self, Backoff, Deadline, LockWatch, Watch, event};
use crate::s6::status::{self, Status};
use crate::s6::svscan;
use crate::slot::{self, Content, Existing};

/// Bounds for removing a slot's tree.
const TREE_LIMITS: Limits = Limits { depth: 16, entries: 10_000 };

/// Why a command could not reach s6-svscan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unreachable {
    /// Nobody reads the control FIFO (no s6-svscan on that directory).
    NotListening,
    /// Writing to it failed (typically EACCES).
    Failed(Error),
}

/// What [`register`] achieved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Registered {
    /// Published, and a supervisor runs on the slot and on its logger.
    Supervised,
    /// Published and the rescan sent, but no supervisor came in time.
    TimedOut,
    /// A slot of that name already exists; it was left as it was (but
    /// asked to be scanned if nothing supervises it).
    Already,
    /// The rescan could not be sent: the slot was withdrawn again
    /// (`leftover`: what could not be removed, and why).
    RescanFailed {
        /// Why s6-svscan could not be told.
        why: Unreachable,
        /// What could not be removed, and why.
        leftover: Option<(PathBuf, Error)>,
    },
}

/// One register or unregister of a profile at a time, across processes:
/// an exclusive `flock` on `.gateway-<p>.lck` in the scan directory
/// (s6-svscan skips dot-names), removed again before it is let go. A
/// second register then finds the slot registered, a second unregister
/// finds it gone. The wait is bounded by the holder's own deadline.
struct ProfileLock<'a> {
    scandir: &'a Dir,
    name: OsString,
    _held: std::os::fd::OwnedFd,
}

impl ProfileLock<'_> {
    fn take<'a>(scandir: &'a Dir, profile: &Profile) -> Result<ProfileLock<'a>> {
        let name = OsString::from(slot::lock_name(profile));
        let held = scandir.lock_file(&name)?;
        Ok(ProfileLock { scandir, name, _held: held })
    }
}

impl Drop for ProfileLock<'_> {
    fn drop(&mut self) {
        // Still held here (the fd closes after this): a waiter wakes on a
        // removed file, sees it, and locks a fresh one.
        let _ = self.scandir.unlink_at(&self.name);
    }
}

/// The scan-directory-wide lock, a `flock` on `.hermes-scan.lck`
/// (s6-svscan skips dot-names). s6-svscan 2.12+ abandons a scan when an
/// entry it listed is renamed away before it stats it, and never starts a
/// service first seen by that scan: so a register holds it shared from its
/// publish until its slot is supervised, and every rename of a slot out of
/// the scan ([`move_aside`]) holds it exclusive. The same process must not
/// hold both (flock would wait on itself). The last holder removes the
/// file (it can tell: only then does an exclusive lock succeed at once);
/// waiters then lock a fresh one ([`Dir::lock_file`]).
struct ScanLock<'a> {
    scandir: &'a Dir,
    fd: std::os::fd::OwnedFd,
}

const SCAN_LOCK: &str = ".hermes-scan.lck";

impl ScanLock<'_> {
    fn shared(scandir: &Dir) -> Result<ScanLock<'_>> {
        Ok(ScanLock { scandir, fd: scandir.lock_file_shared(OsStr::new(SCAN_LOCK))? })
    }

    fn exclusive(scandir: &Dir) -> Result<ScanLock<'_>> {
        Ok(ScanLock { scandir, fd: scandir.lock_file(OsStr::new(SCAN_LOCK))? })
    }

    /// Removes a lock file a killed holder left (nobody else's drop would,
    /// when no rename out of the scan follows): taken and let go, it goes
    /// unless someone holds it. Best effort: a failure leaves a dot-name
    /// s6-svscan ignores.
    fn clear_stale(scandir: &Dir) {
        if matches!(scandir.stat_at(OsStr::new(SCAN_LOCK)), Ok(Some(_))) {
            drop(ScanLock::exclusive(scandir));
        }
    }
}

impl Drop for ScanLock<'_> {
    fn drop(&mut self) {
        use std::os::fd::AsRawFd;
        // SAFETY: flock on an fd we own.
        if unsafe { libc::flock(self.fd.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
            let _ = self.scandir.unlink_at(OsStr::new(SCAN_LOCK));
        }
    }
}

/// How long a register waits for a supervisor before it takes the slot
/// for one that an abandoned scan saw (never started, s6 bug) and
/// publishes it again as a new directory, which s6-svscan sees as new.
const REPUBLISH_AFTER_MS: u64 = 3000;

/// Refuses a slot the scan directory's s6-svscan could not supervise: it
/// counts services and loggers against one bound, and past it every scan
/// fails (2.12+), so the limit is enforced here, with its numbers.
fn check_room(scandir: &Dir, profile: &Profile) -> Result<()> {
    let max = svscan::max_entries(scandir);
    let used = svscan::census(scandir)?.supervised;
    if used + 2 > max {
        return Err(Error::limit(
            "register",
            scandir.child_path(OsStr::new(&slot::name(profile))),
            format!("the s6-svscan of this scan directory supervises at most {max} services and loggers, {used} are there already"),
        ));
    }
    Ok(())
}

/// Takes the per-profile lock that register and unregister take, for a
/// start, stop or restart: the command and the intent it records are one
/// step for any other command on the profile, so the recorded intent is
/// always what s6 was last told. Held until the returned value is dropped.
pub fn lock_profile<'a>(scandir: &'a Dir, profile: &Profile) -> Result<impl Drop + 'a> {
    ProfileLock::take(scandir, profile)
}

/// Builds `slot` in `scandir`, publishes it, has it supervised.
pub fn register(scandir: &Dir, profile: &Profile, content: &Content, owner: Owner, deadline: &Deadline) -> Result<Registered> {
    let _locked = ProfileLock::take(scandir, profile)?;
    let exists = scandir.stat_at(OsStr::new(&slot::name(profile)))?.is_some();
    if !exists {
        check_room(scandir, profile)?;
    }
    let mut scan_lock = Some(ScanLock::shared(scandir)?);
    match slot::install(scandir, profile, content, owner, Existing::Refuse) {
        Ok(_) => {}
        Err(e) if slot::is_already_registered(&e) => {
            // A register killed between its publish and its rescan leaves
            // an unsupervised slot: ask for the rescan it did not send, so
            // that running it again converges (no wait: it is not ours).
            let name = OsString::from(slot::name(profile));
            if let Ok(svc) = scandir.open_dir(&name)
                && let Ok(log) = svc.open_dir(OsStr::new(s6::LOG))
                && !all_supervised(&[&svc, &log]).unwrap_or(true)
            {
                let _ = control::svscanctl(scandir, b"a");
            }
            return Ok(Registered::Already);
        }
        Err(e) => return Err(e),
    }
    let name = OsString::from(slot::name(profile));
    // Until the rescan is sent, any failure withdraws the slot: register
    // either gets as far as asking s6 or leaves nothing behind.
    let (svc, log, subs) = match open_and_subscribe(scandir, &name) {
        Ok(x) => x,
        Err(e) => {
            drop(scan_lock.take());
            let _ = withdraw(scandir, profile, &name);
            return Err(e);
        }
    };
    let dirs = [&svc, &log];
    if all_supervised(&dirs)? {
        return Ok(Registered::Supervised);
    }
    let why = match control::svscanctl(scandir, b"a") {
        Ok(Sent::Delivered) => None,
        Ok(Sent::NotListening) => Some(Unreachable::NotListening),
        Err(e) => Some(Unreachable::Failed(e)),
    };
    if let Some(why) = why {
        drop(subs);
        drop(scan_lock.take());
        let leftover = withdraw(scandir, profile, &name).err();
        return Ok(Registered::RescanFailed { why, leftover });
    }
    if wait_supervised(&dirs, &subs, &deadline.or_within_ms(REPUBLISH_AFTER_MS))? {
        return Ok(Registered::Supervised);
    }
    if deadline.passed() {
        return Ok(Registered::TimedOut);
    }
    // Still unsupervised after its rescan: publish it again, as a new
    // directory, and ask again.
    drop(subs);
    drop((svc, log));
    drop(scan_lock.take());
    match move_aside(scandir, profile, &name)? {
        Some(aside) => {
            let busy = scandir.open_dir(&aside).and_then(|d| status::supervised(&d)).unwrap_or(true);
            if busy {
                // Supervised after all, at the last moment: put it back.
                rename_at(scandir, &aside, scandir, &name, Rename::NoReplace)?;
            } else {
                tree::remove_tree(scandir, &aside, TREE_LIMITS)?;
            }
        }
        None => return Ok(Registered::TimedOut),
    }
    let _scan_lock = ScanLock::shared(scandir)?;
    if scandir.stat_at(&name)?.is_none() {
        slot::install(scandir, profile, content, owner, Existing::Refuse)?;
    }
    let (svc, log, subs) = open_and_subscribe(scandir, &name)?;
    let dirs = [&svc, &log];
    if !all_supervised(&dirs)? {
        let _ = control::svscanctl(scandir, b"a");
    }
    Ok(if wait_supervised(&dirs, &subs, deadline)? { Registered::Supervised } else { Registered::TimedOut })
}

/// Waits until a supervisor runs on every one of `dirs` (`subs`: their
/// subscriptions); `Ok(false)` at the deadline.
fn wait_supervised(dirs: &[&Dir], subs: &[Watch], deadline: &Deadline) -> Result<bool> {
    let watches: Vec<&Watch> = subs.iter().collect();
    let mut backoff = Backoff::new();
    let mut events = Vec::new();
    loop {
        if all_supervised(dirs)? {
            return Ok(true);
        }
        if !listen::wait_watches(&watches, &mut backoff, deadline)? {
            return all_supervised(dirs);
        }
        // The events only wake us: the lock and status files decide.
        for s in subs {
            s.read_events(&mut events)?;
        }
        events.clear();
    }
}

fn open_and_subscribe(scandir: &Dir, name: &OsStr) -> Result<(Dir, Dir, [Watch; 2])> {
    let svc = scandir.open_dir(name)?;
    let log = svc.open_dir(OsStr::new(s6::LOG))?;
    let subs = [Watch::new(&svc)?, Watch::new(&log)?];
    Ok((svc, log, subs))
}

/// A supervisor holds the lock of each directory and has written its
/// status (which it does just before its `s` event).
fn all_supervised(dirs: &[&Dir]) -> Result<bool> {
    for d in dirs {
        if !status::supervised(d)? || status::read(d)?.is_none() {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Takes a slot out of the scan (rename to a dot-name) and removes it,
/// unless a supervisor runs on it (then it stays aside, reported).
fn withdraw(scandir: &Dir, profile: &Profile, name: &OsStr) -> std::result::Result<(), (PathBuf, Error)> {
    let aside = match move_aside(scandir, profile, name) {
        Ok(Some(a)) => a,
        Ok(None) => return Ok(()),
        Err(e) => return Err((scandir.child_path(name), e)),
    };
    let at = scandir.child_path(&aside);
    let busy = scandir.open_dir(&aside).and_then(|d| status::supervised(&d));
    match busy {
        Ok(true) => Err((at, Error::refused("remove", scandir.child_path(&aside), "a supervisor runs on it"))),
        _ => tree::remove_tree(scandir, &aside, TREE_LIMITS).map(drop).map_err(|e| (at, e)),
    }
}

/// Renames `name` to a fresh aside name; `None` if it is gone already.
/// Holds the scan lock exclusive meanwhile ([`SCAN_LOCK`]): no register's
/// rescan is pending while a slot leaves the scan.
fn move_aside(scandir: &Dir, profile: &Profile, name: &OsStr) -> Result<Option<OsString>> {
    let _scan_lock = ScanLock::exclusive(scandir)?;
    let base = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    for n in 0..8 {
        let aside = slot::gone_name(profile, base + n);
        match rename_at(scandir, name, scandir, &aside, Rename::NoReplace) {
            Ok(()) => return Ok(Some(aside)),
            Err(e) if e.errno() == Some(Errno::EEXIST) => continue,
            Err(e) if e.errno() == Some(Errno::ENOENT) => return Ok(None),
            Err(e) => return Err(e),
        }
    }
    Err(Error::refused("move aside", scandir.child_path(name), "no free name"))
}

/// What [`unregister`] achieved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unregistered {
    /// There was no such slot.
    Absent,
    /// Down, out of the scan, supervisors gone, tree removed.
    Removed,
    /// The service did not go down in time; the slot is still registered
    /// (wanted down).
    DownTimedOut,
    /// Out of the scan, but a supervisor still held its lock at the
    /// deadline; the slot is left at `left_at`. `prune`: why s6-svscan
    /// could not be told to let it go, if it could not.
    ExitTimedOut {
        /// Where the slot is left.
        left_at: PathBuf,
        /// Why s6-svscan could not be told to let it go.
        prune: Option<Unreachable>,
    },
    /// Everything stopped, but the tree at `left_at` could not be removed.
    Leftover {
        /// The tree left behind.
        left_at: PathBuf,
        /// Why it could not be removed.
        error: Error,
    },
}

/// Unregisters `profile`'s slot in `scandir` (idempotent). A slot that an
/// earlier, interrupted unregister already took out of the scan
/// (`.gateway-<p>.tmp.gone-*`) is finished too, so a rerun converges.
pub fn unregister(scandir: &Dir, profile: &Profile, deadline: &Deadline) -> Result<Unregistered> {
    let _locked = ProfileLock::take(scandir, profile)?;
    let name = OsString::from(slot::name(profile));
    let live = match scandir.stat_at(&name)? {
        None => false,
        Some(st) if st.kind != Kind::Dir => {
            return Err(Error::refused("unregister", scandir.child_path(&name), crate::fs::dir_describe(st.kind)));
        }
        Some(_) => true,
    };
    if live {
        let svc = scandir.open_dir(&name)?;
        if !bring_down(&svc, deadline)? {
            return Ok(Unregistered::DownTimedOut);
        }
        drop(svc);
        move_aside(scandir, profile, &name)?;
    } else {
        ScanLock::clear_stale(scandir);
    }
    let prefix = slot::gone_prefix(profile);
    let mut gone: Vec<OsString> = scandir
        .entries(MAX_SCANDIR)?
        .into_iter()
        .filter(|n| n.as_encoded_bytes().strip_prefix(prefix.as_bytes()).is_some_and(|n| !n.is_empty() && n.iter().all(u8::is_ascii_digit)))
        .collect();
    if gone.is_empty() {
        // Nothing was there, or someone else took it meanwhile.
        return Ok(Unregistered::Absent);
    }
    gone.sort();
    for aside in gone {
        match finish(scandir, &aside, deadline)? {
            Unregistered::Removed => {}
            other => return Ok(other),
        }
    }
    Ok(Unregistered::Removed)
}

/// Most entries read from a scan directory (s6-svscan's bound on services
/// and loggers is 1000 by default since 2.12, at most 160,000 with `-C`).
const MAX_SCANDIR: usize = 200_000;

/// The end of an unregister, for a slot already out of the scan as
/// `aside`: prune its supervisors, wait until they have exited, remove it.
fn finish(scandir: &Dir, aside: &OsStr, deadline: &Deadline) -> Result<Unregistered> {
    let left_at = scandir.child_path(aside);
    let Some(svc) = scandir.open_dir_if_present(aside)? else {
        // Finished by someone else meanwhile.
        return Ok(Unregistered::Removed);
    };
    let log = svc.open_dir_if_present(OsStr::new(s6::LOG))?;
    let mut watches = Vec::new();
    for d in std::iter::once(&svc).chain(log.as_ref()) {
        watches.extend(LockWatch::new(d)?);
    }
    if any_held(&watches)? {
        let prune = match control::svscanctl(scandir, b"an") {
            Ok(Sent::Delivered) => None,
            Ok(Sent::NotListening) => Some(Unreachable::NotListening),
            Err(e) => Some(Unreachable::Failed(e)),
        };
        if prune.is_some() {
            // No scanner to prune them: ask the supervisors themselves to
            // exit (the service is down; a logger ends at end of input).
            for d in std::iter::once(&svc).chain(log.as_ref()) {
                let _ = control::svc(d, b"x");
            }
        }
        // Each round re-reads who holds each lock once its pidfd is open:
        // no exit is missed, whenever it happens.
        loop {
            let mut holders = Vec::new();
            for w in &watches {
                holders.extend(w.arm()?);
            }
            if holders.is_empty() {
                break;
            }
            let fds: Vec<_> = holders.iter().map(|fd| fd.as_fd()).collect();
            if !listen::wait(&fds, deadline)? && any_held(&watches)? {
                return Ok(Unregistered::ExitTimedOut { left_at, prune });
            }
        }
    }
    drop((watches, log, svc));
    match tree::remove_tree(scandir, aside, TREE_LIMITS) {
        Ok(_) => Ok(Unregistered::Removed),
        Err(error) => Ok(Unregistered::Leftover { left_at, error }),
    }
}

fn any_held(watches: &[LockWatch]) -> Result<bool> {
    for w in watches {
        if w.held()? {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Wants the service down and waits until it is down with its finish
/// program done. `Ok(false)` on timeout. Nothing to do without a
/// supervisor.
fn bring_down(svc: &Dir, deadline: &Deadline) -> Result<bool> {
    let sub = match Watch::new(svc) {
        Ok(s) => Some(s),
        // No event/: no supervisor ever ran there.
        Err(e) if e.errno() == Some(Errno::ENOENT) => None,
        Err(e) => return Err(e),
    };
    if !status::supervised(svc)? || control::svc(svc, b"d")? == Sent::NotListening {
        return Ok(true);
    }
    let Some(sub) = sub else { return Ok(true) };
    let mut backoff = Backoff::new();
    let mut events = Vec::new();
    loop {
        match status::read(svc)? {
            Some(s) if s.pid == 0 && !s.finishing => return Ok(true),
            None => return Ok(true),
            Some(_) => {}
        }
        if events.contains(&event::EXIT) || !status::supervised(svc)? {
            return Ok(true);
        }
        if !listen::wait_watches(&[&sub], &mut backoff, deadline)? {
            return Ok(matches!(status::read(svc)?, Some(s) if s.pid == 0 && !s.finishing));
        }
        sub.read_events(&mut events)?;
    }
}

/// A lifecycle command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// `u`: want up, start it.
    Start,
    /// `d`: want down, SIGTERM it.
    Stop,
    /// `t`: SIGTERM; the supervisor restarts it (it stays wanted up).
    Restart,
}

impl Command {
    /// The byte written to `supervise/control`.
    pub fn byte(self) -> u8 {
        match self {
            Command::Start => b'u',
            Command::Stop => b'd',
            Command::Restart => b't',
        }
    }

    /// The intent it records: `running` or `stopped`.
    pub fn desired_state(self) -> &'static str {
        match self {
            Command::Start | Command::Restart => "running",
            Command::Stop => "stopped",
        }
    }
}

/// What [`control()`] achieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Controlled {
    /// Sent (and, when waited for, done: up; down with finish done;
    /// restarted with a new pid).
    Done,
    /// No supervisor reads `supervise/control` (s6-svc's exit 102).
    NotListening,
    /// Sent, but the effect did not come in time.
    TimedOut,
    /// Sent, but the supervisor gave up on the service (its finish exited
    /// 125): it will not come up.
    GaveUp,
    /// Sent, but the supervisor exited while we waited.
    SupervisorExited,
    /// A restart of a service that was not up: nothing to restart.
    NotUp,
}

/// Sends `cmd` to the supervisor of `svc`; with `wait`, waits for its
/// effect until that deadline (subscribed before sending, as `s6-svc -w`).
pub fn control(svc: &Dir, cmd: Command, wait: Option<&Deadline>) -> Result<Controlled> {
    let Some(deadline) = wait else {
        return Ok(match control::svc(svc, &[cmd.byte()])? {
            Sent::Delivered => Controlled::Done,
            Sent::NotListening => Controlled::NotListening,
        });
    };
    let sub = Watch::new(svc)?;
    let before = status::read(svc)?;
    if control::svc(svc, &[cmd.byte()])? == Sent::NotListening {
        return Ok(Controlled::NotListening);
    }
    let old_pid = match (cmd, before) {
        (Command::Restart, Some(s)) if s.is_up() => s.pid,
        (Command::Restart, _) => return Ok(Controlled::NotUp),
        _ => 0,
    };
    let done = |s: &Status| match cmd {
        Command::Start => s.is_up(),
        Command::Stop => s.pid == 0 && !s.finishing,
        Command::Restart => s.is_up() && s.pid != old_pid,
    };
    let gave_up = |s: &Status| gave_up(before.as_ref(), s);
    let mut backoff = Backoff::new();
    let mut events = Vec::new();
    loop {
        let now = status::read(svc)?;
        if now.as_ref().is_some_and(done) {
            return Ok(Controlled::Done);
        }
        if cmd != Command::Stop && (events.contains(&event::GAVE_UP) || (sub.polls() && now.as_ref().is_some_and(gave_up))) {
            return Ok(Controlled::GaveUp);
        }
        if events.contains(&event::EXIT) || (sub.polls() && !status::supervised(svc)?) {
            return Ok(Controlled::SupervisorExited);
        }
        if !listen::wait_watches(&[&sub], &mut backoff, deadline)? {
            let late = status::read(svc)?.as_ref().is_some_and(done);
            return Ok(if late { Controlled::Done } else { Controlled::TimedOut });
        }
        sub.read_events(&mut events)?;
    }
}

/// Whether the supervisor gave up on a service told to start, from its
/// status alone (a wait without events): the status changed since the
/// command was sent (`before`), and the service is down, no finish is
/// running, and it is no longer wanted up (s6-supervise clears that when
/// finish exits 125).
fn gave_up(before: Option<&Status>, now: &Status) -> bool {
    before != Some(now) && now.pid == 0 && !now.finishing && !now.want_up
}

/// What is known of a profile's slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observed {
    /// No slot of that name.
    Unregistered,
    /// A slot, but no supervisor holds its lock (it never ran, or it is
    /// gone).
    Unsupervised,
    /// Supervised, with its status and whether it is normally up.
    Supervised {
        /// What `supervise/status` says.
        status: Status,
        /// No `down` file.
        normally_up: bool,
    },
}

/// Reads the state of `profile`'s slot as s6-svstat does: lock, status,
/// `down` file.
pub fn observe(scandir: &Dir, profile: &Profile) -> Result<Observed> {
    let svc = match open_slot(scandir, profile)? {
        Some(d) => d,
        None => return Ok(Observed::Unregistered),
    };
    if !status::supervised(&svc)? {
        return Ok(Observed::Unsupervised);
    }
    let Some(status) = status::read(&svc)? else { return Ok(Observed::Unsupervised) };
    Ok(Observed::Supervised { status, normally_up: !status::normally_down(&svc)? })
}

/// Opens `profile`'s slot; `None` when there is none. Anything but a
/// directory under that name is refused.
pub fn open_slot(scandir: &Dir, profile: &Profile) -> Result<Option<Dir>> {
    scandir.open_dir_if_present(OsStr::new(&slot::name(profile)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A status as s6-supervise writes it (35 bytes).
    fn st(since: u64, pid: u64, finishing: bool, want_up: bool) -> Status {
        let mut b = [0u8; 35];
        b[..8].copy_from_slice(&((1u64 << 62) + 37 + since).to_be_bytes());
        b[24..32].copy_from_slice(&pid.to_be_bytes());
        b[34] = (finishing as u8) << 1 | (want_up as u8) << 2;
        Status::decode(&b).unwrap()
    }

    #[test]
    fn giving_up_is_read_from_the_status_once_it_changed() {
        let parked = st(100, 0, false, false);
        // Not processed yet: the status is still the one before the command.
        assert!(!gave_up(Some(&parked), &parked));
        // Wanted up, up, finishing: not given up (yet).
        assert!(!gave_up(Some(&parked), &st(100, 0, false, true)));
        assert!(!gave_up(Some(&parked), &st(101, 42, false, true)));
        assert!(!gave_up(Some(&parked), &st(102, 0, true, true)));
        assert!(!gave_up(Some(&parked), &st(102, 0, true, false)), "finish still running");
        // Finish exited 125: down, not wanted up, a new stamp.
        assert!(gave_up(Some(&parked), &st(103, 0, false, false)));
        // A restart of an up service that then gives up.
        assert!(gave_up(Some(&st(50, 7, false, true)), &st(60, 0, false, false)));
        assert!(gave_up(None, &st(60, 0, false, false)), "no status before: any down, unwanted one");
    }
}

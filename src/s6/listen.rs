//! Waiting for s6 without sleeping: the kernel wakes us when something
//! happens, and the state is read again each time (events are wake-ups,
//! the status files are the truth).
//!
//! * [`Subscription`]: s6's own event protocol (`ftrig1`, as `s6-svwait`
//!   and `s6-svlisten1` use it). s6-supervise writes one byte per event
//!   into every FIFO of the service's `event/` whose name is `ftrig1:@`
//!   and 31 more bytes (39 in all; other names are ignored): `s` the
//!   supervisor started, `u` up, `U` ready, `d` down, `D` down with finish
//!   done, `O` given up (finish exited 125), `x` the supervisor is exiting.
//!   Its start-up cleaning, and every notification, unlink such FIFOs that
//!   nobody reads (ENXIO on a non-blocking open for writing), so a
//!   subscriber keeps its FIFO open for reading (and for writing, so that
//!   it never reads EOF) for as long as it listens. As in s6's
//!   `ftrig1_make`, the FIFO is made under a dot-name, opened, then renamed
//!   into place: a notifier never finds it without a reader.
//! * [`LockWatch`]: a supervisor's exit. `s6-supervise` holds an fcntl
//!   write lock on `supervise/lock` for its whole life; `F_GETLK` names
//!   the holder, a pidfd of that process becomes readable when it exits
//!   (its files, and so the lock, are released before that). The holder
//!   is checked again once the pidfd is open, so neither an exit nor a
//!   recycled pid in between is missed.
//! * [`Watch`]: a subscription where the caller may create entries in
//!   the service's `event/`; otherwise (the `event/` of a root-supervised
//!   service, which the user must never write: doc/design.md#events-never-granted) polling of the
//!   status files on a [`Backoff`] schedule (1 ms, doubling, at most
//!   `Backoff::MAX_MS`).
//! * [`wait`]: one `poll` over any of those, bounded by a [`Deadline`].
//!
//! Verified against Debian's s6 2.11.3.2: a subscriber made this way
//! receives `s` (and `u`) when the supervisor starts, `d` `D` after
//! `s6-svc -d`, `x` when `s6-svscanctl -an` prunes it; a 39-byte `ftrig1`
//! FIFO without a reader is removed at supervisor start, one with a reader
//! is kept.

use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::errno::Errno;
use nix::fcntl::{OFlag, openat};
use nix::sys::stat::{Mode, fstat};

use crate::error::{Error, Result};
use crate::fs::Dir;
use crate::fs::publish::{Rename, rename_at};
use crate::s6;

/// Event bytes written by s6-supervise that the waits act on; the others
/// (`s` started, `u` spawned, `d` died, `D` finish done, `U` ready) only
/// wake a wait, which then reads the status.
pub mod event {
    /// The supervisor gave up on the service (finish exited 125).
    pub const GAVE_UP: u8 = b'O';
    /// The supervisor is exiting.
    pub const EXIT: u8 = b'x';
}

/// Every subscriber FIFO's name starts with this.
const PREFIX: &str = "ftrig1:@";
/// Length of a subscriber FIFO's name: s6 notifies no other length.
const NAME_LEN: usize = 39;
/// Mode of a subscriber FIFO (s6's: anyone may notify, only we read).
const FIFO_MODE: u32 = 0o622;

/// When a wait ends.
#[derive(Debug, Clone, Copy)]
pub struct Deadline(Option<Instant>);

impl Deadline {
    /// `ms` milliseconds from now; 0 means no limit (as in s6's `-t 0`).
    pub fn after_ms(ms: u64) -> Deadline {
        Deadline(if ms == 0 { None } else { Instant::now().checked_add(Duration::from_millis(ms)) })
    }

    /// Never ends.
    pub fn never() -> Deadline {
        Deadline(None)
    }

    /// This deadline or `ms` milliseconds from now, whichever comes first.
    pub fn or_within_ms(&self, ms: u64) -> Deadline {
        let soon = Instant::now().checked_add(Duration::from_millis(ms));
        Deadline(match (self.0, soon) {
            (Some(at), Some(soon)) => Some(at.min(soon)),
            (at, soon) => at.or(soon),
        })
    }

    /// Whether it has passed.
    pub fn passed(&self) -> bool {
        self.0.is_some_and(|at| Instant::now() >= at)
    }

    /// The `poll` timeout: milliseconds left, rounded up; -1 for none.
    fn poll_ms(&self) -> libc::c_int {
        match self.0 {
            None => -1,
            Some(at) => {
                let left = at.saturating_duration_since(Instant::now());
                let ms = left.as_nanos().div_ceil(1_000_000);
                ms.min(libc::c_int::MAX as u128) as libc::c_int
            }
        }
    }
}

/// `poll(fds, POLLIN)` until one is readable (`Ok(true)`) or the deadline
/// passes (`Ok(false)`). An interrupted poll counts as a wake-up.
pub fn wait(fds: &[BorrowedFd<'_>], deadline: &Deadline) -> Result<bool> {
    wait_at_most(fds, deadline, None)
}

/// [`wait`], also waking (`Ok(true)`) after `cap_ms` when given.
fn wait_at_most(fds: &[BorrowedFd<'_>], deadline: &Deadline, cap_ms: Option<u64>) -> Result<bool> {
    if deadline.passed() {
        return Ok(false);
    }
    let mut set: Vec<libc::pollfd> = fds.iter().map(|fd| libc::pollfd { fd: fd.as_raw_fd(), events: libc::POLLIN, revents: 0 }).collect();
    let left = deadline.poll_ms();
    let timeout = match cap_ms {
        Some(cap) if left < 0 || cap < left as u64 => cap as libc::c_int,
        _ => left,
    };
    // SAFETY: `set` is a valid array of `set.len()` pollfd structures.
    let r = unsafe { libc::poll(set.as_mut_ptr(), set.len() as libc::nfds_t, timeout) };
    match Errno::result(r) {
        Ok(0) => Ok(!deadline.passed() && cap_ms.is_some()),
        Ok(_) | Err(Errno::EINTR) => Ok(true),
        Err(e) => Err(Error::sys("poll", "event sources", e)),
    }
}

/// How a wait on one service is woken up.
#[derive(Debug)]
pub enum Watch {
    /// By its events.
    Events(Subscription),
    /// By a timer: the caller may not create entries in its `event/` (the
    /// root supervisor's, never opened to the user), so the status files
    /// are read again on a [`Backoff`] schedule.
    Poll,
}

impl Watch {
    /// Subscribes to `svc`'s events where the caller may; polls where
    /// `event/` refuses it a new entry.
    pub fn new(svc: &Dir) -> Result<Watch> {
        match Subscription::new(svc) {
            Ok(sub) => Ok(Watch::Events(sub)),
            Err(e) if matches!(e.errno(), Some(Errno::EACCES | Errno::EPERM | Errno::EROFS)) => Ok(Watch::Poll),
            Err(e) => Err(e),
        }
    }

    /// Whether this watch polls.
    pub fn polls(&self) -> bool {
        matches!(self, Watch::Poll)
    }

    /// Appends the events received so far to `into` (none when polling).
    pub fn read_events(&self, into: &mut Vec<u8>) -> Result<()> {
        match self {
            Watch::Events(sub) => sub.read_events(into),
            Watch::Poll => Ok(()),
        }
    }
}

/// The polling schedule: the first poll after 1 ms, each next one after
/// twice as long, never more than `Backoff::MAX_MS` apart (a state
/// change is seen at most that late).
#[derive(Debug, Clone)]
pub struct Backoff {
    next_ms: u64,
}

impl Backoff {
    /// The longest interval between two polls.
    const MAX_MS: u64 = 100;

    /// A schedule that starts at 1 ms.
    pub fn new() -> Backoff {
        Backoff { next_ms: 1 }
    }

    fn step(&mut self) -> u64 {
        let now = self.next_ms;
        self.next_ms = (now * 2).min(Backoff::MAX_MS);
        now
    }
}

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff::new()
    }
}

/// Waits until one of `watches` has an event or, when one of them polls,
/// until its next poll is due (`Ok(true)`: read the state again), or the
/// deadline passes (`Ok(false)`).
pub fn wait_watches(watches: &[&Watch], backoff: &mut Backoff, deadline: &Deadline) -> Result<bool> {
    let fds: Vec<BorrowedFd<'_>> = watches
        .iter()
        .filter_map(|w| match w {
            Watch::Events(sub) => Some(sub.fd()),
            Watch::Poll => None,
        })
        .collect();
    let cap = watches.iter().any(|w| w.polls()).then(|| backoff.step());
    wait_at_most(&fds, deadline, cap)
}

/// A subscription to a service's events: a FIFO of ours in its `event/`,
/// removed on drop.
#[derive(Debug)]
pub struct Subscription {
    read: OwnedFd,
    /// Our own writer: the FIFO never reads as EOF.
    _write: OwnedFd,
    event: Dir,
    name: OsString,
}

impl Subscription {
    /// Subscribes to the events of the service directory `svc`: makes
    /// `event/.ftrig1:@<stamp>:<random>` (mode 0622), opens it for reading
    /// then writing, renames it without the dot.
    pub fn new(svc: &Dir) -> Result<Subscription> {
        let event = svc.open_dir_search(OsStr::new(s6::EVENT))?;
        for _ in 0..8 {
            let name = fifo_name()?;
            let staging = OsString::from(format!(".{name}"));
            if !event.mkfifo_at(&staging, FIFO_MODE)? {
                continue; // a name already taken: draw another
            }
            match open_pair(&event, &staging) {
                Ok((read, write)) => {
                    let name = OsString::from(name);
                    if let Err(e) = rename_at(&event, &staging, &event, &name, Rename::NoReplace) {
                        let _ = event.unlink_at(&staging);
                        return Err(e);
                    }
                    return Ok(Subscription { read, _write: write, event, name });
                }
                Err(e) => {
                    let _ = event.unlink_at(&staging);
                    return Err(e);
                }
            }
        }
        Err(Error::refused("subscribe to", event.path(), "no free FIFO name after 8 tries"))
    }

    /// The fd to [`wait`] on.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.read.as_fd()
    }

    /// Appends the events received so far to `into`, without blocking.
    pub fn read_events(&self, into: &mut Vec<u8>) -> Result<()> {
        let mut buf = [0u8; 256];
        loop {
            match nix::unistd::read(&self.read, &mut buf) {
                Ok(0) | Err(Errno::EAGAIN) => return Ok(()),
                Ok(n) => into.extend_from_slice(&buf[..n]),
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(Error::sys("read", self.event.child_path(&self.name), e)),
            }
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        // Unsubscribe; if this fails the next notifier removes the name
        // once our fds are closed.
        let _ = self.event.unlink_at(&self.name);
    }
}

/// Opens a FIFO we just made for reading (non-blocking: there is no
/// writer yet) and then for writing, and checks that it is a FIFO.
fn open_pair(dir: &Dir, name: &OsStr) -> Result<(OwnedFd, OwnedFd)> {
    let path = || dir.child_path(name);
    let base = OFlag::O_NONBLOCK | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let read = openat(dir.fd(), name, OFlag::O_RDONLY | base, Mode::empty()).map_err(|e| Error::sys("open", path(), e))?;
    let st = fstat(&read).map_err(|e| Error::sys("stat", path(), e))?;
    if st.st_mode & libc::S_IFMT != libc::S_IFIFO {
        return Err(Error::refused("subscribe to", path(), "not a FIFO"));
    }
    // Ours, just made: anything else was swapped in (by whoever else may
    // write `event/`; a hard link to someone's FIFO) and is not chmodded.
    #[allow(clippy::unnecessary_cast)]
    if st.st_uid != nix::unistd::geteuid().as_raw() || st.st_nlink as u64 != 1 {
        return Err(Error::refused("subscribe to", path(), "changed while subscribing"));
    }
    // Exact, whatever the umask.
    nix::sys::stat::fchmod(&read, Mode::from_bits_truncate(FIFO_MODE)).map_err(|e| Error::sys("chmod", path(), e))?;
    let write = openat(dir.fd(), name, OFlag::O_WRONLY | base, Mode::empty()).map_err(|e| Error::sys("open", path(), e))?;
    Ok((read, write))
}

/// `ftrig1:@` + a TAI64N-shaped stamp (24 hex digits) + `:` + 6 random
/// characters: 39 bytes, the only length s6 notifies.
fn fifo_name() -> Result<String> {
    const OK: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    let mut rnd = [0u8; 6];
    // SAFETY: the buffer is valid for its length.
    let r = unsafe { libc::getrandom(rnd.as_mut_ptr().cast(), rnd.len(), 0) };
    if r != rnd.len() as isize {
        // No entropy call (old kernel, seccomp): the clock's low bits and
        // our pid still make a collision unlikely, and mkfifo refuses one.
        let mix = now.subsec_nanos() ^ std::process::id().rotate_left(16);
        rnd = [mix as u8, (mix >> 6) as u8, (mix >> 12) as u8, (mix >> 18) as u8, (mix >> 24) as u8, std::process::id() as u8];
    }
    let tail: String = rnd.iter().map(|b| OK[(b & 63) as usize] as char).collect();
    let name = format!("{PREFIX}{:016x}{:08x}:{tail}", (1u64 << 62) + now.as_secs(), now.subsec_nanos());
    debug_assert_eq!(name.len(), NAME_LEN);
    Ok(name)
}

/// A watch on the supervisor of a service directory: who holds its
/// `supervise/lock`, and a pidfd that [`wait`] wakes on when that process
/// exits. The lock goes with the process (it is released when the
/// supervisor's files are closed, before the kernel reports the exit).
///
/// A pidfd rather than inotify on the lock file: closing an inotify
/// instance waits for a kernel grace period (about 20 ms measured here),
/// which would be most of an unregister's time.
#[derive(Debug)]
pub struct LockWatch {
    lock: OwnedFd,
    path: std::path::PathBuf,
}

impl LockWatch {
    /// Watches `svc/supervise/lock`; `None` when there is none (no
    /// supervisor ever ran there).
    pub fn new(svc: &Dir) -> Result<Option<LockWatch>> {
        let sup = match svc.open_dir_search(OsStr::new(s6::SUPERVISE)) {
            Ok(d) => d,
            Err(e) if e.errno() == Some(Errno::ENOENT) => return Ok(None),
            Err(e) => return Err(e),
        };
        let path = sup.child_path(OsStr::new(s6::LOCK));
        let flags = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC;
        match openat(sup.fd(), s6::LOCK, flags, Mode::empty()) {
            Ok(lock) => Ok(Some(LockWatch { lock, path })),
            Err(Errno::ENOENT) => Ok(None),
            Err(e) => Err(Error::sys("open", &path, e)),
        }
    }

    /// Whether a supervisor holds the lock now.
    pub fn held(&self) -> Result<bool> {
        Ok(self.holder()?.is_some())
    }

    /// The pid holding the lock (`fcntl(F_GETLK)`), if any.
    fn holder(&self) -> Result<Option<libc::pid_t>> {
        // SAFETY: a zeroed flock is a valid argument; the kernel fills it in.
        let mut lk: libc::flock = unsafe { std::mem::zeroed() };
        lk.l_type = libc::F_RDLCK as libc::c_short;
        lk.l_whence = libc::SEEK_SET as libc::c_short;
        // SAFETY: valid fd and a valid pointer to a flock.
        let r = unsafe { libc::fcntl(self.lock.as_raw_fd(), libc::F_GETLK, &mut lk) };
        Errno::result(r).map_err(|e| Error::sys("check lock", &self.path, e))?;
        Ok((lk.l_type != libc::F_UNLCK as libc::c_short).then_some(lk.l_pid))
    }

    /// A pidfd of the lock's holder, readable once it has exited; `None`
    /// when the lock is free. The holder is checked again after the
    /// pidfd is opened, so a recycled pid is never waited on.
    pub fn arm(&self) -> Result<Option<OwnedFd>> {
        for _ in 0..8 {
            let Some(pid) = self.holder()? else { return Ok(None) };
            // SAFETY: plain syscall; the fd it returns is ours alone.
            let r = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
            let fd = match Errno::result(r) {
                // SAFETY: a fresh fd owned by nobody else.
                Ok(fd) => unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) },
                // Exited between the two calls: look again.
                Err(Errno::ESRCH) => continue,
                Err(e) => return Err(Error::sys("watch the holder of", &self.path, e)),
            };
            if self.holder()? == Some(pid) {
                return Ok(Some(fd));
            }
        }
        Err(Error::refused("watch the holder of", &self.path, "the lock keeps changing hands"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifo_names_are_the_length_s6_notifies() {
        let a = fifo_name().unwrap();
        let b = fifo_name().unwrap();
        assert_eq!(a.len(), NAME_LEN);
        assert!(a.starts_with("ftrig1:@4000000"), "{a}");
        assert_eq!(a.as_bytes()[32], b':');
        assert!(!a.contains('/'));
        assert_ne!(a, b);
    }

    #[test]
    fn the_backoff_doubles_up_to_its_bound() {
        let mut b = Backoff::new();
        let steps: Vec<u64> = (0..10).map(|_| b.step()).collect();
        assert_eq!(steps, [1, 2, 4, 8, 16, 32, 64, 100, 100, 100]);
        // Polling wakes at each step, and not past the deadline.
        let d = Deadline::after_ms(30);
        let mut b = Backoff::new();
        let mut wakes = 0;
        while wait_watches(&[&Watch::Poll], &mut b, &d).unwrap() {
            wakes += 1;
        }
        // (1 + 2 + 4 + 8 ms fit in 30; how many happen depends on the load.)
        assert!((1..=5).contains(&wakes), "{wakes}");
        assert!(d.passed(), "returns false only once the deadline has passed");
    }

    #[test]
    fn deadlines() {
        assert!(!Deadline::never().passed());
        assert_eq!(Deadline::never().poll_ms(), -1);
        assert!(!Deadline::after_ms(0).passed(), "0 is no limit");
        let d = Deadline::after_ms(50);
        assert!((1..=50).contains(&d.poll_ms()));
        let gone = Deadline(Some(Instant::now()));
        assert!(gone.passed());
        assert!(!wait(&[], &gone).unwrap());
    }
}

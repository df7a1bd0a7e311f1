//! Reading a service's state the way s6-svstat does: `supervise/lock`
//! tells whether a supervisor runs, `supervise/status` (35 bytes) what the
//! service is doing, `down` whether it is normally down.

use std::ffi::OsStr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::path::Path;
use std::time::Duration;

use nix::errno::Errno;
use nix::fcntl::{OFlag, openat};
use nix::sys::stat::Mode;

use crate::error::{Error, Result};
use crate::fs::Dir;
use crate::s6;

/// Size of `supervise/status` in every s6 release that writes it.
pub const STATUS_LEN: usize = 35;

/// TAI64 labels count from 2^62; s6 (skalibs' default build) stamps TAI,
/// which is 37 s ahead of Unix time since 2017.
const TAI64_BASE: u64 = 1 << 62;
const TAI_MINUS_UNIX: i64 = 37;

/// A decoded `supervise/status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status {
    /// Unix time (seconds) of the last up/down transition.
    pub since: i64,
    /// Its nanoseconds.
    pub since_nanos: u32,
    /// Unix time (seconds) of the last readiness change.
    pub ready_since: i64,
    /// Its nanoseconds.
    pub ready_since_nanos: u32,
    /// The service's pid, 0 when down.
    pub pid: u64,
    /// Raw wait status of the last death.
    pub wstat: u16,
    pub paused: bool,
    /// `finish` is running.
    pub finishing: bool,
    pub want_up: bool,
    pub ready: bool,
}

/// How the last run ended, from the wait status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Death {
    Exited(u8),
    Signaled(u8),
}

impl Status {
    /// Decodes the 35 bytes of `supervise/status`; `None` for any other size.
    pub fn decode(b: &[u8]) -> Option<Status> {
        if b.len() != STATUS_LEN {
            return None;
        }
        let be64 = |at: usize| u64::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3], b[at + 4], b[at + 5], b[at + 6], b[at + 7]]);
        let be32 = |at: usize| u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
        let unix = |label: u64| label.wrapping_sub(TAI64_BASE) as i64 - TAI_MINUS_UNIX;
        let flags = b[34];
        Some(Status {
            since: unix(be64(0)),
            since_nanos: be32(8),
            ready_since: unix(be64(12)),
            ready_since_nanos: be32(20),
            pid: be64(24),
            wstat: u16::from_be_bytes([b[32], b[33]]),
            paused: flags & 1 != 0,
            finishing: flags & 2 != 0,
            want_up: flags & 4 != 0,
            ready: flags & 8 != 0,
        })
    }

    /// Up means a live pid and no finish running (s6-svstat's rule).
    pub fn is_up(&self) -> bool {
        self.pid != 0 && !self.finishing
    }

    /// Ready as s6-svstat -o ready reports it: only an up service is ready.
    pub fn is_ready(&self) -> bool {
        self.is_up() && self.ready
    }

    /// How the previous run ended.
    pub fn death(&self) -> Death {
        let w = self.wstat as i32;
        if libc::WIFSIGNALED(w) { Death::Signaled(libc::WTERMSIG(w) as u8) } else { Death::Exited(libc::WEXITSTATUS(w) as u8) }
    }

    /// Whole seconds spent in the current up/down state at `now` (Unix).
    pub fn seconds(&self, now: i64) -> i64 {
        (now - self.since).max(0)
    }

    /// Whole seconds in the current up/down state at `now` (time since the
    /// Unix epoch), as s6-svstat counts them: the difference taken with
    /// nanoseconds, then truncated; a stamp in the future counts as now.
    pub fn updown_for(&self, now: Duration) -> u64 {
        whole_seconds(self.since, self.since_nanos, now)
    }

    /// Whole seconds since the last readiness change, counted the same way.
    pub fn ready_for(&self, now: Duration) -> u64 {
        whole_seconds(self.ready_since, self.ready_since_nanos, now)
    }

    /// The exit code of the last run when it exited while down, as
    /// `s6-svstat -o exitcode` reports it (`None` is its -1).
    pub fn exit_code(&self) -> Option<u8> {
        match (self.is_up(), self.death()) {
            (false, Death::Exited(c)) => Some(c),
            _ => None,
        }
    }

    /// The signal that killed the last run when down (`-o signum`).
    pub fn signal(&self) -> Option<u8> {
        match (self.is_up(), self.death()) {
            (false, Death::Signaled(n)) => Some(n),
            _ => None,
        }
    }

    /// The line `s6-svstat DIR` prints (its "legacy" format, as s6 2.11
    /// prints it: no pgid), without the newline. `normally_up`: no `down`
    /// file. `now`: time since the Unix epoch.
    pub fn human(&self, normally_up: bool, now: Duration) -> String {
        let up = self.is_up();
        let mut out = if up {
            format!("up (pid {}) ", self.pid)
        } else {
            match self.death() {
                Death::Signaled(n) => format!("down (signal {}) ", signal_name(n)),
                Death::Exited(c) => format!("down (exitcode {c}) "),
            }
        };
        out.push_str(&format!("{} seconds", self.updown_for(now)));
        let suffixes = [
            (up && !normally_up, ", normally down"),
            (!up && normally_up, ", normally up"),
            (up && self.paused, ", paused"),
            (!up && self.want_up, ", want up"),
            (up && !self.want_up, ", want down"),
        ];
        for (on, text) in suffixes {
            if on {
                out.push_str(text);
            }
        }
        if self.ready {
            out.push_str(&format!(", ready {} seconds", self.ready_for(now)));
        }
        out
    }
}

/// `SIGTERM` for 15: the name s6-svstat prints; the number when the
/// signal has no name here.
pub fn signal_name(n: u8) -> String {
    match nix::sys::signal::Signal::try_from(n as i32) {
        Ok(sig) => sig.as_str().to_string(),
        Err(_) => n.to_string(),
    }
}

/// Whole seconds from a TAI64N-derived stamp to `now`, 0 if in the future.
fn whole_seconds(secs: i64, nanos: u32, now: Duration) -> u64 {
    let stamp = secs as i128 * 1_000_000_000 + nanos as i128;
    let now = now.as_nanos() as i128;
    ((now - stamp).max(0) / 1_000_000_000) as u64
}

/// Whether a supervisor holds `supervise/lock` of `svc`.
pub fn supervised(svc: &Dir) -> Result<bool> {
    let sup = match svc.open_dir_search(OsStr::new(s6::SUPERVISE)) {
        Ok(d) => d,
        Err(e) if e.errno() == Some(Errno::ENOENT) => return Ok(false),
        Err(e) => return Err(e),
    };
    let path = sup.child_path(OsStr::new(s6::LOCK));
    let fd = match openat(sup.fd(), s6::LOCK, OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC, Mode::empty()) {
        Ok(fd) => fd,
        Err(Errno::ENOENT) => return Ok(false),
        Err(e) => return Err(Error::sys("open", &path, e)),
    };
    lock_held(fd.as_fd(), &path)
}

/// `fcntl(fd, F_GETLK)`: whether another process holds a lock on the open
/// file `fd` (`path` names it in messages).
pub fn lock_held(fd: BorrowedFd<'_>, path: &Path) -> Result<bool> {
    // SAFETY: a zeroed flock is a valid argument; the kernel fills it in.
    let mut lk: libc::flock = unsafe { std::mem::zeroed() };
    lk.l_type = libc::F_RDLCK as libc::c_short;
    lk.l_whence = libc::SEEK_SET as libc::c_short;
    // SAFETY: valid fd and a valid pointer to a flock.
    let r = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETLK, &mut lk) };
    Errno::result(r).map_err(|e| Error::sys("check lock", path, e))?;
    Ok(lk.l_type != libc::F_UNLCK as libc::c_short)
}

/// Reads and decodes `supervise/status`; `None` if there is none yet.
pub fn read(svc: &Dir) -> Result<Option<Status>> {
    let sup = match svc.open_dir_search(OsStr::new(s6::SUPERVISE)) {
        Ok(d) => d,
        Err(e) if e.errno() == Some(Errno::ENOENT) => return Ok(None),
        Err(e) => return Err(e),
    };
    let path = || sup.child_path(OsStr::new(s6::STATUS));
    // Not read_file: s6-supervise replaces the file by a rename at every
    // change, so the inode we opened may have no name left by the time we
    // stat it (0 links). Its bytes are still a whole status, the previous
    // one, which is what s6-svstat would print too.
    let flags = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_NOCTTY | OFlag::O_CLOEXEC;
    let fd = match openat(sup.fd(), s6::STATUS, flags, Mode::empty()) {
        Ok(fd) => fd,
        Err(Errno::ENOENT) => return Ok(None),
        Err(e) => return Err(Error::sys("open", path(), e)),
    };
    let st = nix::sys::stat::fstat(&fd).map_err(|e| Error::sys("stat", path(), e))?;
    if st.st_mode & libc::S_IFMT != libc::S_IFREG {
        return Err(Error::refused("read", path(), "not a regular file"));
    }
    // One byte more than a status: a bigger file is not one.
    let mut buf = [0u8; STATUS_LEN + 1];
    let mut len = 0;
    while len < buf.len() {
        match nix::unistd::read(&fd, &mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(Error::sys("read", path(), e)),
        }
    }
    Status::decode(&buf[..len]).map(Some).ok_or_else(|| Error::refused("decode", path(), format!("{len} bytes instead of {STATUS_LEN}")))
}

/// Whether the service is normally down (a `down` file exists).
pub fn normally_down(svc: &Dir) -> Result<bool> {
    Ok(svc.stat_at(OsStr::new(s6::DOWN))?.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    // Recorded from s6 2.11.3.2: a service that exited 3, wanted down, ready flag set.
    const EXITED_3: [u8; 35] = [
        0x40, 0, 0, 0, 0x6b, 0x07, 0xfe, 0xce, 0x1a, 0x74, 0xed, 0xd5, 0x40, 0, 0, 0, 0x6b, 0x07, 0xfe, 0xce, 0x1a, 0x7c, 0x8d, 0xc6, 0, 0,
        0, 0, 0, 0, 0, 0, 0x03, 0x00, 0x08,
    ];

    #[test]
    fn decodes_a_recorded_status() {
        let s = Status::decode(&EXITED_3).unwrap();
        assert_eq!(s.since, 0x6b07fece - 37);
        assert_eq!((s.pid, s.want_up, s.finishing, s.paused, s.ready), (0, false, false, false, true));
        assert_eq!(s.death(), Death::Exited(3));
        assert!(!s.is_up() && !s.is_ready());
        assert_eq!(s.seconds(s.since + 5), 5);
        assert_eq!(s.seconds(s.since - 5), 0);
    }

    #[test]
    fn up_needs_a_pid_and_no_finish_running() {
        let mut b = EXITED_3;
        b[24..32].copy_from_slice(&4242u64.to_be_bytes());
        b[34] = 4 | 8;
        let s = Status::decode(&b).unwrap();
        assert!(s.is_up() && s.is_ready() && s.want_up);
        b[34] |= 2;
        assert!(!Status::decode(&b).unwrap().is_up());
        b[32..34].copy_from_slice(&(libc::SIGTERM as u16).to_be_bytes());
        assert_eq!(Status::decode(&b).unwrap().death(), Death::Signaled(libc::SIGTERM as u8));
    }

    #[test]
    fn the_human_line_is_s6_svstats() {
        let s = Status::decode(&EXITED_3).unwrap();
        let at = |secs: i64, nanos: u32| Duration::new(secs as u64, nanos);
        // 0x1a74edd5 ns into the second: 1.2 s later is 1 whole second.
        assert_eq!(s.since_nanos, 0x1a74edd5);
        let now = at(s.since + 1, 0x1a74edd5 + 200_000_000);
        assert_eq!(s.human(true, now), "down (exitcode 3) 1 seconds, normally up, ready 1 seconds");
        assert_eq!(s.human(false, at(s.since + 1, 0)), "down (exitcode 3) 0 seconds, ready 0 seconds");
        assert_eq!(s.human(false, at(s.since - 9, 0)), "down (exitcode 3) 0 seconds, ready 0 seconds", "future stamp");
        assert_eq!((s.exit_code(), s.signal()), (Some(3), None));
        let mut b = EXITED_3;
        b[24..32].copy_from_slice(&77u64.to_be_bytes());
        b[34] = 1;
        let up = Status::decode(&b).unwrap();
        assert_eq!(up.human(false, at(s.since + 5, 0x1a74edd5)), "up (pid 77) 5 seconds, normally down, paused, want down");
        assert_eq!((up.exit_code(), up.signal()), (None, None));
        b[24..32].copy_from_slice(&0u64.to_be_bytes());
        b[32..34].copy_from_slice(&(libc::SIGKILL as u16).to_be_bytes());
        b[34] = 4;
        let killed = Status::decode(&b).unwrap();
        assert_eq!(killed.human(true, at(s.since + 2, 0x1a74edd5)), "down (signal SIGKILL) 2 seconds, normally up, want up");
        assert_eq!(killed.signal(), Some(libc::SIGKILL as u8));
        assert_eq!(signal_name(15), "SIGTERM");
        assert_eq!(signal_name(200), "200");
    }

    #[test]
    fn other_sizes_are_not_a_status() {
        assert_eq!(Status::decode(&EXITED_3[..34]), None);
        assert_eq!(Status::decode(&[0; 36]), None);
    }
}

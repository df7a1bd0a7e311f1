//! Reading a service's state the way s6-svstat does: `supervise/lock`
//! tells whether a supervisor runs, `supervise/status` (35 bytes) what the
//! service is doing, `down` whether it is normally down.

use std::ffi::OsStr;
use std::os::fd::AsRawFd;

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
    /// Unix time (seconds) of the last readiness change.
    pub ready_since: i64,
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
        let be64 = |at: usize| u64::from_be_bytes(b[at..at + 8].try_into().expect("8 bytes"));
        let unix = |label: u64| label.wrapping_sub(TAI64_BASE) as i64 - TAI_MINUS_UNIX;
        let flags = b[34];
        Some(Status {
            since: unix(be64(0)),
            ready_since: unix(be64(12)),
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
}

/// Whether a supervisor holds `supervise/lock` of `svc`.
pub fn supervised(svc: &Dir) -> Result<bool> {
    let sup = match svc.open_dir(OsStr::new(s6::SUPERVISE)) {
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
    // SAFETY: a zeroed flock is a valid argument; the kernel fills it in.
    let mut lk: libc::flock = unsafe { std::mem::zeroed() };
    lk.l_type = libc::F_RDLCK as libc::c_short;
    lk.l_whence = libc::SEEK_SET as libc::c_short;
    // SAFETY: valid fd and a valid pointer to a flock.
    let r = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETLK, &mut lk) };
    Errno::result(r).map_err(|e| Error::sys("check lock", &path, e))?;
    Ok(lk.l_type != libc::F_UNLCK as libc::c_short)
}

/// Reads and decodes `supervise/status`; `None` if there is none yet.
pub fn read(svc: &Dir) -> Result<Option<Status>> {
    let sup = match svc.open_dir(OsStr::new(s6::SUPERVISE)) {
        Ok(d) => d,
        Err(e) if e.errno() == Some(Errno::ENOENT) => return Ok(None),
        Err(e) => return Err(e),
    };
    let Some(bytes) = sup.read_file(OsStr::new(s6::STATUS), STATUS_LEN as u64)? else { return Ok(None) };
    Status::decode(&bytes).map(Some).ok_or_else(|| {
        Error::refused("decode", sup.child_path(OsStr::new(s6::STATUS)), format!("{} bytes instead of {STATUS_LEN}", bytes.len()))
    })
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
    fn other_sizes_are_not_a_status() {
        assert_eq!(Status::decode(&EXITED_3[..34]), None);
        assert_eq!(Status::decode(&[0; 36]), None);
    }
}

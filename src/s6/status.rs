//! Reading a service's state the way s6-svstat does: `supervise/lock`
//! tells whether a supervisor runs, `supervise/status` what the service is
//! doing, `down` whether it is normally down.
//!
//! `supervise/status` has two layouts, told apart by their exact size: 35
//! bytes (s6 2.11, 2.12, 2.14, 2.15) and 43 bytes (s6 2.13.x, which adds
//! the process group). s6's own readers read 35 bytes whatever the file
//! holds; a file of any other size is refused here, with its real size.

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

/// Size of `supervise/status` in s6 2.11, 2.12, 2.14 and 2.15: stamp
/// 0–11, ready stamp 12–23, pid 24–31, wait status 32–33, flags 34.
const STATUS_LEN: usize = 35;

/// Size of `supervise/status` in s6 2.13.x: pid 24–31, pgid 32–39, wait
/// status 40–41, flags 42.
const STATUS_LEN_PGID: usize = 43;

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
    /// Its process group: the file's in s6 2.13.x, else the pid (run is a
    /// session leader). 0 when down.
    pub pgid: u64,
    /// Raw wait status of the last death.
    pub wstat: u16,
    /// Stopped by `s6-svc -p`. Never set for a service not started yet.
    pub paused: bool,
    /// Never spawned since its supervisor started (s6 2.13.2.0 and later
    /// write this as pid 0 with the paused flag; older ones cannot say).
    pub not_started: bool,
    /// `finish` is running.
    pub finishing: bool,
    /// The supervisor wants the service up (`s6-svc -u`, or no `down` file).
    pub want_up: bool,
    /// The service notified readiness since it was last spawned.
    pub ready: bool,
}

/// How the last run ended, from the wait status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Death {
    /// `run` exited with this code.
    Exited(u8),
    /// `run` was killed by this signal.
    Signaled(u8),
}

impl Status {
    /// Decodes `supervise/status` of either layout; `None` for any other
    /// size.
    pub fn decode(b: &[u8]) -> Option<Status> {
        let (wstat_at, flags_at) = match b.len() {
            STATUS_LEN => (32, 34),
            STATUS_LEN_PGID => (40, 42),
            _ => return None,
        };
        let be64 = |at: usize| u64::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3], b[at + 4], b[at + 5], b[at + 6], b[at + 7]]);
        let be32 = |at: usize| u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
        let unix = |label: u64| label.wrapping_sub(TAI64_BASE) as i64 - TAI_MINUS_UNIX;
        let pid = be64(24);
        let flags = b[flags_at];
        let paused_flag = flags & 1 != 0;
        Some(Status {
            since: unix(be64(0)),
            since_nanos: be32(8),
            ready_since: unix(be64(12)),
            ready_since_nanos: be32(20),
            pid,
            pgid: if b.len() == STATUS_LEN_PGID { be64(32) } else { pid },
            wstat: u16::from_be_bytes([b[wstat_at], b[wstat_at + 1]]),
            paused: paused_flag && pid != 0,
            not_started: paused_flag && pid == 0,
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

    /// Whole seconds since the last readiness change, counted the same way
    /// (whether or not the service is ready, as `s6-svstat -o readyfor`).
    pub fn ready_for(&self, now: Duration) -> u64 {
        whole_seconds(self.ready_since, self.ready_since_nanos, now)
    }

    /// `s6-svstat -o updownsince`: the stamp as an external TAI64N label
    /// (`@` and 24 hex digits), `now` in its place if it is in the future.
    pub fn updown_since(&self, now: Duration) -> String {
        let stamp = self.since as i128 * 1_000_000_000 + self.since_nanos as i128;
        if stamp > now.as_nanos() as i128 {
            tai64n_label(now.as_secs() as i64, now.subsec_nanos())
        } else {
            tai64n_label(self.since, self.since_nanos)
        }
    }

    /// `s6-svstat -o readysince`.
    pub fn ready_since_label(&self) -> String {
        tai64n_label(self.ready_since, self.ready_since_nanos)
    }

    /// `s6-svstat -o pgid` (`None` is its -1).
    pub fn process_group(&self) -> Option<u64> {
        (self.pgid != 0).then_some(self.pgid)
    }

    /// The exit code of the last run when it exited while down, as
    /// `s6-svstat -o exitcode` reports it (`None` is its -1). A service
    /// not started yet has none.
    pub fn exit_code(&self) -> Option<u8> {
        match (self.is_up() || self.not_started, self.death()) {
            (false, Death::Exited(c)) => Some(c),
            _ => None,
        }
    }

    /// The signal that killed the last run when down (`-o signum`).
    pub fn signal(&self) -> Option<u8> {
        match (self.is_up() || self.not_started, self.death()) {
            (false, Death::Signaled(n)) => Some(n),
            _ => None,
        }
    }

    /// The line `s6-svstat DIR` prints, in s6 2.15's words (`up (pid N
    /// pgid N)`, `down (not started yet)`), without the newline, whichever
    /// s6 wrote the file. `normally_up`: no `down` file. `now`: time since
    /// the Unix epoch.
    pub fn human(&self, normally_up: bool, now: Duration) -> String {
        let up = self.is_up();
        let mut out = if up {
            format!("up (pid {} pgid {}) ", self.pid, self.pgid)
        } else if self.not_started {
            // s6 2.15 prints no duration and no readiness here, and keeps
            // the space that precedes them.
            "down (not started yet) ".to_string()
        } else {
            match self.death() {
                Death::Signaled(n) => format!("down (signal {}) ", signal_name(n)),
                Death::Exited(c) => format!("down (exitcode {c}) "),
            }
        };
        if !self.not_started {
            out.push_str(&format!("{} seconds", self.updown_for(now)));
        }
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
        if self.ready && !self.not_started {
            out.push_str(&format!(", ready {} seconds", self.ready_for(now)));
        }
        out
    }
}

/// The external TAI64N label of a Unix time: `@`, then the TAI64 label and
/// the nanoseconds in hex (skalibs' timestamp format).
fn tai64n_label(unix_secs: i64, nanos: u32) -> String {
    let label = ((unix_secs + TAI_MINUS_UNIX) as u64).wrapping_add(TAI64_BASE);
    format!("@{label:016x}{nanos:08x}")
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
fn lock_held(fd: BorrowedFd<'_>, path: &Path) -> Result<bool> {
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
    // One byte more than the bigger layout: a bigger file is neither.
    let mut buf = [0u8; STATUS_LEN_PGID + 1];
    let mut len = 0;
    while len < buf.len() {
        match nix::unistd::read(&fd, &mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(Error::sys("read", path(), e)),
        }
    }
    Status::decode(&buf[..len]).map(Some).ok_or_else(|| {
        // Past what was read, the size is the inode's own.
        let size = if len == buf.len() { (st.st_size as u64).max(len as u64) } else { len as u64 };
        Error::undecodable("decode", path(), format!("{size} bytes, neither {STATUS_LEN} nor {STATUS_LEN_PGID}"))
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
        assert_eq!(up.human(false, at(s.since + 5, 0x1a74edd5)), "up (pid 77 pgid 77) 5 seconds, normally down, paused, want down");
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
        for n in [0, 34, 36, 42, 44, 70] {
            assert_eq!(Status::decode(&vec![0; n]), None, "{n} bytes");
        }
    }

    /// 12-byte TAI64N stamps as s6 wrote them in the recordings below.
    const T0: [u8; 12] = [0x40, 0, 0, 0, 0x6b, 0x0c, 0x87, 0xb6, 0x17, 0x23, 0x08, 0x59];
    const T1: [u8; 12] = [0x40, 0, 0, 0, 0x6b, 0x0c, 0x87, 0xb6, 0x2b, 0x86, 0xdd, 0xeb];

    fn record(stamp: [u8; 12], ready: [u8; 12], words: &[u64], wstat: u16, flags: u8) -> Vec<u8> {
        let mut b = [stamp, ready].concat();
        for w in words {
            b.extend_from_slice(&w.to_be_bytes());
        }
        b.extend_from_slice(&wstat.to_be_bytes());
        b.push(flags);
        b
    }

    #[test]
    fn the_2_13_layout_has_a_pgid_between_pid_and_wait_status() {
        // Recorded from s6 2.13.1.0 (Debian trixie): a fresh supervisor of
        // a service with a down file, then the same service up.
        let fresh = record(T0, T0, &[0, 0], 0, 0x08);
        let up = record(T1, T0, &[0x13df, 0x13df], 0, 0x04);
        assert_eq!((fresh.len(), up.len()), (STATUS_LEN_PGID, STATUS_LEN_PGID));
        let s = Status::decode(&fresh).unwrap();
        assert_eq!((s.pid, s.pgid, s.process_group(), s.not_started, s.paused), (0, 0, None, false, false));
        assert_eq!((s.exit_code(), s.signal(), s.is_ready(), s.want_up), (Some(0), None, false, false));
        // What s6-svstat 2.13.1.0 printed for it (-o updownsince,readysince).
        assert_eq!(s.updown_since(Duration::from_secs(u32::MAX as u64)), "@400000006b0c87b617230859");
        assert_eq!(s.ready_since_label(), "@400000006b0c87b617230859");
        let at = Duration::new((s.since + 2) as u64, 0x17230859);
        assert_eq!(s.human(false, at), "down (exitcode 0) 2 seconds, ready 2 seconds");
        let u = Status::decode(&up).unwrap();
        assert_eq!((u.pid, u.pgid, u.process_group(), u.want_up, u.is_up()), (5087, 5087, Some(5087), true, true));
        assert_eq!(u.updown_since(Duration::from_secs(u32::MAX as u64)), "@400000006b0c87b62b86ddeb");
        assert_eq!(u.human(false, Duration::new(u.since as u64, 0x2b86ddeb)), "up (pid 5087 pgid 5087) 0 seconds, normally down");
        // The pgid is the file's, whatever the pid; the wait status and
        // flags are read after it.
        let other = record(T1, T0, &[77, 70], libc::SIGKILL as u16, 0x04 | 0x01);
        let o = Status::decode(&other).unwrap();
        assert_eq!((o.pid, o.pgid, o.paused, o.want_up, o.wstat), (77, 70, true, true, libc::SIGKILL as u16));
        assert!(o.human(true, Duration::new(o.since as u64, 0)).starts_with("up (pid 77 pgid 70) "));
        let down = record(T1, T0, &[0, 0], libc::SIGKILL as u16, 0x04);
        assert_eq!(Status::decode(&down).unwrap().signal(), Some(libc::SIGKILL as u8));
    }

    #[test]
    fn the_35_byte_layout_reports_the_pid_as_pgid() {
        // Recorded from s6 2.15.1.0 (Debian sid): the same service up.
        let up = record(T1, T0, &[0x1414], 0, 0x04);
        let u = Status::decode(&up).unwrap();
        assert_eq!((u.pid, u.pgid, u.process_group()), (0x1414, 0x1414, Some(0x1414)));
        assert_eq!(Status::decode(&EXITED_3).unwrap().process_group(), None);
    }

    #[test]
    fn not_started_yet_is_pid_0_with_the_paused_flag() {
        // Recorded from s6 2.15.1.0: a fresh supervisor of a service with a
        // down file (flags: paused, ready). s6-svstat printed
        // "down (not started yet) " and -o paused,exitcode,signal false -1 NA.
        let fresh = record(T0, T0, &[0], 0, 0x09);
        let s = Status::decode(&fresh).unwrap();
        assert!(s.not_started && !s.paused && !s.is_up() && !s.is_ready());
        assert_eq!((s.exit_code(), s.signal()), (None, None));
        let now = Duration::new((s.since + 3) as u64, 0);
        assert_eq!(s.human(false, now), "down (not started yet) ");
        assert_eq!(s.human(true, now), "down (not started yet) , normally up");
        // A paused service has a pid.
        let paused = record(T1, T0, &[42], 0, 0x05);
        let p = Status::decode(&paused).unwrap();
        assert!(p.paused && !p.not_started);
        assert_eq!(p.human(true, Duration::new(p.since as u64, 0x2b86ddeb)), "up (pid 42 pgid 42) 0 seconds, paused");
    }
}

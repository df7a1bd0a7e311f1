//! Sending commands to s6 the way s6-svc and s6-svscanctl do: bytes
//! written to a control FIFO that the supervisor keeps open for reading.

use std::ffi::OsStr;

use nix::errno::Errno;
use nix::fcntl::{OFlag, openat};
use nix::sys::stat::Mode;

use crate::error::{Error, Result};
use crate::fs::{Dir, Kind};
use crate::s6;

/// What became of a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sent {
    Delivered,
    /// No supervisor has the FIFO open (s6-svc's exit 102).
    NotListening,
}

/// Writes `cmds` to `<dir>/<sub>/control`, never blocking: with no reader
/// the non-blocking open fails with ENXIO and that is an answer, not an error.
fn send(dir: &Dir, sub: &str, cmds: &[u8]) -> Result<Sent> {
    let sub = match dir.open_dir_search(OsStr::new(sub)) {
        Ok(d) => d,
        Err(e) if e.errno() == Some(Errno::ENOENT) => return Ok(Sent::NotListening),
        Err(e) => return Err(e),
    };
    let path = sub.child_path(OsStr::new(s6::CONTROL));
    // Never open a regular file or device planted in place of the FIFO.
    match sub.stat_at(OsStr::new(s6::CONTROL))? {
        None => return Ok(Sent::NotListening),
        Some(st) if st.kind != Kind::Fifo => return Err(Error::refused("control", &path, crate::fs::dir_describe(st.kind))),
        Some(_) => {}
    }
    let flags = OFlag::O_WRONLY | OFlag::O_NONBLOCK | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let fd = match openat(sub.fd(), s6::CONTROL, flags, Mode::empty()) {
        Ok(fd) => fd,
        Err(Errno::ENXIO) => return Ok(Sent::NotListening),
        Err(e) => return Err(Error::sys("open", &path, e)),
    };
    // The name may have been swapped since the check (a hard link to a
    // root file, when root runs this): write only into a FIFO.
    let st = nix::sys::stat::fstat(&fd).map_err(|e| Error::sys("stat", &path, e))?;
    if st.st_mode & libc::S_IFMT != libc::S_IFIFO {
        return Err(Error::refused("control", &path, "changed into something other than a FIFO"));
    }
    match nix::unistd::write(&fd, cmds) {
        Ok(n) if n == cmds.len() => Ok(Sent::Delivered),
        Ok(_) => Err(Error::sys("write to", &path, Errno::EAGAIN)),
        Err(e) => Err(Error::sys("write to", &path, e)),
    }
}

/// `s6-svc`: one byte per command (`u`, `d`, `t`, `x`, …) to `supervise/control`.
pub fn svc(svc: &Dir, cmds: &[u8]) -> Result<Sent> {
    send(svc, s6::SUPERVISE, cmds)
}

/// `s6-svscanctl`: commands (`a`, `an`, …) to `.s6-svscan/control`.
pub fn svscanctl(scandir: &Dir, cmds: &[u8]) -> Result<Sent> {
    send(scandir, s6::SVSCAN_DIR, cmds)
}

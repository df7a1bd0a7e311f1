//! Directory and node handles: the one place that issues `*at` system calls.

use std::ffi::{CString, OsStr, OsString};
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, openat};
use nix::sys::stat::{FileStat, Mode, fstat, fstatat, mkdirat};
use nix::unistd::{Gid, Uid, UnlinkatFlags, fchownat, fsync, mkfifoat, unlinkat};

use crate::error::{Error, Result};

/// What an inode is, from its `st_mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File,
    Fifo,
    Symlink,
    /// Devices and sockets: never opened, never changed.
    Other,
}

/// The parts of `struct stat` the tools decide on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    pub kind: Kind,
    /// Permission bits including setuid, setgid and sticky (`st_mode & 07777`).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub nlink: u64,
    pub size: u64,
    pub dev: u64,
    pub ino: u64,
    pub ctime: (i64, i64),
}

impl Stat {
    fn from(st: FileStat) -> Stat {
        let kind = match st.st_mode & libc::S_IFMT {
            libc::S_IFDIR => Kind::Dir,
            libc::S_IFREG => Kind::File,
            libc::S_IFIFO => Kind::Fifo,
            libc::S_IFLNK => Kind::Symlink,
            _ => Kind::Other,
        };
        Stat {
            kind,
            mode: st.st_mode & 0o7777,
            uid: st.st_uid,
            gid: st.st_gid,
            nlink: st.st_nlink as u64,
            size: st.st_size as u64,
            dev: st.st_dev,
            ino: st.st_ino,
            ctime: (st.st_ctime, st.st_ctime_nsec),
        }
    }

    /// Same inode as `other`.
    pub fn same_inode(&self, other: &Stat) -> bool {
        self.dev == other.dev && self.ino == other.ino
    }
}

/// An open directory, named by the path it was reached through (for messages only).
#[derive(Debug)]
pub struct Dir {
    fd: OwnedFd,
    path: PathBuf,
}

/// Any inode pinned with `O_PATH|O_NOFOLLOW`: safe for FIFOs, devices and symlinks.
#[derive(Debug)]
pub struct Node {
    fd: OwnedFd,
    path: PathBuf,
    stat: Stat,
}

const DIR_FLAGS: OFlag = OFlag::O_RDONLY
    .union(OFlag::O_DIRECTORY)
    .union(OFlag::O_NOFOLLOW)
    .union(OFlag::O_CLOEXEC);

const PATH_FLAGS: OFlag = OFlag::O_PATH.union(OFlag::O_NOFOLLOW).union(OFlag::O_CLOEXEC);

/// A single path component: not empty, no `/`, not `.` or `..`.
fn component(name: &OsStr) -> Result<CString> {
    let b = name.as_bytes();
    if b.is_empty() || b == b"." || b == b".." || b.contains(&b'/') {
        return Err(Error::refused("use", Path::new(name), "not a single path component"));
    }
    CString::new(b).map_err(|_| Error::refused("use", Path::new(name), "contains a NUL byte"))
}

impl Dir {
    /// Opens an anchor: `path` is resolved normally up to its parent (the
    /// caller vouches for those components), its last component must be a
    /// real directory and is not followed.
    pub fn open(path: &Path) -> Result<Dir> {
        let (parent, last) = match (path.parent(), path.components().next_back()) {
            (Some(parent), Some(Component::Normal(last))) => (parent, last),
            // "/", "." or "..": nothing that could be a symlink.
            _ => return Dir::open_trusted(path),
        };
        let parent = if parent.as_os_str().is_empty() { Path::new(".") } else { parent };
        Dir::open_trusted(parent)?.open_dir(last).map(|mut d| {
            d.path = path.to_path_buf();
            d
        })
    }

    /// Opens a directory by path, following symlinks: only for paths that
    /// no unprivileged user can change (`/`, `/run`, `/etc`).
    pub fn open_trusted(path: &Path) -> Result<Dir> {
        let fd = openat(nix::fcntl::AT_FDCWD, path, OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC, Mode::empty())
            .map_err(|e| Error::sys("open", path, e))?;
        Ok(Dir { fd, path: path.to_path_buf() })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The path of an entry, for messages.
    pub fn child_path(&self, name: &OsStr) -> PathBuf {
        self.path.join(name)
    }

    pub fn stat(&self) -> Result<Stat> {
        fstat(&self.fd).map(Stat::from).map_err(|e| Error::sys("stat", &self.path, e))
    }

    /// `fstatat(dirfd, name, AT_SYMLINK_NOFOLLOW)`; `None` when absent.
    pub fn stat_at(&self, name: &OsStr) -> Result<Option<Stat>> {
        let c = component(name)?;
        match fstatat(&self.fd, c.as_c_str(), AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) => Ok(Some(Stat::from(st))),
            Err(Errno::ENOENT) => Ok(None),
            Err(e) => Err(Error::sys("stat", self.child_path(name), e)),
        }
    }

    /// Opens the subdirectory `name` without following it. A symlink or
    /// another type is refused with a message saying what it is.
    pub fn open_dir(&self, name: &OsStr) -> Result<Dir> {
        let c = component(name)?;
        let path = self.child_path(name);
        match openat(&self.fd, c.as_c_str(), DIR_FLAGS, Mode::empty()) {
            Ok(fd) => Ok(Dir { fd, path }),
            Err(Errno::ENOTDIR | Errno::ELOOP) => Err(self.wrong_type(name, "a directory")),
            Err(e) => Err(Error::sys("open", path, e)),
        }
    }

    /// Pins `name` with `O_PATH|O_NOFOLLOW` and stats the pinned inode.
    pub fn open_node(&self, name: &OsStr) -> Result<Node> {
        let c = component(name)?;
        let path = self.child_path(name);
        let fd = openat(&self.fd, c.as_c_str(), PATH_FLAGS, Mode::empty()).map_err(|e| Error::sys("open", &path, e))?;
        let stat = fstat(&fd).map(Stat::from).map_err(|e| Error::sys("stat", &path, e))?;
        Ok(Node { fd, path, stat })
    }

    /// The refusal for an entry that is not of the expected type.
    fn wrong_type(&self, name: &OsStr, expected: &str) -> Error {
        let what = match self.stat_at(name) {
            Ok(Some(st)) => describe(st.kind),
            _ => "not usable",
        };
        Error::refused("use", self.child_path(name), format!("{what}, expected {expected}"))
    }

    /// `mkdirat(dirfd, name, mode)`; the mode is later made exact by the
    /// caller, since the umask applies here. `Ok(false)` if `name` exists.
    pub fn mkdir_at(&self, name: &OsStr, mode: u32) -> Result<bool> {
        let c = component(name)?;
        match mkdirat(&self.fd, c.as_c_str(), Mode::from_bits_truncate(mode)) {
            Ok(()) => Ok(true),
            Err(Errno::EEXIST) => Ok(false),
            Err(e) => Err(Error::sys("mkdir", self.child_path(name), e)),
        }
    }

    /// `mkfifoat(dirfd, name, mode)`. `Ok(false)` if `name` exists.
    pub fn mkfifo_at(&self, name: &OsStr, mode: u32) -> Result<bool> {
        let c = component(name)?;
        match mkfifoat(&self.fd, c.as_c_str(), Mode::from_bits_truncate(mode)) {
            Ok(()) => Ok(true),
            Err(Errno::EEXIST) => Ok(false),
            Err(e) => Err(Error::sys("mkfifo", self.child_path(name), e)),
        }
    }

    /// `fchown(dirfd, uid, gid)` on this directory itself.
    pub fn chown(&self, uid: u32, gid: u32) -> Result<()> {
        nix::unistd::fchown(&self.fd, Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)))
            .map_err(|e| Error::sys("chown", &self.path, e))
    }

    /// `fchmod(dirfd, mode)` on this directory itself, all 12 bits exact.
    pub fn chmod(&self, mode: u32) -> Result<()> {
        nix::sys::stat::fchmod(&self.fd, Mode::from_bits_retain(mode)).map_err(|e| Error::sys("chmod", &self.path, e))
    }

    /// `unlinkat(dirfd, name, 0)`: removes a non-directory entry (a symlink
    /// itself, never its target).
    pub fn unlink_at(&self, name: &OsStr) -> Result<()> {
        let c = component(name)?;
        unlinkat(&self.fd, c.as_c_str(), UnlinkatFlags::NoRemoveDir).map_err(|e| Error::sys("unlink", self.child_path(name), e))
    }

    /// `unlinkat(dirfd, name, AT_REMOVEDIR)`: removes an empty directory.
    pub fn rmdir_at(&self, name: &OsStr) -> Result<()> {
        let c = component(name)?;
        unlinkat(&self.fd, c.as_c_str(), UnlinkatFlags::RemoveDir).map_err(|e| Error::sys("rmdir", self.child_path(name), e))
    }

    /// `fsync(dirfd)`: makes entries created or renamed here durable.
    pub fn sync(&self) -> Result<()> {
        fsync(&self.fd).map_err(|e| Error::sys("fsync", &self.path, e))
    }

    /// The names in this directory except `.` and `..`, at most `max`
    /// (more is a [`Cause::Limit`](crate::error::Cause::Limit) error).
    pub fn entries(&self, max: usize) -> Result<Vec<OsString>> {
        // A fresh open of "." gives an independent offset, so concurrent
        // listings of the same directory do not disturb each other.
        let fd = openat(&self.fd, c".", OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC, Mode::empty())
            .map_err(|e| Error::sys("open", &self.path, e))?;
        let mut dir = nix::dir::Dir::from_fd(fd).map_err(|e| Error::sys("open", &self.path, e))?;
        let mut names = Vec::new();
        for entry in dir.iter() {
            let entry = entry.map_err(|e| Error::sys("read directory", &self.path, e))?;
            let name = entry.file_name().to_bytes();
            if name == b"." || name == b".." {
                continue;
            }
            if names.len() == max {
                return Err(Error::limit("list", &self.path, format!("more than {max} entries")));
            }
            names.push(OsStr::from_bytes(name).to_os_string());
        }
        Ok(names)
    }

    /// Creates the regular file `name` (it must not exist), writes `data`,
    /// sets `mode` exactly and syncs it.
    pub fn create_file(&self, name: &OsStr, mode: u32, data: &[u8]) -> Result<()> {
        let c = component(name)?;
        let path = self.child_path(name);
        let flags = OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let fd = openat(&self.fd, c.as_c_str(), flags, Mode::from_bits_truncate(0o600)).map_err(|e| Error::sys("create", &path, e))?;
        let mut file = std::fs::File::from(fd);
        file.write_all(data).map_err(|e| Error::sys("write", &path, io_errno(&e)))?;
        nix::sys::stat::fchmod(&file, Mode::from_bits_retain(mode)).map_err(|e| Error::sys("chmod", &path, e))?;
        file.sync_all().map_err(|e| Error::sys("fsync", &path, io_errno(&e)))
    }

    /// Reads the regular file `name` as untrusted input: not followed if a
    /// symlink, never blocks on a FIFO, refused unless it is a regular file
    /// with one link and at most `cap` bytes. `Ok(None)` when absent.
    pub fn read_file(&self, name: &OsStr, cap: u64) -> Result<Option<Vec<u8>>> {
        let c = component(name)?;
        let path = self.child_path(name);
        let flags = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_NOCTTY | OFlag::O_CLOEXEC;
        let fd = match openat(&self.fd, c.as_c_str(), flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => return Ok(None),
            Err(Errno::ELOOP) => return Err(Error::refused("read", &path, "is a symlink")),
            Err(e) => return Err(Error::sys("open", &path, e)),
        };
        let st = fstat(&fd).map(Stat::from).map_err(|e| Error::sys("stat", &path, e))?;
        if st.kind != Kind::File {
            return Err(Error::refused("read", &path, format!("{}, expected a regular file", describe(st.kind))));
        }
        if st.nlink != 1 {
            return Err(Error::refused("read", &path, format!("has {} hard links", st.nlink)));
        }
        if st.size > cap {
            return Err(Error::refused("read", &path, format!("larger than {cap} bytes")));
        }
        // The file may grow while we read: never trust st_size alone.
        let mut data = Vec::with_capacity(st.size as usize);
        std::fs::File::from(fd)
            .take(cap + 1)
            .read_to_end(&mut data)
            .map_err(|e| Error::sys("read", &path, io_errno(&e)))?;
        if data.len() as u64 > cap {
            return Err(Error::refused("read", &path, format!("larger than {cap} bytes")));
        }
        Ok(Some(data))
    }

    /// The directory's fd, for `*at` calls the layer does not wrap.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl Node {
    pub fn stat(&self) -> &Stat {
        &self.stat
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Stats the pinned inode again (after a change).
    pub fn restat(&mut self) -> Result<&Stat> {
        self.stat = fstat(&self.fd).map(Stat::from).map_err(|e| Error::sys("stat", &self.path, e))?;
        Ok(&self.stat)
    }

    /// `fchownat(fd, "", uid, gid, AT_EMPTY_PATH)`: exactly the pinned inode
    /// (a symlink itself, never its target).
    pub fn chown(&self, uid: u32, gid: u32) -> Result<()> {
        fchownat(&self.fd, c"", Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)), AtFlags::AT_EMPTY_PATH)
            .map_err(|e| Error::sys("chown", &self.path, e))
    }

    /// Sets all 12 mode bits of the pinned inode. Symlinks have no mode on
    /// Linux and are refused.
    pub fn chmod(&self, mode: u32) -> Result<()> {
        if self.stat.kind == Kind::Symlink {
            return Err(Error::refused("chmod", &self.path, "is a symlink"));
        }
        chmod_pinned(self.fd.as_fd(), mode).map_err(|e| Error::sys("chmod", &self.path, e))
    }
}

/// `fchmodat2(fd, "", mode, AT_EMPTY_PATH)` (Linux 6.6), else chmod through
/// `/proc/self/fd/N`, which names the pinned inode and nothing else.
fn chmod_pinned(fd: BorrowedFd<'_>, mode: u32) -> std::result::Result<(), Errno> {
    // The generic syscall table gives fchmodat2 the same number everywhere;
    // libc lacks the constant on some musl targets.
    const SYS_FCHMODAT2: libc::c_long = 452;
    // SAFETY: plain syscall on a valid fd with a NUL-terminated empty path.
    let r = unsafe { libc::syscall(SYS_FCHMODAT2, fd.as_raw_fd(), c"".as_ptr(), mode as libc::c_uint, libc::AT_EMPTY_PATH) };
    match Errno::result(r) {
        Ok(_) => Ok(()),
        // Older kernels say ENOSYS; some seccomp profiles say EPERM.
        Err(Errno::ENOSYS | Errno::EPERM | Errno::EINVAL) => {
            let proc = CString::new(format!("/proc/self/fd/{}", fd.as_raw_fd())).expect("no NUL in a number");
            // SAFETY: valid C string.
            Errno::result(unsafe { libc::chmod(proc.as_ptr(), mode as libc::mode_t) }).map(drop)
        }
        Err(e) => Err(e),
    }
}

/// The errno inside an `io::Error` from our own fds.
pub(crate) fn io_errno(e: &std::io::Error) -> Errno {
    e.raw_os_error().map(Errno::from_raw).unwrap_or(Errno::EIO)
}

/// How a type reads in a message.
pub fn describe(kind: Kind) -> &'static str {
    match kind {
        Kind::Dir => "is a directory",
        Kind::File => "is a regular file",
        Kind::Fifo => "is a FIFO",
        Kind::Symlink => "is a symlink",
        Kind::Other => "is a device or socket",
    }
}

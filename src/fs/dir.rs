//! Directory and node handles: the one place that issues `*at` system calls.

use std::ffi::{CStr, CString, OsStr, OsString};
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, openat};
use nix::sys::stat::{FileStat, Mode, SFlag, fstat, fstatat, mkdirat, mknodat};
use nix::unistd::{Gid, Uid, UnlinkatFlags, fchownat, fsync, mkfifoat, unlinkat};

use crate::error::{Error, Result, Tag};
use crate::fs::Sync;

/// What an inode is, from its `st_mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A directory.
    Dir,
    /// A regular file.
    File,
    /// A named pipe.
    Fifo,
    /// A symbolic link (never followed).
    Symlink,
    /// Devices and sockets: never opened, never changed.
    Other,
}

/// The parts of `struct stat` the tools decide on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    /// The file type.
    pub kind: Kind,
    /// Permission bits including setuid, setgid and sticky (`st_mode & 07777`).
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Hard links.
    pub nlink: u64,
    /// Size in bytes.
    pub size: u64,
    /// Device, with `ino` the identity of the file.
    pub dev: u64,
    /// Inode number.
    pub ino: u64,
    /// Last status change (seconds, nanoseconds).
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
            // u64 on x86_64, u32 on some other targets.
            #[allow(clippy::unnecessary_cast)]
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

/// The mount an open inode is on: statx's `stx_mnt_id` (Linux 5.8+), or,
/// when the kernel does not give it, `st_dev`. A cross-filesystem guard
/// compares these, not `st_dev`: on an overlayfs whose layers span
/// filesystems without xino (`/run` under a plain `docker run`), a
/// non-directory reports its layer's `st_dev`, not the overlay's, while
/// its mount is the overlay's like every other entry's.
fn mount_of(fd: BorrowedFd<'_>, path: &Path) -> Result<u64> {
    // SAFETY: statx is all zeroes-valid plain data; the call gets a valid
    // fd, a NUL-terminated empty path and a buffer of the kernel's size.
    let mut stx: libc::statx = unsafe { std::mem::zeroed() };
    let rc = unsafe {
        libc::syscall(libc::SYS_statx, fd.as_raw_fd(), c"".as_ptr(), libc::AT_EMPTY_PATH, libc::STATX_MNT_ID, &mut stx as *mut libc::statx)
    };
    if rc == 0 && stx.stx_mask & libc::STATX_MNT_ID != 0 {
        return Ok(stx.stx_mnt_id);
    }
    if rc != 0 && Errno::last() != Errno::ENOSYS {
        return Err(Error::sys("stat", path, Errno::last()));
    }
    fstat(fd).map(|st| st.st_dev).map_err(|e| Error::sys("stat", path, e))
}

/// What tells one version of a file from another: its inode, size and
/// modification time. A rename changes none of them (it moves ctime), so a
/// file moved by an exchange is still recognised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Version {
    /// Device, with `ino` the identity of the file.
    pub dev: u64,
    /// Inode number.
    pub ino: u64,
    /// Size in bytes.
    pub size: u64,
    /// Last modification (seconds, nanoseconds).
    pub mtime: (i64, i64),
}

impl Version {
    fn from(st: &FileStat) -> Version {
        Version { dev: st.st_dev, ino: st.st_ino, size: st.st_size as u64, mtime: (st.st_mtime, st.st_mtime_nsec) }
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

const DIR_FLAGS: OFlag = OFlag::O_RDONLY.union(OFlag::O_DIRECTORY).union(OFlag::O_NOFOLLOW).union(OFlag::O_CLOEXEC);

const PATH_FLAGS: OFlag = OFlag::O_PATH.union(OFlag::O_NOFOLLOW).union(OFlag::O_CLOEXEC);

/// A single path component: not empty, no `/`, not `.` or `..`.
fn component(name: &OsStr) -> Result<CName> {
    let b = name.as_bytes();
    if b.is_empty() || b == b"." || b == b".." || b.contains(&b'/') {
        return Err(Error::refused("use", Path::new(name), "not a single path component"));
    }
    if b.contains(&0) {
        return Err(Error::refused("use", Path::new(name), "contains a NUL byte"));
    }
    // Names fit NAME_MAX (255) on Linux: no allocation per system call.
    if b.len() < COMPONENT_INLINE {
        let mut buf = [0u8; COMPONENT_INLINE];
        buf[..b.len()].copy_from_slice(b);
        return Ok(CName::Inline(buf, b.len() + 1));
    }
    CString::new(b).map(CName::Heap).map_err(|_| Error::refused("use", Path::new(name), "contains a NUL byte"))
}

/// Two checked components joined by `/`, as a C string (for
/// [`Dir::mkfifo_in`]; both parts are NUL-free already).
fn component_pair(joined: &[u8]) -> CName {
    if joined.len() < COMPONENT_INLINE {
        let mut buf = [0u8; COMPONENT_INLINE];
        buf[..joined.len()].copy_from_slice(joined);
        return CName::Inline(buf, joined.len() + 1);
    }
    CName::Heap(CString::new(joined).unwrap_or_default())
}

/// Bytes of a name kept on the stack, its NUL included.
const COMPONENT_INLINE: usize = 256;

/// A checked single path component as a C string.
// Big on purpose: it lives on the stack for the length of one call.
#[allow(clippy::large_enum_variant)]
enum CName {
    /// The bytes and the length including the terminating NUL.
    Inline([u8; COMPONENT_INLINE], usize),
    /// Longer than any Linux file name: the kernel will say ENAMETOOLONG.
    Heap(CString),
}

impl CName {
    fn as_c_str(&self) -> &CStr {
        match self {
            // The bytes were checked for NUL and one NUL follows them.
            CName::Inline(buf, len) => CStr::from_bytes_with_nul(&buf[..*len]).unwrap_or(c""),
            CName::Heap(c) => c.as_c_str(),
        }
    }

    fn as_ptr(&self) -> *const libc::c_char {
        self.as_c_str().as_ptr()
    }
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

    /// The path it was opened by (for messages; never used to reach it again).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The path of an entry, for messages.
    pub fn child_path(&self, name: &OsStr) -> PathBuf {
        // One allocation of the final size (`join` grows it twice).
        let mut path = PathBuf::with_capacity(self.path.as_os_str().len() + 1 + name.len());
        path.push(&self.path);
        path.push(name);
        path
    }

    /// fstat of the open directory.
    pub fn stat(&self) -> Result<Stat> {
        fstat(&self.fd).map(Stat::from).map_err(|e| Error::sys("stat", &self.path, e))
    }

    /// The mount this directory is on (see `mount_of`).
    pub fn mount_id(&self) -> Result<u64> {
        mount_of(self.fd.as_fd(), &self.path)
    }

    /// The [`Version`] of the entry `name` (not followed); `None` when absent.
    pub fn version_at(&self, name: &OsStr) -> Result<Option<Version>> {
        let c = component(name)?;
        match fstatat(&self.fd, c.as_c_str(), AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) => Ok(Some(Version::from(&st))),
            Err(Errno::ENOENT) => Ok(None),
            Err(e) => Err(Error::sys("stat", self.child_path(name), e)),
        }
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
        self.open_dir_if_present(name)?.ok_or_else(|| Error::sys("open", self.child_path(name), Errno::ENOENT))
    }

    /// [`Dir::open_dir`], with `Ok(None)` when `name` does not exist (no
    /// error is built for the expected case).
    pub fn open_dir_if_present(&self, name: &OsStr) -> Result<Option<Dir>> {
        let c = component(name)?;
        match openat(&self.fd, c.as_c_str(), DIR_FLAGS, Mode::empty()) {
            Ok(fd) => Ok(Some(Dir { fd, path: self.child_path(name) })),
            Err(Errno::ENOENT) => Ok(None),
            Err(Errno::ENOTDIR | Errno::ELOOP) => Err(self.wrong_type(name, "a directory")),
            Err(e) => Err(Error::sys("open", self.child_path(name), e)),
        }
    }

    /// Opens the subdirectory `name` for lookups only (`O_PATH`), without
    /// following it: search permission is enough (s6's `supervise/` at
    /// 0710 and `event/` at 03730 give the group no read). Its entries can
    /// be reached, created, renamed and removed through it, not listed.
    pub fn open_dir_search(&self, name: &OsStr) -> Result<Dir> {
        let c = component(name)?;
        let path = self.child_path(name);
        match openat(&self.fd, c.as_c_str(), PATH_FLAGS | OFlag::O_DIRECTORY, Mode::empty()) {
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
            Err(e) => Err(Error::sys("mkdir", self.child_path(name), e).tagged(Tag::Mkdir)),
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

    /// `mkfifoat(dirfd, "SUB/NAME", mode)`: a FIFO in the subdirectory `sub`
    /// without opening it. Two components in one call, so only for a
    /// directory nobody else can write (one the caller has just made for
    /// itself); anywhere else open `sub` with [`Dir::open_dir`] and use
    /// [`Dir::mkfifo_at`]. `Ok(false)` if it exists.
    pub fn mkfifo_in(&self, sub: &OsStr, name: &OsStr, mode: u32) -> Result<bool> {
        let (s, n) = (component(sub)?, component(name)?);
        let mut both = Vec::with_capacity(COMPONENT_INLINE * 2);
        both.extend_from_slice(s.as_c_str().to_bytes());
        both.push(b'/');
        both.extend_from_slice(n.as_c_str().to_bytes());
        let joined = component_pair(&both);
        match mkfifoat(&self.fd, joined.as_c_str(), Mode::from_bits_truncate(mode)) {
            Ok(()) => Ok(true),
            Err(Errno::EEXIST) => Ok(false),
            Err(e) => Err(Error::sys("mkfifo", self.child_path(sub).join(name), e)),
        }
    }

    /// `fchown(dirfd, uid, gid)` on this directory itself.
    pub fn chown(&self, uid: u32, gid: u32) -> Result<()> {
        nix::unistd::fchown(&self.fd, Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid))).map_err(|e| Error::sys("chown", &self.path, e))
    }

    /// `fchmod(dirfd, mode)` on this directory itself, all 12 bits exact.
    pub fn chmod(&self, mode: u32) -> Result<()> {
        nix::sys::stat::fchmod(&self.fd, Mode::from_bits_retain(mode)).map_err(|e| Error::sys("chmod", &self.path, e))
    }

    /// `unlinkat(dirfd, name, 0)`: removes a non-directory entry (a symlink
    /// itself, never its target). `Ok(false)` if `name` does not exist.
    pub fn unlink_at(&self, name: &OsStr) -> Result<bool> {
        let c = component(name)?;
        match unlinkat(&self.fd, c.as_c_str(), UnlinkatFlags::NoRemoveDir) {
            Ok(()) => Ok(true),
            Err(Errno::ENOENT) => Ok(false),
            Err(e) => Err(Error::sys("unlink", self.child_path(name), e)),
        }
    }

    /// Takes an exclusive `flock` on the regular file `name`, created empty
    /// (mode 0644) if absent, waiting while another process holds it. The
    /// lock lasts as long as the returned fd. Once locked, `name` is
    /// checked to still be the locked file: a holder may remove the file
    /// before it lets go (see [`Dir::unlink_at`]), and a waiter then locks
    /// the file that is there now. Not followed if a symlink, never blocks
    /// opening a FIFO, refused unless a regular file.
    pub fn lock_file(&self, name: &OsStr) -> Result<OwnedFd> {
        self.lock_file_as(name, libc::LOCK_EX)
    }

    /// [`Dir::lock_file`] with a shared `flock` (`LOCK_SH`): many holders
    /// at once, none while an exclusive one holds it.
    pub fn lock_file_shared(&self, name: &OsStr) -> Result<OwnedFd> {
        self.lock_file_as(name, libc::LOCK_SH)
    }

    fn lock_file_as(&self, name: &OsStr, op: libc::c_int) -> Result<OwnedFd> {
        // Each retry means another process removed the file meanwhile.
        for _ in 0..100 {
            let (fd, st) = self.create_regular(name, OFlag::O_RDONLY, 0o644, "lock")?;
            // A second name could be a file of root's linked in by the user:
            // never lock (or later unlink a name of) someone else's file.
            if st.nlink > 1 {
                return Err(Error::refused("lock", self.child_path(name), format!("has {} hard links", st.nlink)));
            }
            loop {
                // SAFETY: flock on an fd we own.
                match Errno::result(unsafe { libc::flock(fd.as_raw_fd(), op) }) {
                    Ok(_) => break,
                    Err(Errno::EINTR) => continue,
                    Err(e) => return Err(Error::sys("lock", self.child_path(name), e)),
                }
            }
            if matches!(self.stat_at(name)?, Some(now) if now.same_inode(&st)) {
                return Ok(fd);
            }
        }
        Err(Error::refused("lock", self.child_path(name), "keeps being replaced"))
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
        Ok(self.entries_typed(max)?.into_iter().map(|(name, _)| name).collect())
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
        match self.read_file_stat(name, cap)? {
            Some((_, st, _)) if st.nlink == 0 => Err(Error::refused("read", self.child_path(name), "has 0 hard links")),
            other => Ok(other.map(|(data, _, _)| data)),
        }
    }

    /// [`Dir::read_file`], with the stat and the version of the inode read
    /// (as opened); a file with 0 links (replaced by a rename between our
    /// open and our fstat) is returned too, for the caller to read again.
    pub fn read_file_stat(&self, name: &OsStr, cap: u64) -> Result<Option<(Vec<u8>, Stat, Version)>> {
        // Built only for a message: no allocation on success.
        let path = || self.child_path(name);
        let Some((fd, raw)) = self.open_regular_raw(name, OFlag::O_RDONLY, 0, "read")? else { return Ok(None) };
        // The version as opened: a file changed in place while we read is
        // then seen as changed by whoever compares versions later.
        let (st, version) = (Stat::from(raw), Version::from(&raw));
        if st.nlink > 1 {
            return Err(Error::refused("read", path(), format!("has {} hard links", st.nlink)));
        }
        if st.size > cap {
            return Err(Error::refused("read", path(), format!("larger than {cap} bytes")));
        }
        // The file may grow while we read: never trust st_size alone; read
        // up to cap + 1 bytes. A short read of a regular file is its end,
        // so the usual case is one read.
        let mut file = std::fs::File::from(fd);
        let mut data = vec![0u8; (st.size + 1).min(cap + 1) as usize];
        let mut len = 0;
        loop {
            if len == data.len() {
                if len as u64 > cap {
                    return Err(Error::refused("read", path(), format!("larger than {cap} bytes")));
                }
                data.resize((len * 2).clamp(64, cap as usize + 1), 0);
            }
            let want = data.len() - len;
            let n = match file.read(&mut data[len..]) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::sys("read", path(), io_errno(&e))),
            };
            len += n;
            if n == 0 || n < want {
                break;
            }
        }
        if len as u64 > cap {
            return Err(Error::refused("read", path(), format!("larger than {cap} bytes")));
        }
        data.truncate(len);
        Ok(Some((data, st, version)))
    }

    /// Creates the regular file `name` (it must not exist) for content
    /// that is not secret: opened with its final mode (a `fchmod` follows
    /// only where the umask would change it), `data` written, given to
    /// `owner` through the fd when set, synced if `sync` says so. The mode
    /// ends up exact.
    pub fn create_public_file(&self, name: &OsStr, mode: u32, data: &[u8], owner: Option<(u32, u32)>, sync: Sync) -> Result<()> {
        let c = component(name)?;
        // Built only for a message: no allocation on success.
        let path = || self.child_path(name);
        if data.is_empty() && owner.is_none() && creation_mode_is_exact(mode) {
            // Nothing to write, chown or chmod: one mknodat, no fd (and an
            // empty file needs no fsync of its own).
            return mknodat(&self.fd, c.as_c_str(), SFlag::S_IFREG, Mode::from_bits_truncate(mode), 0)
                .map_err(|e| Error::sys("create", path(), e));
        }
        let flags = OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let fd =
            openat(&self.fd, c.as_c_str(), flags, Mode::from_bits_truncate(mode & 0o777)).map_err(|e| Error::sys("create", path(), e))?;
        let mut file = std::fs::File::from(fd);
        if !data.is_empty() {
            file.write_all(data).map_err(|e| Error::sys("write", path(), io_errno(&e)))?;
        }
        if let Some((uid, gid)) = owner {
            nix::unistd::fchown(&file, Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid))).map_err(|e| Error::sys("chown", path(), e))?;
        }
        // After a chown: it may clear set-id bits, the mode puts them back.
        if !creation_mode_is_exact(mode) {
            nix::sys::stat::fchmod(&file, Mode::from_bits_retain(mode)).map_err(|e| Error::sys("chmod", path(), e))?;
        }
        if sync == Sync::Yes {
            file.sync_all().map_err(|e| Error::sys("fsync", path(), io_errno(&e)))?;
        }
        Ok(())
    }

    /// `fchmodat2(dirfd, name, mode, AT_SYMLINK_NOFOLLOW)`: all 12 bits of
    /// the entry `name`, never through a symlink (refused). By name: only
    /// for entries nobody else can swap (a directory only the caller can
    /// write); elsewhere pin the entry with [`Dir::open_node`] first.
    pub fn chmod_at(&self, name: &OsStr, mode: u32) -> Result<()> {
        let c = component(name)?;
        const SYS_FCHMODAT2: libc::c_long = 452;
        // SAFETY: plain syscall on a valid fd with a NUL-terminated name.
        let r = unsafe { libc::syscall(SYS_FCHMODAT2, self.fd.as_raw_fd(), c.as_ptr(), mode as libc::c_uint, libc::AT_SYMLINK_NOFOLLOW) };
        match Errno::result(r) {
            Ok(_) => Ok(()),
            Err(Errno::EOPNOTSUPP) => Err(Error::refused("chmod", self.child_path(name), "is a symlink")),
            // No fchmodat2 (before Linux 6.6, or seccomp): pin, then chmod the pin.
            Err(Errno::ENOSYS | Errno::EPERM | Errno::EINVAL) => self.open_node(name)?.chmod(mode),
            Err(e) => Err(Error::sys("chmod", self.child_path(name), e)),
        }
    }

    /// `fchownat(dirfd, name, uid, gid, AT_SYMLINK_NOFOLLOW)`: the entry
    /// `name` itself, never a symlink's target. By name: same caveat as
    /// [`Dir::chmod_at`].
    pub fn chown_at(&self, name: &OsStr, uid: u32, gid: u32) -> Result<()> {
        let c = component(name)?;
        fchownat(&self.fd, c.as_c_str(), Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)), AtFlags::AT_SYMLINK_NOFOLLOW)
            .map_err(|e| Error::sys("chown", self.child_path(name), e))
    }

    /// The names in this directory with their type from `getdents`
    /// (`None` where the filesystem does not say), at most `max`.
    pub fn entries_typed(&self, max: usize) -> Result<Vec<(OsString, Option<Kind>)>> {
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
            use nix::dir::Type;
            let kind = entry.file_type().map(|t| match t {
                Type::Directory => Kind::Dir,
                Type::File => Kind::File,
                Type::Fifo => Kind::Fifo,
                Type::Symlink => Kind::Symlink,
                _ => Kind::Other,
            });
            names.push((OsStr::from_bytes(name).to_os_string(), kind));
        }
        Ok(names)
    }

    /// `fstatat(dirfd, name, 0)`: whether `name` exists once symlinks are
    /// followed, like Python's `Path.exists()` (a dangling or looping
    /// symlink does not exist). Nothing is opened: for markers only.
    pub fn exists_following(&self, name: &OsStr) -> Result<bool> {
        let c = component(name)?;
        match fstatat(&self.fd, c.as_c_str(), AtFlags::empty()) {
            Ok(_) => Ok(true),
            Err(Errno::ENOENT | Errno::ELOOP | Errno::ENOTDIR) => Ok(false),
            Err(e) => Err(Error::sys("stat", self.child_path(name), e)),
        }
    }

    /// `fstatfs(dirfd)`: whether this directory lives in memory (tmpfs or
    /// ramfs), where fsync does nothing.
    pub fn in_memory(&self) -> Result<bool> {
        let st = nix::sys::statfs::fstatfs(&self.fd).map_err(|e| Error::sys("statfs", &self.path, e))?;
        // ramfs's magic (0x858458f6) is not in nix.
        let t = st.filesystem_type();
        Ok(t == nix::sys::statfs::TMPFS_MAGIC || t.0 as i64 == 0x858458f6)
    }

    /// `faccessat(dirfd, ".", W_OK|X_OK)`: whether the caller may create
    /// entries here (a read-only mount says no too).
    pub fn writable(&self) -> Result<()> {
        nix::unistd::faccessat(&self.fd, c".", nix::unistd::AccessFlags::W_OK | nix::unistd::AccessFlags::X_OK, AtFlags::empty())
            .map_err(|e| Error::sys("write to", &self.path, e))
    }

    /// Appends `data` to the regular file `name` in one `write`, creating
    /// it with `mode` (less the umask) if absent. Not followed if a
    /// symlink, never blocks on a FIFO, refused unless a regular file with
    /// one link. Returns the file's stat as opened.
    fn append_file(&self, name: &OsStr, mode: u32, data: &[u8]) -> Result<Stat> {
        // Built only for a message: no allocation on success.
        let path = || self.child_path(name);
        let (fd, st) = self.create_regular(name, OFlag::O_WRONLY | OFlag::O_APPEND, mode, "append to")?;
        if st.nlink != 1 {
            return Err(Error::refused("append to", path(), format!("has {} hard links", st.nlink)));
        }
        std::fs::File::from(fd).write_all(data).map_err(|e| Error::sys("write", path(), io_errno(&e)))?;
        Ok(st)
    }

    /// `Dir::append_file` for `owner` (uid, gid), when root writes in
    /// the user's directory: a file we create is given to `owner` through
    /// the fd we made it with; an existing one must already be `owner`'s
    /// (a root-owned file renamed in by the user is never appended to).
    /// Nothing is done by name, so a name swapped meanwhile changes nothing.
    pub fn append_file_for(&self, name: &OsStr, mode: u32, data: &[u8], owner: Option<(u32, u32)>) -> Result<Stat> {
        // Built only for a message: no allocation on success.
        let path = || self.child_path(name);
        let Some((uid, gid)) = owner else { return self.append_file(name, mode, data) };
        let append = OFlag::O_WRONLY | OFlag::O_APPEND;
        // Each retry means the name came and went between two opens.
        for _ in 0..100 {
            let (fd, st, created) = match self.open_regular(name, append | OFlag::O_CREAT | OFlag::O_EXCL, mode, "append to") {
                Ok(Some((fd, st))) => (fd, st, true),
                Err(e) if e.errno() == Some(Errno::EEXIST) => match self.open_regular(name, append, 0, "append to")? {
                    Some((fd, st)) => (fd, st, false),
                    None => continue,
                },
                Err(e) => return Err(e),
                Ok(None) => continue,
            };
            if st.nlink != 1 {
                return Err(Error::refused("append to", path(), format!("has {} hard links", st.nlink)));
            }
            if !created && st.uid != uid {
                return Err(Error::refused("append to", path(), format!("owned by uid {}, expected {uid}", st.uid)));
            }
            let mut file = std::fs::File::from(fd);
            file.write_all(data).map_err(|e| Error::sys("write", path(), io_errno(&e)))?;
            if created && (st.uid, st.gid) != (uid, gid) {
                nix::unistd::fchown(&file, Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)))
                    .map_err(|e| Error::sys("chown", path(), e))?;
            }
            return Ok(st);
        }
        Err(Error::refused("append to", path(), "keeps being replaced"))
    }

    /// Opens the entry `name` as a regular file, `flags` added to
    /// `O_NOFOLLOW`, `O_NONBLOCK`, `O_NOCTTY` and `O_CLOEXEC` (`mode` for
    /// `O_CREAT`): never through a symlink, never blocking on a FIFO;
    /// anything but a regular file is refused, `op` saying what was
    /// attempted. `Ok(None)` when absent.
    fn open_regular(&self, name: &OsStr, flags: OFlag, mode: u32, op: &'static str) -> Result<Option<(OwnedFd, Stat)>> {
        Ok(self.open_regular_raw(name, flags, mode, op)?.map(|(fd, st)| (fd, Stat::from(st))))
    }

    /// [`Dir::open_regular`], with the whole `struct stat`.
    fn open_regular_raw(&self, name: &OsStr, flags: OFlag, mode: u32, op: &'static str) -> Result<Option<(OwnedFd, FileStat)>> {
        let c = component(name)?;
        let flags = flags | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_NOCTTY | OFlag::O_CLOEXEC;
        let fd = match openat(&self.fd, c.as_c_str(), flags, Mode::from_bits_truncate(mode)) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => return Ok(None),
            Err(Errno::ELOOP) => return Err(Error::refused(op, self.child_path(name), "is a symlink")),
            Err(e) => return Err(Error::sys("open", self.child_path(name), e)),
        };
        let raw = fstat(&fd).map_err(|e| Error::sys("stat", self.child_path(name), e))?;
        let kind = Stat::from(raw).kind;
        if kind != Kind::File {
            return Err(Error::refused(op, self.child_path(name), format!("{}, expected a regular file", describe(kind))));
        }
        Ok(Some((fd, raw)))
    }

    /// [`Dir::open_regular`] with `O_CREAT`: the file exists afterwards.
    fn create_regular(&self, name: &OsStr, flags: OFlag, mode: u32, op: &'static str) -> Result<(OwnedFd, Stat)> {
        self.open_regular(name, flags | OFlag::O_CREAT, mode, op)?.ok_or_else(|| Error::sys("open", self.child_path(name), Errno::ENOENT))
    }

    /// The directory's fd, for `*at` calls the layer does not wrap.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl Node {
    /// Its stat, taken when it was opened.
    pub fn stat(&self) -> &Stat {
        &self.stat
    }

    /// The mount the pinned inode is on (see `mount_of`).
    pub fn mount_id(&self) -> Result<u64> {
        mount_of(self.fd.as_fd(), &self.path)
    }

    /// The path it was opened by (for messages; never used to reach it again).
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

/// The process umask, read once from `/proc/self/status` (calling
/// umask(2) to read it would change it for other threads meanwhile).
/// Unknown: assume everything is masked, so modes are always set.
fn process_umask() -> u32 {
    static UMASK: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    *UMASK.get_or_init(|| {
        // One read: the line is near the top of a file of about 1.5 KiB.
        let mut buf = [0u8; 4096];
        let n = openat(nix::fcntl::AT_FDCWD, c"/proc/self/status", OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty())
            .and_then(|fd| nix::unistd::read(&fd, &mut buf))
            .unwrap_or(0);
        String::from_utf8_lossy(&buf[..n])
            .lines()
            .find_map(|l| l.strip_prefix("Umask:"))
            .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
            .unwrap_or(0o777)
    })
}

/// Whether creating an inode with `mode` gives exactly `mode`: no set-id
/// or sticky bits (creation may drop them) and nothing the umask removes.
pub fn creation_mode_is_exact(mode: u32) -> bool {
    mode & 0o7000 == 0 && mode & process_umask() == 0
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

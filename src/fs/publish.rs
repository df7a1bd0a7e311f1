//! Atomic publication of a directory built aside (doc/design.md#atomic-publish),
//! and of a file written aside ([`replace_file`]).
//!
//! A slot is built under a dot-name that s6-svscan ignores, synced, then
//! renamed onto its real name in one step, and the parent is synced so the
//! rename is durable. Nobody ever sees a half-built directory under the
//! real name. An existing directory is swapped out with `RENAME_EXCHANGE`,
//! so the real name never disappears; the old tree ends up under the
//! staging name for the caller to remove.

use std::ffi::{CString, OsStr, OsString};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;

use nix::errno::Errno;

use crate::error::{Error, Result};
use crate::fs::{Dir, Owner, Sync};

/// How a rename treats an existing target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rename {
    /// Fail with EEXIST if the target exists.
    NoReplace,
    /// Swap source and target atomically; both must exist.
    Exchange,
    /// Plain rename(2) semantics: replace a file or an empty directory.
    Replace,
}

/// `renameat2(from, old, to, new, flags)` through the raw syscall: nix does
/// not expose it on musl and the bundled musl lacks the symbol.
pub fn rename_at(from: &Dir, old: &OsStr, to: &Dir, new: &OsStr, how: Rename) -> Result<()> {
    let flags: libc::c_uint = match how {
        Rename::NoReplace => libc::RENAME_NOREPLACE,
        Rename::Exchange => libc::RENAME_EXCHANGE,
        Rename::Replace => 0,
    };
    let (o, n) = (cstr(old)?, cstr(new)?);
    // SAFETY: valid fds and NUL-terminated single-component names.
    let r = unsafe { libc::syscall(libc::SYS_renameat2, from.fd().as_raw_fd(), o.as_ptr(), to.fd().as_raw_fd(), n.as_ptr(), flags) };
    Errno::result(r).map(drop).map_err(|e| Error::sys("rename", from.child_path(old), e))
}

fn cstr(name: &OsStr) -> Result<CString> {
    let b = name.as_bytes();
    if b.is_empty() || b.contains(&b'/') || b == b"." || b == b".." {
        return Err(Error::refused("rename", std::path::Path::new(name), "not a single path component"));
    }
    CString::new(b).map_err(|_| Error::refused("rename", std::path::Path::new(name), "contains a NUL byte"))
}

/// What [`publish`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Published {
    /// The name did not exist; the staging name is gone.
    New,
    /// The name existed; the previous tree is now under the staging name.
    Replaced,
}

/// Makes `staging` (a synced, complete directory in `parent`) visible as
/// `name` in one rename, then syncs `parent`.
pub fn publish(parent: &Dir, staging: &OsStr, name: &OsStr) -> Result<Published> {
    publish_with(parent, staging, name, Sync::Yes)
}

/// [`publish`], where `Sync::No` skips both fsyncs (tmpfs, ramfs).
pub fn publish_with(parent: &Dir, staging: &OsStr, name: &OsStr, sync: Sync) -> Result<Published> {
    if sync == Sync::Yes {
        parent.open_dir(staging)?.sync()?;
    }
    let done = match rename_at(parent, staging, parent, name, Rename::NoReplace) {
        Ok(()) => Published::New,
        Err(e) if e.errno() == Some(Errno::EEXIST) => {
            rename_at(parent, staging, parent, name, Rename::Exchange)?;
            Published::Replaced
        }
        Err(e) => return Err(e),
    };
    if sync == Sync::Yes {
        parent.sync()?;
    }
    Ok(done)
}

/// `.<name>.<pid>.tmp`: where this process writes a new `name` before
/// renaming it into place.
pub fn file_staging_name(name: &OsStr) -> OsString {
    OsString::from(format!(".{}.{}.tmp", name.to_string_lossy(), std::process::id()))
}

/// Writes `text` as `home/name` through a unique dot-name and one rename.
/// Run as root (`Owner::Chown`), the file is given to the user through the
/// fd it was created with.
pub fn replace_file(home: &Dir, name: &OsStr, text: &str, mode: u32, owner: Owner) -> Result<()> {
    let staging = file_staging_name(name);
    home.unlink_at(&staging)?;
    home.create_public_file(&staging, mode, text.as_bytes(), owner.chown_to(), Sync::Yes)?;
    if let Err(e) = rename_at(home, &staging, home, name, Rename::Replace) {
        let _ = home.unlink_at(&staging);
        return Err(e);
    }
    home.sync()
}

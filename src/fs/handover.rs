//! Giving the user what root built for it, without ever acting by name
//! where the user can write (doc/design.md#fd-safety).
//!
//! Root builds in a directory only it can write and traverse (a
//! [`private_dir`]: 0700, its own, made fresh and empty), so nothing in there can be
//! swapped, linked in or added by anyone else while it works, and names
//! there mean what root made. Once the tree is complete, each object is
//! pinned by an fd ([`Handover::pin`], checked to be root's own and, for a
//! non-directory, to have one link) and given to the user through that fd
//! ([`Handover::give`]), contents before the directories holding them and
//! the private directory itself last: until then the user cannot even
//! reach the rest.

use std::ffi::OsStr;

use crate::error::{Cause, Error, Result};
use crate::fs::{Dir, Kind, Node, Stat};

/// Whether `dir`, just made by the caller with mode 0700, is that fresh
/// private directory: a directory owned by the caller, no access for group
/// or others, no subdirectory (2 links; btrfs always counts 1). Anything
/// else (a directory the user put under that name meanwhile) is refused;
/// files in it would make the build's exclusive creations fail.
pub fn check_private(dir: &Dir) -> Result<Stat> {
    let st = dir.stat()?;
    let euid = nix::unistd::geteuid().as_raw();
    if st.kind != Kind::Dir || st.uid != euid || st.mode & 0o077 != 0 || st.nlink > 2 {
        return Err(Error::refused(
            "build in",
            dir.path(),
            format!("is not the private directory just made ({:04o} {}:{}, {} links)", st.mode, st.uid, st.gid, st.nlink),
        ));
    }
    Ok(st)
}

/// [`check_private`], and more: the mode is exactly 0700 (no set-id or
/// sticky bit, owner bits whole) and the directory has no entry at all.
/// So `dir` is what mkdir just made, not an older directory of the
/// caller's moved in under that name (a staging directory, a `logs/`),
/// whose files would be used or handed over with it.
pub fn check_fresh(dir: &Dir) -> Result<Stat> {
    let st = check_private(dir)?;
    let entries = match dir.entries(0) {
        Ok(_) => false,
        Err(e) if matches!(e.cause(), Cause::Limit(_)) => true,
        Err(e) => return Err(e),
    };
    if st.mode != 0o700 || entries {
        let what = if entries { ", not empty" } else { "" };
        return Err(Error::refused(
            "make",
            dir.path(),
            format!("is not the private directory just made ({:04o} {}:{}{what})", st.mode, st.uid, st.gid),
        ));
    }
    Ok(st)
}

/// Makes `name` in `parent` as a fresh private directory (0700, the
/// caller's) and opens it without following, checked ([`check_fresh`]):
/// `parent` may be writable by others, who can swap the name between the
/// mkdir and the open. `Ok(None)` if the name exists.
pub fn private_dir(parent: &Dir, name: &OsStr) -> Result<Option<Dir>> {
    if !parent.mkdir_at(name, 0o700)? {
        return Ok(None);
    }
    let dir = parent.open_dir(name)?;
    check_fresh(&dir)?;
    Ok(Some(dir))
}

/// Objects to give to `uid:gid`, in the order given.
#[derive(Debug)]
pub struct Handover {
    uid: u32,
    gid: u32,
    pinned: Vec<(Node, u32)>,
}

impl Handover {
    /// A hand-over to `uid:gid`.
    pub fn new(uid: u32, gid: u32) -> Handover {
        Handover { uid, gid, pinned: Vec::new() }
    }

    /// Pins `name` in `dir` (a directory nobody else can write) to be
    /// given away with `mode`: it must be the caller's own, a directory,
    /// a regular file or a FIFO, and a non-directory must have one link.
    pub fn pin(&mut self, dir: &Dir, name: &OsStr, mode: u32) -> Result<()> {
        let node = dir.open_node(name)?;
        let st = *node.stat();
        let euid = nix::unistd::geteuid().as_raw();
        if !matches!(st.kind, Kind::Dir | Kind::File | Kind::Fifo) {
            return Err(Error::refused("hand over", node.path(), crate::fs::dir_describe(st.kind)));
        }
        if st.uid != euid || (st.kind != Kind::Dir && st.nlink != 1) {
            return Err(Error::refused(
                "hand over",
                node.path(),
                format!("is not what was built ({}:{}, {} links)", st.uid, st.gid, st.nlink),
            ));
        }
        self.pinned.push((node, mode));
        Ok(())
    }

    /// Gives every pinned object to the user, then `top` when given (the
    /// private directory, so far 0700 and the caller's) with its mode:
    /// each through its fd, owner first, then the exact mode (a chown may
    /// clear set-id bits), then both read back.
    pub fn give(self, top: Option<(&Dir, u32)>) -> Result<()> {
        let (uid, gid) = (self.uid, self.gid);
        let wrong = |path: &std::path::Path, st: &Stat, mode: u32| {
            Error::refused("hand over", path, format!("ended up {:04o} {}:{} instead of {mode:04o} {uid}:{gid}", st.mode, st.uid, st.gid))
        };
        for (mut node, mode) in self.pinned {
            node.chown(uid, gid)?;
            node.chmod(mode)?;
            let st = *node.restat()?;
            if (st.mode, st.uid, st.gid) != (mode, uid, gid) || (st.kind != Kind::Dir && st.nlink != 1) {
                return Err(wrong(node.path(), &st, mode));
            }
        }
        let Some((top, top_mode)) = top else { return Ok(()) };
        top.chown(uid, gid)?;
        top.chmod(top_mode)?;
        let st = top.stat()?;
        if (st.mode, st.uid, st.gid) != (top_mode, uid, gid) {
            return Err(wrong(top.path(), &st, top_mode));
        }
        Ok(())
    }
}

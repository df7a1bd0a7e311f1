//! Bounded, device-local tree walks: recursive removal and recursive chown.
//!
//! The walk keeps its own stack of directory fds (no recursion on the call
//! stack), opens every directory with `O_NOFOLLOW` relative to its parent's
//! fd, never crosses onto another filesystem, and stops with an error at
//! [`Limits`]. A directory swapped for a symlink mid-walk makes the walk
//! fail; it never makes it leave the tree.

use std::ffi::{OsStr, OsString};

use crate::error::{Error, Result};
use crate::fs::dir::describe;
use crate::fs::{Dir, Kind, Stat};

/// Bounds on a walk. Reaching one is an error, never a silent partial result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Directory levels below the top (each holds one fd while walked).
    pub depth: usize,
    /// Entries visited in all.
    pub entries: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits { depth: 64, entries: 100_000 }
    }
}

/// What a walk does at each step.
trait Visit {
    /// A directory has been opened (the top one included).
    fn enter(&mut self, dir: &Dir) -> Result<()>;
    /// A non-directory entry of `dir`.
    fn leaf(&mut self, dir: &Dir, name: &OsStr, stat: Stat) -> Result<()>;
    /// Every entry of `dir` has been visited; `parent` holds it as `name`.
    fn leave(&mut self, parent: &Dir, name: &OsStr, dir: Dir) -> Result<()>;
}

struct Frame {
    dir: Dir,
    name: OsString,
    /// Subdirectories still to visit; `None` until the directory is listed.
    pending: Option<Vec<OsString>>,
}

fn walk(parent: &Dir, name: &OsStr, limits: Limits, v: &mut impl Visit) -> Result<()> {
    let top = parent.open_dir(name)?;
    let mount = top.mount_id()?;
    v.enter(&top)?;
    let mut stack = vec![Frame { dir: top, name: name.to_os_string(), pending: None }];
    let mut seen = 0usize;
    loop {
        let depth = stack.len();
        let Some(frame) = stack.last_mut() else { return Ok(()) };
        if frame.pending.is_none() {
            let names = frame.dir.entries(limits.entries - seen.min(limits.entries))?;
            seen += names.len();
            let mut subdirs = Vec::new();
            for n in names {
                match frame.dir.stat_at(&n)? {
                    None => {} // gone meanwhile: nothing to do
                    Some(st) if st.kind == Kind::Dir => subdirs.push(n),
                    Some(st) => v.leaf(&frame.dir, &n, st)?,
                }
            }
            frame.pending = Some(subdirs);
        }
        let next = frame.pending.as_mut().and_then(Vec::pop);
        if let Some(next) = next {
            if depth > limits.depth {
                return Err(Error::limit("walk", frame.dir.child_path(&next), format!("deeper than {} levels", limits.depth)));
            }
            let child = frame.dir.open_dir(&next)?;
            if child.mount_id()? != mount {
                return Err(Error::refused("walk", child.path(), "is on another filesystem"));
            }
            v.enter(&child)?;
            stack.push(Frame { dir: child, name: next, pending: None });
        } else {
            let done = stack.pop().expect("stack is not empty here");
            let holder = stack.last().map(|f| &f.dir).unwrap_or(parent);
            v.leave(holder, &done.name, done.dir)?;
        }
    }
}

struct Remove;

impl Visit for Remove {
    fn enter(&mut self, _: &Dir) -> Result<()> {
        Ok(())
    }
    fn leaf(&mut self, dir: &Dir, name: &OsStr, _: Stat) -> Result<()> {
        // Removing a name never touches what it points to: a symlink,
        // a FIFO or a hard link to a file elsewhere is just unlinked.
        dir.unlink_at(name).map(drop)
    }
    fn leave(&mut self, parent: &Dir, name: &OsStr, dir: Dir) -> Result<()> {
        drop(dir);
        parent.rmdir_at(name)
    }
}

/// Removes `name` in `parent` and, if it is a directory, everything below
/// it. `Ok(false)` if it did not exist. Entries added while we work (by the
/// user racing us) are removed too, within `limits`.
pub fn remove_tree(parent: &Dir, name: &OsStr, limits: Limits) -> Result<bool> {
    const ATTEMPTS: usize = 3;
    for attempt in 1..=ATTEMPTS {
        match parent.stat_at(name)? {
            None => return Ok(false),
            Some(st) if st.kind != Kind::Dir => {
                return parent.unlink_at(name);
            }
            Some(_) => {}
        }
        match walk(parent, name, limits, &mut Remove) {
            Ok(()) => return Ok(true),
            // Someone refilled a directory between our listing and rmdir.
            Err(e) if e.errno() == Some(nix::errno::Errno::ENOTEMPTY) && attempt < ATTEMPTS => continue,
            Err(e) => return Err(e),
        }
    }
    unreachable!("the last attempt returns")
}

struct Chown {
    uid: u32,
    gid: u32,
}

impl Visit for Chown {
    fn enter(&mut self, dir: &Dir) -> Result<()> {
        dir.chown(self.uid, self.gid)
    }
    fn leaf(&mut self, dir: &Dir, name: &OsStr, listed: Stat) -> Result<()> {
        let node = dir.open_node(name)?;
        let st = *node.stat();
        if !st.same_inode(&listed) {
            return Err(Error::refused("chown", node.path(), "changed while being walked"));
        }
        match st.kind {
            // A second link could be /etc/shadow hard-linked into the tree.
            Kind::File if st.nlink > 1 => Err(Error::refused("chown", node.path(), format!("has {} hard links", st.nlink))),
            Kind::File | Kind::Fifo | Kind::Symlink => node.chown(self.uid, self.gid),
            Kind::Other | Kind::Dir => Err(Error::refused("chown", node.path(), describe(st.kind))),
        }
    }
    fn leave(&mut self, _: &Dir, _: &OsStr, _: Dir) -> Result<()> {
        Ok(())
    }
}

/// Gives `name` in `parent` and everything below it to `uid:gid`. Modes
/// are left alone (Linux keeps setgid on directories across a chown).
pub fn chown_tree(parent: &Dir, name: &OsStr, uid: u32, gid: u32, limits: Limits) -> Result<()> {
    walk(parent, name, limits, &mut Chown { uid, gid })
}

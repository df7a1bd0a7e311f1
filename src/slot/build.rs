//! Building a slot and publishing it.
//!
//! The slot is made in `.gateway-<profile>.tmp` (s6-svscan skips
//! dot-names) through the fd layer, then renamed onto its real name: a
//! fresh name with `RENAME_NOREPLACE`, an existing slot swapped with
//! `RENAME_EXCHANGE` and the old tree removed afterwards. Nobody ever sees
//! a half-built slot under its real name. The staging directory is new and
//! only we can write it, so its entries are created and set by name. Run
//! as root, it is 0700 and root's until the slot is complete (checked once
//! opened: the scan directory is the user's, who could have put another
//! directory under that name), and only then is every object given to the
//! user through an fd pinned in it, the staging directory itself last
//! ([`handover`]): root never acts by name where the user can write.

use std::collections::BTreeSet;
use std::ffi::{OsStr, OsString};

use nix::errno::Errno;

use super::content::{Content, Start, digest};
use super::leftovers::{Leftover, TREE_LIMITS, clear};
use super::names::{PROFILE_MAX, name, staging_name};
use crate::error::{Error, Result, Tag};
use crate::fs::handover::{self, Handover};
use crate::fs::publish::{self, Published, Rename, rename_at};
use crate::fs::tree;
use crate::fs::{Dir, Kind, Owner, Sync, creation_mode_is_exact};
use crate::profile::Profile;
use crate::s6;
use crate::skeleton;

/// Largest slot file read back when comparing with the rendered content.
const READ_BACK_CAP: u64 = 64 << 10;

/// Why [`install`] refuses a slot that exists (`Existing::Refuse`).
const ALREADY: &str = "already registered";

fn already_registered(scandir: &Dir, real: &OsStr) -> Error {
    Error::refused("register", scandir.child_path(real), ALREADY).tagged(Tag::Exists)
}

/// Whether an error of [`install`] is its refusal of an existing slot.
pub fn is_already_registered(e: &Error) -> bool {
    e.tag() == Some(Tag::Exists)
}

/// Whether an existing slot may be replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Existing {
    /// Replace it if its content differs (reconcile).
    Replace,
    /// Refuse: the slot is already registered (`hermes-slot register`).
    Refuse,
}

/// What [`install`] did with the slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Built {
    /// There was no slot; there is one now.
    Created,
    /// A slot with other content was swapped for the new one.
    Replaced,
    /// The slot already had exactly this content; nothing was written.
    Unchanged,
}

/// The result of [`install`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installed {
    /// What was done.
    pub built: Built,
    /// Trees that could not be removed (see [`Leftover`]).
    pub leftovers: Vec<Leftover>,
}

/// Builds slots in one scan directory, for one owner.
#[derive(Debug, Clone)]
pub struct Builder<'a> {
    scandir: &'a Dir,
    owner: Owner,
    sync: Sync,
    parent: skeleton::Parent,
    /// The scan directory's entries when it was listed ([`Builder::knowing`]).
    listed: Option<BTreeSet<OsString>>,
}

/// Builds `slot` in `scandir` and publishes it: [`Builder::install`] for
/// a single slot.
pub fn install(scandir: &Dir, profile: &Profile, content: &Content, owner: Owner, existing: Existing) -> Result<Installed> {
    Builder::new(scandir, owner).install(profile, content, existing)
}

impl<'a> Builder<'a> {
    /// `owner`: `Owner::Chown` when run as root (the whole slot is given to
    /// the user), `Owner::Caller` when run as the user. Writes are synced
    /// unless the scan directory is in memory (tmpfs: fsync does nothing;
    /// s6-overlay's `/run` always is).
    pub fn new(scandir: &'a Dir, owner: Owner) -> Builder<'a> {
        let sync = if scandir.in_memory().unwrap_or(false) { Sync::No } else { Sync::Yes };
        // In a setgid scan directory, new directories inherit setgid (and a
        // group): their modes must then be set, and sometimes read back.
        let parent = match scandir.stat() {
            Ok(st) if st.mode & 0o2000 == 0 => skeleton::Parent::Plain,
            _ => skeleton::Parent::Setgid,
        };
        Builder { scandir, owner, sync, parent, listed: None }
    }

    /// Tells the builder what the scan directory held when it was just
    /// listed: a slot whose name was not there is built without looking
    /// for an existing one first (one system call less per slot at boot).
    /// Nothing is lost if one was published since: the publishing rename
    /// never replaces blindly ([`publish::publish_with`]).
    pub fn knowing(self, entries: BTreeSet<OsString>) -> Builder<'a> {
        Builder { listed: Some(entries), ..self }
    }

    /// The scan directory slots are built in.
    pub fn scandir(&self) -> &'a Dir {
        self.scandir
    }

    /// Builds `slot` and publishes it (module docs). Errors leave no
    /// staging directory behind when it can be removed.
    pub fn install(&self, profile: &Profile, content: &Content, existing: Existing) -> Result<Installed> {
        let (scandir, owner) = (self.scandir, self.owner);
        let real = OsString::from(name(profile));
        let staging = OsString::from(staging_name(profile));
        if profile.as_str().len() > PROFILE_MAX {
            return Err(Error::refused(
                "build",
                scandir.child_path(&real),
                format!("profile name longer than {PROFILE_MAX} bytes: no slot (file name and s6-svscan limits)"),
            ));
        }
        let present = match &self.listed {
            Some(listed) if !listed.contains(&real) => None,
            _ => scandir.stat_at(&real)?,
        };
        match (present, existing) {
            (None, _) => {}
            (Some(_), Existing::Refuse) => return Err(already_registered(scandir, &real)),
            (Some(st), Existing::Replace) => {
                if st.kind == Kind::Dir && same_content(scandir, &real, content) {
                    return Ok(Installed { built: Built::Unchanged, leftovers: Vec::new() });
                }
            }
        }
        let mut leftovers = Vec::new();
        // Root builds in private (module docs).
        let private = matches!(owner, Owner::Chown { .. });
        let mode = if private { 0o700 } else { 0o755 };
        if !scandir.mkdir_at(&staging, mode)? {
            leftovers.extend(clear(scandir, &staging)?);
            if !scandir.mkdir_at(&staging, mode)? {
                return Err(Error::refused("build", scandir.child_path(&staging), "keeps reappearing"));
            }
        }
        let opened = scandir.open_dir(&staging).and_then(|top| if private { handover::check_private(&top).map(|_| top) } else { Ok(top) });
        if let Err(e) = opened.and_then(|top| fill(&top, content, owner, self.sync, self.parent)) {
            let _ = tree::remove_tree(scandir, &staging, TREE_LIMITS);
            return Err(e);
        }
        let built = match existing {
            Existing::Replace => match publish::publish_with(scandir, &staging, &real, self.sync) {
                Ok(Published::New) => Built::Created,
                Ok(Published::Replaced) => {
                    // The old slot is under the staging name now.
                    leftovers.extend(
                        clear(scandir, &staging).unwrap_or_else(|error| Some(Leftover { error, left_at: scandir.child_path(&staging) })),
                    );
                    Built::Replaced
                }
                Err(e) => {
                    let _ = tree::remove_tree(scandir, &staging, TREE_LIMITS);
                    return Err(e);
                }
            },
            Existing::Refuse => {
                let placed = scandir
                    .open_dir(&staging)
                    .and_then(|d| d.sync())
                    .and_then(|()| rename_at(scandir, &staging, scandir, &real, Rename::NoReplace))
                    .and_then(|()| scandir.sync());
                if let Err(e) = placed {
                    let _ = tree::remove_tree(scandir, &staging, TREE_LIMITS);
                    return Err(if e.errno() == Some(Errno::EEXIST) { already_registered(scandir, &real) } else { e });
                }
                Built::Created
            }
        };
        Ok(Installed { built, leftovers })
    }
}

/// Writes everything into the (empty, fresh) staging directory `top`.
fn fill(top: &Dir, content: &Content, owner: Owner, sync: Sync, parent: skeleton::Parent) -> Result<()> {
    let (uid, gid) = match owner {
        Owner::Chown { uid, gid } => (uid, gid),
        Owner::Caller { .. } => return fill_as_caller(top, content, owner, sync, parent),
    };
    // Root: everything root's while `top` is 0700, then handed over.
    let me = Owner::Caller { uid: nix::unistd::geteuid().as_raw(), gid: nix::unistd::getegid().as_raw() };
    let log = fresh_subdir(top, s6::LOG, false)?;
    for f in &content.files {
        let dir = if f.dir.is_some() { &log } else { top };
        dir.create_public_file(OsStr::new(f.name), f.mode, &f.data, None, sync)?;
    }
    // Plain: the hand-over below sets every mode exactly anyway.
    skeleton::seed_fresh(top, Some(&log), me, skeleton::Parent::Plain)?;
    let mut hand = Handover::new(uid, gid);
    for (dir, sub) in [(&log, Some(s6::LOG)), (top, None)] {
        for f in content.files.iter().filter(|f| f.dir == sub) {
            hand.pin(dir, OsStr::new(f.name), f.mode)?;
        }
        skeleton::pin_fresh(dir, &mut hand)?;
        if sub.is_none() {
            hand.pin(top, OsStr::new(s6::LOG), 0o755)?;
        }
    }
    hand.give(Some((top, 0o755)))
}

/// The user building its own slot: nobody else can write `top`.
fn fill_as_caller(top: &Dir, content: &Content, owner: Owner, sync: Sync, parent: skeleton::Parent) -> Result<()> {
    let exact = parent == skeleton::Parent::Plain && creation_mode_is_exact(0o755);
    if !exact {
        top.chmod(0o755)?;
    }
    let log = fresh_subdir(top, s6::LOG, exact)?;
    for f in &content.files {
        let dir = if f.dir.is_some() { &log } else { top };
        dir.create_public_file(OsStr::new(f.name), f.mode, &f.data, None, sync)?;
    }
    skeleton::seed_fresh(top, Some(&log), owner, parent)
}

/// Creates the subdirectory `name` of a fresh directory, mode 0755 exactly
/// (`exact`: creation gives that mode already).
fn fresh_subdir(parent: &Dir, name: &str, exact: bool) -> Result<Dir> {
    let name = OsStr::new(name);
    if !parent.mkdir_at(name, 0o755)? {
        return Err(Error::refused("build", parent.child_path(name), "appeared in a fresh staging directory"));
    }
    if !exact {
        parent.chmod_at(name, 0o755)?;
    }
    parent.open_dir(name)
}

/// Whether the live slot `real` holds exactly the rendered content: its
/// files (read back with their modes) hash to the rendered digest, and
/// there is no `down` file when there should be none.
fn same_content(scandir: &Dir, real: &OsStr, content: &Content) -> bool {
    let Ok(live) = scandir.open_dir(real) else { return false };
    let Ok(log) = live.open_dir(OsStr::new(s6::LOG)) else { return false };
    let mut read = Vec::with_capacity(content.files.len());
    for f in &content.files {
        let dir = if f.dir.is_some() { &log } else { &live };
        let name = OsStr::new(f.name);
        let Ok(Some(st)) = dir.stat_at(name) else { return false };
        let Ok(Some(data)) = dir.read_file(name, READ_BACK_CAP) else { return false };
        if st.kind != Kind::File {
            return false;
        }
        read.push((f.path(), st.mode, data));
    }
    let unwanted_down = content.start == Start::Up && !matches!(live.stat_at(OsStr::new(s6::DOWN)), Ok(None));
    !unwanted_down && digest(read.iter().map(|(p, m, d)| (p.clone(), *m, &d[..]))) == content.digest()
}

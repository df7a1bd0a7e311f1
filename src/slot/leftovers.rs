//! What interrupted builds and older layouts leave in a scan directory,
//! and how it goes.
//!
//! A staging directory left by an earlier, interrupted build is removed;
//! if it cannot be (made by root, we run as the user: upstream #60774) it
//! is renamed aside to `.gateway-<profile>.tmp.stale-<ns>` and reported.
//! An older layout's undotted `gateway-<profile>.tmp`, which s6-svscan
//! takes for a service, is taken out of the scan and removed
//! ([`retire_undotted`]).

use std::collections::BTreeSet;
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::path::PathBuf;

use nix::errno::Errno;

use super::names::{ASIDE_INFIX, PREFIX, STAGING_SUFFIX, is_aside, is_staging_name};
use crate::error::{Error, Result};
use crate::fs::publish::{Rename, rename_at};
use crate::fs::tree::{self, Limits};
use crate::fs::{Dir, Kind};
use crate::profile::Profile;
use crate::s6;

/// Bounds for removing an old or leftover slot tree.
pub(super) const TREE_LIMITS: Limits = Limits { depth: 16, entries: 10_000 };

/// Something left behind that could not be removed: not fatal, reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leftover {
    /// Why it could not be removed.
    pub error: Error,
    /// Its name in the scan directory now (moved aside, or where it was).
    pub left_at: PathBuf,
}

impl fmt::Display for Leftover {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}; left as {}", self.error, crate::msg::printable(&self.left_at.display().to_string()))
    }
}

/// Removes the tree `name` in `scandir`; if it cannot be removed, renames
/// it aside (`<name>.stale-<ns>`, or a fresh suffix for a name already
/// aside) and returns that as a [`Leftover`]. `Err` if it could be neither
/// removed nor moved.
pub fn clear(scandir: &Dir, name: &OsStr) -> Result<Option<Leftover>> {
    let error = match tree::remove_tree(scandir, name, TREE_LIMITS) {
        Ok(_) => return Ok(None),
        Err(e) => e,
    };
    let base = name.to_string_lossy();
    let base = match base.find(ASIDE_INFIX) {
        Some(i) => &base[..i + STAGING_SUFFIX.len()],
        None => &base[..],
    };
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    for n in 0..3u128 {
        let aside = OsString::from(format!("{base}.stale-{}", nanos + n));
        match rename_at(scandir, name, scandir, &aside, Rename::NoReplace) {
            Ok(()) => return Ok(Some(Leftover { error, left_at: scandir.child_path(&aside) })),
            Err(e) if e.errno() == Some(Errno::EEXIST) => continue,
            Err(_) => break,
        }
    }
    Err(error)
}

/// What [`sweep_staging`] left in the scan directory.
#[derive(Debug, Default)]
pub struct Swept {
    /// What could not be removed.
    pub leftovers: Vec<Leftover>,
    /// Every other entry (the slots among them), for
    /// [`Builder::knowing`](super::Builder::knowing).
    pub entries: BTreeSet<OsString>,
}

/// Clears what interrupted builds left in `scandir`, for every profile:
/// staging directories are removed (or moved aside and reported, see
/// [`clear`]); directories already moved aside are removed if possible,
/// silently otherwise (they were reported when moved).
pub fn sweep_staging(scandir: &Dir) -> Result<Swept> {
    // s6-svscan supervises at most 160,000 services and loggers (-C's
    // ceiling; 1000 by default since 2.12).
    const SCANDIR_MAX: usize = 200_000;
    let mut swept = Swept::default();
    let left = &mut swept.leftovers;
    for name in scandir.entries(SCANDIR_MAX)? {
        let bytes = name.as_encoded_bytes();
        if !is_staging_name(bytes) {
            swept.entries.insert(name);
            continue;
        }
        if is_aside(bytes) {
            let _ = tree::remove_tree(scandir, &name, TREE_LIMITS);
            continue;
        }
        match clear(scandir, &name) {
            Ok(None) => {}
            Ok(Some(l)) => left.push(l),
            Err(error) => left.push(Leftover { left_at: scandir.child_path(&name), error }),
        }
    }
    Ok(swept)
}

/// `gateway-<p>.tmp` directories in `scandir` (`<p>` a valid profile
/// name): an older layout's staging directories, without the dot, which
/// s6-svscan takes for services. Never a slot: no profile name holds a dot.
pub fn undotted_staging(scandir: &Dir) -> Result<Vec<OsString>> {
    let mut out = Vec::new();
    for (name, kind) in scandir.entries_typed(200_000)? {
        let Some(p) = name.as_encoded_bytes().strip_prefix(PREFIX.as_bytes()).and_then(|r| r.strip_suffix(STAGING_SUFFIX.as_bytes()))
        else {
            continue;
        };
        let kind = match kind {
            Some(k) => Some(k),
            None => scandir.stat_at(&name)?.map(|st| st.kind),
        };
        if kind == Some(Kind::Dir) && Profile::parse(p).is_ok() {
            out.push(name);
        }
    }
    out.sort();
    Ok(out)
}

/// Takes an undotted staging directory out of the scan and removes it. A
/// supervisor already running there is told to bring its service down
/// and exit (`dx`, when we may write its control FIFO): a renamed service
/// directory keeps its supervisor until s6-svscan prunes. Then it is
/// renamed to `.gateway-<p>.tmp.stale-<ns>` (s6-svscan skips dot-names)
/// and removed; what cannot be removed yet (files a root supervisor made)
/// stays under that dot-name for the boot sweeps.
pub fn retire_undotted(scandir: &Dir, name: &OsStr) -> Result<()> {
    if let Ok(dir) = scandir.open_dir(name)
        && s6::status::supervised(&dir).unwrap_or(false)
    {
        let _ = s6::control::svc(&dir, b"dx");
    }
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    for n in 0..3u128 {
        let aside = OsString::from(format!(".{}.stale-{}", name.to_string_lossy(), nanos + n));
        match rename_at(scandir, name, scandir, &aside, Rename::NoReplace) {
            Ok(()) => {
                let _ = tree::remove_tree(scandir, &aside, TREE_LIMITS);
                return Ok(());
            }
            Err(e) if e.errno() == Some(Errno::EEXIST) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(Error::refused("move aside", scandir.child_path(name), "no free name"))
}

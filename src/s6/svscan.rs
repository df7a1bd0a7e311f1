//! What s6-svscan (2.12 and later) makes of a scan directory: how many
//! supervisors it would run there, against its bound, and which entries
//! would stop every scan.
//!
//! Since 2.12, s6-svscan counts every service *and every logger* against
//! one bound (`-C`, default 1000), and it abandons a whole scan when `stat`
//! fails on any entry not starting with a dot (a dangling symlink, say); a
//! service first seen by an abandoned scan is then never started (an s6
//! bug, doc/design.md#abandoned-scan). s6 2.11 bounds services with `-c` (default
//! 500, a logged service counting once) and only skips what it cannot
//! stat.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;

use nix::errno::Errno;
use nix::fcntl::AtFlags;
use nix::sys::stat::{SFlag, fstatat};

use crate::error::Result;
use crate::fs::{Dir, Kind};
use crate::layout;
use crate::s6;

/// The `-C` the user's scanner (`s6-rc.d/profile-gateways/run`) is given:
/// 2,000 slots with their loggers. The same number must stay in that run
/// script. (s6-svscan sizes arrays on its stack by it: about 20,000 is
/// the most an 8 MiB stack takes.)
const USER_SCANNER_MAX: usize = 4000;

/// s6-svscan's default bound since 2.12, which s6-overlay's PID 1 keeps:
/// the bound of root's scan directory.
const DEFAULT_MAX: usize = 1000;

/// Entries read from a scan directory, at most (well above both bounds).
const ENTRIES_MAX: usize = 200_000;

/// The bound of the s6-svscan watching `scandir`: root's (s6-overlay's)
/// keeps s6's default, any other is the user's scanner.
pub fn max_entries(scandir: &Dir) -> usize {
    if scandir.path() == std::path::Path::new(layout::ROOT_SCANDIR) { DEFAULT_MAX } else { USER_SCANNER_MAX }
}

/// A scan directory as s6-svscan would count it.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Census {
    /// Services and loggers it would supervise.
    pub supervised: usize,
    /// Entries `stat` fails on, with the errno: each stops every scan.
    pub unstatable: Vec<(OsString, Errno)>,
}

/// Counts `scandir`'s entries the way s6-svscan does: every directory not
/// starting with a dot (symlinks followed), plus its `log/` if it has one.
pub fn census(scandir: &Dir) -> Result<Census> {
    let mut c = Census::default();
    for (name, kind) in scandir.entries_typed(ENTRIES_MAX)? {
        if name.as_bytes().first() == Some(&b'.') {
            continue;
        }
        let is_dir = match kind {
            Some(Kind::Dir) => true,
            Some(k) if k != Kind::Symlink => false,
            _ => match fstatat(scandir.fd(), name.as_os_str(), AtFlags::empty()) {
                Ok(st) => SFlag::from_bits_truncate(st.st_mode & libc::S_IFMT) == SFlag::S_IFDIR,
                // Renamed away since the listing: s6-svscan would fail too.
                Err(e) => {
                    c.unstatable.push((name, e));
                    continue;
                }
            },
        };
        if !is_dir {
            continue;
        }
        c.supervised += 1;
        let mut log = name.as_bytes().to_vec();
        log.push(b'/');
        log.extend_from_slice(s6::LOG.as_bytes());
        if let Ok(st) = fstatat(scandir.fd(), OsStr::from_bytes(&log), AtFlags::empty())
            && SFlag::from_bits_truncate(st.st_mode & libc::S_IFMT) == SFlag::S_IFDIR
        {
            c.supervised += 1;
        }
    }
    Ok(c)
}

/// The warning for an entry s6-svscan cannot stat.
pub fn unstatable_warning(scandir: &Dir, name: &OsStr, e: Errno) -> String {
    format!(
        "s6-svscan cannot stat {}: {}: since s6 2.12 it stops every scan there (new services are not started); remove it",
        scandir.child_path(name).display(),
        e.desc()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_users_scanner_runs_with_this_bound() {
        let run = include_str!("../../s6-rc.d/profile-gateways/run");
        for want in
            [format!("/command/s6-svscan $bound {USER_SCANNER_MAX} -d 3 /run/hermes/service"), "{ /bin/echo -c } /bin/echo -C".to_string()]
        {
            assert!(run.contains(&want), "profile-gateways/run lacks {want:?}");
        }
    }

    #[test]
    fn counts_services_and_loggers_and_finds_dangling_symlinks() {
        let d = std::env::temp_dir().join(format!("hermes-s6-census-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        for p in ["a/log", "b", ".hidden/log", "c-target/log"] {
            std::fs::create_dir_all(d.join(p)).unwrap();
        }
        std::fs::write(d.join("file"), "").unwrap();
        std::os::unix::fs::symlink("c-target", d.join("c")).unwrap();
        std::os::unix::fs::symlink("nowhere", d.join("dangling")).unwrap();
        let c = census(&Dir::open(&d).unwrap()).unwrap();
        // a + a/log, b, c-target + log, c (-> c-target) + log.
        assert_eq!(c.supervised, 7);
        assert_eq!(c.unstatable, vec![(OsString::from("dangling"), Errno::ENOENT)]);
        std::fs::remove_dir_all(&d).unwrap();
    }
}

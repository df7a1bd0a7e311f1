//! Helpers shared by the integration tests: scratch trees, running the
//! built tools, stat snapshots, and running code as the unprivileged user.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The unprivileged user of the tests (the image's hermes).
pub const UID: u32 = 10000;
pub const GID: u32 = 10000;

/// True when running as root; otherwise prints why the test is skipped,
/// or panics when `HERMES_S6_REQUIRE_ROOT=1` (as `make check` sets).
pub fn root_or_skip(test: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    if std::env::var_os("HERMES_S6_REQUIRE_ROOT").is_some_and(|v| v == "1") {
        panic!("{test}: needs root and HERMES_S6_REQUIRE_ROOT=1 is set");
    }
    eprintln!("skipping {test}: needs root");
    false
}

/// A fresh directory removed on drop. World-traversable so the
/// unprivileged user can reach trees built inside it.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(tag: &str) -> Scratch {
        Scratch::new_in(&std::env::temp_dir(), tag)
    }
    /// [`Scratch::new`] in `base` (e.g. a tmpfs, as the image's /run).
    pub fn new_in(base: &Path, tag: &str) -> Scratch {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let p = base.join(format!("hermes-s6-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        Scratch(p)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
    pub fn join(&self, p: impl AsRef<Path>) -> PathBuf {
        self.0.join(p)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs a built tool as the current user.
pub fn run(tool: &str, args: &[impl AsRef<OsStr>]) -> Output {
    Command::new(tool).args(args).output().unwrap()
}

/// Runs a built tool as uid:gid (std drops supplementary groups when root).
pub fn run_as(uid: u32, gid: u32, tool: &str, args: &[impl AsRef<OsStr>]) -> Output {
    Command::new(tool).args(args).uid(uid).gid(gid).output().unwrap()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// (type bits, mode & 07777, uid, gid, ctime sec, ctime nsec) without following symlinks.
pub fn snap(p: &Path) -> (u32, u32, u32, u32, i64, i64) {
    let m = std::fs::symlink_metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    (m.mode() & 0o170000, m.mode() & 0o7777, m.uid(), m.gid(), m.ctime(), m.ctime_nsec())
}

/// (type bits, mode & 07777, uid, gid) without following symlinks.
pub fn ids(p: &Path) -> [u32; 4] {
    let s = snap(p);
    [s.0, s.1, s.2, s.3]
}

/// A path and its snapshot ([`snap`]).
pub type Snapped = (PathBuf, (u32, u32, u32, u32, i64, i64));

/// Every path below `root` with its snapshot, sorted.
pub fn tree_snap(root: &Path) -> Vec<Snapped> {
    let mut out = vec![(root.to_path_buf(), snap(root))];
    let mut todo = vec![root.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let s = snap(&p);
            if s.0 == 0o040000 {
                todo.push(p.clone());
            }
            out.push((p, s));
        }
    }
    out.sort();
    out
}

pub fn chown(p: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::lchown(p, Some(uid), Some(gid)).unwrap();
}

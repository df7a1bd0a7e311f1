//! Root writing in the user's directories, under attack: while root writes
//! the legacy migration record, rewrites a state file (start/stop/restart,
//! the planned-stop marker) and appends the boot log, a UID-10000 process
//! keeps exchanging (`RENAME_EXCHANGE`) a hard link of a root-owned 0666
//! canary with the names root creates. Root must never chown, chmod or
//! write the canary: every change goes through the fd of the inode root
//! created. Each scenario lasts until the attacker made 1,000,000 exchange
//! attempts (bounded at 120 s).
//!
//! Run against the code before this change, the migration and the boot
//! log scenarios give the canary to the user (see the commit message).

mod common;

use std::ffi::{CString, OsStr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;
use hermes_s6::boot_policy::Policy;
use hermes_s6::fs::publish::replace_file;
use hermes_s6::fs::{Dir, Owner};
use hermes_s6::profile::Profile;
use hermes_s6::reconcile::{self, Action, Entry};
use hermes_s6::state::{self, PriorExit};

const ATTEMPTS: u64 = 1_000_000;
const BOUND: Duration = Duration::from_secs(120);
const USER: Owner = Owner::Chown { uid: UID, gid: GID };

/// A user-owned home on the same filesystem as a root-owned 0666 canary,
/// with the canary hard-linked into the home as `bait`.
struct Setup {
    s: Scratch,
}

impl Setup {
    fn new(tag: &str) -> Setup {
        let s = Scratch::new(tag);
        std::fs::create_dir(s.join("home")).unwrap();
        chown(&s.join("home"), UID, GID);
        std::fs::write(s.join("canary"), "canary\n").unwrap();
        std::fs::set_permissions(s.join("canary"), std::os::unix::fs::PermissionsExt::from_mode(0o666)).unwrap();
        let setup = Setup { s };
        setup.bait(&setup.home().join("bait"));
        setup
    }
    fn home(&self) -> PathBuf {
        self.s.join("home")
    }
    /// Links the canary at `at` unless something is there already.
    fn bait(&self, at: &Path) {
        if std::fs::symlink_metadata(at).is_err() {
            let _ = std::fs::hard_link(self.s.join("canary"), at);
        }
    }
    /// Owner, group, mode, content.
    fn canary(&self) -> (u32, u32, u32, String) {
        let p = self.s.join("canary");
        let m = std::fs::symlink_metadata(&p).unwrap();
        (m.uid(), m.gid(), m.mode(), std::fs::read_to_string(&p).unwrap())
    }
    fn pristine(&self) -> (u32, u32, u32, String) {
        (0, 0, 0o100666, "canary\n".to_string())
    }
}

/// The attacker, as UID 10000: exchanges each pair of paths in turn until
/// `ATTEMPTS` attempts or `BOUND`; reports (attempts, exchanges done) on
/// the returned pipe when it exits.
fn spawn_attacker(pairs: &[(PathBuf, PathBuf)]) -> (nix::unistd::Pid, OwnedFd) {
    let c = |p: &Path| CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
    let pairs: Vec<(CString, CString)> = pairs.iter().map(|(a, b)| (c(a), c(b))).collect();
    let (r, w) = nix::unistd::pipe().unwrap();
    // SAFETY: the child only makes raw system calls, then _exit.
    match unsafe { nix::unistd::fork() }.unwrap() {
        nix::unistd::ForkResult::Child => unsafe {
            if libc::setgroups(0, std::ptr::null()) != 0 || libc::setgid(GID) != 0 || libc::setuid(UID) != 0 {
                libc::_exit(3);
            }
            let start = libc::time(std::ptr::null_mut());
            let (mut attempts, mut done) = (0u64, 0u64);
            while attempts < ATTEMPTS && libc::time(std::ptr::null_mut()) - start < BOUND.as_secs() as libc::time_t {
                let (a, b) = &pairs[(attempts % pairs.len() as u64) as usize];
                let r = libc::syscall(libc::SYS_renameat2, libc::AT_FDCWD, a.as_ptr(), libc::AT_FDCWD, b.as_ptr(), libc::RENAME_EXCHANGE);
                attempts += 1;
                if r == 0 {
                    done += 1;
                }
            }
            let mut out = [0u8; 16];
            out[..8].copy_from_slice(&attempts.to_ne_bytes());
            out[8..].copy_from_slice(&done.to_ne_bytes());
            libc::write(w.as_raw_fd(), out.as_ptr().cast(), 16);
            libc::_exit(0);
        },
        nix::unistd::ForkResult::Parent { child } => {
            drop(w);
            (child, r)
        }
    }
}

fn finished(pid: nix::unistd::Pid) -> bool {
    use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
    match waitpid(pid, Some(WaitPidFlag::WNOHANG)).unwrap() {
        WaitStatus::StillAlive => false,
        WaitStatus::Exited(_, 0) => true,
        other => panic!("attacker: {other:?}"),
    }
}

fn counts(r: OwnedFd) -> (u64, u64) {
    let mut f = unsafe { std::fs::File::from_raw_fd(std::os::fd::IntoRawFd::into_raw_fd(r)) };
    let mut buf = [0u8; 16];
    std::io::Read::read_exact(&mut f, &mut buf).unwrap();
    (u64::from_ne_bytes(buf[..8].try_into().unwrap()), u64::from_ne_bytes(buf[8..].try_into().unwrap()))
}

/// Runs `write` as root in a loop (`reset` after each) while the attacker
/// exchanges `pairs`; the canary must never change.
fn race(what: &str, setup: &Setup, pairs: &[(PathBuf, PathBuf)], mut write: impl FnMut() -> bool, mut reset: impl FnMut()) {
    let before = setup.pristine();
    assert_eq!(setup.canary(), before);
    let (attacker, report) = spawn_attacker(pairs);
    let start = Instant::now();
    let (mut runs, mut refused) = (0u64, 0u64);
    loop {
        if write() {
            runs += 1;
        } else {
            refused += 1;
        }
        let now = setup.canary();
        if now != before {
            let _ = nix::sys::signal::kill(attacker, nix::sys::signal::Signal::SIGKILL);
            let _ = nix::sys::wait::waitpid(attacker, None);
            panic!("{what}: the canary changed after {runs} writes: {now:?}");
        }
        reset();
        if finished(attacker) {
            break;
        }
        assert!(start.elapsed() < BOUND + Duration::from_secs(10), "{what}: the attacker did not finish");
    }
    let (attempts, exchanged) = counts(report);
    assert!(attempts >= ATTEMPTS, "{what}: only {attempts} exchange attempts in {BOUND:?}");
    assert!(exchanged > 0 && runs + refused > 100, "{what}: no race ran ({exchanged} exchanges, {runs}+{refused} writes)");
    eprintln!(
        "{what}: {attempts} exchange attempts ({exchanged} exchanges done), {runs} writes done, {refused} refused, canary unchanged, in {:.1?}",
        start.elapsed()
    );
}

#[test]
fn the_legacy_migration_record_never_reaches_a_root_file() {
    if !root_or_skip("attack_migration") {
        return;
    }
    let setup = Setup::new("attack-migration");
    let home = Dir::open(&setup.home()).unwrap();
    let h = setup.home();
    let pairs = [(h.join("bait"), h.join(".gateway_state.json.migrating"))];
    race(
        "migration record",
        &setup,
        &pairs,
        || state::write_migration(&home, 1_700_000_000, USER).is_ok(),
        || {
            let _ = home.unlink_at(OsStr::new("gateway_state.json"));
            setup.bait(&h.join("bait"));
        },
    );
}

#[test]
fn a_state_rewrite_as_root_never_reaches_a_root_file() {
    if !root_or_skip("attack_replace_file") {
        return;
    }
    let setup = Setup::new("attack-replace");
    let home = Dir::open(&setup.home()).unwrap();
    let h = setup.home();
    let staging = format!(".gateway_state.json.{}.tmp", std::process::id());
    let pairs = [(h.join("bait"), h.join(&staging))];
    let mut n = 0;
    race(
        "state rewrite (start/stop/restart)",
        &setup,
        &pairs,
        || {
            n += 1;
            // Both ways a rewrite goes: a fresh file, and an edit of one.
            if n % 2 == 0 {
                replace_file(&home, OsStr::new("gateway_state.json"), "{\"a\": NaN}\n", 0o644, USER).is_ok()
            } else {
                state::record_desired(&home, "stopped", n, USER).is_ok()
            }
        },
        || {
            let _ = home.unlink_at(OsStr::new("gateway_state.json"));
            setup.bait(&h.join("bait"));
        },
    );
}

#[test]
fn the_boot_log_as_root_never_reaches_a_root_file() {
    if !root_or_skip("attack_boot_log") {
        return;
    }
    let setup = Setup::new("attack-bootlog");
    let home = Dir::open(&setup.home()).unwrap();
    let h = setup.home();
    let logs = h.join("logs");
    let pairs = [(h.join("bait"), logs.clone()), (logs.join("bait"), logs.join("container-boot.log"))];
    let entry = Entry {
        profile: Profile::root(),
        prior_state: None,
        action: Action::Registered,
        prior_exit: PriorExit::Unknown,
        built: None,
        folded_into_root: false,
    };
    let mut n = 0;
    race(
        "boot log",
        &setup,
        &pairs,
        || {
            reconcile::boot_log::append_boot_log(&home, std::slice::from_ref(&entry), 1_700_000_000, USER, Policy::PerProfile, &mut |_| {})
                .is_ok()
        },
        || {
            n += 1;
            // A fresh log each time; every other time a fresh logs/ too.
            let _ = std::fs::remove_file(logs.join("container-boot.log"));
            if n % 2 == 0 {
                let _ = std::fs::remove_file(logs.join("bait"));
                let _ = std::fs::remove_dir(&logs);
                let _ = std::fs::remove_file(&logs);
            }
            setup.bait(&h.join("bait"));
            if logs.is_dir() {
                setup.bait(&logs.join("bait"));
            }
        },
    );
}

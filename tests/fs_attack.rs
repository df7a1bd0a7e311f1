//! The fd layer under attack: a UID-10000 process keeps exchanging a
//! directory of its tree with a symlink to a root-owned directory holding
//! a canary, while root walks the tree. The canary must never change.
//!
//! A negative control runs the same attack against a path-based lchown and
//! must escape: it shows the attack is real and the test able to fail.

mod common;

use std::ffi::{CString, OsStr};
use std::os::unix::fs::{MetadataExt, symlink};
use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use hermes_s6::fs::Dir;
use hermes_s6::fs::tree::{Limits, chown_tree, remove_tree};

const SWAPS: u64 = 100_000;

/// Layout: base/tree (user-owned) holds d/ (user dir with f) and s ->
/// base/outside (root-owned, holds the canary f).
fn layout(s: &Scratch) -> (std::path::PathBuf, std::path::PathBuf) {
    let tree = s.join("tree");
    let outside = s.join("outside");
    std::fs::create_dir_all(tree.join("d")).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(tree.join("d/f"), "user data").unwrap();
    std::fs::write(outside.join("f"), "canary").unwrap();
    symlink(&outside, tree.join("s")).unwrap();
    for p in [tree.clone(), tree.join("d"), tree.join("d/f"), tree.join("s")] {
        chown(&p, UID, GID);
    }
    (tree, outside)
}

/// Forks the attacker: as UID 10000 it exchanges `d` and `s` in `tree`
/// until it has done `SWAPS` exchanges or 5 s have passed.
fn spawn_attacker(tree: &Path) -> nix::unistd::Pid {
    let d = CString::new(tree.join("d").into_os_string().into_encoded_bytes()).unwrap();
    let s = CString::new(tree.join("s").into_os_string().into_encoded_bytes()).unwrap();
    // SAFETY: the child only makes raw system calls, then _exit.
    match unsafe { nix::unistd::fork() }.unwrap() {
        nix::unistd::ForkResult::Child => unsafe {
            if libc::setgroups(0, std::ptr::null()) != 0 || libc::setgid(GID) != 0 || libc::setuid(UID) != 0 {
                libc::_exit(3);
            }
            let start = libc::time(std::ptr::null_mut());
            let mut done = 0u64;
            while done < SWAPS && libc::time(std::ptr::null_mut()) - start < 5 {
                let r = libc::syscall(libc::SYS_renameat2, libc::AT_FDCWD, d.as_ptr(), libc::AT_FDCWD, s.as_ptr(), libc::RENAME_EXCHANGE);
                if r == 0 {
                    done += 1;
                }
            }
            libc::_exit(if done > 0 { 0 } else { 4 });
        },
        nix::unistd::ForkResult::Parent { child } => child,
    }
}

fn alive(pid: nix::unistd::Pid) -> Option<i32> {
    use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
    match waitpid(pid, Some(WaitPidFlag::WNOHANG)).unwrap() {
        WaitStatus::StillAlive => None,
        WaitStatus::Exited(_, code) => Some(code),
        other => panic!("attacker: {other:?}"),
    }
}

fn canary(outside: &Path) -> (u32, u32, u32, String) {
    let m = std::fs::symlink_metadata(outside.join("f")).unwrap();
    (m.uid(), m.gid(), m.mode(), std::fs::read_to_string(outside.join("f")).unwrap())
}

#[test]
fn fd_chown_walk_never_escapes_a_directory_symlink_swap() {
    if !root_or_skip("fd_chown_walk_attack") {
        return;
    }
    let s = Scratch::new("attack-chown");
    let (tree, outside) = layout(&s);
    let before = canary(&outside);
    let attacker = spawn_attacker(&tree);
    let base = Dir::open(s.path()).unwrap();
    let (mut walks, mut failed) = (0u64, 0u64);
    let code = loop {
        // Give the tree to the user, as reconcile does when run as root;
        // the canary is root-owned, so any escape shows on it.
        match chown_tree(&base, OsStr::new("tree"), UID, GID, Limits::default()) {
            Ok(()) => walks += 1,
            Err(_) => failed += 1,
        }
        assert_eq!(canary(&outside), before, "escaped after {walks} walks");
        if let Some(code) = alive(attacker) {
            break code;
        }
    };
    assert_eq!(code, 0, "the attacker could not swap");
    assert!(walks + failed > 10, "too few walks to mean anything: {walks}+{failed}");
    eprintln!("fd chown walk: {walks} complete, {failed} refused mid-swap, canary intact");
}

#[test]
fn fd_removal_never_escapes_a_directory_symlink_swap() {
    if !root_or_skip("fd_remove_attack") {
        return;
    }
    let s = Scratch::new("attack-remove");
    let (tree, outside) = layout(&s);
    let before = canary(&outside);
    let attacker = spawn_attacker(&tree);
    let tree_dir = Dir::open(&tree).unwrap();
    let mut removed = 0u64;
    loop {
        if let Ok(true) = remove_tree(&tree_dir, OsStr::new("d"), Limits::default()) {
            removed += 1;
        }
        assert!(outside.join("f").exists(), "canary deleted after {removed} removals");
        assert_eq!(canary(&outside), before);
        // Put back whatever the removal took, so the attack goes on.
        // Through fds: the attacker may swap d for the symlink at any
        // moment, and a path-based write here would hit the canary itself.
        if std::fs::symlink_metadata(tree.join("d")).is_err() {
            let _ = tree_dir.mkdir_at(OsStr::new("d"), 0o755);
            if let Ok(d) = tree_dir.open_dir(OsStr::new("d")) {
                let _ = d.create_file(OsStr::new("f"), 0o644, b"user data");
                let _ = d.chown(UID, GID);
            }
        }
        if std::fs::symlink_metadata(tree.join("s")).is_err() {
            let _ = symlink(&outside, tree.join("s"));
            let _ = std::os::unix::fs::lchown(tree.join("s"), Some(UID), Some(GID));
        }
        if alive(attacker).is_some() {
            break;
        }
    }
    assert!(outside.is_dir() && std::fs::read_dir(&outside).unwrap().count() == 1);
    eprintln!("fd removal: {removed} removals under attack, canary intact");
}

#[test]
fn negative_control_a_path_based_chown_escapes_under_the_same_attack() {
    if !root_or_skip("path_chown_control") {
        return;
    }
    let s = Scratch::new("attack-control");
    let (tree, outside) = layout(&s);
    let attacker = spawn_attacker(&tree);
    let start = Instant::now();
    let mut tries = 0u64;
    let escaped = loop {
        tries += 1;
        // What a shell helper does: chown -h on a multi-component path.
        let _ = std::os::unix::fs::lchown(tree.join("d/f"), Some(20000), Some(20000));
        if canary(&outside).0 == 20000 {
            break true;
        }
        if alive(attacker).is_some() || start.elapsed() > Duration::from_secs(5) {
            break false;
        }
    };
    let _ = nix::sys::signal::kill(attacker, nix::sys::signal::Signal::SIGKILL);
    let _ = nix::sys::wait::waitpid(attacker, None);
    assert!(escaped, "the path-based chown never escaped in {tries} tries: the attack is not exercised");
    eprintln!("path-based lchown escaped after {tries} tries");
}

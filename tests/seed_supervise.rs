//! hermes-seed-supervise, run as root and as the user, on scratch trees.
//! (Its effect on a real s6 supervisor is tested in tests/integration/.)

mod common;

use std::os::unix::fs::symlink;
use std::path::Path;

use common::*;

const TOOL: &str = env!("CARGO_BIN_EXE_hermes-seed-supervise");
const USER: &str = ":10000:10000";

const DIR: u32 = 0o040000;
const FIFO: u32 = 0o010000;

fn service(s: &Scratch, name: &str) -> std::path::PathBuf {
    let d = s.join(name);
    std::fs::create_dir(&d).unwrap();
    std::fs::write(d.join("run"), "#!/bin/sh\nexec sleep 1000\n").unwrap();
    d
}

fn assert_skeleton(d: &Path, uid: u32, gid: u32) {
    assert_eq!(&ids(&d.join("event")), &[DIR, 0o3730, uid, gid], "event/");
    assert_eq!(&ids(&d.join("supervise")), &[DIR, 0o755, uid, gid], "supervise/");
    assert_eq!(&ids(&d.join("supervise/control")), &[FIFO, 0o660, uid, gid], "supervise/control");
    assert!(!d.join("supervise/event").exists(), "supervise/event is not part of s6");
}

#[test]
fn root_seeds_for_the_user_with_exact_modes_and_owners() {
    if !root_or_skip("root_seeds_for_the_user") {
        return;
    }
    let s = Scratch::new("seed-root");
    let d = service(&s, "svc");
    // A umask that would strip group bits must not matter.
    let o = std::process::Command::new("sh").arg("-c").arg(format!("umask 077; exec {TOOL} -u {USER} {}", d.display())).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(o.stderr.is_empty(), "silent on success: {}", stderr(&o));
    assert_skeleton(&d, UID, GID);
    assert!(!d.join("log").exists(), "log/ is never created");
    // The service directory itself is not changed.
    assert_eq!(&ids(&d), &[DIR, 0o755, 0, 0]);
}

#[test]
fn log_subservice_is_seeded_when_present() {
    if !root_or_skip("log_subservice") {
        return;
    }
    let s = Scratch::new("seed-log");
    let d = service(&s, "svc");
    std::fs::create_dir(d.join("log")).unwrap();
    let o = run(TOOL, &["-v", "-u", USER, d.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_skeleton(&d, UID, GID);
    assert_skeleton(&d.join("log"), UID, GID);
    assert_eq!(stderr(&o).matches(": info: created ").count(), 6, "{}", stderr(&o));
}

#[test]
fn a_second_run_changes_nothing_and_nothing_outside_is_touched() {
    if !root_or_skip("idempotent") {
        return;
    }
    let s = Scratch::new("seed-idem");
    let d = service(&s, "svc");
    std::fs::create_dir(d.join("log")).unwrap();
    let sibling = service(&s, "other");
    let outside_before = tree_snap(&sibling);
    assert!(run(TOOL, &["-u", USER, d.to_str().unwrap()]).status.success());
    let before = tree_snap(&d);
    std::thread::sleep(std::time::Duration::from_millis(20));
    let o = run(TOOL, &["-u", USER, d.to_str().unwrap()]);
    assert!(o.status.success() && o.stderr.is_empty(), "{}", stderr(&o));
    assert_eq!(tree_snap(&d), before, "modes, owners or ctimes changed");
    assert_eq!(tree_snap(&sibling), outside_before);
}

#[test]
fn run_as_the_user_keeps_its_own_ownership() {
    if !root_or_skip("run_as_user") {
        return;
    }
    let s = Scratch::new("seed-user");
    let d = service(&s, "svc");
    chown(&d, UID, GID);
    let o = run_as(UID, GID, TOOL, &["-u", USER, d.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_skeleton(&d, UID, GID);
    // Another unprivileged uid may not seed for the user.
    let d2 = service(&s, "svc2");
    chown(&d2, 20000, 20000);
    let o = run_as(20000, 20000, TOOL, &["-u", USER, d2.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(100), "{}", stderr(&o));
    assert!(!d2.join("event").exists());
}

#[test]
fn existing_live_entries_are_left_exactly_as_they_are() {
    if !root_or_skip("existing_entries") {
        return;
    }
    let s = Scratch::new("seed-live");
    let d = service(&s, "svc");
    // What a root s6-supervise creates by itself.
    std::fs::create_dir(d.join("supervise")).unwrap();
    std::fs::set_permissions(d.join("supervise"), std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    nix::unistd::mkfifo(&d.join("supervise/control"), nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let before = snap(&d.join("supervise"));
    let o = run(TOOL, &["-u", USER, d.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(snap(&d.join("supervise")), before);
    assert!(stderr(&o).contains("warning: keeping existing"), "{}", stderr(&o));
    // The missing event/ was still created for the user.
    assert_eq!(&ids(&d.join("event")), &[DIR, 0o3730, UID, GID]);
}

fn refused(args: &[&str], code: i32, needle: &str) {
    let o = run(TOOL, args);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(code), "{args:?}: {err}");
    assert!(err.contains(needle), "{args:?}: {err:?} lacks {needle:?}");
    assert!(err.starts_with("hermes-seed-supervise: "), "{err}");
    assert!(!err.contains("os error"), "{err}");
}

#[test]
fn bad_invocations_are_refused_with_one_clear_line() {
    if !root_or_skip("refusals") {
        return;
    }
    let s = Scratch::new("seed-refuse");
    refused(&[], 100, "hermes-seed-supervise: usage: hermes-seed-supervise");
    refused(&["-q", "x"], 100, "usage:");
    let d = service(&s, "svc");
    refused(&["-u", "no-such-user-here", d.to_str().unwrap()], 100, "no such user");
    refused(&["-u", USER, s.join("missing").to_str().unwrap()], 111, "No such file or directory");
    std::fs::write(s.join("file"), "").unwrap();
    refused(&["-u", USER, s.join("file").to_str().unwrap()], 100, "is a regular file, expected a directory");
    symlink(&d, s.join("link")).unwrap();
    refused(&["-u", USER, s.join("link").to_str().unwrap()], 100, "is a symlink");
    assert!(!d.join("event").exists() && !d.join("supervise").exists(), "nothing created through the symlink");
}

#[test]
fn wrong_typed_or_symlinked_skeleton_entries_are_refused_and_nothing_is_created() {
    if !root_or_skip("wrong_types") {
        return;
    }
    let s = Scratch::new("seed-types");
    let target = s.join("target");
    std::fs::create_dir(&target).unwrap();
    type Plant = fn(&Path, &Path);
    let cases: [(&str, Plant, &str); 7] = [
        ("event-symlink", |d, t| symlink(t, d.join("event")).unwrap(), "event: is a symlink"),
        ("event-dangling", |d, _| symlink("/nonexistent", d.join("event")).unwrap(), "event: is a symlink"),
        ("event-file", |d, _| std::fs::write(d.join("event"), "").unwrap(), "event: is a regular file"),
        ("supervise-symlink", |d, t| symlink(t, d.join("supervise")).unwrap(), "supervise: is a symlink"),
        (
            "control-symlink",
            |d, t| {
                std::fs::create_dir(d.join("supervise")).unwrap();
                symlink(t, d.join("supervise/control")).unwrap()
            },
            "control: is a symlink",
        ),
        ("control-dir", |d, _| std::fs::create_dir_all(d.join("supervise/control")).unwrap(), "control: is a directory, expected a FIFO"),
        ("log-symlink", |d, t| symlink(t, d.join("log")).unwrap(), "log: is a symlink"),
    ];
    for (name, plant, needle) in cases {
        let d = service(&s, name);
        plant(&d, &target);
        let before = tree_snap(&d);
        refused(&["-u", USER, d.to_str().unwrap()], 100, needle);
        assert_eq!(tree_snap(&d), before, "{name}: something was created or changed");
        assert_eq!(std::fs::read_dir(&target).unwrap().count(), 0, "{name}: wrote through a symlink");
    }
}

#[test]
fn several_operands_go_on_after_a_failure() {
    if !root_or_skip("several") {
        return;
    }
    let s = Scratch::new("seed-many");
    let a = service(&s, "a");
    let b = service(&s, "b");
    let o = run(TOOL, &["-u", USER, a.to_str().unwrap(), s.join("missing").to_str().unwrap(), b.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(111), "{}", stderr(&o));
    assert!(stderr(&o).contains("warning: unable to open"), "{}", stderr(&o));
    assert_skeleton(&a, UID, GID);
    assert_skeleton(&b, UID, GID);
    // The highest code wins, not the last (doc/conventions.md#several-objects):
    // a missing servicedir (111) before a symlinked one (100).
    symlink(&a, s.join("link")).unwrap();
    let o = run(TOOL, &["-u", USER, s.join("missing").to_str().unwrap(), s.join("link").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(111), "{}", stderr(&o));
    assert!(stderr(&o).contains("is a symlink"), "{}", stderr(&o));
}

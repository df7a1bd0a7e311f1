//! The hand-over of what root built for the user (`fs::handover`): the
//! private directory must be the one just made, only root's own single-link
//! objects are pinned, and everything ends up the user's with exact modes,
//! the top last.

mod common;

use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt;

use common::*;
use hermes_s6::fs::Dir;
use hermes_s6::fs::handover::{self, Handover};

#[test]
fn only_the_private_directory_just_made_is_built_in() {
    if !root_or_skip("handover_private") {
        return;
    }
    let s = Scratch::new("handover-private");
    let top = Dir::open(s.path()).unwrap();
    let d = handover::private_dir(&top, OsStr::new("p")).unwrap().expect("made");
    assert_eq!(&ids(&s.join("p")), &[0o040000, 0o700, 0, 0]);
    assert!(handover::private_dir(&top, OsStr::new("p")).unwrap().is_none(), "an existing name is not reused");
    drop(d);
    // Another directory under a private-looking name: refused.
    for (name, uid, mode, sub) in [("users", UID, 0o700, false), ("open", 0, 0o755, false), ("full", 0, 0o700, true)] {
        let p = s.join(name);
        std::fs::create_dir(&p).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        chown(&p, uid, GID);
        if sub {
            std::fs::create_dir(p.join("x")).unwrap();
        }
        let e = handover::check_private(&top.open_dir(OsStr::new(name)).unwrap()).unwrap_err();
        assert!(e.to_string().contains("is not the private directory just made"), "{name}: {e}");
    }
}

#[test]
fn a_fresh_private_directory_is_exactly_0700_and_empty() {
    if !root_or_skip("handover_fresh") {
        return;
    }
    let s = Scratch::new("handover-fresh");
    let top = Dir::open(s.path()).unwrap();
    let made = handover::private_dir(&top, OsStr::new("p")).unwrap().expect("made");
    handover::check_fresh(&made).unwrap();
    // Root's own, no access for others (check_private takes them), but not
    // what mkdir just made: an older directory moved in under the name.
    for (name, mode, file) in [("holding", 0o700, true), ("setgid", 0o2700, false), ("sticky", 0o1700, false), ("read-only", 0o500, false)]
    {
        let p = s.join(name);
        std::fs::create_dir(&p).unwrap();
        if file {
            std::fs::write(p.join("container-boot.log"), "x").unwrap();
        }
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        let d = top.open_dir(OsStr::new(name)).unwrap();
        handover::check_private(&d).unwrap_or_else(|e| panic!("{name}: {e}"));
        let e = handover::check_fresh(&d).unwrap_err();
        assert!(e.to_string().contains("is not the private directory just made"), "{name}: {e}");
        assert_eq!(e.exit_code(), 100, "{name}: a refusal");
    }
    // And whatever check_private refuses.
    let p = s.join("users");
    std::fs::create_dir(&p).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o700)).unwrap();
    chown(&p, UID, GID);
    assert!(handover::check_fresh(&top.open_dir(OsStr::new("users")).unwrap()).is_err());
}

#[test]
fn pinned_objects_are_roots_own_with_one_link_and_end_up_the_users() {
    if !root_or_skip("handover_give") {
        return;
    }
    let s = Scratch::new("handover-give");
    let top = Dir::open(s.path()).unwrap();
    let p = handover::private_dir(&top, OsStr::new("p")).unwrap().unwrap();
    std::fs::write(s.join("p/run"), "x").unwrap();
    std::fs::create_dir(s.join("p/event")).unwrap();
    nix::unistd::mkfifo(&s.join("p/control"), nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    std::fs::write(s.join("p/linked"), "x").unwrap();
    std::fs::hard_link(s.join("p/linked"), s.join("second")).unwrap();
    std::fs::write(s.join("p/users"), "x").unwrap();
    chown(&s.join("p/users"), UID, GID);
    std::os::unix::fs::symlink("/etc/passwd", s.join("p/link")).unwrap();
    let mut hand = Handover::new(UID, GID);
    for (name, why) in [("linked", "2 links"), ("users", "10000:10000"), ("link", "is a symlink")] {
        let e = hand.pin(&p, OsStr::new(name), 0o644).unwrap_err();
        assert!(e.to_string().contains(why), "{name}: {e}");
    }
    hand.pin(&p, OsStr::new("run"), 0o755).unwrap();
    hand.pin(&p, OsStr::new("event"), 0o3730).unwrap();
    hand.pin(&p, OsStr::new("control"), 0o660).unwrap();
    hand.give(Some((&p, 0o755))).unwrap();
    assert_eq!(&ids(&s.join("p/run")), &[0o100000, 0o755, UID, GID]);
    assert_eq!(&ids(&s.join("p/event")), &[0o040000, 0o3730, UID, GID]);
    assert_eq!(&ids(&s.join("p/control")), &[0o010000, 0o660, UID, GID]);
    assert_eq!(&ids(&s.join("p")), &[0o040000, 0o755, UID, GID]);
    assert_eq!(&ids(&s.join("second")), &[0o100000, 0o644, 0, 0], "the refused object is untouched");
}

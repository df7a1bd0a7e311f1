//! The fd layer's contracts on scratch trees: publish, bounded removal,
//! hard links, FIFOs, devices, mount points, privilege drop.

mod common;

use std::ffi::OsStr;
use std::os::unix::fs::{MetadataExt, symlink};

use common::*;
use hermes_s6::error::Cause;
use hermes_s6::fs::publish::{Published, publish};
use hermes_s6::fs::tree::{Limits, chown_tree, remove_tree};
use hermes_s6::fs::{Dir, Kind};

fn os(s: &str) -> &OsStr {
    OsStr::new(s)
}

#[test]
fn publish_renames_a_new_slot_and_swaps_an_existing_one() {
    let s = Scratch::new("publish");
    let parent = Dir::open(s.path()).unwrap();
    std::fs::create_dir(s.join(".slot.tmp")).unwrap();
    std::fs::write(s.join(".slot.tmp/v"), "1").unwrap();
    assert_eq!(publish(&parent, os(".slot.tmp"), os("slot")).unwrap(), Published::New);
    assert!(!s.join(".slot.tmp").exists());
    std::fs::create_dir(s.join(".slot.tmp")).unwrap();
    std::fs::write(s.join(".slot.tmp/v"), "2").unwrap();
    assert_eq!(publish(&parent, os(".slot.tmp"), os("slot")).unwrap(), Published::Replaced);
    assert_eq!(std::fs::read_to_string(s.join("slot/v")).unwrap(), "2");
    assert_eq!(std::fs::read_to_string(s.join(".slot.tmp/v")).unwrap(), "1", "the old tree is left aside");
}

#[test]
fn removal_is_bounded_and_fails_closed() {
    let s = Scratch::new("bounds");
    let parent = Dir::open(s.path()).unwrap();
    let mut deep = s.join("deep");
    for _ in 0..10 {
        deep.push("d");
    }
    std::fs::create_dir_all(&deep).unwrap();
    let e = remove_tree(&parent, os("deep"), Limits { depth: 5, entries: 1000 }).unwrap_err();
    assert!(matches!(e.cause(), Cause::Limit(_)), "{e}");
    assert!(e.to_string().contains("deeper than 5 levels"), "{e}");
    assert!(s.join("deep").exists(), "the tree is still there after the refusal");
    assert!(remove_tree(&parent, os("deep"), Limits::default()).unwrap());
    std::fs::create_dir(s.join("wide")).unwrap();
    for i in 0..50 {
        std::fs::write(s.join(format!("wide/{i}")), "").unwrap();
    }
    let e = remove_tree(&parent, os("wide"), Limits { depth: 5, entries: 10 }).unwrap_err();
    assert!(e.to_string().contains("more than 10 entries"), "{e}");
    assert!(!remove_tree(&parent, os("absent"), Limits::default()).unwrap());
}

#[test]
fn removal_unlinks_symlinks_and_fifos_without_touching_their_targets() {
    let s = Scratch::new("rm-links");
    let parent = Dir::open(s.path()).unwrap();
    std::fs::create_dir_all(s.join("outside")).unwrap();
    std::fs::write(s.join("outside/keep"), "canary").unwrap();
    std::fs::create_dir_all(s.join("t/sub")).unwrap();
    symlink(s.join("outside"), s.join("t/sub/link")).unwrap();
    symlink("/etc", s.join("t/etc")).unwrap();
    nix::unistd::mkfifo(&s.join("t/fifo"), nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    std::fs::hard_link(s.join("outside/keep"), s.join("t/sub/hard")).unwrap();
    assert!(remove_tree(&parent, os("t"), Limits::default()).unwrap());
    assert!(!s.join("t").exists());
    assert_eq!(std::fs::read_to_string(s.join("outside/keep")).unwrap(), "canary");
    assert!(std::path::Path::new("/etc/passwd").exists());
}

#[test]
fn chown_walk_refuses_hard_links_and_devices() {
    if !root_or_skip("chown_refusals") {
        return;
    }
    let s = Scratch::new("chown-refuse");
    let parent = Dir::open(s.path()).unwrap();
    std::fs::write(s.join("canary"), "root's").unwrap();
    std::fs::create_dir(s.join("t")).unwrap();
    std::fs::hard_link(s.join("canary"), s.join("t/link")).unwrap();
    let e = chown_tree(&parent, os("t"), UID, GID, Limits::default()).unwrap_err();
    assert!(e.to_string().contains("has 2 hard links"), "{e}");
    assert_eq!(std::fs::metadata(s.join("canary")).unwrap().uid(), 0);
    std::fs::remove_file(s.join("t/link")).unwrap();
    nix::sys::stat::mknod(
        &s.join("t/null"),
        nix::sys::stat::SFlag::S_IFCHR,
        nix::sys::stat::Mode::from_bits_truncate(0o666),
        nix::sys::stat::makedev(1, 3),
    )
    .unwrap();
    let e = chown_tree(&parent, os("t"), UID, GID, Limits::default()).unwrap_err();
    assert!(e.to_string().contains("is a device or socket"), "{e}");
    assert_eq!(std::fs::symlink_metadata(s.join("t/null")).unwrap().uid(), 0);
}

#[test]
fn walks_do_not_cross_onto_another_filesystem() {
    if !root_or_skip("mount_points") {
        return;
    }
    let s = Scratch::new("xdev");
    let parent = Dir::open(s.path()).unwrap();
    std::fs::create_dir_all(s.join("t/mnt")).unwrap();
    let mnt = s.join("t/mnt");
    nix::mount::mount(Some("tmpfs"), &mnt, Some("tmpfs"), nix::mount::MsFlags::empty(), None::<&str>).unwrap();
    std::fs::write(mnt.join("volume-data"), "precious").unwrap();
    let e = remove_tree(&parent, os("t"), Limits::default()).unwrap_err();
    let precious = std::fs::read_to_string(mnt.join("volume-data"));
    nix::mount::umount(&mnt).unwrap();
    assert!(e.to_string().contains("is on another filesystem"), "{e}");
    assert_eq!(precious.unwrap(), "precious");
}

#[test]
fn untrusted_reads_never_block_or_follow() {
    let s = Scratch::new("read");
    let dir = Dir::open(s.path()).unwrap();
    nix::unistd::mkfifo(&s.join("fifo"), nix::sys::stat::Mode::from_bits_truncate(0o666)).unwrap();
    let e = dir.read_file(os("fifo"), 1024).unwrap_err();
    assert!(e.to_string().contains("is a FIFO, expected a regular file"), "{e}");
    symlink("/etc/passwd", s.join("link")).unwrap();
    assert!(dir.read_file(os("link"), 1024).unwrap_err().to_string().contains("is a symlink"));
    std::fs::write(s.join("big"), vec![b'x'; 2048]).unwrap();
    assert!(dir.read_file(os("big"), 1024).unwrap_err().to_string().contains("larger than 1024 bytes"));
    std::fs::write(s.join("ok"), "{}").unwrap();
    assert_eq!(dir.read_file(os("ok"), 1024).unwrap().unwrap(), b"{}");
    assert_eq!(dir.read_file(os("missing"), 1024).unwrap(), None);
    assert_eq!(dir.stat_at(os("fifo")).unwrap().unwrap().kind, Kind::Fifo);
}

#[test]
fn a_lock_file_is_exclusive_refuses_non_files_and_survives_removal() {
    let s = Scratch::new("lock");
    let dir = Dir::open(s.path()).unwrap();
    let held = dir.lock_file(os("l")).unwrap();
    // Another open file description cannot take it while it is held.
    let other = std::fs::File::open(s.join("l")).unwrap();
    use std::os::fd::AsRawFd;
    // SAFETY: flock on an fd we own.
    let r = unsafe { libc::flock(other.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    assert_eq!((r, nix::errno::Errno::last()), (-1, nix::errno::Errno::EWOULDBLOCK), "held exclusively");
    // A waiter woken on a file its holder removed locks the new one.
    let waiter = std::thread::spawn({
        let path = s.path().to_path_buf();
        move || {
            let dir = Dir::open(&path).unwrap();
            let fd = dir.lock_file(os("l")).unwrap();
            nix::sys::stat::fstat(&fd).unwrap().st_ino
        }
    });
    std::thread::sleep(std::time::Duration::from_millis(50));
    assert!(dir.unlink_at(os("l")).unwrap());
    drop(held);
    let ino = waiter.join().unwrap();
    assert_eq!(std::fs::metadata(s.join("l")).unwrap().ino(), ino, "the waiter holds the file that is there");
    nix::unistd::mkfifo(&s.join("fifo"), nix::sys::stat::Mode::from_bits_truncate(0o666)).unwrap();
    assert!(dir.lock_file(os("fifo")).unwrap_err().to_string().contains("is a FIFO, expected a regular file"));
    symlink("/etc/passwd", s.join("link")).unwrap();
    assert!(dir.lock_file(os("link")).unwrap_err().to_string().contains("is a symlink"));
}

#[test]
fn names_must_be_single_components() {
    let s = Scratch::new("names");
    let dir = Dir::open(s.path()).unwrap();
    for bad in ["a/b", "..", ".", ""] {
        assert!(dir.open_dir(os(bad)).is_err(), "{bad:?}");
        assert!(dir.mkdir_at(os(bad), 0o700).is_err(), "{bad:?}");
    }
}

#[test]
fn privilege_drop_sets_groups_then_gid_then_uid() {
    if !root_or_skip("drop_privileges") {
        return;
    }
    let account = hermes_s6::user::Account { name: ":10000:10000".into(), uid: UID, gid: GID, groups: vec![GID, 29] };
    // SAFETY: the child only calls the drop and raw syscalls, then _exit.
    match unsafe { nix::unistd::fork() }.unwrap() {
        nix::unistd::ForkResult::Child => {
            let ok = hermes_s6::user::drop_privileges(&account).is_ok()
                && nix::unistd::getuid().as_raw() == UID
                && nix::unistd::getgid().as_raw() == GID
                && nix::unistd::getgroups().map(|g| g.len() == 2).unwrap_or(false)
                && nix::unistd::setuid(nix::unistd::Uid::from_raw(0)).is_err();
            unsafe { libc::_exit(if ok { 0 } else { 1 }) };
        }
        nix::unistd::ForkResult::Parent { child } => {
            let st = nix::sys::wait::waitpid(child, None).unwrap();
            assert_eq!(st, nix::sys::wait::WaitStatus::Exited(child, 0));
        }
    }
}

/// `/run` under a plain `docker run`: an overlayfs whose layers are on two
/// filesystems, without xino. A FIFO there reports its layer's st_dev, not
/// the overlay's; the cross-filesystem guard compares mounts, so it is
/// accepted, while a real other filesystem mounted inside is still refused.
#[test]
fn overlay_without_xino_is_one_mount_and_a_real_mount_inside_is_refused() {
    use hermes_s6::perms::{Act, Found, Want, conform_dir, conform_fifo};
    use nix::mount::{MsFlags, mount, umount};
    if !root_or_skip("overlay mounts") {
        return;
    }
    let s = Scratch::new("xino");
    for d in ["lower", "rw", "run"] {
        std::fs::create_dir(s.join(d)).unwrap();
    }
    let (lower, rw, run) = (s.join("lower"), s.join("rw"), s.join("run"));
    mount(Some("tmpfs"), &lower, Some("tmpfs"), MsFlags::empty(), None::<&str>).unwrap();
    mount(Some("tmpfs"), &rw, Some("tmpfs"), MsFlags::empty(), None::<&str>).unwrap();
    std::fs::create_dir_all(lower.join("svc/supervise")).unwrap();
    std::fs::create_dir(rw.join("upper")).unwrap();
    std::fs::create_dir(rw.join("work")).unwrap();
    let opts = format!("lowerdir={},upperdir={}/upper,workdir={}/work,xino=off", lower.display(), rw.display(), rw.display());
    mount(Some("overlay"), &run, Some("overlay"), MsFlags::empty(), Some(opts.as_str())).unwrap();
    let result = std::panic::catch_unwind(|| {
        nix::unistd::mkfifo(&run.join("svc/supervise/control"), nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let svc = Dir::open(&run.join("svc")).unwrap();
        let sup = svc.open_dir(os("supervise")).unwrap();
        let fifo_dev = std::fs::symlink_metadata(run.join("svc/supervise/control")).unwrap().dev();
        assert_ne!(fifo_dev, sup.stat().unwrap().dev, "the FIFO reports its layer's st_dev (the case this is about)");
        let mount_id = svc.mount_id().unwrap();
        let want = Want { kind: Kind::Fifo, mode: 0o620, uid: 0, gid: 10000 };
        let mut log = Vec::new();
        let found = conform_fifo(&sup, "control", &want, Some(mount_id), Act::Change, &mut log).unwrap();
        assert!(matches!(found, Found::Present(..)));
        assert_eq!(std::fs::symlink_metadata(run.join("svc/supervise/control")).unwrap().gid(), 10000);

        // A real filesystem mounted on supervise/ is refused, untouched.
        mount(Some("tmpfs"), &run.join("svc/supervise"), Some("tmpfs"), MsFlags::empty(), None::<&str>).unwrap();
        let want_dir = Want { kind: Kind::Dir, mode: 0o710, uid: 0, gid: 10000 };
        let e = conform_dir(&svc, "supervise", &want_dir, Some(mount_id), Act::Change, &mut log).map(|_| ()).unwrap_err();
        let mode = std::fs::metadata(run.join("svc/supervise")).unwrap().mode() & 0o7777;
        umount(&run.join("svc/supervise")).unwrap();
        assert!(e.to_string().contains("is on another filesystem"), "{e}");
        assert_ne!(mode, 0o710, "the other filesystem's directory was left alone");
    });
    umount(&run).unwrap();
    umount(&rw).unwrap();
    umount(&lower).unwrap();
    if let Err(p) = result {
        std::panic::resume_unwind(p);
    }
}

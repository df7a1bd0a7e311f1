//! The s6 status reader and control writer against a real s6-supervise
//! (Debian's s6): every state agrees with `s6-svstat -o`.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use hermes_s6::fs::Dir;
use hermes_s6::s6::control::{self, Sent};
use hermes_s6::s6::status::{self, Death};

fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < Duration::from_secs(5), "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// `s6-svstat -o up,wantedup,normallyup,ready,pid` as our reader sees it.
fn ours(svc: &Dir) -> String {
    let s = status::read(svc).unwrap().expect("a status");
    let pid = if s.is_up() { s.pid.to_string() } else { "-1".into() };
    format!("{} {} {} {} {pid}", s.is_up(), s.want_up, !status::normally_down(svc).unwrap(), s.is_ready())
}

fn theirs(path: &Path) -> String {
    let o = Command::new("s6-svstat").args(["-o", "up,wantedup,normallyup,ready,pid"]).arg(path).output().unwrap();
    assert!(o.status.success(), "s6-svstat: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout).unwrap().trim().to_string()
}

fn supervise(dir: &Path) -> Child {
    Command::new("s6-supervise").arg(dir).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap()
}

#[test]
fn status_and_control_agree_with_s6_svstat_in_every_state() {
    let s = Scratch::new("s6-status");
    let d = s.join("svc");
    std::fs::create_dir(&d).unwrap();
    std::fs::write(d.join("run"), "#!/bin/sh\n[ -e ./exit3 ] && exit 3\nexec sleep 1000\n").unwrap();
    std::fs::set_permissions(d.join("run"), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    std::fs::write(d.join("down"), "").unwrap();
    let o = run(env!("CARGO_BIN_EXE_hermes-seed-supervise"), &["-u", ":0:0", d.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let svc = Dir::open(&d).unwrap();

    // No supervisor yet: the FIFO exists but nobody reads it.
    assert!(!status::supervised(&svc).unwrap());
    assert_eq!(control::svc(&svc, b"u").unwrap(), Sent::NotListening);
    assert_eq!(status::read(&svc).unwrap(), None);

    let mut sup = supervise(&d);
    eventually("the supervisor", || status::supervised(&svc).unwrap() && status::read(&svc).unwrap().is_some());
    assert_eq!(ours(&svc), theirs(&d), "initial, normally down");

    assert_eq!(control::svc(&svc, b"u").unwrap(), Sent::Delivered);
    eventually("up", || status::read(&svc).unwrap().unwrap().is_up());
    assert_eq!(ours(&svc), theirs(&d), "up");
    let pid = status::read(&svc).unwrap().unwrap().pid;
    assert!(pid > 0);

    std::fs::remove_file(d.join("down")).unwrap();
    assert_eq!(ours(&svc), theirs(&d), "up, normally up");

    assert_eq!(control::svc(&svc, b"d").unwrap(), Sent::Delivered);
    eventually("down", || !status::read(&svc).unwrap().unwrap().is_up());
    assert_eq!(ours(&svc), theirs(&d), "down by SIGTERM");
    assert_eq!(status::read(&svc).unwrap().unwrap().death(), Death::Signaled(libc::SIGTERM as u8));

    std::fs::write(d.join("exit3"), "").unwrap();
    assert_eq!(control::svc(&svc, b"o").unwrap(), Sent::Delivered);
    eventually("exit 3", || status::read(&svc).unwrap().unwrap().death() == Death::Exited(3));
    eventually("finish done", || !status::read(&svc).unwrap().unwrap().finishing);
    assert_eq!(ours(&svc), theirs(&d), "down after exit 3");

    // Supervisor told to exit: the lock is released, commands are not heard.
    assert_eq!(control::svc(&svc, b"x").unwrap(), Sent::Delivered);
    let st = sup.wait().unwrap();
    assert!(st.success(), "s6-supervise exited {st:?}");
    assert!(!status::supervised(&svc).unwrap());
    assert_eq!(control::svc(&svc, b"u").unwrap(), Sent::NotListening);
}

#[test]
fn a_planted_non_fifo_control_is_refused_not_opened() {
    let s = Scratch::new("s6-control");
    std::fs::create_dir_all(s.join("svc/supervise")).unwrap();
    std::fs::write(s.join("svc/supervise/control"), "").unwrap();
    let svc = Dir::open(&s.join("svc")).unwrap();
    let e = control::svc(&svc, b"u").unwrap_err();
    assert!(e.to_string().contains("is a regular file"), "{e}");
    assert_eq!(std::fs::read(s.join("svc/supervise/control")).unwrap(), b"");
    assert_eq!(control::svscanctl(&svc, b"a").unwrap(), Sent::NotListening, "no .s6-svscan");
}

#[test]
fn a_status_file_is_decoded_by_its_exact_size_or_refused_with_it() {
    let s = Scratch::new("s6-status-size");
    std::fs::create_dir_all(s.join("svc/supervise")).unwrap();
    let svc = Dir::open(&s.join("svc")).unwrap();
    let file = s.join("svc/supervise/status");
    // s6 2.13.1.0's layout: pid, then pgid, then wait status and flags.
    let mut b = [0x40, 0, 0, 0, 0x6b, 0x0c, 0x87, 0xb6, 0, 0, 0, 0].repeat(2);
    b.extend_from_slice(&4242u64.to_be_bytes());
    b.extend_from_slice(&4240u64.to_be_bytes());
    b.extend_from_slice(&[0, 0, 0x04]);
    std::fs::write(&file, &b).unwrap();
    let st = status::read(&svc).unwrap().unwrap();
    assert_eq!((st.pid, st.pgid, st.want_up, st.is_up()), (4242, 4240, true, true));
    for n in [0, 34, 36, 42, 44, 100_000] {
        std::fs::write(&file, vec![0u8; n]).unwrap();
        let e = status::read(&svc).unwrap_err();
        assert_eq!(e.exit_code(), 111, "{n} bytes: {e}");
        assert!(e.to_string().contains(&format!(": {n} bytes, neither 35 nor 43")), "{e}");
    }
}

//! Every tool that runs as root inside a tree the user can write, raced by
//! the user (UID 10000): while the tool runs again and again, an attacker
//! process keeps exchanging (`RENAME_EXCHANGE`) the directories and files
//! the tool creates and opens with its own, and keeps hard links of two
//! root-owned 0666 canaries (a regular file and a FIFO, on the same
//! filesystem, so the user may link them even with `protected_hardlinks=1`)
//! wherever the tool is about to create, chown or chmod something. Neither
//! canary may change (owner, group, mode, content), however the tool ends.
//!
//! Each tool gets at least [`SWAPS`] successful exchanges (bounded by
//! [`TIME_CAP`]). `HERMES_S6_RACE_BINDIR` runs the tools found there
//! instead of this build's: pointed at the binaries of main before the
//! fix, reconcile, register and seed-supervise each change a canary within
//! a few hundred runs (the regular one's mode becomes 3730, and its owner
//! 10000:10000 when the exchange comes before the chown; the FIFO becomes
//! 10000:10000 0660). `hermes-svscan-perms` held before the fix too; its
//! old fault was the `event/` grant (tests/integration/80-*).

mod common;

use std::ffi::{CString, OsStr};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

/// Successful exchanges each tool is raced with, at least.
const SWAPS: u64 = 1_000_000;
/// The longest an attack on one tool lasts.
const TIME_CAP: Duration = Duration::from_secs(60);
/// Consecutive exchanges of one pair while they succeed: a pair that
/// exists is flipped back and forth while the tool works on it.
const BURST: u32 = 64;

/// One attack at a time: the tools and the attackers share two cores.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn tool(name: &str) -> PathBuf {
    match std::env::var_os("HERMES_S6_RACE_BINDIR") {
        Some(dir) => Path::new(&dir).join(name),
        None => PathBuf::from(match name {
            "hermes-reconcile" => env!("CARGO_BIN_EXE_hermes-reconcile"),
            "hermes-slot" => env!("CARGO_BIN_EXE_hermes-slot"),
            "hermes-seed-supervise" => env!("CARGO_BIN_EXE_hermes-seed-supervise"),
            "hermes-svscan-perms" => env!("CARGO_BIN_EXE_hermes-svscan-perms"),
            other => panic!("no tool {other}"),
        }),
    }
}

/// The two canaries, root-owned 0666, outside every tree a tool works on.
struct Canaries {
    file: PathBuf,
    fifo: PathBuf,
}

type Seen = ((u32, u32, u32, String), (u32, u32, u32, u32));

impl Canaries {
    fn new(s: &Scratch) -> Canaries {
        let (file, fifo) = (s.join("canary"), s.join("canary.fifo"));
        std::fs::write(&file, "canary\n").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o666)).unwrap();
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        std::fs::set_permissions(&fifo, std::fs::Permissions::from_mode(0o666)).unwrap();
        Canaries { file, fifo }
    }

    fn seen(&self) -> Seen {
        let f = std::fs::symlink_metadata(&self.file).unwrap();
        let p = std::fs::symlink_metadata(&self.fifo).unwrap();
        (
            (f.uid(), f.gid(), f.mode() & 0o7777, std::fs::read_to_string(&self.file).unwrap()),
            (p.uid(), p.gid(), p.mode() & 0o7777, p.mode() & 0o170000),
        )
    }
}

/// What the attacker does, over and over: make `dirs` (its own), link the
/// regular canary at `links` and the FIFO canary at `fifo_links` wherever
/// it can, and exchange each pair of `pairs` (in bursts while they exist).
#[derive(Default)]
struct Plan {
    dirs: Vec<PathBuf>,
    links: Vec<PathBuf>,
    fifo_links: Vec<PathBuf>,
    pairs: Vec<(PathBuf, PathBuf)>,
    /// Pairs whose window is short: tried again after every other pair.
    hot: Vec<(PathBuf, PathBuf)>,
    /// Links of the regular canary made again after every other pair, for
    /// hot pairs inside directories that exist only briefly.
    hot_links: Vec<PathBuf>,
}

fn c(p: &Path) -> CString {
    CString::new(p.as_os_str().as_encoded_bytes()).unwrap()
}

struct Attacker {
    pid: nix::unistd::Pid,
    counts: std::os::fd::OwnedFd,
    pairs: usize,
}

impl Attacker {
    /// Forks the attacker (as UID 10000); it stops after `SWAPS`
    /// exchanges or `TIME_CAP`, then reports its count per pair.
    fn spawn(plan: &Plan, canaries: &Canaries) -> Attacker {
        // Everything the child touches is made before fork: it only makes
        // raw system calls, then _exit.
        let dirs: Vec<CString> = plan.dirs.iter().map(|p| c(p)).collect();
        let links: Vec<(CString, CString)> =
            plan.links.iter().map(|p| (c(&canaries.file), c(p))).chain(plan.fifo_links.iter().map(|p| (c(&canaries.fifo), c(p)))).collect();
        let hot_links: Vec<(CString, CString)> = plan.hot_links.iter().map(|p| (c(&canaries.file), c(p))).collect();
        let all = plan.pairs.iter().chain(&plan.hot);
        let pairs: Vec<(CString, CString)> = all.map(|(a, b)| (c(a), c(b))).collect();
        let hot = plan.pairs.len();
        let mut counts = vec![0u64; pairs.len()];
        let (rd, wr) = nix::unistd::pipe().unwrap();
        let cap = TIME_CAP.as_secs() as libc::time_t;
        // SAFETY: the child only makes raw system calls on prepared data.
        match unsafe { nix::unistd::fork() }.unwrap() {
            nix::unistd::ForkResult::Child => unsafe {
                if libc::setgroups(0, std::ptr::null()) != 0 || libc::setgid(GID) != 0 || libc::setuid(UID) != 0 {
                    libc::_exit(3);
                }
                let start = libc::time(std::ptr::null_mut());
                let mut total = 0u64;
                while total < SWAPS && libc::time(std::ptr::null_mut()) - start < cap {
                    for d in &dirs {
                        libc::mkdir(d.as_ptr(), 0o755);
                    }
                    for (from, to) in &links {
                        libc::link(from.as_ptr(), to.as_ptr());
                    }
                    let exchange = |(a, b): &(CString, CString)| {
                        let mut n = 0;
                        while n < BURST
                            && libc::syscall(
                                libc::SYS_renameat2,
                                libc::AT_FDCWD,
                                a.as_ptr(),
                                libc::AT_FDCWD,
                                b.as_ptr(),
                                libc::RENAME_EXCHANGE,
                            ) == 0
                        {
                            n += 1;
                        }
                        n as u64
                    };
                    for i in 0..hot {
                        let n = exchange(&pairs[i]);
                        counts[i] += n;
                        total += n;
                        for (from, to) in &hot_links {
                            libc::link(from.as_ptr(), to.as_ptr());
                        }
                        for j in hot..pairs.len() {
                            let n = exchange(&pairs[j]);
                            counts[j] += n;
                            total += n;
                        }
                    }
                }
                let bytes = std::slice::from_raw_parts(counts.as_ptr().cast::<u8>(), counts.len() * 8);
                libc::write(std::os::fd::AsRawFd::as_raw_fd(&wr), bytes.as_ptr().cast(), bytes.len());
                libc::_exit(0);
            },
            nix::unistd::ForkResult::Parent { child } => {
                drop(wr);
                Attacker { pid: child, counts: rd, pairs: pairs.len() }
            }
        }
    }

    fn done(&self) -> bool {
        use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
        match waitpid(self.pid, Some(WaitPidFlag::WNOHANG)).unwrap() {
            WaitStatus::StillAlive => false,
            WaitStatus::Exited(_, 0) => true,
            other => panic!("attacker: {other:?}"),
        }
    }

    fn counts(self) -> Vec<u64> {
        let mut buf = vec![0u8; self.pairs * 8];
        let mut got = 0;
        while got < buf.len() {
            match nix::unistd::read(&self.counts, &mut buf[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => panic!("reading the attacker's counts: {e}"),
            }
        }
        buf.chunks(8).map(|b| u64::from_ne_bytes(b.try_into().unwrap())).collect()
    }

    fn kill(&self) {
        let _ = nix::sys::signal::kill(self.pid, nix::sys::signal::Signal::SIGKILL);
        let _ = nix::sys::wait::waitpid(self.pid, None);
    }
}

/// Runs `once` (one run of the tool, then whatever resets the tree for the
/// next) until the attacker stops, checking the canaries after each run.
/// Returns the runs, the runs that exited 0, and the exchanges per pair.
fn race(what: &str, plan: &Plan, canaries: &Canaries, mut once: impl FnMut(u64) -> bool) -> (u64, u64, Vec<u64>) {
    let before = canaries.seen();
    let attacker = Attacker::spawn(plan, canaries);
    let (mut runs, mut ok) = (0u64, 0u64);
    let start = Instant::now();
    loop {
        ok += once(runs) as u64;
        runs += 1;
        let now = canaries.seen();
        if now != before {
            attacker.kill();
            panic!("{what}: a canary changed after {runs} runs: {before:?} -> {now:?}");
        }
        if attacker.done() {
            break;
        }
        assert!(start.elapsed() < TIME_CAP + Duration::from_secs(30), "{what}: the attacker does not stop");
    }
    let counts = attacker.counts();
    let total: u64 = counts.iter().sum();
    eprintln!("{what}: {runs} runs ({ok} exit 0), {total} successful exchanges, canaries unchanged");
    for ((a, b), n) in plan.pairs.iter().chain(&plan.hot).zip(&counts).filter(|(_, n)| **n > 0) {
        eprintln!("    {n:>9}  {} <-> {}", a.display(), b.display());
    }
    assert!(total >= SWAPS, "{what}: only {total} exchanges within {TIME_CAP:?}: the attack is too weak to mean anything");
    assert!(runs > 10, "{what}: only {runs} runs");
    (runs, ok, counts)
}

/// A scratch tree on a tmpfs when there is one (the image's /run is one,
/// and renames there are cheap enough for a million exchanges).
fn scratch(tag: &str) -> Scratch {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() { Scratch::new_in(shm, tag) } else { Scratch::new(tag) }
}

fn user_dir(p: &Path) {
    std::fs::create_dir_all(p).unwrap();
    chown(p, UID, GID);
}

/// What the attacker does to a slot being built as `staging` in `sd`: its
/// own directory exchanged with the staging directory (`decoy`), and hard
/// links of the canaries exchanged with whatever root creates inside
/// (reachable on the old code, where `log/` was the user's mid-build).
fn attack_staging(plan: &mut Plan, sd: &Path, staging: &str, decoy: &str) {
    let t = sd.join(staging);
    plan.dirs.push(sd.join(decoy));
    plan.links.push(sd.join(decoy).join(".h0"));
    plan.hot_links.extend([t.join(".h0"), t.join("log/.h1"), t.join("log/.h2"), t.join("log/supervise/.h3"), t.join("log/.h4")]);
    plan.pairs.push((t.clone(), sd.join(decoy)));
    plan.hot.extend([
        (t.join(".h0"), t.join("log")),
        (t.join("log/.h1"), t.join("log/event")),
        (t.join("log/.h2"), t.join("log/supervise")),
        (t.join("log/supervise/.h3"), t.join("log/supervise/control")),
        (t.join("log/.h4"), t.join("log/run")),
    ]);
}

#[test]
fn reconcile_as_root_under_attack() {
    if !root_or_skip("reconcile_race") {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let s = scratch("race-reconcile");
    let canaries = Canaries::new(&s);
    // HERMES_HOME is root's here (its own races are another test's): only
    // the scan directory, the user's, is attacked.
    let home = s.join("home");
    let profiles = ["a", "b", "c"];
    for p in profiles {
        std::fs::create_dir_all(home.join("profiles").join(p)).unwrap();
        std::fs::write(home.join("profiles").join(p).join("SOUL.md"), "").unwrap();
    }
    std::fs::create_dir_all(home.join("logs")).unwrap();
    let u = s.join("u");
    let (scan, scan2) = (u.join("scan"), u.join("scan2"));
    for d in [&u, &scan, &scan2] {
        user_dir(d);
    }
    let mut plan = Plan::default();
    // The scan directory itself, exchanged with another of the user's.
    plan.pairs.push((scan.clone(), scan2.clone()));
    for sd in [&scan, &scan2] {
        for p in ["default"].iter().chain(&profiles) {
            attack_staging(&mut plan, sd, &format!(".gateway-{p}.tmp"), &format!(".atk-{p}"));
            // A published slot (the user's), exchanged with a look-alike of
            // canary links that root reads back and may remove.
            let fake = sd.join(format!(".atk-slot-{p}"));
            plan.dirs.extend([fake.clone(), fake.join("log")]);
            plan.links.extend(["type", "run", "finish", "log/run"].map(|f| fake.join(f)));
            plan.pairs.push((sd.join(format!("gateway-{p}")), fake));
        }
    }
    let state = |run: u64| if run.is_multiple_of(2) { "{\"desired_state\":\"running\"}" } else { "{\"desired_state\":\"stopped\"}" };
    race("hermes-reconcile as root", &plan, &canaries, |run| {
        // Every other run flips each slot's down file: every slot is rebuilt.
        for p in profiles {
            std::fs::write(home.join("profiles").join(p).join("gateway_state.json"), state(run)).unwrap();
        }
        std::fs::write(home.join("gateway_state.json"), state(run)).unwrap();
        let o = Command::new(tool("hermes-reconcile"))
            .args(["-u", ":10000:10000", "-s"])
            .arg(&scan)
            .arg("-H")
            .arg(&home)
            .env_remove("GATEWAY_MULTIPLEX_PROFILES")
            .output()
            .unwrap();
        o.status.success()
    });
}

#[test]
fn slot_register_as_root_under_attack() {
    if !root_or_skip("register_race") {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let s = scratch("race-register");
    let canaries = Canaries::new(&s);
    let home = s.join("home");
    std::fs::create_dir_all(home.join("profiles/p")).unwrap();
    let u = s.join("u");
    let (scan, scan2) = (u.join("scan"), u.join("scan2"));
    for d in [&u, &scan, &scan2] {
        user_dir(d);
    }
    let mut plan = Plan::default();
    plan.pairs.push((scan.clone(), scan2.clone()));
    for sd in [&scan, &scan2] {
        attack_staging(&mut plan, sd, ".gateway-p.tmp", ".atk-p");
        // The published slot, where root subscribes before the rescan.
        plan.dirs.push(sd.join(".atk-slot"));
        plan.pairs.push((sd.join("gateway-p"), sd.join(".atk-slot")));
        plan.fifo_links.push(sd.join("gateway-p/event/.h5"));
    }
    race("hermes-slot register as root", &plan, &canaries, |_| {
        // No s6-svscan: the slot is built and published, the rescan finds
        // nobody listening, and the slot is withdrawn again (exit 111).
        let o = Command::new(tool("hermes-slot"))
            .args(["-u", ":10000:10000", "-t", "200", "-s"])
            .arg(&scan)
            .arg("-H")
            .arg(&home)
            .args(["register", "p"])
            .output()
            .unwrap();
        o.status.success()
    });
}

#[test]
fn seed_supervise_as_root_under_attack() {
    if !root_or_skip("seed_race") {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let s = scratch("race-seed");
    let canaries = Canaries::new(&s);
    let u = s.join("u");
    user_dir(&u);
    let svcs = [u.join("svc1"), u.join("svc2")];
    let mut plan = Plan::default();
    plan.dirs.push(u.join("decoy"));
    for svc in &svcs {
        user_dir(svc);
        user_dir(&svc.join("log"));
        std::fs::write(svc.join("run"), "#!/bin/sh\n").unwrap();
        chown(&svc.join("run"), UID, GID);
        plan.pairs.push((svc.clone(), u.join("decoy")));
        for d in [svc.clone(), svc.join("log")] {
            plan.dirs.push(d.join(".ud"));
            plan.links.push(d.join(".h"));
            plan.fifo_links.extend([d.join(".f"), d.join("supervise/.f")]);
            plan.pairs.extend([
                (d.join(".ud"), d.join("event")),
                (d.join(".ud"), d.join("supervise")),
                (d.join(".h"), d.join("event")),
                (d.join(".f"), d.join("event")),
            ]);
            plan.hot.push((d.join("supervise/.f"), d.join("supervise/control")));
        }
    }
    race("hermes-seed-supervise as root", &plan, &canaries, |_| {
        // protected_hardlinks=1 (this host) forbids the user to link a FIFO
        // it does not own, =0 (the kernel's default) allows it: root plants
        // the FIFO canary's link for it in each supervise/ it can reach.
        let top = hermes_s6::fs::Dir::open(&u).unwrap();
        for svc in ["svc1", "svc2"] {
            let Ok(svc) = top.open_dir(OsStr::new(svc)) else { continue };
            let log = svc.open_dir(OsStr::new("log")).ok();
            for d in std::iter::once(&svc).chain(log.as_ref()) {
                if let Ok(sup) = d.open_dir(OsStr::new("supervise")) {
                    let _ = nix::unistd::linkat(nix::fcntl::AT_FDCWD, &canaries.fifo, sup.fd(), ".f", nix::fcntl::AtFlags::empty());
                }
            }
        }
        let o = Command::new(tool("hermes-seed-supervise")).args(["-u", ":10000:10000"]).args(&svcs).output().unwrap();
        // Take what was created away again (through the fd layer: the
        // user is still swapping), so the next run creates it anew; the
        // user's supervise/ stays, where the user keeps a canary linked.
        let top = hermes_s6::fs::Dir::open(&u).unwrap();
        for svc in ["svc1", "svc2", "decoy"] {
            let Ok(svc) = top.open_dir(OsStr::new(svc)) else { continue };
            let log = svc.open_dir(OsStr::new("log")).ok();
            for d in std::iter::once(&svc).chain(log.as_ref()) {
                let _ = hermes_s6::fs::tree::remove_tree(d, OsStr::new("event"), Default::default());
                if let Ok(sup) = d.open_dir(OsStr::new("supervise")) {
                    // (.f too: after an exchange it may be the FIFO made.)
                    let _ = sup.unlink_at(OsStr::new("control"));
                    let _ = sup.unlink_at(OsStr::new(".f"));
                }
            }
        }
        o.status.success()
    });
}

#[test]
fn svscan_perms_under_attack() {
    if !root_or_skip("perms_race") {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let s = scratch("race-perms");
    let canaries = Canaries::new(&s);
    // Root's static services: not the user's to change.
    let sd = s.join("sd/app");
    std::fs::create_dir_all(sd.join("supervise")).unwrap();
    std::fs::create_dir_all(sd.join("event")).unwrap();
    // Root's scan directory already given to the user (shared topology, a
    // second boot), and the user's own scan directory's parent.
    let u = s.join("u");
    let scan = u.join("scan");
    for d in [&u, &scan] {
        user_dir(d);
    }
    std::fs::create_dir(scan.join(".s6-svscan")).unwrap();
    nix::unistd::mkfifo(&scan.join(".s6-svscan/control"), nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let mut plan = Plan::default();
    plan.dirs.extend([scan.join(".atk-ctl"), u.join(".atk-h"), scan.join(".gateway-x.tmp"), scan.join(".gateway-x.tmp/log")]);
    plan.fifo_links.extend([scan.join(".atk-ctl/control"), scan.join(".s6-svscan/.f"), u.join(".atk-h/.f")]);
    plan.links.extend([scan.join(".gateway-x.tmp/h"), scan.join(".gateway-x.tmp/log/h")]);
    plan.pairs.extend([
        (scan.join(".s6-svscan"), scan.join(".atk-ctl")),
        (scan.join(".s6-svscan/.f"), scan.join(".s6-svscan/control")),
        (u.join("hscan"), u.join(".atk-h")),
        (scan.join(".gateway-x.tmp"), scan.join(".atk-ctl")),
        (scan.join(".gateway-x.tmp/log"), scan.join(".atk-ctl")),
    ]);
    race("hermes-svscan-perms", &plan, &canaries, |run| {
        let topology = if run.is_multiple_of(2) { "shared" } else { "isolated" };
        let o = Command::new(tool("hermes-svscan-perms"))
            .args(["-u", ":10000:10000", "-T", topology, "-r"])
            .arg(s.join("sd"))
            .arg("-S")
            .arg(&scan)
            .arg("-s")
            .arg(u.join("hscan"))
            .output()
            .unwrap();
        o.status.success()
    });
}

//! hermes-svscan-perms, run as root on scratch trees laid out as s6-rc-init
//! and s6-svscan leave them, then under attack by a UID-10000 process.
//! (Its effect on real s6 tools is tested in tests/integration/.)

mod common;

use std::ffi::CString;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;

const TOOL: &str = env!("CARGO_BIN_EXE_hermes-svscan-perms");
const USER: &str = ":10000:10000";

const DIR: u32 = 0o040000;
const FIFO: u32 = 0o010000;
const FILE: u32 = 0o100000;

fn mode(p: &Path, m: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
}

fn mkfifo(p: &Path, m: u32) {
    nix::unistd::mkfifo(p, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    mode(p, m);
}

/// What s6-supervise (as root) leaves in a service directory it runs.
fn supervised(d: &Path) {
    std::fs::create_dir_all(d.join("event")).unwrap();
    mode(&d.join("event"), 0o3730);
    std::fs::create_dir(d.join("supervise")).unwrap();
    mode(&d.join("supervise"), 0o700);
    mkfifo(&d.join("supervise/control"), 0o600);
    for f in ["lock", "death_tally"] {
        std::fs::write(d.join("supervise").join(f), "").unwrap();
    }
    std::fs::write(d.join("supervise/status"), [0u8; 35]).unwrap();
    std::fs::write(d.join("run"), "#!/bin/sh\nexec sleep 1000\n").unwrap();
    std::fs::write(d.join("down"), "").unwrap();
}

/// A container's /run: `sd/` (as s6-rc-init leaves its servicedirs, with
/// `logged` services carrying a `log/`), `scan/` (root's scan directory,
/// as s6-svscan makes it, with one link per service).
struct Layout {
    s: Scratch,
}

impl Layout {
    fn new(tag: &str, plain: &[&str], logged: &[&str]) -> Layout {
        let s = Scratch::new(tag);
        let l = Layout { s };
        std::fs::create_dir_all(l.sd()).unwrap();
        std::fs::create_dir_all(l.scan().join(".s6-svscan")).unwrap();
        mode(&l.scan().join(".s6-svscan"), 0o700);
        mkfifo(&l.scan().join(".s6-svscan/control"), 0o600);
        std::fs::write(l.scan().join(".s6-svscan/lock"), "").unwrap();
        mode(&l.scan().join(".s6-svscan/lock"), 0o600);
        let all = ["s6rc-oneshot-runner", "s6rc-fdholder"].iter().chain(plain).chain(logged);
        for name in all {
            l.add(name);
        }
        for name in logged {
            supervised(&l.sd().join(name).join("log"));
        }
        l
    }
    fn add(&self, name: &str) -> PathBuf {
        let d = self.sd().join(name);
        supervised(&d);
        symlink(&d, self.scan().join(name)).unwrap();
        d
    }
    fn sd(&self) -> PathBuf {
        self.s.join("run/s6-rc/servicedirs")
    }
    fn scan(&self) -> PathBuf {
        self.s.join("run/service")
    }
    fn user_scan(&self) -> PathBuf {
        self.s.join("run/hermes/service")
    }
    fn args(&self, extra: &[&str]) -> Vec<String> {
        let mut v: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        for (o, p) in [("-r", self.sd()), ("-S", self.scan()), ("-s", self.user_scan())] {
            v.push(o.into());
            v.push(p.to_string_lossy().into_owned());
        }
        v.extend(["-u".into(), USER.into()]);
        v
    }
    fn run(&self, extra: &[&str]) -> Output {
        run(TOOL, &self.args(extra))
    }
}

fn assert_model(d: &Path) {
    assert_eq!(&ids(&d.join("supervise")), &[DIR, 0o710, 0, GID], "{}/supervise", d.display());
    assert_eq!(&ids(&d.join("supervise/control")), &[FIFO, 0o620, 0, GID], "{}/supervise/control", d.display());
    // Never opened to the user: root's s6-supervise follows symlinks there.
    assert_eq!(&ids(&d.join("event")), &[DIR, 0o3730, 0, 0], "{}/event", d.display());
    // What s6-supervise owns itself is not touched.
    assert_eq!(&ids(&d.join("supervise/status")), &[FILE, 0o644, 0, 0]);
    assert_eq!(&ids(&d.join("supervise/lock")), &[FILE, 0o644, 0, 0]);
}

fn assert_root_only(d: &Path) {
    assert_eq!(&ids(&d.join("supervise")), &[DIR, 0o700, 0, 0], "{}/supervise", d.display());
    assert_eq!(&ids(&d.join("supervise/control")), &[FIFO, 0o600, 0, 0]);
    assert_eq!(&ids(&d.join("event")), &[DIR, 0o3730, 0, 0]);
}

fn ok_silent(o: &Output) {
    assert_eq!(o.status.code(), Some(0), "{}", stderr(o));
    assert!(o.stderr.is_empty() && o.stdout.is_empty(), "silent on success: {} {}", stderr(o), stdout(o));
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn static_services_get_the_svperms_model_and_s6rc_ones_are_untouched() {
    if !root_or_skip("static_services") {
        return;
    }
    let l = Layout::new("perms-static", &["app", "s6-linux-init-shutdownd"], &["web"]);
    std::fs::create_dir(l.sd().join(".hidden")).unwrap();
    std::fs::write(l.sd().join("a-file"), "").unwrap();
    let untouched: Vec<_> =
        ["s6rc-oneshot-runner", "s6rc-fdholder", "s6-linux-init-shutdownd", ".hidden"].iter().map(|n| tree_snap(&l.sd().join(n))).collect();
    let file = snap(&l.sd().join("a-file"));
    // A umask that would strip group bits must not matter.
    let cmd = format!("umask 077; exec {TOOL} {}", l.args(&[]).join(" "));
    let o = Command::new("sh").arg("-c").arg(cmd).output().unwrap();
    ok_silent(&o);
    for d in [l.sd().join("app"), l.sd().join("web"), l.sd().join("web/log")] {
        assert_model(&d);
    }
    let after: Vec<_> =
        ["s6rc-oneshot-runner", "s6rc-fdholder", "s6-linux-init-shutdownd", ".hidden"].iter().map(|n| tree_snap(&l.sd().join(n))).collect();
    assert_eq!(after, untouched, "s6rc-*, s6-linux-* or dot-names were changed");
    assert_eq!(snap(&l.sd().join("a-file")), file);
    assert_root_only(&l.sd().join("s6rc-oneshot-runner"));
    // Isolated by default: root's scan directory is left root-only.
    assert_eq!(&ids(&l.scan()), &[DIR, 0o755, 0, 0]);
    assert_eq!(&ids(&l.scan().join(".s6-svscan")), &[DIR, 0o700, 0, 0]);
}

#[test]
fn a_second_run_changes_nothing() {
    if !root_or_skip("idempotent") {
        return;
    }
    let l = Layout::new("perms-idem", &["app"], &["web"]);
    for topo in ["isolated", "shared"] {
        assert_eq!(l.run(&["-T", topo]).status.code(), Some(0));
        let before = tree_snap(&l.s.join("run"));
        std::thread::sleep(Duration::from_millis(20));
        let o = l.run(&["-v", "-T", topo]);
        ok_silent(&o);
        assert_eq!(tree_snap(&l.s.join("run")), before, "{topo}: modes, owners or ctimes changed");
    }
}

#[test]
fn verbose_prints_one_line_per_change() {
    if !root_or_skip("verbose") {
        return;
    }
    let l = Layout::new("perms-verbose", &["app"], &[]);
    std::fs::remove_dir(l.sd().join("app/event")).unwrap();
    let o = l.run(&["-v"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let d = l.sd().join("app");
    let u = l.user_scan();
    let want = [
        format!("create directory {}/event", d.display()),
        format!("chmod {}/event 0700 -> 3730", d.display()),
        format!("chown {}/supervise 0:0 -> 0:10000", d.display()),
        format!("chmod {}/supervise 0700 -> 0710", d.display()),
        format!("chown {}/supervise/control 0:0 -> 0:10000", d.display()),
        format!("chmod {}/supervise/control 0600 -> 0620", d.display()),
        format!("create directory {}", u.parent().unwrap().display()),
        format!("chmod {} 0700 -> 0755", u.parent().unwrap().display()),
        format!("create directory {}", u.display()),
        format!("chown {} 0:0 -> 10000:10000", u.display()),
        format!("chmod {} 0700 -> 0755", u.display()),
    ];
    let got: Vec<String> = stderr(&o).lines().map(|l| l.strip_prefix("hermes-svscan-perms: info: ").unwrap_or(l).to_string()).collect();
    assert_eq!(got, want);
    assert_model(&d);
}

#[test]
fn check_mode_reports_exits_1_before_and_0_after_and_changes_nothing() {
    if !root_or_skip("check_mode") {
        return;
    }
    let l = Layout::new("perms-check", &["app"], &["web"]);
    std::fs::create_dir(l.scan().join(".gateway-default.tmp")).unwrap();
    for topo in ["isolated", "shared"] {
        let before = tree_snap(&l.s.join("run"));
        std::thread::sleep(Duration::from_millis(20));
        let o = l.run(&["-n", "-T", topo]);
        assert_eq!(o.status.code(), Some(1), "{topo}: {}", stderr(&o));
        assert_eq!(tree_snap(&l.s.join("run")), before, "{topo}: -n changed modes, owners or ctimes");
        let out = stdout(&o);
        let sd = l.sd();
        assert!(
            out.contains(&format!(
                "service {}/app: status no (supervise/ 0700 0:0), control no (supervise/ 0700 0:0), events not granted (event/ 3730 0:0; root's s6-supervise writes to every entry of event/ and follows symlinks)\n",
                sd.display()
            )),
            "{out}"
        );
        assert!(out.contains(&format!("service {}/web/log: status no", sd.display())), "{out}");
        assert!(!out.contains("s6rc-"), "{out}");
        assert!(out.contains(&format!("leftover {}/.gateway-default.tmp: would remove\n", l.scan().display())), "{out}");
        if topo == "shared" {
            assert!(
                out.contains(&format!(
                    "scandir {} (shared): slots no (scan directory 0755 0:0), svscanctl no (.s6-svscan/ 0700 0:0)\n",
                    l.scan().display()
                )),
                "{out}"
            );
        } else {
            assert!(out.contains(&format!("scandir {} (user's): slots no (missing)\n", l.user_scan().display())), "{out}");
        }
        assert_eq!(out.lines().count(), if topo == "shared" { 5 } else { 6 }, "{out}");
    }
    // Shared, then isolated: both are in place afterwards.
    assert_eq!(l.run(&["-T", "shared"]).status.code(), Some(0));
    assert_eq!(l.run(&[]).status.code(), Some(0));
    for topo in ["shared", "isolated"] {
        let before = tree_snap(&l.s.join("run"));
        let o = l.run(&["-n", "-T", topo]);
        assert_eq!(o.status.code(), Some(0), "{topo}: {}{}", stdout(&o), stderr(&o));
        assert_eq!(tree_snap(&l.s.join("run")), before);
        assert!(!stdout(&o).contains(" no "), "{}", stdout(&o));
        assert!(
            stdout(&o).contains(&format!(
                "service {}/web: status yes, control yes, events not granted (event/ 3730 0:0; root's s6-supervise writes to every entry of event/ and follows symlinks)\n",
                l.sd().display()
            )),
            "{}",
            stdout(&o)
        );
    }
    // Isolated, on a scan directory the user may write: a warning, and the
    // answers say so.
    let o = l.run(&["-n"]);
    assert!(stderr(&o).contains("warning: :10000:10000 can change"), "{}", stderr(&o));
    assert!(stdout(&o).contains("(root's, left root-only): slots yes, svscanctl yes"), "{}", stdout(&o));
}

#[test]
fn check_mode_with_verbose_lists_what_would_change() {
    if !root_or_skip("check_verbose") {
        return;
    }
    let l = Layout::new("perms-check-v", &["app"], &[]);
    let o = l.run(&["-n", "-v", "-T", "shared"]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(err.contains(&format!("info: would chmod {}/app/supervise 0700 -> 0710", l.sd().display())), "{err}");
    assert!(err.contains(&format!("info: would chown {} 0:0 -> 10000:10000", l.scan().display())), "{err}");
    assert_eq!(err.lines().count(), 9, "{err}");
}

#[test]
fn shared_topology_gives_the_scandir_and_svscanctl_to_the_user() {
    if !root_or_skip("shared") {
        return;
    }
    let l = Layout::new("perms-shared", &["app"], &[]);
    let lock = snap(&l.scan().join(".s6-svscan/lock"));
    ok_silent(&l.run(&["-T", "shared"]));
    assert_eq!(&ids(&l.scan()), &[DIR, 0o755, UID, GID]);
    assert_eq!(&ids(&l.scan().join(".s6-svscan")), &[DIR, 0o710, 0, GID]);
    assert_eq!(&ids(&l.scan().join(".s6-svscan/control")), &[FIFO, 0o620, 0, GID]);
    assert_eq!(snap(&l.scan().join(".s6-svscan/lock")), lock, "lock is s6-svscan's alone");
    assert_model(&l.sd().join("app"));
    // No user scan directory in this topology.
    assert!(!l.user_scan().exists() && !l.user_scan().parent().unwrap().exists());
    // access(2) as the user: the control FIFO is now writable (it is not
    // opened: with no reader that would block).
    let w = format!("test -w {}/.s6-svscan/control", l.scan().display());
    assert!(run_as(UID, GID, "sh", &["-c", &w]).status.success());
}

#[test]
fn isolated_topology_creates_the_user_scandir_and_leaves_roots_alone() {
    if !root_or_skip("isolated") {
        return;
    }
    let l = Layout::new("perms-isolated", &["app"], &[]);
    let root_scan: Vec<_> = tree_snap(&l.scan().join(".s6-svscan"));
    let top = snap(&l.scan());
    let o = Command::new("sh").arg("-c").arg(format!("umask 077; exec {TOOL} {}", l.args(&[]).join(" "))).output().unwrap();
    ok_silent(&o);
    assert_eq!(&ids(l.user_scan().parent().unwrap()), &[DIR, 0o755, 0, 0], "created parents are root's");
    assert_eq!(&ids(&l.user_scan()), &[DIR, 0o755, UID, GID]);
    assert_eq!(tree_snap(&l.scan().join(".s6-svscan")), root_scan);
    assert_eq!(snap(&l.scan()), top);
    // An existing user scan directory of the wrong owner is put right.
    chown(&l.user_scan(), 0, 0);
    mode(&l.user_scan(), 0o700);
    ok_silent(&l.run(&[]));
    assert_eq!(&ids(&l.user_scan()), &[DIR, 0o755, UID, GID]);
}

#[test]
fn an_obstacle_outside_the_model_is_warned_about_not_changed() {
    if !root_or_skip("obstacle") {
        return;
    }
    let l = Layout::new("perms-obstacle", &["closed"], &[]);
    let d = l.sd().join("closed");
    mode(&d, 0o700);
    let o = l.run(&[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        stderr(&o),
        format!(
            "hermes-svscan-perms: warning: :10000:10000 still cannot use {}: status no (service directory 0700 0:0), control no (service directory 0700 0:0), events not granted (service directory 0700 0:0; root's s6-supervise writes to every entry of event/ and follows symlinks)\n",
            d.display()
        )
    );
    assert_model(&d);
    assert_eq!(&ids(&d), &[DIR, 0o700, 0, 0], "the service directory itself is not the tool's");
    assert_eq!(l.run(&["-n"]).status.code(), Some(1));
}

#[test]
fn a_symlink_on_the_way_to_the_user_scandir_is_refused() {
    if !root_or_skip("user_scandir_symlink") {
        return;
    }
    let l = Layout::new("perms-user-link", &[], &[]);
    let elsewhere = l.s.join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    symlink(&elsewhere, l.s.join("run/hermes")).unwrap();
    let o = l.run(&[]);
    assert_eq!(o.status.code(), Some(100), "refused: {}", stderr(&o));
    assert!(
        stderr(&o).contains(&format!("warning: unable to use {}/run/hermes: is a symlink, expected a directory", l.s.path().display())),
        "{}",
        stderr(&o)
    );
    assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);
}

/// Root-owned things outside the tree that nothing may change.
struct Canary {
    dir: PathBuf,
    file: PathBuf,
}

impl Canary {
    fn new(s: &Scratch) -> Canary {
        let dir = s.join("outside");
        std::fs::create_dir(&dir).unwrap();
        mode(&dir, 0o700);
        let file = dir.join("canary");
        std::fs::write(&file, "canary").unwrap();
        mode(&file, 0o600);
        Canary { dir, file }
    }
    fn state(&self) -> (u32, u32, u32, u32, u32, u32, String) {
        let d = std::fs::symlink_metadata(&self.dir).unwrap();
        let f = std::fs::symlink_metadata(&self.file).unwrap();
        (d.uid(), d.gid(), d.mode(), f.uid(), f.gid(), f.mode(), std::fs::read_to_string(&self.file).unwrap())
    }
}

#[test]
fn leftovers_are_removed_without_following_anything() {
    if !root_or_skip("leftovers") {
        return;
    }
    let l = Layout::new("perms-leftover", &["app"], &[]);
    let c = Canary::new(&l.s);
    let before = c.state();
    let etc = snap(Path::new("/etc"));
    std::fs::create_dir_all(l.user_scan()).unwrap();
    chown(&l.user_scan(), UID, GID);
    let mut plants = Vec::new();
    for (dir, name) in [(l.scan(), ".gateway-default.tmp"), (l.user_scan(), ".gateway-work.tmp.42")] {
        let t = dir.join(name);
        std::fs::create_dir_all(t.join("supervise/deeper")).unwrap();
        mkfifo(&t.join("supervise/control"), 0o600);
        mkfifo(&t.join("fifo-no-reader"), 0o644);
        symlink("/etc", t.join("etc")).unwrap();
        symlink(&c.dir, t.join("supervise/deeper/outside")).unwrap();
        // A hard link to the canary (root could make one; the user only
        // with protected_hardlinks=0).
        std::fs::hard_link(&c.file, t.join("hardlink")).unwrap();
        std::fs::write(t.join("run"), "#!/bin/sh\n").unwrap();
        mode(&t.join("supervise"), 0o700);
        mode(&t, 0o700);
        plants.push(t);
    }
    // Not leftovers: a real slot, a dot-dir of another pattern.
    std::fs::create_dir(l.scan().join(".gateway-keep")).unwrap();
    std::fs::create_dir(l.scan().join("gateway-default.tmp")).unwrap();
    let o = l.run(&["-v"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    for t in &plants {
        assert!(std::fs::symlink_metadata(t).is_err(), "{} still there", t.display());
        assert!(stderr(&o).contains(&format!("info: remove {}\n", t.display())), "{}", stderr(&o));
    }
    assert!(l.scan().join(".gateway-keep").is_dir() && l.scan().join("gateway-default.tmp").is_dir());
    assert_eq!(c.state(), before, "the canary changed");
    assert_eq!(std::fs::symlink_metadata(&c.file).unwrap().nlink(), 1);
    assert_eq!(snap(Path::new("/etc")), etc, "/etc changed");
    assert!(Path::new("/etc/passwd").exists());
    // -n on a clean tree says nothing about leftovers.
    let o = l.run(&["-n"]);
    assert!(!stdout(&o).lines().any(|l| l.starts_with("leftover ")), "{}", stdout(&o));
}

#[test]
fn wrong_types_and_symlinks_are_refused_and_the_rest_is_still_done() {
    if !root_or_skip("wrong_types") {
        return;
    }
    let l = Layout::new("perms-types", &["good"], &[]);
    let c = Canary::new(&l.s);
    let before = c.state();
    type Plant = fn(&Path, &Canary);
    // (service, plant, the planted object relative to the service, message end)
    let cases: [(&str, Plant, &str, &str); 10] = [
        (
            "supervise-symlink",
            |d, c| {
                std::fs::remove_dir_all(d.join("supervise")).unwrap();
                symlink(&c.dir, d.join("supervise")).unwrap();
            },
            "supervise",
            "supervise: is a symlink, expected a directory",
        ),
        (
            "event-symlink",
            |d, c| {
                std::fs::remove_dir(d.join("event")).unwrap();
                symlink(&c.dir, d.join("event")).unwrap();
            },
            "event",
            "event: is a symlink, expected a directory",
        ),
        (
            "control-symlink",
            |d, c| {
                std::fs::remove_file(d.join("supervise/control")).unwrap();
                symlink(&c.file, d.join("supervise/control")).unwrap();
            },
            "supervise/control",
            "control: is a symlink, expected a FIFO",
        ),
        (
            "control-hardlink",
            |d, c| {
                std::fs::remove_file(d.join("supervise/control")).unwrap();
                std::fs::hard_link(&c.file, d.join("supervise/control")).unwrap();
            },
            "supervise/control",
            "control: is a regular file, expected a FIFO",
        ),
        (
            "control-fifo-hardlink",
            |d, _| {
                std::fs::hard_link(d.join("supervise/control"), d.join("control-twin")).unwrap();
            },
            "supervise/control",
            "control: has 2 hard links",
        ),
        (
            "supervise-fifo",
            |d, _| {
                std::fs::remove_dir_all(d.join("supervise")).unwrap();
                mkfifo(&d.join("supervise"), 0o600);
            },
            "supervise",
            "supervise: is a FIFO, expected a directory",
        ),
        (
            "event-fifo",
            |d, _| {
                std::fs::remove_dir(d.join("event")).unwrap();
                mkfifo(&d.join("event"), 0o666);
            },
            "event",
            "event: is a FIFO, expected a directory",
        ),
        (
            "control-dir",
            |d, _| {
                std::fs::remove_file(d.join("supervise/control")).unwrap();
                std::fs::create_dir(d.join("supervise/control")).unwrap();
            },
            "supervise/control",
            "control: is a directory, expected a FIFO",
        ),
        ("log-symlink", |d, c| symlink(&c.dir, d.join("log")).unwrap(), "log", "log: is a symlink"),
        (
            "service-symlink",
            |d, c| {
                std::fs::remove_dir_all(d).unwrap();
                symlink(&c.dir, d).unwrap();
            },
            "",
            "service-symlink: is a symlink",
        ),
    ];
    let planted = |name: &str, rel: &str| {
        let p = l.sd().join(name);
        if rel.is_empty() { p } else { p.join(rel) }
    };
    for (name, plant, _, _) in &cases {
        plant(&l.add(name), &c);
    }
    // A FIFO with no reader where a service directory is listed: skipped.
    mkfifo(&l.sd().join("fifo-service"), 0o666);
    let plants: Vec<_> = cases.iter().map(|(n, _, rel, _)| snap(&planted(n, rel))).collect();
    let o = run_bounded(&l.args(&[]));
    let err = stderr(&o);
    // Refusals only: 100 (doc/conventions.md#refused-is-100).
    assert_eq!(o.status.code(), Some(100), "{err}");
    for (name, _, _, needle) in &cases {
        assert!(
            err.lines().any(|line| line.starts_with("hermes-svscan-perms: warning: unable to use ")
                && line.contains(name)
                && line.ends_with(needle)),
            "{name}: {err:?} lacks {needle:?}"
        );
    }
    assert_eq!(err.lines().count(), cases.len(), "{err}");
    assert!(!err.contains("os error"), "{err}");
    assert_eq!(c.state(), before, "the canary changed");
    // A refused object is left exactly as it was.
    for ((name, _, rel, _), b) in cases.iter().zip(&plants) {
        assert_eq!(&snap(&planted(name, rel)), b, "{name}: the refused object changed");
    }
    assert_model(&l.sd().join("good"));
    assert_eq!(&ids(&l.sd().join("fifo-service")), &[FIFO, 0o666, 0, 0]);
    // -n reports the same refusals, changes nothing and exits 100.
    let o = run_bounded(&l.args(&["-n"]));
    assert_eq!(o.status.code(), Some(100), "{}", stderr(&o));
    assert_eq!(stderr(&o).lines().count(), cases.len(), "{}", stderr(&o));
    assert_eq!(c.state(), before);
}

/// A leftover deeper than the sweep's bound (64 levels): removing it stops
/// at the bound, a failure of the system kind (111), whoever planted it.
fn deep_leftover(scan: &Path) -> PathBuf {
    let top = scan.join(".gateway-deep.tmp");
    let mut p = top.clone();
    for _ in 0..70 {
        p.push("d");
    }
    std::fs::create_dir_all(&p).unwrap();
    top
}

#[test]
fn exit_code_is_the_highest_among_objects_refusal_100_system_111() {
    if !root_or_skip("exit_code_highest") {
        return;
    }
    // (doc/conventions.md#several-objects) Each object is still handled;
    // one warning line each; the exit is the highest code among them.
    let refused = |l: &Layout, c: &Canary| {
        let sup = l.add("sup-symlink").join("supervise");
        std::fs::remove_dir_all(&sup).unwrap();
        symlink(&c.dir, &sup).unwrap();
        let control = l.add("control-symlink").join("supervise/control");
        std::fs::remove_file(&control).unwrap();
        symlink(&c.file, &control).unwrap();
    };
    // Refusals only: 100, and the good service still gets the model.
    let l = Layout::new("perms-code-refused", &["good"], &[]);
    let c = Canary::new(&l.s);
    let before = c.state();
    refused(&l, &c);
    for extra in [&[][..], &["-n"], &["-T", "shared"]] {
        let o = run_bounded(&l.args(extra));
        assert_eq!(o.status.code(), Some(100), "{extra:?}: {}", stderr(&o));
        assert_eq!(stderr(&o).lines().count(), 2, "{extra:?}: one warning per refused object: {}", stderr(&o));
        assert!(stderr(&o).lines().all(|l| l.starts_with("hermes-svscan-perms: warning: unable to use ")), "{}", stderr(&o));
    }
    assert_model(&l.sd().join("good"));
    assert_eq!(c.state(), before);
    // A bound reached (a system failure): 111, and the rest is still done.
    let l = Layout::new("perms-code-system", &["good"], &[]);
    let deep = deep_leftover(&l.scan());
    let o = run_bounded(&l.args(&["-T", "shared"]));
    assert_eq!(o.status.code(), Some(111), "{}", stderr(&o));
    assert!(stderr(&o).contains("deeper than 64 levels"), "{}", stderr(&o));
    assert_eq!(stderr(&o).lines().count(), 1, "{}", stderr(&o));
    assert_model(&l.sd().join("good"));
    assert_eq!(&ids(&l.scan()), &[DIR, 0o755, UID, GID], "the scan directory was still shared");
    assert!(deep.is_dir());
    // Both in one run: the highest, 111; each object said once.
    let l = Layout::new("perms-code-both", &["good"], &[]);
    let c = Canary::new(&l.s);
    let before = c.state();
    refused(&l, &c);
    deep_leftover(&l.scan());
    let o = run_bounded(&l.args(&["-T", "shared"]));
    assert_eq!(o.status.code(), Some(111), "{}", stderr(&o));
    assert_eq!(stderr(&o).lines().count(), 3, "{}", stderr(&o));
    assert!(stderr(&o).contains("sup-symlink/supervise: is a symlink"), "{}", stderr(&o));
    assert!(stderr(&o).contains("control-symlink/supervise/control: is a symlink"), "{}", stderr(&o));
    assert_model(&l.sd().join("good"));
    assert_eq!(c.state(), before);
}

#[test]
fn a_fifo_at_the_svscan_control_dir_or_status_does_not_hang() {
    if !root_or_skip("fifos_scandir") {
        return;
    }
    let l = Layout::new("perms-fifo-scan", &["app"], &[]);
    std::fs::remove_file(l.sd().join("app/supervise/status")).unwrap();
    mkfifo(&l.sd().join("app/supervise/status"), 0o644);
    std::fs::remove_dir_all(l.scan().join(".s6-svscan")).unwrap();
    mkfifo(&l.scan().join(".s6-svscan"), 0o600);
    let o = run_bounded(&l.args(&["-T", "shared"]));
    assert_eq!(o.status.code(), Some(100), "refused: {}", stderr(&o));
    assert!(stderr(&o).contains(".s6-svscan: is a FIFO, expected a directory"), "{}", stderr(&o));
    let o = run_bounded(&l.args(&["-n", "-T", "shared"]));
    assert!(stdout(&o).contains("/app: status no (supervise/status 0644 0:0)"), "{}", stdout(&o));
}

#[test]
fn bad_invocations_are_refused_with_one_clear_line() {
    if !root_or_skip("refusals") {
        return;
    }
    let o = run(TOOL, &["-h"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(stdout(&o).starts_with("usage: hermes-svscan-perms [ -n ] [ -v ] [ -T isolated|shared ]"), "{}", stdout(&o));
    for (args, needle) in [
        (&["-x"][..], "hermes-svscan-perms: usage: hermes-svscan-perms [ -n ]"),
        (&["-T", "both"], "fatal: invalid topology: both"),
        // The letters before doc/conventions.md: usage errors, not aliases.
        (&["-t", "shared"], "fatal: invalid option '-t'"),
        (&["-d", "/run/hermes/service"], "fatal: invalid option '-d'"),
        (&["operand"], "fatal: unexpected operand: operand"),
        (&["-u", "no-such-user-here"], "fatal: unable to resolve user no-such-user-here: no such user in /etc/passwd"),
    ] {
        let o = run(TOOL, args);
        assert_eq!(o.status.code(), Some(100), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).starts_with("hermes-svscan-perms: "), "{}", stderr(&o));
        assert!(stderr(&o).contains(needle), "{args:?}: {}", stderr(&o));
    }
    let l = Layout::new("perms-nonroot", &["app"], &[]);
    let before = tree_snap(&l.s.join("run"));
    let o = run_as(UID, GID, TOOL, &l.args(&[]));
    assert_eq!(o.status.code(), Some(100));
    assert_eq!(stderr(&o), "hermes-svscan-perms: fatal: must run as root\n");
    assert_eq!(tree_snap(&l.s.join("run")), before);
}

#[test]
fn a_missing_servicedirs_is_a_warning_and_the_scandirs_are_still_done() {
    if !root_or_skip("missing_servicedirs") {
        return;
    }
    let l = Layout::new("perms-no-sd", &[], &[]);
    std::fs::remove_dir_all(l.s.join("run/s6-rc")).unwrap();
    let o = l.run(&["-T", "shared"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).contains("warning: ") && stderr(&o).contains("no such directory, so no static services"), "{}", stderr(&o));
    assert_eq!(&ids(&l.scan()), &[DIR, 0o755, UID, GID]);
}

// ---- under attack ------------------------------------------------------

/// Runs the tool with a deadline: a run that blocks (on a FIFO, say) fails the test.
fn run_bounded(args: &[String]) -> Output {
    let mut child = Command::new(TOOL).args(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let start = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if start.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("hermes-svscan-perms hung (> 10 s) with {args:?}");
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Forks a UID-10000 process that cycles through `swaps` (pairs exchanged
/// with RENAME_EXCHANGE, or renamed back and forth when `exchange` is false)
/// for 3 s, or until the race that waits for it kills it.
fn attacker(swaps: &[(PathBuf, PathBuf)], exchange: bool) -> nix::unistd::Pid {
    let c = |p: &PathBuf| CString::new(p.clone().into_os_string().into_encoded_bytes()).unwrap();
    let pairs: Vec<(CString, CString)> = swaps.iter().map(|(a, b)| (c(a), c(b))).collect();
    // SAFETY: the child only makes raw system calls, then _exit.
    match unsafe { nix::unistd::fork() }.unwrap() {
        nix::unistd::ForkResult::Child => unsafe {
            if libc::setgroups(0, std::ptr::null()) != 0 || libc::setgid(GID) != 0 || libc::setuid(UID) != 0 {
                libc::_exit(3);
            }
            let start = libc::time(std::ptr::null_mut());
            let (mut done, mut i) = (0u64, 0usize);
            while libc::time(std::ptr::null_mut()) - start < 3 {
                let (a, b) = &pairs[i % pairs.len()];
                let r = if exchange {
                    libc::syscall(libc::SYS_renameat2, libc::AT_FDCWD, a.as_ptr(), libc::AT_FDCWD, b.as_ptr(), libc::RENAME_EXCHANGE)
                } else {
                    let r = libc::rename(a.as_ptr(), b.as_ptr()) as libc::c_long;
                    libc::rename(b.as_ptr(), a.as_ptr());
                    r
                };
                if r == 0 {
                    done += 1;
                }
                i += 1;
            }
            libc::_exit(if done > 0 { 0 } else { 4 });
        },
        nix::unistd::ForkResult::Parent { child } => child,
    }
}

fn finished(pid: nix::unistd::Pid) -> Option<i32> {
    use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
    match waitpid(pid, Some(WaitPidFlag::WNOHANG)).unwrap() {
        WaitStatus::StillAlive => None,
        WaitStatus::Exited(_, code) => Some(code),
        other => panic!("attacker: {other:?}"),
    }
}

/// Runs the tool over and over while the attacker works (at most `runs`
/// times), between runs calling `reopen` (which gives the attacker back what
/// a run took away). Every run must exit 0, 100 or 111 with a message; the
/// canary must never change. Returns (exit 0 runs, exit 100 or 111 runs).
fn race(l: &Layout, c: &Canary, pid: nix::unistd::Pid, extra: &[&str], runs: usize, reopen: &dyn Fn()) -> (usize, usize) {
    let before = c.state();
    let (mut ok, mut refused) = (0, 0);
    let code = loop {
        let o = run_bounded(&l.args(extra));
        match o.status.code() {
            Some(0) => ok += 1,
            // Refused mid-swap (100), or an object gone mid-walk (111).
            Some(100 | 111) => {
                refused += 1;
                assert!(stderr(&o).starts_with("hermes-svscan-perms: warning: unable to "), "{}", stderr(&o));
            }
            other => panic!("exit {other:?}: {}", stderr(&o)),
        }
        assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));
        assert_eq!(c.state(), before, "the canary changed after {ok}+{refused} runs");
        reopen();
        if let Some(code) = finished(pid) {
            break code;
        }
        if ok + refused >= runs {
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
            let _ = nix::sys::wait::waitpid(pid, None);
            break 0;
        }
    };
    assert_eq!(code, 0, "the attacker could not do a single swap");
    assert_eq!(c.state(), before);
    let inside: Vec<_> = std::fs::read_dir(&c.dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(inside, ["canary"], "something was created next to the canary");
    (ok, refused)
}

/// A layout the user can attack: the set of service directories and each
/// service directory are the user's (as if a helper had chowned them).
fn attackable(tag: &str, names: &[&str]) -> (Layout, Canary) {
    let l = Layout::new(tag, names, &[]);
    let c = Canary::new(&l.s);
    chown(&l.sd(), UID, GID);
    for n in names {
        chown(&l.sd().join(n), UID, GID);
    }
    (l, c)
}

#[test]
fn attack_supervise_or_event_swapped_for_a_symlink_mid_run() {
    if !root_or_skip("attack_symlink_swap") {
        return;
    }
    let (l, c) = attackable("perms-attack-swap", &["a", "b"]);
    let (a, b) = (l.sd().join("a"), l.sd().join("b"));
    for d in [&a, &b] {
        symlink(&c.dir, d.join("s")).unwrap();
        chown(&d.join("s"), UID, GID);
    }
    let pid = attacker(&[(a.join("supervise"), a.join("s")), (b.join("event"), b.join("s"))], true);
    let (ok, refused) = race(&l, &c, pid, &[], 400, &|| {});
    eprintln!("symlink swaps: {ok} clean runs, {refused} refused mid-swap, canary intact");
    assert!(ok + refused >= 10);
}

#[test]
fn attack_hard_link_to_the_canary_swapped_in_for_control() {
    if !root_or_skip("attack_hardlink") {
        return;
    }
    let (l, c) = attackable("perms-attack-link", &["a"]);
    let sup = l.sd().join("a/supervise");
    // As a recursive chown by the old helper leaves it: the user's.
    let reopen = || {
        chown(&sup, UID, GID);
        mode(&sup, 0o755);
    };
    reopen();
    std::fs::hard_link(&c.file, sup.join("planted")).unwrap();
    let pid = attacker(&[(sup.join("control"), sup.join("planted"))], true);
    let (ok, refused) = race(&l, &c, pid, &[], 400, &reopen);
    eprintln!("hard-link swaps: {ok} clean runs, {refused} refused, canary intact");
}

#[test]
fn attack_fifos_with_no_reader_swapped_in_where_directories_are_expected() {
    if !root_or_skip("attack_fifo") {
        return;
    }
    let (l, c) = attackable("perms-attack-fifo", &["a"]);
    let a = l.sd().join("a");
    for f in ["f1", "f2"] {
        mkfifo(&a.join(f), 0o666);
        chown(&a.join(f), UID, GID);
    }
    mkfifo(&l.sd().join("f3"), 0o666);
    chown(&l.sd().join("f3"), UID, GID);
    let pid = attacker(&[(a.join("supervise"), a.join("f1")), (a.join("event"), a.join("f2")), (a.clone(), l.sd().join("f3"))], true);
    let (ok, refused) = race(&l, &c, pid, &["-T", "shared"], 400, &|| {});
    eprintln!("fifo swaps: {ok} clean runs, {refused} refused, never blocked");
}

#[test]
fn attack_directories_renamed_mid_walk() {
    if !root_or_skip("attack_rename") {
        return;
    }
    let names = ["a", "b", "c", "d"];
    let (l, c) = attackable("perms-attack-rename", &names);
    let sd = l.sd();
    symlink(&c.dir, sd.join("z-outside")).unwrap();
    chown(&sd.join("z-outside"), UID, GID);
    // The scan directory is the user's too (shared topology), with a leftover to sweep.
    chown(&l.scan(), UID, GID);
    // (Built aside and renamed in: a path-based mkdir inside the name the
    // attacker swaps would follow its symlink.)
    let sweep_outside = || {
        let t = l.scan().join(".gateway-x.tmp");
        if std::fs::symlink_metadata(&t).is_err() {
            let aside = l.scan().join(".aside");
            let _ = std::fs::create_dir_all(aside.join("sub"));
            let _ = std::fs::hard_link(&c.file, aside.join("sub/link"));
            let _ = std::fs::rename(&aside, &t);
        }
    };
    sweep_outside();
    symlink(&c.dir, l.scan().join("decoy")).unwrap();
    chown(&l.scan().join("decoy"), UID, GID);
    let swaps = [
        (sd.join("a"), sd.join("b")),
        (sd.join("c"), sd.join("z-outside")),
        (sd.join("d/supervise"), sd.join("d/event")),
        (l.scan().join(".gateway-x.tmp"), l.scan().join("decoy")),
    ];
    let pid = attacker(&swaps, true);
    let (ok, refused) = race(&l, &c, pid, &["-T", "shared"], 400, &sweep_outside);
    eprintln!("exchanges mid-walk: {ok} clean runs, {refused} refused, canary intact");
    // Plain renames away and back, too, on a fresh tree.
    let (l, c) = attackable("perms-attack-move", &names);
    let sd = l.sd();
    let pid = attacker(&[(sd.join("a"), sd.join("a-moved")), (sd.join("b/supervise"), sd.join("b/supervise-moved"))], false);
    let (ok, refused) = race(&l, &c, pid, &["-T", "shared"], 400, &|| {});
    eprintln!("renames mid-walk: {ok} clean runs, {refused} refused, canary intact");
}

#[test]
fn negative_control_the_shell_baseline_follows_a_planted_symlink() {
    if !root_or_skip("baseline_control") {
        return;
    }
    // The upstream approach (bench/baseline-perms.sh) on a service whose
    // supervise/ is a symlink: chmod follows it out of the tree. The same
    // plant against the tool is refused above, so the canary checks can fail.
    let l = Layout::new("perms-baseline", &[], &[]);
    let c = Canary::new(&l.s);
    let d = l.add("app");
    std::fs::remove_dir_all(d.join("supervise")).unwrap();
    symlink(&c.dir, d.join("supervise")).unwrap();
    let before = c.state();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/bench/baseline-perms.sh");
    let o = Command::new("sh").arg(script).arg(l.sd()).arg("10000:10000").output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_ne!(c.state(), before, "the baseline did not follow the symlink: the attack is not exercised");
}

#[test]
fn entries_s6_svscan_cannot_stat_are_warned_about() {
    if !root_or_skip("entries_s6_svscan_cannot_stat_are_warned_about") {
        return;
    }
    let l = Layout::new("perms-dangling", &["app"], &[]);
    ok_silent(&l.run(&[]));
    // A slot removed before its link (doc/design.md#abandoned-scan): s6-svscan 2.12+ stops
    // every scan there.
    symlink(l.sd().join("gone"), l.scan().join("gone")).unwrap();
    for args in [&["-n"][..], &[][..]] {
        let o = l.run(args);
        let want = format!(
            "hermes-svscan-perms: warning: s6-svscan cannot stat {}/gone: No such file or directory: since s6 2.12 it stops every scan there",
            l.scan().display()
        );
        assert!(stderr(&o).contains(&want), "{args:?}: {}", stderr(&o));
        assert_eq!(o.status.code(), Some(if args.is_empty() { 0 } else { 1 }), "{args:?}");
    }
    assert!(std::fs::symlink_metadata(l.scan().join("gone")).is_ok(), "left to the user");
}

#[test]
fn an_event_dir_an_earlier_run_opened_is_closed_and_emptied_of_what_the_user_planted() {
    if !root_or_skip("event_repair") {
        return;
    }
    let l = Layout::new("perms-event-repair", &["app"], &[]);
    let d = l.sd().join("app");
    let ev = d.join("event");
    // What the old `-E` grant left: the user's group may create entries.
    chown(&ev, 0, GID);
    mode(&ev, 0o3730);
    let canary = l.s.join("canary");
    std::fs::write(&canary, "canary\n").unwrap();
    let name = |c: char| format!("ftrig1:@{}", c.to_string().repeat(31));
    let plant = format!(
        "ln -s {c} {e}/{a} && ln -s {c} {e}/.x && mkdir {e}/{b} && mkfifo -m 0622 {e}/{f}",
        c = canary.display(),
        e = ev.display(),
        a = name('a'),
        b = name('b'),
        f = name('f')
    );
    let o = run_as(UID, GID, "sh", &["-c", &plant]);
    assert!(o.status.success(), "{}", stderr(&o));
    // The doctor names the risk and exits 1; nothing changes.
    let o = l.run(&["-n"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).contains(&format!("service {}: status no", d.display())), "{}", stdout(&o));
    assert!(stdout(&o).contains("events RISK (the user may create entries in event/"), "{}", stdout(&o));
    assert_eq!(&ids(&ev), &[DIR, 0o3730, 0, GID]);
    let o = l.run(&["-v"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).contains(&format!("info: chown {} 0:{GID} -> 0:0", ev.display())), "{}", stderr(&o));
    assert!(stderr(&o).contains(&format!("info: remove {}/{}", ev.display(), name('a'))), "{}", stderr(&o));
    assert_eq!(&ids(&ev), &[DIR, 0o3730, 0, 0], "back to s6-supervise's own");
    let mut left: Vec<String> = std::fs::read_dir(&ev).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    left.sort();
    assert_eq!(left, [name('f')], "only the single-link FIFO (a subscriber) is kept");
    assert_eq!(std::fs::read_to_string(&canary).unwrap(), "canary\n");
    // The user cannot plant anything any more.
    let again = format!("ln -s {} {}/{}", canary.display(), ev.display(), name('c'));
    assert!(!run_as(UID, GID, "sh", &["-c", &again]).status.success());
}

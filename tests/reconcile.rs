//! hermes-reconcile as a program: options, environment, exit codes,
//! output, ownership when run as root and as the user, the container
//! command found in /proc. (Real s6 is in tests/integration/30-*.)

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use common::*;

const TOOL: &str = env!("CARGO_BIN_EXE_hermes-reconcile");
const USER: &str = ":10000:10000";

/// The tool reads every process's command line: a test that plants a
/// fake container command must not run beside the others.
static PROC: RwLock<()> = RwLock::new(());

fn shared() -> RwLockReadGuard<'static, ()> {
    PROC.read().unwrap_or_else(|e| e.into_inner())
}

fn exclusive() -> RwLockWriteGuard<'static, ()> {
    PROC.write().unwrap_or_else(|e| e.into_inner())
}

/// A home and a scan directory, owned by the user.
struct Tree {
    s: Scratch,
}

impl Tree {
    fn new(tag: &str) -> Tree {
        let s = Scratch::new(tag);
        for d in ["home", "scan"] {
            std::fs::create_dir(s.join(d)).unwrap();
            chown(&s.join(d), UID, GID);
        }
        Tree { s }
    }
    fn home(&self) -> PathBuf {
        self.s.join("home")
    }
    fn scan(&self) -> PathBuf {
        self.s.join("scan")
    }
    /// A profile with a SOUL.md and an optional state, all the user's.
    fn profile(&self, name: &str, state: Option<&str>) -> PathBuf {
        let profiles = self.home().join("profiles");
        if !profiles.exists() {
            std::fs::create_dir(&profiles).unwrap();
            chown(&profiles, UID, GID);
        }
        let d = profiles.join(name);
        std::fs::create_dir(&d).unwrap();
        std::fs::write(d.join("SOUL.md"), "soul\n").unwrap();
        if let Some(st) = state {
            std::fs::write(d.join("gateway_state.json"), st).unwrap();
        }
        for p in [d.clone(), d.join("SOUL.md")] {
            chown(&p, UID, GID);
        }
        d
    }
    fn args(&self) -> Vec<String> {
        vec!["-u".into(), USER.into(), "-H".into(), path(&self.home()), "-s".into(), path(&self.scan())]
    }
    fn slots(&self) -> Vec<String> {
        let mut v: Vec<String> =
            std::fs::read_dir(self.scan()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        v.sort();
        v
    }
}

fn path(p: &Path) -> String {
    p.to_str().unwrap().to_string()
}

/// The tool with a clean environment (plus `env`), as root or as the user.
fn tool(args: &[String], env: &[(&str, &str)], as_user: bool) -> Output {
    let mut c = Command::new(TOOL);
    c.args(args).env_clear().env("PATH", "/usr/bin:/bin");
    for (k, v) in env {
        c.env(k, v);
    }
    if as_user {
        c.uid(UID).gid(GID);
    }
    c.output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn help_and_usage() {
    let _g = shared();
    let o = run(TOOL, &["-h"]);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(stdout(&o), "usage: hermes-reconcile [ -n ] [ -j ] [ -s scandir ] [ -H hermes_home ] [ -u user ]\n");
    for bad in [&["extra"][..], &["-x"], &["-s"], &["-u", "a b"]] {
        let o = run(TOOL, bad);
        assert_eq!(o.status.code(), Some(100), "{bad:?}: {}", stderr(&o));
    }
    let o = run(TOOL, &["-q"]);
    assert_eq!(
        stderr(&o),
        "hermes-reconcile: fatal: invalid option '-q'\nhermes-reconcile: usage: hermes-reconcile [ -n ] [ -j ] [ -s scandir ] [ -H hermes_home ] [ -u user ]\n"
    );
    let o = run(TOOL, &["-u", "a;b", "-n"]);
    assert_eq!(o.status.code(), Some(100));
    assert_eq!(stderr(&o), "hermes-reconcile: fatal: unable to use account a;b: expected a login name or :UID:GID\n");
}

#[test]
fn as_root_every_inode_of_every_slot_is_given_to_the_user() {
    if !root_or_skip("reconcile_as_root") {
        return;
    }
    let _g = shared();
    let t = Tree::new("rec-root");
    t.profile("coder", Some(r#"{"gateway_state": "running"}"#));
    let o = tool(&t.args(), &[], false);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stderr(&o), "");
    assert_eq!(
        stdout(&o),
        "reconcile: profile=default prior_state=None action=registered\nreconcile: profile=coder prior_state=running action=started\n"
    );
    assert_eq!(t.slots(), ["gateway-coder", "gateway-default"]);
    for (p, st) in tree_snap(&t.scan()).into_iter().skip(1) {
        assert_eq!((st.2, st.3), (UID, GID), "{}", p.display());
    }
    let slot = t.scan().join("gateway-coder");
    let modes: Vec<(String, u32)> = ["", "type", "run", "finish", "log", "log/run", "event", "supervise", "supervise/control", "log/event"]
        .iter()
        .map(|p| (p.to_string(), snap(&slot.join(p)).1))
        .collect();
    assert_eq!(
        modes,
        [
            ("".into(), 0o755),
            ("type".into(), 0o644),
            ("run".into(), 0o755),
            ("finish".into(), 0o755),
            ("log".into(), 0o755),
            ("log/run".into(), 0o755),
            ("event".into(), 0o3730),
            ("supervise".into(), 0o755),
            ("supervise/control".into(), 0o660),
            ("log/event".into(), 0o3730),
        ]
    );
    // The log it created belongs to the user too.
    let logs = t.home().join("logs");
    assert_eq!(ids(&logs)[2..], [UID, GID]);
    assert_eq!(ids(&logs.join("container-boot.log"))[2..], [UID, GID]);
}

#[test]
fn as_the_user_the_slots_are_the_users_and_other_uids_are_refused() {
    if !root_or_skip("reconcile_as_user") {
        return;
    }
    let _g = shared();
    let t = Tree::new("rec-user");
    t.profile("coder", None);
    let o = tool(&t.args(), &[], true);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(t.slots(), ["gateway-coder", "gateway-default"]);
    for (p, st) in tree_snap(&t.scan()).into_iter().skip(1) {
        assert_eq!((st.2, st.3), (UID, GID), "{}", p.display());
    }
    // Someone else may not build the user's slots.
    let mut c = Command::new(TOOL);
    let o = c.args(t.args()).uid(20000).gid(20000).output().unwrap();
    assert_eq!(o.status.code(), Some(100));
    assert_eq!(stderr(&o), "hermes-reconcile: fatal: must run as root or as :10000:10000 (uid 10000), not as uid 20000\n");
}

#[test]
fn the_environment_gives_defaults_and_flags_win() {
    if !root_or_skip("reconcile_env") {
        return;
    }
    let _g = shared();
    let t = Tree::new("rec-env");
    let other = t.s.join("other-scan");
    std::fs::create_dir(&other).unwrap();
    chown(&other, UID, GID);
    t.profile("coder", Some(r#"{"gateway_state": "running"}"#));
    std::fs::write(t.home().join("gateway_state.json"), r#"{"gateway_state": "running"}"#).unwrap();
    let home = path(&t.home());
    let env = [
        ("HERMES_HOME", home.as_str()),
        ("S6_PROFILE_GATEWAY_SCANDIR", other.to_str().unwrap()),
        ("GATEWAY_MULTIPLEX_PROFILES", "True"),
    ];
    let o = tool(&["-u".into(), USER.into()], &env, true);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        "reconcile: profile=default prior_state=running action=started\nreconcile: profile=coder prior_state=running action=registered\n",
        "multiplex keeps named slots down"
    );
    assert!(other.join("gateway-coder/down").exists() && t.slots().is_empty(), "the environment's scandir");
    let o = tool(&["-u".into(), USER.into(), "-s".into(), path(&t.scan())], &env, true);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(t.slots(), ["gateway-coder", "gateway-default"], "-s wins over the environment");
    // An empty variable is no value: HERMES_HOME falls back to /opt/data.
    let o = tool(&["-u".into(), USER.into(), "-n".into(), "-s".into(), path(&t.scan())], &[("HERMES_HOME", "")], true);
    assert_eq!(o.status.code(), Some(0));
    assert!(stderr(&o).is_empty() || stderr(&o).contains("/opt/data"), "{}", stderr(&o));
}

#[test]
fn json_output_and_dry_run() {
    if !root_or_skip("reconcile_json") {
        return;
    }
    let _g = shared();
    let t = Tree::new("rec-json");
    t.profile("b", Some(r#"{"desired_state": "stopped"}"#));
    t.profile("a", Some(r#"{"gateway_state": "draining"}"#));
    let before = tree_snap(t.s.path());
    let mut args = t.args();
    args.extend(["-n".into(), "-j".into()]);
    let o = tool(&args, &[], true);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(tree_snap(t.s.path()), before, "-n wrote something");
    let want = serde_json::json!([
        {"profile": "default", "prior_state": null, "action": "registered"},
        {"profile": "a", "prior_state": "running", "action": "started"},
        {"profile": "b", "prior_state": "stopped", "action": "registered"},
    ]);
    assert_eq!(serde_json::from_str::<serde_json::Value>(&stdout(&o)).unwrap(), want);
    assert!(stdout(&o).ends_with("]\n") && stdout(&o).lines().count() == 1);
    let o = tool(&t.args()[..].iter().cloned().chain(["-j".into()]).collect::<Vec<_>>(), &[], true);
    assert_eq!(serde_json::from_str::<serde_json::Value>(&stdout(&o)).unwrap(), want, "a real run reports the same");
}

#[test]
fn an_unwritable_scan_directory_is_fatal_111_and_nothing_changes() {
    if !root_or_skip("reconcile_unwritable") {
        return;
    }
    let _g = shared();
    let t = Tree::new("rec-111");
    chown(&t.scan(), 0, 0);
    std::fs::write(t.home().join("gateway.pid"), "1").unwrap();
    let o = tool(&t.args(), &[], true);
    assert_eq!(o.status.code(), Some(111));
    assert_eq!(stderr(&o), format!("hermes-reconcile: fatal: unable to write to {}: Permission denied\n", t.scan().display()));
    assert!(t.home().join("gateway.pid").exists() && !t.home().join("logs").exists());
    let mut args = t.args();
    args[5] = path(&t.s.join("missing"));
    let o = tool(&args, &[], true);
    assert_eq!(o.status.code(), Some(111));
    assert!(stderr(&o).ends_with("/missing: No such file or directory\n"), "{}", stderr(&o));
    // A dry run needs no scan directory.
    args.push("-n".into());
    assert_eq!(tool(&args, &[], true).status.code(), Some(0));
}

#[test]
fn the_boot_log_uses_local_time_with_its_offset() {
    if !root_or_skip("reconcile_tz") {
        return;
    }
    let _g = shared();
    let t = Tree::new("rec-tz");
    let o = tool(&t.args(), &[("TZ", "UTC-2")], true);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let log = std::fs::read_to_string(t.home().join("logs/container-boot.log")).unwrap();
    let (ts, rest) = log.split_once(' ').unwrap();
    assert!(ts.len() == 24 && ts.ends_with("+0200") && ts.as_bytes()[10] == b'T', "{ts}");
    assert_eq!(rest, "profile=default prior_state=None action=registered prior_exit=unknown\n");
}

/// A process whose command line is `argv`, as the container's command
/// would look in /proc; killed (with its process group) on drop.
struct Marker(std::process::Child);

impl Marker {
    /// `/bin/sh -e SCRIPT ARGS...`: SCRIPT sleeps; the shell stays, so
    /// its command line is exactly that.
    fn spawn(s: &Scratch, args: &[&str]) -> Marker {
        let script = s.join("rc.init");
        std::fs::write(&script, "sleep 60\n:\n").unwrap();
        let child = Command::new("/bin/sh").arg("-e").arg(&script).args(args).process_group(0).spawn().unwrap();
        let want = format!("/bin/sh\0-e\0{}\0{}\0", script.display(), args.join("\0"));
        let cmdline = format!("/proc/{}/cmdline", child.id());
        for _ in 0..200 {
            if std::fs::read(&cmdline).is_ok_and(|c| c == want.as_bytes()) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        Marker(child)
    }
}

impl Drop for Marker {
    fn drop(&mut self) {
        let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(self.0.id() as i32), nix::sys::signal::Signal::SIGKILL);
        let _ = self.0.wait();
    }
}

#[test]
fn a_dashboard_container_touches_nothing() {
    if !root_or_skip("reconcile_dashboard") {
        return;
    }
    let _g = exclusive();
    let t = Tree::new("rec-dash");
    t.profile("coder", Some(r#"{"gateway_state": "running"}"#));
    std::fs::write(t.home().join("gateway.pid"), "1").unwrap();
    chown(&t.scan(), 0, 0); // not even an unwritable scan directory matters
    let before = (tree_snap(&t.home()), tree_snap(&t.scan()));
    // The s6-overlay v3 shape: rc.init runs the wrapper (#49196).
    let _m = Marker::spawn(&t.s, &["top", "/opt/hermes/docker/main-wrapper.sh", "dashboard", "--no-open"]);
    let o = tool(&t.args(), &[], true);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), "reconcile: skipping (dashboard container: it runs no profile gateways)\n");
    assert_eq!(stderr(&o), "");
    let mut args = t.args();
    args.push("-j".into());
    let o = tool(&args, &[], true);
    assert_eq!((o.status.code(), stdout(&o).as_str()), (Some(0), "[]\n"));
    assert_eq!(stderr(&o), "hermes-reconcile: info: reconcile: skipping (dashboard container: it runs no profile gateways)\n");
    assert_eq!((tree_snap(&t.home()), tree_snap(&t.scan())), before);
}

#[test]
fn a_legacy_gateway_run_container_is_migrated_unless_opted_out() {
    if !root_or_skip("reconcile_legacy") {
        return;
    }
    let _g = exclusive();
    let t = Tree::new("rec-legacy");
    let _m = Marker::spawn(&t.s, &["/opt/hermes/docker/main-wrapper.sh", "gateway", "run"]);
    let o = tool(&t.args(), &[("HERMES_GATEWAY_NO_SUPERVISE", "1")], true);
    assert_eq!(stdout(&o), "reconcile: profile=default prior_state=None action=registered\n");
    assert!(!t.home().join("gateway_state.json").exists());
    let o = tool(&t.args(), &[("HERMES_SKIP_PROFILE_RECONCILE", "1")], true);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), "reconcile: profile=default prior_state=running action=started\n", "the legacy skip variable is ignored");
    let state = t.home().join("gateway_state.json");
    let record: serde_json::Value = serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
    assert_eq!(record["migrated_from"], "legacy-container-cmd");
    assert_eq!((ids(&state)[1], ids(&state)[2]), (0o644, UID));
    assert!(!t.scan().join("gateway-default/down").exists());
}

#[test]
fn without_a_container_command_nothing_is_migrated() {
    if !root_or_skip("reconcile_no_command") {
        return;
    }
    let _g = shared();
    let t = Tree::new("rec-plain");
    let o = tool(&t.args(), &[], true);
    assert_eq!(stdout(&o), "reconcile: profile=default prior_state=None action=registered\n");
    assert!(!t.home().join("gateway_state.json").exists());
    assert_eq!(std::fs::metadata(t.scan().join("gateway-default/run")).unwrap().permissions().mode() & 0o777, 0o755);
    assert_eq!(std::fs::metadata(t.scan().join("gateway-default")).unwrap().uid(), UID);
}

#[test]
fn the_rendered_scripts_are_shellcheck_clean() {
    use hermes_s6::profile::Profile;
    use hermes_s6::slot::{RunAs, Start, render};
    if Command::new("shellcheck").arg("--version").output().is_err() {
        if std::env::var_os("HERMES_S6_REQUIRE_ROOT").is_some_and(|v| v == "1") {
            panic!("shellcheck is missing (make check installs it)");
        }
        eprintln!("skipping shellcheck: not installed");
        return;
    }
    for (profile, user) in [("default", "hermes"), ("coder", "hermes"), ("a_b-0", ":10000:10000")] {
        let slot = render(&Profile::parse(profile.as_bytes()).unwrap(), &RunAs::new(user).unwrap(), Start::Down);
        for f in slot.files.iter().filter(|f| f.data.starts_with(b"#!")) {
            let mut c = Command::new("shellcheck")
                .args(["-s", "sh", "-"])
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            use std::io::Write;
            c.stdin.take().unwrap().write_all(&f.data).unwrap();
            let o = c.wait_with_output().unwrap();
            assert!(o.status.success(), "{profile} {}: {}", f.path(), stdout(&o));
        }
    }
}

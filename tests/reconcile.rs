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
    isolated(args, env, as_user.then_some(UID), None).output().unwrap()
}

/// The tool with `marker` as the container's command ([`Marker`]).
fn tool_marked(args: &[String], env: &[(&str, &str)], as_user: bool, marker: &Marker) -> Output {
    isolated(args, env, as_user.then_some(UID), Some(marker)).output().unwrap()
}

/// The tool, as `uid` (root if `None`), in a PID namespace of its own with
/// a fresh /proc (`unshare --pid --fork --mount-proc`): it reads every
/// command line there, and must see neither the processes of tests
/// running beside it nor theirs. `marker`, when given, is started in the
/// namespace first. `--kill-child`: nothing outlives the returned process.
fn isolated(args: &[String], env: &[(&str, &str)], uid: Option<u32>, marker: Option<&Marker>) -> Command {
    isolated_after("", args, env, uid, marker)
}

/// [`isolated`], the shell command `prelude` (e.g. `ulimit -n 16`) run
/// just before the tool.
fn isolated_after(prelude: &str, args: &[String], env: &[(&str, &str)], uid: Option<u32>, marker: Option<&Marker>) -> Command {
    let setpriv = |uid: u32| format!("setpriv --reuid={uid} --regid={uid} --clear-groups ");
    let mut script = String::from("set -e\n");
    if let Some(m) = marker {
        // The marker's command line is `/bin/sh -e RC ARGS...` once it has
        // started (setpriv, if any, has exec'd): wait for that.
        let by = m.uid.map(setpriv).unwrap_or_default();
        script.push_str(&format!("{by}/bin/sh -e \"$HERMES_S6_RC\" {} </dev/null >/dev/null 2>&1 &\n", shell_words(&m.args)));
        script.push_str("m=$!; i=0\n");
        // (Its first two arguments: before the exec they are ours, `/bin/sh -c`.)
        script.push_str("until [ \"$(tr '\\0' '\\n' </proc/$m/cmdline 2>/dev/null | head -n 2 | tr '\\n' ' ')\" = '/bin/sh -e ' ]; do\n");
        script.push_str("  i=$((i+1)); [ $i -lt 2000 ] || exit 98; sleep 0.005\ndone\n");
    }
    script.push_str(&format!("{prelude}\n{}\"$@\"\n", uid.map(setpriv).unwrap_or_default()));
    let mut c = Command::new("unshare");
    c.args(["--pid", "--fork", "--mount-proc", "--kill-child", "/bin/sh", "-c", &script, "sh", TOOL]).args(args);
    c.env_clear().env("PATH", "/usr/bin:/bin");
    if let Some(m) = marker {
        c.env("HERMES_S6_RC", &m.script);
    }
    for (k, v) in env {
        c.env(k, v);
    }
    c
}

/// Arguments quoted for sh.
fn shell_words(args: &[String]) -> String {
    args.iter().map(|a| format!("'{}'", a.replace('\'', "'\\''"))).collect::<Vec<_>>().join(" ")
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
    assert_eq!(stdout(&o), "");
    // -j: every failure is one JSON object on stdout, messages unchanged.
    let o = run(TOOL, &["-u", "a;b", "-nj"]);
    assert_eq!(json_error(&o), (vec![], "unable to use account a;b: expected a login name or :UID:GID".into(), 100));
    assert_eq!(stderr(&o), "hermes-reconcile: fatal: unable to use account a;b: expected a login name or :UID:GID\n");
    // A usage error with -j anywhere before `--`: JSON too (cli::asks_for_json).
    for (bad, why) in [
        (&["-j", "-q"][..], "invalid option '-q'"),
        (&["-q", "-j"], "invalid option '-q'"),
        (&["-nj", "extra"], "unexpected argument \"extra\""),
        (&["-j", "-s"], "missing argument for option '-s'"),
    ] {
        let o = run(TOOL, bad);
        assert_eq!(json_error(&o), (vec![], why.to_string(), 100), "{bad:?}");
        assert!(
            stderr(&o).ends_with("hermes-reconcile: usage: hermes-reconcile [ -n ] [ -j ] [ -s scandir ] [ -H hermes_home ] [ -u user ]\n")
        );
    }
    // -j as a value, or after `--`, is not a request for JSON.
    for bad in [&["-q", "-s", "-j"][..], &["-q", "--", "-j"]] {
        let o = run(TOOL, bad);
        assert_eq!((o.status.code(), stdout(&o).as_str()), (Some(100), ""), "{bad:?}");
    }
    // -h is a request for the usage, not a run: plain text even after -j.
    assert_eq!(stdout(&run(TOOL, &["-jh"])), "usage: hermes-reconcile [ -n ] [ -j ] [ -s scandir ] [ -H hermes_home ] [ -u user ]\n");
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
    let o = isolated(&t.args(), &[], Some(20000), None).output().unwrap();
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
    let env =
        [("HERMES_HOME", home.as_str()), ("S6_PROFILE_GATEWAY_SCANDIR", other.to_str().unwrap()), ("GATEWAY_MULTIPLEX_PROFILES", "True")];
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
    let want = serde_json::json!({"slots": [
        {"profile": "default", "prior_state": null, "action": "registered", "prior_exit": "unknown", "folded_into_root": false},
        {"profile": "a", "prior_state": "running", "action": "started", "prior_exit": "unknown", "folded_into_root": false},
        {"profile": "b", "prior_state": "stopped", "action": "registered", "prior_exit": "unknown", "folded_into_root": false},
    ]});
    assert_eq!(serde_json::from_str::<serde_json::Value>(&stdout(&o)).unwrap(), want);
    assert!(stdout(&o).ends_with("}\n") && stdout(&o).lines().count() == 1);
    let o = tool(&t.args()[..].iter().cloned().chain(["-j".into()]).collect::<Vec<_>>(), &[], true);
    assert_eq!(serde_json::from_str::<serde_json::Value>(&stdout(&o)).unwrap(), want, "a real run reports the same");
}

#[test]
fn the_boot_policy_variable() {
    if !root_or_skip("reconcile_policy") {
        return;
    }
    let _g = shared();
    // Its own PID namespace: no other suite's marker process can make it a
    // dashboard or legacy container.
    let alone = |args: &[String], env: &[(&str, &str)]| {
        let mut c = Command::new("unshare");
        c.args(["--pid", "--fork", "--mount-proc", "setpriv", "--reuid=10000", "--regid=10000", "--clear-groups", TOOL]);
        c.args(args).env_clear().env("PATH", "/usr/bin:/bin");
        for (k, v) in env {
            c.env(k, v);
        }
        c.output().unwrap()
    };
    let t = Tree::new("rec-policy");
    t.profile("coder", Some(r#"{"desired_state": "running"}"#));
    let notice = "reconcile: profile gateway(s) coder asked to autostart; one gateway per container serves every non-standalone profile, \
                  so the ROOT slot (gateway-default) was started instead and multiplexes them.";
    // multiplex: the notice first, then the slots; the root started for coder.
    let o = alone(&t.args(), &[("HERMES_S6_BOOT_POLICY", "multiplex")]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        format!(
            "{notice}\nreconcile: profile=default prior_state=None action=started\nreconcile: profile=coder prior_state=running action=registered\n"
        )
    );
    assert!(t.scan().join("gateway-coder/down").exists() && !t.scan().join("gateway-default/down").exists());
    // -j: stdout stays JSON, the notice goes to stderr.
    let o = alone(&[t.args(), vec!["-n".into(), "-j".into()]].concat(), &[("HERMES_S6_BOOT_POLICY", " multiplex ")]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!((v["slots"][0]["action"].as_str(), v["slots"][1]["folded_into_root"].as_bool()), (Some("started"), Some(true)));
    assert_eq!(stderr(&o), format!("{notice}\n"));
    // per-profile (and empty): today's rule.
    for policy in ["per-profile", ""] {
        let o = alone(&[t.args(), vec!["-n".into()]].concat(), &[("HERMES_S6_BOOT_POLICY", policy)]);
        assert_eq!(
            stdout(&o),
            "reconcile: profile=default prior_state=None action=registered\nreconcile: profile=coder prior_state=running action=started\n",
            "{policy:?}"
        );
    }
    // Anything else: exit 100, nothing touched.
    let before = tree_snap(t.s.path());
    let o = alone(&t.args(), &[("HERMES_S6_BOOT_POLICY", "Multiplex")]);
    assert_eq!(o.status.code(), Some(100));
    assert_eq!(
        stderr(&o),
        "hermes-reconcile: fatal: unable to use HERMES_S6_BOOT_POLICY=Multiplex: HERMES_S6_BOOT_POLICY must be per-profile or multiplex\n"
    );
    // -j: the same error as one JSON object.
    let o = alone(&[t.args(), vec!["-j".into()]].concat(), &[("HERMES_S6_BOOT_POLICY", "Multiplex")]);
    assert_eq!(o.status.code(), Some(100));
    assert_eq!(
        json_error(&o),
        (vec![], "unable to use HERMES_S6_BOOT_POLICY=Multiplex: HERMES_S6_BOOT_POLICY must be per-profile or multiplex".into(), 100)
    );
    assert_eq!(tree_snap(t.s.path()), before);
}

/// A failed run's `-j` document (one line, newline-ended, nothing else on
/// stdout): the profiles of its slots, its error and its code, which must
/// be the exit code.
fn json_error(o: &Output) -> (Vec<String>, String, i64) {
    let out = stdout(o);
    assert!(out.ends_with("}\n") && out.lines().count() == 1, "not one line: {out:?}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["code", "error", "slots"], "{out}");
    let slots = v["slots"].as_array().unwrap().iter().map(|e| e["profile"].as_str().unwrap().to_string()).collect();
    let code = v["code"].as_i64().unwrap();
    assert_eq!(o.status.code().map(i64::from), Some(code), "{out}");
    (slots, v["error"].as_str().unwrap().to_string(), code)
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
    assert_eq!(stdout(&o), "");
    // -j: the fatal message, without its prefix, and the code as one object.
    let o = tool(&[t.args(), vec!["-j".into()]].concat(), &[], true);
    assert_eq!(json_error(&o), (vec![], format!("unable to write to {}: Permission denied", t.scan().display()), 111));
    assert_eq!(stderr(&o), format!("hermes-reconcile: fatal: unable to write to {}: Permission denied\n", t.scan().display()));
    assert!(t.home().join("gateway.pid").exists() && !t.home().join("logs").exists());
    let mut args = t.args();
    args[5] = path(&t.s.join("missing"));
    let o = tool(&args, &[], true);
    assert_eq!(o.status.code(), Some(111));
    assert!(stderr(&o).ends_with("/missing: No such file or directory\n"), "{}", stderr(&o));
    args.push("-j".into());
    let (slots, error, _) = json_error(&tool(&args, &[], true));
    assert!(slots.is_empty() && error.ends_with("/missing: No such file or directory"), "{error}");
    args.pop();
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

/// A process whose command line is `/bin/sh -e SCRIPT ARGS...`, as the
/// container's command looks in /proc (SCRIPT sleeps; the shell stays),
/// started beside the tool in its PID namespace ([`isolated`]), as root
/// or, forged, as `uid`.
struct Marker {
    script: PathBuf,
    args: Vec<String>,
    uid: Option<u32>,
}

impl Marker {
    fn new(s: &Scratch, args: &[&str]) -> Marker {
        let script = s.join("rc.init");
        std::fs::write(&script, "sleep 60\n:\n").unwrap();
        Marker { script, args: args.iter().map(|a| a.to_string()).collect(), uid: None }
    }
    fn by(mut self, uid: u32) -> Marker {
        self.uid = Some(uid);
        self
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
    let m = Marker::new(&t.s, &["top", "/opt/hermes/docker/main-wrapper.sh", "dashboard", "--no-open"]);
    let o = tool_marked(&t.args(), &[], true, &m);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), "reconcile: skipping (dashboard container: it runs no profile gateways)\n");
    assert_eq!(stderr(&o), "");
    let mut args = t.args();
    args.push("-j".into());
    let o = tool_marked(&args, &[], true, &m);
    assert_eq!((o.status.code(), stdout(&o).as_str()), (Some(0), "{\"slots\":[]}\n"));
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
    let m = Marker::new(&t.s, &["/opt/hermes/docker/main-wrapper.sh", "gateway", "run"]);
    let o = tool_marked(&t.args(), &[("HERMES_GATEWAY_NO_SUPERVISE", "1")], true, &m);
    assert_eq!(stdout(&o), "reconcile: profile=default prior_state=None action=registered\n");
    assert!(!t.home().join("gateway_state.json").exists());
    let o = tool_marked(&t.args(), &[("HERMES_SKIP_PROFILE_RECONCILE", "1")], true, &m);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), "reconcile: profile=default prior_state=running action=started\n", "the legacy skip variable is ignored");
    let state = t.home().join("gateway_state.json");
    let record: serde_json::Value = serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
    assert_eq!(record["migrated_from"], "legacy-container-cmd");
    assert_eq!((ids(&state)[1], ids(&state)[2]), (0o644, UID));
    assert!(!t.scan().join("gateway-default/down").exists());
}

#[test]
fn a_container_command_forged_by_the_user_is_not_believed() {
    if !root_or_skip("reconcile_forged") {
        return;
    }
    let _g = shared();
    let t = Tree::new("rec-forged");
    let plain = "reconcile: profile=default prior_state=None action=registered\n";
    // Any process of the user may name the wrapper: a root reconcile
    // neither migrates for it...
    let m = Marker::new(&t.s, &["/opt/hermes/docker/main-wrapper.sh", "gateway", "run"]).by(UID);
    let o = tool_marked(&t.args(), &[], false, &m);
    assert_eq!((o.status.code(), stdout(&o).as_str(), stderr(&o).as_str()), (Some(0), plain, ""));
    assert!(!t.home().join("gateway_state.json").exists(), "migrated for a forged command");
    // ...nor skips the gateways for a forged dashboard container.
    let m = Marker::new(&t.s, &["top", "/opt/hermes/docker/main-wrapper.sh", "dashboard"]).by(UID);
    let o = tool_marked(&t.args(), &[], false, &m);
    assert_eq!((o.status.code(), stdout(&o).as_str()), (Some(0), plain));
    // The same command run by root is the container's.
    let m = Marker::new(&t.s, &["/opt/hermes/docker/main-wrapper.sh", "gateway", "run"]);
    let o = tool_marked(&t.args(), &[], false, &m);
    assert_eq!(stdout(&o), "reconcile: profile=default prior_state=running action=started\n");
}

/// A small tmpfs mounted on `at`, unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, options: &str) -> Tmpfs {
        use nix::mount::{MsFlags, mount};
        mount(Some("tmpfs"), at, Some("tmpfs"), MsFlags::empty(), Some(options)).unwrap();
        Tmpfs(at.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
    }
}

/// After a run that could not build every slot: exit 111, a warning
/// naming each slot not built and one fatal line, every slot reported
/// built complete and right for its intent, no staging directory left.
fn check_partial(t: &Tree, o: &Output, profiles: &[String], what: &str) -> usize {
    let (out, err) = (stdout(o), stderr(o));
    assert_eq!(o.status.code(), Some(111), "{what}: {err}");
    let built: Vec<&str> = out.lines().map(|l| l.split(' ').nth(1).unwrap().strip_prefix("profile=").unwrap()).collect();
    let failed: Vec<&String> = profiles.iter().filter(|p| !built.contains(&p.as_str())).collect();
    assert!(!failed.is_empty(), "{what}: every slot was built");
    for p in &failed {
        let lines =
            err.lines().filter(|l| l.starts_with("hermes-reconcile: warning: ") && l.ends_with(&format!("; gateway-{p} not built")));
        assert_eq!(lines.count(), 1, "{what}: gateway-{p}: {err}");
    }
    let fatal = format!("hermes-reconcile: fatal: unable to build {} of {} slots (see the warnings above)", failed.len(), profiles.len());
    assert_eq!(err.lines().filter(|l| l.contains(": fatal: ")).collect::<Vec<_>>(), [fatal.as_str()], "{what}");
    for p in &built {
        let up = complete_slot(&t.scan().join(format!("gateway-{p}"))).unwrap_or_else(|why| panic!("{what}: {why}"));
        assert_eq!(up, out.contains(&format!("profile={p} prior_state=running action=started")), "{what}: {p}");
    }
    let left: Vec<String> = t.slots().into_iter().filter(|n| n.starts_with('.')).collect();
    assert!(left.iter().all(|n| n.ends_with(".lck")) && left.iter().all(|n| !n.contains(".tmp")), "{what}: left behind: {left:?}");
    built.len()
}

#[test]
fn a_full_scan_directory_or_no_descriptors_left_is_fatal_111_and_the_rest_is_built() {
    if !root_or_skip("reconcile_enospc") {
        return;
    }
    let _g = shared();
    let t = Tree::new("rec-full");
    let mut profiles = vec!["default".to_string()];
    for i in 0..60 {
        let name = format!("p{i:02}");
        t.profile(&name, Some(if i % 2 == 0 { r#"{"gateway_state": "running"}"# } else { "{}" }));
        profiles.push(name);
    }
    // A scan directory with room for a few slots only.
    let tmpfs = Tmpfs::mount(&t.scan(), "size=1m,nr_inodes=64,mode=0755,uid=10000,gid=10000");
    let o = tool(&t.args(), &[], true);
    let built = check_partial(&t, &o, &profiles, "full tmpfs");
    assert!(built > 0, "no slot fitted: {}", stderr(&o));
    // -j, again on the full tmpfs: the slots built (unchanged now) with the error.
    let o = tool(&[t.args(), vec!["-j".into()]].concat(), &[], true);
    let (slots, error, code) = json_error(&o);
    assert_eq!((slots.len(), code), (built, 111), "{}", stderr(&o));
    assert_eq!(error, format!("unable to build {} of {} slots (see the warnings above)", profiles.len() - built, profiles.len()));
    drop(tmpfs);
    // Too few descriptors to build every slot (on 2 CPUs the tool needs
    // 16; with more CPUs it builds on more threads and needs more).
    let o = isolated_after("ulimit -n 12", &t.args(), &[], Some(UID), None).output().unwrap();
    check_partial(&t, &o, &profiles, "ulimit -n 12");
    // With room and descriptors again, everything comes up, exit 0.
    let o = tool(&t.args(), &[], true);
    assert_eq!((o.status.code(), stderr(&o).as_str()), (Some(0), ""));
    assert_eq!(t.slots().iter().filter(|n| n.starts_with("gateway-")).count(), 61);
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
    use hermes_s6::slot::{RunAs, Start, render};
    if Command::new("shellcheck").arg("--version").output().is_err() {
        if std::env::var_os("HERMES_S6_REQUIRE_ROOT").is_some_and(|v| v == "1") {
            panic!("shellcheck is missing (make check installs it)");
        }
        eprintln!("skipping shellcheck: not installed");
        return;
    }
    for user in ["hermes", ":10000:10000"] {
        let slot = render(&RunAs::new(user).unwrap(), Start::Down);
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
            assert!(o.status.success(), "{user} {}: {}", f.path(), stdout(&o));
        }
    }
}

/// Runs the tool as the user with a deadline (a FIFO must never hang it).
fn tool_within(args: &[String], secs: u64) -> Output {
    let mut child =
        isolated(args, &[], Some(UID), None).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("hermes-reconcile still running after {secs} s");
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    child.wait_with_output().unwrap()
}

/// `pattern` with `*` matching any run of characters.
fn glob(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if parts.len() == 1 {
        return text == pattern;
    }
    if !text.starts_with(first) || !text[first.len()..].ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    true
}

/// One hostile input: what to plant, then what must come out.
struct Case {
    name: &'static str,
    plant: fn(&Tree),
    exit: i32,
    /// Each warning line after `hermes-reconcile: warning: `, with {H}
    /// (home) and {S} (scan directory) substituted and `*` as a wildcard.
    warnings: &'static [&'static str],
    slots: &'static [&'static str],
}

const GOOD: &[&str] = &["gateway-default", "gateway-good"];
const WITH_VICTIM: &[&str] = &["gateway-default", "gateway-good", "gateway-victim"];

fn victim_state(t: &Tree) -> PathBuf {
    t.profile("victim", None).join("gateway_state.json")
}

/// A root-only file outside the tree, for symlinks to point at.
fn root_only_secret(t: &Tree) -> PathBuf {
    let p = t.s.join("secret");
    std::fs::write(&p, r#"{"desired_state": "running", "secret": "root only"}"#).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    p
}

fn named_dir(t: &Tree, name: &[u8]) {
    use std::os::unix::ffi::OsStrExt;
    let d = t.home().join("profiles").join(std::ffi::OsStr::from_bytes(name));
    std::fs::create_dir(&d).unwrap();
    std::fs::write(d.join("SOUL.md"), "soul").unwrap();
    chown(&d, UID, GID);
}

const HOSTILE: &[Case] = &[
    Case {
        name: "name with a dot",
        plant: |t| named_dir(t, b"Bad.Name"),
        exit: 0,
        warnings: &["unable to use {H}/profiles/Bad.Name: profile name must match [a-z0-9][a-z0-9_-]*; skipped"],
        slots: GOOD,
    },
    Case {
        name: "upper case name",
        plant: |t| named_dir(t, b"UPPER"),
        exit: 0,
        warnings: &["unable to use {H}/profiles/UPPER: profile name must match [a-z0-9][a-z0-9_-]*; skipped"],
        slots: GOOD,
    },
    Case {
        name: "leading dash",
        plant: |t| named_dir(t, b"-x"),
        exit: 0,
        warnings: &["unable to use {H}/profiles/-x: profile name must match [a-z0-9][a-z0-9_-]*; skipped"],
        slots: GOOD,
    },
    Case {
        name: "252-byte name",
        plant: |t| named_dir(t, &[b'a'; 252]),
        exit: 0,
        warnings: &["unable to use {H}/profiles/aaaaaaaaaa*a: profile name too long (252 > 251 bytes); skipped"],
        slots: GOOD,
    },
    Case {
        name: "trailing newline",
        plant: |t| named_dir(t, b"a\n"),
        exit: 0,
        warnings: &["unable to use {H}/profiles/a\\n: profile name must match [a-z0-9][a-z0-9_-]*; skipped"],
        slots: GOOD,
    },
    Case {
        name: "non-UTF-8 name",
        plant: |t| named_dir(t, b"\xff\xfe"),
        exit: 0,
        warnings: &["unable to use {H}/profiles/\u{fffd}\u{fffd}: profile name must match [a-z0-9][a-z0-9_-]*; skipped"],
        slots: GOOD,
    },
    Case {
        name: "valid 243-byte name: no slot fits",
        plant: |t| named_dir(t, &[b'b'; 243]),
        exit: 0,
        warnings: &[
            "unable to build {S}/gateway-bbbbbbbb*b: profile name longer than 242 bytes: no slot (file name and s6-svscan limits); gateway-bbb*b not built",
        ],
        slots: GOOD,
    },
    Case {
        name: "a crashed profile create's staging dir",
        plant: |t| named_dir(t, b".coder.staging-4242"),
        exit: 0,
        warnings: &["unable to use {H}/profiles/.coder.staging-4242: profile name must match [a-z0-9][a-z0-9_-]*; skipped"],
        slots: GOOD,
    },
    Case {
        name: "profiles/default",
        plant: |t| named_dir(t, b"default"),
        exit: 0,
        warnings: &["{H}/profiles/default/ exists: skipped, its slot would collide with the root profile's gateway-default"],
        slots: GOOD,
    },
    Case {
        name: "state file: symlink to a root-only file",
        plant: |t| std::os::unix::fs::symlink(root_only_secret(t), victim_state(t)).unwrap(),
        exit: 0,
        warnings: &["unable to read {H}/profiles/victim/gateway_state.json: is a symlink; treating as no prior state"],
        slots: WITH_VICTIM,
    },
    Case {
        name: "state file: symlink to a readable running state",
        plant: |t| {
            let target = t.s.join("elsewhere.json");
            std::fs::write(&target, r#"{"gateway_state": "running"}"#).unwrap();
            std::os::unix::fs::symlink(target, victim_state(t)).unwrap();
        },
        exit: 0,
        warnings: &["unable to read {H}/profiles/victim/gateway_state.json: is a symlink; treating as no prior state"],
        slots: WITH_VICTIM,
    },
    Case {
        name: "state file: FIFO",
        plant: |t| nix::unistd::mkfifo(&victim_state(t), nix::sys::stat::Mode::from_bits_truncate(0o666)).unwrap(),
        exit: 0,
        warnings: &[
            "unable to read {H}/profiles/victim/gateway_state.json: is a FIFO, expected a regular file; treating as no prior state",
        ],
        slots: WITH_VICTIM,
    },
    Case {
        name: "state file: directory",
        plant: |t| std::fs::create_dir(victim_state(t)).unwrap(),
        exit: 0,
        warnings: &[
            "unable to read {H}/profiles/victim/gateway_state.json: is a directory, expected a regular file; treating as no prior state",
        ],
        slots: WITH_VICTIM,
    },
    Case {
        name: "state file: 10 MiB",
        plant: |t| {
            let mut big = b"{\"desired_state\": \"running\", \"pad\": \"".to_vec();
            big.resize(10 << 20, b'x');
            big.extend_from_slice(b"\"}");
            std::fs::write(victim_state(t), big).unwrap();
        },
        exit: 0,
        warnings: &["unable to read {H}/profiles/victim/gateway_state.json: larger than 1048576 bytes; treating as no prior state"],
        slots: WITH_VICTIM,
    },
    Case {
        // Read without recursion; an array is no intent (no warning).
        name: "state file: 100,000-deep nesting",
        plant: |t| {
            let deep = format!("{{\"desired_state\": {}{}}}", "[".repeat(100_000), "]".repeat(100_000));
            std::fs::write(victim_state(t), deep).unwrap();
        },
        exit: 0,
        warnings: &[],
        slots: WITH_VICTIM,
    },
    Case {
        name: "state file: hard link",
        plant: |t| {
            let p = victim_state(t);
            std::fs::write(&p, r#"{"gateway_state": "running"}"#).unwrap();
            std::fs::hard_link(&p, p.with_file_name("other-name")).unwrap();
        },
        exit: 0,
        warnings: &["unable to read {H}/profiles/victim/gateway_state.json: has 2 hard links; treating as no prior state"],
        slots: WITH_VICTIM,
    },
    Case {
        name: "state file: unreadable (root, 0600)",
        plant: |t| {
            let p = victim_state(t);
            std::fs::write(&p, r#"{"gateway_state": "running"}"#).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        },
        exit: 0,
        warnings: &["unable to open {H}/profiles/victim/gateway_state.json: Permission denied; treating as no prior state"],
        slots: WITH_VICTIM,
    },
    Case {
        name: "state file: JSON but an array",
        plant: |t| std::fs::write(victim_state(t), r#"["running"]"#).unwrap(),
        exit: 0,
        warnings: &["unable to parse {H}/profiles/victim/gateway_state.json: not a JSON object (an array); treating as no prior state"],
        slots: WITH_VICTIM,
    },
    Case {
        name: "state file: truncated",
        plant: |t| std::fs::write(victim_state(t), r#"{"gateway_state": "runn"#).unwrap(),
        exit: 0,
        warnings: &[
            "unable to parse {H}/profiles/victim/gateway_state.json: not valid JSON (Unterminated string starting at line 1, column 19); treating as no prior state",
        ],
        slots: WITH_VICTIM,
    },
    Case {
        name: "state file: invalid UTF-8, and bytes that would forge a line",
        plant: |t| std::fs::write(victim_state(t), b"{\"desired_state\": \"\xff\nhermes-reconcile: fatal: forged\"}").unwrap(),
        exit: 0,
        warnings: &[
            "unable to parse {H}/profiles/victim/gateway_state.json: not valid JSON (not UTF-8 at line 1, column 20); treating as no prior state",
        ],
        slots: WITH_VICTIM,
    },
    Case {
        name: "state file: empty",
        plant: |t| std::fs::write(victim_state(t), "").unwrap(),
        exit: 0,
        warnings: &[
            "unable to parse {H}/profiles/victim/gateway_state.json: not valid JSON (Expecting value at line 1, column 1); treating as no prior state",
        ],
        slots: WITH_VICTIM,
    },
    Case {
        name: "root state file: FIFO",
        plant: |t| {
            let p = t.home().join("gateway_state.json");
            nix::unistd::mkfifo(&p, nix::sys::stat::Mode::from_bits_truncate(0o666)).unwrap();
        },
        exit: 0,
        warnings: &["unable to read {H}/gateway_state.json: is a FIFO, expected a regular file; treating as no prior state"],
        slots: GOOD,
    },
    Case {
        name: "SOUL.md: dangling symlink",
        plant: |t| {
            let d = t.profile("victim", Some(r#"{"gateway_state": "running"}"#));
            std::fs::remove_file(d.join("SOUL.md")).unwrap();
            std::os::unix::fs::symlink("/nonexistent/soul", d.join("SOUL.md")).unwrap();
        },
        exit: 0,
        warnings: &["unable to use {H}/profiles/victim/SOUL.md: is a dangling symlink; profile skipped"],
        slots: GOOD,
    },
    Case {
        name: "profiles: a symlink",
        plant: |t| {
            let real = t.home().join("profiles");
            let moved = t.s.join("real-profiles");
            std::fs::rename(&real, &moved).unwrap();
            std::os::unix::fs::symlink(&moved, &real).unwrap();
        },
        exit: 0,
        warnings: &["unable to use {H}/profiles: is a symlink, expected a directory; no named profile reconciled"],
        slots: &["gateway-default"],
    },
    Case {
        name: "a profile: a symlink to another",
        plant: |t| std::os::unix::fs::symlink(t.home().join("profiles/good"), t.home().join("profiles/victim")).unwrap(),
        exit: 0,
        warnings: &["unable to use {H}/profiles/victim: is a symlink (not followed); skipped"],
        slots: GOOD,
    },
    Case {
        name: "unreadable profile directory (root, 0700)",
        plant: |t| {
            let d = t.home().join("profiles/locked");
            std::fs::create_dir(&d).unwrap();
            std::fs::write(d.join("SOUL.md"), "soul").unwrap();
            std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700)).unwrap();
        },
        exit: 0,
        warnings: &["unable to open {H}/profiles/locked: Permission denied; skipped"],
        slots: GOOD,
    },
    Case {
        name: "root-owned leftover staging dir (#60774)",
        plant: |t| {
            let d = t.scan().join(".gateway-good.tmp");
            std::fs::create_dir_all(d.join("log")).unwrap();
            std::fs::write(d.join("run"), "#!/bin/sh\n").unwrap();
            std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700)).unwrap();
        },
        exit: 0,
        warnings: &["unable to open {S}/.gateway-good.tmp: Permission denied; left as {S}/.gateway-good.tmp.stale-*"],
        slots: GOOD,
    },
    Case {
        name: "root-owned leftover of a vanished profile",
        plant: |t| {
            let d = t.scan().join(".gateway-gone.tmp");
            std::fs::create_dir(&d).unwrap();
            std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700)).unwrap();
        },
        exit: 0,
        warnings: &["unable to open {S}/.gateway-gone.tmp: Permission denied; left as {S}/.gateway-gone.tmp.stale-*"],
        slots: GOOD,
    },
    Case {
        name: "a file where the slot goes",
        plant: |t| {
            std::fs::write(t.scan().join("gateway-good"), "not a slot").unwrap();
            chown(&t.scan().join("gateway-good"), UID, GID);
        },
        exit: 0,
        warnings: &[],
        slots: GOOD,
    },
    Case {
        name: "gateway.pid: a directory",
        plant: |t| std::fs::create_dir(t.home().join("profiles/good/gateway.pid")).unwrap(),
        exit: 0,
        warnings: &["unable to unlink {H}/profiles/good/gateway.pid: Is a directory"],
        slots: GOOD,
    },
    Case {
        name: "lifecycle ledger: FIFO",
        plant: |t| {
            let d = t.home().join("profiles/good/state");
            std::fs::create_dir(&d).unwrap();
            nix::unistd::mkfifo(&d.join("gateway.lifecycle.json"), nix::sys::stat::Mode::from_bits_truncate(0o666)).unwrap();
            chown(&d, UID, GID);
        },
        exit: 0,
        warnings: &[],
        slots: GOOD,
    },
    Case {
        name: "boot log: a symlink",
        plant: |t| {
            std::fs::create_dir(t.home().join("logs")).unwrap();
            chown(&t.home().join("logs"), UID, GID);
            std::os::unix::fs::symlink(t.s.join("secret"), t.home().join("logs/container-boot.log")).unwrap();
        },
        exit: 0,
        warnings: &["unable to append to {H}/logs/container-boot.log: is a symlink; the boot log is incomplete"],
        slots: GOOD,
    },
    Case {
        name: "logs: a regular file",
        plant: |t| std::fs::write(t.home().join("logs"), "x").unwrap(),
        exit: 0,
        warnings: &["unable to use {H}/logs: is a regular file, expected a directory; the boot log is incomplete"],
        slots: GOOD,
    },
    Case { name: "scan directory: not writable", plant: |t| chown(&t.scan(), 0, 0), exit: 111, warnings: &[], slots: &[] },
];

#[test]
fn hostile_inputs_give_one_warning_each_and_the_rest_still_comes_up() {
    if !root_or_skip("reconcile_hostile") {
        return;
    }
    let _g = shared();
    assert!(HOSTILE.len() >= 25);
    let mut failures = Vec::new();
    for case in HOSTILE {
        let t = Tree::new("rec-hostile");
        t.profile("good", Some(r#"{"gateway_state": "running"}"#));
        let secret = t.s.join("secret");
        std::fs::write(&secret, "root only\n").unwrap();
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
        (case.plant)(&t);
        let o = tool_within(&t.args(), 20);
        let (h, s) = (path(&t.home()), path(&t.scan()));
        let err = stderr(&o);
        let warnings: Vec<String> = err.lines().filter_map(|l| l.strip_prefix("hermes-reconcile: warning: ").map(String::from)).collect();
        let fatal: Vec<&str> = err.lines().filter(|l| !l.starts_with("hermes-reconcile: warning: ")).collect();
        let want: Vec<String> = case.warnings.iter().map(|w| w.replace("{H}", &h).replace("{S}", &s)).collect();
        let slots: Vec<String> = t.slots().into_iter().filter(|n| !n.starts_with('.')).collect();
        let ok = o.status.code() == Some(case.exit)
            && warnings.len() == want.len()
            && warnings.iter().zip(&want).all(|(got, w)| glob(w, got))
            && slots == case.slots
            && (case.exit != 0 || fatal.is_empty())
            && (case.exit == 0 || !t.slots().iter().any(|n| n.starts_with("gateway-")));
        if !ok {
            failures.push(format!(
                "{}: exit {:?}, stderr:\n{}slots: {slots:?}\nwanted exit {}, warnings {want:#?}, slots {:?}",
                case.name,
                o.status.code(),
                stderr(&o),
                case.exit,
                case.slots
            ));
        }
        // The root-only secret was never read into any output.
        assert!(!stdout(&o).contains("root only") && !stderr(&o).contains("root only"), "{}", case.name);
        // Every slot that exists is complete and the user's.
        for slot in slots {
            let d = t.scan().join(&slot);
            assert!(
                d.join("run").is_file() && d.join("log/run").is_file() && d.join("supervise/control").exists(),
                "{}: {slot}",
                case.name
            );
            assert_eq!(std::fs::metadata(&d).unwrap().uid(), UID, "{}: {slot}", case.name);
        }
    }
    assert!(failures.is_empty(), "{} of {} cases failed:\n\n{}", failures.len(), HOSTILE.len(), failures.join("\n\n"));
}

/// A small deterministic PRNG (xorshift64*), so a failure can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Checks that `slot` is a complete slot of `profile`, built for either
/// intent: its files are exactly the rendered ones, with the skeleton.
/// Returns whether it starts by itself.
fn complete_slot(slot: &Path) -> Result<bool, String> {
    use hermes_s6::slot::{RunAs, Start, render};
    let up = !slot.join("down").exists();
    let start = if up { Start::Up } else { Start::Down };
    let want = render(&RunAs::new(USER).unwrap(), start);
    for f in &want.files {
        let p = slot.join(f.path());
        let data = std::fs::read(&p).map_err(|e| format!("{}: {e}", p.display()))?;
        let mode = std::fs::metadata(&p).map_err(|e| e.to_string())?.permissions().mode() & 0o7777;
        if data != f.data[..] || mode != f.mode {
            return Err(format!("{} differs from the rendered file", p.display()));
        }
    }
    for d in [slot.to_path_buf(), slot.join("log")] {
        let kinds = [("event", 0o3730, 0o040000), ("supervise", 0o755, 0o040000), ("supervise/control", 0o660, 0o010000)];
        for (name, mode, kind) in kinds {
            let s = std::fs::symlink_metadata(d.join(name)).map_err(|e| format!("{}/{name}: {e}", d.display()))?;
            if s.mode() & 0o7777 != mode || s.mode() & 0o170000 != kind {
                return Err(format!("{}/{name}: mode {:o}", d.display(), s.mode()));
            }
        }
    }
    Ok(up)
}

/// Every profile's state file, by path (absent: None).
fn states(home: &Path, profiles: &[String]) -> Vec<(PathBuf, Option<Vec<u8>>)> {
    std::iter::once(home.to_path_buf())
        .chain(profiles.iter().map(|p| home.join("profiles").join(p)))
        .map(|d| d.join("gateway_state.json"))
        .map(|p| {
            let data = std::fs::read(&p).ok();
            (p, data)
        })
        .collect()
}

/// Whether `data` is exactly a migration record.
fn is_migration_record(data: &[u8]) -> bool {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) else { return false };
    let o = v.as_object().unwrap();
    o.len() == 4
        && o["gateway_state"] == "running"
        && o["desired_state"] == "running"
        && o["migrated_from"] == "legacy-container-cmd"
        && o["timestamp"].is_i64()
        && data.ends_with(b"}\n")
}

#[test]
fn kill_9_at_random_moments_never_leaves_a_half_built_slot() {
    if !root_or_skip("reconcile_crash") {
        return;
    }
    let _g = exclusive();
    const PROFILES: usize = 200;
    // Trials go on until this many kills landed while the tool was running.
    const KILLS: usize = 100;
    const MAX_TRIALS: usize = 400;
    const STATES: [&str; 5] = ["running", "stopped", "starting", "startup_failed", "draining"];
    let base = if Path::new("/dev/shm").is_dir() { PathBuf::from("/dev/shm") } else { std::env::temp_dir() };
    let t = Tree { s: Scratch(base.join(format!("hermes-s6-crash-{}", std::process::id()))) };
    let _ = std::fs::remove_dir_all(t.s.path());
    for d in ["", "home", "scan"] {
        std::fs::create_dir(t.s.join(d)).unwrap();
        chown(&t.s.join(d), UID, GID);
    }
    let seed = std::env::var("HERMES_S6_CRASH_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x5eed_1234_u64);
    let mut rng = Rng(seed);
    let names: Vec<String> = (0..PROFILES).map(|i| format!("p{i:03}")).collect();
    for n in &names {
        let st = STATES[rng.below(STATES.len() as u64) as usize];
        t.profile(n, Some(&format!("{{\"gateway_state\": \"{st}\"}}")));
    }
    let write_state = |p: &Path, st: &str| {
        std::fs::write(p, format!("{{\"desired_state\": \"{st}\"}}")).unwrap();
        chown(p, UID, GID);
    };
    // How long a full run takes, to aim the kills inside it.
    let start = std::time::Instant::now();
    let o = tool_within(&t.args(), 60);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let full = start.elapsed();
    let (mut mid_run, mut migrations, mut trial) = (0, 0, 0);
    let mut rerun = full;
    while mid_run < KILLS {
        trial += 1;
        assert!(trial <= MAX_TRIALS, "only {mid_run} kills landed during a run in {MAX_TRIALS} trials");
        // Every other trial is a boot (/run wiped: every slot is new); the
        // others rerun on the slots of the last one.
        let boot = trial % 2 == 0;
        if boot {
            for e in std::fs::read_dir(t.scan()).unwrap() {
                let p = e.unwrap().path();
                std::fs::remove_dir_all(&p).or_else(|_| std::fs::remove_file(&p)).unwrap();
            }
        }
        // Change some intents, so that slots get replaced, not only created.
        for _ in 0..10 {
            let p = &names[rng.below(PROFILES as u64) as usize];
            write_state(&t.home().join("profiles").join(p).join("gateway_state.json"), STATES[rng.below(5) as usize]);
        }
        // One trial in four: a legacy `gateway run` container, no root state.
        let root_state = t.home().join("gateway_state.json");
        let legacy = trial % 4 == 1;
        let marker = legacy.then(|| {
            let _ = std::fs::remove_file(&root_state);
            Marker::new(&t.s, &["/opt/hermes/docker/main-wrapper.sh", "gateway", "run"])
        });
        if !legacy && !root_state.exists() {
            write_state(&root_state, STATES[rng.below(5) as usize]);
        }
        let before = states(&t.home(), &names);
        let as_root = trial % 5 == 4;
        let mut c = isolated(&t.args(), &[], (!as_root).then_some(UID), marker.as_ref());
        c.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).process_group(0);
        let expected = if boot { full } else { rerun };
        let delay = std::time::Duration::from_micros(rng.below(expected.as_micros() as u64 * 11 / 10 + 1));
        let mut child = c.spawn().unwrap();
        std::thread::sleep(delay);
        if child.try_wait().unwrap().is_none() {
            mid_run += 1;
        }
        // The whole group: unshare, its namespace's init, the tool, the marker.
        let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGKILL);
        let _ = child.wait();

        // Never a half-built slot under a real name.
        let check = |when: &str| {
            for e in std::fs::read_dir(t.scan()).unwrap() {
                let name = e.unwrap().file_name().into_string().unwrap();
                if name.starts_with("gateway-") {
                    if let Err(why) = complete_slot(&t.scan().join(&name)) {
                        panic!("trial {trial} (seed {seed}), {when}: {why}");
                    }
                } else {
                    assert!(name.starts_with(".gateway-") && name.contains(".tmp"), "trial {trial}, {when}: stray {name}");
                }
            }
            // No state file changed, except by the migration of an absent root state.
            for ((path, was), (_, now)) in before.iter().zip(states(&t.home(), &names)) {
                let migrated = legacy && path == &root_state && was.is_none() && now.as_deref().is_some_and(is_migration_record);
                assert!(now == *was || migrated, "trial {trial}, {when}: {} changed", path.display());
            }
        };
        check("after kill -9");
        // The next run converges: the whole set, each slot right for its intent.
        let started = std::time::Instant::now();
        let o = isolated(&t.args(), &[], (!as_root).then_some(UID), marker.as_ref()).output().unwrap();
        if !boot {
            rerun = (rerun + started.elapsed()) / 2;
        }
        assert_eq!(o.status.code(), Some(0), "trial {trial}: {}", stderr(&o));
        assert_eq!(stderr(&o), "", "trial {trial}: the converging run warned");
        check("after the next run");
        let slots = t.slots();
        assert_eq!(slots.len(), PROFILES + 1, "trial {trial}: {slots:?}");
        for (i, p) in std::iter::once("default").chain(names.iter().map(String::as_str)).enumerate() {
            let up = complete_slot(&t.scan().join(format!("gateway-{p}"))).unwrap();
            let home = if i == 0 { t.home() } else { t.home().join("profiles").join(p) };
            let intent = std::fs::read(home.join("gateway_state.json")).unwrap_or_default();
            let prior = hermes_s6::state::parse_intent(&intent).ok().flatten();
            let running = hermes_s6::state::autostarts(prior.as_deref());
            assert_eq!(up, running, "trial {trial}: gateway-{p} for {}", String::from_utf8_lossy(&intent));
        }
        assert!(!t.home().join(".gateway_state.json.migrating").exists());
        if legacy && is_migration_record(&std::fs::read(&root_state).unwrap_or_default()) {
            migrations += 1;
        }
    }
    eprintln!(
        "crash safety: {trial} trials (seed {seed}), {mid_run} killed mid-run; a boot of {} slots takes {full:?}, a rerun {rerun:?}; {migrations} migrations",
        PROFILES + 1
    );
    assert!(migrations >= trial / 4 - 1, "the migration trials did not migrate");
}

#[test]
fn a_dangling_symlink_and_profiles_past_the_bound_are_warned_about() {
    if !root_or_skip("reconcile_dangling_and_bound") {
        return;
    }
    let _g = shared();
    let t = Tree::new("rec-census");
    t.profile("coder", None);
    // s6-svscan 2.12+ stops every scan at an entry it cannot stat.
    std::os::unix::fs::symlink("/nonexistent/svc", t.scan().join("gone")).unwrap();
    // 1998 other services with loggers and one without: 3997 of the user
    // scanner's 4000, so room for one slot (the root profile's), not two.
    for i in 0..1998 {
        std::fs::create_dir_all(t.scan().join(format!("other{i}/log"))).unwrap();
    }
    std::fs::create_dir(t.scan().join("lone")).unwrap();
    let o = tool(&t.args(), &[], false);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let err = stderr(&o);
    let scan = t.scan();
    assert!(
        err.contains(&format!(
            "hermes-reconcile: warning: s6-svscan cannot stat {}/gone: No such file or directory: since s6 2.12 it stops every scan there",
            scan.display()
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "hermes-reconcile: warning: unable to publish {}/gateway-coder: the s6-svscan of this scan directory supervises at most 4000 services and loggers (3997 other services there)",
            scan.display()
        )),
        "{err}"
    );
    assert!(scan.join("gateway-default").is_dir() && !scan.join("gateway-coder").exists());
}

//! The reconcile core on scratch trees (doc/design.md#intent).
//! Run as whoever runs `cargo test`: slots are owned by the caller.

use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use super::boot_log::{BOOT_LOG, BOOT_LOG_OLD, ROTATE_AT};
use super::report::{report_json, report_line};
use super::*;
use crate::local_time::local_timestamp;
use crate::state::STATE_FILE;
use crate::truthy;

struct Tree {
    root: PathBuf,
}

impl Tree {
    fn new(tag: &str) -> Tree {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let root = std::env::temp_dir().join(format!("hermes-s6-rec-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("home")).unwrap();
        std::fs::create_dir_all(root.join("scan")).unwrap();
        Tree { root }
    }
    fn home(&self) -> PathBuf {
        self.root.join("home")
    }
    fn scan(&self) -> PathBuf {
        self.root.join("scan")
    }
    /// A named profile with a SOUL.md and, if given, a state file.
    fn profile(&self, name: &str, state: Option<&str>) -> PathBuf {
        let d = self.home().join("profiles").join(name);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("SOUL.md"), "soul\n").unwrap();
        if let Some(s) = state {
            std::fs::write(d.join(STATE_FILE), s).unwrap();
        }
        d
    }
    fn root_state(&self, s: &str) {
        std::fs::write(self.home().join(STATE_FILE), s).unwrap();
    }
    fn cfg(&self) -> Config {
        Config {
            home: self.home(),
            scandir: self.scan(),
            run_as: RunAs::new("hermes").unwrap(),
            owner: Owner::Caller { uid: nix::unistd::geteuid().as_raw(), gid: nix::unistd::getegid().as_raw() },
            policy: Policy::PerProfile,
            multiplex_env: None,
            no_supervise: false,
            command: Command::Other,
            dry_run: false,
            now: 1_700_000_000,
        }
    }
    fn slot(&self, profile: &str) -> PathBuf {
        self.scan().join(format!("gateway-{profile}"))
    }
    fn scan_names(&self) -> Vec<String> {
        let mut v: Vec<String> =
            std::fs::read_dir(self.scan()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        v.sort();
        v
    }
    fn boot_log(&self) -> String {
        std::fs::read_to_string(self.home().join("logs/container-boot.log")).unwrap_or_default()
    }
}

impl Drop for Tree {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// Runs and returns (outcome, warnings).
fn reconcile(cfg: &Config) -> (Outcome, Vec<String>) {
    let mut warnings = Vec::new();
    let out = run(cfg, &mut |w| warnings.push(w.to_string())).unwrap();
    (out, warnings)
}

fn summary(out: &Outcome) -> Vec<(String, Option<String>, &'static str)> {
    out.entries.iter().map(|e| (e.profile.to_string(), e.prior_state.clone(), e.action.as_str())).collect()
}

fn s(v: &str) -> Option<String> {
    Some(v.to_string())
}

#[test]
fn the_intent_table_decides_started_or_registered_with_a_down_file() {
    let t = Tree::new("table");
    let cases: &[(&str, Option<&str>, Option<&str>, &str)] = &[
        ("a-running", Some(r#"{"timestamp": 1234567890, "gateway_state": "running"}"#), Some("running"), "started"),
        ("b-stopped", Some(r#"{"gateway_state": "stopped"}"#), Some("stopped"), "registered"),
        ("c-starting", Some(r#"{"gateway_state": "starting"}"#), Some("starting"), "registered"),
        ("d-startup-failed", Some(r#"{"gateway_state": "startup_failed"}"#), Some("startup_failed"), "registered"),
        ("e-draining", Some(r#"{"gateway_state": "draining"}"#), Some("running"), "started"),
        ("f-degraded", Some(r#"{"gateway_state": "degraded"}"#), Some("running"), "started"),
        ("g-desired-wins-up", Some(r#"{"desired_state": "running", "gateway_state": "startup_failed"}"#), Some("running"), "started"),
        ("h-desired-wins-down", Some(r#"{"desired_state": "stopped", "gateway_state": "running"}"#), Some("stopped"), "registered"),
        ("i-missing", None, None, "registered"),
        ("j-corrupt", Some("{not json"), None, "registered"),
        ("k-bom", Some("\u{feff}{\"gateway_state\": \"running\"}"), Some("running"), "started"),
        ("l-non-object", Some(r#"["running"]"#), None, "registered"),
    ];
    for (name, state, _, _) in cases {
        t.profile(name, *state);
    }
    let (out, warnings) = reconcile(&t.cfg());
    let mut want = vec![("default".to_string(), None, "registered")];
    want.extend(cases.iter().map(|(n, _, prior, action)| (n.to_string(), prior.map(String::from), *action)));
    assert_eq!(summary(&out), want);
    for (name, _, _, action) in cases {
        let slot = t.slot(name);
        assert_eq!(std::fs::read_to_string(slot.join("type")).unwrap(), "longrun\n");
        assert_eq!(std::fs::metadata(slot.join("run")).unwrap().permissions().mode() & 0o777, 0o755);
        assert_eq!(slot.join("down").exists(), *action == "registered", "{name}: down file");
    }
    assert_eq!(warnings.len(), 2, "{warnings:#?}");
    assert!(
        warnings[0]
            .ends_with("j-corrupt/gateway_state.json: not valid JSON (Expecting property name enclosed in double quotes at line 1, column 2); treating as no prior state")
    );
    assert!(warnings[1].ends_with("l-non-object/gateway_state.json: not a JSON object (an array); treating as no prior state"));
}

#[test]
fn multiplex_keeps_named_slots_down_but_not_the_root() {
    let t = Tree::new("multiplex");
    t.root_state(r#"{"gateway_state": "running"}"#);
    t.profile("coder", Some(r#"{"gateway_state": "running"}"#));
    let mut cfg = t.cfg();
    cfg.multiplex_env = Some(true);
    let (out, _) = reconcile(&cfg);
    assert_eq!(summary(&out), [("default".into(), s("running"), "started"), ("coder".into(), s("running"), "registered")]);
    assert!(t.slot("coder").join("down").exists() && !t.slot("default").join("down").exists());
    cfg.multiplex_env = Some(false);
    let (out, _) = reconcile(&cfg);
    assert_eq!(summary(&out)[1], ("coder".into(), s("running"), "started"));
    assert!(!t.slot("coder").join("down").exists(), "the slot was replaced without its down file");
}

#[test]
fn default_first_then_names_in_order_and_only_real_profiles() {
    let t = Tree::new("order");
    for n in ["zeta", "alpha", "m-1", "m_0", "0day"] {
        t.profile(n, None);
    }
    std::fs::create_dir_all(t.home().join("profiles/no-soul")).unwrap();
    std::fs::write(t.home().join("profiles/plain-file"), "x").unwrap();
    let (out, warnings) = reconcile(&t.cfg());
    let names: Vec<String> = out.entries.iter().map(|e| e.profile.to_string()).collect();
    assert_eq!(names, ["default", "0day", "alpha", "m-1", "m_0", "zeta"]);
    assert!(warnings.is_empty(), "{warnings:?}");
    assert!(!t.slot("no-soul").exists(), "a directory without SOUL.md is not a profile");
}

#[test]
fn without_a_profiles_directory_only_the_default_slot_exists_and_is_down() {
    let t = Tree::new("bare");
    let (out, warnings) = reconcile(&t.cfg());
    assert_eq!(summary(&out), [("default".into(), None, "registered")]);
    assert!(warnings.is_empty());
    assert_eq!(t.scan_names(), ["gateway-default"]);
    assert!(t.slot("default").join("down").exists());
    let run = std::fs::read_to_string(t.slot("default").join("run")).unwrap();
    assert!(run.contains("hermes gateway run --replace") && !run.contains("-p default"));
}

#[test]
fn the_root_profiles_own_state_decides_gateway_default() {
    for (state, action) in [("running", "started"), ("stopped", "registered"), ("startup_failed", "registered")] {
        let t = Tree::new("root-state");
        t.root_state(&format!("{{\"gateway_state\": \"{state}\"}}"));
        let (out, _) = reconcile(&t.cfg());
        assert_eq!(summary(&out), [("default".into(), s(state), action)]);
        assert_eq!(t.slot("default").join("down").exists(), action == "registered");
    }
}

#[test]
fn profiles_default_is_skipped_with_a_warning() {
    let t = Tree::new("pdefault");
    t.profile("default", Some(r#"{"gateway_state": "running"}"#));
    let (out, warnings) = reconcile(&t.cfg());
    assert_eq!(summary(&out), [("default".into(), None, "registered")]);
    assert_eq!(warnings.len(), 1);
    assert!(warnings[0].ends_with("/profiles/default/ exists: skipped, its slot would collide with the root profile's gateway-default"));
}

#[test]
fn stale_runtime_files_are_removed_from_every_profile_home() {
    let t = Tree::new("stale");
    let coder = t.profile("coder", None);
    for d in [t.home(), coder.clone()] {
        std::fs::write(d.join("gateway.pid"), "123").unwrap();
        std::fs::write(d.join("processes.json"), "{}").unwrap();
        std::fs::write(d.join("keep.json"), "{}").unwrap();
    }
    reconcile(&t.cfg());
    for d in [t.home(), coder] {
        assert!(!d.join("gateway.pid").exists() && !d.join("processes.json").exists(), "{}", d.display());
        assert!(d.join("keep.json").exists());
    }
}

#[test]
fn slot_content_matches_the_renderer_and_the_skeleton_is_seeded() {
    let t = Tree::new("content");
    t.profile("coder", Some(r#"{"gateway_state": "running"}"#));
    reconcile(&t.cfg());
    let slot = t.slot("coder");
    let content = slot::render(&RunAs::new("hermes").unwrap(), Start::Up);
    for f in &content.files {
        assert_eq!(std::fs::read(slot.join(f.path())).unwrap(), &f.data[..], "{}", f.path());
        assert_eq!(std::fs::metadata(slot.join(f.path())).unwrap().permissions().mode() & 0o7777, f.mode);
    }
    let finish = std::fs::read_to_string(slot.join("finish")).unwrap();
    assert!(finish.contains("78") && finish.contains("125"));
    let mut names: Vec<String> = std::fs::read_dir(&slot).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    names.sort();
    assert_eq!(names, ["event", "finish", "log", "run", "supervise", "type"], "nothing else in the slot");
    for d in [slot.clone(), slot.join("log")] {
        let mode = |p: &str| std::fs::symlink_metadata(d.join(p)).unwrap().permissions().mode() & 0o7777;
        assert_eq!((mode("event"), mode("supervise"), mode("supervise/control")), (0o3730, 0o755, 0o660));
    }
    assert_eq!(std::fs::metadata(&slot).unwrap().permissions().mode() & 0o7777, 0o755);
}

#[test]
fn the_boot_log_has_one_line_per_slot_with_prior_exit() {
    let t = Tree::new("log");
    let a = t.profile("a", Some(r#"{"gateway_state": "running"}"#));
    let b = t.profile("b", Some(r#"{"gateway_state": "stopped"}"#));
    std::fs::create_dir_all(a.join("state")).unwrap();
    std::fs::write(a.join("state/gateway.lifecycle.json"), r#"{"phase": "running", "pid": 9}"#).unwrap();
    std::fs::create_dir_all(b.join("state")).unwrap();
    std::fs::write(b.join("state/gateway.lifecycle.json"), r#"{"phase": "exited", "exit_code": 0}"#).unwrap();
    std::fs::create_dir_all(t.home().join("state")).unwrap();
    std::fs::write(t.home().join("state/gateway.lifecycle.json"), "garbage").unwrap();
    reconcile(&t.cfg());
    let log = t.boot_log();
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), 3, "{log}");
    let ts = local_timestamp(1_700_000_000);
    assert_eq!(lines[0], format!("{ts} profile=default prior_state=None action=registered prior_exit=unknown"));
    assert_eq!(lines[1], format!("{ts} profile=a prior_state=running action=started prior_exit=unclean"));
    assert_eq!(lines[2], format!("{ts} profile=b prior_state=stopped action=registered prior_exit=clean"));
    // %Y-%m-%dT%H:%M:%S%z
    let b = ts.as_bytes();
    assert_eq!(b.len(), 24, "{ts}");
    assert!(b[4] == b'-' && b[7] == b'-' && b[10] == b'T' && b[13] == b':' && b[16] == b':' && (b[19] == b'+' || b[19] == b'-'));
    assert!(ts.starts_with("2023-11-1"));
    // A second boot appends.
    reconcile(&t.cfg());
    assert_eq!(t.boot_log().lines().count(), 6);
}

#[test]
fn the_boot_log_rotates_at_exactly_256_kib_and_replaces_the_old_one() {
    let t = Tree::new("rotate");
    let logs = t.home().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let log = logs.join(BOOT_LOG);
    let old = logs.join(BOOT_LOG_OLD);
    // One byte short: appended in place.
    std::fs::write(&log, vec![b'x'; ROTATE_AT as usize - 1]).unwrap();
    std::fs::write(&old, "previous rotation\n").unwrap();
    reconcile(&t.cfg());
    let line = format!("{} profile=default prior_state=None action=registered prior_exit=unknown\n", local_timestamp(1_700_000_000));
    let mut want = vec![b'x'; ROTATE_AT as usize - 1];
    want.extend_from_slice(line.as_bytes());
    assert_eq!(std::fs::read(&log).unwrap(), want, "appended in place below the threshold");
    assert_eq!(std::fs::read_to_string(&old).unwrap(), "previous rotation\n", ".1 untouched below the threshold");
    // Exactly at the threshold: rotated, .1 replaced, the new log holds only this boot.
    std::fs::write(&log, vec![b'y'; ROTATE_AT as usize]).unwrap();
    reconcile(&t.cfg());
    assert_eq!(std::fs::read(&old).unwrap(), vec![b'y'; ROTATE_AT as usize]);
    assert_eq!(t.boot_log(), line, "the new log holds only this boot");
}

#[test]
fn a_dry_run_reports_the_same_and_writes_nothing() {
    let t = Tree::new("dry");
    t.root_state(r#"{"gateway_state": "running"}"#);
    let coder = t.profile("coder", Some(r#"{"gateway_state": "stopped"}"#));
    std::fs::write(coder.join("gateway.pid"), "1").unwrap();
    std::fs::create_dir(t.scan().join(".gateway-coder.tmp")).unwrap();
    let before = snapshot(&t.root);
    let mut cfg = t.cfg();
    cfg.dry_run = true;
    let (dry, warnings) = reconcile(&cfg);
    assert!(warnings.is_empty());
    assert_eq!(snapshot(&t.root), before, "the dry run changed something");
    // The dry run needs no scan directory at all.
    cfg.scandir = t.root.join("does-not-exist");
    let (dry2, _) = reconcile(&cfg);
    assert_eq!(dry2.entries, dry.entries);
    assert!(dry.entries.iter().all(|e| e.built.is_none()));
    let (real, _) = reconcile(&t.cfg());
    assert_eq!(summary(&dry), summary(&real));
}

/// Every path under `root` with its type, mode, size and mtime.
fn snapshot(root: &Path) -> Vec<(PathBuf, u32, u64, i64, i64)> {
    use std::os::unix::fs::MetadataExt;
    let mut out = Vec::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(p) = todo.pop() {
        let m = std::fs::symlink_metadata(&p).unwrap();
        out.push((p.clone(), m.mode(), m.size(), m.mtime(), m.mtime_nsec()));
        if m.is_dir() {
            todo.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
        }
    }
    out.sort();
    out
}

#[test]
fn report_lines_and_json() {
    let t = Tree::new("report");
    t.root_state(r#"{"gateway_state": "running"}"#);
    t.profile("coder", Some("{\"desired_state\": \"x y\\nreconcile: forged\"}"));
    t.profile("plain", None);
    let (out, _) = reconcile(&t.cfg());
    let lines: Vec<String> = out.entries.iter().map(report_line).collect();
    assert_eq!(
        lines,
        [
            "reconcile: profile=default prior_state=running action=started",
            "reconcile: profile=coder prior_state=x\\x20y\\x0areconcile:\\x20forged action=registered",
            "reconcile: profile=plain prior_state=None action=registered",
        ]
    );
    let json: serde_json::Value = serde_json::from_str(&report_json(&out.entries, None)).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"slots": [
            {"profile": "default", "prior_state": "running", "action": "started", "prior_exit": "unknown", "folded_into_root": false},
            {"profile": "coder", "prior_state": "x y\nreconcile: forged", "action": "registered", "prior_exit": "unknown", "folded_into_root": false},
            {"profile": "plain", "prior_state": null, "action": "registered", "prior_exit": "unknown", "folded_into_root": false},
        ]})
    );
    assert!(!report_json(&out.entries, None).contains('\n'), "one line");
    assert!(t.boot_log().contains(" profile=coder prior_state=x\\x20y\\x0areconcile:\\x20forged action="));
}

#[test]
fn the_legacy_gateway_run_command_is_migrated_once() {
    let t = Tree::new("legacy");
    let mut cfg = t.cfg();
    cfg.command = Command::LegacyGatewayRun;
    let (out, _) = reconcile(&cfg);
    assert!(out.migrated);
    assert_eq!(summary(&out), [("default".into(), s("running"), "started")]);
    let written: serde_json::Value = serde_json::from_slice(&std::fs::read(t.home().join(STATE_FILE)).unwrap()).unwrap();
    assert_eq!(written["migrated_from"], "legacy-container-cmd");
    assert_eq!(written["desired_state"], "running");
    assert_eq!(written["timestamp"], 1_700_000_000);
    assert!(!t.home().join(".gateway_state.json.migrating").exists());
    // The next boot reads the file; nothing is migrated again.
    let (out, _) = reconcile(&cfg);
    assert!(!out.migrated);
    assert_eq!(summary(&out), [("default".into(), s("running"), "started")]);
}

#[test]
fn no_migration_when_opted_out_or_when_a_state_exists() {
    let t = Tree::new("nolegacy");
    let mut cfg = t.cfg();
    cfg.command = Command::LegacyGatewayRun;
    cfg.no_supervise = true;
    let (out, _) = reconcile(&cfg);
    assert!(!out.migrated && !t.home().join(STATE_FILE).exists());
    assert_eq!(summary(&out), [("default".into(), None, "registered")]);
    // An existing stopped file is left exactly as it is.
    cfg.no_supervise = false;
    t.root_state(r#"{"gateway_state": "stopped"}"#);
    let (out, _) = reconcile(&cfg);
    assert!(!out.migrated);
    assert_eq!(std::fs::read_to_string(t.home().join(STATE_FILE)).unwrap(), r#"{"gateway_state": "stopped"}"#);
    assert_eq!(summary(&out), [("default".into(), s("stopped"), "registered")]);
    // --no-supervise in the command: not a legacy run (container.rs), so Other here.
    cfg.command = Command::Other;
    std::fs::remove_file(t.home().join(STATE_FILE)).unwrap();
    let (out, _) = reconcile(&cfg);
    assert!(!out.migrated && !t.home().join(STATE_FILE).exists());
    // A dangling symlink counts as present: never written through.
    symlink("/nonexistent-target", t.home().join(STATE_FILE)).unwrap();
    cfg.command = Command::LegacyGatewayRun;
    let (out, _) = reconcile(&cfg);
    assert!(!out.migrated);
    assert!(!Path::new("/nonexistent-target").exists());
}

#[test]
fn a_rerun_changes_nothing_and_leaves_no_staging_directory() {
    let t = Tree::new("rerun");
    t.profile("a", Some(r#"{"gateway_state": "running"}"#));
    t.profile("b", None);
    let (first, _) = reconcile(&t.cfg());
    assert!(first.entries.iter().all(|e| e.built == Some(Built::Created)));
    let before = snapshot(&t.scan());
    let run_before = std::fs::read(t.slot("a").join("run")).unwrap();
    let (second, warnings) = reconcile(&t.cfg());
    assert!(warnings.is_empty(), "{warnings:?}");
    assert!(second.entries.iter().all(|e| e.built == Some(Built::Unchanged)));
    assert_eq!(snapshot(&t.scan()), before, "an unchanged slot was rewritten");
    assert_eq!(std::fs::read(t.slot("a").join("run")).unwrap(), run_before);
    assert_eq!(t.scan_names(), ["gateway-a", "gateway-b", "gateway-default"]);
    // A slot edited by hand is rebuilt; a leftover staging dir is cleared.
    std::fs::write(t.slot("b").join("finish"), "#!/bin/sh\nexit 0\n").unwrap();
    std::fs::create_dir_all(t.scan().join(".gateway-gone.tmp/log")).unwrap();
    std::fs::create_dir_all(t.scan().join(".gateway-a.tmp")).unwrap();
    let (third, warnings) = reconcile(&t.cfg());
    assert!(warnings.is_empty(), "{warnings:?}");
    let built: Vec<_> = third.entries.iter().map(|e| e.built).collect();
    assert_eq!(built, [Some(Built::Unchanged), Some(Built::Unchanged), Some(Built::Replaced)]);
    assert_eq!(t.scan_names(), ["gateway-a", "gateway-b", "gateway-default"]);
    assert_eq!(std::fs::read_to_string(t.slot("b").join("finish")).unwrap(), slot::finish_script());
}

#[test]
fn a_bad_profile_never_stops_the_others() {
    let t = Tree::new("bad");
    t.profile("Bad.Name", Some(r#"{"gateway_state": "running"}"#));
    t.profile("good", Some(r#"{"gateway_state": "running"}"#));
    std::fs::create_dir_all(t.home().join("profiles/dangling")).unwrap();
    symlink("nowhere", t.home().join("profiles/dangling/SOUL.md")).unwrap();
    symlink(t.home().join("profiles/good"), t.home().join("profiles/linked")).unwrap();
    let (out, warnings) = reconcile(&t.cfg());
    assert_eq!(summary(&out), [("default".into(), None, "registered"), ("good".into(), s("running"), "started")]);
    assert_eq!(warnings.len(), 3, "{warnings:#?}");
    assert!(warnings[0].ends_with("/profiles/Bad.Name: profile name must match [a-z0-9][a-z0-9_-]*; skipped"));
    assert!(warnings[1].ends_with("/profiles/dangling/SOUL.md: is a dangling symlink; profile skipped"));
    assert!(warnings[2].ends_with("/profiles/linked: is a symlink (not followed); skipped"));
    assert_eq!(t.scan_names(), ["gateway-default", "gateway-good"]);
}

#[test]
fn an_unusable_scan_directory_is_the_only_fatal_error() {
    let t = Tree::new("noscan");
    let mut cfg = t.cfg();
    cfg.scandir = t.root.join("missing");
    std::fs::write(t.home().join("gateway.pid"), "1").unwrap();
    let e = run(&cfg, &mut |_| {}).unwrap_err();
    assert_eq!(e.to_string(), format!("unable to open {}: No such file or directory", cfg.scandir.display()));
    assert!(t.home().join("gateway.pid").exists(), "nothing was changed");
    // A missing HERMES_HOME is only a warning: gateway-default still comes up, down.
    let mut cfg = t.cfg();
    cfg.home = t.root.join("no-home");
    let (out, warnings) = reconcile(&cfg);
    assert_eq!(summary(&out), [("default".into(), None, "registered")]);
    assert_eq!(
        warnings,
        [format!(
            "unable to open {}: No such file or directory; no profile state read, gateway-default registered down",
            cfg.home.display()
        )]
    );
}

#[test]
fn a_setgid_scan_directory_still_gives_the_exact_modes() {
    let t = Tree::new("setgid");
    std::fs::set_permissions(t.scan(), std::fs::Permissions::from_mode(0o2755)).unwrap();
    t.profile("coder", None);
    let (out, warnings) = reconcile(&t.cfg());
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(out.entries.len(), 2);
    let slot = t.slot("coder");
    let mode = |p: &str| std::fs::symlink_metadata(slot.join(p)).unwrap().permissions().mode() & 0o7777;
    for (p, m) in [("", 0o755), ("log", 0o755), ("supervise", 0o755), ("log/supervise", 0o755), ("event", 0o3730), ("log/event", 0o3730)] {
        assert_eq!(mode(p), m, "{p}");
    }
    assert_eq!((mode("supervise/control"), mode("run"), mode("down")), (0o660, 0o755, 0o644));
}

/// (profile, action, folded) per entry.
fn folds(out: &Outcome) -> Vec<(String, &'static str, bool)> {
    out.entries.iter().map(|e| (e.profile.to_string(), e.action.as_str(), e.folded_into_root)).collect()
}

impl Tree {
    fn config(&self, profile: Option<&str>, text: &str) {
        let dir = match profile {
            Some(p) => self.home().join("profiles").join(p),
            None => self.home(),
        };
        std::fs::write(dir.join("config.yaml"), text).unwrap();
    }
    fn multiplex(&self) -> Config {
        Config { policy: Policy::Multiplex, ..self.cfg() }
    }
}

const RUNNING: &str = r#"{"desired_state": "running"}"#;

#[test]
fn multiplex_root_running_and_coder_running() {
    let t = Tree::new("mx-both");
    t.root_state(RUNNING);
    t.profile("coder", Some(RUNNING));
    let (out, warnings) = reconcile(&t.multiplex());
    assert_eq!(folds(&out), [("default".into(), "started", false), ("coder".into(), "registered", true)]);
    assert!(t.slot("coder").join("down").exists() && !t.slot("default").join("down").exists());
    assert_eq!(out.notice().as_deref(), Some(boot_policy::notice(&["coder"]).as_str()));
    assert!(warnings.is_empty(), "{warnings:?}");
    let log = t.boot_log();
    assert!(log.contains("profile=default prior_state=running action=started prior_exit=unknown folded_into_root=False\n"), "{log}");
    assert!(log.contains("profile=coder prior_state=running action=registered prior_exit=unknown folded_into_root=True\n"), "{log}");
}

#[test]
fn multiplex_no_root_state_and_coder_running_starts_the_root() {
    let t = Tree::new("mx-noroot");
    t.profile("coder", Some(RUNNING));
    t.profile("idle", Some(r#"{"desired_state": "stopped"}"#));
    let (out, _) = reconcile(&t.multiplex());
    assert_eq!(
        folds(&out),
        [("default".into(), "started", false), ("coder".into(), "registered", true), ("idle".into(), "registered", false)]
    );
    assert!(!t.slot("default").join("down").exists());
    assert!(out.notice().unwrap().contains("gateway(s) coder asked"));
}

#[test]
fn multiplex_standalone_keeps_its_own_gateway() {
    let t = Tree::new("mx-solo");
    t.root_state(r#"{"desired_state": "stopped"}"#);
    t.profile("solo", Some(RUNNING));
    t.config(Some("solo"), "gateway:\n  standalone: true\n");
    t.profile("coder", Some(RUNNING));
    t.profile("quiet", Some(r#"{"desired_state": "stopped"}"#));
    t.config(Some("quiet"), "gateway: {standalone: true}\n");
    let (out, _) = reconcile(&t.multiplex());
    assert_eq!(
        folds(&out),
        [
            ("default".into(), "started", false),
            ("coder".into(), "registered", true),
            ("quiet".into(), "registered", false),
            ("solo".into(), "started", false)
        ]
    );
    assert!(!t.slot("solo").join("down").exists() && t.slot("coder").join("down").exists());
    assert_eq!(out.notice().unwrap(), boot_policy::notice(&["coder"]));
}

#[test]
fn multiplex_nothing_running_starts_nothing_and_says_nothing() {
    let t = Tree::new("mx-none");
    t.profile("coder", None);
    let (out, _) = reconcile(&t.multiplex());
    assert_eq!(folds(&out), [("default".into(), "registered", false), ("coder".into(), "registered", false)]);
    assert_eq!(out.notice(), None);
}

#[test]
fn multiplex_never_starts_a_parked_root() {
    let t = Tree::new("mx-parked");
    t.root_state(r#"{"desired_state": "stopped"}"#);
    std::fs::write(t.home().join(crate::park::MARKER), "x").unwrap();
    t.profile("coder", Some(RUNNING));
    let (out, warnings) = reconcile(&t.multiplex());
    assert_eq!(folds(&out), [("default".into(), "registered", false), ("coder".into(), "registered", true)]);
    assert_eq!(out.notice(), None, "the root was not started: no notice");
    assert!(warnings.iter().any(|w| w.contains("the root profile is parked")), "{warnings:?}");
    // A marker whose intent was set to running since is stale.
    t.root_state(RUNNING);
    let (out, _) = reconcile(&t.multiplex());
    assert_eq!(folds(&out)[0], ("default".into(), "started", false));
}

#[test]
fn per_profile_keeps_todays_log_lines() {
    let t = Tree::new("pp-log");
    t.profile("coder", Some(RUNNING));
    let (out, _) = reconcile(&t.cfg());
    assert_eq!(folds(&out), [("default".into(), "registered", false), ("coder".into(), "started", false)]);
    assert!(!t.boot_log().contains("folded_into_root"), "{}", t.boot_log());
    assert_eq!(out.notice(), None);
}

#[test]
fn per_profile_reads_multiplex_profiles_from_config_yaml() {
    let t = Tree::new("pp-config");
    t.profile("coder", Some(RUNNING));
    let coder = |cfg: &Config| reconcile(cfg).0.entries[1].action;
    // config true, no env: named slots stay down.
    t.config(None, "multiplex_profiles: true\n");
    assert_eq!(coder(&t.cfg()), Action::Registered);
    // Under gateway: too.
    t.config(None, "gateway:\n  multiplex_profiles: true\n");
    assert_eq!(coder(&t.cfg()), Action::Registered);
    // env false overrides config true.
    assert_eq!(coder(&Config { multiplex_env: truthy::yes_or_no(OsStr::new("false")), ..t.cfg() }), Action::Started);
    // env maybe (not a boolean word) falls back to config true.
    assert_eq!(coder(&Config { multiplex_env: truthy::yes_or_no(OsStr::new("maybe")), ..t.cfg() }), Action::Registered);
    assert_eq!(coder(&Config { multiplex_env: truthy::yes_or_no(OsStr::new("")), ..t.cfg() }), Action::Registered);
    // env true overrides config false.
    t.config(None, "multiplex_profiles: false\n");
    assert_eq!(coder(&Config { multiplex_env: Some(true), ..t.cfg() }), Action::Registered);
    assert_eq!(coder(&t.cfg()), Action::Started);
}

#[test]
fn a_bad_config_yaml_is_a_warning_and_counts_as_absent() {
    use std::os::unix::fs::symlink;
    let t = Tree::new("bad-config");
    t.profile("coder", Some(RUNNING));
    let target = t.root.join("real.yaml");
    std::fs::write(&target, "multiplex_profiles: true\n").unwrap();
    let config = t.home().join("config.yaml");
    type Make<'a> = Box<dyn Fn() + 'a>;
    let cases: Vec<(&str, Make)> = vec![
        ("invalid", Box::new(|| std::fs::write(&config, "multiplex_profiles: [true\n").unwrap())),
        ("symlink", Box::new(|| symlink(&target, &config).unwrap())),
        ("fifo", Box::new(|| nix::unistd::mkfifo(&config, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap())),
        ("huge", Box::new(|| std::fs::write(&config, format!("multiplex_profiles: true\n#{}\n", "x".repeat(2 << 20))).unwrap())),
    ];
    for (what, make) in cases {
        let _ = std::fs::remove_file(&config);
        make();
        let (out, warnings) = reconcile(&t.cfg());
        assert_eq!(out.entries[1].action, Action::Started, "{what}: counts as absent");
        assert_eq!(warnings.len(), 1, "{what}: {warnings:?}");
        assert!(warnings[0].contains("config.yaml") && warnings[0].ends_with("treating it as absent"), "{what}: {warnings:?}");
    }
    // The same for a named profile's own config.yaml under the multiplex rule.
    let _ = std::fs::remove_file(&config);
    let own = t.home().join("profiles/coder/config.yaml");
    symlink(t.root.join("solo.yaml"), &own).unwrap();
    std::fs::write(t.root.join("solo.yaml"), "gateway: {standalone: true}\n").unwrap();
    let (out, warnings) = reconcile(&t.multiplex());
    assert_eq!(folds(&out)[1], ("coder".into(), "registered", true), "not standalone: the symlink was not followed");
    assert_eq!(warnings.len(), 1, "{warnings:?}");
}

#[test]
fn the_json_report_carries_prior_exit_and_folded_into_root() {
    let t = Tree::new("mx-json");
    t.profile("coder", Some(RUNNING));
    let (out, _) = reconcile(&t.multiplex());
    let json: serde_json::Value = serde_json::from_str(&report_json(&out.entries, None)).unwrap();
    assert_eq!(json["slots"][0]["folded_into_root"], false);
    assert_eq!(json["slots"][1]["folded_into_root"], true);
    assert_eq!(json["slots"][1]["prior_exit"], "unknown");
}

#[test]
fn undotted_staging_directories_are_removed_with_a_warning() {
    let t = Tree::new("undotted");
    std::fs::create_dir_all(t.scan().join("gateway-coder.tmp/supervise")).unwrap();
    std::fs::write(t.scan().join("gateway-coder.tmp/run"), "#!/bin/sh\n").unwrap();
    // Not ours: other names, and files.
    std::fs::create_dir_all(t.scan().join("gateway-Bad.tmp")).unwrap();
    std::fs::write(t.scan().join("gateway-x.tmp"), "").unwrap();
    std::fs::create_dir_all(t.scan().join("other.tmp")).unwrap();
    let (_, warnings) = reconcile(&t.cfg());
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].starts_with("removed ") && warnings[0].contains("gateway-coder.tmp: a stale staging directory"), "{warnings:?}");
    assert_eq!(t.scan_names(), ["gateway-Bad.tmp", "gateway-default", "gateway-x.tmp", "other.tmp"]);
}

#[test]
fn stale_state_staging_files_of_dead_writers_are_swept() {
    let t = Tree::new("stale-tmp");
    let coder = t.profile("coder", Some(r#"{"gateway_state": "running"}"#));
    // Above any pid_max (2^22): that writer is gone. Ours is alive.
    let dead = ".gateway_state.json.999999999.tmp";
    let live = format!(".gateway_state.json.{}.tmp", std::process::id());
    for home in [t.home(), coder.clone()] {
        for name in [dead, &live, ".gateway_state.json.migrating", ".gateway_state.json.x.tmp"] {
            std::fs::write(home.join(name), "{").unwrap();
        }
    }
    let (out, warnings) = reconcile(&t.cfg());
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(out.system_failures, 0);
    for home in [t.home(), coder] {
        assert!(!home.join(dead).exists() && !home.join(".gateway_state.json.migrating").exists(), "{}", home.display());
        assert!(home.join(&live).exists() && home.join(".gateway_state.json.x.tmp").exists(), "{}", home.display());
    }
    // A dry run removes nothing.
    let home = t.home();
    std::fs::write(home.join(dead), "{").unwrap();
    let mut cfg = t.cfg();
    cfg.dry_run = true;
    reconcile(&cfg);
    assert!(home.join(dead).exists());
}

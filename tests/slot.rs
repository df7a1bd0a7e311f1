//! hermes-slot as a program against a real s6-svscan (Debian's s6), run as
//! the user on a scan directory of its own (the isolated topology): the
//! lifecycle, status agreeing with s6-svstat, the state file, errors, and
//! parallel registers. (The booted image, both topologies: tests/integration/7x-slot-*.)

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;

const TOOL: &str = env!("CARGO_BIN_EXE_hermes-slot");
const USER: &str = ":10000:10000";

/// A scan directory watched by a real s6-svscan, and a HERMES_HOME; the
/// scanner is torn down on drop.
struct Scanner {
    s: Scratch,
    svscan: Option<Child>,
}

/// Who runs s6-svscan (and so every supervisor).
#[derive(Clone, Copy, PartialEq)]
enum Topology {
    /// The user's own scanner on its own scan directory.
    Isolated,
    /// Root's scanner on a scan directory the user owns, its control
    /// directory opened to the user's group as hermes-svscan-perms does
    /// (`.s6-svscan` 0710, `control` 0620): search, no read.
    Shared,
}

impl Scanner {
    fn new(tag: &str) -> Scanner {
        Scanner::with(tag, Topology::Isolated)
    }

    fn with(tag: &str, topology: Topology) -> Scanner {
        let s = Scratch::new(tag);
        for d in ["scan", "home", "home/profiles"] {
            std::fs::create_dir(s.join(d)).unwrap();
            chown(&s.join(d), UID, GID);
        }
        let mut sc = Scanner { s, svscan: None };
        sc.start_svscan(topology);
        if topology == Topology::Shared {
            let ctl = sc.scan().join(".s6-svscan");
            chown(&ctl, 0, GID);
            std::fs::set_permissions(&ctl, std::fs::Permissions::from_mode(0o710)).unwrap();
            chown(&ctl.join("control"), 0, GID);
            std::fs::set_permissions(ctl.join("control"), std::fs::Permissions::from_mode(0o620)).unwrap();
        }
        sc
    }

    fn start_svscan(&mut self, topology: Topology) {
        let mut c = Command::new("s6-svscan");
        c.arg(self.scan()).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
        if topology == Topology::Isolated {
            c.uid(UID).gid(GID);
        }
        self.svscan = Some(c.spawn().unwrap());
        let control = self.scan().join(".s6-svscan/control");
        eventually("s6-svscan listening", || {
            std::fs::symlink_metadata(&control).is_ok()
                && Command::new("s6-svscanctl").arg("-z").arg(self.scan()).status().unwrap().success()
        });
    }

    /// Orderly teardown: every supervisor ends, then s6-svscan.
    fn stop_svscan(&mut self) {
        if let Some(mut c) = self.svscan.take() {
            let _ = Command::new("s6-svscanctl").arg("-t").arg(self.scan()).status();
            let start = Instant::now();
            while c.try_wait().unwrap().is_none() {
                if start.elapsed() > Duration::from_secs(10) {
                    let _ = c.kill();
                    let _ = c.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }

    fn scan(&self) -> PathBuf {
        self.s.join("scan")
    }
    fn home(&self) -> PathBuf {
        self.s.join("home")
    }
    fn slot(&self, p: &str) -> PathBuf {
        self.scan().join(format!("gateway-{p}"))
    }

    /// The tool as the user, with this scan directory and home.
    fn tool(&self, args: &[&str]) -> Output {
        let mut c = Command::new(TOOL);
        c.arg("-s").arg(self.scan()).arg("-H").arg(self.home()).args(["-u", USER]).args(args);
        c.env_remove("HERMES_HOME").env_remove("S6_PROFILE_GATEWAY_SCANDIR").uid(UID).gid(GID);
        c.output().unwrap()
    }

    /// A profile home holding `state` as its gateway_state.json.
    fn profile_home(&self, p: &str, state: Option<&str>) -> PathBuf {
        let d = self.home().join("profiles").join(p);
        std::fs::create_dir(&d).unwrap();
        if let Some(text) = state {
            std::fs::write(d.join("gateway_state.json"), text).unwrap();
            chown(&d.join("gateway_state.json"), UID, GID);
        }
        chown(&d, UID, GID);
        d
    }

    /// Gives a registered slot scripts that run on this host (the real
    /// ones need s6-overlay's /command): a long sleep, a finish that lets
    /// it restart, a logger that drains its input.
    fn runnable(&self, p: &str) {
        let d = self.slot(p);
        for (f, text) in
            [("run", "#!/bin/sh\nexec sleep 100000\n"), ("finish", "#!/bin/sh\nexit 0\n"), ("log/run", "#!/bin/sh\nexec cat >/dev/null\n")]
        {
            let tmp = d.join(format!("{f}.new"));
            std::fs::write(&tmp, text).unwrap();
            std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755)).unwrap();
            chown(&tmp, UID, GID);
            std::fs::rename(&tmp, d.join(f)).unwrap();
        }
    }
}

impl Drop for Scanner {
    fn drop(&mut self) {
        self.stop_svscan();
    }
}

fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < Duration::from_secs(10), "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn ok(o: &Output, what: &str) -> String {
    assert!(o.status.success(), "{what}: exit {:?}: {}", o.status.code(), stderr(o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn svstat(args: &[&str], dir: &Path) -> Output {
    Command::new("s6-svstat").args(args).arg(dir).uid(UID).gid(GID).output().unwrap()
}

/// Every field of `s6-svstat -o`, in its order.
const SVSTAT_FIELDS: [&str; 14] = [
    "up",
    "wantedup",
    "normallyup",
    "ready",
    "paused",
    "pid",
    "pgid",
    "exitcode",
    "signal",
    "signum",
    "updownsince",
    "readysince",
    "updownfor",
    "readyfor",
];

/// The fields the s6-svstat on PATH knows (s6 2.11's has no `pgid`).
fn svstat_fields(dir: &Path) -> Vec<&'static str> {
    let o = svstat(&["-o", "pgid"], dir);
    let known = !String::from_utf8_lossy(&o.stderr).contains("invalid option field");
    SVSTAT_FIELDS.into_iter().filter(|f| known || *f != "pgid").collect()
}

/// Our `-j` object written as `s6-svstat -o` writes those fields.
fn as_svstat(o: &serde_json::Value, fields: &[&str]) -> String {
    let shown: Vec<String> = fields
        .iter()
        .map(|f| match &o[*f] {
            serde_json::Value::Null if *f == "signal" => "NA".to_string(),
            serde_json::Value::Null => "-1".to_string(),
            serde_json::Value::String(s) => s.clone(),
            v => v.to_string(),
        })
        .collect();
    shown.join(" ")
}

/// `s6-svstat -o` with every field it has against ours (`-j`), and the
/// human lines (ours in s6 2.15's words: s6 2.11's up line has no pgid;
/// seconds may tick between the two reads: retried). Checked on every s6
/// of the matrix (`make check` runs this under each).
fn agree(sc: &Scanner, p: &str, what: &str) {
    let dir = sc.slot(p);
    let fields = svstat_fields(&dir);
    for attempt in 0..5 {
        let theirs = svstat(&["-o", &fields.join(",")], &dir);
        let human = svstat(&[], &dir);
        let j = ok(&sc.tool(&["status", "-j", p]), "status -j");
        let line = ok(&sc.tool(&["status", p]), "status");
        let v: serde_json::Value = serde_json::from_str(&j).unwrap();
        let ours = as_svstat(&v["gateways"][0], &fields);
        let theirs = String::from_utf8_lossy(&theirs.stdout).trim_end().to_string();
        let human = format!("{p}: {}", String::from_utf8_lossy(&human.stdout).trim_end_matches('\n'));
        let mut line = line.trim_end_matches('\n').to_string();
        if !fields.contains(&"pgid")
            && let Some(g) = v["gateways"][0]["pgid"].as_u64()
        {
            line = line.replacen(&format!(" pgid {g})"), ")", 1);
        }
        if ours == theirs && line == human {
            return;
        }
        assert!(attempt < 4, "{what}: ours {ours:?} / {line:?}, s6-svstat {theirs:?} / {human:?}");
    }
}

/// The arguments of every s6-supervise working in `scan` (it runs in
/// its service directory).
fn supervisors_in(scan: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let p = e.path();
        let Ok(cmd) = std::fs::read(p.join("cmdline")) else { continue };
        let argv: Vec<_> = cmd.split(|&b| b == 0).map(|a| String::from_utf8_lossy(a).into_owned()).collect();
        if argv.first().is_some_and(|a| a.rsplit('/').next() == Some("s6-supervise"))
            && std::fs::read_link(p.join("cwd")).is_ok_and(|c| c.starts_with(scan))
        {
            out.push(argv.get(1).cloned().unwrap_or_default());
        }
    }
    out.sort();
    out
}

/// Whether process `pid` is alive (not a zombie).
fn alive(pid: u64) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.rsplit(')').next().unwrap_or("").trim_start().starts_with('Z'))
}

fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&o.stdout)))
}

/// `status -j`'s array of gateways.
fn gateways(o: &Output) -> serde_json::Value {
    json(o)["gateways"].clone()
}

#[test]
fn the_lifecycle_against_the_users_s6_svscan() {
    if root_or_skip("the_lifecycle_against_the_users_s6_svscan") {
        lifecycle(Topology::Isolated);
    }
}

#[test]
fn the_lifecycle_against_roots_s6_svscan() {
    if root_or_skip("the_lifecycle_against_roots_s6_svscan") {
        lifecycle(Topology::Shared);
    }
}

fn lifecycle(topology: Topology) {
    let sc = Scanner::with("slot-life", topology);
    let state =
        "{\"gateway_state\": \"running\",\"pid\":  4242 ,\"platforms\":{\"a\": [1, 2.50]},\n \"updated_at\": \"2026-01-01T00:00:00Z\"}\n";
    let home = sc.profile_home("coder", Some(state));

    // register -d: returns once supervised; nothing runs yet.
    ok(&sc.tool(&["register", "-d", "coder"]), "register");
    for d in [sc.slot("coder"), sc.slot("coder").join("log")] {
        assert!(Command::new("s6-svok").arg(&d).status().unwrap().success(), "{} supervised on return", d.display());
    }
    assert_eq!(ok(&sc.tool(&["list"]), "list"), "coder\n");
    assert_eq!(supervisors_in(&sc.scan()), ["gateway-coder", "gateway-coder/log"]);
    agree(&sc, "coder", "registered down");
    let no_subscriber = std::fs::read_dir(sc.slot("coder").join("event")).unwrap().count();
    assert_eq!(no_subscriber, 0, "our event FIFOs are gone");

    sc.runnable("coder");
    ok(&sc.tool(&["start", "-w", "coder"]), "start");
    let st = gateways(&sc.tool(&["status", "-j", "coder"]));
    assert_eq!((st[0]["up"].as_bool(), st[0]["wantedup"].as_bool()), (Some(true), Some(true)));
    let pid = st[0]["pid"].as_u64().unwrap();
    agree(&sc, "coder", "started");
    let after_start = std::fs::read_to_string(home.join("gateway_state.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&after_start).unwrap();
    assert_eq!(v["desired_state"], "running");
    assert!(v["updated_at"].is_i64(), "integer updated_at: {after_start}");
    assert!(
        after_start.starts_with("{\"gateway_state\": \"running\",\"pid\":  4242 ,\"platforms\":{\"a\": [1, 2.50]},\n \"updated_at\": "),
        "every other byte kept: {after_start}"
    );
    assert!(after_start.ends_with(",\"desired_state\":\"running\"}\n"), "{after_start}");
    assert_eq!(std::fs::metadata(home.join("gateway_state.json")).unwrap().uid(), UID);

    ok(&sc.tool(&["restart", "-w", "coder"]), "restart");
    let st = gateways(&sc.tool(&["status", "-j", "coder"]));
    let new_pid = st[0]["pid"].as_u64().unwrap();
    assert_ne!(new_pid, pid, "restart gives a new pid");
    agree(&sc, "coder", "restarted");

    ok(&sc.tool(&["stop", "-w", "coder"]), "stop");
    let st = gateways(&sc.tool(&["status", "-j", "coder"]));
    assert_eq!((st[0]["up"].as_bool(), st[0]["wantedup"].as_bool(), st[0]["signal"].as_str()), (Some(false), Some(false), Some("SIGTERM")));
    agree(&sc, "coder", "stopped");
    let marker: serde_json::Value = serde_json::from_slice(&std::fs::read(home.join(".gateway-planned-stop.json")).unwrap()).unwrap();
    assert_eq!(marker["target_pid"].as_u64(), Some(new_pid), "planned-stop marker for the pid stopped");
    assert!(marker["target_start_time"].is_u64() && marker["written_at"].is_string());
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(home.join("gateway_state.json")).unwrap()).unwrap();
    assert_eq!((v["desired_state"].as_str(), v["pid"].as_u64()), (Some("stopped"), Some(4242)));

    // Up again, then unregister brings it down and removes everything.
    ok(&sc.tool(&["start", "-w", "coder"]), "start again");
    let running = gateways(&sc.tool(&["status", "-j", "coder"]))[0]["pid"].as_u64().unwrap();
    assert!(alive(running));
    let t = Instant::now();
    ok(&sc.tool(&["unregister", "coder"]), "unregister");
    eprintln!("unregister of a running gateway: {:?}", t.elapsed());
    assert!(!sc.slot("coder").exists());
    assert_eq!(std::fs::read_dir(sc.scan()).unwrap().map(|e| e.unwrap().file_name()).collect::<Vec<_>>(), [".s6-svscan"]);
    assert!(supervisors_in(&sc.scan()).is_empty(), "no supervisor left");
    assert!(!alive(running), "the gateway is gone");
    assert_eq!(ok(&sc.tool(&["list"]), "list"), "");
    // Idempotent.
    ok(&sc.tool(&["unregister", "coder"]), "unregister again");
}

#[test]
fn errors_and_their_exit_codes() {
    if !root_or_skip("errors_and_their_exit_codes") {
        return;
    }
    let mut sc = Scanner::new("slot-err");
    ok(&sc.tool(&["register", "-d", "coder"]), "register");
    let o = sc.tool(&["register", "coder"]);
    assert_eq!(o.status.code(), Some(1), "register twice: {}", stderr(&o));
    assert!(stderr(&o).contains("gateway 'coder' is already registered"), "{}", stderr(&o));

    // The names reconcile refuses (doc/design.md#profile-names), and a newline.
    let long = "a".repeat(252);
    for bad in
        ["", "Coder", "foo/bar", "../escape", "-leading-dash", "_leading_underscore", "name with spaces", "name.with.dots", &long, "a\n"]
    {
        for cmd in ["register", "unregister", "start", "stop", "restart", "port"] {
            let o = sc.tool(&[cmd, "--", bad]);
            assert_eq!(o.status.code(), Some(100), "{cmd} {bad:?}: {}", stderr(&o));
            assert!(stderr(&o).starts_with("hermes-slot: fatal: invalid profile name '"), "{}", stderr(&o));
        }
    }

    // An unregistered profile: upstream's message, exit 2, nothing written.
    let before = tree_snap(&sc.scan());
    for cmd in ["start", "stop", "restart", "park", "unpark"] {
        let o = sc.tool(&[cmd, "typo"]);
        assert_eq!(o.status.code(), Some(2), "{cmd}");
        assert_eq!(
            stderr(&o),
            "hermes-slot: fatal: no such gateway 'typo': register it with `hermes profile create typo` first, or pass an existing profile name via `-p <name>`\n"
        );
    }
    assert_eq!(before, tree_snap(&sc.scan()), "no control write, nothing created");

    // A missing profile home is not created.
    ok(&sc.tool(&["stop", "coder"]), "stop without a home");
    assert!(!sc.home().join("profiles/coder").exists());

    // The supervisor is gone (the scanner was torn down): status says so, as s6-svstat does.
    sc.stop_svscan();
    let o = sc.tool(&["status", "coder"]);
    assert_eq!(o.status.code(), Some(102), "no supervisor");
    assert_eq!(String::from_utf8_lossy(&o.stdout), "coder: not supervised\n");
    assert!(stderr(&o).contains("s6-supervise not running"), "{}", stderr(&o));
    assert_eq!(svstat(&[], &sc.slot("coder")).status.code(), Some(1), "s6-svstat says so too (its exit 1)");
    let j = gateways(&sc.tool(&["status", "-j", "coder"]));
    assert_eq!((j[0]["registered"].as_bool(), j[0]["supervised"].as_bool()), (Some(true), Some(false)));
    let o = sc.tool(&["start", "coder"]);
    assert_eq!(o.status.code(), Some(102), "{}", stderr(&o));
    assert!(stderr(&o).ends_with("supervisor not listening\n"), "{}", stderr(&o));

    // No s6-svscan listening: register withdraws the slot, exit 111.
    let o = sc.tool(&["register", "writer"]);
    assert_eq!(o.status.code(), Some(111), "{}", stderr(&o));
    assert!(stderr(&o).contains("s6-svscan not listening (the slot was removed again)"), "{}", stderr(&o));
    let left: Vec<_> = std::fs::read_dir(sc.scan()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    assert!(!left.iter().any(|n| n.contains("writer")), "{left:?}");

    // Unregister without a scanner: nothing supervises it, so it just goes.
    ok(&sc.tool(&["unregister", "coder"]), "unregister an unsupervised slot");
    assert!(!sc.slot("coder").exists());
}

#[test]
fn status_of_every_slot_list_and_port() {
    if !root_or_skip("status_of_every_slot_list_and_port") {
        return;
    }
    let sc = Scanner::new("slot-list");
    for p in ["b", "a", "default"] {
        ok(&sc.tool(&["register", "-d", p]), "register");
    }
    std::fs::create_dir(sc.scan().join("gateway-Bad")).unwrap();
    std::fs::create_dir(sc.scan().join(".gateway-c")).unwrap();
    assert_eq!(ok(&sc.tool(&["list"]), "list"), "a\nb\ndefault\n");
    let lines = ok(&sc.tool(&["status"]), "status");
    assert_eq!(lines.lines().map(|l| l.split(':').next().unwrap()).collect::<Vec<_>>(), ["a", "b", "default"]);
    assert_eq!(ok(&sc.tool(&["port", "coder"]), "port"), "9530\n");
    for p in ["a", "b", "default"] {
        ok(&sc.tool(&["unregister", p]), "unregister");
    }
}

/// 20 profiles registered, then unregistered, all at once, twice over: no
/// leftovers, no stray supervisors, no dangling entries.
#[test]
fn twenty_in_parallel_twice() {
    if !root_or_skip("twenty_in_parallel_twice") {
        return;
    }
    let sc = Scanner::new("slot-par");
    let names: Vec<String> = (0..20).map(|i| format!("par{i}")).collect();
    for round in 0..2 {
        for cmd in ["register", "unregister"] {
            let children: Vec<_> = names
                .iter()
                .map(|n| {
                    let mut c = Command::new(TOOL);
                    c.arg("-s").arg(sc.scan()).args(["-u", USER, cmd, "-d"][..if cmd == "register" { 4 } else { 3 }].iter()).arg(n);
                    c.uid(UID).gid(GID).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap()
                })
                .collect();
            for (n, c) in names.iter().zip(children) {
                let o = c.wait_with_output().unwrap();
                assert!(o.status.success(), "round {round}: {cmd} {n}: {}", stderr(&o));
            }
            if cmd == "register" {
                for n in &names {
                    assert!(Command::new("s6-svok").arg(sc.slot(n)).status().unwrap().success(), "{n} supervised");
                }
                assert_eq!(ok(&sc.tool(&["list"]), "list").lines().count(), 20);
            }
        }
        let left: Vec<_> = std::fs::read_dir(sc.scan()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        assert_eq!(left, [".s6-svscan"], "round {round}: nothing left");
        assert!(supervisors_in(&sc.scan()).is_empty(), "round {round}: no stray supervisor");
    }
}

/// kill -9 at random moments during register and unregister: running the
/// same command again converges, and nothing is left behind (doc/design.md#attacker-tests).
#[test]
fn kill_9_at_random_moments_then_a_rerun_converges() {
    if !root_or_skip("kill_9_at_random_moments_then_a_rerun_converges") {
        return;
    }
    let sc = Scanner::new("slot-kill");
    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos() as u64;
    eprintln!("seed {seed}");
    let mut state = seed | 1;
    let mut next = move || {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        state >> 33
    };
    let spawn = |args: &[&str]| {
        let mut c = Command::new(TOOL);
        c.arg("-s").arg(sc.scan()).args(["-u", USER]).args(args).uid(UID).gid(GID);
        c.stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap()
    };
    let killed = std::cell::Cell::new(0);
    let kill_after = |mut child: Child, us: u64| {
        std::thread::sleep(Duration::from_micros(us));
        let _ = child.kill();
        if child.wait().unwrap().code().is_none() {
            killed.set(killed.get() + 1);
        }
    };
    // Kill within the time a command takes here (spawn included), so that
    // most kills land mid-command however fast or loaded the machine is.
    let timed = |args: &[&str]| {
        let t = std::time::Instant::now();
        let o = spawn(args).wait().unwrap();
        assert!(o.success(), "{args:?} uninterrupted");
        t.elapsed().as_micros() as u64 + 1
    };
    let (reg_us, unreg_us) = (timed(&["register", "-d", "k"]), timed(&["unregister", "k"]));
    for round in 0..50 {
        kill_after(spawn(&["register", "-d", "k"]), next() % reg_us);
        let o = sc.tool(&["register", "-d", "k"]);
        assert!(matches!(o.status.code(), Some(0 | 1)), "round {round}: register again: {}", stderr(&o));
        eventually("the slot supervised after a rerun", || {
            Command::new("s6-svok").arg(sc.slot("k")).status().unwrap().success()
                && Command::new("s6-svok").arg(sc.slot("k").join("log")).status().unwrap().success()
        });
        kill_after(spawn(&["unregister", "k"]), next() % unreg_us);
        ok(&sc.tool(&["unregister", "k"]), &format!("round {round} (seed {seed}): unregister again"));
        let left: Vec<_> = std::fs::read_dir(sc.scan()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        assert_eq!(left, [".s6-svscan"], "round {round} (seed {seed}): nothing left");
        assert!(supervisors_in(&sc.scan()).is_empty(), "round {round} (seed {seed}): no supervisor left");
    }
    // Most kills must land mid-command for this to test anything.
    eprintln!("{} of 100 commands killed before they ended", killed.get());
    assert!(killed.get() >= 30, "only {} of 100 commands were killed before they ended", killed.get());
}

/// Two commands on the same profile at once (a user's retry racing the
/// first try): two registers give one slot and one "already registered",
/// two unregisters both end with nothing left; never an error of the
/// other's making (doc/design.md#atomic-publish: nothing lost, clear errors).
#[test]
fn the_same_profile_twice_at_once() {
    if !root_or_skip("the_same_profile_twice_at_once") {
        return;
    }
    let sc = Scanner::new("slot-same");
    let spawn = |args: &[&str]| {
        let mut c = Command::new(TOOL);
        c.arg("-s").arg(sc.scan()).args(["-u", USER]).args(args).uid(UID).gid(GID);
        c.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap()
    };
    for round in 0..20 {
        let (a, b) = (spawn(&["register", "-d", "s"]), spawn(&["register", "-d", "s"]));
        let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
        let mut codes = [a.status.code(), b.status.code()];
        codes.sort();
        assert_eq!(codes, [Some(0), Some(1)], "round {round}: registers: {} | {}", stderr(&a), stderr(&b));
        let refused = if a.status.code() == Some(1) { &a } else { &b };
        assert!(stderr(refused).contains("already registered"), "round {round}: {}", stderr(refused));
        assert!(Command::new("s6-svok").arg(sc.slot("s")).status().unwrap().success(), "round {round}: supervised");
        let (a, b) = (spawn(&["unregister", "s"]), spawn(&["unregister", "s"]));
        let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
        assert!(a.status.success() && b.status.success(), "round {round}: unregisters: {} | {}", stderr(&a), stderr(&b));
        let left: Vec<_> = std::fs::read_dir(sc.scan()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        assert_eq!(left, [".s6-svscan"], "round {round}: nothing left");
        assert!(supervisors_in(&sc.scan()).is_empty(), "round {round}: no supervisor left");
    }
}

#[test]
fn register_refuses_a_slot_past_the_scanners_bound() {
    if !root_or_skip("register_refuses_a_slot_past_the_scanners_bound") {
        return;
    }
    // The user's scanner supervises 4000 services and loggers: 1999 slots
    // with their loggers and one more service leave no room for a slot.
    let s = Scratch::new("slot-bound");
    let scan = s.join("scan");
    for i in 0..1999 {
        std::fs::create_dir_all(scan.join(format!("gateway-p{i}/log"))).unwrap();
    }
    std::fs::create_dir(scan.join("other")).unwrap();
    std::fs::create_dir(s.join("home")).unwrap();
    let tool = |args: &[&str]| {
        Command::new(TOOL).arg("-s").arg(&scan).arg("-H").arg(s.join("home")).args(["-u", USER]).args(args).output().unwrap()
    };
    let o = tool(&["register", "-d", "coder"]);
    assert_eq!(o.status.code(), Some(111), "{}", stderr(&o));
    assert_eq!(
        stderr(&o),
        format!(
            "hermes-slot: fatal: unable to register {}/gateway-coder: the s6-svscan of this scan directory supervises at most 4000 services and loggers, 3999 are there already\n",
            scan.display()
        )
    );
    assert!(!scan.join("gateway-coder").exists(), "nothing published");
}

/// Replaces a slot script (`run`, `finish`, `log/run`) with `text`.
fn script(sc: &Scanner, p: &str, f: &str, text: &str) {
    let d = sc.slot(p);
    let tmp = d.join(format!("{f}.new"));
    std::fs::write(&tmp, text).unwrap();
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755)).unwrap();
    chown(&tmp, UID, GID);
    std::fs::rename(&tmp, d.join(f)).unwrap();
}

/// The exit code, and stdout as the one JSON object it must be.
fn coded(o: &Output) -> (Option<i32>, serde_json::Value) {
    let text = String::from_utf8_lossy(&o.stdout);
    assert_eq!(text.matches('\n').count(), 1, "one line on stdout: {text:?} ({})", stderr(o));
    let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text:?}"));
    assert!(v.is_object(), "{v}");
    (o.status.code(), v)
}

/// An error: the exit code, and `{"error": <the fatal message>, "code": <exit code>}`.
fn json_error(o: &Output, code: i32, what: &str) {
    let (got, v) = coded(o);
    assert_eq!(got, Some(code), "{what}: {}", stderr(o));
    assert_eq!(v["code"].as_i64(), Some(code.into()), "{what}: {v}");
    let msg = v["error"].as_str().unwrap_or_else(|| panic!("{what}: {v}"));
    assert!(stderr(o).contains(&format!("hermes-slot: fatal: {msg}")), "{what}: the same message on stderr: {}", stderr(o));
}

#[test]
fn every_outcome_has_its_own_exit_code_and_json_error() {
    if !root_or_skip("every_outcome_has_its_own_exit_code_and_json_error") {
        return;
    }
    let mut sc = Scanner::new("slot-codes");
    let home = sc.profile_home("coder", None);

    // 0, with a result object.
    let (code, v) = coded(&sc.tool(&["-j", "register", "-d", "coder"]));
    assert_eq!(
        (code, v["profile"].as_str(), v["registered"].as_bool(), v["down"].as_bool()),
        (Some(0), Some("coder"), Some(true), Some(true))
    );
    sc.runnable("coder");
    let (code, v) = coded(&sc.tool(&["start", "-w", "-j", "coder"]));
    assert_eq!((code, v["sent"].as_str(), v["recorded"].as_bool()), (Some(0), Some("start"), Some(true)));
    assert_eq!(coded(&sc.tool(&["-j", "list"])).1, serde_json::json!({"profiles": ["coder"]}));
    assert_eq!(coded(&sc.tool(&["-j", "port", "coder"])).1, serde_json::json!({"profile": "coder", "port": 9530}));
    let (code, v) = coded(&sc.tool(&["-j", "status", "coder"]));
    assert_eq!((code, v["gateways"][0]["up"].as_bool()), (Some(0), Some(true)));

    // 1: already registered.
    json_error(&sc.tool(&["-j", "register", "coder"]), 1, "already registered");
    // 2: not registered, for every command that needs a slot.
    for cmd in ["start", "stop", "restart", "park", "unpark"] {
        json_error(&sc.tool(&["-j", cmd, "typo"]), 2, cmd);
    }
    let (code, v) = coded(&sc.tool(&["-j", "status", "coder", "typo"]));
    assert_eq!((code, v["code"].as_i64(), v["gateways"][1]["registered"].as_bool()), (Some(2), Some(2), Some(false)));
    // 2 as well: register -e of a profile without SOUL.md, creating nothing.
    let names = |d: &Path| -> Vec<_> { std::fs::read_dir(d).unwrap().map(|e| e.unwrap().file_name()).collect() };
    let before = (tree_snap(&sc.home()), names(&sc.scan()));
    json_error(&sc.tool(&["-j", "register", "-e", "coder"]), 2, "register -e without SOUL.md");
    json_error(&sc.tool(&["-j", "register", "-e", "nohome"]), 2, "register -e without a home");
    assert_eq!(before, (tree_snap(&sc.home()), names(&sc.scan())), "register -e created nothing");
    // 3: delivered, intent not recorded (the state file is a symlink).
    std::fs::remove_file(home.join("gateway_state.json")).unwrap();
    std::os::unix::fs::symlink("/etc/hostname", home.join("gateway_state.json")).unwrap();
    json_error(&sc.tool(&["-j", "stop", "-w", "coder"]), 3, "not recorded");
    assert_eq!(gateways(&sc.tool(&["status", "-j", "coder"]))[0]["wantedup"].as_bool(), Some(false), "but delivered");
    std::fs::remove_file(home.join("gateway_state.json")).unwrap();
    // 4: the supervisor gave up (finish exits 125): a restart that never
    // gets its new pid.
    ok(&sc.tool(&["start", "-w", "coder"]), "up again");
    script(&sc, "coder", "finish", "#!/bin/sh\nexit 125\n");
    json_error(&sc.tool(&["-j", "restart", "-w", "coder"]), 4, "gave up");
    // 99: timed out (a gateway that ignores SIGTERM does not stop in 300 ms).
    script(&sc, "coder", "run", "#!/bin/sh\ntrap '' TERM\nexec sleep 100000\n");
    script(&sc, "coder", "finish", "#!/bin/sh\nexit 0\n");
    ok(&sc.tool(&["start", "-w", "coder"]), "start the stubborn one");
    json_error(&sc.tool(&["-j", "-t", "300", "stop", "-w", "coder"]), 99, "timed out");
    assert!(Command::new("s6-svc").args(["-k"]).arg(sc.slot("coder")).status().unwrap().success());
    // 100: refused input, and wrong usage (JSON even then).
    json_error(&sc.tool(&["-j", "start", "Bad"]), 100, "bad name");
    json_error(&sc.tool(&["-j", "frobnicate"]), 100, "unknown command");
    json_error(&sc.tool(&["list", "x", "-j"]), 100, "too many operands");
    // -r is s6-rc's service directories (doc/conventions.md#options), not register's.
    json_error(&sc.tool(&["-j", "register", "-r", "writer"]), 100, "register -r");
    // 102: no supervisor.
    sc.stop_svscan();
    json_error(&sc.tool(&["-j", "start", "coder"]), 102, "no supervisor");
    let (code, v) = coded(&sc.tool(&["-j", "status", "coder"]));
    assert_eq!((code, v["code"].as_i64(), v["gateways"][0]["supervised"].as_bool()), (Some(102), Some(102), Some(false)));
    // 111: a system failure (no s6-svscan to rescan: the slot is withdrawn).
    json_error(&sc.tool(&["-j", "register", "writer"]), 111, "rescan failed");
    json_error(&sc.tool(&["-j", "-s", "/nonexistent/scan", "start", "coder"]), 111, "no scan directory");
}

#[test]
fn scandir_prints_the_directory_every_command_uses() {
    let run = |args: &[&str], env: Option<&str>| {
        let mut c = Command::new(TOOL);
        c.args(args).env_remove("S6_PROFILE_GATEWAY_SCANDIR");
        if let Some(e) = env {
            c.env("S6_PROFILE_GATEWAY_SCANDIR", e);
        }
        c.output().unwrap()
    };
    assert_eq!(ok(&run(&["-s", "/x/scan", "scandir"], Some("/env")), "flag"), "/x/scan\n");
    assert_eq!(ok(&run(&["scandir"], Some("/env/scan")), "env"), "/env/scan\n");
    let default = if Path::new("/run/hermes/service").is_dir() { "/run/hermes/service\n" } else { "/run/service\n" };
    assert_eq!(ok(&run(&["scandir"], None), "default"), default);
    assert_eq!(json(&run(&["scandir", "-j"], Some("/e"))), serde_json::json!({"scandir": "/e"}));
}

#[test]
fn register_e_registers_an_existing_profile_only() {
    if !root_or_skip("register_e_registers_an_existing_profile_only") {
        return;
    }
    let sc = Scanner::new("slot-real");
    let home = sc.profile_home("coder", None);
    let o = sc.tool(&["register", "-e", "-d", "coder"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert_eq!(stderr(&o), "hermes-slot: fatal: profile 'coder' has no SOUL.md: not registered\n");
    assert!(!sc.slot("coder").exists());
    std::fs::write(home.join("SOUL.md"), "soul\n").unwrap();
    ok(&sc.tool(&["register", "-e", "-d", "coder"]), "register -e with a SOUL.md");
    assert!(sc.slot("coder").join("down").exists());
}

/// A scan directory or a slot that is not what it must be (a symlink, a
/// file) is a refusal, exit 100, from every command that meets it; never
/// 111, which is for failed system calls (doc/conventions.md#refused-is-100).
#[test]
fn a_symlink_or_a_file_where_a_directory_must_be_exits_100() {
    if !root_or_skip("a_symlink_or_a_file_where_a_directory_must_be_exits_100") {
        return;
    }
    let s = Scratch::new("slot-refused");
    for d in ["scan", "home", "elsewhere"] {
        std::fs::create_dir(s.join(d)).unwrap();
        chown(&s.join(d), UID, GID);
    }
    std::os::unix::fs::symlink(s.join("scan"), s.join("scan-link")).unwrap();
    std::fs::write(s.join("scan-file"), "").unwrap();
    std::os::unix::fs::symlink(s.join("elsewhere"), s.join("scan/gateway-linked")).unwrap();
    std::fs::write(s.join("scan/gateway-filed"), "").unwrap();
    let tool = |scan: &str, args: &[&str]| {
        let mut c = Command::new(TOOL);
        c.arg("-j").arg("-s").arg(s.join(scan)).arg("-H").arg(s.join("home")).args(["-u", USER, "-t", "2000"]).args(args);
        c.env_remove("HERMES_HOME").env_remove("S6_PROFILE_GATEWAY_SCANDIR").uid(UID).gid(GID);
        c.output().unwrap()
    };
    let commands: [&[&str]; 10] = [
        &["list"],
        &["status"],
        &["status", "coder"],
        &["register", "-d", "coder"],
        &["unregister", "coder"],
        &["start", "coder"],
        &["stop", "coder"],
        &["restart", "coder"],
        &["park", "coder"],
        &["unpark", "coder"],
    ];
    // Exit 100, `"code": 100`, and the error on stderr (status warns per
    // profile; the others are fatal).
    let refused = |o: &Output, object: &Path, what: &str| {
        let (code, v) = coded(o);
        assert_eq!((code, v["code"].as_i64()), (Some(100), Some(100)), "{what}: {}", stderr(o));
        let error = v["error"].as_str().unwrap_or_else(|| panic!("{what}: {v}"));
        assert!(error.starts_with("unable to ") && error.contains(&format!(" {}: ", object.display())), "{what}: {error}");
        assert!(stderr(o).contains(&format!(": {error}\n")), "{what}: {}", stderr(o));
    };
    for scan in ["scan-link", "scan-file"] {
        for args in commands {
            refused(&tool(scan, args), &s.join(scan), &format!("{scan}: {args:?}"));
        }
    }
    // (register finds the name taken: exit 1, "already registered".)
    for p in ["linked", "filed"] {
        for args in commands.iter().skip(2).filter(|a| a[0] != "register") {
            let args: Vec<&str> = args.iter().map(|a| if *a == "coder" { p } else { a }).collect();
            refused(&tool("scan", &args), &s.join(format!("scan/gateway-{p}")), &format!("gateway-{p}: {args:?}"));
        }
    }
    // Neither is a slot: `list` and `status` without operands pass them by.
    assert_eq!(coded(&tool("scan", &["list"])), (Some(0), serde_json::json!({"profiles": []})));
    assert!(s.join("elsewhere").read_dir().unwrap().next().is_none(), "nothing written through the symlink");
}

/// A slot that unregister cannot remove because of what it holds (a
/// mount: the tree walk stays on one filesystem) is refused, exit 100, and
/// left out of the scan; 111 stays for failed system calls.
#[test]
fn unregister_of_a_slot_holding_another_filesystem_exits_100() {
    if !root_or_skip("unregister_of_a_slot_holding_another_filesystem_exits_100") {
        return;
    }
    let s = Scratch::new("slot-mount");
    for d in ["scan", "scan/.s6-svscan", "scan/gateway-coder", "scan/gateway-coder/m"] {
        std::fs::create_dir(s.join(d)).unwrap();
        chown(&s.join(d), UID, GID);
    }
    // The mount lives in a mount namespace of the tool's own; no
    // s6-svscan listens, so nothing is waited for.
    let script = r#"mount -t tmpfs none "$1/gateway-coder/m" && exec setpriv --reuid 10000 --regid 10000 --clear-groups "$2" -j -s "$1" -t 2000 unregister coder"#;
    let o = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", script, "sh"])
        .arg(s.join("scan"))
        .arg(TOOL)
        .env_remove("S6_PROFILE_GATEWAY_SCANDIR")
        .output()
        .unwrap();
    json_error(&o, 100, "a mount in the slot");
    assert!(stderr(&o).contains("is on another filesystem (left as "), "{}", stderr(&o));
    assert!(!s.join("scan/gateway-coder").exists(), "out of the scan");
}

#[test]
fn restart_of_a_down_gateway_starts_it() {
    if !root_or_skip("restart_of_a_down_gateway_starts_it") {
        return;
    }
    let sc = Scanner::new("slot-restart");
    let home = sc.profile_home("coder", None);
    ok(&sc.tool(&["register", "-d", "coder"]), "register");
    sc.runnable("coder");
    let (code, v) = coded(&sc.tool(&["-j", "restart", "-w", "coder"]));
    assert_eq!((code, v["sent"].as_str()), (Some(0), Some("start")), "a restart of a down gateway starts it");
    let st = gateways(&sc.tool(&["status", "-j", "coder"]));
    assert_eq!((st[0]["up"].as_bool(), st[0]["wantedup"].as_bool()), (Some(true), Some(true)));
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(home.join("gateway_state.json")).unwrap()).unwrap();
    assert_eq!(v["desired_state"], "running");
    // Of an up one: a new pid, as before.
    let pid = st[0]["pid"].as_u64();
    let (_, v) = coded(&sc.tool(&["-j", "restart", "-w", "coder"]));
    assert_eq!(v["sent"].as_str(), Some("restart"));
    assert_ne!(gateways(&sc.tool(&["status", "-j", "coder"]))[0]["pid"].as_u64(), pid);
}

#[test]
fn park_survives_a_supervisor_restart_and_unpark_undoes_it() {
    if !root_or_skip("park_survives_a_supervisor_restart_and_unpark_undoes_it") {
        return;
    }
    let sc = Scanner::new("slot-park");
    let home = sc.profile_home("coder", None);
    ok(&sc.tool(&["register", "-d", "coder"]), "register");
    sc.runnable("coder");
    ok(&sc.tool(&["start", "-w", "coder"]), "start");

    let (code, v) = coded(&sc.tool(&["-j", "park", "coder"]));
    assert_eq!((code, v["parked"].as_bool(), v["sent"].as_str()), (Some(0), Some(true), Some("stop")), "{}", v);
    let st = gateways(&sc.tool(&["status", "-j", "coder"]));
    assert_eq!((st[0]["up"].as_bool(), st[0]["normallyup"].as_bool()), (Some(false), Some(false)), "down on return, with a down file");
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(home.join("gateway_state.json")).unwrap()).unwrap();
    assert_eq!(v["desired_state"], "stopped");
    assert!(home.join("gateway.parked").is_file());

    // The supervisor exits (s6-svc -x) and a rescan starts a new one: still down.
    assert!(Command::new("s6-svc").arg("-x").arg(sc.slot("coder")).status().unwrap().success());
    eventually("the supervisor to exit", || !Command::new("s6-svok").arg(sc.slot("coder")).status().unwrap().success());
    assert!(Command::new("s6-svscanctl").arg("-a").arg(sc.scan()).status().unwrap().success());
    eventually("a new supervisor", || {
        Command::new("s6-svok").arg(sc.slot("coder")).status().unwrap().success() && sc.slot("coder").join("supervise/status").exists()
    });
    std::thread::sleep(Duration::from_millis(200)); // a supervisor that starts the service does so at once
    let st = gateways(&sc.tool(&["status", "-j", "coder"]));
    assert_eq!((st[0]["up"].as_bool(), st[0]["wantedup"].as_bool()), (Some(false), Some(false)), "parked across the restart: {st}");

    let (code, v) = coded(&sc.tool(&["-j", "unpark", "-w", "coder"]));
    assert_eq!((code, v["parked"].as_bool()), (Some(0), Some(false)), "{v}");
    let st = gateways(&sc.tool(&["status", "-j", "coder"]));
    assert_eq!((st[0]["up"].as_bool(), st[0]["normallyup"].as_bool()), (Some(true), Some(true)));
    assert!(!home.join("gateway.parked").exists() && !sc.slot("coder").join("down").exists());
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(home.join("gateway_state.json")).unwrap()).unwrap();
    assert_eq!(v["desired_state"], "running");
}

#[test]
fn start_w_racing_stop_leaves_the_intent_s6_was_last_given() {
    if !root_or_skip("slot_start_stop_race") {
        return;
    }
    let sc = Scanner::new("slot-race");
    let home = sc.profile_home("racer", None);
    ok(&sc.tool(&["register", "-d", "racer"]), "register");
    sc.runnable("racer");
    for round in 0..10 {
        // A `start -w` and a `stop` at once, in either order: whatever s6
        // was told last is what the state file says.
        let (first, second) = if round % 2 == 0 { (["start", "-w"], ["stop", "-w"]) } else { (["stop", "-w"], ["start", "-w"]) };
        let (a, b) = std::thread::scope(|s| {
            let a = s.spawn(|| sc.tool(&["-t", "3000", first[0], first[1], "racer"]));
            let b = s.spawn(|| sc.tool(&["-t", "3000", second[0], second[1], "racer"]));
            (a.join().unwrap(), b.join().unwrap())
        });
        assert_eq!((a.status.code(), b.status.code()), (Some(0), Some(0)), "round {round}: {} / {}", stderr(&a), stderr(&b));
        let wanted_up = String::from_utf8_lossy(&svstat(&["-o", "wantedup"], &sc.slot("racer")).stdout).trim().to_string();
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(home.join("gateway_state.json")).unwrap()).unwrap();
        let recorded = v["desired_state"].as_str().unwrap().to_string();
        assert_eq!(
            (wanted_up.as_str(), recorded.as_str()),
            (if recorded == "running" { "true" } else { "false" }, recorded.as_str()),
            "round {round}"
        );
    }
}

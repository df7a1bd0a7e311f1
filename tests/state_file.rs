//! gateway_state.json as the gateway (Python's `json`) writes it: every
//! value and structure Python accepts survives `hermes-slot stop` byte for
//! byte, reconcile reads the intent exactly as Python does (compared with
//! `python3` itself), a file that is not a JSON object is kept aside, and
//! a stand-in gateway rewriting its file in a loop loses nothing to
//! concurrent `start`/`stop`.
//!
//! The slots here have no s6 supervisor: the test holds each slot's
//! `supervise/control` FIFO open for reading, which is all a command
//! without `-w` needs to be delivered.

mod common;

use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::*;

const SLOT: &str = env!("CARGO_BIN_EXE_hermes-slot");
const RECONCILE: &str = env!("CARGO_BIN_EXE_hermes-reconcile");
const USER: &str = ":10000:10000";

/// A home with profiles and a scan directory, all the user's.
struct Tree {
    s: Scratch,
}

impl Tree {
    fn new(tag: &str) -> Tree {
        let s = Scratch::new(tag);
        for d in ["home", "home/profiles", "scan"] {
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
    fn profile(&self, p: &str) -> PathBuf {
        self.home().join("profiles").join(p)
    }
    /// A profile (SOUL.md) whose state file holds `bytes`, the user's.
    fn add(&self, p: &str, bytes: &[u8]) -> PathBuf {
        let d = self.profile(p);
        std::fs::create_dir(&d).unwrap();
        std::fs::write(d.join("SOUL.md"), "soul\n").unwrap();
        let state = d.join("gateway_state.json");
        std::fs::write(&state, bytes).unwrap();
        for f in [&d, &d.join("SOUL.md"), &state] {
            chown(f, UID, GID);
        }
        state
    }
    fn reconcile(&self) -> Output {
        let mut c = Command::new(RECONCILE);
        c.args(["-j", "-u", USER, "-H"]).arg(self.home()).arg("-s").arg(self.scan());
        c.env_clear().env("PATH", "/usr/bin:/bin");
        c.output().unwrap()
    }
    fn slot(&self, args: &[&str]) -> Output {
        let mut c = Command::new(SLOT);
        c.arg("-s").arg(self.scan()).arg("-H").arg(self.home()).args(["-u", USER]).args(args);
        c.env_clear().env("PATH", "/usr/bin:/bin").uid(UID).gid(GID);
        c.output().unwrap()
    }
    /// Holds `gateway-<p>/supervise/control` open for reading: commands
    /// are delivered as long as the fd lives.
    fn listen(&self, p: &str) -> OwnedFd {
        let fifo = self.scan().join(format!("gateway-{p}/supervise/control"));
        let flags = nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_NONBLOCK | nix::fcntl::OFlag::O_CLOEXEC;
        nix::fcntl::open(&fifo, flags, nix::sys::stat::Mode::empty()).unwrap_or_else(|e| panic!("{}: {e}", fifo.display()))
    }
}

/// Python's reading of each file, as reconcile must report it: upstream's
/// rule (utf-8-sig, json.loads, desired_state unless None, else
/// gateway_state with draining/degraded as running), the value then put
/// the way the tool prints a prior state: strings as they are (a lone
/// surrogate as U+FFFD), booleans and ints as their text, other values by
/// their kind; None for no state, a file Python cannot read, or not a dict.
fn python_intents(files: &[(String, PathBuf)]) -> serde_json::Value {
    const SCRIPT: &str = r#"
import json, sys
def show(v):
    if isinstance(v, str):
        return v.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return "<number>"
    if isinstance(v, list):
        return "<array>"
    if isinstance(v, dict):
        return "<object>"
    return None
out = {}
for name, path in zip(sys.argv[1::2], sys.argv[2::2]):
    try:
        with open(path, encoding="utf-8-sig") as f:
            data = json.load(f)
    except (OSError, ValueError):
        out[name] = None
        continue
    if not isinstance(data, dict):
        out[name] = None
        continue
    v = data.get("desired_state")
    if v is None:
        v = data.get("gateway_state")
        if v in ("draining", "degraded"):
            v = "running"
    out[name] = None if v is None else show(v)
print(json.dumps(out))
"#;
    let mut c = Command::new("python3");
    c.arg("-c").arg(SCRIPT);
    for (name, path) in files {
        c.arg(name).arg(path);
    }
    let o = c.output().unwrap();
    assert!(o.status.success(), "python3: {}", stderr(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

/// What reconcile's `-j` report says of each profile: prior state, action.
fn reported(o: &Output) -> Vec<(String, serde_json::Value, String)> {
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&o.stdout)));
    v["slots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["profile"].as_str().unwrap().to_string(), e["prior_state"].clone(), e["action"].as_str().unwrap().to_string()))
        .collect()
}

fn nested(levels: usize) -> String {
    format!("{}\"bottom\"{}", "[".repeat(levels - 1), "]".repeat(levels - 1))
}

/// The table: (profile, file). Every file is one Python's `json` writes or
/// reads; the last two are not JSON objects at all.
fn table() -> Vec<(&'static str, Vec<u8>)> {
    let big = format!("{{\"gateway_state\": \"running\", \"blob\": \"{}\", \"n\": NaN}}", "x".repeat(900 * 1024));
    let mut bom = b"\xef\xbb\xbf".to_vec();
    bom.extend_from_slice(br#"{"gateway_state": "running", "pid": 7}"#);
    vec![
        ("nan", br#"{"gateway_state": "running", "active_agents": NaN, "pid": 42}"#.to_vec()),
        ("infinity", br#"{"desired_state": "running", "x": Infinity}"#.to_vec()),
        ("neg-infinity", br#"{"x": -Infinity, "gateway_state": "running"}"#.to_vec()),
        ("huge", br#"{"gateway_state": "running", "x": 1e400}"#.to_vec()),
        ("neg-huge", br#"{"gateway_state": "draining", "x": -1e400}"#.to_vec()),
        ("tiny", br#"{"gateway_state": "running", "x": 1e-400}"#.to_vec()),
        ("int40", br#"{"desired_state": "running", "start_time": 1234567890123456789012345678901234567890}"#.to_vec()),
        ("surrogate", br#"{"gateway_state": "running", "exit_reason": "\ud800", "k\udfff": "\udbff\udfff"}"#.to_vec()),
        ("surrogate-intent", br#"{"desired_state": "\ud800running"}"#.to_vec()),
        ("duplicates", br#"{"desired_state": "stopped", "pid": 1, "desired_state": "running", "pid": 2}"#.to_vec()),
        ("duplicate-null", br#"{"gateway_state": "running", "desired_state": "running", "desired_state": null}"#.to_vec()),
        ("nul-key", br#"{"\u0000": 1, "gateway_state": "degraded", "a\u0000b": "\u0000"}"#.to_vec()),
        ("bom", bom),
        ("nest100", format!("{{\"gateway_state\": \"running\", \"deep\": {}}}", nested(100)).into_bytes()),
        ("nest128", format!("{{\"deep\": {}, \"desired_state\": \"running\"}}", nested(128)).into_bytes()),
        ("nest200", format!("{{\"gateway_state\": \"running\", \"deep\": {}}}", nested(200)).into_bytes()),
        ("large", big.into_bytes()),
        ("int-intent", br#"{"desired_state": 1, "gateway_state": "running"}"#.to_vec()),
        ("not-json", b"{\"gateway_state\": \"running\", oops".to_vec()),
        ("not-object", br#"["running", NaN]"#.to_vec()),
    ]
}

/// `old` with `"desired_state": <v>` values set to `"stopped"` and
/// `"updated_at":N` (or both, when absent) added after the last member:
/// what a lossless stop must write. The table's files have no
/// `updated_at` and no space before their closing brace.
fn expected_after_stop(old: &[u8], updated_at: &str) -> Vec<u8> {
    let text = String::from_utf8_lossy(old).into_owned();
    let mut out = String::new();
    let mut rest = text.as_str();
    let mut had_desired = false;
    while let Some(i) = rest.find("\"desired_state\": ") {
        had_desired = true;
        let (head, tail) = rest.split_at(i + "\"desired_state\": ".len());
        out.push_str(head);
        let end = match tail.strip_prefix('"') {
            Some(quoted) => 1 + quoted.find('"').unwrap() + 1,
            None => tail.find([',', '}']).unwrap(),
        };
        out.push_str("\"stopped\"");
        rest = &tail[end..];
    }
    out.push_str(rest);
    let close = out.rfind('}').unwrap();
    let added = if had_desired {
        format!(",\"updated_at\":{updated_at}")
    } else {
        format!(",\"desired_state\":\"stopped\",\"updated_at\":{updated_at}")
    };
    out.insert_str(close, &added);
    out.into_bytes()
}

#[test]
fn every_state_file_python_reads_survives_a_stop_and_gives_pythons_intent() {
    if !root_or_skip("state_file_table") {
        return;
    }
    let t = Tree::new("state-table");
    let cases = table();
    let files: Vec<(String, PathBuf)> = cases.iter().map(|(p, bytes)| (p.to_string(), t.add(p, bytes))).collect();

    // 1. Reconcile's intent is Python's, profile by profile.
    let python = python_intents(&files);
    let o = t.reconcile();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let report = reported(&o);
    for (p, _) in &cases {
        let (_, prior, action) = report.iter().find(|(name, _, _)| name == p).unwrap_or_else(|| panic!("{p} not reported"));
        assert_eq!(prior, &python[p], "{p}: reconcile's prior state");
        let starts = python[p] == "running";
        assert_eq!(action, if starts { "started" } else { "registered" }, "{p}");
    }
    // Only the two files that are not JSON objects were warned about.
    let err = stderr(&o);
    let warned: Vec<&str> = err.lines().collect();
    assert_eq!(warned.len(), 2, "{warned:#?}");
    assert!(warned.iter().all(|w| w.starts_with("hermes-reconcile: warning: ") && w.ends_with("; treating as no prior state")));

    // 2. `stop` changes desired_state and updated_at only.
    for (p, old) in &cases {
        let _fifo = t.listen(p);
        let o = t.slot(&["stop", p]);
        assert_eq!(o.status.code(), Some(0), "{p}: {}", stderr(&o));
        let state = t.profile(p).join("gateway_state.json");
        let new = std::fs::read(&state).unwrap();
        let text = String::from_utf8_lossy(&new).into_owned();
        let updated_at = text.rsplit("\"updated_at\":").next().unwrap().trim_end_matches(['}', '\n']).to_string();
        assert!(!updated_at.is_empty() && updated_at.bytes().all(|b| b.is_ascii_digit()), "{p}: {text:.200}");
        if p.starts_with("not-") {
            // Kept aside byte for byte, with one warning; a fresh object written.
            let kept: Vec<PathBuf> = std::fs::read_dir(t.profile(p))
                .unwrap()
                .map(|e| e.unwrap().path())
                .filter(|f| f.file_name().unwrap().to_string_lossy().starts_with("gateway_state.json.corrupt-"))
                .collect();
            assert_eq!(kept.len(), 1, "{p}: {kept:?}");
            assert_eq!(&std::fs::read(&kept[0]).unwrap(), old, "{p}: the file kept aside");
            assert_eq!(text, format!("{{\"desired_state\":\"stopped\",\"updated_at\":{updated_at}}}\n"), "{p}");
            let e = stderr(&o);
            assert_eq!(e.lines().count(), 1, "{p}: {e}");
            assert!(e.starts_with("hermes-slot: warning: ") && e.contains("kept as "), "{p}: {e}");
        } else {
            assert_eq!(stderr(&o), "", "{p}");
            assert!(new == expected_after_stop(old, &updated_at), "{p}: every other byte must stay:\n{:.300}", text);
        }
    }
    // 3. And Python agrees the intent is now `stopped` everywhere; so does reconcile.
    let python = python_intents(&files);
    let o = t.reconcile();
    assert_eq!((o.status.code(), stderr(&o).as_str()), (Some(0), ""));
    for (p, prior, action) in reported(&o).into_iter().filter(|(p, _, _)| p != "default") {
        assert_eq!((&prior, action.as_str()), (&python[&p], "registered"), "{p}");
        assert_eq!(prior, "stopped", "{p}");
    }
}

/// Runs `script` with python3 as the user.
fn python_as_user(script: &str, args: &[&Path]) -> std::process::Child {
    let mut c = Command::new("python3");
    c.arg("-c").arg(script).args(args).uid(UID).gid(GID).stdout(Stdio::piped()).stderr(Stdio::piped());
    c.spawn().unwrap()
}

#[test]
fn a_gateway_rewriting_its_file_meanwhile_loses_nothing_to_start_and_stop() {
    if !root_or_skip("state_file_concurrent") {
        return;
    }
    const ROUNDS: usize = 200;
    let t = Tree::new("state-concurrent");
    let state = t.add("gw", b"{\"gateway_state\": \"running\"}");
    // Create the slot, then hold its control FIFO.
    let o = t.reconcile();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let _fifo = t.listen("gw");
    // The stand-in gateway: read-modify-write as upstream's
    // write_runtime_status does (json.load, one new key, compact dump to a
    // temporary file, os.replace), until the stop file appears. Each write
    // adds the key g<N> and drops g<N-1000>, so the file stays small and a
    // hole among the last 1000 can only be an update lost to hermes-slot.
    const GATEWAY: &str = r#"
import json, os, sys, time
path, stop = sys.argv[1], sys.argv[2]
KEPT = 1000
d = os.path.dirname(path)
n = 0
while not os.path.exists(stop):
    with open(path, encoding="utf-8-sig") as f:
        data = json.load(f)
    data["g%d" % n] = n
    data.pop("g%d" % (n - KEPT), None)
    data["active_agents"] = float("nan")
    tmp = os.path.join(d, ".gw.%d.tmp" % os.getpid())
    with open(tmp, "w") as f:
        f.write(json.dumps(data, separators=(",", ":")) + "\n")
    os.replace(tmp, path)
    n += 1
    time.sleep(0.005)
print(n)
"#;
    let stop_file = t.s.join("stop-gateway");
    let gateway = python_as_user(GATEWAY, &[&state, &stop_file]);
    let (mut ours_lost, mut failures, mut lost) = (0, Vec::new(), Vec::new());
    // At least ROUNDS rounds, and on until the gateway has written more
    // often than that (a quiet machine runs 200 rounds in about as many
    // gateway writes): the two must overlap all along.
    let (mut round, mut gateway_writes) = (0, 0);
    while round < ROUNDS || (gateway_writes <= ROUNDS as u64 && round < 20 * ROUNDS) {
        let (cmd, want) = if round % 2 == 0 { ("stop", "stopped") } else { ("start", "running") };
        let o = t.slot(&[cmd, "gw"]);
        if o.status.code() != Some(0) || !o.stderr.is_empty() {
            failures.push(format!("round {round}: {cmd} exit {:?}: {}", o.status.code(), stderr(&o)));
        }
        let text = std::fs::read_to_string(&state).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text.replace("NaN", "null")).unwrap();
        let gw: Vec<u64> = v.as_object().unwrap().keys().filter_map(|k| k.strip_prefix('g')?.parse().ok()).collect();
        let max = gw.iter().copied().max().unwrap_or(0);
        let missing: Vec<u64> = (max.saturating_sub(999)..=max).filter(|n| !gw.is_empty() && !gw.contains(n)).collect();
        if !missing.is_empty() && !lost.contains(&missing[0]) {
            lost.extend(missing);
        }
        // Ours may be overwritten by the gateway (it read before our
        // rename): upstream's gateway does not lock. Count it.
        if v["desired_state"] != want {
            ours_lost += 1;
        }
        gateway_writes = gateway_writes.max(max);
        round += 1;
    }
    std::fs::write(&stop_file, "").unwrap();
    let out = gateway.wait_with_output().unwrap();
    assert!(out.status.success(), "stand-in gateway: {}", String::from_utf8_lossy(&out.stderr));
    let writes: usize = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    assert!(failures.is_empty(), "spurious failures:\n{}", failures.join("\n"));
    assert!(lost.is_empty(), "gateway updates lost: {lost:?}");
    assert!(writes > ROUNDS, "the gateway wrote only {writes} times: not concurrent enough");
    // The gateway is gone: one more command must stick.
    let o = t.slot(&["stop", "gw"]);
    assert_eq!((o.status.code(), stderr(&o).as_str()), (Some(0), ""));
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&state).unwrap().replace("NaN", "null")).unwrap();
    assert_eq!(v["desired_state"], "stopped");
    eprintln!(
        "concurrent writers: {round} rounds, {writes} gateway writes, 0 gateway updates lost, {ours_lost} of ours overwritten by the gateway"
    );
}

//! hermes-s6, the installed executable: run by any tool's name (a symlink,
//! as `make install` lays it out, or argv[0] alone) it is that tool, with
//! the same answers, exit codes and messages as the tool's own binary; a
//! chain loader keeps its pid and the argv of what it execs. (The installed
//! layout and its size are checked in tests/integration/90-install.test.sh.)

mod common;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::process::{Command, Output};

use common::*;

const MULTI: &str = env!("CARGO_BIN_EXE_hermes-s6");

/// Every tool name and its own binary, the reference for what it answers.
const TOOLS: [(&str, &str); 6] = [
    ("hermes-seed-supervise", env!("CARGO_BIN_EXE_hermes-seed-supervise")),
    ("hermes-svscan-perms", env!("CARGO_BIN_EXE_hermes-svscan-perms")),
    ("hermes-reconcile", env!("CARGO_BIN_EXE_hermes-reconcile")),
    ("hermes-slot", env!("CARGO_BIN_EXE_hermes-slot")),
    ("dashboard-run", env!("CARGO_BIN_EXE_dashboard-run")),
    ("dashboard-finish", env!("CARGO_BIN_EXE_dashboard-finish")),
];

const NAMES: &str = "hermes-seed-supervise hermes-svscan-perms hermes-reconcile hermes-slot dashboard-run dashboard-finish";

fn answer(o: &Output) -> (Option<i32>, String, String) {
    (o.status.code(), String::from_utf8_lossy(&o.stdout).into_owned(), stderr(o))
}

fn multi_as(argv0: &str, args: &[&str]) -> Output {
    Command::new(MULTI).arg0(argv0).args(args).env_clear().output().unwrap()
}

#[test]
fn every_name_answers_as_the_tools_own_binary() {
    // -h and a usage error: nothing is read or written. (No arguments at
    // all would run some tools on the host's default paths.)
    let cases: [&[&str]; 2] = [&["-h"], &["-Z"]];
    for (name, own) in TOOLS {
        for args in cases {
            let want = answer(&Command::new(own).args(args).env_clear().output().unwrap());
            for argv0 in [name.to_string(), format!("/usr/bin/{name}"), format!("./{name}")] {
                assert_eq!(answer(&multi_as(&argv0, args)), want, "argv[0] {argv0} {args:?}");
            }
            // hermes-s6 TOOL ARGS…
            let mut form = vec![name];
            form.extend_from_slice(args);
            assert_eq!(answer(&multi_as("hermes-s6", &form)), want, "hermes-s6 {name} {args:?}");
        }
        let (code, out, _) = answer(&multi_as(name, &["-h"]));
        assert_eq!(code, Some(0), "{name} -h");
        assert!(out.starts_with(&format!("usage: {name}")), "{name} -h: {out}");
    }
}

#[test]
fn an_unknown_name_is_a_usage_error_listing_the_names() {
    let usage = format!("hermes-s6: usage: hermes-s6 tool [ args... ], or run as tool, where tool is one of: {NAMES}\n");
    for (argv0, args, why) in [
        ("/usr/bin/hermes", &[][..], "unknown tool name: hermes"),
        ("hermes-slot.old", &["-h"][..], "unknown tool name: hermes-slot.old"),
        ("", &[][..], "unknown tool name: "),
        ("evil\nname", &[][..], "unknown tool name: evil\\nname"),
        ("hermes-s6", &[][..], "missing tool name"),
        ("/usr/bin/hermes-s6", &["hermes-s6"][..], "unknown tool: hermes-s6"),
        ("hermes-s6", &["-x"][..], "unknown tool: -x"),
    ] {
        let (code, out, err) = answer(&multi_as(argv0, args));
        assert_eq!(code, Some(100), "{argv0:?} {args:?}");
        assert_eq!(out, "");
        assert_eq!(err, format!("hermes-s6: fatal: {why}\n{usage}"), "{argv0:?} {args:?}");
    }
    let (code, out, err) = answer(&multi_as("hermes-s6", &["-h"]));
    assert_eq!((code, err), (Some(0), String::new()));
    assert_eq!(out, format!("usage: hermes-s6 tool [ args... ], or run as tool, where tool is one of: {NAMES}\n"));
}

#[test]
fn a_symlinked_dashboard_run_execs_in_its_own_pid_with_the_same_argv() {
    let s = Scratch::new("multicall-exec");
    let probe = s.join("probe");
    std::fs::write(&probe, "#!/bin/sh\nprintf 'pid=%s\\n0=%s\\nargv=%s\\n' \"$$\" \"$0\" \"$*\"\n").unwrap();
    std::fs::set_permissions(&probe, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::create_dir(s.join("bin")).unwrap();
    let link = s.join("bin/dashboard-run");
    std::os::unix::fs::symlink(MULTI, &link).unwrap();
    let own = TOOLS[4].1;
    let dir = s.path().to_str().unwrap();
    let probe = probe.to_str().unwrap();
    let mut seen = Vec::new();
    for exe in [own, link.to_str().unwrap()] {
        let child = Command::new(exe)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("HERMES_DASHBOARD", "1")
            .args(["-d", dir, "-u", ":10000:10000", probe, "extra"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let pid = child.id();
        let o = child.wait_with_output().unwrap();
        assert_eq!(o.status.code(), Some(0), "{exe}: {}", stderr(&o));
        let out = String::from_utf8_lossy(&o.stdout).into_owned();
        assert!(out.starts_with(&format!("pid={pid}\n")), "{exe}: the dashboard runs in the tool's own pid: {out}");
        seen.push(out.lines().skip(1).map(str::to_owned).collect::<Vec<_>>());
    }
    assert_eq!(seen[1], seen[0], "what the exec'd program sees");
    assert_eq!(seen[0], [format!("0={probe}"), "argv=extra dashboard --host 127.0.0.1 --port 9119 --no-open".into()]);
}

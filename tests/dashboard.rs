//! dashboard-run and dashboard-finish as processes: every decision they
//! make, in a clean environment. (Under a real s6-supervise, with
//! s6-permafailon and the execline scripts, in tests/integration/.)

mod common;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;

const RUN: &str = env!("CARGO_BIN_EXE_dashboard-run");
const FINISH: &str = env!("CARGO_BIN_EXE_dashboard-finish");

const TRUTHY: [&str; 7] = ["1", "true", "TRUE", "True", "yes", "YES", "Yes"];
const FALSY: [&str; 9] = ["", "0", "false", "no", "on", "y", "tRue", " 1", "yes "];

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

// ---------------------------------------------------------------- finish ----

fn finish(enabled: Option<&str>, args: &[&str]) -> Output {
    let mut c = Command::new(FINISH);
    c.env_clear().args(args);
    if let Some(v) = enabled {
        c.env("HERMES_DASHBOARD", v);
    }
    c.output().unwrap()
}

#[test]
fn finish_table_every_exit_code_and_switch_with_3_and_4_arguments() {
    let codes = [0, 1, 2, 77, 78, 79, 100, 111, 125, 126, 127, 128, 137, 143, 255, 256];
    let switches: Vec<Option<&str>> = std::iter::once(None).chain(FALSY.iter().chain(TRUTHY.iter()).map(|v| Some(*v))).collect();
    for code in codes {
        let code_s = code.to_string();
        for &switch in &switches {
            let enabled = switch.is_some_and(|v| TRUTHY.contains(&v));
            let parks = !enabled || [78, 126, 127].contains(&code);
            let want = if parks { 125 } else { 0 };
            let want_err = match code {
                _ if !enabled => String::new(),
                78 => "dashboard-finish: info: the dashboard exited 78 (configuration error): not restarting it\n".into(),
                126 | 127 => {
                    format!("dashboard-finish: info: the dashboard exited {code} (cannot execute its program): not restarting it\n")
                }
                _ => String::new(),
            };
            let forms: [&[&str]; 4] = [
                &[&code_s],
                &[&code_s, "0"],
                &[&code_s, "0", "dashboard"],          // s6 < 2.13
                &[&code_s, "9", "dashboard", "31337"], // s6 >= 2.13
            ];
            for args in forms {
                let o = finish(switch, args);
                assert_eq!(o.status.code(), Some(want), "HERMES_DASHBOARD={switch:?} finish {args:?}: {}", stderr(&o));
                assert_eq!(stderr(&o), want_err, "HERMES_DASHBOARD={switch:?} finish {args:?}");
                assert!(o.stdout.is_empty());
            }
        }
    }
}

#[test]
fn finish_refuses_a_malformed_exit_code_with_a_usage_line() {
    let usage = "dashboard-finish: usage: dashboard-finish exitcode [ signal [ servicename [ pgid ] ] ]\n";
    let cases: [&[&str]; 10] = [
        &[],
        &["abc"],
        &[""],
        &["-1"],
        &["1.5"],
        &[" 1"],
        &["257"],
        &["99999999999999999999"],
        &["1", "0", "dashboard", "42", "extra"],
        &["-x", "1"],
    ];
    for switch in [None, Some("1")] {
        for args in cases {
            let o = finish(switch, args);
            let err = stderr(&o);
            assert_eq!(o.status.code(), Some(100), "{args:?}: {err}");
            assert!(err.starts_with("dashboard-finish: fatal: "), "{args:?}: {err}");
            assert!(err.ends_with(usage), "{args:?}: {err}");
            assert_eq!(err.lines().count(), 2, "{args:?}: {err}");
        }
    }
    let o = finish(None, &["-h"]);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(stdout(&o), "usage: dashboard-finish exitcode [ signal [ servicename [ pgid ] ] ]\n");
}

// ------------------------------------------------------------------- run ----

/// A scratch dir with a probe program that prints what it was started with.
struct Bench {
    scratch: Scratch,
    probe: PathBuf,
}

impl Bench {
    fn new(tag: &str) -> Bench {
        let scratch = Scratch::new(tag);
        let probe = scratch.join("probe");
        std::fs::write(
            &probe,
            "#!/bin/sh\n\
             printf 'argv=%s\\n' \"$*\"\n\
             printf 'home=%s\\n' \"$HOME\"\n\
             printf 'cwd=%s\\n' \"$(pwd)\"\n\
             printf 'ids=%s %s %s\\n' \"$(id -u)\" \"$(id -g)\" \"$(id -G)\"\n\
             printf 'foo=%s\\n' \"${FOO-unset}\"\n\
             printf 'sigign=%s\\n' \"$(sed -n 's/^SigIgn:\\t//p' /proc/self/status)\"\n",
        )
        .unwrap();
        std::fs::set_permissions(&probe, std::fs::Permissions::from_mode(0o755)).unwrap();
        Bench { scratch, probe }
    }

    fn dir(&self) -> &Path {
        self.scratch.path()
    }

    /// dashboard-run in an environment of just PATH, FOO and `vars`.
    /// As root, it drops to 10000:10000 unless `opts` says otherwise.
    fn run(&self, vars: &[(&str, &str)], opts: &[&str], prog: &[&str]) -> Output {
        let mut c = Command::new(RUN);
        c.env_clear().env("PATH", "/usr/bin:/bin").env("FOO", "kept");
        c.envs(vars.iter().copied());
        let dir = self.dir().to_str().unwrap().to_string();
        let mut args: Vec<String> = vec!["-H".into(), dir];
        if !opts.contains(&"-u") {
            args.extend(["-u".into(), ":10000:10000".into()]);
        }
        args.extend(opts.iter().map(|s| s.to_string()));
        args.extend(prog.iter().map(|s| s.to_string()));
        c.args(&args);
        c.output().unwrap()
    }

    fn probe(&self) -> &str {
        self.probe.to_str().unwrap()
    }
}

const ON: (&str, &str) = ("HERMES_DASHBOARD", "1");

fn field<'a>(out: &'a str, name: &str) -> &'a str {
    out.lines().find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix('='))).unwrap_or_else(|| panic!("no {name}= in {out:?}"))
}

#[test]
fn run_disabled_exits_0_without_starting_anything() {
    let b = Bench::new("dash-off");
    let probe = b.probe();
    let o = b.run(&[], &[], &[probe]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(o.stdout.is_empty() && o.stderr.is_empty(), "silent: {} {}", stdout(&o), stderr(&o));
    for v in FALSY {
        // A bad port does not matter when the dashboard is off.
        let o = b.run(&[("HERMES_DASHBOARD", v), ("HERMES_DASHBOARD_PORT", "abc")], &[], &[probe]);
        assert_eq!(o.status.code(), Some(0), "HERMES_DASHBOARD={v:?}: {}", stderr(&o));
        assert!(o.stdout.is_empty() && o.stderr.is_empty(), "HERMES_DASHBOARD={v:?}");
    }
    // Not even the program name is looked at (the empty stdout above
    // shows the probe never ran).
    let o = b.run(&[], &[], &["/nonexistent/prog"]);
    assert_eq!(o.status.code(), Some(0));
}

#[test]
fn run_enabled_execs_upstreams_command_line_with_loopback_defaults() {
    let b = Bench::new("dash-on");
    for v in TRUTHY {
        let o = b.run(&[("HERMES_DASHBOARD", v)], &[], &[b.probe()]);
        assert_eq!(o.status.code(), Some(0), "HERMES_DASHBOARD={v:?}: {}", stderr(&o));
        let out = stdout(&o);
        assert_eq!(field(&out, "argv"), "dashboard --host 127.0.0.1 --port 9119 --no-open", "HERMES_DASHBOARD={v:?}");
        assert_eq!(field(&out, "home"), b.dir().to_str().unwrap());
        assert_eq!(field(&out, "cwd"), b.dir().to_str().unwrap());
        assert_eq!(field(&out, "foo"), "kept", "the rest of the environment passes through");
        // The Rust runtime ignores SIGPIPE; the dashboard must not inherit that.
        let ignored = u64::from_str_radix(field(&out, "sigign"), 16).unwrap();
        assert_eq!(ignored & (1 << (libc::SIGPIPE - 1)), 0, "SIGPIPE is not ignored");
        assert!(o.stderr.is_empty(), "{}", stderr(&o));
    }
    // Empty values count as unset, like ${VAR:-default}.
    let o = b.run(&[ON, ("HERMES_DASHBOARD_HOST", ""), ("HERMES_DASHBOARD_PORT", "")], &[], &[b.probe()]);
    assert_eq!(field(&stdout(&o), "argv"), "dashboard --host 127.0.0.1 --port 9119 --no-open");
    let o = b.run(&[ON, ("HERMES_DASHBOARD_HOST", "0.0.0.0"), ("HERMES_DASHBOARD_PORT", "9120")], &[], &[b.probe()]);
    assert_eq!(field(&stdout(&o), "argv"), "dashboard --host 0.0.0.0 --port 9120 --no-open");
    // prog... replaces `hermes`; the dashboard's arguments follow it.
    let o = b.run(&[ON], &[], &["/bin/sh", b.probe(), "extra"]);
    assert_eq!(field(&stdout(&o), "argv"), "extra dashboard --host 127.0.0.1 --port 9119 --no-open");
}

#[test]
fn run_refuses_bad_ports_with_exit_78() {
    let b = Bench::new("dash-port");
    for port in ["abc", "0", "70000", "-1", "65536", "+80", " 9119", "9119 ", "1e3", "99999999999999999999"] {
        let o = b.run(&[ON, ("HERMES_DASHBOARD_PORT", port)], &[], &[b.probe()]);
        assert_eq!(o.status.code(), Some(78), "port {port:?}: {}", stderr(&o));
        assert_eq!(
            stderr(&o),
            format!("dashboard-run: fatal: invalid HERMES_DASHBOARD_PORT value \"{port}\": expected a decimal number from 1 to 65535\n")
        );
        assert!(o.stdout.is_empty(), "port {port:?}: the program must not run");
    }
    for (port, shown) in [("1", "1"), ("65535", "65535"), ("08080", "8080")] {
        let o = b.run(&[ON, ("HERMES_DASHBOARD_PORT", port)], &[], &[b.probe()]);
        assert_eq!(o.status.code(), Some(0), "port {port:?}: {}", stderr(&o));
        assert!(field(&stdout(&o), "argv").contains(&format!(" --port {shown} ")), "port {port:?}");
    }
}

#[test]
fn run_insecure_prints_upstreams_four_lines_and_changes_nothing_else() {
    let b = Bench::new("dash-insecure");
    let want = "[dashboard] HERMES_DASHBOARD_INSECURE no longer disables the auth gate.\n\
                [dashboard] A non-loopback dashboard requires an auth provider:\n\
                [dashboard]   set HERMES_DASHBOARD_BASIC_AUTH_USERNAME + _PASSWORD (password)\n\
                [dashboard]   or HERMES_DASHBOARD_OAUTH_CLIENT_ID (OAuth).\n";
    for v in TRUTHY {
        let o = b.run(&[ON, ("HERMES_DASHBOARD_INSECURE", v)], &[], &[b.probe()]);
        assert_eq!(o.status.code(), Some(0));
        assert_eq!(stderr(&o), want, "INSECURE={v:?}");
        assert_eq!(field(&stdout(&o), "argv"), "dashboard --host 127.0.0.1 --port 9119 --no-open", "no --insecure");
    }
    for v in ["0", "", "no"] {
        let o = b.run(&[ON, ("HERMES_DASHBOARD_INSECURE", v)], &[], &[b.probe()]);
        assert!(o.stderr.is_empty(), "INSECURE={v:?}: {}", stderr(&o));
    }
    // Off means off: no warning either.
    let o = b.run(&[("HERMES_DASHBOARD_INSECURE", "1")], &[], &[b.probe()]);
    assert!(o.stderr.is_empty() && o.stdout.is_empty());
}

#[test]
fn run_exec_failures_are_127_not_found_and_126_otherwise() {
    let b = Bench::new("dash-exec");
    let o = b.run(&[ON], &[], &["/nonexistent/hermes"]);
    assert_eq!(o.status.code(), Some(127));
    assert_eq!(stderr(&o), "dashboard-run: fatal: unable to exec /nonexistent/hermes: No such file or directory\n");
    let o = b.run(&[ON], &[], &["hermes-s6-no-such-program"]);
    assert_eq!(o.status.code(), Some(127), "PATH search: {}", stderr(&o));
    // The default program, hermes, through a PATH that lacks it.
    let empty = b.scratch.join("empty");
    std::fs::create_dir(&empty).unwrap();
    let o = b.run(&[ON, ("PATH", empty.to_str().unwrap())], &[], &[]);
    assert_eq!(o.status.code(), Some(127));
    assert_eq!(stderr(&o), "dashboard-run: fatal: unable to exec hermes: No such file or directory\n");
    let plain = b.scratch.join("not-executable");
    std::fs::write(&plain, "#!/bin/sh\n").unwrap();
    std::fs::set_permissions(&plain, std::fs::Permissions::from_mode(0o644)).unwrap();
    let o = b.run(&[ON], &[], &[plain.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(126));
    assert_eq!(stderr(&o), format!("dashboard-run: fatal: unable to exec {}: Permission denied\n", plain.display()));
}

#[test]
fn run_as_root_drops_to_the_given_account_before_entering_the_directory() {
    if !root_or_skip("run_as_root_drops") {
        return;
    }
    let b = Bench::new("dash-drop");
    let o = b.run(&[ON], &["-u", ":12345:23456"], &[b.probe()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(field(&stdout(&o), "ids"), "12345 23456 23456", "uid, gid, and no supplementary group but the gid");
    // A directory only root may enter: the chdir happens as the user.
    let closed = b.scratch.join("closed");
    std::fs::create_dir(&closed).unwrap();
    std::fs::set_permissions(&closed, std::fs::Permissions::from_mode(0o700)).unwrap();
    let o = Command::new(RUN)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HERMES_DASHBOARD", "1")
        .args(["-u", ":12345:23456", "-H", closed.to_str().unwrap(), b.probe()])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(111));
    assert_eq!(stderr(&o), format!("dashboard-run: fatal: unable to chdir to {}: Permission denied\n", closed.display()));
    // An unknown account is a configuration error: 78, so finish parks it.
    let o = b.run(&[ON], &["-u", "no-such-user-hermes-s6"], &[b.probe()]);
    assert_eq!(o.status.code(), Some(78));
    assert_eq!(stderr(&o), "dashboard-run: fatal: unable to resolve user no-such-user-hermes-s6: no such user in /etc/passwd\n");
    assert!(o.stdout.is_empty());
}

#[test]
fn run_not_as_root_keeps_its_ids_and_ignores_the_account() {
    if !root_or_skip("run_not_as_root") {
        return;
    }
    let b = Bench::new("dash-user");
    let o = Command::new(RUN)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HERMES_DASHBOARD", "yes")
        .args(["-u", "no-such-user-hermes-s6", "-H", b.dir().to_str().unwrap(), b.probe()])
        .uid(UID)
        .gid(GID)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(field(&stdout(&o), "ids"), format!("{UID} {GID} {GID}"));
}

#[test]
fn run_defaults_to_opt_data() {
    let b = Bench::new("dash-default-dir");
    if Path::new("/opt/data").exists() {
        eprintln!("skipping run_defaults_to_opt_data: /opt/data exists on this machine");
        return;
    }
    let o = Command::new(RUN)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HERMES_DASHBOARD", "1")
        .args(["-u", ":10000:10000", b.probe()])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(111));
    assert_eq!(stderr(&o), "dashboard-run: fatal: unable to chdir to /opt/data: No such file or directory\n");
}

#[test]
fn run_usage() {
    let o = Command::new(RUN).arg("-h").output().unwrap();
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(stdout(&o), "usage: dashboard-run [ -u user ] [ -H dir ] [ prog... ]\n");
    for args in [&["-x"][..], &["-u"], &["-H", ""], &["-d", "/tmp"]] {
        let o = Command::new(RUN).args(args).env("HERMES_DASHBOARD", "1").output().unwrap();
        assert_eq!(o.status.code(), Some(100), "{args:?}");
        assert!(stderr(&o).ends_with("dashboard-run: usage: dashboard-run [ -u user ] [ -H dir ] [ prog... ]\n"), "{}", stderr(&o));
    }
}

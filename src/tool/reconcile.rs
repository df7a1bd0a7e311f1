//! hermes-reconcile: rebuild every profile's gateway slot at container
//! boot, autostarting only what was running. See doc/hermes-reconcile.md.

use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::boot_policy::{self, Policy};
use crate::cli::{self, Arg};
use crate::container::{self, Command};
use crate::fs::Owner;
use crate::layout;
use crate::msg::{self, exit};
use crate::reconcile::{self, Config};
use crate::slot::RunAs;
use crate::user;

/// The name the tool prints in its messages.
pub const PROG: &str = "hermes-reconcile";
/// The synopsis, as `-h` prints it and its page starts.
pub const USAGE: &str = "hermes-reconcile [ -n ] [ -j ] [ -s scandir ] [ -H hermes_home ] [ -u user ]";

/// Printed instead of reconciling in a dashboard-only container.
pub const DASHBOARD_SKIP: &str = "reconcile: skipping (dashboard container: it runs no profile gateways)";

#[derive(Debug, PartialEq, Eq)]
struct Args {
    dry_run: bool,
    json: bool,
    scandir: Option<PathBuf>,
    home: Option<PathBuf>,
    user: String,
}

type Parsed = cli::Parsed<Args>;

fn parse(argv: impl IntoIterator<Item = OsString>) -> Result<Parsed, cli::Error> {
    let mut p = cli::parser(argv);
    let mut args = Args { dry_run: false, json: false, scandir: None, home: None, user: "hermes".into() };
    while let Some(arg) = p.next()? {
        match arg {
            Arg::Short('n') => args.dry_run = true,
            Arg::Short('j') => args.json = true,
            Arg::Short('s') => args.scandir = Some(path(p.value()?, "scandir")?),
            Arg::Short('H') => args.home = Some(path(p.value()?, "hermes_home")?),
            Arg::Short('u') => args.user = cli::string(p.value()?, "user")?,
            Arg::Short('h') => return Ok(cli::Parsed::Help),
            _ => return Err(arg.unexpected()),
        }
    }
    Ok(cli::Parsed::Run(args))
}

fn path(value: OsString, what: &str) -> Result<PathBuf, cli::Error> {
    if value.is_empty() {
        return Err(format!("empty {what}").into());
    }
    Ok(PathBuf::from(value))
}

/// A flag variable is set when its value, trimmed, is one of `words`
/// (ASCII case ignored).
fn flag(value: Option<&OsStr>, words: &[&str]) -> bool {
    let Some(v) = value.and_then(OsStr::to_str) else { return false };
    words.iter().any(|w| v.trim().eq_ignore_ascii_case(w))
}

/// Runs the tool on `argv` (its name first).
pub fn main(argv: impl IntoIterator<Item = OsString>) -> ExitCode {
    let args = match parse(argv) {
        Ok(cli::Parsed::Run(args)) => args,
        Ok(cli::Parsed::Help) => return msg::help(USAGE),
        Err(e) => return msg::usage(PROG, USAGE, Some(&e)),
    };
    // An unknown rule is the image's mistake, not the user's: refuse it
    // before anything is touched, rather than guess which gateways start.
    let policy_var = std::env::var_os(boot_policy::VAR);
    let policy = match Policy::from_env_value(policy_var.as_deref().map(|v| v.to_str().unwrap_or("\u{fffd}"))) {
        Ok(p) => p,
        Err(e) => {
            let shown = msg::printable(&policy_var.unwrap_or_default().to_string_lossy()).into_owned();
            return msg::fatal(PROG, exit::USAGE, format_args!("unable to use {}={shown}: {e}", boot_policy::VAR));
        }
    };
    // Every file and directory is created with an explicit mode: with no
    // umask the modes come out exact, with no chmod afterwards.
    nix::sys::stat::umask(nix::sys::stat::Mode::empty());
    // A dashboard-only container runs no gateways: touch nothing at all.
    let command = container::classify(container::strip(&container::find_argv(Path::new("/proc"))));
    if command == Command::Dashboard {
        if args.json {
            msg::info(PROG, DASHBOARD_SKIP);
            return print(b"[]\n");
        }
        return print(format!("{DASHBOARD_SKIP}\n").as_bytes());
    }
    let run_as = match RunAs::new(&args.user) {
        Ok(r) => r,
        Err(e) => return msg::fatal(PROG, e.exit_code(), e),
    };
    let account = match user::resolve(&args.user) {
        Ok(a) => a,
        Err(e) => return msg::fatal(PROG, e.exit_code(), e),
    };
    let owner = match Owner::for_caller(&account) {
        Ok(o) => o,
        Err(why) => return msg::fatal(PROG, exit::PERMANENT, why),
    };
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
    let cfg = Config {
        home: layout::hermes_home(args.home),
        scandir: layout::gateway_scandir(args.scandir),
        run_as,
        owner,
        policy,
        multiplex_env: boot_policy::env_bool(std::env::var_os("GATEWAY_MULTIPLEX_PROFILES").as_deref().and_then(OsStr::to_str)),
        no_supervise: flag(std::env::var_os("HERMES_GATEWAY_NO_SUPERVISE").as_deref(), &["1", "true", "yes"]),
        command,
        dry_run: args.dry_run,
        now,
    };
    let outcome = match reconcile::run(&cfg, &mut |w| msg::warn(PROG, w)) {
        Ok(o) => o,
        Err(e) => return msg::fatal(PROG, exit::SYSTEM, e),
    };
    let mut out = String::new();
    if let Some(notice) = outcome.notice() {
        // On stdout before the per-slot lines; with -j, stdout is JSON only.
        if args.json {
            msg::line(&notice);
        } else {
            out.push_str(&notice);
            out.push('\n');
        }
    }
    if args.json {
        out.push_str(&reconcile::report::report_json(&outcome.entries));
        out.push('\n');
    } else {
        for e in &outcome.entries {
            out.push_str(&reconcile::report::report_line(e));
            out.push('\n');
        }
    }
    let code = print(out.as_bytes());
    if outcome.scandir_unwritable {
        msg::warn(PROG, format_args!("the scan directory {} could not be written", msg::printable(&cfg.scandir.to_string_lossy())));
    }
    if outcome.system_failures > 0 {
        // Each failed slot had its warning line; the rest were built.
        let n = outcome.system_failures;
        let of = n + outcome.entries.len();
        return msg::fatal(PROG, exit::SYSTEM, format_args!("unable to build {n} of {of} slots (see the warnings above)"));
    }
    if outcome.scandir_unwritable {
        return ExitCode::from(exit::SYSTEM);
    }
    code
}

/// Writes the report on stdout; a closed stdout is not an error of ours.
fn print(bytes: &[u8]) -> ExitCode {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(bytes).and_then(|()| out.flush());
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(v: &[&str]) -> Result<Parsed, cli::Error> {
        parse(cli::argv(PROG, v))
    }

    #[test]
    fn parses_posix_style() {
        let Ok(cli::Parsed::Run(a)) = run(&["-nj", "-s", "/s", "-H/h", "-u", ":1:2"]) else { panic!() };
        assert_eq!(a, Args { dry_run: true, json: true, scandir: Some("/s".into()), home: Some("/h".into()), user: ":1:2".into() });
        let Ok(cli::Parsed::Run(a)) = run(&[]) else { panic!() };
        assert_eq!(a, Args { dry_run: false, json: false, scandir: None, home: None, user: "hermes".into() });
        assert!(matches!(run(&["-h"]), Ok(cli::Parsed::Help)));
    }

    #[test]
    fn refuses_bad_usage() {
        for bad in [&["x"][..], &["-x"], &["-s"], &["-s", ""], &["--json"], &["-n", "--", "x"]] {
            assert!(run(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn truthy_flags() {
        for yes in ["1", "true", "TRUE", "Yes", " on "] {
            assert!(flag(Some(OsStr::new(yes)), &["1", "true", "yes", "on"]), "{yes}");
        }
        for no in ["", "0", "false", "no", "2", "y"] {
            assert!(!flag(Some(OsStr::new(no)), &["1", "true", "yes", "on"]), "{no}");
        }
        assert!(!flag(Some(OsStr::new("on")), &["1", "true", "yes"]));
        assert!(!flag(None, &["1"]));
    }
}

//! hermes-reconcile: rebuild every profile's gateway slot at container
//! boot, autostarting only what was running. See doc/hermes-reconcile.md.

use std::ffi::OsString;
use std::fmt::Display;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::boot_policy::{self, Policy};
use crate::cli::{self, Arg};
use crate::container::{self, Command};
use crate::fs::Owner;
use crate::layout;
use crate::msg::{self, exit};
use crate::reconcile::report::{self, Failure};
use crate::reconcile::{self, Config, Entry};
use crate::slot::RunAs;
use crate::truthy;
use crate::user;

/// The name the tool prints in its messages.
pub const PROG: &str = "hermes-reconcile";
/// The synopsis, as `-h` prints it and its page starts.
pub const USAGE: &str = "hermes-reconcile [ -n ] [ -j ] [ -s scandir ] [ -H hermes_home ] [ -u user ]";

/// Printed instead of reconciling in a dashboard-only container.
const DASHBOARD_SKIP: &str = "reconcile: skipping (dashboard container: it runs no profile gateways)";

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
    let mut args = Args { dry_run: false, json: false, scandir: None, home: None, user: "hermes".into() };
    Ok(match options(cli::parser(argv), &mut args)? {
        cli::Parsed::Run(()) => cli::Parsed::Run(args),
        cli::Parsed::Help => cli::Parsed::Help,
    })
}

/// Fills `args` from the options, in order.
fn options(mut p: cli::Parser, args: &mut Args) -> Result<cli::Parsed<()>, cli::Error> {
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
    Ok(cli::Parsed::Run(()))
}

fn path(value: OsString, what: &str) -> Result<PathBuf, cli::Error> {
    if value.is_empty() {
        return Err(format!("empty {what}").into());
    }
    Ok(PathBuf::from(value))
}

/// Where the answer goes: `reconcile:` lines, or with `-j` one JSON
/// document (doc/conventions.md#json), also when the run fails.
struct Answer {
    json: bool,
}

impl Answer {
    /// Ends a run that failed after gathering `entries`: with `-j` the
    /// document with the error and code on stdout, then
    /// `hermes-reconcile: fatal: <what>` on stderr.
    fn fail(&self, entries: &[Entry], code: u8, what: impl Display) -> ExitCode {
        let error = what.to_string();
        if self.json {
            print_json(entries, Some(Failure { error: &error, code }));
        }
        msg::fatal(PROG, code, error)
    }
}

/// Prints `-j`'s document and its newline.
fn print_json(entries: &[Entry], failure: Option<Failure<'_>>) -> ExitCode {
    print(format!("{}\n", report::report_json(entries, failure)).as_bytes())
}

/// Runs the tool on `argv` (its name first).
pub fn main(argv: impl IntoIterator<Item = OsString>) -> ExitCode {
    let argv: Vec<OsString> = argv.into_iter().collect();
    let args = match parse(argv.iter().cloned()) {
        Ok(cli::Parsed::Run(args)) => args,
        Ok(cli::Parsed::Help) => return msg::help(USAGE),
        Err(e) => {
            // A caller that asked for JSON gets it even when the usage is wrong.
            if cli::asks_for_json(&argv, "sHu") {
                print_json(&[], Some(Failure { error: &e.to_string(), code: exit::USAGE }));
            }
            return msg::usage(PROG, USAGE, Some(&e));
        }
    };
    let answer = Answer { json: args.json };
    // An unknown rule is the image's mistake, not the user's: refuse it
    // before anything is touched, rather than guess which gateways start.
    let policy_var = std::env::var_os(boot_policy::VAR);
    let policy = match Policy::from_env_value(policy_var.as_deref().map(|v| v.to_str().unwrap_or("\u{fffd}"))) {
        Ok(p) => p,
        Err(e) => {
            let shown = msg::printable(&policy_var.unwrap_or_default().to_string_lossy()).into_owned();
            return answer.fail(&[], exit::USAGE, format_args!("unable to use {}={shown}: {e}", boot_policy::VAR));
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
            return print_json(&[], None);
        }
        return print(format!("{DASHBOARD_SKIP}\n").as_bytes());
    }
    let run_as = match RunAs::new(&args.user) {
        Ok(r) => r,
        Err(e) => return answer.fail(&[], e.exit_code(), e),
    };
    let account = match user::resolve(&args.user) {
        Ok(a) => a,
        Err(e) => return answer.fail(&[], e.exit_code(), e),
    };
    let owner = match Owner::for_caller(&account) {
        Ok(o) => o,
        Err(why) => return answer.fail(&[], exit::PERMANENT, why),
    };
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
    let var = std::env::var_os;
    let cfg = Config {
        home: layout::hermes_home(args.home),
        scandir: layout::gateway_scandir(args.scandir),
        run_as,
        owner,
        policy,
        multiplex_env: var("GATEWAY_MULTIPLEX_PROFILES").and_then(|v| truthy::yes_or_no(&v)),
        no_supervise: var("HERMES_GATEWAY_NO_SUPERVISE").is_some_and(|v| truthy::yes_any_case(&v)),
        command,
        dry_run: args.dry_run,
        now,
    };
    let outcome = match reconcile::run(&cfg, &mut |w| msg::warn(PROG, w)) {
        Ok(o) => o,
        Err(e) => return answer.fail(&[], exit::SYSTEM, e),
    };
    let scandir_shown = msg::printable(&cfg.scandir.to_string_lossy()).into_owned();
    // Each failed slot had its warning line; the rest were built. (A scan
    // directory that could not be written failed its slots for a system
    // reason: it is among them.)
    let failure = (outcome.system_failures > 0).then(|| {
        let n = outcome.system_failures;
        let of = n + outcome.entries.len();
        format!("unable to build {n} of {of} slots (see the warnings above)")
    });
    if args.json {
        // stdout is JSON only: the notice goes to stderr.
        if let Some(notice) = outcome.notice() {
            msg::line(&notice);
        }
        print_json(&outcome.entries, failure.as_deref().map(|error| Failure { error, code: exit::SYSTEM }));
    } else {
        // The notice comes before the per-slot lines.
        let mut out = outcome.notice().map(|n| n + "\n").unwrap_or_default();
        for e in &outcome.entries {
            out.push_str(&report::report_line(e));
            out.push('\n');
        }
        print(out.as_bytes());
    }
    if outcome.scandir_unwritable {
        msg::warn(PROG, format_args!("the scan directory {scandir_shown} could not be written"));
    }
    match failure {
        Some(error) => msg::fatal(PROG, exit::SYSTEM, error),
        None => ExitCode::SUCCESS,
    }
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
        assert!(matches!(run(&["-jh"]), Ok(cli::Parsed::Help)));
    }

    #[test]
    fn refuses_bad_usage() {
        for bad in [&["x"][..], &["-x"], &["-s"], &["-s", ""], &["--json"], &["-n", "--", "x"]] {
            assert!(run(bad).is_err(), "{bad:?}");
        }
    }
}

//! dashboard-run: the run program of the `dashboard` longrun. Decides from
//! the container environment whether the dashboard runs at all, on which
//! host and port, then becomes it (as the user when started as root).
//! See doc/dashboard-run.md.
//!
//! A disabled dashboard exits 0 at once and a bad port exits 78; the finish
//! program (dashboard-finish) turns both into s6's "permanent failure", so
//! the slot reads down instead of restarting in a loop.

use std::ffi::{OsStr, OsString};
use std::path::PathBuf;
use std::process::ExitCode;

use crate::cli::{self, Arg};
use crate::error::{Cause, Error};
use crate::exec;
use crate::msg::{self, exit, printable};
use crate::truthy;
use crate::user;

/// The name the tool prints in its messages.
pub const PROG: &str = "dashboard-run";
/// The synopsis, as `-h` prints it and its page starts.
pub const USAGE: &str = "dashboard-run [ -u user ] [ -H dir ] [ prog... ]";

/// The switch: the dashboard runs only when this is truthy ([`truthy::exact`]).
pub const ENABLE_VAR: &str = "HERMES_DASHBOARD";
/// The address the dashboard binds.
const HOST_VAR: &str = "HERMES_DASHBOARD_HOST";
/// The port it binds.
const PORT_VAR: &str = "HERMES_DASHBOARD_PORT";
/// Truthy ([`truthy::exact`]): bind a non-loopback address (passes `--insecure`).
const INSECURE_VAR: &str = "HERMES_DASHBOARD_INSECURE";

/// Loopback by default: the dashboard refuses a non-loopback bind without
/// an auth provider, and a `0.0.0.0` default made that a restart loop
/// (upstream hermes-agent #49567).
const DEFAULT_HOST: &str = "127.0.0.1";
/// The port when `HERMES_DASHBOARD_PORT` is unset or empty.
const DEFAULT_PORT: u16 = 9119;
/// HOME and working directory of the dashboard (the image's volume).
const DEFAULT_DIR: &str = crate::layout::DEFAULT_HOME;
/// The account it runs as by default.
const DEFAULT_USER: &str = "hermes";
/// The program run when no `prog...` is given (found through PATH).
const DEFAULT_PROG: &str = "hermes";

/// Upstream's lines for the retired `HERMES_DASHBOARD_INSECURE`, word for word.
const INSECURE_WARNING: [&str; 4] = [
    "[dashboard] HERMES_DASHBOARD_INSECURE no longer disables the auth gate.",
    "[dashboard] A non-loopback dashboard requires an auth provider:",
    "[dashboard]   set HERMES_DASHBOARD_BASIC_AUTH_USERNAME + _PASSWORD (password)",
    "[dashboard]   or HERMES_DASHBOARD_OAUTH_CLIENT_ID (OAuth).",
];

#[derive(Debug, PartialEq, Eq)]
struct Args {
    user: String,
    dir: PathBuf,
    /// Replaces `hermes`; the dashboard's own arguments are appended.
    prog: Vec<OsString>,
}

type Parsed = cli::Parsed<Args>;

fn parse(argv: impl IntoIterator<Item = OsString>) -> Result<Parsed, cli::Error> {
    let mut p = cli::parser(argv);
    let mut args = Args { user: DEFAULT_USER.into(), dir: DEFAULT_DIR.into(), prog: Vec::new() };
    while let Some(arg) = p.next()? {
        match arg {
            Arg::Short('u') => args.user = cli::string(p.value()?, "user")?,
            Arg::Short('H') => args.dir = PathBuf::from(p.value()?),
            Arg::Short('h') => return Ok(cli::Parsed::Help),
            Arg::Value(first) => {
                args.prog = cli::rest(first, &mut p)?;
                break;
            }
            _ => return Err(arg.unexpected()),
        }
    }
    if args.dir.as_os_str().is_empty() {
        return Err("invalid dir: empty".into());
    }
    if args.prog.is_empty() {
        args.prog.push(DEFAULT_PROG.into());
    }
    Ok(cli::Parsed::Run(args))
}

/// What the environment asks for.
#[derive(Debug, PartialEq, Eq)]
enum Decision {
    /// `HERMES_DASHBOARD` is not truthy: exit 0, start nothing.
    Disabled,
    Start(Dashboard),
}

#[derive(Debug, PartialEq, Eq)]
struct Dashboard {
    host: OsString,
    port: u16,
    /// `HERMES_DASHBOARD_INSECURE` is truthy: warn that it no longer does anything.
    warn_insecure: bool,
}

/// A port that is not a decimal number from 1 to 65535.
#[derive(Debug, PartialEq, Eq)]
struct BadPort(OsString);

impl std::fmt::Display for BadPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let v = self.0.to_string_lossy();
        write!(f, "invalid {PORT_VAR} value \"{}\": expected a decimal number from 1 to 65535", printable(&v))
    }
}

/// The decision, from the variables `get` returns. Empty HOST and PORT
/// count as unset (as `${VAR:-default}` does in upstream's script).
fn decide(get: impl Fn(&str) -> Option<OsString>) -> Result<Decision, BadPort> {
    if !get(ENABLE_VAR).is_some_and(|v| truthy::exact(&v)) {
        return Ok(Decision::Disabled);
    }
    let set = |name| get(name).filter(|v| !v.is_empty());
    let host = set(HOST_VAR).unwrap_or_else(|| DEFAULT_HOST.into());
    let port = match set(PORT_VAR) {
        None => DEFAULT_PORT,
        Some(v) => parse_port(&v).ok_or(BadPort(v))?,
    };
    let warn_insecure = get(INSECURE_VAR).is_some_and(|v| truthy::exact(&v));
    Ok(Decision::Start(Dashboard { host, port, warn_insecure }))
}

/// A whole-word decimal from 1 to 65535 (leading zeros allowed, no sign,
/// no blanks).
fn parse_port(v: &OsStr) -> Option<u16> {
    let s = v.to_str()?;
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let digits = s.trim_start_matches('0');
    if digits.len() > 5 {
        return None;
    }
    match digits.parse::<u32>() {
        Ok(n) if (1..=65535).contains(&n) => u16::try_from(n).ok(),
        _ => None,
    }
}

/// `prog... dashboard --host H --port P --no-open`.
fn command(prog: &[OsString], d: &Dashboard) -> Vec<OsString> {
    let mut argv = prog.to_vec();
    argv.extend(["dashboard".into(), "--host".into(), d.host.clone(), "--port".into(), d.port.to_string().into()]);
    argv.push("--no-open".into());
    argv
}

/// Runs the tool on `argv` (its name first).
pub fn main(argv: impl IntoIterator<Item = OsString>) -> ExitCode {
    let args = match parse(argv) {
        Ok(cli::Parsed::Run(args)) => args,
        Ok(cli::Parsed::Help) => return msg::help(USAGE),
        Err(e) => return msg::usage(PROG, USAGE, Some(&e)),
    };
    let dashboard = match decide(|name| std::env::var_os(name)) {
        Ok(Decision::Disabled) => return ExitCode::SUCCESS,
        Ok(Decision::Start(d)) => d,
        Err(bad) => return msg::fatal(PROG, exit::CONFIG, bad),
    };
    if dashboard.warn_insecure {
        for line in INSECURE_WARNING {
            msg::line(line);
        }
    }
    if nix::unistd::geteuid().is_root()
        && let Err(code) = become_user(&args.user)
    {
        return ExitCode::from(code);
    }
    // After the drop: the user must be able to enter its own home, and no
    // path is walked with root's privileges.
    if let Err(e) = nix::unistd::chdir(&args.dir) {
        return msg::fatal(PROG, exit::SYSTEM, Error::sys("chdir to", &args.dir, e));
    }
    let failed = exec::exec(&command(&args.prog, &dashboard), &[("HOME", args.dir.as_os_str())]);
    msg::fatal(PROG, failed.exit_code(), failed)
}

/// Drops from root to `spec` for good. An account that does not exist is a
/// configuration error (78: restarting will not create it); a failed
/// system call is 111.
fn become_user(spec: &str) -> Result<(), u8> {
    let fail = |e: Error| {
        let code = if matches!(e.cause(), Cause::Refused(_)) { exit::CONFIG } else { e.exit_code() };
        msg::fatal(PROG, code, &e);
        code
    };
    let account = user::resolve(spec).map_err(fail)?;
    user::drop_privileges(&account).map_err(|e| {
        msg::fatal(PROG, exit::SYSTEM, &e);
        exit::SYSTEM
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(v: &[&str]) -> Result<Parsed, cli::Error> {
        parse(cli::argv(PROG, v))
    }

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<OsString> + 'a {
        move |name| vars.iter().find(|(n, _)| *n == name).map(|(_, v)| OsString::from(v))
    }

    fn start(host: &str, port: u16, warn_insecure: bool) -> Result<Decision, BadPort> {
        Ok(Decision::Start(Dashboard { host: host.into(), port, warn_insecure }))
    }

    #[test]
    fn parses_options_then_the_program() {
        let Ok(cli::Parsed::Run(a)) = run(&[]) else { panic!() };
        assert_eq!(a, Args { user: "hermes".into(), dir: "/opt/data".into(), prog: vec!["hermes".into()] });
        let Ok(cli::Parsed::Run(a)) = run(&["-u", ":1:2", "-H/srv", "py", "-m", "x", "-u", "y"]) else { panic!() };
        assert_eq!(a, Args { user: ":1:2".into(), dir: "/srv".into(), prog: ["py", "-m", "x", "-u", "y"].map(OsString::from).to_vec() });
        let Ok(cli::Parsed::Run(a)) = run(&["--", "-x"]) else { panic!() };
        assert_eq!(a.prog, vec![OsString::from("-x")]);
        assert!(matches!(run(&["-h"]), Ok(cli::Parsed::Help)));
        for bad in [&["-x"][..], &["-u"], &["-H"], &["-H", ""], &["-d", "/tmp"]] {
            assert!(run(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn disabled_unless_exactly_truthy() {
        assert_eq!(decide(env(&[])), Ok(Decision::Disabled));
        for v in ["", "0", "false", "no", "on", "tRue", " 1", "yes "] {
            assert_eq!(decide(env(&[("HERMES_DASHBOARD", v), ("HERMES_DASHBOARD_PORT", "abc")])), Ok(Decision::Disabled), "{v:?}");
        }
        for v in crate::truthy::EXACT {
            assert_eq!(decide(env(&[("HERMES_DASHBOARD", v)])), start("127.0.0.1", 9119, false), "{v:?}");
        }
    }

    #[test]
    fn host_and_port_with_loopback_defaults() {
        let on = ("HERMES_DASHBOARD", "1");
        assert_eq!(
            decide(env(&[on, ("HERMES_DASHBOARD_HOST", "0.0.0.0"), ("HERMES_DASHBOARD_PORT", "9120")])),
            start("0.0.0.0", 9120, false)
        );
        assert_eq!(decide(env(&[on, ("HERMES_DASHBOARD_HOST", ""), ("HERMES_DASHBOARD_PORT", "")])), start("127.0.0.1", 9119, false));
        assert_eq!(decide(env(&[on, ("HERMES_DASHBOARD_INSECURE", "yes")])), start("127.0.0.1", 9119, true));
        assert_eq!(decide(env(&[on, ("HERMES_DASHBOARD_INSECURE", "0")])), start("127.0.0.1", 9119, false));
    }

    #[test]
    fn ports_are_whole_decimals_from_1_to_65535() {
        for (v, want) in [("1", 1), ("80", 80), ("9119", 9119), ("65535", 65535), ("08080", 8080), ("000000000000443", 443)] {
            assert_eq!(parse_port(OsStr::new(v)), Some(want), "{v}");
        }
        for v in ["abc", "0", "00", "70000", "65536", "-1", "+80", " 80", "80 ", "80\n", "8o", "1e3", "0x50", "99999999999999999999"] {
            assert_eq!(parse_port(OsStr::new(v)), None, "{v:?}");
            let e = decide(env(&[("HERMES_DASHBOARD", "1"), ("HERMES_DASHBOARD_PORT", v)])).unwrap_err();
            assert_eq!(e, BadPort(v.into()));
        }
        assert_eq!(
            BadPort("7\n0".into()).to_string(),
            "invalid HERMES_DASHBOARD_PORT value \"7\\n0\": expected a decimal number from 1 to 65535"
        );
    }

    #[test]
    fn the_command_line_is_upstreams() {
        let d = Dashboard { host: "127.0.0.1".into(), port: 9119, warn_insecure: true };
        let argv = command(&["hermes".into()], &d);
        assert_eq!(argv, ["hermes", "dashboard", "--host", "127.0.0.1", "--port", "9119", "--no-open"].map(OsString::from));
        let argv = command(&["python3".into(), "-m".into(), "hermes_cli".into()], &d);
        assert_eq!(argv[..4], ["python3", "-m", "hermes_cli", "dashboard"].map(OsString::from));
    }
}

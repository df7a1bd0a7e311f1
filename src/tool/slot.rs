//! hermes-slot: a profile gateway's slot at run time, as the user: register,
//! unregister, start, stop, restart, status, list, port. See
//! doc/hermes-slot.md.

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::cli::{self, Arg};
use crate::fs::Dir;
use crate::layout;
use crate::lifecycle::{self, Command, Controlled, Observed, Registered, Unreachable, Unregistered};
use crate::msg::{self, exit, printable};
use crate::planned_stop;
use crate::port;
use crate::profile::{self, Profile};
use crate::s6::listen::Deadline;
use crate::skeleton::Owner;
use crate::slot::{self, RunAs, Start};
use crate::state::{self, Previous};
use crate::user;

pub const PROG: &str = "hermes-slot";
pub const USAGE: &str = "hermes-slot [ -s scandir ] [ -H hermes_home ] [ -t timeout ] [ -u user ] \
register [ -d ] profile | unregister profile | start|stop|restart [ -w ] profile | status [ -j ] [ profile... ] | list | port profile";

/// Success.
const OK: u8 = 0;

/// Default bound on every wait, in milliseconds.
pub const DEFAULT_TIMEOUT_MS: u64 = 10_000;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Action {
    Register { profile: OsString, down: bool },
    Unregister(OsString),
    Control { cmd: Command, profile: OsString, wait: bool },
    Status { profiles: Vec<OsString>, json: bool },
    List,
    Port(OsString),
}

#[derive(Debug, PartialEq, Eq)]
struct Args {
    scandir: Option<PathBuf>,
    home: Option<PathBuf>,
    timeout_ms: u64,
    user: String,
    action: Action,
}

type Parsed = cli::Parsed<Args>;

fn parse(argv: impl IntoIterator<Item = OsString>) -> Result<Parsed, cli::Error> {
    let mut p = cli::parser(argv);
    let (mut scandir, mut home, mut timeout_ms, mut user) = (None, None, DEFAULT_TIMEOUT_MS, "hermes".to_string());
    let command = loop {
        match p.next()? {
            Some(Arg::Short('s')) => scandir = Some(path(p.value()?, "scandir")?),
            Some(Arg::Short('H')) => home = Some(path(p.value()?, "hermes_home")?),
            Some(Arg::Short('t')) => timeout_ms = cli::number(p.value()?, "timeout")?,
            Some(Arg::Short('u')) => user = cli::string(p.value()?, "user")?,
            Some(Arg::Short('h')) => return Ok(cli::Parsed::Help),
            Some(Arg::Value(v)) => break cli::string(v, "command")?,
            Some(arg) => return Err(arg.unexpected()),
            None => return Err("missing command".into()),
        }
    };
    // The command's own options may come before or after its operands.
    let mut flags = Vec::new();
    let mut operands = Vec::new();
    while let Some(arg) = p.next()? {
        match arg {
            Arg::Short(c @ ('d' | 'w' | 'j')) => flags.push(c),
            Arg::Short('h') => return Ok(cli::Parsed::Help),
            Arg::Value(v) => operands.push(v),
            arg => return Err(arg.unexpected()),
        }
    }
    let allowed = match command.as_str() {
        "register" => "d",
        "start" | "stop" | "restart" => "w",
        "status" => "j",
        _ => "",
    };
    if let Some(c) = flags.iter().find(|c| !allowed.contains(**c)) {
        return Err(format!("invalid option for {command}: -{c}").into());
    }
    let one = |mut ops: Vec<OsString>| -> Result<OsString, cli::Error> {
        match ops.len() {
            1 => Ok(ops.remove(0)),
            0 => Err(format!("{command}: missing profile").into()),
            _ => Err(format!("{command}: too many operands").into()),
        }
    };
    let action = match command.as_str() {
        "register" => Action::Register { profile: one(operands)?, down: flags.contains(&'d') },
        "unregister" => Action::Unregister(one(operands)?),
        "start" | "stop" | "restart" => {
            let cmd = match command.as_str() {
                "start" => Command::Start,
                "stop" => Command::Stop,
                _ => Command::Restart,
            };
            Action::Control { cmd, profile: one(operands)?, wait: flags.contains(&'w') }
        }
        "status" => Action::Status { profiles: operands, json: flags.contains(&'j') },
        "list" if operands.is_empty() => Action::List,
        "list" => return Err("list: too many operands".into()),
        "port" => Action::Port(one(operands)?),
        other => return Err(format!("unknown command: {other}").into()),
    };
    Ok(cli::Parsed::Run(Args { scandir, home, timeout_ms, user, action }))
}

fn path(value: OsString, what: &str) -> Result<PathBuf, cli::Error> {
    if value.is_empty() {
        return Err(format!("empty {what}").into());
    }
    Ok(PathBuf::from(value))
}

/// Where the tool works: scan directory, `$HERMES_HOME`, the account.
struct Ctx {
    scandir: PathBuf,
    home: PathBuf,
    user: String,
    deadline: Deadline,
}

pub fn main(argv: impl IntoIterator<Item = OsString>) -> ExitCode {
    let args = match parse(argv) {
        Ok(cli::Parsed::Run(args)) => args,
        Ok(cli::Parsed::Help) => return msg::help(USAGE),
        Err(e) => return msg::usage(PROG, USAGE, Some(&e)),
    };
    // Every file, directory and FIFO is created with an explicit mode.
    nix::sys::stat::umask(nix::sys::stat::Mode::empty());
    let ctx = Ctx {
        scandir: layout::gateway_scandir(args.scandir),
        home: layout::hermes_home(args.home),
        user: args.user,
        deadline: Deadline::after_ms(args.timeout_ms),
    };
    match args.action {
        Action::Register { profile, down } => with_profile(&profile, |p| register(&ctx, p, down)),
        Action::Unregister(profile) => with_profile(&profile, |p| unregister(&ctx, p)),
        Action::Control { cmd, profile, wait } => with_profile(&profile, |p| control(&ctx, p, cmd, wait)),
        Action::Status { profiles, json } => status(&ctx, &profiles, json),
        Action::List => list(&ctx),
        Action::Port(profile) => with_profile(&profile, |p| print(&format!("{}\n", port::port(p)))),
    }
}

/// Validates a profile name as reconcile does (exit 100 if invalid).
fn with_profile(name: &OsString, f: impl FnOnce(&Profile) -> ExitCode) -> ExitCode {
    match Profile::parse(name.as_encoded_bytes()) {
        Ok(p) => f(&p),
        Err(why) => msg::fatal(PROG, exit::PERMANENT, format_args!("invalid profile name '{}': {why}", printable(&name.to_string_lossy()))),
    }
}

/// upstream's `GatewayNotRegisteredError` text.
fn not_registered(p: &Profile) -> String {
    format!("no such gateway '{p}': register it with `hermes profile create {p}` first, or pass an existing profile name via `-p <name>`")
}

fn open_scandir(ctx: &Ctx) -> Result<Dir, ExitCode> {
    Dir::open(&ctx.scandir).map_err(|e| msg::fatal(PROG, e.exit_code().max(exit::SYSTEM), e))
}

/// Who owns what we write: the user itself, or root writing for it.
/// `Err`: the exit code and the reason.
fn owner(ctx: &Ctx) -> Result<Owner, (u8, String)> {
    let account = user::resolve(&ctx.user).map_err(|e| (e.exit_code(), e.to_string()))?;
    Owner::for_caller(&account).map_err(|why| (exit::PERMANENT, why))
}

fn register(ctx: &Ctx, p: &Profile, down: bool) -> ExitCode {
    let run_as = match RunAs::new(&ctx.user) {
        Ok(r) => r,
        Err(e) => return msg::fatal(PROG, e.exit_code(), e),
    };
    let owner = match owner(ctx) {
        Ok(o) => o,
        Err((code, why)) => return msg::fatal(PROG, code, why),
    };
    let scandir = match open_scandir(ctx) {
        Ok(d) => d,
        Err(code) => return code,
    };
    let content = slot::render(&run_as, if down { Start::Down } else { Start::Up });
    let dir = scandir.child_path(slot::name(p).as_ref());
    let dir = printable(&dir.to_string_lossy()).into_owned();
    match lifecycle::register(&scandir, p, &content, owner, &ctx.deadline) {
        Ok(Registered::Supervised) => ExitCode::SUCCESS,
        Ok(Registered::Already) => msg::fatal(PROG, exit::NEGATIVE, format_args!("gateway '{p}' is already registered: {dir}")),
        Ok(Registered::TimedOut) => msg::fatal(
            PROG,
            exit::TIMEOUT,
            format_args!(
                "timed out waiting for a supervisor on {dir} (the slot stays registered; is s6-svscan running on {}?)",
                shown(&ctx.scandir)
            ),
        ),
        Ok(Registered::RescanFailed { why, leftover }) => {
            if let Some((at, e)) = leftover {
                msg::warn(PROG, format_args!("{e}; left as {}", shown(&at)));
            }
            let why = match why {
                Unreachable::NotListening => "s6-svscan not listening".to_string(),
                Unreachable::Failed(e) => e.to_string(),
            };
            msg::fatal(PROG, exit::SYSTEM, format_args!("unable to rescan {}: {why} (the slot was removed again)", shown(&ctx.scandir)))
        }
        Err(e) => msg::fatal(PROG, e.exit_code(), e),
    }
}

fn unregister(ctx: &Ctx, p: &Profile) -> ExitCode {
    let scandir = match open_scandir(ctx) {
        Ok(d) => d,
        Err(code) => return code,
    };
    match lifecycle::unregister(&scandir, p, &ctx.deadline) {
        Ok(Unregistered::Absent | Unregistered::Removed) => ExitCode::SUCCESS,
        Ok(Unregistered::DownTimedOut) => msg::fatal(
            PROG,
            exit::TIMEOUT,
            format_args!("timed out waiting for gateway '{p}' to go down (it stays registered, wanted down)"),
        ),
        Ok(Unregistered::ExitTimedOut { left_at, prune }) => {
            let why = match prune {
                None => String::new(),
                Some(Unreachable::NotListening) => "; s6-svscan was not listening".to_string(),
                Some(Unreachable::Failed(e)) => format!("; {e}"),
            };
            msg::fatal(PROG, exit::TIMEOUT, format_args!("timed out waiting for the supervisors of {} to exit{why}", shown(&left_at)))
        }
        Ok(Unregistered::Leftover { left_at, error }) => {
            msg::fatal(PROG, error.exit_code().max(exit::SYSTEM), format_args!("{error} (left as {})", shown(&left_at)))
        }
        Err(e) => msg::fatal(PROG, e.exit_code(), e),
    }
}

fn control(ctx: &Ctx, p: &Profile, cmd: Command, wait: bool) -> ExitCode {
    let scandir = match open_scandir(ctx) {
        Ok(d) => d,
        Err(code) => return code,
    };
    let svc = match lifecycle::open_slot(&scandir, p) {
        Ok(Some(d)) => d,
        Ok(None) => return msg::fatal(PROG, exit::NEGATIVE, not_registered(p)),
        Err(e) => return msg::fatal(PROG, e.exit_code(), e),
    };
    // Files written for the user are given to it when root writes them;
    // anyone else writes as itself.
    let owner = owner(ctx).unwrap_or(Owner::Caller { uid: nix::unistd::geteuid().as_raw(), gid: nix::unistd::getegid().as_raw() });
    let home = match profile::open_home(&ctx.home, p) {
        Ok(h) => h,
        Err(e) => {
            msg::warn(PROG, format_args!("{e}; desired_state will not be recorded"));
            None
        }
    };
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    if cmd == Command::Stop
        && let Some(home) = &home
        && let Ok(Some(st)) = crate::s6::status::read(&svc)
        && st.is_up()
        && let Err(e) = planned_stop::write(home, st.pid, now, owner)
    {
        msg::warn(PROG, format_args!("{e}; the gateway may take the stop for a crash"));
    }
    let dir = shown(svc.path());
    let mut code = match lifecycle::control(&svc, cmd, wait.then_some(&ctx.deadline)) {
        Ok(Controlled::Done) => OK,
        Ok(Controlled::NotListening) => {
            return msg::fatal(PROG, exit::NOT_LISTENING, format_args!("unable to control {dir}: supervisor not listening"));
        }
        Ok(Controlled::NotUp) => {
            msg::warn(PROG, format_args!("gateway '{p}' is not up: nothing to restart"));
            OK
        }
        Ok(Controlled::TimedOut) => {
            msg::warn(PROG, format_args!("timed out waiting for gateway '{p}'"));
            exit::TIMEOUT
        }
        Ok(Controlled::GaveUp) => {
            msg::warn(PROG, format_args!("gateway '{p}' will not come up: its finish program exited 125"));
            exit::NEGATIVE
        }
        Ok(Controlled::SupervisorExited) => {
            msg::warn(PROG, format_args!("the supervisor of {dir} exited"));
            exit::NOT_LISTENING
        }
        Err(e) => return msg::fatal(PROG, e.exit_code(), e),
    };
    // The command was delivered: record the intent.
    if let Some(home) = &home {
        match state::record_desired(home, cmd.desired_state(), now.as_secs() as i64, owner) {
            Ok(Previous::Absent | Previous::Kept) => {}
            Ok(Previous::Replaced(why)) => {
                msg::warn(PROG, format_args!("{}: {why}; replaced", shown(&home.child_path(state::STATE_FILE.as_ref()))))
            }
            Err(e) => {
                msg::warn(PROG, format_args!("{e}; desired_state not recorded"));
                if code == OK {
                    code = exit::NEGATIVE;
                }
            }
        }
    }
    ExitCode::from(code)
}

fn status(ctx: &Ctx, names: &[OsString], json: bool) -> ExitCode {
    let scandir = match open_scandir(ctx) {
        Ok(d) => d,
        Err(code) => return code,
    };
    let profiles = if names.is_empty() {
        match slot::registered(&scandir) {
            Ok(all) => all,
            Err(e) => return msg::fatal(PROG, e.exit_code(), e),
        }
    } else {
        let mut ps = Vec::new();
        for n in names {
            match Profile::parse(n.as_encoded_bytes()) {
                Ok(p) => ps.push(p),
                Err(why) => {
                    return msg::fatal(
                        PROG,
                        exit::PERMANENT,
                        format_args!("invalid profile name '{}': {why}", printable(&n.to_string_lossy())),
                    );
                }
            }
        }
        ps
    };
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    let mut code = OK;
    let mut lines = Vec::new();
    for p in &profiles {
        let observed = match lifecycle::observe(&scandir, p) {
            Ok(o) => o,
            Err(e) => {
                msg::warn(PROG, &e);
                code = e.exit_code().max(exit::SYSTEM);
                continue;
            }
        };
        match &observed {
            Observed::Unregistered => {
                msg::warn(PROG, not_registered(p));
                code = exit::NEGATIVE;
            }
            Observed::Unsupervised => {
                msg::warn(PROG, format_args!("unable to read status for gateway '{p}': s6-supervise not running"));
                code = exit::NEGATIVE;
            }
            Observed::Supervised { .. } => {}
        }
        lines.push(if json { status_json(p, &observed, now) } else { status_line(p, &observed, now) });
    }
    let out = if json { format!("[{}]\n", lines.join(",")) } else { lines.iter().map(|l| format!("{l}\n")).collect() };
    let printed = print(&out);
    if code == OK { printed } else { ExitCode::from(code) }
}

/// `<profile>: <s6-svstat's line>`, or what is known instead.
fn status_line(p: &Profile, o: &Observed, now: Duration) -> String {
    match o {
        Observed::Unregistered => format!("{p}: not registered"),
        Observed::Unsupervised => format!("{p}: not supervised"),
        Observed::Supervised { status, normally_up } => format!("{p}: {}", status.human(*normally_up, now)),
    }
}

/// One JSON object; field names and values are `s6-svstat -o`'s (all of
/// them), `null` where it prints -1 or NA.
fn status_json(p: &Profile, o: &Observed, now: Duration) -> String {
    let quote = |s: &str| serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_string());
    let opt = |v: Option<String>| v.unwrap_or_else(|| "null".to_string());
    let head = format!("{{\"profile\":{},\"service\":{}", quote(p.as_str()), quote(&slot::name(p)));
    match o {
        Observed::Unregistered => format!("{head},\"registered\":false,\"supervised\":false}}"),
        Observed::Unsupervised => format!("{head},\"registered\":true,\"supervised\":false}}"),
        Observed::Supervised { status: s, normally_up } => format!(
            "{head},\"registered\":true,\"supervised\":true,\"up\":{},\"wantedup\":{},\"normallyup\":{normally_up},\"ready\":{},\"paused\":{},\
\"pid\":{},\"pgid\":{},\"exitcode\":{},\"signal\":{},\"signum\":{},\"updownsince\":{},\"readysince\":{},\"updownfor\":{},\"readyfor\":{}}}",
            s.is_up(),
            s.want_up,
            s.is_ready(),
            s.paused,
            opt(s.is_up().then(|| s.pid.to_string())),
            opt(s.process_group().map(|g| g.to_string())),
            opt(s.exit_code().map(|c| c.to_string())),
            opt(s.signal().map(|n| quote(&crate::s6::status::signal_name(n)))),
            opt(s.signal().map(|n| n.to_string())),
            quote(&s.updown_since(now)),
            quote(&s.ready_since_label()),
            s.updown_for(now),
            s.ready_for(now),
        ),
    }
}

fn list(ctx: &Ctx) -> ExitCode {
    let scandir = match Dir::open(&ctx.scandir) {
        Ok(d) => d,
        // No scan directory: nothing is registered (upstream's `[]`).
        Err(e) if e.errno() == Some(nix::errno::Errno::ENOENT) => return ExitCode::SUCCESS,
        Err(e) => return msg::fatal(PROG, e.exit_code().max(exit::SYSTEM), e),
    };
    match slot::registered(&scandir) {
        Ok(all) => print(&all.iter().map(|p| format!("{p}\n")).collect::<String>()),
        Err(e) => msg::fatal(PROG, e.exit_code(), e),
    }
}

fn shown(p: &Path) -> String {
    printable(&p.to_string_lossy()).into_owned()
}

/// Writes `text` on stdout; a closed stdout is not an error of ours.
fn print(text: &str) -> ExitCode {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(v: &[&str]) -> Result<Parsed, cli::Error> {
        parse(cli::argv(PROG, v))
    }

    fn action(v: &[&str]) -> Action {
        match run(v) {
            Ok(cli::Parsed::Run(a)) => a.action,
            Ok(cli::Parsed::Help) => panic!("help"),
            Err(e) => panic!("{v:?}: {e}"),
        }
    }

    #[test]
    fn parses_global_options_then_a_command() {
        let Ok(cli::Parsed::Run(a)) = run(&["-s", "/s", "-H/h", "-t", "250", "-u", ":1:2", "register", "coder", "-d"]) else { panic!() };
        assert_eq!(
            a,
            Args {
                scandir: Some("/s".into()),
                home: Some("/h".into()),
                timeout_ms: 250,
                user: ":1:2".into(),
                action: Action::Register { profile: "coder".into(), down: true }
            }
        );
        let Ok(cli::Parsed::Run(a)) = run(&["list"]) else { panic!() };
        assert_eq!((a.scandir, a.home, a.timeout_ms, a.user), (None, None, DEFAULT_TIMEOUT_MS, "hermes".to_string()));
        assert_eq!(action(&["register", "-d", "coder"]), Action::Register { profile: "coder".into(), down: true });
        assert_eq!(action(&["register", "coder"]), Action::Register { profile: "coder".into(), down: false });
        assert_eq!(action(&["unregister", "coder"]), Action::Unregister("coder".into()));
        assert_eq!(action(&["stop", "-w", "coder"]), Action::Control { cmd: Command::Stop, profile: "coder".into(), wait: true });
        assert_eq!(action(&["restart", "coder"]), Action::Control { cmd: Command::Restart, profile: "coder".into(), wait: false });
        assert_eq!(action(&["status"]), Action::Status { profiles: vec![], json: false });
        assert_eq!(action(&["status", "a", "-j", "b"]), Action::Status { profiles: vec!["a".into(), "b".into()], json: true });
        assert_eq!(action(&["port", "coder"]), Action::Port("coder".into()));
        // A profile that looks like an option comes after "--".
        assert_eq!(action(&["start", "--", "-x"]), Action::Control { cmd: Command::Start, profile: "-x".into(), wait: false });
        assert!(matches!(run(&["-h"]), Ok(cli::Parsed::Help)));
        assert!(matches!(run(&["status", "-h"]), Ok(cli::Parsed::Help)));
    }

    #[test]
    fn refuses_bad_usage() {
        for bad in [
            &[][..],
            &["-x", "list"],
            &["frobnicate"],
            &["register"],
            &["register", "a", "b"],
            &["register", "-w", "a"],
            &["start", "-d", "a"],
            &["status", "-d"],
            &["list", "x"],
            &["list", "-j"],
            &["-t", "soon", "list"],
            &["-s", "", "list"],
            &["port"],
        ] {
            assert!(run(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_friendly_message_is_upstreams() {
        let p = Profile::parse(b"typo").unwrap();
        assert_eq!(
            not_registered(&p),
            "no such gateway 'typo': register it with `hermes profile create typo` first, or pass an existing profile name via `-p <name>`"
        );
    }
}

//! hermes-slot: a profile gateway's slot at run time, as the user. Its
//! commands are the rows of `COMMANDS`. Every outcome a caller must tell
//! apart has its own exit code ([`code`]); `-j` makes stdout one JSON
//! object, result or error. See doc/hermes-slot.md.

use std::ffi::{OsStr, OsString};
use std::fmt::Display;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::cli::{self, Arg};
use crate::fs::{Dir, Owner};
use crate::layout;
use crate::lifecycle::{self, Command, Controlled, Observed, Registered, Unreachable, Unregistered};
use crate::msg::{self, exit, printable};
use crate::park;
use crate::planned_stop;
use crate::port;
use crate::profile::{self, Profile};
use crate::s6::listen::Deadline;
use crate::slot::{self, RunAs, Start};
use crate::state::{self, Previous};
use crate::user;

/// The name the tool prints in its messages.
pub const PROG: &str = "hermes-slot";
/// The global options, the head of [`usage`].
const GLOBALS: &str = "hermes-slot [ -s scandir ] [ -H hermes_home ] [ -t timeout ] [ -u user ] [ -j ]";

/// Every command: the parser, `-h`'s synopsis and the dispatch all read
/// this table. A new command is a row here and its handler.
const COMMANDS: [Subcommand; 11] = [
    Subcommand { name: "register", options: "de", run: Run::Profile(|c, p, o| register(c, p, o.has('d'), o.has('e'))) },
    Subcommand { name: "unregister", options: "", run: Run::Profile(|c, p, _| unregister(c, p)) },
    Subcommand { name: "start", options: "w", run: Run::Profile(|c, p, o| control(c, p, Command::Start, o.has('w'))) },
    Subcommand { name: "stop", options: "w", run: Run::Profile(|c, p, o| control(c, p, Command::Stop, o.has('w'))) },
    Subcommand { name: "restart", options: "w", run: Run::Profile(|c, p, o| control(c, p, Command::Restart, o.has('w'))) },
    Subcommand { name: "park", options: "", run: Run::Profile(|c, p, _| park(c, p)) },
    Subcommand { name: "unpark", options: "w", run: Run::Profile(|c, p, o| unpark(c, p, o.has('w'))) },
    Subcommand { name: "status", options: "", run: Run::Profiles(|c, ps, _| status(c, ps)) },
    Subcommand { name: "list", options: "", run: Run::Alone(|c, _| list(c)) },
    Subcommand { name: "port", options: "", run: Run::Profile(|_, p, _| port(p)) },
    Subcommand { name: "scandir", options: "", run: Run::Alone(|c, _| scandir(c)) },
];

/// One command of the tool.
struct Subcommand {
    /// Its name on the command line.
    name: &'static str,
    /// The letters of its own options (`-j` and `-h` go with every command).
    options: &'static str,
    /// Its handler; the kind says which operands it takes.
    run: Run,
}

/// A command's handler, by the operands it takes.
#[derive(Clone, Copy)]
enum Run {
    /// No operand.
    Alone(fn(&Ctx, &Flags) -> ExitCode),
    /// One profile, a valid name by the time the handler runs.
    Profile(fn(&Ctx, &Profile, &Flags) -> ExitCode),
    /// Any number of profiles, each a valid name.
    Profiles(fn(&Ctx, &[Profile], &Flags) -> ExitCode),
}

impl Run {
    /// The operands as the synopsis shows them.
    fn synopsis(self) -> &'static str {
        match self {
            Run::Alone(_) => "",
            Run::Profile(_) => " profile",
            Run::Profiles(_) => " [ profile... ]",
        }
    }
}

/// The command's own options that were given.
#[derive(Debug, Default, PartialEq, Eq)]
struct Flags(String);

impl Flags {
    fn has(&self, letter: char) -> bool {
        self.0.contains(letter)
    }
}

/// The synopsis, as `-h` prints it and the page starts: the global
/// options, then each command's form from `COMMANDS`. Neighbouring
/// commands with the same options and operands share one form
/// (`start|stop|restart [ -w ] profile`).
pub fn usage() -> String {
    let form = |c: &Subcommand| {
        let options: String = c.options.chars().map(|l| format!(" [ -{l} ]")).collect();
        format!("{options}{}", c.run.synopsis())
    };
    let mut forms: Vec<(String, String)> = Vec::new();
    for c in &COMMANDS {
        match forms.last_mut() {
            Some((names, last)) if *last == form(c) => {
                names.push('|');
                names.push_str(c.name);
            }
            _ => forms.push((c.name.to_string(), form(c))),
        }
    }
    let forms: Vec<String> = forms.into_iter().map(|(names, form)| names + &form).collect();
    format!("{GLOBALS} {}", forms.join(" | "))
}

/// The exit codes, one per outcome a caller must tell apart, the same for
/// every command (doc/hermes-slot.md, "Exit codes").
pub mod code {
    /// Done.
    pub const OK: u8 = 0;
    /// `register`: a slot of that name exists already.
    pub const ALREADY: u8 = 1;
    /// No slot for that profile (or `register -e`: no `SOUL.md`).
    pub const NOT_REGISTERED: u8 = 2;
    /// The command was delivered, but `desired_state` was not recorded.
    pub const NOT_RECORDED: u8 = 3;
    /// The supervisor gave up on the service (its finish exited 125).
    pub const GAVE_UP: u8 = 4;
    /// A wait timed out.
    pub const TIMEOUT: u8 = crate::msg::exit::TIMEOUT;
    /// Wrong usage, or refused input (a name, a file, an account).
    pub const REFUSED: u8 = crate::msg::exit::USAGE;
    /// No supervisor (nobody reads `supervise/control`, none holds the lock).
    pub const NO_SUPERVISOR: u8 = crate::msg::exit::NOT_LISTENING;
    /// A system call failed.
    pub const SYSTEM: u8 = crate::msg::exit::SYSTEM;
}
use code::OK;

/// `-j`: stdout carries exactly one JSON object.
static JSON: AtomicBool = AtomicBool::new(false);

fn json() -> bool {
    JSON.load(Ordering::Relaxed)
}

fn quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_string())
}

/// Ends the run: `hermes-slot: fatal: <what>` on stderr, and with `-j`
/// `{"error": <what>, "code": <code>}` on stdout.
fn fatal(code: u8, what: impl Display) -> ExitCode {
    let text = what.to_string();
    if json() {
        print(&format!("{{\"error\":{},\"code\":{code}}}\n", quote(&text)));
    }
    msg::fatal(PROG, code, text)
}

/// Ends a successful run: `text` on stdout, or with `-j` the JSON object
/// `object` (fields, without braces).
fn done(text: &str, object: &str) -> ExitCode {
    if json() { print(&format!("{{{object}}}\n")) } else { print(text) }
}

/// Default bound on every wait, in milliseconds.
const DEFAULT_TIMEOUT_MS: u64 = 10_000;

struct Args {
    scandir: Option<PathBuf>,
    home: Option<PathBuf>,
    timeout_ms: u64,
    user: String,
    json: bool,
    command: &'static Subcommand,
    flags: Flags,
    /// As many as `command` takes.
    operands: Vec<OsString>,
}

type Parsed = cli::Parsed<Args>;

fn parse(argv: impl IntoIterator<Item = OsString>) -> Result<Parsed, cli::Error> {
    let mut p = cli::parser(argv);
    let (mut scandir, mut home, mut timeout_ms, mut user) = (None, None, DEFAULT_TIMEOUT_MS, "hermes".to_string());
    let mut json = false;
    let command = loop {
        match p.next()? {
            Some(Arg::Short('j')) => json = true,
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
    let mut flags = Flags::default();
    let mut operands = Vec::new();
    while let Some(arg) = p.next()? {
        match arg {
            Arg::Short('j') => json = true,
            Arg::Short('h') => return Ok(cli::Parsed::Help),
            // A letter of some command; whether of this one is checked below.
            Arg::Short(c) if COMMANDS.iter().any(|k| k.options.contains(c)) => flags.0.push(c),
            Arg::Value(v) => operands.push(v),
            arg => return Err(arg.unexpected()),
        }
    }
    let Some(found) = COMMANDS.iter().find(|k| k.name == command) else {
        return Err(format!("unknown command: {command}").into());
    };
    if let Some(c) = flags.0.chars().find(|c| !found.options.contains(*c)) {
        return Err(format!("invalid option for {command}: -{c}").into());
    }
    match (found.run, operands.len()) {
        (Run::Profile(_), 0) => return Err(format!("{command}: missing profile").into()),
        (Run::Profile(_), 2..) | (Run::Alone(_), 1..) => return Err(format!("{command}: too many operands").into()),
        _ => {}
    }
    Ok(cli::Parsed::Run(Args { scandir, home, timeout_ms, user, json, command: found, flags, operands }))
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

/// Runs the tool on `argv` (its name first).
pub fn main(argv: impl IntoIterator<Item = OsString>) -> ExitCode {
    let argv: Vec<OsString> = argv.into_iter().collect();
    let args = match parse(argv.iter().cloned()) {
        Ok(cli::Parsed::Run(args)) => args,
        Ok(cli::Parsed::Help) => return msg::help(&usage()),
        Err(e) => {
            // A caller that asked for JSON gets it even when the usage is wrong.
            if cli::asks_for_json(&argv, "sHtu") {
                print(&format!("{{\"error\":{},\"code\":{}}}\n", quote(&e.to_string()), code::REFUSED));
            }
            return msg::usage(PROG, &usage(), Some(&e));
        }
    };
    JSON.store(args.json, Ordering::Relaxed);
    // Every file, directory and FIFO is created with an explicit mode.
    nix::sys::stat::umask(nix::sys::stat::Mode::empty());
    let ctx = Ctx {
        scandir: layout::gateway_scandir(args.scandir),
        home: layout::hermes_home(args.home),
        user: args.user,
        deadline: Deadline::after_ms(args.timeout_ms),
    };
    let flags = &args.flags;
    match (args.command.run, args.operands.as_slice()) {
        (Run::Alone(run), _) => run(&ctx, flags),
        (Run::Profile(run), [name]) => with_profile(name, |p| run(&ctx, p, flags)),
        (Run::Profiles(run), names) => with_profiles(names, |ps| run(&ctx, ps, flags)),
        // parse() lets no other count of operands through.
        (Run::Profile(_), _) => msg::usage(PROG, &usage(), Some(&"wrong number of operands")),
    }
}

/// Validates a profile name as reconcile does (exit 100 if invalid).
fn with_profile(name: &OsString, f: impl FnOnce(&Profile) -> ExitCode) -> ExitCode {
    match profile_operand(name) {
        Ok(p) => f(&p),
        Err(code) => code,
    }
}

/// [`with_profile`] for every name, all checked before `f` runs.
fn with_profiles(names: &[OsString], f: impl FnOnce(&[Profile]) -> ExitCode) -> ExitCode {
    match names.iter().map(profile_operand).collect::<Result<Vec<_>, _>>() {
        Ok(profiles) => f(&profiles),
        Err(code) => code,
    }
}

/// A profile named on the command line; an invalid name ends the run (100).
fn profile_operand(name: &OsString) -> Result<Profile, ExitCode> {
    Profile::parse(name.as_encoded_bytes())
        .map_err(|why| fatal(code::REFUSED, format_args!("invalid profile name '{}': {why}", printable(&name.to_string_lossy()))))
}

/// `"profile":…,"service":…`: the head of every per-profile result.
fn head(p: &Profile) -> String {
    format!("\"profile\":{},\"service\":{}", quote(p.as_str()), quote(&slot::name(p)))
}

/// upstream's `GatewayNotRegisteredError` text.
fn not_registered(p: &Profile) -> String {
    format!("no such gateway '{p}': register it with `hermes profile create {p}` first, or pass an existing profile name via `-p <name>`")
}

fn open_scandir(ctx: &Ctx) -> Result<Dir, ExitCode> {
    Dir::open(&ctx.scandir).map_err(|e| fatal(e.exit_code(), e))
}

/// Who owns what we write: the user itself, or root writing for it.
/// `Err`: the exit code and the reason.
fn owner(ctx: &Ctx) -> Result<Owner, (u8, String)> {
    let account = user::resolve(&ctx.user).map_err(|e| (e.exit_code(), e.to_string()))?;
    Owner::for_caller(&account).map_err(|why| (exit::PERMANENT, why))
}

fn register(ctx: &Ctx, p: &Profile, down: bool, existing_only: bool) -> ExitCode {
    // -e: only an existing profile (upstream's register on `gateway
    // start`), checked before anything is created.
    if existing_only {
        match profile::open_home(&ctx.home, p).and_then(|h| h.map_or(Ok(false), |h| h.exists_following(OsStr::new(MARKER)))) {
            Ok(true) => {}
            Ok(false) => return fatal(code::NOT_REGISTERED, format_args!("profile '{p}' has no {MARKER}: not registered")),
            Err(e) => return fatal(e.exit_code(), e),
        }
    }
    let run_as = match RunAs::new(&ctx.user) {
        Ok(r) => r,
        Err(e) => return fatal(e.exit_code(), e),
    };
    let owner = match owner(ctx) {
        Ok(o) => o,
        Err((code, why)) => return fatal(code, why),
    };
    let scandir = match open_scandir(ctx) {
        Ok(d) => d,
        Err(code) => return code,
    };
    let content = slot::render(&run_as, if down { Start::Down } else { Start::Up });
    let dir = scandir.child_path(slot::name(p).as_ref());
    let dir = printable(&dir.to_string_lossy()).into_owned();
    match lifecycle::register(&scandir, p, &content, owner, &ctx.deadline) {
        Ok(Registered::Supervised) => done("", &format!("{},\"registered\":true,\"down\":{down}", head(p))),
        Ok(Registered::Already) => fatal(code::ALREADY, format_args!("gateway '{p}' is already registered: {dir}")),
        Ok(Registered::TimedOut) => fatal(
            code::TIMEOUT,
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
            fatal(code::SYSTEM, format_args!("unable to rescan {}: {why} (the slot was removed again)", shown(&ctx.scandir)))
        }
        Err(e) => fatal(e.exit_code(), e),
    }
}

/// A named profile is a directory holding this file (as for reconcile).
const MARKER: &str = crate::reconcile::MARKER;

fn unregister(ctx: &Ctx, p: &Profile) -> ExitCode {
    let scandir = match open_scandir(ctx) {
        Ok(d) => d,
        Err(code) => return code,
    };
    match lifecycle::unregister(&scandir, p, &ctx.deadline) {
        Ok(Unregistered::Absent) => done("", &format!("{},\"unregistered\":false", head(p))),
        Ok(Unregistered::Removed) => done("", &format!("{},\"unregistered\":true", head(p))),
        Ok(Unregistered::DownTimedOut) => {
            fatal(code::TIMEOUT, format_args!("timed out waiting for gateway '{p}' to go down (it stays registered, wanted down)"))
        }
        Ok(Unregistered::ExitTimedOut { left_at, prune }) => {
            let why = match prune {
                None => String::new(),
                Some(Unreachable::NotListening) => "; s6-svscan was not listening".to_string(),
                Some(Unreachable::Failed(e)) => format!("; {e}"),
            };
            fatal(code::TIMEOUT, format_args!("timed out waiting for the supervisors of {} to exit{why}", shown(&left_at)))
        }
        Ok(Unregistered::Leftover { left_at, error }) => fatal(error.exit_code(), format_args!("{error} (left as {})", shown(&left_at))),
        Err(e) => fatal(e.exit_code(), e),
    }
}

/// What a start, stop, restart, park or unpark did, or why it failed.
struct ControlOutcome {
    /// The exit code, and the message when it is not 0.
    code: u8,
    error: Option<String>,
    /// The command actually sent (a restart of a down gateway is a start).
    sent: Option<Command>,
    /// `desired_state` was written.
    recorded: bool,
}

impl ControlOutcome {
    fn failed(code: u8, error: impl Display) -> ControlOutcome {
        ControlOutcome { code, error: Some(error.to_string()), sent: None, recorded: false }
    }
}

fn control(ctx: &Ctx, p: &Profile, cmd: Command, wait: bool) -> ExitCode {
    let scandir = match open_scandir(ctx) {
        Ok(d) => d,
        Err(code) => return code,
    };
    let c = control_slot(ctx, &scandir, p, cmd, wait);
    report_control(p, &c, "")
}

/// The outcome as the tool reports it: the error (stderr, and stdout with
/// `-j`), or with `-j` the result object (`extra`: more fields).
fn report_control(p: &Profile, c: &ControlOutcome, extra: &str) -> ExitCode {
    if let Some(error) = &c.error {
        return fatal(c.code, error);
    }
    let sent = c.sent.map_or("null".to_string(), |s| quote(command_name(s)));
    done("", &format!("{},\"sent\":{sent},\"recorded\":{}{extra}", head(p), c.recorded))
}

fn command_name(cmd: Command) -> &'static str {
    match cmd {
        Command::Start => "start",
        Command::Stop => "stop",
        Command::Restart => "restart",
    }
}

/// Sends `cmd` to `p`'s supervisor (waiting with `wait`), then records the
/// intent in the profile's state file.
fn control_slot(ctx: &Ctx, scandir: &Dir, p: &Profile, cmd: Command, wait: bool) -> ControlOutcome {
    // An unregistered profile writes nothing at all, not even a lock.
    match lifecycle::open_slot(scandir, p) {
        Ok(Some(_)) => {}
        Ok(None) => return ControlOutcome::failed(code::NOT_REGISTERED, not_registered(p)),
        Err(e) => return ControlOutcome::failed(e.exit_code(), e),
    }
    // One command on a profile at a time, its intent recorded before the
    // next one is sent (released when this function returns).
    let _locked = match lifecycle::lock_profile(scandir, p) {
        Ok(l) => l,
        Err(e) => return ControlOutcome::failed(e.exit_code(), e),
    };
    let svc = match lifecycle::open_slot(scandir, p) {
        Ok(Some(d)) => d,
        Ok(None) => return ControlOutcome::failed(code::NOT_REGISTERED, not_registered(p)),
        Err(e) => return ControlOutcome::failed(e.exit_code(), e),
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
    let before = crate::s6::status::read(&svc).ok().flatten();
    // A restart of a gateway that is not up starts it, as `systemctl
    // restart` does: `t` would signal nothing.
    let cmd = match (cmd, &before) {
        (Command::Restart, Some(st)) if !st.is_up() => Command::Start,
        _ => cmd,
    };
    if cmd == Command::Stop
        && let Some(home) = &home
        && let Some(st) = &before
        && st.is_up()
        && let Err(e) = planned_stop::write(home, st.pid, now, owner)
    {
        msg::warn(PROG, format_args!("{e}; the gateway may take the stop for a crash"));
    }
    let dir = shown(svc.path());
    let (mut code, mut error) = match lifecycle::control(&svc, cmd, wait.then_some(&ctx.deadline)) {
        Ok(Controlled::Done) => (OK, None),
        Ok(Controlled::NotListening) => {
            return ControlOutcome::failed(code::NO_SUPERVISOR, format_args!("unable to control {dir}: supervisor not listening"));
        }
        Ok(Controlled::NotUp) => {
            // Went down between the status read and the command.
            msg::warn(PROG, format_args!("gateway '{p}' is not up: nothing to restart"));
            (OK, None)
        }
        Ok(Controlled::TimedOut) => (code::TIMEOUT, Some(format!("timed out waiting for gateway '{p}'"))),
        Ok(Controlled::GaveUp) => (code::GAVE_UP, Some(format!("gateway '{p}' will not come up: its finish program exited 125"))),
        Ok(Controlled::SupervisorExited) => (code::NO_SUPERVISOR, Some(format!("the supervisor of {dir} exited"))),
        Err(e) => return ControlOutcome::failed(e.exit_code(), e),
    };
    // The command was delivered: record the intent.
    let mut recorded = false;
    if let Some(home) = &home {
        match state::record_desired(home, cmd.desired_state(), now.as_secs() as i64, owner) {
            Ok(previous) => {
                recorded = true;
                if let Previous::Replaced { why, kept_as } = previous {
                    msg::warn(
                        PROG,
                        format_args!(
                            "{}: {why}; kept as {}, a fresh one written",
                            shown(&home.child_path(state::STATE_FILE.as_ref())),
                            shown(&kept_as)
                        ),
                    );
                }
            }
            Err(e) => {
                if code == OK {
                    code = code::NOT_RECORDED;
                    error = Some(format!("{e}; the command was delivered but desired_state was not recorded"));
                } else {
                    msg::warn(PROG, format_args!("{e}; desired_state not recorded"));
                }
            }
        }
    }
    ControlOutcome { code, error, sent: Some(cmd), recorded }
}

/// park: the `down` file first (a supervisor started again from now on
/// leaves the gateway down), then stop and wait, record `stopped`, and the
/// park marker for the boot ([`park`]).
fn park(ctx: &Ctx, p: &Profile) -> ExitCode {
    let (scandir, svc) = match open_registered(ctx, p) {
        Ok(found) => found,
        Err(code) => return code,
    };
    if let Err(e) = touch_down(&svc) {
        return fatal(e.exit_code(), e);
    }
    let c = control_slot(ctx, &scandir, p, Command::Stop, true);
    if c.sent.is_some()
        && let Some(code) = mark_parked(ctx, p, true)
    {
        return fatal(code.0, code.1);
    }
    report_control(p, &c, ",\"parked\":true")
}

/// The scan directory and `p`'s slot in it; a slot that is not there is
/// the not-registered exit.
fn open_registered(ctx: &Ctx, p: &Profile) -> Result<(Dir, Dir), ExitCode> {
    let scandir = open_scandir(ctx)?;
    match lifecycle::open_slot(&scandir, p) {
        Ok(Some(svc)) => Ok((scandir, svc)),
        Ok(None) => Err(fatal(code::NOT_REGISTERED, not_registered(p))),
        Err(e) => Err(fatal(e.exit_code(), e)),
    }
}

/// unpark: the marker and the `down` file go, then a start.
fn unpark(ctx: &Ctx, p: &Profile, wait: bool) -> ExitCode {
    let (scandir, svc) = match open_registered(ctx, p) {
        Ok(found) => found,
        Err(code) => return code,
    };
    if let Some(code) = mark_parked(ctx, p, false) {
        return fatal(code.0, code.1);
    }
    if let Err(e) = svc.unlink_at(OsStr::new(crate::s6::DOWN)) {
        return fatal(e.exit_code(), e);
    }
    let c = control_slot(ctx, &scandir, p, Command::Start, wait);
    report_control(p, &c, ",\"parked\":false")
}

/// The slot's `down` file; one that is there is kept.
fn touch_down(svc: &Dir) -> crate::Result<()> {
    match svc.create_file(OsStr::new(crate::s6::DOWN), 0o644, b"") {
        Err(e) if e.errno() == Some(nix::errno::Errno::EEXIST) => Ok(()),
        other => other,
    }
}

/// Writes (`on`) or removes the park marker in the profile's home. A
/// profile without a home has nothing to mark (its slot is not rebuilt at
/// boot). `Some((code, message))` on failure.
fn mark_parked(ctx: &Ctx, p: &Profile, on: bool) -> Option<(u8, String)> {
    let owner = owner(ctx).unwrap_or(Owner::Caller { uid: nix::unistd::geteuid().as_raw(), gid: nix::unistd::getegid().as_raw() });
    let home = match profile::open_home(&ctx.home, p) {
        Ok(Some(h)) => h,
        Ok(None) => return None,
        Err(e) => return Some((code::NOT_RECORDED, format!("{e}; the park marker was not {}", if on { "written" } else { "removed" }))),
    };
    let r = if on { park::mark(&home, owner) } else { park::unmark(&home) };
    r.err().map(|e| (code::NOT_RECORDED, format!("{e}; the park marker was not {}", if on { "written" } else { "removed" })))
}

/// status: the named profiles, or every registered one.
fn status(ctx: &Ctx, named: &[Profile]) -> ExitCode {
    let scandir = match open_scandir(ctx) {
        Ok(d) => d,
        Err(code) => return code,
    };
    let registered;
    let profiles = if named.is_empty() {
        registered = match slot::registered(&scandir) {
            Ok(all) => all,
            Err(e) => return fatal(e.exit_code(), e),
        };
        &registered
    } else {
        named
    };
    let json = json();
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    // The exit code is the highest of the operands' (each is warned).
    let mut code = OK;
    let mut error = None;
    let mut fail = |c: u8, why: String| {
        msg::warn(PROG, &why);
        if c > code {
            code = c;
            error = Some(why);
        }
    };
    let mut lines = Vec::new();
    for p in profiles {
        let observed = match lifecycle::observe(&scandir, p) {
            Ok(o) => o,
            Err(e) => {
                fail(e.exit_code(), e.to_string());
                continue;
            }
        };
        match &observed {
            Observed::Unregistered => fail(code::NOT_REGISTERED, not_registered(p)),
            Observed::Unsupervised => {
                fail(code::NO_SUPERVISOR, format!("unable to read status for gateway '{p}': s6-supervise not running"));
            }
            Observed::Supervised { .. } => {}
        }
        lines.push(if json { status_json(p, &observed, now) } else { status_line(p, &observed, now) });
    }
    let out = if json {
        // One object: the gateways, and the error when the code is not 0.
        let error = error.map_or(String::new(), |e| format!(",\"error\":{},\"code\":{code}", quote(&e)));
        format!("{{\"gateways\":[{}]{error}}}\n", lines.join(","))
    } else {
        lines.iter().map(|l| format!("{l}\n")).collect()
    };
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
    let all = match Dir::open(&ctx.scandir) {
        Ok(scandir) => match slot::registered(&scandir) {
            Ok(all) => all,
            Err(e) => return fatal(e.exit_code(), e),
        },
        // No scan directory: nothing is registered (upstream's `[]`).
        Err(e) if e.errno() == Some(nix::errno::Errno::ENOENT) => Vec::new(),
        Err(e) => return fatal(e.exit_code(), e),
    };
    let names: Vec<String> = all.iter().map(|p| quote(p.as_str())).collect();
    done(&all.iter().map(|p| format!("{p}\n")).collect::<String>(), &format!("\"profiles\":[{}]", names.join(",")))
}

/// port: the profile's deterministic port.
fn port(p: &Profile) -> ExitCode {
    let port = port::port(p);
    done(&format!("{port}\n"), &format!("\"profile\":{},\"port\":{port}", quote(p.as_str())))
}

/// scandir: the scan directory every other command would use.
fn scandir(ctx: &Ctx) -> ExitCode {
    let shown = ctx.scandir.to_string_lossy();
    done(&format!("{shown}\n"), &format!("\"scandir\":{}", quote(&shown)))
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

    /// The command's name, its own options and its operands, as parsed.
    fn call(v: &[&str]) -> (&'static str, String, Vec<OsString>) {
        match run(v) {
            Ok(cli::Parsed::Run(a)) => (a.command.name, a.flags.0, a.operands),
            Ok(cli::Parsed::Help) => panic!("help"),
            Err(e) => panic!("{v:?}: {e}"),
        }
    }

    fn is(name: &'static str, flags: &str, operands: &[&str]) -> (&'static str, String, Vec<OsString>) {
        (name, flags.to_string(), operands.iter().map(OsString::from).collect())
    }

    #[test]
    fn parses_global_options_then_a_command() {
        let Ok(cli::Parsed::Run(a)) = run(&["-s", "/s", "-H/h", "-t", "250", "-u", ":1:2", "register", "coder", "-d"]) else { panic!() };
        assert_eq!(
            (a.scandir, a.home, a.timeout_ms, a.user, a.json, a.command.name, a.flags, a.operands),
            (Some("/s".into()), Some("/h".into()), 250, ":1:2".to_string(), false, "register", Flags("d".into()), vec!["coder".into()])
        );
        let Ok(cli::Parsed::Run(a)) = run(&["list"]) else { panic!() };
        assert_eq!((a.scandir, a.home, a.timeout_ms, a.user), (None, None, DEFAULT_TIMEOUT_MS, "hermes".to_string()));
        assert_eq!(call(&["register", "-d", "coder"]), is("register", "d", &["coder"]));
        assert_eq!(call(&["register", "coder"]), is("register", "", &["coder"]));
        assert_eq!(call(&["register", "-de", "coder"]), is("register", "de", &["coder"]));
        assert_eq!(call(&["park", "coder"]), is("park", "", &["coder"]));
        assert_eq!(call(&["unpark", "-w", "coder"]), is("unpark", "w", &["coder"]));
        assert_eq!(call(&["scandir"]), is("scandir", "", &[]));
        for v in [&["-j", "list"][..], &["list", "-j"], &["port", "coder", "-j"], &["-j", "scandir"]] {
            let Ok(cli::Parsed::Run(a)) = run(v) else { panic!("{v:?}") };
            assert!(a.json, "{v:?}");
        }
        assert_eq!(call(&["unregister", "coder"]), is("unregister", "", &["coder"]));
        assert_eq!(call(&["stop", "-w", "coder"]), is("stop", "w", &["coder"]));
        assert_eq!(call(&["restart", "coder"]), is("restart", "", &["coder"]));
        assert_eq!(call(&["status"]), is("status", "", &[]));
        assert_eq!(call(&["status", "a", "-j", "b"]), is("status", "", &["a", "b"]));
        assert_eq!(call(&["port", "coder"]), is("port", "", &["coder"]));
        // A profile that looks like an option comes after "--".
        assert_eq!(call(&["start", "--", "-x"]), is("start", "", &["-x"]));
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
            // -r is s6-rc's service directories (doc/conventions.md#options).
            &["register", "-r", "a"],
            &["start", "-d", "a"],
            &["start", "-x", "a"],
            &["status", "-d"],
            &["list", "x"],
            &["scandir", "x"],
            &["park", "-w", "a"],
            &["park"],
            &["-t", "soon", "list"],
            &["-s", "", "list"],
            &["port"],
        ] {
            assert!(run(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_usage_is_the_table() {
        assert_eq!(
            usage(),
            "hermes-slot [ -s scandir ] [ -H hermes_home ] [ -t timeout ] [ -u user ] [ -j ] \
register [ -d ] [ -e ] profile | unregister profile | start|stop|restart [ -w ] profile | park profile | unpark [ -w ] profile | \
status [ profile... ] | list | port profile | scandir"
        );
        // Every command and every letter it takes is in it.
        for c in &COMMANDS {
            assert!(usage().contains(c.name), "{}", c.name);
            assert!(c.options.chars().all(|l| usage().contains(&format!("-{l} ]"))), "{}", c.name);
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

//! hermes-svscan-perms: give the user's group control of the static
//! services and, per topology, of the scan directories; sweep leftovers of
//! interrupted slot builds; or, with `-n`, only say what is missing.
//! See doc/hermes-svscan-perms.md.

use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use nix::errno::Errno;

use crate::boot_check;
use crate::cli::{self, Arg};
use crate::error::Error;
use crate::fs::{Dir, Kind};
use crate::layout;
use crate::msg::{self, exit};
use crate::perms::{self, Act, Change, Cred, Found};
use crate::s6;
use crate::scandir;
use crate::user;

/// The name the tool prints in its messages.
pub const PROG: &str = "hermes-svscan-perms";
/// The synopsis, as `-h` prints it and its page starts.
pub const USAGE: &str =
    "hermes-svscan-perms [ -n ] [ -v ] [ -T isolated|shared ] [ -u user ] [ -r servicedirs ] [ -S scandir ] [ -s user_scandir ] [ -b ]";

/// Services read from the service-directory set, at most (s6-svscan 2.12+
/// supervises 1000 services and loggers by default, 160,000 at most).
const MAX_SERVICES: usize = 200_000;

/// Where the gateway slots live (doc/design.md#topologies).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Topology {
    /// In the user's own scan directory, watched by an s6-svscan run as the user.
    Isolated,
    /// In root's scan directory, which the user then owns.
    Shared,
}

#[derive(Debug, PartialEq, Eq)]
struct Args {
    act: Act,
    /// `-b`: only the boot doctor's `condition:` lines (crate::boot_check).
    boot: bool,
    verbose: bool,
    topology: Topology,
    user: String,
    servicedirs: PathBuf,
    scandir: PathBuf,
    user_scandir: PathBuf,
}

type Parsed = cli::Parsed<Args>;

fn parse(argv: impl IntoIterator<Item = OsString>) -> Result<Parsed, cli::Error> {
    let mut p = cli::parser(argv);
    let mut args = Args {
        act: Act::Change,
        boot: false,
        verbose: false,
        topology: Topology::Isolated,
        user: "hermes".into(),
        servicedirs: layout::SERVICEDIRS.into(),
        scandir: layout::ROOT_SCANDIR.into(),
        user_scandir: layout::USER_SCANDIR.into(),
    };
    let path = |v: OsString, what: &str| -> Result<PathBuf, cli::Error> {
        if v.is_empty() {
            return Err(format!("empty {what}").into());
        }
        Ok(PathBuf::from(v))
    };
    while let Some(arg) = p.next()? {
        match arg {
            Arg::Short('n') => args.act = Act::Check,
            Arg::Short('b') => args.boot = true,
            Arg::Short('v') => args.verbose = true,
            Arg::Short('T') => {
                args.topology = match cli::string(p.value()?, "topology")?.as_str() {
                    "isolated" => Topology::Isolated,
                    "shared" => Topology::Shared,
                    other => return Err(format!("invalid topology: {other} (isolated or shared)").into()),
                }
            }
            Arg::Short('u') => args.user = cli::string(p.value()?, "user")?,
            Arg::Short('r') => args.servicedirs = path(p.value()?, "servicedirs")?,
            Arg::Short('S') => args.scandir = path(p.value()?, "scandir")?,
            Arg::Short('s') => args.user_scandir = path(p.value()?, "user_scandir")?,
            Arg::Short('h') => return Ok(cli::Parsed::Help),
            Arg::Value(v) => return Err(format!("unexpected operand: {}", v.to_string_lossy()).into()),
            _ => return Err(arg.unexpected()),
        }
    }
    Ok(cli::Parsed::Run(args))
}

/// Runs the tool on `argv` (its name first).
pub fn main(argv: impl IntoIterator<Item = OsString>) -> ExitCode {
    let args = match parse(argv) {
        Ok(cli::Parsed::Run(args)) => args,
        Ok(cli::Parsed::Help) => return msg::help(USAGE),
        Err(e) => return msg::usage(PROG, USAGE, Some(&e)),
    };
    if args.boot {
        return boot_doctor(&args);
    }
    if !nix::unistd::geteuid().is_root() {
        return msg::fatal(PROG, exit::PERMANENT, "must run as root");
    }
    let account = match user::resolve(&args.user) {
        Ok(a) => a,
        Err(e) => return msg::fatal(PROG, e.exit_code(), e),
    };
    let mut run = Run {
        cred: Cred { uid: account.uid, groups: account.groups.clone() },
        uid: account.uid,
        gid: account.gid,
        args: &args,
        code: 0,
        missing: false,
    };
    run.static_services();
    let (root_scandir, user_scandir) = match args.topology {
        Topology::Shared => run.shared(),
        Topology::Isolated => run.isolated(),
    };
    for dir in root_scandir.iter().chain(user_scandir.iter()) {
        run.sweep(dir);
        run.unstatable(dir);
    }
    // (The shared topology does not hand root's back for the sweep.)
    if root_scandir.is_none()
        && let Ok(dir) = Dir::open(&args.scandir)
    {
        run.unstatable(&dir);
    }
    let missing = if run.missing && args.act == Act::Check { exit::NEGATIVE } else { 0 };
    ExitCode::from(run.code.max(missing))
}

/// `-b`: one line per real-boot condition present, on stdout; exit 1 if
/// there is any. Changes nothing and runs as any user (some checks then
/// say what they could not read).
fn boot_doctor(args: &Args) -> ExitCode {
    let paths = boot_check::Paths {
        servicedirs: args.servicedirs.clone(),
        scandirs: vec![args.scandir.clone(), args.user_scandir.clone()],
        ..boot_check::Paths::default()
    };
    let lines = boot_check::conditions(&paths, std::env::var_os("PATH").as_deref());
    let mut out = std::io::stdout().lock();
    for line in &lines {
        if writeln!(out, "{line}").is_err() {
            return ExitCode::from(exit::SYSTEM);
        }
    }
    if out.flush().is_err() {
        return ExitCode::from(exit::SYSTEM);
    }
    ExitCode::from(if lines.is_empty() { 0 } else { exit::NEGATIVE })
}

/// One run: the outcome so far, and how to report.
struct Run<'a> {
    args: &'a Args,
    cred: Cred,
    uid: u32,
    gid: u32,
    /// The highest exit code among the objects that could not be handled
    /// (doc/conventions.md#several-objects): 100 refused, 111 system; 0 none.
    code: u8,
    /// Something was not in place (under `-n`: exit 1).
    missing: bool,
}

impl Run<'_> {
    /// One object could not be handled: said, and the run goes on. The
    /// error's cause decides the code (doc/conventions.md#refused-is-100).
    fn fail(&mut self, e: &Error) {
        msg::warn(PROG, e);
        self.code = self.code.max(e.exit_code());
    }

    /// Records the changes made (or due under `-n`), printing them with `-v`.
    fn changed(&mut self, log: &[Change]) {
        if log.is_empty() {
            return;
        }
        self.missing = true;
        if self.args.verbose {
            let would = if self.args.act == Act::Check { "would " } else { "" };
            for c in log {
                msg::info(PROG, format_args!("{would}{c}"));
            }
        }
    }

    /// Under `-n`, one line of the report on stdout.
    fn say(&mut self, line: std::fmt::Arguments<'_>) {
        if self.args.act == Act::Check {
            let mut out = std::io::stdout().lock();
            if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
                self.code = self.code.max(exit::SYSTEM);
            }
        }
    }

    /// Every static service in the service-directory set, and its logger.
    fn static_services(&mut self) {
        let set = match Dir::open_trusted(&self.args.servicedirs) {
            Ok(set) => set,
            Err(e) if e.errno() == Some(Errno::ENOENT) => {
                msg::warn(PROG, format_args!("{}: no such directory, so no static services", shown(&self.args.servicedirs)));
                return;
            }
            Err(e) => return self.fail(&e),
        };
        let listed = set.mount_id().and_then(|mount| Ok((mount, set.entries(MAX_SERVICES)?)));
        let (mount, mut names) = match listed {
            Ok(x) => x,
            Err(e) => return self.fail(&e),
        };
        names.retain(|n| perms::is_static_service(n));
        names.sort();
        for name in names {
            if let Err(e) = self.service_pair(&set, &name, mount) {
                self.fail(&e);
            }
        }
    }

    /// One entry of the set: the service, then its `log/` if it has one.
    fn service_pair(&mut self, set: &Dir, name: &OsStr, mount: u64) -> crate::Result<()> {
        match set.stat_at(name)? {
            // Gone since the listing: nothing to do.
            None => return Ok(()),
            Some(st) if st.kind == Kind::Symlink => return Err(Error::refused("use", set.child_path(name), "is a symlink")),
            // Files are not services.
            Some(st) if st.kind != Kind::Dir => return Ok(()),
            Some(_) => {}
        }
        let svc = set.open_dir(name)?;
        self.service(&svc, mount)?;
        let log = OsStr::new(s6::LOG);
        match svc.stat_at(log)? {
            Some(st) if st.kind == Kind::Dir => self.service(&svc.open_dir(log)?, mount),
            Some(st) if st.kind == Kind::Symlink => Err(Error::refused("use", svc.child_path(log), "is a symlink")),
            // No logger (s6-svscan ignores a non-directory log too).
            _ => Ok(()),
        }
    }

    fn service(&mut self, svc: &Dir, mount: u64) -> crate::Result<()> {
        let mut log = Vec::new();
        let answer = perms::service(svc, self.gid, &self.cred, Some(mount), self.args.act, &mut log);
        // What was done before a failure is reported too.
        self.changed(&log);
        let answer = answer?;
        self.missing |= !answer.as_wanted();
        self.say(format_args!("service {}: {answer}", shown(svc.path())));
        if !answer.as_wanted() {
            self.still_cannot(svc.path(), &answer);
        }
        Ok(())
    }

    /// After a real run, what the changes could not give the user (an
    /// obstacle outside the model, such as a 0700 service directory).
    fn still_cannot(&self, path: &Path, answer: &dyn std::fmt::Display) {
        if self.args.act == Act::Change {
            msg::warn(PROG, format_args!("{} still cannot use {}: {answer}", self.args.user, shown(path)));
        }
    }

    /// Shared topology: root's scan directory for the user, swept first
    /// (while the user cannot write it yet). Returns the user's scan
    /// directory if it exists, for the sweep.
    fn shared(&mut self) -> (Option<Dir>, Option<Dir>) {
        let root_dir = match Dir::open(&self.args.scandir) {
            Ok(dir) => Some(dir),
            Err(e) => {
                self.fail(&e);
                None
            }
        };
        if let Some(dir) = &root_dir {
            self.sweep(dir);
            let mut log = Vec::new();
            let done = scandir::share(dir, self.uid, self.gid, &self.cred, self.args.act, &mut log);
            self.changed(&log);
            match done {
                Ok(answer) => {
                    let all = answer.slots.is_yes() && answer.svscanctl.is_yes();
                    self.missing |= !all;
                    self.say(format_args!("scandir {} (shared): {answer}", shown(&self.args.scandir)));
                    if !all {
                        self.still_cannot(&self.args.scandir, &answer);
                    }
                }
                Err(e) => self.fail(&e),
            }
            // The topology's accepted risk: said for each slot, not counted.
            self.root_supervised_slots(dir, false);
        }
        let user_dir = scandir::open_strict(&self.args.user_scandir).unwrap_or_else(|e| {
            self.fail(&e);
            None
        });
        (None, user_dir)
    }

    /// Isolated topology: the user's scan directory is made; root's is only
    /// looked at. Returns both (when they exist), for the sweep.
    fn isolated(&mut self) -> (Option<Dir>, Option<Dir>) {
        let mut log = Vec::new();
        let done = scandir::create_user_scandir(&self.args.user_scandir, self.uid, self.gid, &self.cred, self.args.act, &mut log);
        self.changed(&log);
        let user_dir = match done {
            Ok((found, answer)) => {
                self.missing |= !answer.is_yes();
                self.say(format_args!("scandir {} (user's): slots {answer}", shown(&self.args.user_scandir)));
                match found {
                    Found::Present(dir, _) => Some(dir),
                    Found::Absent => None,
                }
            }
            Err(e) => {
                self.fail(&e);
                None
            }
        };
        let root_dir = match Dir::open(&self.args.scandir) {
            Ok(dir) => Some(dir),
            // No root scan directory here: nothing to protect, nothing to sweep.
            Err(e) if e.errno() == Some(Errno::ENOENT) => None,
            Err(e) => {
                self.fail(&e);
                None
            }
        };
        if let Some(dir) = &root_dir {
            match scandir::inspect(dir, &self.cred) {
                Ok(answer) => {
                    self.say(format_args!("scandir {} (root's, left root-only): {answer}", shown(&self.args.scandir)));
                    if answer.slots.is_yes() || answer.svscanctl.is_yes() {
                        msg::warn(
                            PROG,
                            format_args!(
                                "{} can change {}, the scan directory of root's s6-svscan: whatever it adds there runs as root",
                                self.args.user,
                                shown(&self.args.scandir)
                            ),
                        );
                    }
                }
                Err(e) => self.fail(&e),
            }
            self.root_supervised_slots(dir, true);
        }
        (root_dir, user_dir)
    }

    /// Warns about the entries s6-svscan cannot stat in a scan directory
    /// (dangling symlinks): each stops every scan there (s6 2.12+). They
    /// are the user's to remove; under `-n` they make the exit code 1.
    fn unstatable(&mut self, dir: &Dir) {
        match crate::s6::svscan::census(dir) {
            Ok(c) => {
                for (name, e) in &c.unstatable {
                    msg::warn(PROG, crate::s6::svscan::unstatable_warning(dir, name, *e));
                    self.missing = true;
                }
            }
            Err(e) => self.fail(&e),
        }
    }

    /// Under `-n`, one line per service directory in root's scan directory
    /// whose supervise skeleton the user may write (the shared topology's
    /// slots): root's supervisor then writes where the user decides.
    /// `counted`: such a slot makes `-n` exit 1 (the isolated topology
    /// should have none).
    fn root_supervised_slots(&mut self, dir: &Dir, counted: bool) {
        let entries = match dir.entries_typed(MAX_SERVICES) {
            Ok(e) => e,
            Err(e) => return self.fail(&e),
        };
        let mut names: Vec<OsString> = entries
            .into_iter()
            // Symlinks are static services (checked above) or not services.
            .filter(|(n, k)| !n.as_encoded_bytes().starts_with(b".") && matches!(k, Some(Kind::Dir) | None))
            .map(|(n, _)| n)
            .collect();
        names.sort();
        for name in names {
            let risk = match dir.open_dir_if_present(&name) {
                Ok(Some(svc)) => perms::skeleton_risk(&svc, &self.cred),
                Ok(None) => Ok(None),
                // Not a directory (a file, or a symlink listed without its type).
                Err(_) => Ok(None),
            };
            match risk {
                Ok(Some(what)) => {
                    self.missing |= counted;
                    let line = format!("slot {}: RISK ({what}: {})", shown(&dir.child_path(&name)), perms::SKELETON_RISK);
                    self.say(format_args!("{line}"));
                }
                Ok(None) => {}
                Err(e) => self.fail(&e),
            }
        }
    }

    /// Removes the leftovers of interrupted slot builds in one scan directory.
    fn sweep(&mut self, dir: &Dir) {
        let names = match scandir::leftovers(dir) {
            Ok(n) => n,
            Err(e) => return self.fail(&e),
        };
        for name in names {
            let mut log = Vec::new();
            let done = scandir::sweep(dir, &name, self.args.act, &mut log);
            self.changed(&log);
            match done {
                Ok(()) if !log.is_empty() => self.say(format_args!("leftover {}: would remove", shown(&dir.child_path(&name)))),
                Ok(()) => {}
                Err(e) => self.fail(&e),
            }
        }
    }
}

fn shown(p: &Path) -> String {
    msg::printable(&p.to_string_lossy()).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(v: &[&str]) -> Result<Parsed, cli::Error> {
        parse(cli::argv(PROG, v))
    }

    #[test]
    fn defaults_are_the_image_layout() {
        let Ok(cli::Parsed::Run(a)) = run(&[]) else { panic!() };
        assert_eq!(
            a,
            Args {
                act: Act::Change,
                boot: false,
                verbose: false,
                topology: Topology::Isolated,
                user: "hermes".into(),
                servicedirs: "/run/s6-rc/servicedirs".into(),
                scandir: "/run/service".into(),
                user_scandir: "/run/hermes/service".into(),
            }
        );
    }

    #[test]
    fn parses_every_option_posix_style() {
        let Ok(cli::Parsed::Run(a)) = run(&["-nv", "-Tshared", "-u", ":1:2", "-r", "/r", "-S/S", "-s", "/s"]) else { panic!() };
        assert_eq!((a.act, a.verbose, a.topology, a.user.as_str()), (Act::Check, true, Topology::Shared, ":1:2"));
        assert_eq!((a.servicedirs, a.scandir, a.user_scandir), ("/r".into(), "/S".into(), "/s".into()));
        assert!(matches!(run(&["-v", "-h"]), Ok(cli::Parsed::Help)));
    }

    #[test]
    fn refuses_bad_usage() {
        for bad in [&["-T", "both"][..], &["-T"], &["-x"], &["operand"], &["-r", ""], &["--", "x"], &["-u"]] {
            assert!(run(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_letters_before_doc_conventions_are_refused_not_aliased() {
        // -t (topology), -d (user's scan directory): now -T, -s.
        for old in [&["-t", "shared"][..], &["-d", "/run/hermes/service"]] {
            assert!(run(old).is_err(), "{old:?}");
        }
        // -s now names the user's scan directory, not root's.
        let Ok(cli::Parsed::Run(a)) = run(&["-s", "/x"]) else { panic!() };
        assert_eq!((a.scandir, a.user_scandir), ("/run/service".into(), "/x".into()));
    }
}

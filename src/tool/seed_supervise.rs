//! hermes-seed-supervise: pre-create the supervise skeleton of service
//! directories so that USER can control them. See doc/hermes-seed-supervise.md.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::cli::{self, Arg};
use crate::fs::{Dir, Owner};
use crate::msg::{self, exit};
use crate::skeleton;
use crate::user;

/// The name the tool prints in its messages.
pub const PROG: &str = "hermes-seed-supervise";
/// The synopsis, as `-h` prints it and its page starts.
pub const USAGE: &str = "hermes-seed-supervise [ -v ] [ -u user ] servicedir...";

#[derive(Debug, PartialEq, Eq)]
struct Args {
    user: String,
    verbose: bool,
    dirs: Vec<PathBuf>,
}

type Parsed = cli::Parsed<Args>;

fn parse(argv: impl IntoIterator<Item = OsString>) -> Result<Parsed, cli::Error> {
    let mut p = cli::parser(argv);
    let mut args = Args { user: "hermes".into(), verbose: false, dirs: Vec::new() };
    while let Some(arg) = p.next()? {
        match arg {
            Arg::Short('u') => args.user = cli::string(p.value()?, "user")?,
            Arg::Short('v') => args.verbose = true,
            Arg::Short('h') => return Ok(cli::Parsed::Help),
            Arg::Value(first) => {
                args.dirs = cli::rest(first, &mut p)?.into_iter().map(PathBuf::from).collect();
                break;
            }
            _ => return Err(arg.unexpected()),
        }
    }
    if args.dirs.is_empty() {
        return Err("missing servicedir".into());
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
    let account = match user::resolve(&args.user) {
        Ok(a) => a,
        Err(e) => return msg::fatal(PROG, e.exit_code(), e),
    };
    let owner = match Owner::for_caller(&account) {
        Ok(o) => o,
        Err(why) => return msg::fatal(PROG, exit::PERMANENT, why),
    };
    // Several operands: report each failure, go on, exit with the highest
    // code (doc/conventions.md#several-objects).
    let mut code = 0;
    for dir in &args.dirs {
        if let Err(c) = seed_one(dir, owner, args.verbose, args.dirs.len() == 1) {
            code = code.max(c);
        }
    }
    ExitCode::from(code)
}

fn seed_one(dir: &Path, owner: Owner, verbose: bool, alone: bool) -> Result<(), u8> {
    let report = Dir::open(dir).and_then(|d| skeleton::seed(&d, owner)).map_err(|e| {
        let code = e.exit_code();
        if alone {
            msg::fatal(PROG, code, &e);
        } else {
            msg::warn(PROG, &e);
        }
        code
    })?;
    for (path, mode, uid, gid) in &report.kept_different {
        msg::warn(PROG, format_args!("keeping existing {path} ({mode:04o} {uid}:{gid}): the user may be unable to use it"));
    }
    if verbose {
        for path in &report.created {
            msg::info(PROG, format_args!("created {path}"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(v: &[&str]) -> Result<Parsed, cli::Error> {
        parse(cli::argv(PROG, v))
    }

    #[test]
    fn parses_posix_style() {
        let Ok(cli::Parsed::Run(a)) = run(&["-v", "-u", ":1:2", "a", "-u", "b"]) else { panic!() };
        assert_eq!(a, Args { user: ":1:2".into(), verbose: true, dirs: vec!["a".into(), "-u".into(), "b".into()] });
        let Ok(cli::Parsed::Run(a)) = run(&["--", "-x"]) else { panic!() };
        assert_eq!(a.dirs, vec![PathBuf::from("-x")]);
        assert!(matches!(run(&["-h"]), Ok(cli::Parsed::Help)));
    }

    #[test]
    fn refuses_bad_usage() {
        assert!(run(&[]).is_err());
        assert!(run(&["-x", "dir"]).is_err());
        assert!(run(&["-u"]).is_err());
    }
}

//! dashboard-finish: the finish program of the `dashboard` longrun. Tells
//! s6 whether to restart the dashboard (exit 0) or to leave it down for
//! good (exit 125, s6's permanent failure: "want up" is cleared, so
//! `s6-svstat` reads down and nothing loops). See doc/dashboard-finish.md.
//!
//! A pure function of run's exit code and `HERMES_DASHBOARD`. Parking a
//! dashboard that keeps dying is not decided here: the service's finish
//! script chains `s6-permafailon` in front of this program.

use std::ffi::OsString;
use std::process::ExitCode;

use crate::cli::{self, Arg};
use crate::msg::{self, exit};
use crate::tool::dashboard_run::ENABLE_VAR;
use crate::truthy;

/// The name the tool prints in its messages.
pub const PROG: &str = "dashboard-finish";
/// The synopsis, as `-h` prints it and its page starts.
pub const USAGE: &str = "dashboard-finish exitcode [ signal [ servicename [ pgid ] ] ]";

/// What s6-supervise passes for a run killed by a signal.
const KILLED: u16 = 256;

fn parse(argv: impl IntoIterator<Item = OsString>) -> Result<Option<u16>, cli::Error> {
    let mut p = cli::parser(argv);
    let first = match p.next()? {
        Some(Arg::Short('h')) => return Ok(None),
        Some(Arg::Value(first)) => first,
        Some(arg) => return Err(arg.unexpected()),
        None => return Err("missing exit code".into()),
    };
    // s6 < 2.13 passes 3 arguments, s6 >= 2.13 passes 4; only the first
    // one matters here, the others are not checked.
    let all = cli::rest(first, &mut p)?;
    if all.len() > 4 {
        return Err("too many arguments".into());
    }
    let code: u16 = cli::number(all[0].clone(), "exit code")?;
    if code > KILLED {
        return Err(format!("invalid exit code: {code}").into());
    }
    Ok(Some(code))
}

/// Why the dashboard stays down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Park {
    /// `HERMES_DASHBOARD` is not truthy (run exited 0 without starting it).
    Disabled,
    /// Run exited 78 (EX_CONFIG): a bad port, an unknown user, or the
    /// dashboard refusing its configuration.
    Config,
    /// Run exited 126 or 127: the program cannot be executed.
    CannotExec(u16),
}

fn decide(code: u16, enabled: bool) -> Option<Park> {
    if !enabled {
        return Some(Park::Disabled);
    }
    match code {
        78 => Some(Park::Config),
        126 | 127 => Some(Park::CannotExec(code)),
        _ => None,
    }
}

/// Runs the tool on `argv` (its name first).
pub fn main(argv: impl IntoIterator<Item = OsString>) -> ExitCode {
    let code = match parse(argv) {
        Ok(Some(code)) => code,
        Ok(None) => return msg::help(USAGE),
        Err(e) => return msg::usage(PROG, USAGE, Some(&e)),
    };
    match decide(code, std::env::var_os(ENABLE_VAR).is_some_and(|v| truthy::exact(&v))) {
        None => ExitCode::SUCCESS,
        Some(why) => {
            match why {
                // The normal state of a container without a dashboard: quiet.
                Park::Disabled => {}
                Park::Config => msg::info(PROG, "the dashboard exited 78 (configuration error): not restarting it"),
                Park::CannotExec(c) => {
                    msg::info(PROG, format_args!("the dashboard exited {c} (cannot execute its program): not restarting it"))
                }
            }
            ExitCode::from(exit::FINISH_PERMANENT)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(v: &[&str]) -> Result<Option<u16>, cli::Error> {
        parse(std::iter::once(PROG).chain(v.iter().copied()).map(OsString::from))
    }

    #[test]
    fn one_to_four_arguments_only_the_first_is_read() {
        assert_eq!(run(&["1"]).unwrap(), Some(1));
        assert_eq!(run(&["256", "15", "dashboard"]).unwrap(), Some(256));
        assert_eq!(run(&["78", "0", "dashboard", "4242"]).unwrap(), Some(78));
        assert_eq!(run(&["0", "junk", "", "x"]).unwrap(), Some(0));
        assert_eq!(run(&["--", "0"]).unwrap(), Some(0));
        assert_eq!(run(&["-h"]).unwrap(), None);
    }

    #[test]
    fn a_malformed_exit_code_is_a_usage_error() {
        for bad in [&[][..], &["abc"], &[""], &["-1"], &["1.5"], &["257"], &[" 1"], &["1", "2", "3", "4", "5"], &["-x", "1"]] {
            assert!(run(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn parks_when_disabled_on_78_and_when_the_program_cannot_run() {
        for code in 0..=256 {
            let want = match code {
                78 => Some(Park::Config),
                126 | 127 => Some(Park::CannotExec(code)),
                _ => None,
            };
            assert_eq!(decide(code, true), want, "{code}");
            assert_eq!(decide(code, false), Some(Park::Disabled), "{code}");
        }
    }
}

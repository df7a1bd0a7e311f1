//! hermes-s6: every tool in one executable, as installed. The tool names
//! are symbolic links to it, and the name a program was run by (the
//! basename of `argv[0]`) picks the tool; `hermes-s6 TOOL ARGS…` does the
//! same by argument. See doc/hermes-s6.md.
//!
//! Six static binaries each carried their own copy of std (its formatting,
//! panic and backtrace code, about 120 KB each); one executable carries it
//! once. The chosen tool runs in this same process with the argv it was
//! given: no exec, so a chain loader keeps its pid and what it execs sees
//! exactly what it would see from a binary of its own.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::process::ExitCode;

use crate::msg;
use crate::tool;

/// The executable's own name: the prefix of its messages.
pub const PROG: &str = "hermes-s6";
/// The usage line, naming every tool.
pub const USAGE: &str = "hermes-s6 tool [ args... ], or run as tool, where tool is one of: \
hermes-seed-supervise hermes-svscan-perms hermes-reconcile hermes-slot dashboard-run dashboard-finish";

/// `argv` as a tool receives it: the process's own, or without its first
/// word in the `hermes-s6 TOOL` form. One concrete type, so each tool's
/// `main` is compiled once.
pub type Argv = std::iter::Skip<std::env::ArgsOs>;

/// A tool's `main`.
pub type Main = fn(Argv) -> ExitCode;

/// Every tool: its installed name and its `main`, in `USAGE`'s order.
pub const TOOLS: [(&str, Main); 6] = [
    (tool::seed_supervise::PROG, tool::seed_supervise::main),
    (tool::svscan_perms::PROG, tool::svscan_perms::main),
    (tool::reconcile::PROG, tool::reconcile::main),
    (tool::slot::PROG, tool::slot::main),
    (tool::dashboard_run::PROG, tool::dashboard_run::main),
    (tool::dashboard_finish::PROG, tool::dashboard_finish::main),
];

/// The tool called `name`, if there is one.
pub fn find(name: &OsStr) -> Option<Main> {
    TOOLS.iter().find(|(n, _)| n.as_bytes() == name.as_bytes()).map(|&(_, main)| main)
}

/// The last component of a program name as `execve` passed it.
fn basename(argv0: &OsStr) -> &OsStr {
    let b = argv0.as_bytes();
    OsStr::from_bytes(b.rsplit(|&c| c == b'/').next().unwrap_or(b))
}

/// Runs the tool named by `argv[0]`, or by `argv[1]` when run as hermes-s6.
pub fn main() -> ExitCode {
    let argv0: OsString = std::env::args_os().next().unwrap_or_default();
    let name = basename(&argv0);
    if let Some(run) = find(name) {
        // skip(0): the same `Argv` type as the `hermes-s6 TOOL` form's skip(1).
        #[allow(clippy::iter_skip_zero)]
        return run(std::env::args_os().skip(0));
    }
    if name.as_bytes() != PROG.as_bytes() {
        let why = format!("unknown tool name: {}", msg::printable(&name.to_string_lossy()));
        return msg::usage(PROG, USAGE, Some(&why));
    }
    // hermes-s6 TOOL ARGS…: TOOL becomes the tool's argv[0].
    match std::env::args_os().nth(1) {
        Some(first) if first.as_bytes() == b"-h" => msg::help(USAGE),
        Some(first) => match find(&first) {
            Some(run) => run(std::env::args_os().skip(1)),
            None => {
                let why = format!("unknown tool: {}", msg::printable(&first.to_string_lossy()));
                msg::usage(PROG, USAGE, Some(&why))
            }
        },
        None => msg::usage(PROG, USAGE, Some(&"missing tool name")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tool_is_listed_once_in_usage() {
        for (name, _) in TOOLS {
            assert_eq!(USAGE.matches(&format!(" {name}")).count(), 1, "{name}");
            assert!(find(OsStr::new(name)).is_some());
        }
        assert!(find(OsStr::new("hermes-s6")).is_none());
        assert!(find(OsStr::new("")).is_none());
    }

    #[test]
    fn basename_is_what_follows_the_last_slash() {
        assert_eq!(basename(OsStr::new("/usr/bin/hermes-slot")), "hermes-slot");
        assert_eq!(basename(OsStr::new("hermes-slot")), "hermes-slot");
        assert_eq!(basename(OsStr::new("./x/")), "");
        assert_eq!(basename(OsStr::new("")), "");
    }
}

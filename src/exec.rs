//! Chain loading: replace this process with the next program, the way
//! skarnet's tools do (`execvp` semantics: PATH search for a name without
//! `/`), and the exit code a chain-loader reports when that fails.
//!
//! The exec goes through `std::os::unix::process::CommandExt::exec`, which
//! also undoes what the Rust runtime changed in this process and must not
//! leak into the next program: SIGPIPE goes back to its default disposition
//! and the signal mask is emptied. No fork: the pid is kept, so the
//! supervisor's child is the real program.
//!
//! Exit codes on failure (skarnet-wide, doc/conventions.md#exit-codes, doc/design.md#chain-loading): 127 when the
//! program was not found (ENOENT), 126 for any other reason (not
//! executable, a directory, a bad interpreter line, E2BIG, ...).

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::os::unix::process::CommandExt;
use std::process::Command;

use nix::errno::Errno;

use crate::msg::{exit, printable};

/// An exec that did not happen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failed {
    prog: OsString,
    errno: Errno,
}

impl Failed {
    /// The program that could not be executed, as given.
    pub fn prog(&self) -> &OsStr {
        &self.prog
    }

    /// The errno of the failed exec.
    pub fn errno(&self) -> Errno {
        self.errno
    }

    /// 127 when the program was not found, 126 otherwise.
    pub fn exit_code(&self) -> u8 {
        if self.errno == Errno::ENOENT { exit::EXEC_NOT_FOUND } else { exit::EXEC_FAILED }
    }
}

impl fmt::Display for Failed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unable to exec {}: {}", printable(&self.prog.to_string_lossy()), self.errno.desc())
    }
}

impl std::error::Error for Failed {}

/// Replaces the process with `argv[0]` run with `argv`, the environment
/// unchanged except for `set` (`NAME`, value pairs). Returns only on
/// failure. An empty `argv` fails with ENOENT.
///
/// # References
/// execvp(3), execve(2)
pub fn exec(argv: &[OsString], set: &[(&str, &OsStr)]) -> Failed {
    let Some((prog, args)) = argv.split_first() else {
        return Failed { prog: OsString::new(), errno: Errno::ENOENT };
    };
    let mut cmd = Command::new(prog);
    cmd.args(args);
    for (name, value) in set {
        cmd.env(name, value);
    }
    let e = cmd.exec();
    // std reports a NUL byte inside an argument as InvalidInput without an
    // errno; execve(2) would have said EINVAL for such a string.
    let errno = e.raw_os_error().map_or(Errno::EINVAL, Errno::from_raw);
    Failed { prog: prog.clone(), errno }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_found_is_127_anything_else_126() {
        let f = exec(&["/nonexistent/hermes-s6-test".into()], &[]);
        assert_eq!((f.errno(), f.exit_code()), (Errno::ENOENT, 127));
        assert_eq!(f.to_string(), "unable to exec /nonexistent/hermes-s6-test: No such file or directory");
        let f = exec(&["hermes-s6-no-such-program-anywhere".into()], &[]);
        assert_eq!(f.exit_code(), 127, "PATH search");
        let f = exec(&["/".into()], &[]);
        assert_eq!((f.errno(), f.exit_code()), (Errno::EACCES, 126));
        assert_eq!(exec(&[], &[]).exit_code(), 127);
    }

    #[test]
    fn a_nul_byte_is_a_failure_not_a_panic() {
        use std::os::unix::ffi::OsStringExt;
        let f = exec(&[OsString::from_vec(b"/bin/t\0rue".to_vec())], &[]);
        assert_eq!(f.exit_code(), 126);
    }
}

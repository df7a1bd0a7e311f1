//! Messages on stderr and exit codes, in skarnet's conventions (doc/conventions.md#messages, #exit-codes).
//!
//! `prog: fatal: unable to <verb> <object>: <reason>`, `prog: warning: …`,
//! `prog: usage: …`. Only this module writes diagnostics. Text that may come
//! from the user's files goes through [`printable`] so it cannot forge lines
//! or send terminal escapes.

use std::borrow::Cow;
use std::fmt::Display;
use std::io::Write;
use std::process::ExitCode;

/// Exit codes shared by every tool.
pub mod exit {
    /// A negative answer or a partial failure.
    pub const NEGATIVE: u8 = 1;
    /// Configuration error, from run programs: the finish program parks the service.
    pub const CONFIG: u8 = 78;
    /// Timed out.
    pub const TIMEOUT: u8 = 99;
    /// Wrong usage, or permanently bad input.
    pub const USAGE: u8 = 100;
    /// Permanently bad input (same code as usage, as in s6).
    pub const PERMANENT: u8 = 100;
    /// The supervisor is not listening.
    pub const NOT_LISTENING: u8 = 102;
    /// A system call failed.
    pub const SYSTEM: u8 = 111;
    /// From finish programs only: permanent failure, do not restart.
    pub const FINISH_PERMANENT: u8 = 125;
    /// The next program could not be executed.
    pub const EXEC_FAILED: u8 = 126;
    /// The next program was not found.
    pub const EXEC_NOT_FOUND: u8 = 127;
}

fn emit(line: std::fmt::Arguments<'_>) {
    // A closed stderr must not turn a diagnostic into a crash.
    let _ = std::io::stderr().lock().write_fmt(line);
}

/// `prog: fatal: <what>`, returning `code` for `main` to exit with.
pub fn fatal(prog: &str, code: u8, what: impl Display) -> ExitCode {
    emit(format_args!("{prog}: fatal: {what}\n"));
    ExitCode::from(code)
}

/// `prog: warning: <what>`.
pub fn warn(prog: &str, what: impl Display) {
    emit(format_args!("{prog}: warning: {what}\n"));
}

/// `prog: info: <what>`.
pub fn info(prog: &str, what: impl Display) {
    emit(format_args!("{prog}: info: {what}\n"));
}

/// One line exactly as given (no `prog:` prefix), for lines whose wording
/// is fixed elsewhere and may be searched for in logs, such as upstream's
/// `[dashboard] …` warnings.
pub fn line(text: impl Display) {
    emit(format_args!("{text}\n"));
}

/// A usage error: an optional reason, then `prog: usage: <usage>`; exit 100.
pub fn usage(prog: &str, usage: &str, why: Option<&dyn Display>) -> ExitCode {
    if let Some(why) = why {
        emit(format_args!("{prog}: fatal: {why}\n"));
    }
    emit(format_args!("{prog}: usage: {usage}\n"));
    ExitCode::from(exit::USAGE)
}

/// The answer to `-h`: the usage line on stdout, exit 0.
pub fn help(usage: &str) -> ExitCode {
    let _ = writeln!(std::io::stdout().lock(), "usage: {usage}");
    ExitCode::SUCCESS
}

/// Text safe to print on one line: control characters and backslashes are
/// escaped (`\n`, `\t`, `\\`, `\xNN`); everything else is kept.
pub fn printable(s: &str) -> Cow<'_, str> {
    if !s.chars().any(|c| c.is_control() || c == '\\') {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_escapes_what_could_forge_a_line() {
        assert_eq!(printable("plain"), "plain");
        assert_eq!(printable("a\nb"), "a\\nb");
        assert_eq!(printable("\x1b[31m"), "\\x1b[31m");
        assert_eq!(printable("back\\slash"), "back\\\\slash");
    }
}

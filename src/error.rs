//! The library's error type: what was attempted, on which object, and why.
//!
//! Every error prints as `unable to <op> <object>: <reason>`, the shape of
//! skarnet's messages, and knows the exit code it stands for: 111 when a
//! system call failed (the situation may change), 100 when the input itself
//! is wrong (a symlink where a directory belongs, an unknown user).

use std::fmt;
use std::path::Path;

use nix::errno::Errno;

use crate::msg::{exit, printable};

/// Why an operation failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cause {
    /// A system call failed with this errno.
    Sys(Errno),
    /// The object is not what it must be; retrying will not help.
    Refused(String),
    /// A bound (depth, entries, size) was reached; the work was not done.
    Limit(String),
    /// What another program wrote cannot be decoded (a status file of an
    /// unknown size): a system failure to the reader, not bad input.
    Undecodable(String),
}

/// An operation that failed, with its object and cause.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    op: &'static str,
    object: String,
    cause: Cause,
    tag: Option<Tag>,
}

/// What a caller decides on, beyond the cause: set where the error is
/// made, so that no caller recognises an error by its text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tag {
    /// A directory could not be created.
    Mkdir,
    /// The object exists and may not be replaced.
    Exists,
}

/// The library's result.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// A failed system call: `op` is a verb phrase ("open", "chown").
    pub fn sys(op: &'static str, object: impl AsRef<Path>, errno: Errno) -> Error {
        Error { op, object: object.as_ref().display().to_string(), cause: Cause::Sys(errno), tag: None }
    }

    /// An object that is not acceptable as it is.
    pub fn refused(op: &'static str, object: impl AsRef<Path>, why: impl Into<String>) -> Error {
        Error { op, object: object.as_ref().display().to_string(), cause: Cause::Refused(why.into()), tag: None }
    }

    /// Data another program wrote that cannot be decoded.
    pub fn undecodable(op: &'static str, object: impl AsRef<Path>, why: impl Into<String>) -> Error {
        Error { op, object: object.as_ref().display().to_string(), cause: Cause::Undecodable(why.into()), tag: None }
    }

    /// A bound that was reached.
    pub fn limit(op: &'static str, object: impl AsRef<Path>, why: impl Into<String>) -> Error {
        Error { op, object: object.as_ref().display().to_string(), cause: Cause::Limit(why.into()), tag: None }
    }

    /// The same error, tagged for the callers that decide on it.
    pub fn tagged(self, tag: Tag) -> Error {
        Error { tag: Some(tag), ..self }
    }

    /// The tag set where the error was made, if any.
    pub fn tag(&self) -> Option<Tag> {
        self.tag
    }

    /// What was attempted (a verb phrase).
    pub fn op(&self) -> &'static str {
        self.op
    }

    /// On what (a path, a name).
    pub fn object(&self) -> &str {
        &self.object
    }

    /// Why it failed.
    pub fn cause(&self) -> &Cause {
        &self.cause
    }

    /// The errno, when a system call failed.
    pub fn errno(&self) -> Option<Errno> {
        match self.cause {
            Cause::Sys(e) => Some(e),
            _ => None,
        }
    }

    /// The exit code a tool uses when this error ends its run.
    pub fn exit_code(&self) -> u8 {
        match self.cause {
            Cause::Sys(_) | Cause::Limit(_) | Cause::Undecodable(_) => exit::SYSTEM,
            Cause::Refused(_) => exit::PERMANENT,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unable to {} {}: ", self.op, printable(&self.object))?;
        match &self.cause {
            Cause::Sys(e) => f.write_str(e.desc()),
            Cause::Refused(why) | Cause::Limit(why) | Cause::Undecodable(why) => f.write_str(&printable(why)),
        }
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_skarnet_shaped_without_os_error_noise() {
        let e = Error::sys("open", "/run/service/x", Errno::EACCES);
        assert_eq!(e.to_string(), "unable to open /run/service/x: Permission denied");
        assert_eq!(e.exit_code(), 111);
    }

    #[test]
    fn refusals_are_permanent() {
        let e = Error::refused("seed", "/s/event", "is a symlink");
        assert_eq!(e.to_string(), "unable to seed /s/event: is a symlink");
        assert_eq!(e.exit_code(), 100);
    }

    #[test]
    fn control_characters_in_objects_cannot_forge_lines() {
        let e = Error::refused("read", "a\nfake: line", "bad");
        assert_eq!(e.to_string(), "unable to read a\\nfake: line: bad");
    }
}

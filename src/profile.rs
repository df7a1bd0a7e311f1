//! Profile names: which directory names under `$HERMES_HOME/profiles/` may
//! become an s6 service slot.
//!
//! The rule is s6's (doc/design.md#profile-names): `^[a-z0-9][a-z0-9_-]*$`, at
//! most 251 bytes (s6-svscan's default `name_max` since 2.12), checked on the raw
//! bytes. Unlike Python's `re.match(…$)`, a trailing newline is refused.
//! A valid name is safe to use bare in a file name and in a shell script.
//!
//! The root profile (`$HERMES_HOME` itself) is called `default`; a
//! directory `profiles/default/` would collide with its slot.

use std::ffi::OsStr;
use std::fmt;
use std::path::Path;

use nix::errno::Errno;

use crate::error::Error;
use crate::fs::Dir;

/// Longest accepted name, in bytes.
pub const NAME_MAX: usize = 251;

/// The name of the root profile.
pub const ROOT: &str = "default";

/// A validated profile name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Profile(String);

/// Why a name is refused. The text never repeats the name itself: callers
/// show the (escaped) path next to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameError {
    /// The empty name.
    Empty,
    /// The length in bytes.
    TooLong(usize),
    /// A byte outside the alphabet, or a bad first byte.
    Invalid,
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NameError::Empty => f.write_str("profile name must not be empty"),
            NameError::TooLong(n) => write!(f, "profile name too long ({n} > {NAME_MAX} bytes)"),
            NameError::Invalid => f.write_str("profile name must match [a-z0-9][a-z0-9_-]*"),
        }
    }
}

impl std::error::Error for NameError {}

impl Profile {
    /// Checks `name` against the rule, in upstream's order: empty, length,
    /// alphabet.
    pub fn parse(name: &[u8]) -> Result<Profile, NameError> {
        let Some(&first) = name.first() else { return Err(NameError::Empty) };
        if name.len() > NAME_MAX {
            return Err(NameError::TooLong(name.len()));
        }
        let lead = first.is_ascii_lowercase() || first.is_ascii_digit();
        let rest = name.iter().all(|&b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        if !(lead && rest) {
            return Err(NameError::Invalid);
        }
        // Only ASCII bytes are left: always valid UTF-8.
        Ok(Profile(String::from_utf8_lossy(name).into_owned()))
    }

    /// The root profile, `default`.
    pub fn root() -> Profile {
        Profile(ROOT.to_string())
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// True for `default`, the profile that lives in `$HERMES_HOME` itself.
    pub fn is_root(&self) -> bool {
        self.0 == ROOT
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The directory of named profiles in the root home.
pub const PROFILES: &str = "profiles";

/// The root home, from the `$HERMES_HOME` of a hermes process: that may
/// be a named profile's own home (`<root>/profiles/<p>`, as `hermes -p
/// <p>` sets it), whose root is two levels up (upstream's rule).
fn root_home(hermes_home: &Path) -> &Path {
    match hermes_home.parent() {
        Some(parent) if parent.file_name() == Some(OsStr::new(PROFILES)) => parent.parent().unwrap_or(hermes_home),
        _ => hermes_home,
    }
}

/// Opens the home of `profile`: the root home for `default`, else
/// `<root>/profiles/<p>`, each step without following symlinks.
/// `Ok(None)` when it does not exist (nothing is created).
pub fn open_home(hermes_home: &Path, profile: &Profile) -> crate::Result<Option<Dir>> {
    let absent = |e: &Error| e.errno() == Some(Errno::ENOENT);
    let root = match Dir::open(root_home(hermes_home)) {
        Ok(d) => d,
        Err(e) if absent(&e) => return Ok(None),
        Err(e) => return Err(e),
    };
    if profile.is_root() {
        return Ok(Some(root));
    }
    match root.open_dir_if_present(OsStr::new(PROFILES))? {
        Some(profiles) => profiles.open_dir_if_present(OsStr::new(profile.as_str())),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_root_home_of_a_profile_home() {
        assert_eq!(root_home(Path::new("/opt/data")), Path::new("/opt/data"));
        assert_eq!(root_home(Path::new("/opt/data/profiles/coder")), Path::new("/opt/data"));
        assert_eq!(root_home(Path::new("/opt/data/profiles")), Path::new("/opt/data/profiles"));
        assert_eq!(root_home(Path::new("/x/notprofiles/coder")), Path::new("/x/notprofiles/coder"));
    }

    #[test]
    fn accepts_what_upstream_accepts() {
        for ok in ["coder", "my-profile", "assistant_v2", "a", "0", "0abc", "default"] {
            assert_eq!(Profile::parse(ok.as_bytes()).map(|p| p.to_string()), Ok(ok.to_string()), "{ok}");
        }
        assert!(Profile::parse("a".repeat(NAME_MAX).as_bytes()).is_ok());
    }

    #[test]
    fn refuses_what_upstream_refuses_and_a_trailing_newline() {
        assert_eq!(Profile::parse(b""), Err(NameError::Empty));
        assert_eq!(Profile::parse("a".repeat(252).as_bytes()), Err(NameError::TooLong(252)));
        for bad in [
            &b"Coder"[..],
            b"foo/bar",
            b"../escape",
            b"-leading-dash",
            b"_leading_underscore",
            b"name with spaces",
            b"name.with.dots",
            b"Bad.Name",
            b"UPPER",
            b"a\n",
            b"a\0",
            b"caf\xc3\xa9",
            b"\xff\xfe",
        ] {
            assert_eq!(Profile::parse(bad), Err(NameError::Invalid), "{bad:?}");
        }
    }

    #[test]
    fn messages_do_not_repeat_the_name() {
        assert_eq!(NameError::TooLong(300).to_string(), "profile name too long (300 > 251 bytes)");
        assert_eq!(NameError::Invalid.to_string(), "profile name must match [a-z0-9][a-z0-9_-]*");
    }
}

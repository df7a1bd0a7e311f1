//! Truthy values: the one spelling of "on" that upstream's shell scripts
//! accept for switches like `HERMES_DASHBOARD` and
//! `GATEWAY_MULTIPLEX_PROFILES` (`case $v in 1|true|TRUE|True|yes|YES|Yes)`).
//!
//! The match is exact: no trimming, no other case mixes, no `on`/`y`.
//! Anything else, an unset variable, an empty one, or one that is not
//! UTF-8, is false.

use std::ffi::OsStr;

/// Every value that counts as true.
pub const TRUTHY: [&str; 7] = ["1", "true", "TRUE", "True", "yes", "YES", "Yes"];

/// True when `value` is exactly one of [`TRUTHY`].
pub fn is_truthy(value: &OsStr) -> bool {
    value.to_str().is_some_and(|v| TRUTHY.contains(&v))
}

/// True when the environment variable `name` is set to a truthy value.
pub fn var_is_truthy(name: &str) -> bool {
    std::env::var_os(name).is_some_and(|v| is_truthy(&v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_seven_spellings_are_true() {
        for v in TRUTHY {
            assert!(is_truthy(OsStr::new(v)), "{v}");
        }
        let falsy = ["", "0", "false", "no", "on", "y", "tRUE", "YeS", " 1", "1 ", "yes\n", "true\r", "11", "\u{0}1"];
        for v in falsy {
            assert!(!is_truthy(OsStr::new(v)), "{v:?}");
        }
    }

    #[test]
    fn non_utf8_is_false() {
        use std::os::unix::ffi::OsStrExt;
        assert!(!is_truthy(OsStr::from_bytes(b"\xff1")));
    }
}

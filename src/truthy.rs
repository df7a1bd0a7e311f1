//! Truthy words (doc/conventions.md#truthy): one function per rule that
//! upstream reads a switch with. Each variable keeps its upstream reader's
//! rule, and the page of the tool that reads it names the rule:
//!
//! | rule | true | false | variables (upstream reader) |
//! |---|---|---|---|
//! | [`exact`] | exactly `1 true TRUE True yes YES Yes` | anything else | `HERMES_DASHBOARD`, `HERMES_DASHBOARD_INSECURE` (the dashboard's shell scripts: `case $v in 1\|true\|TRUE\|True\|yes\|YES\|Yes)`) |
//! | [`yes_or_no`] | `1 true yes on` | `0 false no off`; anything else is neither | `GATEWAY_MULTIPLEX_PROFILES` (hermes-agent's gateway configuration: `is_truthy_value`'s words, and a word that is neither leaves `multiplex_profiles` to `config.yaml`) |
//! | [`yes_any_case`] | `1 true yes` | anything else | `HERMES_GATEWAY_NO_SUPERVISE` (hermes-agent's container boot: `1\|true\|yes`, lowercased) |
//!
//! [`yes_or_no`] and [`yes_any_case`] ignore ASCII case and surrounding
//! blanks; [`exact`] ignores nothing. Under every rule an empty value, one
//! that is not UTF-8, or an unset variable is not true.

use std::ffi::OsStr;

/// Every value [`exact`] counts as true.
pub const EXACT: [&str; 7] = ["1", "true", "TRUE", "True", "yes", "YES", "Yes"];

/// The words `yes_or_no` reads as true (any case).
const YES: [&str; 4] = ["1", "true", "yes", "on"];

/// The words `yes_or_no` reads as false (any case).
const NO: [&str; 4] = ["0", "false", "no", "off"];

/// The words `yes_any_case` reads as true (any case).
const YES_ANY_CASE: [&str; 3] = ["1", "true", "yes"];

/// The dashboard's rule: `value` is exactly one of [`EXACT`] (no
/// trimming, no other case mix, no `on`).
pub fn exact(value: &OsStr) -> bool {
    value.to_str().is_some_and(|v| EXACT.contains(&v))
}

/// The gateway configuration's rule, a tri-state: `Some(true)` for `1
/// true yes on`, `Some(false)` for `0 false no off` (blanks trimmed, ASCII
/// case ignored), `None` for anything else (blank, `maybe`, `2`): the caller's
/// other source decides.
pub fn yes_or_no(value: &OsStr) -> Option<bool> {
    if one_of(value, &YES) {
        Some(true)
    } else if one_of(value, &NO) {
        Some(false)
    } else {
        None
    }
}

/// The container boot's rule: `value` is `1`, `true` or `yes` (blanks
/// trimmed, ASCII case ignored; `on` is not).
pub fn yes_any_case(value: &OsStr) -> bool {
    one_of(value, &YES_ANY_CASE)
}

fn one_of(value: &OsStr, words: &[&str]) -> bool {
    let Some(v) = value.to_str() else { return false };
    let v = v.trim();
    words.iter().any(|w| v.eq_ignore_ascii_case(w))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::ffi::OsStrExt;

    /// One row per value: what [`exact`], [`yes_or_no`] and
    /// [`yes_any_case`] make of it.
    const TABLE: &[(&str, bool, Option<bool>, bool)] = &[
        ("1", true, Some(true), true),
        ("true", true, Some(true), true),
        ("TRUE", true, Some(true), true),
        ("True", true, Some(true), true),
        ("yes", true, Some(true), true),
        ("YES", true, Some(true), true),
        ("Yes", true, Some(true), true),
        ("tRUE", false, Some(true), true),
        ("YeS", false, Some(true), true),
        (" 1", false, Some(true), true),
        ("1 ", false, Some(true), true),
        ("yes\n", false, Some(true), true),
        ("true\r", false, Some(true), true),
        ("\tTrue ", false, Some(true), true),
        ("on", false, Some(true), false),
        ("ON", false, Some(true), false),
        (" On ", false, Some(true), false),
        ("0", false, Some(false), false),
        ("false", false, Some(false), false),
        ("FALSE", false, Some(false), false),
        ("no", false, Some(false), false),
        ("No", false, Some(false), false),
        ("off", false, Some(false), false),
        (" OFF\n", false, Some(false), false),
        ("", false, None, false),
        ("  ", false, None, false),
        ("y", false, None, false),
        ("n", false, None, false),
        ("2", false, None, false),
        ("11", false, None, false),
        ("maybe", false, None, false),
        ("enabled", false, None, false),
        ("\u{0}1", false, None, false),
        ("1\u{0}", false, None, false),
        ("t rue", false, None, false),
    ];

    #[test]
    fn every_rule_on_the_table() {
        for &(v, is_exact, word, yes) in TABLE {
            let v = OsStr::new(v);
            assert_eq!(exact(v), is_exact, "exact({v:?})");
            assert_eq!(yes_or_no(v), word, "yes_or_no({v:?})");
            assert_eq!(yes_any_case(v), yes, "yes_any_case({v:?})");
        }
    }

    #[test]
    fn the_word_lists_are_the_table() {
        for v in EXACT {
            assert!(exact(OsStr::new(v)), "{v}");
        }
        for v in YES.iter().chain(&YES_ANY_CASE) {
            assert_eq!(yes_or_no(OsStr::new(&v.to_uppercase())), Some(true), "{v}");
        }
        for v in NO {
            assert_eq!(yes_or_no(OsStr::new(&v.to_uppercase())), Some(false), "{v}");
        }
    }

    #[test]
    fn non_utf8_is_never_true() {
        for v in [&b"\xff1"[..], b"1\xff", b"\xfftrue"] {
            let v = OsStr::from_bytes(v);
            assert!(!exact(v) && !yes_any_case(v));
            assert_eq!(yes_or_no(v), None);
        }
    }
}

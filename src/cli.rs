//! Command-line conventions shared by the tools (doc/conventions.md#options).
//!
//! POSIX short options parsed with `lexopt`; option parsing stops at the
//! first operand (no GNU permutation), so a chain-loader's argv tail is never
//! mistaken for its own options. Numbers are plain decimal.

use std::ffi::OsString;

pub use lexopt::{Arg, Error, Parser};

/// What a tool's `parse` found: arguments to run with, or `-h`.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed<A> {
    /// Run with these arguments.
    Run(A),
    /// `-h`: print the usage on stdout and exit 0.
    Help,
}

/// `argv` for a tool's `parse` in tests: the program name, then `args`.
pub fn argv(prog: &str, args: &[&str]) -> Vec<OsString> {
    std::iter::once(prog).chain(args.iter().copied()).map(OsString::from).collect()
}

/// A parser over `argv` without the program name, skarnet-style:
/// `-u hermes` and `-uhermes` both work, `-u=hermes` does not.
pub fn parser(argv: impl IntoIterator<Item = OsString>) -> Parser {
    let mut args = argv.into_iter();
    args.next();
    let mut p = Parser::from_args(args);
    p.set_short_equals(false);
    p
}

/// The first operand and everything after it, untouched.
pub fn rest(first: OsString, p: &mut Parser) -> Result<Vec<OsString>, Error> {
    let mut all = vec![first];
    all.extend(p.raw_args()?);
    Ok(all)
}

/// A whole-word decimal number.
pub fn number<T: std::str::FromStr>(value: OsString, what: &str) -> Result<T, Error> {
    let s = value.into_string().map_err(|v| Error::from(format!("invalid {what}: {}", v.to_string_lossy())))?;
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("invalid {what}: {s}").into());
    }
    s.parse().map_err(|_| format!("invalid {what}: {s}").into())
}

/// A value that must be valid UTF-8.
pub fn string(value: OsString, what: &str) -> Result<String, Error> {
    value.into_string().map_err(|v| format!("invalid {what}: {}", v.to_string_lossy()).into())
}

/// Whether the command line asks for JSON: some option word before `--`
/// holds `-j` (doc/conventions.md#json). Read without parsing, so that a
/// usage error anywhere still answers as JSON. `with_value`: the letters
/// that take a value, whose value (the rest of the word, or the next
/// word) is skipped, so `-s/j` is not `-j`.
pub fn asks_for_json(argv: &[OsString], with_value: &str) -> bool {
    let mut words = argv.iter().skip(1).map(|a| a.as_encoded_bytes());
    while let Some(word) = words.next() {
        if word == b"--" {
            break;
        }
        let Some(letters) = word.strip_prefix(b"-").filter(|l| !l.is_empty() && l[0] != b'-') else {
            continue; // an operand, or a long option (refused anyway)
        };
        for (i, letter) in letters.iter().enumerate() {
            if *letter == b'j' {
                return true;
            }
            if with_value.as_bytes().contains(letter) {
                if i + 1 == letters.len() {
                    words.next();
                }
                break;
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_asked_for_by_any_option_word_before_the_end_of_options() {
        for (args, json) in [
            (&["-j", "-x"][..], true),
            (&["-x", "-j"], true),
            (&["-nj", "x"], true),
            (&["-jx"], true),
            (&["register", "p", "-dj"], true),
            (&["-s", "-j", "x"], false),
            (&["-s/j", "x"], false),
            (&["-ns", "/j"], false),
            (&["-n", "--", "-j"], false),
            (&["--json"], false),
            (&["j", "-"], false),
        ] {
            assert_eq!(asks_for_json(&super::argv("tool", args), "sHtu"), json, "{args:?}");
        }
    }

    fn argv(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn options_stop_at_the_first_operand() {
        let mut p = parser(argv(&["prog", "-v", "dir", "-u", "x"]));
        assert_eq!(p.next().unwrap(), Some(Arg::Short('v')));
        let Some(Arg::Value(first)) = p.next().unwrap() else { panic!() };
        assert_eq!(rest(first, &mut p).unwrap(), argv(&["dir", "-u", "x"]));
    }

    #[test]
    fn numbers_must_be_whole_decimal_words() {
        assert_eq!(number::<u32>("5000".into(), "timeout").unwrap(), 5000);
        for bad in ["", "5s", "-1", "1e3", " 5", "99999999999999999999999"] {
            assert!(number::<u32>(bad.into(), "timeout").is_err(), "{bad:?}");
        }
    }
}

//! The deterministic gateway port of a profile: the allocator of the
//! original s6 design (doc/design.md#port, retired upstream), kept so
//! that a profile's gateway can be given a port that no other profile
//! name is likely to share, without any state.
//!
//! Formula: the SHA-256 digest of the profile name's bytes, read as one
//! 256-bit big-endian unsigned integer, modulo 600, plus 9200. In Python:
//! `int(hashlib.sha256(name.encode()).hexdigest(), 16) % 600 + 9200`.
//! The range is [9200, 9800). Different names may share a port (600
//! slots): it is a default, not a reservation.

use sha2::{Digest, Sha256};

use crate::profile::Profile;

/// The first port of the range.
const BASE: u16 = 9200;
/// How many ports the range holds.
const SPAN: u16 = 600;

/// The port of `profile`, in [`BASE`, `BASE + SPAN`).
pub fn port(profile: &Profile) -> u16 {
    let digest = Sha256::digest(profile.as_str().as_bytes());
    // The whole digest modulo 600, one byte at a time (Horner's rule).
    let rem = digest.iter().fold(0u32, |r, &b| (r * 256 + u32::from(b)) % u32::from(SPAN));
    BASE + rem as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(name: &str) -> Profile {
        Profile::parse(name.as_bytes()).unwrap()
    }

    /// doc/design.md#port: stable, in range, spread.
    #[test]
    fn the_allocators_properties() {
        assert_eq!(port(&p("coder")), port(&p("coder")));
        for name in ["a", "b", "coder", "assistant", "very-long-profile-name-here"] {
            assert!((9200..9800).contains(&port(&p(name))), "{name}");
        }
        let distinct: std::collections::HashSet<u16> = (0..100).map(|i| port(&p(&format!("profile-{i}")))).collect();
        assert!(distinct.len() >= 60, "{}", distinct.len());
    }

    /// Values from Python's `int(sha256(name).hexdigest(), 16) % 600 + 9200`.
    #[test]
    fn the_documented_formula() {
        for (name, want) in
            [("a", 9699), ("b", 9565), ("coder", 9530), ("assistant", 9762), ("very-long-profile-name-here", 9462), ("default", 9495)]
        {
            assert_eq!(port(&p(name)), want, "{name}");
        }
    }
}

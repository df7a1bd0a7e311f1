//! The names a slot takes in the scan directory: `gateway-<profile>`
//! while it is scanned; dot-names that s6-svscan skips while it is built
//! (`.gateway-<profile>.tmp`), locked (`.gateway-<profile>.lck`), moved
//! aside (`….tmp.stale-<ns>`) or on its way out (`….tmp.gone-<n>`); and
//! the profiles a scan directory holds slots for.

use std::ffi::OsString;

use crate::error::Result;
use crate::fs::{Dir, Kind};
use crate::profile::Profile;

/// Prefix of every slot name.
pub const PREFIX: &str = "gateway-";
/// Prefix of staging directories (and of what is moved aside).
pub const STAGING_PREFIX: &str = ".gateway-";
/// Suffix of staging directories.
pub const STAGING_SUFFIX: &str = ".tmp";
/// Infix of a leftover staging directory renamed aside.
pub const ASIDE_INFIX: &str = ".tmp.stale-";
/// Infix of a slot taken out of the scan to be removed (`hermes-slot
/// unregister`).
pub const GONE_INFIX: &str = ".tmp.gone-";
/// Suffix of the file `hermes-slot` locks while it changes a profile's
/// slot (the same length as [`STAGING_SUFFIX`], so it fits wherever the
/// staging name does).
pub const LOCK_SUFFIX: &str = ".lck";
/// The longest profile name that gets a slot: its staging name must fit
/// in a file name (255 bytes); its slot name then fits s6-svscan's
/// default `name_max` (251, since 2.12) too.
pub const PROFILE_MAX: usize = 255 - STAGING_PREFIX.len() - STAGING_SUFFIX.len();

/// `gateway-<profile>`.
pub fn name(profile: &Profile) -> String {
    format!("{PREFIX}{profile}")
}

/// `.gateway-<profile>.tmp`.
pub fn staging_name(profile: &Profile) -> String {
    format!("{STAGING_PREFIX}{profile}{STAGING_SUFFIX}")
}

/// `.gateway-<profile>.lck`.
pub fn lock_name(profile: &Profile) -> String {
    format!("{STAGING_PREFIX}{profile}{LOCK_SUFFIX}")
}

/// Whether a scan-directory entry is a staging directory or one moved
/// aside, whatever its profile.
pub fn is_staging_name(name: &[u8]) -> bool {
    name.starts_with(STAGING_PREFIX.as_bytes()) && (name.ends_with(STAGING_SUFFIX.as_bytes()) || is_aside(name))
}

/// Whether a name is a tree moved aside to be removed: a leftover staging
/// directory, or a slot being unregistered.
pub(super) fn is_aside(name: &[u8]) -> bool {
    [ASIDE_INFIX, GONE_INFIX].iter().any(|infix| name.windows(infix.len()).any(|w| w == infix.as_bytes()))
}

/// `.gateway-<profile>.tmp.gone-`: the names a slot takes when it leaves
/// the scan to be removed (s6-svscan skips them; the boot's sweeps of
/// leftovers remove them).
pub fn gone_prefix(profile: &Profile) -> String {
    format!("{STAGING_PREFIX}{profile}{GONE_INFIX}")
}

/// `.gateway-<profile>.tmp.gone-<n>`.
pub fn gone_name(profile: &Profile, n: u128) -> OsString {
    OsString::from(format!("{}{n}", gone_prefix(profile)))
}

/// The profiles registered in `scandir`: its `gateway-<p>` directories
/// (not symlinks, not dot-names) whose `<p>` is a valid profile name,
/// sorted.
pub fn registered(scandir: &Dir) -> Result<Vec<Profile>> {
    // s6-svscan supervises at most 160,000 services and loggers (-C's
    // ceiling; 1000 by default since 2.12).
    let mut out = Vec::new();
    for (name, kind) in scandir.entries_typed(200_000)? {
        let Some(p) = name.as_encoded_bytes().strip_prefix(PREFIX.as_bytes()) else { continue };
        let kind = match kind {
            Some(k) => Some(k),
            None => scandir.stat_at(&name)?.map(|st| st.kind),
        };
        if kind == Some(Kind::Dir)
            && let Ok(profile) = Profile::parse(p)
        {
            out.push(profile);
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(name: &str) -> Profile {
        Profile::parse(name.as_bytes()).unwrap()
    }

    #[test]
    fn names() {
        assert_eq!(name(&p("coder")), "gateway-coder");
        assert_eq!(staging_name(&p("coder")), ".gateway-coder.tmp");
        assert_eq!(lock_name(&p("coder")), ".gateway-coder.lck");
        assert!(!is_staging_name(b".gateway-coder.lck"), "never swept as a leftover");
        assert!(!crate::scandir::is_leftover(std::ffi::OsStr::new(".gateway-coder.lck")));
        assert!(is_staging_name(b".gateway-coder.tmp"));
        assert!(is_staging_name(b".gateway-coder.tmp.stale-123"));
        assert!(!is_staging_name(b"gateway-coder"));
        assert!(!is_staging_name(b".gateway-coder"));
        assert!(!is_staging_name(b".s6-svscan"));
        assert_eq!(gone_name(&p("coder"), 7), ".gateway-coder.tmp.gone-7");
        assert!(is_staging_name(gone_name(&p("coder"), 7).as_encoded_bytes()));
        assert!(crate::scandir::is_leftover(&gone_name(&p("coder"), 7)), "swept by hermes-svscan-perms too");
    }
}

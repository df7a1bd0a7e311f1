//! Which boot rule the reconcile follows (`HERMES_S6_BOOT_POLICY`), and
//! the pieces of each rule that do not touch the filesystem.
//!
//! * `per-profile` (the default; hermes-agent up to the R-3 reconciler):
//!   every profile starts from its own intent; named profiles never
//!   autostart when `multiplex_profiles` is on. That switch comes from
//!   `GATEWAY_MULTIPLEX_PROFILES` when it is a recognised boolean word
//!   ([`crate::truthy::yes_or_no`]), else from the root's `config.yaml`.
//! * `multiplex` (hermes-agent's R-4, "one gateway per container"):
//!   every named profile is registered down unless its own `config.yaml`
//!   says `gateway: {standalone: true}`; the root slot is started when its
//!   own intent, or the intent of any non-standalone named profile, is
//!   `running` ("folded into root", [`Named::folds`]).

use std::fmt;

/// The environment variable that picks the rule.
pub const VAR: &str = "HERMES_S6_BOOT_POLICY";

/// A boot rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Policy {
    /// Each profile from its own intent (the default).
    #[default]
    PerProfile,
    /// One multiplexing root gateway; named profiles fold into it.
    Multiplex,
}

impl Policy {
    /// The policy's name, as `HERMES_S6_BOOT_POLICY` spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Policy::PerProfile => "per-profile",
            Policy::Multiplex => "multiplex",
        }
    }

    /// The value of [`VAR`]: unset or empty is the default; anything but
    /// the two names (exactly, after trimming blanks) is refused.
    pub fn from_env_value(value: Option<&str>) -> Result<Policy, UnknownPolicy> {
        match value.map(str::trim) {
            None | Some("") => Ok(Policy::default()),
            Some("per-profile") => Ok(Policy::PerProfile),
            Some("multiplex") => Ok(Policy::Multiplex),
            Some(_) => Err(UnknownPolicy),
        }
    }
}

/// A [`VAR`] value that names no rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnknownPolicy;

impl fmt::Display for UnknownPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{VAR} must be per-profile or multiplex")
    }
}

/// The per-profile rule's `multiplex_profiles`: the environment's word
/// when recognised, else the configuration's value, else off.
pub fn multiplex_profiles(env: Option<bool>, config: Option<bool>) -> bool {
    env.or(config).unwrap_or(false)
}

/// One named profile as the multiplex rule sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Named {
    /// Its intent is exactly `running`.
    pub running: bool,
    /// `gateway.standalone` in its own `config.yaml`.
    pub standalone: bool,
}

impl Named {
    /// Whether its own slot starts.
    pub fn starts(self) -> bool {
        self.standalone && self.running
    }

    /// Whether it asked to run and the root gateway serves it instead.
    pub fn folds(self) -> bool {
        !self.standalone && self.running
    }
}

/// Whether the root slot starts under the multiplex rule: its own intent
/// is `running`, or some named profile folds into it. A parked root
/// (`hermes-slot park default`) never starts by folding.
pub fn root_starts(root_running: bool, root_parked: bool, any_folded: bool) -> bool {
    root_running || (any_folded && !root_parked)
}

/// The notice printed (and warned) before the per-slot lines when named
/// profiles were folded into the root slot (upstream's wording).
pub fn notice(folded: &[&str]) -> String {
    format!(
        "reconcile: profile gateway(s) {} asked to autostart; one gateway per container serves every non-standalone profile, \
         so the ROOT slot (gateway-default) was started instead and multiplexes them.",
        folded.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_variable() {
        assert_eq!(Policy::from_env_value(None), Ok(Policy::PerProfile));
        assert_eq!(Policy::from_env_value(Some("")), Ok(Policy::PerProfile));
        assert_eq!(Policy::from_env_value(Some(" multiplex\n")), Ok(Policy::Multiplex));
        assert_eq!(Policy::from_env_value(Some("per-profile")), Ok(Policy::PerProfile));
        for bad in ["Multiplex", "per_profile", "yes", "multiplexed"] {
            assert_eq!(Policy::from_env_value(Some(bad)), Err(UnknownPolicy), "{bad}");
        }
    }

    #[test]
    fn the_environment_overrides_only_with_a_boolean_word() {
        let env = |v: &str| crate::truthy::yes_or_no(std::ffi::OsStr::new(v));
        // config true, no env: on. env false, config true: off. env maybe, config true: on.
        assert!(multiplex_profiles(None, Some(true)));
        assert!(!multiplex_profiles(env(" off "), Some(true)));
        assert!(multiplex_profiles(env("maybe"), Some(true)));
        assert!(multiplex_profiles(env(""), Some(true)));
        assert!(multiplex_profiles(env("TRUE"), Some(false)));
        assert!(!multiplex_profiles(None, None));
    }

    #[test]
    fn folding() {
        let coder = Named { running: true, standalone: false };
        let solo = Named { running: true, standalone: true };
        let idle = Named { running: false, standalone: false };
        assert!(coder.folds() && !coder.starts());
        assert!(solo.starts() && !solo.folds());
        assert!(!idle.starts() && !idle.folds());
        assert!(root_starts(true, false, false));
        assert!(root_starts(false, false, true));
        assert!(!root_starts(false, true, true), "a parked root is not started by folding");
        assert!(!root_starts(false, false, false));
    }

    #[test]
    fn the_notice_is_upstreams() {
        assert_eq!(
            notice(&["a", "b"]),
            "reconcile: profile gateway(s) a, b asked to autostart; one gateway per container serves every non-standalone profile, \
             so the ROOT slot (gateway-default) was started instead and multiplexes them."
        );
    }
}

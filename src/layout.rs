//! The image's layout: the default paths every tool shares, and how a tool
//! picks its `$HERMES_HOME` and gateway scan directory from its flags and
//! the environment (flags win, then the environment, then the image).

use std::path::{Path, PathBuf};

/// `HERMES_HOME` when neither `-H` nor the environment gives one; also the
/// user's home and the gateways' working directory.
pub const DEFAULT_HOME: &str = "/opt/data";
/// The isolated topology's scan directory, watched by the user's s6-svscan.
pub const USER_SCANDIR: &str = "/run/hermes/service";
/// The shared topology's scan directory (s6-overlay's own).
pub const ROOT_SCANDIR: &str = "/run/service";
/// Where s6-rc-init leaves the static services' live directories.
pub const SERVICEDIRS: &str = "/run/s6-rc/servicedirs";

/// A non-empty environment variable, as a path.
fn env_path(name: &str) -> Option<PathBuf> {
    std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from)
}

/// `-H`, else `HERMES_HOME`, else [`DEFAULT_HOME`].
pub fn hermes_home(flag: Option<PathBuf>) -> PathBuf {
    flag.or_else(|| env_path("HERMES_HOME")).unwrap_or_else(|| PathBuf::from(DEFAULT_HOME))
}

/// `-s`, else `S6_PROFILE_GATEWAY_SCANDIR`, else [`USER_SCANDIR`] when it
/// exists (the isolated topology), else [`ROOT_SCANDIR`].
pub fn gateway_scandir(flag: Option<PathBuf>) -> PathBuf {
    choose_scandir(flag, env_path("S6_PROFILE_GATEWAY_SCANDIR"), Path::new(USER_SCANDIR).is_dir())
}

fn choose_scandir(flag: Option<PathBuf>, env: Option<PathBuf>, user_scandir_exists: bool) -> PathBuf {
    flag.or(env).unwrap_or_else(|| PathBuf::from(if user_scandir_exists { USER_SCANDIR } else { ROOT_SCANDIR }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scan_directory_is_the_flag_then_the_environment_then_the_topology() {
        assert_eq!(choose_scandir(Some("/f".into()), Some("/e".into()), true), PathBuf::from("/f"), "the flag wins");
        assert_eq!(choose_scandir(None, Some("/e".into()), true), PathBuf::from("/e"), "then the environment");
        assert_eq!(choose_scandir(None, None, true), PathBuf::from(USER_SCANDIR));
        assert_eq!(choose_scandir(None, None, false), PathBuf::from(ROOT_SCANDIR));
    }
}

//! What the real s6-overlay boot needs that a container may lack: the
//! conditions that left gateways unsupervised or uncontrollable in real
//! containers (doc/design.md#s6-overlay-boot), each found by looking, never by
//! changing anything. `hermes-svscan-perms -n` prints them, one line each.
//!
//! Everything here is read from the running container: the s6-overlay
//! version (`/package/admin/s6-overlay` → `s6-overlay-X.Y.Z.W`), the bundle
//! directories under `/etc/s6-overlay`, the stored container environment
//! (`/run/s6/container_environment`, the values stage 2 reads), PID 1's
//! uid, `profile-gateways`' status, the scan directories' entries and the
//! `PATH` of the calling process (a `docker exec` gets the image's).

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::fs::Dir;
use crate::layout;
use crate::s6;

/// Where s6-overlay keeps what the boot needs (the real paths).
pub struct Paths {
    /// s6-overlay's package link (`/package/admin/s6-overlay`).
    pub overlay_link: PathBuf,
    /// s6-overlay's own `/etc` tree (`/etc/s6-overlay`).
    pub etc: PathBuf,
    /// Where stage 2 saves the container's environment (`with-contenv`).
    pub container_env: PathBuf,
    /// s6-rc's live service directories.
    pub servicedirs: PathBuf,
    /// PID 1's `status` file in /proc (who runs the container).
    pub pid1_status: PathBuf,
    /// The scan directories the boot may use.
    pub scandirs: Vec<PathBuf>,
}

impl Default for Paths {
    fn default() -> Paths {
        Paths {
            overlay_link: "/package/admin/s6-overlay".into(),
            etc: "/etc/s6-overlay".into(),
            container_env: "/run/s6/container_environment".into(),
            servicedirs: layout::SERVICEDIRS.into(),
            pid1_status: "/proc/1/status".into(),
            scandirs: vec![layout::ROOT_SCANDIR.into(), layout::USER_SCANDIR.into()],
        }
    }
}

/// The image's own services of the `user` bundle.
const OUR_SERVICES: [&str; 2] = ["dashboard", "profile-gateways"];
/// What stage 2 reads when `S6_RUNTIME_BUNDLEDIR` is unset.
const DEFAULT_BUNDLEDIR: &str = "/etc/s6-overlay/user-bundles.d";
/// Values stored in the container environment are small; more is not one.
const ENV_VALUE_CAP: u64 = 64 * 1024;
/// s6-overlay's `S6_KILL_GRACETIME` when unset (ms).
const DEFAULT_KILL_GRACETIME_MS: u64 = 3000;
/// Entries of a scan directory looked at, at most.
const SCANDIR_MAX: usize = 200_000;

/// Every condition present, one line each (no trailing newline), in a
/// fixed order. `path` is the calling process's `PATH`.
pub fn conditions(paths: &Paths, path: Option<&OsStr>) -> Vec<String> {
    let mut out = Vec::new();
    bundles(paths, &mut out);
    topology(paths, &mut out);
    profile_gateways(paths, &mut out);
    non_root(paths, &mut out);
    s6_tools_on_path(path, &mut out);
    scandir_entries(paths, &mut out);
    grace_times(paths, &mut out);
    out
}

/// `s6-overlay-3.2.3.0` → `[3, 2, 3, 0]`.
fn parse_version(link: &[u8]) -> Option<[u32; 4]> {
    let v = std::str::from_utf8(link.strip_prefix(b"s6-overlay-")?).ok()?;
    let mut parts = v.split('.').map(|p| p.parse::<u32>().ok());
    let version = [parts.next()??, parts.next()??, parts.next()??, parts.next()??];
    parts.next().is_none().then_some(version)
}

/// The `user` bundle's membership directory that s6-overlay `version`
/// reads: before 3.2.3.1 only `s6-rc.d/user/contents.d`; from 3.2.3.1 on
/// that one too when `s6-rc.d/user` exists, else `bundledir/user/contents.d`.
fn membership_dir_read(version: [u32; 4], etc: &Path, bundledir: &Path) -> PathBuf {
    let legacy = etc.join("s6-rc.d/user");
    if version < [3, 2, 3, 1] || legacy.exists() { legacy.join("contents.d") } else { bundledir.join("user/contents.d") }
}

fn version_string(v: [u32; 4]) -> String {
    format!("{}.{}.{}.{}", v[0], v[1], v[2], v[3])
}

/// A variable as stage 2 sees it: stored value, one trailing newline off.
fn container_env(paths: &Paths, name: &str) -> Option<String> {
    let dir = Dir::open(&paths.container_env).ok()?;
    let mut v = dir.read_file(OsStr::new(name), ENV_VALUE_CAP).ok()??;
    if v.last() == Some(&b'\n') {
        v.pop();
    }
    Some(String::from_utf8_lossy(&v).into_owned())
}

fn bundles(paths: &Paths, out: &mut Vec<String>) {
    let Ok(link) = std::fs::read_link(&paths.overlay_link) else { return };
    let Some(version) = parse_version(link.as_os_str().as_bytes()) else { return };
    let bundledir = container_env(paths, "S6_RUNTIME_BUNDLEDIR").filter(|v| !v.is_empty()).unwrap_or(DEFAULT_BUNDLEDIR.into());
    let read = membership_dir_read(version, &paths.etc, Path::new(&bundledir));
    let others = [paths.etc.join("s6-rc.d/user/contents.d"), Path::new(&bundledir).join("user/contents.d")];
    for name in OUR_SERVICES {
        if !paths.etc.join("s6-rc.d").join(name).join("type").exists() || read.join(name).exists() {
            continue;
        }
        let v = version_string(version);
        match others.iter().find(|d| **d != read && d.join(name).exists()) {
            Some(other) => out.push(format!(
                "condition: {name} is listed in {}, which s6-overlay {v} does not read here: it never starts (list it in {} too)",
                other.display(),
                read.display()
            )),
            None => out.push(format!("condition: {name} is in no user bundle s6-overlay {v} reads ({}): it never starts", read.display())),
        }
    }
}

fn topology(paths: &Paths, out: &mut Vec<String>) {
    if let Some(t) = container_env(paths, "HERMES_S6_TOPOLOGY")
        && t != "isolated"
        && t != "shared"
    {
        out.push(format!("condition: HERMES_S6_TOPOLOGY={t} is not a topology (isolated or shared): no gateway is supervised"));
    }
}

fn profile_gateways(paths: &Paths, out: &mut Vec<String>) {
    let name = OsStr::new("profile-gateways");
    let Ok(set) = Dir::open(&paths.servicedirs) else { return };
    let Ok(Some(svc)) = set.open_dir_if_present(name) else { return };
    let state = match (s6::status::supervised(&svc), s6::status::read(&svc)) {
        (Ok(false), _) => Some("not supervised".to_string()),
        (Ok(true), Ok(Some(st))) if !st.is_up() => Some("down".to_string()),
        (Ok(true), Ok(Some(st))) if svc.stat_at(OsStr::new("notification-fd")).ok().flatten().is_some() && !st.is_ready() => {
            Some("up but not ready".to_string())
        }
        (Ok(true), Ok(Some(_))) => None,
        (Ok(true), Ok(None)) => Some("without a status yet".to_string()),
        (Err(e), _) | (_, Err(e)) => Some(format!("unreadable ({e})")),
    };
    if let Some(state) = state {
        out.push(format!(
            "condition: profile-gateways is {state}: its gateways are not supervised (isolated), or s6-overlay never rescanned /run/service (shared)"
        ));
    }
}

/// PID 1's real uid, from `/proc/1/status`.
fn pid1_uid(status: &Path) -> Option<u32> {
    let text = std::fs::read_to_string(status).ok()?;
    let line = text.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn non_root(paths: &Paths, out: &mut Vec<String>) {
    if let Some(uid) = pid1_uid(&paths.pid1_status)
        && uid != 0
    {
        out.push(format!(
            "condition: the container runs as uid {uid} (docker run --user): the boot skips what needs root (no s6-setuidgid, no permission grants), and gateways run as uid {uid}"
        ));
    }
}

/// `docker exec` finds the s6 tools by name through `/command` on the
/// image's PATH, or through s6-overlay's symlinks tarball
/// (`/usr/bin/s6-svstat` → `/command/s6-svstat`, as hermes-agent's image
/// has it): either will do.
fn s6_tools_on_path(path: Option<&OsStr>, out: &mut Vec<String>) {
    let path = path.unwrap_or_default();
    let mut dirs = path.as_bytes().split(|b| *b == b':').filter(|d| d.starts_with(b"/"));
    let found = dirs.any(|d| {
        d == b"/command"
            || d == b"/command/"
            || std::fs::metadata(Path::new(OsStr::from_bytes(d)).join("s6-svstat"))
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    });
    if !found {
        out.push(format!(
            "condition: /command is not on PATH ({}): s6-svstat, s6-svc and the other s6 tools are not found by name in docker exec",
            path.to_string_lossy()
        ));
    }
}

fn scandir_entries(paths: &Paths, out: &mut Vec<String>) {
    for scandir in &paths.scandirs {
        let Ok(dir) = Dir::open(scandir) else { continue };
        let Ok(names) = dir.entries(SCANDIR_MAX) else { continue };
        let mut names: Vec<OsString> = names.into_iter().filter(|n| !n.as_bytes().starts_with(b".")).collect();
        names.sort();
        for n in names {
            match dir.exists_following(&n) {
                Ok(true) => {}
                Ok(false) => out.push(format!(
                    "condition: {}: s6-svscan cannot stat it (a dangling symlink?): s6-svscan 2.12 and later abandon every scan while it is there",
                    dir.child_path(&n).display()
                )),
                Err(e) => out.push(format!("condition: {}: s6-svscan cannot stat it ({e})", dir.child_path(&n).display())),
            }
        }
    }
}

/// Known only when the operator says how long the gateways need to shut
/// down (`HERMES_GATEWAY_STOP_MS` in the container environment). Only the
/// shared topology has an s6-side bound: its gateways are outside s6-rc and
/// get `S6_KILL_GRACETIME` at the end. Isolated gateways go down with
/// profile-gateways, without a limit: only docker's stop timeout, which
/// the container cannot see, bounds them.
fn grace_times(paths: &Paths, out: &mut Vec<String>) {
    let Some(need) = container_env(paths, "HERMES_GATEWAY_STOP_MS").and_then(|v| v.parse::<u64>().ok()) else { return };
    if container_env(paths, "HERMES_S6_TOPOLOGY").as_deref() != Some("shared") {
        return;
    }
    let grace = container_env(paths, "S6_KILL_GRACETIME").and_then(|v| v.parse::<u64>().ok()).unwrap_or(DEFAULT_KILL_GRACETIME_MS);
    if grace < need {
        out.push(format!(
            "condition: S6_KILL_GRACETIME={grace} ms is shorter than the {need} ms the gateways need (HERMES_GATEWAY_STOP_MS): docker stop SIGKILLs them mid-shutdown (raise it, and docker's stop timeout above it)"
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_four_numbers_after_the_prefix() {
        assert_eq!(parse_version(b"s6-overlay-3.2.3.0"), Some([3, 2, 3, 0]));
        assert_eq!(parse_version(b"s6-overlay-3.2.10.1"), Some([3, 2, 10, 1]));
        for bad in [&b"s6-overlay-3.2.3"[..], b"3.2.3.0", b"s6-overlay-3.2.3.0.1", b"s6-overlay-3.x.3.0", b"s6-overlay-"] {
            assert_eq!(parse_version(bad), None, "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn the_membership_directory_follows_the_version_and_the_legacy_bundle() {
        let tmp = std::env::temp_dir().join(format!("hermes-boot-check-{}", std::process::id()));
        let etc = tmp.join("etc");
        std::fs::create_dir_all(&etc).unwrap();
        let bundles = Path::new("/b");
        let legacy = etc.join("s6-rc.d/user/contents.d");
        assert_eq!(membership_dir_read([3, 2, 3, 0], &etc, bundles), legacy);
        assert_eq!(membership_dir_read([3, 2, 3, 2], &etc, bundles), bundles.join("user/contents.d"));
        std::fs::create_dir_all(etc.join("s6-rc.d/user")).unwrap();
        assert_eq!(membership_dir_read([3, 2, 3, 2], &etc, bundles), legacy);
        std::fs::remove_dir_all(&tmp).unwrap();
    }

    #[test]
    fn path_without_command_or_s6_svstat_is_a_condition() {
        let tmp = std::env::temp_dir().join(format!("hermes-boot-check-path-{}", std::process::id()));
        let (with, without) = (tmp.join("with"), tmp.join("without"));
        std::fs::create_dir_all(&with).unwrap();
        std::fs::create_dir_all(&without).unwrap();
        std::fs::write(with.join("s6-svstat"), "").unwrap();
        std::fs::set_permissions(with.join("s6-svstat"), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(without.join("s6-svstat"), "").unwrap(); // not executable
        let mut out = Vec::new();
        s6_tools_on_path(Some(OsStr::new("/nowhere:/command")), &mut out);
        s6_tools_on_path(Some(OsStr::new("/command/:/nowhere")), &mut out);
        s6_tools_on_path(Some(OsStr::new(&format!("/nowhere:{}", with.display()))), &mut out);
        assert!(out.is_empty(), "{out:?}");
        s6_tools_on_path(Some(OsStr::new(&format!("/nowhere:/commands:{}", without.display()))), &mut out);
        s6_tools_on_path(None, &mut out);
        std::fs::remove_dir_all(&tmp).unwrap();
        assert_eq!(out.len(), 2, "{out:?}");
        assert!(out[0].starts_with("condition: /command is not on PATH (/nowhere:/commands:"), "{}", out[0]);
    }
}

//! A slot's content, rendered: its files (`type`, `run`, `finish`,
//! `log/run`, `down` when it must not start) and their digest.
//!
//! The content digest is SHA-256 over those files (path, mode, length,
//! bytes). An existing slot whose files hash to the rendered digest is left
//! untouched; nothing extra is stored in the slot (the live files are
//! hashed again instead, so a slot edited by hand is noticed too).

use std::borrow::Cow;

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::s6;

/// Whether the gateway starts when its supervisor does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// No `down` file: s6-supervise starts it at once.
    Up,
    /// A `down` file: it waits for `s6-svc -u`.
    Down,
}

/// The account the scripts drop to when their supervisor runs as root,
/// as `s6-setuidgid` takes it: a login name, or `UID:GID`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunAs(String);

impl RunAs {
    /// From the tools' `-u` value: a name (letters, digits, `._-`, not
    /// starting with `-`), or `:UID:GID`, which s6-setuidgid spells
    /// `UID:GID`. Anything else could not be written into a script safely.
    pub fn new(spec: &str) -> Result<RunAs> {
        let bad = || Error::refused("use account", std::path::Path::new(spec), "expected a login name or :UID:GID");
        if let Some(ids) = spec.strip_prefix(':') {
            let (u, g) = ids.split_once(':').ok_or_else(bad)?;
            let number = |s: &str| !s.is_empty() && s.len() <= 10 && s.bytes().all(|b| b.is_ascii_digit());
            return if number(u) && number(g) { Ok(RunAs(format!("{u}:{g}"))) } else { Err(bad()) };
        }
        let ok = |b: u8| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-';
        if spec.is_empty() || spec.len() > 64 || spec.starts_with('-') || !spec.bytes().all(ok) {
            return Err(bad());
        }
        Ok(RunAs(spec.to_string()))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// One rendered file: where it goes in the slot, its mode, its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct File {
    /// `None` for the slot's top level, `Some("log")` for the logger.
    pub dir: Option<&'static str>,
    /// Its file name.
    pub name: &'static str,
    /// Its permission bits.
    pub mode: u32,
    /// Its bytes.
    pub data: Cow<'static, [u8]>,
}

impl File {
    /// Its path relative to the slot.
    pub fn path(&self) -> String {
        match self.dir {
            Some(d) => format!("{d}/{}", self.name),
            None => self.name.to_string(),
        }
    }
}

/// A slot's complete content, ready to build: the same for every profile,
/// since the scripts read their profile from the slot's name. One render
/// serves every slot of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Content {
    /// Whether the slot is published up or down.
    pub start: Start,
    /// In build order; the `log` directory comes before `log/run`.
    pub files: Vec<File>,
}

impl Content {
    /// SHA-256 over the files (path, mode, length, bytes, in order).
    /// Computed when asked: a boot into an empty scan directory never
    /// compares, so it never hashes.
    pub fn digest(&self) -> [u8; 32] {
        digest(self.files.iter().map(|f| (f.path(), f.mode, &f.data[..])))
    }
}

/// The `run` script. The profile is the slot's name without `gateway-`
/// (s6-supervise runs it in the slot, and the shell sets `PWD`); the root
/// profile, `gateway-default`, is never `-p default` (that would be
/// `profiles/default/`). Accounts are shell-safe by construction
/// ([`RunAs::new`]).
pub fn run_script(run_as: &RunAs) -> String {
    let user = run_as.as_str();
    format!(
        "#!/command/with-contenv sh
# shellcheck shell=sh
# A profile's gateway, built by hermes-s6 and rebuilt at every container boot.
# The profile is this slot's name without \"gateway-\" (and without what
# hermes-slot unregister adds when it moves the slot aside,
# .gateway-<name>.tmp.gone-<n>): gateway-default runs the root profile,
# gateway-<name> the profile <name>.
set -e
slot=${{PWD##*/}}
slot=${{slot#.}}
profile=${{slot%%.*}}
profile=${{profile#gateway-}}
if [ \"$profile\" = default ]; then
  set -- hermes gateway run --replace
else
  set -- hermes -p \"$profile\" gateway run --replace
fi
export HOME=/opt/data
cd /opt/data
# The gateway is supervised: it must not redirect a start to s6 again.
export HERMES_S6_SUPERVISED_CHILD=1
export HERMES_SUPERVISED_CHILD=1
# A supervisor running as {user} cannot drop privileges (setgroups fails).
if [ \"$(id -u)\" != 0 ]; then
  exec \"$@\"
fi
exec s6-setuidgid {user} \"$@\"
"
    )
}

/// The `finish` script: the same for every profile.
pub fn finish_script() -> &'static str {
    "#!/command/with-contenv sh
# shellcheck shell=sh
# $1 is how run ended: its exit code, or 256 if a signal killed it.
# 0 is a planned stop, 78 (EX_CONFIG) a configuration error that a restart
# cannot fix: exit 125 so that s6-supervise leaves the gateway down.
# Anything else (a crash, the 1 of an unplanned SIGTERM): restart.
case \"$1\" in
  0 | 78) exit 125 ;;
esac
exit 0
"
}

/// The logger's `run` script (run in the slot's `log/`).
pub fn log_run_script(run_as: &RunAs) -> String {
    let user = run_as.as_str();
    format!(
        "#!/command/with-contenv sh
# shellcheck shell=sh
# A gateway's logger: s6-log as {user} into $HERMES_HOME/logs/gateways/<profile>,
# HERMES_HOME read when it starts, the profile from the slot's name.
slot=${{PWD%/log}}
slot=${{slot##*/}}
slot=${{slot#.}}
slot=${{slot%%.*}}
: \"${{HERMES_HOME:=/opt/data}}\"
log_dir=\"$HERMES_HOME/logs/gateways/${{slot#gateway-}}\"
if [ \"$(id -u)\" != 0 ]; then
  mkdir -p \"$log_dir\"
  rm -f \"$log_dir/lock\"
  exec s6-log 1 n10 s1000000 T \"$log_dir\"
fi
# As root: every change in the user's tree is made as the user.
s6-setuidgid {user} mkdir -p \"$log_dir\"
s6-setuidgid {user} rm -f \"$log_dir/lock\"
exec s6-setuidgid {user} s6-log 1 n10 s1000000 T \"$log_dir\"
"
    )
}

/// Renders a slot's content: `start` says whether it has a `down` file.
pub fn render(run_as: &RunAs, start: Start) -> Content {
    let mut files = vec![
        File { dir: None, name: "type", mode: 0o644, data: Cow::Borrowed(b"longrun\n") },
        File { dir: None, name: "run", mode: 0o755, data: Cow::Owned(run_script(run_as).into_bytes()) },
        File { dir: None, name: "finish", mode: 0o755, data: Cow::Borrowed(finish_script().as_bytes()) },
        File { dir: Some(s6::LOG), name: "run", mode: 0o755, data: Cow::Owned(log_run_script(run_as).into_bytes()) },
    ];
    if start == Start::Down {
        files.push(File { dir: None, name: s6::DOWN, mode: 0o644, data: Cow::Borrowed(b"") });
    }
    Content { start, files }
}

/// SHA-256 over (path, mode, length, bytes) of each file, in order.
pub(super) fn digest<'a>(files: impl Iterator<Item = (String, u32, &'a [u8])>) -> [u8; 32] {
    let mut h = Sha256::new();
    for (path, mode, data) in files {
        h.update(path.as_bytes());
        h.update([0]);
        h.update(format!("{mode:o}").as_bytes());
        h.update([0]);
        h.update((data.len() as u64).to_be_bytes());
        h.update(data);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(h.finalize().as_slice());
    out
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    #[test]
    fn accounts_for_s6_setuidgid() {
        assert_eq!(RunAs::new("hermes").unwrap().as_str(), "hermes");
        assert_eq!(RunAs::new(":10000:10000").unwrap().as_str(), "10000:10000");
        for bad in ["", "-x", "a b", "a;b", "$(id)", ":1", ":1:", ":a:1", "h\n"] {
            assert!(RunAs::new(bad).is_err(), "{bad:?}");
        }
    }

    /// Runs `script` with `sh` in `dir` (made, with its parents), with
    /// stand-ins for `id` (printing `uid`), `hermes`, `s6-setuidgid` and
    /// `s6-log` that record their argv, and `/opt/data` moved to a scratch
    /// directory. Returns what the stand-ins recorded, and the scratch
    /// directory.
    fn run_in(test: &str, dir: &str, script: &str, uid: u32) -> (String, PathBuf) {
        let root = std::env::temp_dir().join(format!("hermes-s6-slot-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let (bin, data, cwd) = (root.join("bin"), root.join("data"), root.join("scan").join(dir));
        for d in [&bin, &data, &cwd] {
            std::fs::create_dir_all(d).unwrap();
        }
        let record = root.join("argv");
        // Written by a child: a writable fd of ours would be inherited by
        // another test thread's fork, and exec of the stub would then fail
        // with ETXTBSY (and sh would go on down PATH to the real command).
        let stub = |name: &str, body: &str| {
            let status = std::process::Command::new("/bin/sh")
                .args(["-c", "printf '#!/bin/sh\\n%s\\n' \"$2\" >\"$1\" && chmod 0755 \"$1\"", "stub"])
                .arg(bin.join(name))
                .arg(body)
                .status()
                .unwrap();
            assert!(status.success(), "stub {name}");
        };
        stub("id", &format!("echo {uid}"));
        for name in ["hermes", "s6-setuidgid", "s6-log"] {
            stub(name, &format!("echo \"{name} $* (cwd $PWD, HOME $HOME)\" >>{}", record.display()));
        }
        let script = script.replace("/opt/data", &data.to_string_lossy());
        let status = std::process::Command::new("/bin/sh")
            .args(["-c", &script, "run"])
            .current_dir(&cwd)
            .env_clear()
            .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
            .env("HERMES_HOME", &data)
            .status()
            .unwrap();
        assert!(status.success(), "{dir}: {status}");
        (std::fs::read_to_string(&record).unwrap_or_default().trim_end().to_string(), root)
    }

    #[test]
    fn run_takes_the_profile_from_the_slot_name() {
        let hermes = RunAs::new("hermes").unwrap();
        let script = run_script(&hermes);
        assert!(script.starts_with("#!/command/with-contenv sh\n"));
        assert!(script.contains("\nexport HERMES_S6_SUPERVISED_CHILD=1\nexport HERMES_SUPERVISED_CHILD=1\n"));
        for (slot, argv) in [
            ("gateway-default", "gateway run --replace"),
            ("gateway-coder", "-p coder gateway run --replace"),
            ("gateway-a_b-0", "-p a_b-0 gateway run --replace"),
            ("gateway-gateway-x", "-p gateway-x gateway run --replace"),
            // Moved aside by an unregister, and restarted before it is gone.
            (".gateway-coder.tmp.gone-7", "-p coder gateway run --replace"),
            (".gateway-default.tmp.gone-7", "gateway run --replace"),
        ] {
            let (got, root) = run_in("run", slot, &script, 10000);
            let data = root.join("data");
            assert_eq!(got, format!("hermes {argv} (cwd {}, HOME {})", data.display(), data.display()), "{slot}");
            let _ = std::fs::remove_dir_all(root);
        }
        // Under a root supervisor: the same command through s6-setuidgid.
        let (got, root) = run_in("run-root", "gateway-coder", &run_script(&RunAs::new(":10000:10000").unwrap()), 0);
        assert!(got.starts_with("s6-setuidgid 10000:10000 hermes -p coder gateway run --replace (cwd "), "{got}");
        let _ = std::fs::remove_dir_all(root);
    }

    #[test]
    fn finish_parks_0_and_78_only() {
        let f = finish_script();
        assert!(f.contains("0 | 78) exit 125 ;;") && f.ends_with("\nexit 0\n"));
    }

    #[test]
    fn log_run_logs_into_the_slot_profile_s_directory() {
        let l = log_run_script(&RunAs::new("hermes").unwrap());
        assert!(l.contains(": \"${HERMES_HOME:=/opt/data}\"\n"));
        assert!(!l.contains("/opt/data/logs"), "no baked HERMES_HOME");
        assert!(l.contains("\ns6-setuidgid hermes mkdir -p \"$log_dir\"\ns6-setuidgid hermes rm -f \"$log_dir/lock\"\n"));
        for (slot, profile) in [("gateway-default", "default"), ("gateway-coder", "coder"), (".gateway-coder.tmp.gone-7", "coder")] {
            let (got, root) = run_in("log", &format!("{slot}/log"), &l, 10000);
            let dir = root.join("data/logs/gateways").join(profile);
            assert_eq!(got.split(" (cwd").next(), Some(format!("s6-log 1 n10 s1000000 T {}", dir.display()).as_str()));
            assert!(dir.is_dir(), "{slot}: the log directory is made");
            let _ = std::fs::remove_dir_all(root);
        }
    }

    #[test]
    fn the_doc_page_shows_the_scripts_as_rendered() {
        let page = include_str!("../../doc/hermes-reconcile.md");
        let blocks: Vec<&str> = page.split("```sh\n").skip(1).filter_map(|b| b.split("```").next()).collect();
        let hermes = RunAs::new("hermes").unwrap();
        for script in [run_script(&hermes), finish_script().to_string(), log_run_script(&hermes)] {
            assert!(blocks.contains(&script.as_str()), "doc/hermes-reconcile.md lacks:\n{script}");
        }
    }

    #[test]
    fn the_digest_covers_every_file_the_down_file_and_the_account() {
        let hermes = RunAs::new("hermes").unwrap();
        let up = render(&hermes, Start::Up);
        let down = render(&hermes, Start::Down);
        let other = render(&RunAs::new(":10000:10000").unwrap(), Start::Up);
        assert_eq!(up.files.len(), 4);
        assert_eq!(down.files.last().map(|f| (f.name, f.data.len())), Some(("down", 0)));
        assert_ne!(up.digest(), down.digest());
        assert_ne!(up.digest(), other.digest());
        assert_eq!(up, render(&hermes, Start::Up), "rendering is deterministic");
        assert_eq!(
            up.files.iter().map(|f| (f.path(), f.mode)).collect::<Vec<_>>(),
            [("type".into(), 0o644), ("run".into(), 0o755), ("finish".into(), 0o755), ("log/run".into(), 0o755)]
        );
    }
}

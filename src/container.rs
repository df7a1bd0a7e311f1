//! The container's command: found in `/proc`, stripped of the wrappers in
//! front of it, and classified (upstream-hermes §2.4).
//!
//! The image runs its command as `…/main-wrapper.sh ARGS`, behind
//! s6-overlay's `/init` (as PID 1 in s6-overlay v2, or as
//! `/bin/sh -e /run/s6/basedir/scripts/rc.init top …/main-wrapper.sh ARGS`
//! in v3). The first process, PID 1 first then the others in pid order,
//! with an argument ending in `main-wrapper.sh` is the container command.
//! Stripping drops everything up to that argument (or a leading `init`),
//! then an `entrypoint-dispatch.sh`, then a `hermes`.
//!
//! Only processes the user cannot forge count: run by root (real and
//! effective uid 0 in `status`; a setuid program the user starts keeps
//! the user's real uid), or by the caller itself when it is not root
//! (a non-root container, where everything is the user's). Any process of
//! the user could otherwise name `main-wrapper.sh gateway run` in its argv
//! and make a root reconcile perform the legacy migration. Both files of
//! a process are read through one fd of its `/proc/<pid>` directory, so
//! they are the same process's (a reused pid fails the reads).
//!
//! `/proc` is the kernel's, so it is read by path; command lines are
//! decoded as UTF-8 with replacement and capped at 1 MiB.

use std::path::Path;

/// The image's command wrapper.
pub const WRAPPER: &str = "main-wrapper.sh";
/// The entrypoint that may sit between the wrapper and the command.
const DISPATCH: &str = "entrypoint-dispatch.sh";
/// Largest command line read.
const CMDLINE_CAP: u64 = 1 << 20;

/// What the container was started to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// `dashboard …`: a dashboard-only container, no profile gateways.
    Dashboard,
    /// `gateway run …` without `--no-supervise`: the pre-s6 way of
    /// running the gateway, which the legacy migration carries over.
    LegacyGatewayRun,
    /// Anything else, or no command found.
    Other,
}

/// Opens `PROC/PID`; `None` if gone.
fn open_process(proc: &Path, pid: &str) -> Option<std::os::fd::OwnedFd> {
    use nix::fcntl::{AT_FDCWD, OFlag, openat};
    // openat: musl's open(2) wrapper adds an fcntl per call.
    openat(AT_FDCWD, &proc.join(pid), OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC, nix::sys::stat::Mode::empty()).ok()
}

/// Whether the process whose `/proc` directory is `dir` runs with real and
/// effective uid `0`, or `me` (the caller's, when not root).
fn unforgeable(dir: &std::os::fd::OwnedFd, me: u32) -> bool {
    let mut buf = vec![0u8; 4096];
    let Some(status) = read_at(dir, c"status", &mut buf) else { return false };
    let Some(uids) = status.split(|&b| b == b'\n').find_map(|l| l.strip_prefix(b"Uid:")) else { return false };
    let mut ids =
        uids.split(|b| b.is_ascii_whitespace()).filter(|f| !f.is_empty()).map(|f| std::str::from_utf8(f).ok()?.parse::<u32>().ok());
    match (ids.next().flatten(), ids.next().flatten()) {
        (Some(real), Some(effective)) => real == effective && (real == 0 || real == me),
        _ => false,
    }
}

/// Reads `PROC/PID/cmdline` into `buf` (one read when it fits, which is
/// the usual case); `None` if unreadable (gone, or not ours to read).
fn read_cmdline<'b>(dir: &std::os::fd::OwnedFd, buf: &'b mut Vec<u8>) -> Option<&'b [u8]> {
    read_at(dir, c"cmdline", buf)
}

/// Reads the file `name` of a `/proc/<pid>` directory into `buf`, at most
/// [`CMDLINE_CAP`] bytes.
fn read_at<'b>(dir: &std::os::fd::OwnedFd, name: &std::ffi::CStr, buf: &'b mut Vec<u8>) -> Option<&'b [u8]> {
    use nix::fcntl::{OFlag, openat};
    let fd = openat(dir, name, OFlag::O_RDONLY | OFlag::O_CLOEXEC, nix::sys::stat::Mode::empty()).ok()?;
    let mut len = 0;
    loop {
        if len == buf.len() {
            if len as u64 >= CMDLINE_CAP {
                break;
            }
            buf.resize(len * 2, 0);
        }
        match nix::unistd::read(&fd, &mut buf[len..]) {
            Ok(0) => break,
            // The kernel hands out the whole command line when it fits.
            Ok(n) if len + n < buf.len() => {
                len += n;
                break;
            }
            Ok(n) => len += n,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return None,
        }
    }
    Some(&buf[..len])
}

/// Whether a raw command line has an argument ending in the wrapper's name.
fn names_wrapper(raw: &[u8]) -> bool {
    raw.split(|&b| b == 0).any(|a| a.ends_with(WRAPPER.as_bytes()))
}

/// A raw command line as arguments; empty parts are dropped.
fn split(raw: &[u8]) -> Vec<String> {
    raw.split(|&b| b == 0).filter(|a| !a.is_empty()).map(|a| String::from_utf8_lossy(a).into_owned()).collect()
}

/// The container command's full argv: PID 1's if it names the wrapper,
/// else that of the lowest pid that does, among processes the user cannot
/// forge (see the module's text); empty when none does.
pub fn find_argv(proc: &Path) -> Vec<String> {
    let me = nix::unistd::geteuid().as_raw();
    let mut buf = vec![0u8; 4096];
    let believed = |pid: &str, buf: &mut Vec<u8>| -> Option<Vec<String>> {
        let dir = open_process(proc, pid)?;
        let raw = read_cmdline(&dir, buf).filter(|r| names_wrapper(r))?.to_vec();
        unforgeable(&dir, me).then(|| split(&raw))
    };
    if let Some(argv) = believed("1", &mut buf) {
        return argv;
    }
    let Ok(entries) = std::fs::read_dir(proc) else { return Vec::new() };
    let mut pids: Vec<u64> = entries.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).filter(|&pid| pid != 1).collect();
    pids.sort_unstable();
    for pid in pids {
        if let Some(argv) = believed(&pid.to_string(), &mut buf) {
            return argv;
        }
    }
    Vec::new()
}

fn basename(arg: &str) -> &str {
    arg.rsplit('/').next().unwrap_or(arg)
}

/// The command proper: `argv` without the wrapper chain in front of it.
pub fn strip(argv: &[String]) -> &[String] {
    let mut rest = match argv.iter().position(|a| a.ends_with(WRAPPER)) {
        Some(i) => &argv[i + 1..],
        None if argv.first().is_some_and(|a| basename(a) == "init") => &argv[1..],
        None => argv,
    };
    if rest.first().is_some_and(|a| a.ends_with(DISPATCH)) {
        rest = &rest[1..];
    }
    if rest.first().is_some_and(|a| basename(a) == "hermes") {
        rest = &rest[1..];
    }
    rest
}

/// What a stripped command asks for.
pub fn classify(command: &[String]) -> Command {
    match command {
        [first, ..] if first == "dashboard" => Command::Dashboard,
        [gateway, run, ..] if gateway == "gateway" && run == "run" && !command.iter().any(|a| a == "--no-supervise") => {
            Command::LegacyGatewayRun
        }
        _ => Command::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    fn kind(s: &str) -> Command {
        classify(strip(&argv(s)))
    }

    #[test]
    fn stripping() {
        let cases = [
            ("gateway run", "gateway run"),
            ("/init /opt/hermes/docker/main-wrapper.sh gateway run", "gateway run"),
            ("/init gateway run", "gateway run"),
            ("/opt/hermes/docker/main-wrapper.sh hermes gateway run", "gateway run"),
            ("/init /opt/hermes/docker/main-wrapper.sh /opt/hermes/docker/entrypoint-dispatch.sh /opt/hermes/bin/hermes chat", "chat"),
            (
                "/bin/sh -e /run/s6/basedir/scripts/rc.init top /opt/hermes/docker/main-wrapper.sh dashboard --host 0.0.0.0",
                "dashboard --host 0.0.0.0",
            ),
            ("/init /opt/hermes/docker/main-wrapper.sh", ""),
            ("", ""),
        ];
        for (full, stripped) in cases {
            assert_eq!(strip(&argv(full)), argv(stripped).as_slice(), "{full}");
        }
    }

    #[test]
    fn dashboard_detection() {
        for yes in [
            "dashboard",
            "dashboard --host 127.0.0.1 --no-open",
            "/init /opt/hermes/docker/main-wrapper.sh dashboard",
            "/init /opt/hermes/docker/main-wrapper.sh hermes dashboard",
            "hermes dashboard",
            // s6-overlay v3: PID 1 is s6-svscan, the command runs under rc.init (#49196).
            "/bin/sh -e /run/s6/basedir/scripts/rc.init top /opt/hermes/docker/main-wrapper.sh dashboard --no-open",
        ] {
            assert_eq!(kind(yes), Command::Dashboard, "{yes}");
        }
        for no in ["", "gateway run", "gateway run -p dashboard", "chat", "/init /opt/hermes/docker/main-wrapper.sh chat"] {
            assert_ne!(kind(no), Command::Dashboard, "{no}");
        }
    }

    #[test]
    fn legacy_gateway_run_detection() {
        for yes in [
            "gateway run",
            "/init /opt/hermes/docker/main-wrapper.sh gateway run",
            "/init /opt/hermes/docker/main-wrapper.sh hermes gateway run -v",
            "/bin/sh -e /run/s6/basedir/scripts/rc.init top /opt/hermes/docker/main-wrapper.sh gateway run",
        ] {
            assert_eq!(kind(yes), Command::LegacyGatewayRun, "{yes}");
        }
        for no in ["gateway run --no-supervise", "gateway", "gateway start", "run gateway", "chat", ""] {
            assert_eq!(kind(no), Command::Other, "{no}");
        }
    }

    #[test]
    fn the_command_is_found_in_proc() {
        let d = std::env::temp_dir().join(format!("hermes-s6-proc-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        let me = nix::unistd::geteuid().as_raw();
        let put_as = |pid: &str, cmd: &[u8], uid: u32| {
            std::fs::create_dir_all(d.join(pid)).unwrap();
            std::fs::write(d.join(pid).join("cmdline"), cmd).unwrap();
            let status = format!("Name:\tx\nUmask:\t0022\nUid:\t{uid}\t{uid}\t{uid}\t{uid}\nGid:\t0\t0\t0\t0\n");
            std::fs::write(d.join(pid).join("status"), status).unwrap();
        };
        let put = |pid: &str, cmd: &[u8]| put_as(pid, cmd, 0);
        // Another uid, or a setuid program run by another uid: not believed.
        let forged = me.wrapping_add(1).max(1);
        put_as("5", b"/opt/hermes/docker/main-wrapper.sh\0gateway\0run\0", forged);
        put("6", b"/opt/hermes/docker/main-wrapper.sh\0gateway\0run\0");
        std::fs::write(d.join("6/status"), format!("Uid:\t{forged}\t0\t0\t0\n")).unwrap();
        put("1", b"s6-svscan\0/run/service\0");
        put("7", b"sleep\x00100\x00");
        put("12", b"/bin/sh\0-e\0/run/s6/basedir/scripts/rc.init\0top\0/opt/hermes/docker/main-wrapper.sh\0dashboard\0");
        put("100", b"/x/main-wrapper.sh\0chat\0");
        std::fs::create_dir_all(d.join("self")).unwrap();
        std::fs::create_dir_all(d.join("9")).unwrap(); // no cmdline: a process that is gone
        assert_eq!(classify(strip(&find_argv(&d))), Command::Dashboard, "the lowest pid wins after PID 1");
        put("1", b"/init\0/opt/hermes/docker/main-wrapper.sh\0gateway\0\0run\0");
        assert_eq!(find_argv(&d), argv("/init /opt/hermes/docker/main-wrapper.sh gateway run"), "PID 1 first");
        std::fs::remove_dir_all(&d).unwrap();
        assert!(find_argv(&d).is_empty());
    }
}

//! The boot log, `$HERMES_HOME/logs/container-boot.log` (doc/design.md#boot-log):
//! one line per slot per boot, rotated once to `.1`, written into the
//! user's tree by fd (doc/design.md#fd-safety).

use std::ffi::OsStr;

use super::{Entry, Warn, warn_with};
use crate::boot_policy::Policy;
use crate::error::Result;
use crate::fs::handover::{self, Handover};
use crate::fs::publish::{Rename, rename_at};
use crate::fs::{Dir, Kind, Owner};
use crate::local_time::local_timestamp;
use crate::state;

/// The log directory in `$HERMES_HOME`.
const LOGS: &str = "logs";
/// The reconcile log in `logs/`.
pub const BOOT_LOG: &str = "container-boot.log";
/// Where the reconcile log is rotated to.
pub const BOOT_LOG_OLD: &str = "container-boot.log.1";
/// The reconcile log is rotated once it is at least this big (256 KiB).
pub const ROTATE_AT: u64 = 262_144;

/// One line of the boot log (without its newline); the multiplex rule
/// appends ` folded_into_root=True|False` (Python's spelling, as R-4).
fn log_line(timestamp: &str, e: &Entry, policy: Policy) -> String {
    let prior = e.prior_state.as_deref().map_or("None".into(), state::printable);
    let mut line =
        format!("{timestamp} profile={} prior_state={prior} action={} prior_exit={}", e.profile, e.action.as_str(), e.prior_exit.as_str());
    if policy == Policy::Multiplex {
        line.push_str(if e.folded_into_root { " folded_into_root=True" } else { " folded_into_root=False" });
    }
    line
}

/// Appends one line per entry to `home/logs/container-boot.log` (one
/// write), after rotating a log of [`ROTATE_AT`] bytes or more to `.1`
/// (replacing an older `.1`). A failed rotation is a warning.
pub fn append_boot_log(home: &Dir, entries: &[Entry], now: i64, owner: Owner, policy: Policy, warn: Warn<'_>) -> Result<()> {
    let logs = user_dir(home, OsStr::new(LOGS), owner)?;
    let log = OsStr::new(BOOT_LOG);
    let full = matches!(logs.stat_at(log)?, Some(st) if st.kind == Kind::File && st.size >= ROTATE_AT);
    if full && let Err(e) = rename_at(&logs, log, &logs, OsStr::new(BOOT_LOG_OLD), Rename::Replace) {
        warn_with(warn, &e, "the boot log was not rotated");
    }
    let ts = local_timestamp(now);
    let mut text = String::new();
    for e in entries {
        text.push_str(&log_line(&ts, e, policy));
        text.push('\n');
    }
    logs.append_file_for(log, 0o644, text.as_bytes(), owner.chown_to())?;
    Ok(())
}

/// Opens the directory `name` in the user's `home`, made 0755 for the
/// user if absent: made as a [`handover::private_dir`] (0700, ours,
/// checked once opened to be the empty one just made: the user can swap
/// names in its home), then given to the user and opened up through that
/// fd. A name the user swaps meanwhile is refused, never chowned.
fn user_dir(home: &Dir, name: &OsStr, owner: Owner) -> Result<Dir> {
    let Some(dir) = handover::private_dir(home, name)? else {
        return home.open_dir(name);
    };
    match owner {
        Owner::Chown { uid, gid } => Handover::new(uid, gid).give(Some((&dir, 0o755)))?,
        Owner::Caller { .. } => dir.chmod(0o755)?,
    }
    Ok(dir)
}

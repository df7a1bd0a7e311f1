//! The boot reconcile: one gateway slot per profile, started only where
//! the recorded intent is `running` (DESIGN §2, upstream-hermes §2.4).
//!
//! In order: the root profile (`$HERMES_HOME`) as `gateway-default`,
//! then each `profiles/<name>/` that holds a `SOUL.md`, in byte order.
//! For each: read the intent ([`state`]), remove `gateway.pid` and
//! `processes.json` (pids of a PID namespace that is gone), build and
//! publish the slot ([`slot`]). Before that, the legacy migration may
//! record `running` for the root profile; after it, one line per slot is
//! appended to `$HERMES_HOME/logs/container-boot.log`.
//!
//! Error policy: a bad profile never stops the others. Every problem with
//! one profile, state file, leftover or log is a warning handed to the
//! caller's sink, and the work goes on. Only a scan directory that cannot
//! be opened or written ends the run ([`run`] returns `Err`), before
//! anything was changed. A dry run reads what it needs and writes nothing.

use std::ffi::{OsStr, OsString};
use std::fmt::Display;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;

use crate::container::Command;
use crate::error::{Error, Result};
use crate::fs::publish::{Rename, rename_at};
use crate::fs::{Dir, Kind};
use crate::msg::printable;
use crate::profile::{self, Profile};
use crate::s6::svscan;
use crate::skeleton::Owner;
use crate::slot::{self, Built, Existing, RunAs, Start};
use crate::state::{self, PriorExit};

/// The directory of named profiles in `$HERMES_HOME`.
pub const PROFILES: &str = crate::profile::PROFILES;
/// A named profile is a directory holding this file.
pub const MARKER: &str = "SOUL.md";
/// Runtime files of the previous container, removed from every profile home.
pub const STALE_FILES: [&str; 2] = ["gateway.pid", "processes.json"];
/// The log directory in `$HERMES_HOME`.
pub const LOGS: &str = "logs";
/// The reconcile log in `logs/`.
pub const BOOT_LOG: &str = "container-boot.log";
/// Where the reconcile log is rotated to.
pub const BOOT_LOG_OLD: &str = "container-boot.log.1";
/// The reconcile log is rotated once it is at least this big (256 KiB).
pub const ROTATE_AT: u64 = 262_144;
/// Most entries read from `profiles/` (beyond: no named profile at all).
const MAX_PROFILES: usize = 65_536;

/// What to reconcile, and how.
#[derive(Debug, Clone)]
pub struct Config {
    /// `$HERMES_HOME`: the root profile's home, holding `profiles/`.
    pub home: PathBuf,
    /// The scan directory the slots are published in.
    pub scandir: PathBuf,
    /// The account the slots' scripts drop to under a root supervisor.
    pub run_as: RunAs,
    /// Who the built slots belong to (`Chown` when run as root).
    pub owner: Owner,
    /// `GATEWAY_MULTIPLEX_PROFILES`: named slots never autostart.
    pub multiplex: bool,
    /// `HERMES_GATEWAY_NO_SUPERVISE`: no legacy migration.
    pub no_supervise: bool,
    /// What the container was started with (already stripped and classified).
    pub command: Command,
    /// Compute and report, write nothing.
    pub dry_run: bool,
    /// Now, in seconds since the epoch (migration record, log time).
    pub now: i64,
}

/// What happened to a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Published without a `down` file: the gateway starts with its supervisor.
    Started,
    /// Published with a `down` file: it waits for `s6-svc -u`.
    Registered,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Started => "started",
            Action::Registered => "registered",
        }
    }
}

/// One reconciled profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub profile: Profile,
    /// The recorded intent; `None` when there is none.
    pub prior_state: Option<String>,
    pub action: Action,
    /// From the lifecycle ledger (`Unknown` in a dry run).
    pub prior_exit: PriorExit,
    /// What was done on disk (`None` in a dry run).
    pub built: Option<Built>,
}

/// The result of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Default first, then named profiles in order. A profile whose slot
    /// could not be built is not listed (a warning says why).
    pub entries: Vec<Entry>,
    /// The legacy migration wrote (or, in a dry run, would write) the
    /// root profile's state file.
    pub migrated: bool,
    /// Building a slot failed because the scan directory could not be
    /// written (read-only, full, permissions changed mid-run).
    pub scandir_unwritable: bool,
}

/// Where warnings go: one call per warning, one line each.
pub type Warn<'a> = &'a mut dyn FnMut(&dyn Display);

/// Runs the reconcile described by `cfg`. `Err` only when the scan
/// directory cannot be opened or written; nothing has been changed then.
pub fn run(cfg: &Config, warn: Warn<'_>) -> Result<Outcome> {
    let scandir = if cfg.dry_run {
        None
    } else {
        let d = Dir::open(&cfg.scandir)?;
        d.writable()?;
        Some(d)
    };
    let home = match Dir::open(&cfg.home) {
        Ok(h) => Some(h),
        Err(e) => {
            warn(&format_args!("{e}; no profile state read, gateway-default registered down"));
            None
        }
    };
    let builder = scandir.as_ref().map(|sd| {
        let builder = slot::Builder::new(sd, cfg.owner);
        match slot::sweep_staging(sd) {
            Ok(swept) => {
                swept.leftovers.iter().for_each(|l| warn(l));
                builder.knowing(swept.entries)
            }
            Err(e) => {
                warn(&e);
                builder
            }
        }
    });
    let builder = builder.as_ref();
    // Every slot has the same content but for its down file: two renders
    // serve the whole run.
    let contents = Contents { up: slot::render(&cfg.run_as, Start::Up), down: slot::render(&cfg.run_as, Start::Down) };

    // The root profile, then the named ones in byte order. Slots are
    // independent: they are built on a few threads and reported in this
    // order. Each profile's directory is open only while it is reconciled
    // (thousands of profiles must not exhaust fds).
    let listed = home.as_ref().and_then(|h| list_profiles(h, warn));
    let mut items = vec![Item::Root];
    if let Some((_, names)) = &listed {
        items.extend(names.iter().map(|(name, kind)| Item::Named(name, *kind)));
    }
    if let Some(sd) = &scandir {
        limit_to_room(sd, &mut items, warn);
    }
    let migrated = std::sync::atomic::AtomicBool::new(false);
    let done = parallel_map(&items, workers(items.len()), |item| {
        let mut warnings: Vec<String> = Vec::new();
        let mut sink = |w: &dyn Display| warnings.push(w.to_string());
        let done = match *item {
            Item::Root => {
                let mut prior = None;
                if let Some(home) = &home {
                    if legacy_applies(cfg, home) {
                        migrated.store(cfg.dry_run || migrate(cfg, home, &mut sink), std::sync::atomic::Ordering::Relaxed);
                        prior = Some(state::RUNNING.to_string());
                    } else {
                        prior = read_prior(home, &mut sink);
                    }
                }
                let start = state::autostarts(prior.as_deref());
                Some(one(builder, &contents, Profile::root(), home.as_ref(), prior, start, &mut sink))
            }
            Item::Named(name, kind) => listed.as_ref().and_then(|(profiles, _)| {
                let (profile, dir) = named_profile(profiles, name, kind, &mut sink)?;
                let prior = read_prior(&dir, &mut sink);
                let start = !cfg.multiplex && state::autostarts(prior.as_deref());
                Some(one(builder, &contents, profile, Some(&dir), prior, start, &mut sink))
            }),
        };
        (done, warnings)
    });
    let mut entries = Vec::new();
    let mut scandir_unwritable = false;
    for (done, warnings) in done {
        warnings.iter().for_each(|w| warn(w));
        if let Some(done) = done {
            scandir_unwritable |= done.unwritable;
            entries.extend(done.entry);
        }
    }
    if let Some(sd) = &scandir {
        warn_unstatable(sd, warn);
    }
    if let Some(home) = &home {
        let logged = if cfg.dry_run || entries.is_empty() { Ok(()) } else { append_boot_log(home, &entries, cfg.now, cfg.owner, warn) };
        if let Err(e) = logged {
            warn_with(warn, &e, "the boot log is incomplete");
        }
    }
    Ok(Outcome { entries, migrated: migrated.into_inner(), scandir_unwritable })
}

/// Drops the profiles past what the scan directory's s6-svscan can
/// supervise (each slot is a service and a logger; the other services
/// there count too), with a warning each: published, they would stop
/// every scan (s6 2.12+).
fn limit_to_room(scandir: &Dir, items: &mut Vec<Item<'_>>, warn: Warn<'_>) {
    let census = match svscan::census(scandir) {
        Ok(c) => c,
        Err(e) => return warn(&e),
    };
    let slots = slot::registered(scandir).map(|r| r.len()).unwrap_or(0);
    let others = census.supervised.saturating_sub(2 * slots);
    let max = svscan::max_entries(scandir);
    let room = max.saturating_sub(others) / 2;
    if items.len() <= room {
        return;
    }
    for item in items.drain(room..) {
        let name = match item {
            Item::Root => slot::name(&Profile::root()),
            Item::Named(n, _) => format!("{}{}", slot::PREFIX, n.to_string_lossy()),
        };
        warn(&format_args!(
            "unable to publish {}: the s6-svscan of this scan directory supervises at most {max} services and loggers ({others} other services there)",
            scandir.child_path(OsStr::new(&name)).display()
        ));
    }
}

/// Warns about the entries of the scan directory s6-svscan cannot stat.
fn warn_unstatable(scandir: &Dir, warn: Warn<'_>) {
    match svscan::census(scandir) {
        Ok(c) => c.unstatable.iter().for_each(|(name, e)| warn(&svscan::unstatable_warning(scandir, name, *e))),
        Err(e) => warn(&e),
    }
}

/// One profile to reconcile.
enum Item<'a> {
    /// `$HERMES_HOME` itself, slot `gateway-default`.
    Root,
    /// An entry of `profiles/`, with its type from the listing.
    Named(&'a OsStr, Option<Kind>),
}

/// How many threads build slots: one per 8 profiles (none below 16), at
/// most one per CPU and at most 8. tmpfs scales with cores, but starting
/// and joining a thread costs about as much as a few slots: below 16
/// profiles one thread is faster (`bench/RESULTS.md`).
fn workers(profiles: usize) -> usize {
    if profiles < 16 {
        return 1;
    }
    cpus().min(8).min(profiles / 8).max(1)
}

/// The CPUs this process may run on: `sched_getaffinity`, one system call
/// (std's available_parallelism also reads cgroup files from /proc).
fn cpus() -> usize {
    // SAFETY: an all-zero cpu_set_t is valid; the kernel fills it.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: the pointer and size describe `set`.
    let r = unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if r != 0 {
        return 1;
    }
    // SAFETY: `set` was filled by the kernel.
    (unsafe { libc::CPU_COUNT(&set) }).max(1) as usize
}

/// `f` over `items` on `workers` threads (the caller's included), results
/// in the order of `items`. A thread that cannot be started is no error:
/// the others do its share.
fn parallel_map<T: Sync, R: Send>(items: &[T], workers: usize, f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    if workers <= 1 {
        return items.iter().map(f).collect();
    }
    let next = AtomicUsize::new(0);
    let work = || {
        let mut out = Vec::new();
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(item) = items.get(i) else { return out };
            out.push((i, f(item)));
        }
    };
    let mut all = std::thread::scope(|s| {
        let helpers: Vec<_> = (1..workers).filter_map(|_| std::thread::Builder::new().spawn_scoped(s, work).ok()).collect();
        let mut all = work();
        for h in helpers {
            match h.join() {
                Ok(part) => all.extend(part),
                // Only a bug panics; let it be seen as one.
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        all
    });
    all.sort_unstable_by_key(|(i, _)| *i);
    all.into_iter().map(|(_, r)| r).collect()
}

fn warn_with(warn: Warn<'_>, e: &Error, then: &str) {
    warn(&format_args!("{e}; {then}"));
}

/// The migration applies when the root profile has no state file (nothing
/// at all under that name), the container runs the legacy `gateway run`
/// command, and `HERMES_GATEWAY_NO_SUPERVISE` does not opt out.
fn legacy_applies(cfg: &Config, home: &Dir) -> bool {
    cfg.command == Command::LegacyGatewayRun && !cfg.no_supervise && matches!(home.stat_at(OsStr::new(state::STATE_FILE)), Ok(None))
}

/// Writes the migration record; a failure is a warning (the root profile
/// is still treated as running, and the next boot migrates again).
fn migrate(cfg: &Config, home: &Dir, warn: Warn<'_>) -> bool {
    match state::write_migration(home, cfg.now, cfg.owner) {
        Ok(()) => true,
        Err(e) => {
            warn_with(warn, &e, "gateway-default started from the legacy command anyway");
            false
        }
    }
}

/// A profile's intent; an unreadable state file is a warning and no state.
fn read_prior(dir: &Dir, warn: Warn<'_>) -> Option<String> {
    state::read_intent(dir).unwrap_or_else(|e| {
        warn_with(warn, &e, "treating as no prior state");
        None
    })
}

/// Names in a directory with their types from the listing.
type Listing = Vec<(OsString, Option<Kind>)>;

/// `profiles/` and its entries in byte order, with their types from the
/// directory listing. `None` when there is no usable `profiles/`.
fn list_profiles(home: &Dir, warn: Warn<'_>) -> Option<(Dir, Listing)> {
    let profiles = match home.open_dir_if_present(OsStr::new(PROFILES)) {
        Ok(Some(d)) => d,
        Ok(None) => return None,
        Err(e) => {
            warn_with(warn, &e, "no named profile reconciled");
            return None;
        }
    };
    match profiles.entries_typed(MAX_PROFILES) {
        Ok(mut names) => {
            names.sort_unstable_by(|a, b| a.0.cmp(&b.0));
            Some((profiles, names))
        }
        Err(e) => {
            warn_with(warn, &e, "no named profile reconciled");
            None
        }
    }
}

/// One entry of `profiles/`: a usable named profile (a directory holding
/// a `SOUL.md`, with a valid name other than `default`) and its open
/// directory; else `None`, with a warning where it looks like a profile.
fn named_profile(profiles: &Dir, name: &OsStr, kind: Option<Kind>, warn: Warn<'_>) -> Option<(Profile, Dir)> {
    let path = profiles.child_path(name);
    let kind = match kind {
        Some(k) => k,
        None => match profiles.stat_at(name) {
            Ok(Some(st)) => st.kind,
            Ok(None) => return None,
            Err(e) => {
                warn_with(warn, &e, "skipped");
                return None;
            }
        },
    };
    match kind {
        Kind::Dir => {}
        Kind::Symlink => {
            warn(&format_args!("unable to use {}: is a symlink (not followed); skipped", printable(&path.to_string_lossy())));
            return None;
        }
        _ => return None, // files and the like are not profiles
    }
    let dir = profiles.open_dir(name).map_err(|e| warn_with(warn, &e, "skipped")).ok()?;
    let marker = OsStr::new(MARKER);
    match dir.exists_following(marker) {
        Ok(true) => {}
        Ok(false) => {
            if matches!(dir.stat_at(marker), Ok(Some(st)) if st.kind == Kind::Symlink) {
                let shown = path.join(MARKER).to_string_lossy().into_owned();
                warn(&format_args!("unable to use {}: is a dangling symlink; profile skipped", printable(&shown)));
            }
            return None;
        }
        Err(e) => {
            warn_with(warn, &e, "profile skipped");
            return None;
        }
    }
    if name.as_bytes() == profile::ROOT.as_bytes() {
        warn(&format_args!(
            "{}/ exists: skipped, its slot would collide with the root profile's gateway-default",
            printable(&path.to_string_lossy())
        ));
        return None;
    }
    match Profile::parse(name.as_bytes()) {
        Ok(p) => Some((p, dir)),
        Err(why) => {
            warn(&format_args!("unable to use {}: {why}; skipped", printable(&path.to_string_lossy())));
            None
        }
    }
}

/// What reconciling one profile gave.
struct Done {
    /// `None` when its slot could not be built (a warning says why).
    entry: Option<Entry>,
    /// The failure was the scan directory's.
    unwritable: bool,
}

/// The two contents a slot can have.
struct Contents {
    up: slot::Content,
    down: slot::Content,
}

/// Reconciles one profile whose home is `dir` (`None`: unreadable): stale
/// files, slot, ledger. In a dry run (no `builder`), only reports.
fn one(
    builder: Option<&slot::Builder<'_>>,
    contents: &Contents,
    profile: Profile,
    dir: Option<&Dir>,
    prior_state: Option<String>,
    start: bool,
    warn: Warn<'_>,
) -> Done {
    let action = if start { Action::Started } else { Action::Registered };
    let mut entry = Entry { profile, prior_state, action, prior_exit: PriorExit::Unknown, built: None };
    if let Some(builder) = builder {
        if let Some(dir) = dir {
            remove_stale_files(dir, warn);
        }
        let content = if start { &contents.up } else { &contents.down };
        match builder.install(&entry.profile, content, Existing::Replace) {
            Ok(done) => {
                done.leftovers.iter().for_each(|l| warn(l));
                entry.built = Some(done.built);
            }
            Err(e) => {
                let unwritable = cannot_write(builder.scandir(), &entry.profile, &e);
                warn_with(warn, &e, &format!("{} not built", slot::name(&entry.profile)));
                return Done { entry: None, unwritable };
            }
        }
        entry.prior_exit = dir.map(state::read_prior_exit).unwrap_or(PriorExit::Unknown);
    }
    Done { entry: Some(entry), unwritable: false }
}

/// Whether a slot failed because its staging directory could not be
/// created in the scan directory for lack of permission or space.
fn cannot_write(scandir: &Dir, profile: &Profile, e: &Error) -> bool {
    e.op() == "mkdir"
        && Path::new(e.object()) == scandir.child_path(OsStr::new(&slot::staging_name(profile)))
        && matches!(e.errno(), Some(Errno::EACCES | Errno::EPERM | Errno::EROFS | Errno::ENOSPC | Errno::EDQUOT))
}

/// Removes `gateway.pid` and `processes.json`; absent is fine.
fn remove_stale_files(dir: &Dir, warn: Warn<'_>) {
    for name in STALE_FILES {
        if let Err(e) = dir.unlink_at(OsStr::new(name)) {
            warn(&e);
        }
    }
}

/// `reconcile: profile=<p> prior_state=<s|None> action=<a>`.
pub fn report_line(e: &Entry) -> String {
    let prior = e.prior_state.as_deref().map_or("None".into(), state::printable);
    format!("reconcile: profile={} prior_state={prior} action={}", e.profile, e.action.as_str())
}

/// The entries as a JSON array of `{profile, prior_state, action}`, on
/// one line (strings escaped by serde_json).
pub fn report_json(entries: &[Entry]) -> String {
    let quote = |s: &str| serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_string());
    let mut out = String::from("[");
    for (i, e) in entries.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let prior = e.prior_state.as_deref().map_or("null".to_string(), quote);
        out.push_str(&format!(
            "{{\"profile\":{},\"prior_state\":{prior},\"action\":{}}}",
            quote(e.profile.as_str()),
            quote(e.action.as_str())
        ));
    }
    out.push(']');
    out
}

/// One line of the boot log (without its newline).
pub fn log_line(timestamp: &str, e: &Entry) -> String {
    let prior = e.prior_state.as_deref().map_or("None".into(), state::printable);
    format!("{timestamp} profile={} prior_state={prior} action={} prior_exit={}", e.profile, e.action.as_str(), e.prior_exit.as_str())
}

/// `epoch` as local time, `YYYY-MM-DDTHH:MM:SS+HHMM` (strftime's
/// `%Y-%m-%dT%H:%M:%S%z`), from the TZ variable or /etc/localtime.
pub fn local_timestamp(epoch: i64) -> String {
    // (time_t's width is the C library's: inferred from localtime_r.)
    let t = epoch as _;
    // SAFETY: an all-zero tm is a valid value; localtime_r fills it.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are valid for the call.
    if unsafe { libc::localtime_r(&t, &mut tm) }.is_null() {
        return format!("@{epoch}");
    }
    let off = tm.tm_gmtoff;
    let sign = if off < 0 { '-' } else { '+' };
    let off = off.unsigned_abs();
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}{sign}{:02}{:02}",
        tm.tm_year as i64 + 1900,
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec,
        off / 3600,
        off % 3600 / 60
    )
}

/// Appends one line per entry to `home/logs/container-boot.log` (one
/// write), after rotating a log of [`ROTATE_AT`] bytes or more to `.1`
/// (replacing an older `.1`). A failed rotation is a warning.
pub fn append_boot_log(home: &Dir, entries: &[Entry], now: i64, owner: Owner, warn: Warn<'_>) -> Result<()> {
    let logs_name = OsStr::new(LOGS);
    if let (true, Owner::Chown { uid, gid }) = (home.mkdir_at(logs_name, 0o755)?, owner) {
        home.open_node(logs_name)?.chown(uid, gid)?;
    }
    let logs = home.open_dir(logs_name)?;
    let log = OsStr::new(BOOT_LOG);
    let full = matches!(logs.stat_at(log)?, Some(st) if st.kind == Kind::File && st.size >= ROTATE_AT);
    if full && let Err(e) = rename_at(&logs, log, &logs, OsStr::new(BOOT_LOG_OLD), Rename::Replace) {
        warn_with(warn, &e, "the boot log was not rotated");
    }
    let ts = local_timestamp(now);
    let mut text = String::new();
    for e in entries {
        text.push_str(&log_line(&ts, e));
        text.push('\n');
    }
    let st = logs.append_file(log, 0o644, text.as_bytes())?;
    if let Owner::Chown { uid, gid } = owner
        && st.uid != uid
    {
        logs.open_node(log)?.chown(uid, gid)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;

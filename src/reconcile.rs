//! The boot reconcile: one gateway slot per profile, started only where
//! the recorded intent is `running` (doc/design.md#upstream-helpers, #intent).
//!
//! In order: the root profile (`$HERMES_HOME`) as `gateway-default`,
//! then each `profiles/<name>/` that holds a `SOUL.md`, in byte order.
//! For each: read the intent ([`state`]), remove `gateway.pid` and
//! `processes.json` (pids of a PID namespace that is gone), build and
//! publish the slot ([`slot`]). Before that, the legacy migration may
//! record `running` for the root profile; after it, one line per slot is
//! appended to `$HERMES_HOME/logs/container-boot.log` ([`boot_log`]).
//! What the tool prints is [`report`]'s.
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

use crate::boot_policy::{self, Named, Policy};
use crate::config_yaml;
use crate::container::Command;
use crate::error::{Error, Result, Tag};
use crate::fs::{Dir, Kind, Owner};
use crate::msg::printable;
use crate::profile::{self, Profile};
use crate::s6::svscan;
use crate::slot::{self, Built, Existing, RunAs, Start};
use crate::state::{self, PriorExit};
use crate::thread_pool::{parallel_map, workers};

pub mod boot_log;
pub mod report;

use boot_log::append_boot_log;

/// The directory of named profiles in `$HERMES_HOME`.
pub const PROFILES: &str = crate::profile::PROFILES;
/// A named profile is a directory holding this file.
pub const MARKER: &str = "SOUL.md";
/// Runtime files of the previous container, removed from every profile home.
const STALE_FILES: [&str; 2] = ["gateway.pid", "processes.json"];
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
    /// The boot rule (`HERMES_S6_BOOT_POLICY`).
    pub policy: Policy,
    /// `GATEWAY_MULTIPLEX_PROFILES` when it is a recognised boolean word
    /// ([`crate::truthy::yes_or_no`]; per-profile rule: named slots never
    /// autostart); `None`: the root's `config.yaml` decides.
    pub multiplex_env: Option<bool>,
    /// `HERMES_GATEWAY_NO_SUPERVISE` ([`crate::truthy::yes_any_case`]): no
    /// legacy migration.
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
    /// The word the report and the boot log print.
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
    /// The profile.
    pub profile: Profile,
    /// The recorded intent; `None` when there is none.
    pub prior_state: Option<String>,
    /// What was done with its slot.
    pub action: Action,
    /// From the lifecycle ledger (`Unknown` in a dry run).
    pub prior_exit: PriorExit,
    /// What was done on disk (`None` in a dry run).
    pub built: Option<Built>,
    /// Multiplex rule: it asked to run and the root slot serves it instead.
    pub folded_into_root: bool,
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
    /// Slots not built for a system reason (no space, no descriptors, …):
    /// the run must fail (exit 111) even though the others were built.
    pub system_failures: usize,
    /// Multiplex rule: the named profiles folded into the root slot.
    pub folded: Vec<Profile>,
    /// Multiplex rule: the root slot was started for them (not when the
    /// root is parked).
    pub root_started_for_folded: bool,
}

impl Outcome {
    /// Upstream's notice, when named profiles were folded into a root slot
    /// that was started for them.
    pub fn notice(&self) -> Option<String> {
        if self.folded.is_empty() || !self.root_started_for_folded {
            return None;
        }
        Some(boot_policy::notice(&self.folded.iter().map(Profile::as_str).collect::<Vec<_>>()))
    }
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
        // No descriptor or memory left: every intent would be wrong.
        Err(e) if resource_failure(&e) => return Err(e),
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

    if let Some(scandir) = &scandir {
        sweep_undotted_staging(scandir, warn);
    }
    // The per-profile rule's multiplex switch: the environment's word, else
    // the root's config.yaml.
    let multiplex = cfg.policy == Policy::PerProfile
        && boot_policy::multiplex_profiles(
            cfg.multiplex_env,
            if cfg.multiplex_env.is_some() {
                None
            } else {
                home.as_ref().and_then(|h| read_config(h, warn)).and_then(|c| c.multiplex_profiles)
            },
        );
    // The root profile, then the named ones in byte order, are reported
    // and logged. The named ones are reconciled first: under the multiplex
    // rule the root's slot depends on them. Slots are independent: they
    // are built on a few threads. Each profile's directory is open only
    // while it is reconciled (thousands of profiles must not exhaust fds).
    let listed = match &home {
        Some(h) => list_profiles(h, warn)?,
        None => None,
    };
    let names: &[(OsString, Option<Kind>)] = listed.as_ref().map_or(&[], |(_, names)| names);
    let names = match &scandir {
        Some(sd) => limit_to_room(sd, names, warn),
        None => names,
    };
    let named = parallel_map(names, workers(names.len() + 1), |(name, kind)| {
        let mut warnings: Vec<String> = Vec::new();
        let mut sink = |w: &dyn Display| warnings.push(w.to_string());
        let mut asked = None;
        let done = listed.as_ref().and_then(|(profiles, _)| {
            let (profile, dir) = match named_profile(profiles, name, *kind, &mut sink) {
                Ok(found) => found,
                Err(Skipped::NotAProfile) => return None,
                Err(Skipped::Failed) => return Some(Done::failed()),
            };
            let Ok(prior) = read_prior(&dir, profile.clone(), &mut sink) else { return Some(Done::failed()) };
            let running = state::autostarts(prior.as_deref());
            let (start, folded) = match cfg.policy {
                Policy::PerProfile => (!multiplex && running, false),
                Policy::Multiplex => {
                    let standalone = read_config(&dir, &mut sink).and_then(|c| c.standalone).unwrap_or(false);
                    let n = Named { running, standalone };
                    (n.starts(), n.folds())
                }
            };
            // The root serves it even if its own slot cannot be built.
            asked = folded.then(|| profile.clone());
            let mut done = one(builder, &contents, profile, Some(&dir), prior, start, &mut sink);
            if let Some(e) = &mut done.entry {
                e.folded_into_root = folded;
            }
            Some(done)
        });
        (done, asked, warnings)
    });
    // Every descriptor but the scan directory's and the home's is closed
    // before the root's slot and the sweep below.
    drop(listed);
    let folded: Vec<Profile> = named.iter().filter_map(|(_, asked, _)| asked.clone()).collect();
    let named = named.into_iter().map(|(done, _, warnings)| (done, warnings));
    let mut migrated = false;
    let mut root_started_for_folded = false;
    let root = 'root: {
        let mut warnings: Vec<String> = Vec::new();
        let mut sink = |w: &dyn Display| warnings.push(w.to_string());
        let mut prior = None;
        if let Some(home) = &home {
            if legacy_applies(cfg, home) {
                migrated = cfg.dry_run || migrate(cfg, home, &mut sink);
                prior = Some(state::RUNNING.to_string());
            } else {
                match read_prior(home, Profile::root(), &mut sink) {
                    Ok(p) => prior = p,
                    Err(()) => break 'root (Some(Done::failed()), warnings),
                }
            }
        }
        let running = state::autostarts(prior.as_deref());
        let start = match cfg.policy {
            Policy::PerProfile => running,
            Policy::Multiplex => {
                let parked = !running && home.as_ref().is_some_and(|h| crate::park::is_marked(h, &mut sink));
                if parked && !folded.is_empty() {
                    sink(&format_args!(
                        "profile gateway(s) {} asked to autostart, but the root profile is parked: gateway-default stays down",
                        folded.iter().map(Profile::as_str).collect::<Vec<_>>().join(", ")
                    ));
                }
                root_started_for_folded = !folded.is_empty() && !parked;
                boot_policy::root_starts(running, parked, !folded.is_empty())
            }
        };
        (Some(one(builder, &contents, Profile::root(), home.as_ref(), prior, start, &mut sink)), warnings)
    };
    let mut entries = Vec::new();
    let (mut scandir_unwritable, mut system_failures) = (false, 0);
    for (done, warnings) in std::iter::once(root).chain(named) {
        warnings.iter().for_each(|w| warn(w));
        if let Some(done) = done {
            scandir_unwritable |= done.unwritable;
            system_failures += usize::from(done.system);
            entries.extend(done.entry);
        }
    }
    if let Some(sd) = &scandir {
        warn_unstatable(sd, warn);
    }
    // A failed build removes its staging directory, unless that failed
    // too (no descriptor left to walk it): now that every other build has
    // let its descriptors go, sweep again.
    if system_failures > 0
        && let Some(sd) = scandir.as_ref()
    {
        match slot::sweep_staging(sd) {
            Ok(swept) => swept.leftovers.iter().for_each(|l| warn(l)),
            Err(e) => warn(&e),
        }
    }
    if let Some(home) = &home {
        let logged =
            if cfg.dry_run || entries.is_empty() { Ok(()) } else { append_boot_log(home, &entries, cfg.now, cfg.owner, cfg.policy, warn) };
        if let Err(e) = logged {
            warn_with(warn, &e, "the boot log is incomplete");
        }
    }
    Ok(Outcome { entries, migrated, scandir_unwritable, system_failures, folded, root_started_for_folded })
}

/// The named profiles the scan directory's s6-svscan can still supervise
/// (each slot is a service and a logger; the root's slot and the other
/// services there count too); the rest get a warning each: published,
/// they would stop every scan (s6 2.12+).
fn limit_to_room<'a>(scandir: &Dir, names: &'a [(OsString, Option<Kind>)], warn: Warn<'_>) -> &'a [(OsString, Option<Kind>)] {
    let census = match svscan::census(scandir) {
        Ok(c) => c,
        Err(e) => {
            warn(&e);
            return names;
        }
    };
    let slots = slot::registered(scandir).map(|r| r.len()).unwrap_or(0);
    let others = census.supervised.saturating_sub(2 * slots);
    let max = svscan::max_entries(scandir);
    // One slot is the root profile's.
    let room = (max.saturating_sub(others) / 2).saturating_sub(1);
    if names.len() <= room {
        return names;
    }
    for (name, _) in &names[room..] {
        let slot = format!("{}{}", slot::PREFIX, name.to_string_lossy());
        warn(&format_args!(
            "unable to publish {}: the s6-svscan of this scan directory supervises at most {max} services and loggers ({others} other services there)",
            scandir.child_path(OsStr::new(&slot)).display()
        ));
    }
    &names[..room]
}

/// Warns about the entries of the scan directory s6-svscan cannot stat.
fn warn_unstatable(scandir: &Dir, warn: Warn<'_>) {
    match svscan::census(scandir) {
        Ok(c) => c.unstatable.iter().for_each(|(name, e)| warn(&svscan::unstatable_warning(scandir, name, *e))),
        Err(e) => warn(&e),
    }
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

/// A profile's intent; an unreadable state file is a warning and no state
/// (upstream), unless the system failed us ([`resource_failure`]): then
/// the slot is not built (`Err`, with a warning), rather than built down.
fn read_prior(dir: &Dir, profile: Profile, warn: Warn<'_>) -> std::result::Result<Option<String>, ()> {
    match state::read_intent(dir) {
        Ok(prior) => Ok(prior),
        Err(e) if resource_failure(&e) => {
            warn_with(warn, &e, &format!("{} not built", slot::name(&profile)));
            Err(())
        }
        Err(e) => {
            warn_with(warn, &e, "treating as no prior state");
            Ok(None)
        }
    }
}

/// A failure of the system's resources (descriptors, memory, space, I/O),
/// not something the user left in the tree: the run must fail (111).
fn resource_failure(e: &Error) -> bool {
    matches!(e.errno(), Some(Errno::EMFILE | Errno::ENFILE | Errno::ENOMEM | Errno::ENOSPC | Errno::EDQUOT | Errno::EIO | Errno::ENOBUFS))
}

/// Why an entry of `profiles/` gave no slot.
enum Skipped {
    /// Not a profile (a warning says why where it looked like one).
    NotAProfile,
    /// It may be one, but the system failed us (a warning says so).
    Failed,
}

/// A profile's `config.yaml`; a bad one is a warning and counts as absent.
fn read_config(dir: &Dir, warn: Warn<'_>) -> Option<config_yaml::GatewayConfig> {
    config_yaml::read(dir).unwrap_or_else(|e| {
        warn_with(warn, &e, "treating it as absent");
        None
    })
}

/// Removes `gateway-<p>.tmp` directories (an older layout's staging name,
/// without the dot, which s6-svscan would supervise as a service): each is
/// first renamed to a dot-name, which takes it out of the scan, then
/// removed. Every one is a warning.
fn sweep_undotted_staging(scandir: &Dir, warn: Warn<'_>) {
    for name in slot::undotted_staging(scandir).unwrap_or_default() {
        let shown = printable(&scandir.child_path(&name).to_string_lossy()).into_owned();
        match slot::retire_undotted(scandir, &name) {
            Ok(()) => warn(&format_args!("removed {shown}: a stale staging directory s6-svscan would supervise as a service")),
            Err(e) => warn_with(warn, &e, "the stale staging directory stays"),
        }
    }
}

/// Names in a directory with their types from the listing.
type Listing = Vec<(OsString, Option<Kind>)>;

/// `profiles/` and its entries in byte order, with their types from the
/// directory listing. `None` when there is no usable `profiles/`.
/// `Err` when the system failed us ([`resource_failure`]).
fn list_profiles(home: &Dir, warn: Warn<'_>) -> Result<Option<(Dir, Listing)>> {
    let listed = home.open_dir_if_present(OsStr::new(PROFILES)).and_then(|profiles| match profiles {
        Some(profiles) => profiles.entries_typed(MAX_PROFILES).map(|names| Some((profiles, names))),
        None => Ok(None),
    });
    match listed {
        Ok(Some((profiles, mut names))) => {
            names.sort_unstable_by(|a, b| a.0.cmp(&b.0));
            Ok(Some((profiles, names)))
        }
        Ok(None) => Ok(None),
        Err(e) if resource_failure(&e) => Err(e),
        Err(e) => {
            warn_with(warn, &e, "no named profile reconciled");
            Ok(None)
        }
    }
}

/// One entry of `profiles/`: a usable named profile (a directory holding
/// a `SOUL.md`, with a valid name other than `default`) and its open
/// directory; else `None`, with a warning where it looks like a profile.
fn named_profile(profiles: &Dir, name: &OsStr, kind: Option<Kind>, warn: Warn<'_>) -> std::result::Result<(Profile, Dir), Skipped> {
    let path = profiles.child_path(name);
    let skip = |warn: Warn<'_>, e: &Error, then: &str| {
        if resource_failure(e) {
            warn_with(warn, e, &format!("{}{} not built", slot::PREFIX, printable(&name.to_string_lossy())));
            return Skipped::Failed;
        }
        warn_with(warn, e, then);
        Skipped::NotAProfile
    };
    let kind = match kind {
        Some(k) => k,
        None => match profiles.stat_at(name) {
            Ok(Some(st)) => st.kind,
            Ok(None) => return Err(Skipped::NotAProfile),
            Err(e) => return Err(skip(warn, &e, "skipped")),
        },
    };
    match kind {
        Kind::Dir => {}
        Kind::Symlink => {
            warn(&format_args!("unable to use {}: is a symlink (not followed); skipped", printable(&path.to_string_lossy())));
            return Err(Skipped::NotAProfile);
        }
        _ => return Err(Skipped::NotAProfile), // files and the like are not profiles
    }
    let dir = profiles.open_dir(name).map_err(|e| skip(warn, &e, "skipped"))?;
    let marker = OsStr::new(MARKER);
    match dir.exists_following(marker) {
        Ok(true) => {}
        Ok(false) => {
            if matches!(dir.stat_at(marker), Ok(Some(st)) if st.kind == Kind::Symlink) {
                let shown = path.join(MARKER).to_string_lossy().into_owned();
                warn(&format_args!("unable to use {}: is a dangling symlink; profile skipped", printable(&shown)));
            }
            return Err(Skipped::NotAProfile);
        }
        Err(e) => return Err(skip(warn, &e, "profile skipped")),
    }
    if name.as_bytes() == profile::ROOT.as_bytes() {
        warn(&format_args!(
            "{}/ exists: skipped, its slot would collide with the root profile's gateway-default",
            printable(&path.to_string_lossy())
        ));
        return Err(Skipped::NotAProfile);
    }
    match Profile::parse(name.as_bytes()) {
        Ok(p) => Ok((p, dir)),
        Err(why) => {
            warn(&format_args!("unable to use {}: {why}; skipped", printable(&path.to_string_lossy())));
            Err(Skipped::NotAProfile)
        }
    }
}

/// What reconciling one profile gave.
struct Done {
    /// `None` when its slot could not be built (a warning says why).
    entry: Option<Entry>,
    /// The failure was the scan directory's.
    unwritable: bool,
    /// The slot could not be built for a system reason.
    system: bool,
}

impl Done {
    /// A profile whose slot was not built for a system reason.
    fn failed() -> Done {
        Done { entry: None, unwritable: false, system: true }
    }
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
    let mut entry = Entry { profile, prior_state, action, prior_exit: PriorExit::Unknown, built: None, folded_into_root: false };
    if let Some(builder) = builder {
        if let Some(dir) = dir {
            remove_stale_files(dir, warn);
            state::sweep_stale_staging(dir).iter().for_each(|e| warn(e));
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
                // A refusal is the tree's content (a bad leftover); anything
                // else is the system's (ENOSPC, EMFILE, EIO, …).
                let system = !matches!(e.cause(), crate::error::Cause::Refused(_));
                return Done { entry: None, unwritable, system };
            }
        }
        entry.prior_exit = dir.map(state::read_prior_exit).unwrap_or(PriorExit::Unknown);
    }
    Done { entry: Some(entry), unwritable: false, system: false }
}

/// Whether a slot failed because its staging directory could not be
/// created in the scan directory for lack of permission or space.
fn cannot_write(scandir: &Dir, profile: &Profile, e: &Error) -> bool {
    e.tag() == Some(Tag::Mkdir)
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

#[cfg(test)]
mod tests;

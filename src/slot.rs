//! A profile's gateway slot: the s6 service directory `gateway-<profile>`
//! in a scan directory, rendered, built aside and published in one rename.
//!
//! Used by `hermes-reconcile` (every profile at boot) and `hermes-slot
//! register` (one profile at run time), so both build exactly the same
//! slot. The content is fixed by doc/design.md#slot and documented, file by file,
//! in `doc/hermes-reconcile.md`:
//!
//! * `type` (`longrun`), `run`, `finish`, `log/run`, and `down` when the
//!   gateway must not start by itself;
//! * the supervise skeleton ([`skeleton`]) in the slot and in `log/`, so
//!   the user can control a slot whose supervisor runs as root.
//!
//! The content digest is SHA-256 over those files (path, mode, length,
//! bytes). An existing slot whose files hash to the rendered digest is left
//! untouched; nothing extra is stored in the slot (the live files are
//! hashed again instead, so a slot edited by hand is noticed too).
//!
//! Building: the slot is made in `.gateway-<profile>.tmp` (s6-svscan skips
//! dot-names) through the fd layer, then renamed onto its real name: a
//! fresh name with `RENAME_NOREPLACE`, an existing slot swapped with
//! `RENAME_EXCHANGE` and the old tree removed afterwards. Nobody ever sees
//! a half-built slot under its real name. The staging directory is new and
//! only we can write it, so its entries are created and set by name. Run
//! as root, it is 0700 and root's until the slot is complete (checked once
//! opened: the scan directory is the user's, who could have put another
//! directory under that name), and only then is every object given to the
//! user through an fd pinned in it, the staging directory itself last
//! ([`handover`]): root never acts by name where the user can write.
//!
//! A staging directory left by an earlier, interrupted build is removed;
//! if it cannot be (made by root, we run as the user: upstream #60774) it
//! is renamed aside to `.gateway-<profile>.tmp.stale-<ns>` and reported.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::path::PathBuf;

use nix::errno::Errno;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result, Tag};
use crate::fs::Sync;
use crate::fs::handover::{self, Handover};
use crate::fs::publish::{self, Published, Rename, rename_at};
use crate::fs::tree::{self, Limits};
use crate::fs::{Dir, Kind, creation_mode_is_exact};
use crate::profile::Profile;
use crate::s6;
use crate::skeleton::{self, Owner};

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

/// Largest slot file read back when comparing with the rendered content.
const READ_BACK_CAP: u64 = 64 << 10;
/// Bounds for removing an old or leftover slot tree.
const TREE_LIMITS: Limits = Limits { depth: 16, entries: 10_000 };

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
fn is_aside(name: &[u8]) -> bool {
    [ASIDE_INFIX, GONE_INFIX].iter().any(|infix| name.windows(infix.len()).any(|w| w == infix.as_bytes()))
}

/// Why [`install`] refuses a slot that exists (`Existing::Refuse`).
const ALREADY: &str = "already registered";

fn already_registered(scandir: &Dir, real: &OsStr) -> Error {
    Error::refused("register", scandir.child_path(real), ALREADY).tagged(Tag::Exists)
}

/// Whether an error of [`install`] is its refusal of an existing slot.
pub fn is_already_registered(e: &Error) -> bool {
    e.tag() == Some(Tag::Exists)
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

    /// The digest as lowercase hex.
    pub fn digest_hex(&self) -> String {
        self.digest().iter().map(|b| format!("{b:02x}")).collect()
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
fn digest<'a>(files: impl Iterator<Item = (String, u32, &'a [u8])>) -> [u8; 32] {
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

/// Whether an existing slot may be replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Existing {
    /// Replace it if its content differs (reconcile).
    Replace,
    /// Refuse: the slot is already registered (`hermes-slot register`).
    Refuse,
}

/// What [`install`] did with the slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Built {
    /// There was no slot; there is one now.
    Created,
    /// A slot with other content was swapped for the new one.
    Replaced,
    /// The slot already had exactly this content; nothing was written.
    Unchanged,
}

/// Something left behind that could not be removed: not fatal, reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leftover {
    /// Why it could not be removed.
    pub error: Error,
    /// Its name in the scan directory now (moved aside, or where it was).
    pub left_at: PathBuf,
}

impl fmt::Display for Leftover {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}; left as {}", self.error, crate::msg::printable(&self.left_at.display().to_string()))
    }
}

/// The result of [`install`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installed {
    /// What was done.
    pub built: Built,
    /// Trees that could not be removed (see [`Leftover`]).
    pub leftovers: Vec<Leftover>,
}

/// Builds slots in one scan directory, for one owner.
#[derive(Debug, Clone)]
pub struct Builder<'a> {
    scandir: &'a Dir,
    owner: Owner,
    sync: Sync,
    parent: skeleton::Parent,
    /// The scan directory's entries when it was listed ([`Builder::knowing`]).
    listed: Option<BTreeSet<OsString>>,
}

/// Builds `slot` in `scandir` and publishes it: [`Builder::install`] for
/// a single slot.
pub fn install(scandir: &Dir, profile: &Profile, content: &Content, owner: Owner, existing: Existing) -> Result<Installed> {
    Builder::new(scandir, owner).install(profile, content, existing)
}

impl<'a> Builder<'a> {
    /// `owner`: `Owner::Chown` when run as root (the whole slot is given to
    /// the user), `Owner::Caller` when run as the user. Writes are synced
    /// unless the scan directory is in memory (tmpfs: fsync does nothing;
    /// s6-overlay's `/run` always is).
    pub fn new(scandir: &'a Dir, owner: Owner) -> Builder<'a> {
        let sync = if scandir.in_memory().unwrap_or(false) { Sync::No } else { Sync::Yes };
        // In a setgid scan directory, new directories inherit setgid (and a
        // group): their modes must then be set, and sometimes read back.
        let parent = match scandir.stat() {
            Ok(st) if st.mode & 0o2000 == 0 => skeleton::Parent::Plain,
            _ => skeleton::Parent::Setgid,
        };
        Builder { scandir, owner, sync, parent, listed: None }
    }

    /// Tells the builder what the scan directory held when it was just
    /// listed: a slot whose name was not there is built without looking
    /// for an existing one first (one system call less per slot at boot).
    /// Nothing is lost if one was published since: the publishing rename
    /// never replaces blindly ([`publish::publish_with`]).
    pub fn knowing(self, entries: BTreeSet<OsString>) -> Builder<'a> {
        Builder { listed: Some(entries), ..self }
    }

    /// The scan directory slots are built in.
    pub fn scandir(&self) -> &'a Dir {
        self.scandir
    }

    /// Builds `slot` and publishes it (module docs). Errors leave no
    /// staging directory behind when it can be removed.
    pub fn install(&self, profile: &Profile, content: &Content, existing: Existing) -> Result<Installed> {
        let (scandir, owner) = (self.scandir, self.owner);
        let real = OsString::from(name(profile));
        let staging = OsString::from(staging_name(profile));
        if profile.as_str().len() > PROFILE_MAX {
            return Err(Error::refused(
                "build",
                scandir.child_path(&real),
                format!("profile name longer than {PROFILE_MAX} bytes: no slot (file name and s6-svscan limits)"),
            ));
        }
        let present = match &self.listed {
            Some(listed) if !listed.contains(&real) => None,
            _ => scandir.stat_at(&real)?,
        };
        match (present, existing) {
            (None, _) => {}
            (Some(_), Existing::Refuse) => return Err(already_registered(scandir, &real)),
            (Some(st), Existing::Replace) => {
                if st.kind == Kind::Dir && same_content(scandir, &real, content) {
                    return Ok(Installed { built: Built::Unchanged, leftovers: Vec::new() });
                }
            }
        }
        let mut leftovers = Vec::new();
        // Root builds in private (module docs).
        let private = matches!(owner, Owner::Chown { .. });
        let mode = if private { 0o700 } else { 0o755 };
        if !scandir.mkdir_at(&staging, mode)? {
            leftovers.extend(clear(scandir, &staging)?);
            if !scandir.mkdir_at(&staging, mode)? {
                return Err(Error::refused("build", scandir.child_path(&staging), "keeps reappearing"));
            }
        }
        let opened = scandir.open_dir(&staging).and_then(|top| if private { handover::check_private(&top).map(|_| top) } else { Ok(top) });
        if let Err(e) = opened.and_then(|top| fill(&top, content, owner, self.sync, self.parent)) {
            let _ = tree::remove_tree(scandir, &staging, TREE_LIMITS);
            return Err(e);
        }
        let built = match existing {
            Existing::Replace => match publish::publish_with(scandir, &staging, &real, self.sync) {
                Ok(Published::New) => Built::Created,
                Ok(Published::Replaced) => {
                    // The old slot is under the staging name now.
                    leftovers.extend(
                        clear(scandir, &staging).unwrap_or_else(|error| Some(Leftover { error, left_at: scandir.child_path(&staging) })),
                    );
                    Built::Replaced
                }
                Err(e) => {
                    let _ = tree::remove_tree(scandir, &staging, TREE_LIMITS);
                    return Err(e);
                }
            },
            Existing::Refuse => {
                let placed = scandir
                    .open_dir(&staging)
                    .and_then(|d| d.sync())
                    .and_then(|()| rename_at(scandir, &staging, scandir, &real, Rename::NoReplace))
                    .and_then(|()| scandir.sync());
                if let Err(e) = placed {
                    let _ = tree::remove_tree(scandir, &staging, TREE_LIMITS);
                    return Err(if e.errno() == Some(Errno::EEXIST) { already_registered(scandir, &real) } else { e });
                }
                Built::Created
            }
        };
        Ok(Installed { built, leftovers })
    }
}

/// Writes everything into the (empty, fresh) staging directory `top`.
fn fill(top: &Dir, content: &Content, owner: Owner, sync: Sync, parent: skeleton::Parent) -> Result<()> {
    let (uid, gid) = match owner {
        Owner::Chown { uid, gid } => (uid, gid),
        Owner::Caller { .. } => return fill_as_caller(top, content, owner, sync, parent),
    };
    // Root: everything root's while `top` is 0700, then handed over.
    let me = Owner::Caller { uid: nix::unistd::geteuid().as_raw(), gid: nix::unistd::getegid().as_raw() };
    let log = fresh_subdir(top, s6::LOG, false)?;
    for f in &content.files {
        let dir = if f.dir.is_some() { &log } else { top };
        dir.create_public_file(OsStr::new(f.name), f.mode, &f.data, None, sync)?;
    }
    // Plain: the hand-over below sets every mode exactly anyway.
    skeleton::seed_fresh(top, Some(&log), me, skeleton::Parent::Plain)?;
    let mut hand = Handover::new(uid, gid);
    for (dir, sub) in [(&log, Some(s6::LOG)), (top, None)] {
        for f in content.files.iter().filter(|f| f.dir == sub) {
            hand.pin(dir, OsStr::new(f.name), f.mode)?;
        }
        skeleton::pin_fresh(dir, &mut hand)?;
        if sub.is_none() {
            hand.pin(top, OsStr::new(s6::LOG), 0o755)?;
        }
    }
    hand.give(Some((top, 0o755)))
}

/// The user building its own slot: nobody else can write `top`.
fn fill_as_caller(top: &Dir, content: &Content, owner: Owner, sync: Sync, parent: skeleton::Parent) -> Result<()> {
    let exact = parent == skeleton::Parent::Plain && creation_mode_is_exact(0o755);
    if !exact {
        top.chmod(0o755)?;
    }
    let log = fresh_subdir(top, s6::LOG, exact)?;
    for f in &content.files {
        let dir = if f.dir.is_some() { &log } else { top };
        dir.create_public_file(OsStr::new(f.name), f.mode, &f.data, None, sync)?;
    }
    skeleton::seed_fresh(top, Some(&log), owner, parent)
}

/// Creates the subdirectory `name` of a fresh directory, mode 0755 exactly
/// (`exact`: creation gives that mode already).
fn fresh_subdir(parent: &Dir, name: &str, exact: bool) -> Result<Dir> {
    let name = OsStr::new(name);
    if !parent.mkdir_at(name, 0o755)? {
        return Err(Error::refused("build", parent.child_path(name), "appeared in a fresh staging directory"));
    }
    if !exact {
        parent.chmod_at(name, 0o755)?;
    }
    parent.open_dir(name)
}

/// Whether the live slot `real` holds exactly the rendered content: its
/// files (read back with their modes) hash to the rendered digest, and
/// there is no `down` file when there should be none.
fn same_content(scandir: &Dir, real: &OsStr, content: &Content) -> bool {
    let Ok(live) = scandir.open_dir(real) else { return false };
    let Ok(log) = live.open_dir(OsStr::new(s6::LOG)) else { return false };
    let mut read = Vec::with_capacity(content.files.len());
    for f in &content.files {
        let dir = if f.dir.is_some() { &log } else { &live };
        let name = OsStr::new(f.name);
        let Ok(Some(st)) = dir.stat_at(name) else { return false };
        let Ok(Some(data)) = dir.read_file(name, READ_BACK_CAP) else { return false };
        if st.kind != Kind::File {
            return false;
        }
        read.push((f.path(), st.mode, data));
    }
    let unwanted_down = content.start == Start::Up && !matches!(live.stat_at(OsStr::new(s6::DOWN)), Ok(None));
    !unwanted_down && digest(read.iter().map(|(p, m, d)| (p.clone(), *m, &d[..]))) == content.digest()
}

/// Removes the tree `name` in `scandir`; if it cannot be removed, renames
/// it aside (`<name>.stale-<ns>`, or a fresh suffix for a name already
/// aside) and returns that as a [`Leftover`]. `Err` if it could be neither
/// removed nor moved.
pub fn clear(scandir: &Dir, name: &OsStr) -> Result<Option<Leftover>> {
    let error = match tree::remove_tree(scandir, name, TREE_LIMITS) {
        Ok(_) => return Ok(None),
        Err(e) => e,
    };
    let base = name.to_string_lossy();
    let base = match base.find(ASIDE_INFIX) {
        Some(i) => &base[..i + STAGING_SUFFIX.len()],
        None => &base[..],
    };
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    for n in 0..3u128 {
        let aside = OsString::from(format!("{base}.stale-{}", nanos + n));
        match rename_at(scandir, name, scandir, &aside, Rename::NoReplace) {
            Ok(()) => return Ok(Some(Leftover { error, left_at: scandir.child_path(&aside) })),
            Err(e) if e.errno() == Some(Errno::EEXIST) => continue,
            Err(_) => break,
        }
    }
    Err(error)
}

/// What [`sweep_staging`] left in the scan directory.
#[derive(Debug, Default)]
pub struct Swept {
    /// What could not be removed.
    pub leftovers: Vec<Leftover>,
    /// Every other entry (the slots among them), for [`Builder::knowing`].
    pub entries: BTreeSet<OsString>,
}

/// Clears what interrupted builds left in `scandir`, for every profile:
/// staging directories are removed (or moved aside and reported, see
/// [`clear`]); directories already moved aside are removed if possible,
/// silently otherwise (they were reported when moved).
pub fn sweep_staging(scandir: &Dir) -> Result<Swept> {
    // s6-svscan supervises at most 160,000 services and loggers (-C's
    // ceiling; 1000 by default since 2.12).
    const SCANDIR_MAX: usize = 200_000;
    let mut swept = Swept::default();
    let left = &mut swept.leftovers;
    for name in scandir.entries(SCANDIR_MAX)? {
        let bytes = name.as_encoded_bytes();
        if !is_staging_name(bytes) {
            swept.entries.insert(name);
            continue;
        }
        if is_aside(bytes) {
            let _ = tree::remove_tree(scandir, &name, TREE_LIMITS);
            continue;
        }
        match clear(scandir, &name) {
            Ok(None) => {}
            Ok(Some(l)) => left.push(l),
            Err(error) => left.push(Leftover { left_at: scandir.child_path(&name), error }),
        }
    }
    Ok(swept)
}

/// `gateway-<p>.tmp` directories in `scandir` (`<p>` a valid profile
/// name): an older layout's staging directories, without the dot, which
/// s6-svscan takes for services. Never a slot: no profile name holds a dot.
pub fn undotted_staging(scandir: &Dir) -> Result<Vec<OsString>> {
    let mut out = Vec::new();
    for (name, kind) in scandir.entries_typed(200_000)? {
        let Some(p) = name.as_encoded_bytes().strip_prefix(PREFIX.as_bytes()).and_then(|r| r.strip_suffix(STAGING_SUFFIX.as_bytes()))
        else {
            continue;
        };
        let kind = match kind {
            Some(k) => Some(k),
            None => scandir.stat_at(&name)?.map(|st| st.kind),
        };
        if kind == Some(Kind::Dir) && Profile::parse(p).is_ok() {
            out.push(name);
        }
    }
    out.sort();
    Ok(out)
}

/// Takes an undotted staging directory out of the scan and removes it. A
/// supervisor already running there is told to bring its service down
/// and exit (`dx`, when we may write its control FIFO): a renamed service
/// directory keeps its supervisor until s6-svscan prunes. Then it is
/// renamed to `.gateway-<p>.tmp.stale-<ns>` (s6-svscan skips dot-names)
/// and removed; what cannot be removed yet (files a root supervisor made)
/// stays under that dot-name for the boot sweeps.
pub fn retire_undotted(scandir: &Dir, name: &OsStr) -> Result<()> {
    if let Ok(dir) = scandir.open_dir(name)
        && s6::status::supervised(&dir).unwrap_or(false)
    {
        let _ = s6::control::svc(&dir, b"dx");
    }
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    for n in 0..3u128 {
        let aside = OsString::from(format!(".{}.stale-{}", name.to_string_lossy(), nanos + n));
        match rename_at(scandir, name, scandir, &aside, Rename::NoReplace) {
            Ok(()) => {
                let _ = tree::remove_tree(scandir, &aside, TREE_LIMITS);
                return Ok(());
            }
            Err(e) if e.errno() == Some(Errno::EEXIST) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(Error::refused("move aside", scandir.child_path(name), "no free name"))
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
        use std::os::unix::fs::PermissionsExt;
        let root = std::env::temp_dir().join(format!("hermes-s6-slot-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let (bin, data, cwd) = (root.join("bin"), root.join("data"), root.join("scan").join(dir));
        for d in [&bin, &data, &cwd] {
            std::fs::create_dir_all(d).unwrap();
        }
        let record = root.join("argv");
        let stub = |name: &str, body: &str| {
            let p = bin.join(name);
            std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
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
        let page = include_str!("../doc/hermes-reconcile.md");
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
        assert_eq!(up.digest_hex().len(), 64);
        assert_eq!(
            up.files.iter().map(|f| (f.path(), f.mode)).collect::<Vec<_>>(),
            [("type".into(), 0o644), ("run".into(), 0o755), ("finish".into(), 0o755), ("log/run".into(), 0o755)]
        );
    }
}

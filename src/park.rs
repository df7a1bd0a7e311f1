//! A parked profile: stopped, and kept down across supervisor restarts
//! and reboots until it is unparked (`hermes-slot park`/`unpark`).
//!
//! Three records, each for one kind of restart:
//! * the slot's `down` file: a supervisor that starts again (after `s6-svc
//!   -x`, a rescan, s6-svscan's own restart) leaves the gateway down;
//! * `desired_state: stopped` in `gateway_state.json`: the boot reconcile
//!   registers the slot down under either rule;
//! * the marker file `gateway.parked` in the profile's home: the multiplex
//!   rule starts the root slot for named profiles that asked to run, but
//!   never a parked root. A marker counts only while the intent is not
//!   `running`: a gateway started since (by hermes-slot or by upstream's
//!   own code, which knows nothing of markers) is no longer parked.

use std::ffi::OsStr;
use std::fmt::Display;

use crate::error::Result;
use crate::fs::publish::replace_file;
use crate::fs::{Dir, Kind, Owner};

/// The marker in a parked profile's home.
pub const MARKER: &str = "gateway.parked";

/// What the marker says, for whoever finds it.
const TEXT: &str = "parked by hermes-slot park: kept down at boot; `hermes-slot unpark <profile>` lifts it\n";

/// Whether `home` holds the marker (a regular file, not followed). Any
/// other kind of entry under that name is not a marker (warned).
pub fn is_marked(home: &Dir, warn: &mut dyn FnMut(&dyn Display)) -> bool {
    match home.stat_at(OsStr::new(MARKER)) {
        Ok(Some(st)) if st.kind == Kind::File => true,
        Ok(Some(st)) => {
            let shown = home.child_path(OsStr::new(MARKER));
            warn(&format_args!(
                "ignoring {}: {}, not a park marker",
                crate::msg::printable(&shown.to_string_lossy()),
                crate::fs::dir_describe(st.kind)
            ));
            false
        }
        Ok(None) => false,
        Err(e) => {
            warn(&format_args!("{e}; treating the profile as not parked"));
            false
        }
    }
}

/// Writes the marker (replacing one that is there).
pub fn mark(home: &Dir, owner: Owner) -> Result<()> {
    replace_file(home, OsStr::new(MARKER), TEXT, 0o644, owner)
}

/// Removes the marker; absent is fine.
pub fn unmark(home: &Dir) -> Result<()> {
    home.unlink_at(OsStr::new(MARKER)).map(drop)
}

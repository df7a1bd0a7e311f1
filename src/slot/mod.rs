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
//! * the supervise skeleton ([`skeleton`](crate::skeleton)) in the slot and
//!   in `log/`, so the user can control a slot whose supervisor runs as root.
//!
//! In four parts, all reached from here:
//!
//! * `names`: the names a slot and its staging, lock and removed copies
//!   take in the scan directory, and the profiles registered there;
//! * `content`: the slot's files, rendered ([`render`], [`Content`]), and
//!   their digest;
//! * `build`: building a slot aside and publishing it ([`install`],
//!   [`Builder`]);
//! * `leftovers`: what interrupted builds and older layouts leave in the
//!   scan directory, and how it goes ([`sweep_staging`], [`clear`],
//!   [`retire_undotted`]).

mod build;
mod content;
mod leftovers;
mod names;

pub use build::{Builder, Built, Existing, Installed, install, is_already_registered};
pub use content::{Content, File, RunAs, Start, finish_script, log_run_script, render, run_script};
pub use leftovers::{Leftover, Swept, clear, retire_undotted, sweep_staging, undotted_staging};
pub use names::{
    ASIDE_INFIX, GONE_INFIX, LOCK_SUFFIX, PREFIX, PROFILE_MAX, STAGING_PREFIX, STAGING_SUFFIX, gone_name, gone_prefix, is_staging_name,
    lock_name, name, registered, staging_name,
};

//! hermes-s6: the shared library behind the hermes-s6 tools.
//!
//! Each tool is one module under [`tool`] with a `main(argv) -> ExitCode`;
//! `bins/` only hands `argv` over. The mechanisms live here:
//!
//! * [`fs`]: file-descriptor based filesystem operations, safe to run as
//!   root inside trees the unprivileged user can write (DESIGN §4);
//! * [`s6`]: names and modes of s6's on-disk protocol;
//! * [`skeleton`]: the supervise skeleton that lets the user control a service;
//! * [`user`]: accounts from `/etc/passwd` and `/etc/group`, privilege drop;
//! * [`profile`], [`state`], [`container`]: profile names, the recorded
//!   intent and lifecycle ledger (untrusted JSON), the container's command;
//! * [`slot`]: a profile's gateway slot, rendered, built and published;
//! * [`reconcile`]: the boot reconcile of every profile's slot;
//! * [`error`], [`msg`], [`cli`]: errors, skarnet-style messages and exit
//!   codes, option parsing conventions.
//!
//! The library never prints and never exits; tools map outcomes to messages.

pub mod cli;
pub mod container;
pub mod error;
pub mod fs;
pub mod msg;
pub mod profile;
pub mod reconcile;
pub mod s6;
pub mod skeleton;
pub mod slot;
pub mod state;
pub mod tool;
pub mod user;

pub use error::{Error, Result};

//! hermes-s6: the shared library behind the hermes-s6 tools.
//!
//! Each tool is one module under [`tool`] with a `main(argv) -> ExitCode`;
//! `bins/` only hands `argv` over. The mechanisms live here:
//!
//! * [`fs`]: file-descriptor based filesystem operations, safe to run as
//!   root inside trees the unprivileged user can write (doc/design.md#fd-safety),
//!   who owns what a tool creates there ([`fs::Owner`]), files replaced
//!   by one rename ([`fs::publish::replace_file`]);
//! * [`layout`]: the image's default paths; how tools pick `$HERMES_HOME`
//!   and the gateway scan directory;
//! * [`s6`]: names and modes of s6's on-disk protocol;
//! * [`skeleton`]: the supervise skeleton that lets the user control a service;
//! * [`perms`]: the `s6-svperms -G/-E` model applied through the fd layer,
//!   and what the user can do with a service;
//! * [`scandir`]: scan directories per topology, leftovers of slot builds;
//! * [`boot_check`]: what the real s6-overlay boot needs that a container
//!   may lack (the doctor's `condition:` lines);
//! * [`user`]: accounts from `/etc/passwd` and `/etc/group`, privilege drop;
//! * [`exec`]: chain loading into the next program, exit 126/127 on failure;
//! * [`truthy`]: the truthy words of each switch, one function per upstream rule;
//! * [`profile`], [`state`], [`container`]: profile names, the recorded
//!   intent and lifecycle ledger (untrusted JSON), the container's command;
//! * [`json_text`]: JSON read as Python reads it, members found by byte
//!   span so that a rewrite keeps every other byte;
//! * [`slot`]: a profile's gateway slot: its names, its content rendered,
//!   built and published, the leftovers of interrupted builds swept;
//! * [`reconcile`]: the boot reconcile of every profile's slot, by the
//!   rule [`boot_policy`] picks, reading [`config_yaml`], its builds spread
//!   over [`thread_pool`], its log stamped by [`local_time`];
//! * [`park`]: the marker that keeps a parked profile down at boot;
//! * [`lifecycle`]: a slot at run time: register, unregister, control,
//!   observe, with waits on s6's events instead of sleeps;
//! * [`planned_stop`], [`port`]: the marker a stop leaves for the gateway,
//!   the deterministic port of a profile name;
//! * [`error`], [`msg`], [`cli`]: errors, skarnet-style messages and exit
//!   codes, option parsing conventions.
//!
//! The library never prints and never exits; tools map outcomes to messages.

#![warn(missing_docs)]

pub mod boot_check;
pub mod boot_policy;
pub mod cli;
pub mod config_yaml;
pub mod container;
pub mod error;
pub mod exec;
pub mod fs;
pub mod json_text;
pub mod layout;
pub mod lifecycle;
pub mod local_time;
pub mod msg;
pub mod park;
pub mod perms;
pub mod planned_stop;
pub mod port;
pub mod profile;
pub mod reconcile;
pub mod s6;
pub mod scandir;
pub mod skeleton;
pub mod slot;
pub mod state;
pub mod thread_pool;
pub mod tool;
pub mod truthy;
pub mod user;

pub use error::{Error, Result};

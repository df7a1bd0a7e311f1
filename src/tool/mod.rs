//! One module per tool; each exposes `PROG`, its synopsis (`USAGE`;
//! hermes-slot's `usage()`, built from its command table) and
//! `main(argv) -> ExitCode`, and reads like the tool's page in `doc/`.
//! [`multicall`] is the installed executable that runs them all.

pub mod dashboard_finish;
pub mod dashboard_run;
pub mod multicall;
pub mod reconcile;
pub mod seed_supervise;
pub mod slot;
pub mod svscan_perms;

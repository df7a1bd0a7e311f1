//! s6's on-disk protocol: the names and modes that s6-supervise and
//! s6-svscan use in a service directory and a scan directory.
//! Every literal of that protocol lives here (doc/design.md#s6).

pub mod control;
pub mod listen;
pub mod status;
pub mod svscan;

/// The fifodir for event subscribers (top level of the service directory
/// since the first s6 release; there is no `supervise/event` in s6).
pub const EVENT: &str = "event";
/// The supervisor's private directory.
pub const SUPERVISE: &str = "supervise";
/// `supervise/control`: the command FIFO, one byte per command.
pub const CONTROL: &str = "control";
/// `supervise/lock`: fcntl-locked while a supervisor runs.
pub const LOCK: &str = "lock";
/// `supervise/status`: the status record (35 bytes, 43 in s6 2.13.x).
pub const STATUS: &str = "status";
/// Present in the service directory: the service starts wanted down.
pub const DOWN: &str = "down";
/// The logger's service directory inside a service directory.
pub const LOG: &str = "log";
/// A scan directory's control directory.
pub const SVSCAN_DIR: &str = ".s6-svscan";

/// Mode s6-supervise gives a fresh `event/`: setgid + sticky, group may
/// subscribe (`rwx-ws--T`).
pub const EVENT_MODE: u32 = 0o3730;

//! File-descriptor based filesystem operations (doc/design.md#fd-safety).
//!
//! Everything here is safe to run as root inside a tree that an
//! unprivileged user can write while we work:
//!
//! * a tree is entered through an anchor, [`Dir::open`], whose path is
//!   trusted up to its parent; its last component is never followed;
//! * below the anchor every step is one component, opened relative to a
//!   directory fd with `O_NOFOLLOW`; a multi-component path never reaches a
//!   system call;
//! * decisions are made with `fstat` on the very fd that is then acted on
//!   (`fchown`, `fchmod`, `fchownat(fd, "", AT_EMPTY_PATH)`), so a swap
//!   between check and use changes nothing;
//! * FIFOs, devices and sockets are only ever pinned with `O_PATH`, never
//!   opened for I/O, so a planted FIFO cannot hang a boot;
//! * recursive work ([`tree`]) keeps its own stack, is bounded in depth and
//!   entries, and does not cross filesystems;
//! * replacing a directory or a file is build-aside-then-rename
//!   ([`publish`], [`publish::replace_file`]);
//! * what root builds for the user is built where only root can write,
//!   then given away through fds, the top last ([`handover`]); a file
//!   root writes for the user is given to them through the fd it was
//!   created with, never by name ([`Owner`]).

mod dir;
pub mod handover;
mod owner;
pub mod publish;
pub mod tree;

pub use dir::{Dir, Kind, Node, Stat, Version, creation_mode_is_exact, describe as dir_describe};
pub use owner::Owner;

/// Whether writes are made durable with fsync before going on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sync {
    /// fsync files and directories (any disk-backed filesystem).
    Yes,
    /// Skip fsync: on tmpfs and ramfs it does nothing at all.
    No,
}

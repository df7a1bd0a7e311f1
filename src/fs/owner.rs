//! Who owns what a tool creates in the user's trees.

/// Who the created entries belong to.
///
/// [`Owner::for_caller`], which picks one for an account, lives with the
/// accounts (`crate::user`), above this layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    /// Run as root: chown every created entry to this uid:gid.
    Chown {
        /// The user.
        uid: u32,
        /// Their group.
        gid: u32,
    },
    /// Run as the user itself: what we create is already theirs.
    Caller {
        /// The caller's uid.
        uid: u32,
        /// The caller's gid.
        gid: u32,
    },
}

impl Owner {
    /// The user's uid and gid, whoever creates.
    pub(crate) fn ids(self) -> (u32, u32) {
        match self {
            Owner::Chown { uid, gid } | Owner::Caller { uid, gid } => (uid, gid),
        }
    }

    /// What a new file is given to, through the fd it was created with:
    /// root gives what it writes to the user; anyone else writes as itself.
    pub(crate) fn chown_to(self) -> Option<(u32, u32)> {
        match self {
            Owner::Chown { uid, gid } => Some((uid, gid)),
            Owner::Caller { .. } => None,
        }
    }
}

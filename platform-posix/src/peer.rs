//! Who is at the other end (the [`Os`]'s `peer_cred`: `SO_PEERCRED` on
//! Linux, `getpeereid` and `LOCAL_PEERPID` on macOS) of the socket, and whether the
//! [`UidPolicy`] lets them in.
//!
//! The kernel records the credentials when the connection is made (connect
//! side) or when the socket started listening (listen side); neither side
//! can forge them. Both sides check. Reference: unix(7), `SO_PEERCRED`.

use crate::error::{Error, Result};
use crate::Os;
use rustix::fd::BorrowedFd;

/// The peer's process credentials, as the kernel recorded them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PeerCred {
    /// Process id (of the peer when it connected or listened).
    pub pid: i32,
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
}

/// Which peers may connect (checked on both sides with the peer's credentials).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum UidPolicy {
    /// Only processes of our own effective uid (the default).
    #[default]
    SameUid,
    /// Only these uids.
    Uids(Vec<u32>),
    /// Anyone who can reach the socket.
    Any,
}

impl UidPolicy {
    /// Whether `uid` passes.
    pub fn allows(&self, uid: u32) -> bool {
        match self {
            UidPolicy::SameUid => uid == rustix::process::geteuid().as_raw(),
            UidPolicy::Uids(set) => set.contains(&uid),
            UidPolicy::Any => true,
        }
    }
}

/// Read the peer's credentials and apply `policy`.
pub fn check<O: Os>(sock: BorrowedFd<'_>, policy: &UidPolicy) -> Result<PeerCred> {
    let cred = O::peer_cred(sock)?;
    if policy.allows(cred.uid) {
        Ok(cred)
    } else {
        Err(Error::PermissionDenied { uid: cred.uid })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies() {
        let me = rustix::process::geteuid().as_raw();
        assert!(UidPolicy::SameUid.allows(me));
        assert!(!UidPolicy::SameUid.allows(me.wrapping_add(1)));
        assert!(UidPolicy::Any.allows(12345));
        assert!(UidPolicy::Uids(vec![me]).allows(me));
        assert!(!UidPolicy::Uids(vec![]).allows(me));
    }
}

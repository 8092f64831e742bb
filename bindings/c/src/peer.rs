//! Views of the peer and of the ring counters.

/// The peer is alive (as of the last probe).
pub const MEMTUBE_PEER_STATE_ALIVE: i32 = 0;
/// The peer closed cleanly.
pub const MEMTUBE_PEER_STATE_CLOSED: i32 = 1;
/// The peer died (its socket closed without a clean close).
pub const MEMTUBE_PEER_STATE_GONE: i32 = 2;

pub(crate) fn state_code(s: mt::PeerState) -> i32 {
    match s {
        mt::PeerState::Alive => MEMTUBE_PEER_STATE_ALIVE,
        mt::PeerState::Closed => MEMTUBE_PEER_STATE_CLOSED,
        mt::PeerState::Gone => MEMTUBE_PEER_STATE_GONE,
    }
}

/// The state of a region handle's peer: CLOSED once its role closed; with
/// `probe`, GONE once the process its role records has exited; else ALIVE.
pub(crate) fn ring_state(closed: bool, probe: bool, holder: Option<mt::ring::Holder>) -> i32 {
    if closed {
        MEMTUBE_PEER_STATE_CLOSED
    } else if probe && holder.is_some_and(mt::ring::is_gone) {
        MEMTUBE_PEER_STATE_GONE
    } else {
        MEMTUBE_PEER_STATE_ALIVE
    }
}

/// The peer's process credentials, as the kernel recorded them when the
/// connection was made.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct memtube_peer_cred {
    /// Process id.
    pub pid: i32,
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
}

/// A ring's counters. Read field by field while the ring runs: may be
/// slightly inconsistent or lag by one batch.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct memtube_stats {
    /// Messages the producer published.
    pub messages_committed: u64,
    /// Payload bytes the producer published.
    pub bytes_committed: u64,
    /// Times a reservation found the ring full on its first try.
    pub full_events: u64,
    /// Wake calls the producer made.
    pub producer_wakes: u64,
    /// Messages the consumer released.
    pub messages_released: u64,
    /// Payload bytes the consumer released.
    pub bytes_released: u64,
    /// Wake calls the consumer made.
    pub consumer_wakes: u64,
}

impl From<mt::ring::Stats> for memtube_stats {
    fn from(s: mt::ring::Stats) -> Self {
        memtube_stats {
            messages_committed: s.messages_committed,
            bytes_committed: s.bytes_committed,
            full_events: s.full_events,
            producer_wakes: s.producer_wakes,
            messages_released: s.messages_released,
            bytes_released: s.bytes_released,
            consumer_wakes: s.consumer_wakes,
        }
    }
}

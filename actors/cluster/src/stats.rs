//! What the transport counts, and the snapshot it is read through.

use std::sync::atomic::{AtomicU64, Ordering};

/// A snapshot of the transport's counters since it started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClusterStats {
    /// Messages handed to a link: raft envelopes and forwarded requests.
    pub messages_sent: u64,
    /// Messages dropped, or requests refused, because the node had no link.
    pub messages_dropped_no_link: u64,
    /// Messages from other nodes that decoded and reached the handler.
    pub messages_received: u64,
    /// Payloads from other nodes that did not decode (another version, malformed bytes):
    /// inbound messages and answers to forwarded requests.
    pub messages_refused: u64,
}

/// The live counters behind [`ClusterStats`], shared by the inbox, the transport and the
/// forwarding calls.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    sent: AtomicU64,
    dropped_no_link: AtomicU64,
    received: AtomicU64,
    refused: AtomicU64,
}

impl Counters {
    pub(crate) fn sent(&self) {
        self.sent.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn dropped_no_link(&self) {
        self.dropped_no_link.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn received(&self) {
        self.received.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn refused(&self) {
        self.refused.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> ClusterStats {
        ClusterStats {
            messages_sent: self.sent.load(Ordering::Relaxed),
            messages_dropped_no_link: self.dropped_no_link.load(Ordering::Relaxed),
            messages_received: self.received.load(Ordering::Relaxed),
            messages_refused: self.refused.load(Ordering::Relaxed),
        }
    }
}

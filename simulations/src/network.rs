//! The simulated network: a [`Transport`] that queues envelopes for the simulator, and the
//! model that decides what becomes of each (delay, loss, duplication, reordering, cut
//! links).

use std::collections::BTreeSet;

use inferadb_raft::transport::{PeerEnvelope, Transport};
use parking_lot::Mutex;

/// A node's outgoing side: envelopes wait here until the simulator routes them.
#[derive(Default)]
pub struct SimTransport {
    outbox: Mutex<Vec<PeerEnvelope>>,
}

impl Transport for SimTransport {
    fn send(&self, envelope: PeerEnvelope) {
        self.outbox.lock().push(envelope);
    }
}

impl SimTransport {
    /// Takes every envelope sent so far, in send order.
    pub fn take(&self) -> Vec<PeerEnvelope> {
        std::mem::take(&mut *self.outbox.lock())
    }
}

/// What the network does to messages now.
#[derive(Debug, Clone, Default)]
pub struct NetworkModel {
    /// Smallest delivery delay, in simulated ms.
    pub delay_min: u64,
    /// Largest delivery delay without reordering, in simulated ms.
    pub delay_max: u64,
    /// Percent of messages lost.
    pub drop_percent: u32,
    /// Percent of messages delivered twice.
    pub dup_percent: u32,
    /// Percent of messages held back by up to `reorder_extra` ms (so later ones overtake).
    pub reorder_percent: u32,
    /// The extra delay of a held-back message.
    pub reorder_extra: u64,
    /// Cut links, (from, to).
    pub cut: BTreeSet<(u64, u64)>,
}

impl NetworkModel {
    /// A healthy network: 1–5 ms delays, nothing lost.
    pub fn healthy() -> Self {
        NetworkModel {
            delay_min: 1,
            delay_max: 5,
            reorder_extra: 40,
            ..NetworkModel::default()
        }
    }

    /// Whether `from` can reach `to`.
    pub fn connected(&self, from: u64, to: u64) -> bool {
        !self.cut.contains(&(from, to))
    }

    /// Cuts every link between the two sides.
    pub fn partition(&mut self, side: &[u64], others: &[u64]) {
        for &a in side {
            for &b in others {
                self.cut.insert((a, b));
                self.cut.insert((b, a));
            }
        }
    }

    /// A healthy network whose delays reach `delay_max` ms (the run's latency profile).
    pub fn with_latency(delay_max: u64) -> Self {
        NetworkModel {
            delay_max: delay_max.max(1),
            ..NetworkModel::healthy()
        }
    }

    /// Restores every link and stops every loss, duplication and reordering (the latency
    /// profile stays).
    pub fn heal(&mut self) {
        *self = NetworkModel::with_latency(self.delay_max);
    }
}

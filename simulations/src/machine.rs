//! The simulated nodes' state machine: a ledger of applied writes with a state root per
//! applied index (a hash chain), so the checkers can compare replicas height by height.

use std::collections::BTreeMap;

use inferadb_raft::group::StateMachine;

/// A root at an index: BLAKE3 of the previous root, the index and the data.
pub type Root = [u8; 32];

/// Applied writes by index, each with the state root after it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ledger {
    entries: BTreeMap<u64, (Vec<u8>, Root)>,
}

impl Ledger {
    /// The newest root (all zeros when empty).
    pub fn root(&self) -> Root {
        self.entries
            .last_key_value()
            .map_or([0; 32], |(_, (_, root))| *root)
    }

    /// The write and root at `index`, if one was applied there.
    pub fn at(&self, index: u64) -> Option<&(Vec<u8>, Root)> {
        self.entries.get(&index)
    }

    /// Every applied write, by index.
    pub fn entries(&self) -> &BTreeMap<u64, (Vec<u8>, Root)> {
        &self.entries
    }
}

fn chain(previous: &Root, index: u64, data: &[u8]) -> Root {
    let mut hasher = blake3::Hasher::new();
    hasher.update(previous);
    hasher.update(&index.to_be_bytes());
    hasher.update(data);
    *hasher.finalize().as_bytes()
}

impl StateMachine for Ledger {
    fn apply(&mut self, index: u64, data: &[u8]) -> Vec<u8> {
        let root = chain(&self.root(), index, data);
        self.entries.insert(index, (data.to_vec(), root));
        root.to_vec()
    }

    /// The simulator never compacts; the only snapshot is the empty bootstrap one.
    fn snapshot(&self) -> Vec<u8> {
        Vec::new()
    }

    fn restore(&mut self, _data: &[u8]) {
        self.entries.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roots_chain_every_write() {
        let (mut a, mut b) = (Ledger::default(), Ledger::default());
        a.apply(2, b"x");
        b.apply(2, b"y");
        assert_ne!(a.root(), b.root());
        b.restore(&[]);
        b.apply(2, b"x");
        assert_eq!(a, b);
    }
}

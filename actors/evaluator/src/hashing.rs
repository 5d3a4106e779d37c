//! A small, fast, non-cryptographic hasher for the evaluator's in-memory maps.
//!
//! The keys are integers and short ids from one request or one snapshot; they are not
//! attacker-controlled map sizes that would need a keyed hash (a hostile id set can only slow
//! its own request, which the work budget bounds). SipHash showed up as the single biggest
//! cost of a memo lookup, so we use the multiply-rotate scheme of rustc's `FxHasher`.

use std::hash::{BuildHasherDefault, Hasher};

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;
const MIX: u64 = 0x9e_37_79_b9_7f_4a_7c_15;

/// The hasher itself.
#[derive(Clone, Copy, Default)]
pub struct FxHasher {
    hash: u64,
}

impl FxHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0_u8; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        let remainder = chunks.remainder();
        if !remainder.is_empty() {
            let mut word = [0_u8; 8];
            word[..remainder.len()].copy_from_slice(remainder);
            self.add(u64::from_le_bytes(word) ^ ((remainder.len() as u64) << 59));
        }
    }

    #[inline]
    fn write_u8(&mut self, value: u8) {
        self.add(u64::from(value));
    }

    #[inline]
    fn write_u32(&mut self, value: u32) {
        self.add(u64::from(value));
    }

    #[inline]
    fn write_u64(&mut self, value: u64) {
        self.add(value);
    }

    #[inline]
    fn write_usize(&mut self, value: usize) {
        self.add(value as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        // A folded 64x64->128 multiply mixes every input bit into both ends of the hash:
        // hashbrown takes its 7-bit tag from the top and its bucket index from the bottom,
        // and the plain Fx state is weak in its low bits for keys that differ late.
        let product = u128::from(self.hash) * u128::from(MIX);
        (product as u64) ^ ((product >> 64) as u64)
    }
}

/// Builds [`FxHasher`]s.
pub type FxBuildHasher = BuildHasherDefault<FxHasher>;

/// A hash map using [`FxHasher`].
pub type FxHashMap<K, V> = hashbrown::HashMap<K, V, FxBuildHasher>;

/// A hash set using [`FxHasher`].
pub type FxHashSet<K> = hashbrown::HashSet<K, FxBuildHasher>;

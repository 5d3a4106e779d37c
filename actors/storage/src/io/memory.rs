//! [`MemoryIo`]: an in-memory store that models power loss. It keeps the *durable* image
//! (what survives a crash) apart from the writes issued since the last sync, and can
//! inject faults at any numbered operation. The crash suite and the simulator use it.

use super::{PageIo, PageView};
use crate::error::IoError;
use parking_lot::Mutex;
use std::sync::Arc;

/// Size of the unit a torn write is made of: a disk sector.
const SECTOR_BYTES: usize = 512;

/// Which faults to inject. Operations (`grow`, `write`, `sync`) are numbered from zero in
/// the order they are issued.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FaultPlan {
    /// The power fails at this operation: it and every later one fail with
    /// [`IoError::Injected`] and change nothing.
    pub crash_at_operation: Option<u64>,
    /// The write with this number (counting writes only, from zero, from when the plan
    /// is set) fails without writing; later operations proceed.
    pub fail_write_number: Option<u64>,
    /// The sync with this number (counting syncs only, from zero, from when the plan is
    /// set) fails without syncing; later operations proceed.
    pub fail_sync_number: Option<u64>,
}

/// What happens to writes that were not yet synced when the power failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashMode {
    /// Every unsynced write is lost.
    LoseUnsynced,
    /// Every unsynced write reached the disk.
    KeepUnsynced,
    /// Every unsynced write reached the disk except the last, of which only the first
    /// half of its sectors did.
    TearLast,
    /// Each unsynced write is lost, kept, or torn at sector granularity, chosen by a
    /// seeded generator.
    Random {
        /// Seed of the choice.
        seed: u64,
    },
}

#[derive(Debug, Clone)]
struct PendingWrite {
    offset: u64,
    bytes: Vec<u8>,
}

struct MemoryView {
    bytes: Vec<u8>,
}

impl PageView for MemoryView {
    fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

struct MemoryState {
    durable: Vec<u8>,
    current: Arc<MemoryView>,
    pending: Vec<PendingWrite>,
    plan: FaultPlan,
    operations: u64,
    writes_since_plan: u64,
    syncs_since_plan: u64,
    crashed: bool,
}

/// In-memory [`PageIo`] with fault injection.
pub struct MemoryIo {
    state: Mutex<MemoryState>,
}

impl Default for MemoryIo {
    fn default() -> Self {
        MemoryIo::from_image(Vec::new())
    }
}

impl MemoryIo {
    /// A store whose durable and current contents are `image` (a crash image or a
    /// clean-shutdown image of another `MemoryIo`).
    pub fn from_image(image: Vec<u8>) -> MemoryIo {
        MemoryIo {
            state: Mutex::new(MemoryState {
                durable: image.clone(),
                current: Arc::new(MemoryView { bytes: image }),
                pending: Vec::new(),
                plan: FaultPlan::default(),
                operations: 0,
                writes_since_plan: 0,
                syncs_since_plan: 0,
                crashed: false,
            }),
        }
    }

    /// Replaces the fault plan; operation numbering continues from the current count.
    pub fn set_fault_plan(&self, plan: FaultPlan) {
        let mut state = self.state.lock();
        state.plan = plan;
        state.writes_since_plan = 0;
        state.syncs_since_plan = 0;
    }

    /// Number of operations issued so far (including failed ones).
    pub fn operations(&self) -> u64 {
        self.state.lock().operations
    }

    /// Whether the injected power failure has happened.
    pub fn crashed(&self) -> bool {
        self.state.lock().crashed
    }

    /// The current contents, as a clean shutdown would leave them.
    pub fn image(&self) -> Vec<u8> {
        self.state.lock().current.bytes.clone()
    }

    /// The contents after a power failure now, under `mode`.
    pub fn crash_image(&self, mode: CrashMode) -> Vec<u8> {
        let state = self.state.lock();
        let mut image = state.durable.clone();
        let mut random = SplitMix(match mode {
            CrashMode::Random { seed } => seed,
            _ => 0,
        });
        let last = state.pending.len().saturating_sub(1);
        for (index, write) in state.pending.iter().enumerate() {
            let sectors = match mode {
                CrashMode::LoseUnsynced => Survival::Lost,
                CrashMode::KeepUnsynced => Survival::Kept,
                CrashMode::TearLast if index == last => Survival::FirstHalf,
                CrashMode::TearLast => Survival::Kept,
                CrashMode::Random { .. } => match random.next() % 3 {
                    0 => Survival::Lost,
                    1 => Survival::Kept,
                    _ => Survival::RandomSectors,
                },
            };
            apply_write(&mut image, write, sectors, &mut random);
        }
        image
    }

    /// Flips bit `bit` (0..8) of the byte at `offset`, in both the current and the
    /// durable contents: media corruption.
    pub fn flip_bit(&self, offset: usize, bit: u8) {
        let mut state = self.state.lock();
        let mask = 1u8 << (bit % 8);
        if let Some(byte) = state.durable.get_mut(offset) {
            *byte ^= mask;
        }
        if let Some(byte) = make_unique(&mut state.current).get_mut(offset) {
            *byte ^= mask;
        }
    }

    /// Counts an operation and decides whether it may proceed.
    fn admit(&self, state: &mut MemoryState, kind: OperationKind) -> Result<(), IoError> {
        let number = state.operations;
        state.operations += 1;
        if state.crashed || state.plan.crash_at_operation == Some(number) {
            state.crashed = true;
            return Err(IoError::Injected("power failure"));
        }
        let fail = match kind {
            OperationKind::Write => {
                state.writes_since_plan += 1;
                state.plan.fail_write_number == Some(state.writes_since_plan - 1)
            }
            OperationKind::Sync => {
                state.syncs_since_plan += 1;
                state.plan.fail_sync_number == Some(state.syncs_since_plan - 1)
            }
            OperationKind::Grow => false,
        };
        if fail {
            return Err(IoError::Injected("write or sync error"));
        }
        Ok(())
    }
}

enum OperationKind {
    Grow,
    Write,
    Sync,
}

#[derive(Clone, Copy)]
enum Survival {
    Lost,
    Kept,
    FirstHalf,
    RandomSectors,
}

fn apply_write(
    image: &mut Vec<u8>,
    write: &PendingWrite,
    survival: Survival,
    random: &mut SplitMix,
) {
    let sector_count = write.bytes.len().div_ceil(SECTOR_BYTES);
    for sector in 0..sector_count {
        let keep = match survival {
            Survival::Lost => false,
            Survival::Kept => true,
            Survival::FirstHalf => sector < sector_count / 2,
            Survival::RandomSectors => random.next().is_multiple_of(2),
        };
        if !keep {
            continue;
        }
        let start = sector * SECTOR_BYTES;
        let end = (start + SECTOR_BYTES).min(write.bytes.len());
        let offset = write.offset as usize + start;
        if image.len() < offset + (end - start) {
            image.resize(offset + (end - start), 0);
        }
        image[offset..offset + (end - start)].copy_from_slice(&write.bytes[start..end]);
    }
}

/// A tiny deterministic generator (SplitMix64) so the crate needs no `rand` dependency.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// Copy-on-write: a view handed to a snapshot is never modified; the writer copies the
/// image at most once per commit.
fn make_unique(view: &mut Arc<MemoryView>) -> &mut Vec<u8> {
    if Arc::get_mut(view).is_none() {
        *view = Arc::new(MemoryView {
            bytes: view.bytes.clone(),
        });
    }
    &mut Arc::get_mut(view)
        .expect("invariant: the view was just made unique")
        .bytes
}

impl PageIo for MemoryIo {
    fn len_bytes(&self) -> Result<u64, IoError> {
        Ok(self.state.lock().current.bytes.len() as u64)
    }

    fn grow(&self, len_bytes: u64) -> Result<(), IoError> {
        let mut state = self.state.lock();
        self.admit(&mut state, OperationKind::Grow)?;
        let length = len_bytes as usize;
        let bytes = make_unique(&mut state.current);
        if bytes.len() < length {
            bytes.resize(length, 0);
        }
        // File size changes are modelled as durable at once (a journaling file system);
        // the bytes in the new region are zero either way.
        if state.durable.len() < length {
            state.durable.resize(length, 0);
        }
        Ok(())
    }

    fn write(&self, offset: u64, bytes: &[u8]) -> Result<(), IoError> {
        let mut state = self.state.lock();
        self.admit(&mut state, OperationKind::Write)?;
        let start = offset as usize;
        let image = make_unique(&mut state.current);
        if image.len() < start + bytes.len() {
            image.resize(start + bytes.len(), 0);
        }
        image[start..start + bytes.len()].copy_from_slice(bytes);
        state.pending.push(PendingWrite {
            offset,
            bytes: bytes.to_vec(),
        });
        Ok(())
    }

    fn sync(&self) -> Result<(), IoError> {
        let mut state = self.state.lock();
        self.admit(&mut state, OperationKind::Sync)?;
        state.durable = state.current.bytes.clone();
        state.pending.clear();
        Ok(())
    }

    fn view(&self) -> Result<Arc<dyn PageView>, IoError> {
        Ok(self.state.lock().current.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsynced_writes_follow_the_crash_mode() {
        let io = MemoryIo::default();
        io.grow(2048).unwrap();
        io.write(0, &[1u8; 1024]).unwrap();
        io.sync().unwrap();
        io.write(0, &[2u8; 1024]).unwrap();
        assert_eq!(io.crash_image(CrashMode::LoseUnsynced)[..1024], [1u8; 1024]);
        assert_eq!(io.crash_image(CrashMode::KeepUnsynced)[..1024], [2u8; 1024]);
        let torn = io.crash_image(CrashMode::TearLast);
        assert_eq!(torn[..512], [2u8; 512]);
        assert_eq!(torn[512..1024], [1u8; 512]);
        assert_eq!(
            io.image()[..1024],
            [2u8; 1024],
            "the live image has every write"
        );
    }

    #[test]
    fn the_power_fails_at_the_planned_operation_and_stays_off() {
        let io = MemoryIo::default();
        io.set_fault_plan(FaultPlan {
            crash_at_operation: Some(1),
            ..FaultPlan::default()
        });
        io.grow(512).unwrap();
        assert!(io.write(0, &[1]).is_err());
        assert!(io.sync().is_err());
        assert!(io.crashed());
        assert_eq!(io.operations(), 3);
    }

    #[test]
    fn planned_write_and_sync_errors_fail_once() {
        let io = MemoryIo::default();
        let plan = FaultPlan {
            fail_write_number: Some(1),
            fail_sync_number: Some(0),
            ..FaultPlan::default()
        };
        io.set_fault_plan(plan);
        assert!(io.write(0, &[1]).is_ok());
        assert!(io.write(0, &[2]).is_err());
        assert!(io.sync().is_err());
        assert!(io.sync().is_ok());
        assert!(!io.crashed());
    }
}

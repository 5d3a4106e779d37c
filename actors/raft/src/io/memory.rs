//! [`MemoryLogIo`]: an in-memory log directory that models power loss (see the module
//! documentation of [`crate::io`] for the model) and injects faults at numbered operations.

use super::{check_name, LogIo, LogIoError};
use parking_lot::Mutex;
use std::collections::BTreeMap;

/// Size of the unit a torn append is made of: a disk sector.
const SECTOR_BYTES: u64 = 512;

/// A directory's files and their bytes: what a clean shutdown or a power cut leaves.
pub type LogImage = BTreeMap<String, Vec<u8>>;

/// Which faults to inject. Operations that change or sync something (`create`, `append`,
/// `sync`, `truncate`, `delete`, `rename`, `sync_dir`) are numbered from zero in issue
/// order; reads, `len` and `list` are not counted and never fail.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogFaultPlan {
    /// The power fails at this operation: it and every later one fail with
    /// [`LogIoError::Injected`] and change nothing.
    pub crash_at_operation: Option<u64>,
    /// The append with this number (counting appends only, from zero, from when the plan
    /// is set) fails without writing; later operations proceed.
    pub fail_append_number: Option<u64>,
    /// The sync with this number (counting `sync` and `sync_dir`, from zero, from when the
    /// plan is set) fails without syncing; later operations proceed.
    pub fail_sync_number: Option<u64>,
    /// The read with this number (counting reads only, from zero, from when the plan is
    /// set) fails as a disk read error would; later reads succeed. Reads are not counted
    /// among the operations `crash_at_operation` numbers.
    pub fail_read_number: Option<u64>,
}

/// What happens to operations that were not yet synced when the power failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogCrashMode {
    /// Every unsynced operation is lost.
    LoseUnsynced,
    /// Every unsynced operation reached the disk.
    KeepUnsynced,
    /// Every unsynced operation reached the disk, except the last append issued, of which
    /// only the first half of its sectors did.
    TearLast,
    /// A seeded random prefix of the unsynced directory operations survives; each unsynced
    /// append is lost, kept or torn at random sectors, each truncation lost or kept.
    Random {
        /// Seed of the choices.
        seed: u64,
    },
}

#[derive(Debug, Clone)]
enum FileOp {
    Append {
        sequence: u64,
        offset: u64,
        bytes: Vec<u8>,
    },
    Truncate {
        len: u64,
    },
}

#[derive(Debug, Clone, Default)]
struct Inode {
    durable: Vec<u8>,
    current: Vec<u8>,
    pending: Vec<FileOp>,
}

#[derive(Debug, Clone)]
enum DirOp {
    Link { name: String, inode: usize },
    Unlink { name: String },
    Rename { from: String, to: String },
}

impl DirOp {
    fn apply(&self, table: &mut BTreeMap<String, usize>) {
        match self {
            DirOp::Link { name, inode } => {
                table.insert(name.clone(), *inode);
            }
            DirOp::Unlink { name } => {
                table.remove(name);
            }
            DirOp::Rename { from, to } => {
                if let Some(inode) = table.remove(from) {
                    table.insert(to.clone(), inode);
                }
            }
        }
    }
}

#[derive(Default)]
struct State {
    inodes: Vec<Inode>,
    current: BTreeMap<String, usize>,
    durable: BTreeMap<String, usize>,
    pending_dir: Vec<DirOp>,
    plan: LogFaultPlan,
    operations: u64,
    appends_since_plan: u64,
    syncs_since_plan: u64,
    reads_since_plan: u64,
    append_sequence: u64,
    crashed: bool,
}

enum OperationKind {
    Append,
    Sync,
    Other,
}

impl State {
    /// Counts an operation and decides whether it may proceed.
    fn admit(&mut self, kind: OperationKind) -> Result<(), LogIoError> {
        let number = self.operations;
        self.operations += 1;
        if self.crashed || self.plan.crash_at_operation == Some(number) {
            self.crashed = true;
            return Err(LogIoError::Injected("power failure"));
        }
        let fail = match kind {
            OperationKind::Append => {
                self.appends_since_plan += 1;
                self.plan.fail_append_number == Some(self.appends_since_plan - 1)
            }
            OperationKind::Sync => {
                self.syncs_since_plan += 1;
                self.plan.fail_sync_number == Some(self.syncs_since_plan - 1)
            }
            OperationKind::Other => false,
        };
        if fail {
            return Err(LogIoError::Injected("append or sync error"));
        }
        Ok(())
    }

    fn inode(&self, name: &str) -> Result<usize, LogIoError> {
        check_name(name)?;
        self.current
            .get(name)
            .copied()
            .ok_or_else(|| LogIoError::NotFound(name.to_owned()))
    }

    fn new_inode(&mut self, bytes: Vec<u8>) -> usize {
        self.inodes.push(Inode {
            durable: bytes.clone(),
            current: bytes,
            pending: Vec::new(),
        });
        self.inodes.len() - 1
    }
}

/// In-memory [`LogIo`] with a power-failure model and fault injection.
#[derive(Default)]
pub struct MemoryLogIo {
    state: Mutex<State>,
}

impl MemoryLogIo {
    /// An empty directory.
    pub fn new() -> MemoryLogIo {
        MemoryLogIo::default()
    }

    /// A directory whose durable and current contents are `image` (a crash image or a
    /// clean-shutdown image of another `MemoryLogIo`).
    pub fn from_image(image: LogImage) -> MemoryLogIo {
        let mut state = State::default();
        for (name, bytes) in image {
            let inode = state.new_inode(bytes);
            state.current.insert(name, inode);
        }
        state.durable = state.current.clone();
        MemoryLogIo {
            state: Mutex::new(state),
        }
    }

    /// Replaces the fault plan; operation numbering continues from the current count.
    pub fn set_fault_plan(&self, plan: LogFaultPlan) {
        let mut state = self.state.lock();
        state.plan = plan;
        state.appends_since_plan = 0;
        state.syncs_since_plan = 0;
        state.reads_since_plan = 0;
    }

    /// Number of counted operations issued so far (including failed ones).
    pub fn operations(&self) -> u64 {
        self.state.lock().operations
    }

    /// Whether the injected power failure has happened.
    pub fn crashed(&self) -> bool {
        self.state.lock().crashed
    }

    /// The current contents, as a clean shutdown would leave them.
    pub fn image(&self) -> LogImage {
        let state = self.state.lock();
        state
            .current
            .iter()
            .map(|(name, &inode)| (name.clone(), state.inodes[inode].current.clone()))
            .collect()
    }

    /// The contents a power failure now would leave, under `mode`.
    pub fn crash_image(&self, mode: LogCrashMode) -> LogImage {
        let state = self.state.lock();
        let mut random = SplitMix(match mode {
            LogCrashMode::Random { seed } => seed,
            _ => 0,
        });
        let pending = state.pending_dir.len();
        let surviving = match mode {
            LogCrashMode::LoseUnsynced => 0,
            LogCrashMode::KeepUnsynced | LogCrashMode::TearLast => pending,
            LogCrashMode::Random { .. } => (random.next() % (pending as u64 + 1)) as usize,
        };
        let mut table = state.durable.clone();
        for op in &state.pending_dir[..surviving] {
            op.apply(&mut table);
        }
        let last_append = state
            .inodes
            .iter()
            .flat_map(|inode| inode.pending.iter())
            .filter_map(|op| match op {
                FileOp::Append { sequence, .. } => Some(*sequence),
                FileOp::Truncate { .. } => None,
            })
            .max();
        table
            .into_iter()
            .map(|(name, inode)| {
                let bytes = crash_bytes(&state.inodes[inode], mode, last_append, &mut random);
                (name, bytes)
            })
            .collect()
    }

    /// Flips bit `bit` (0..8) of byte `offset` of file `name`, in both its current and its
    /// durable contents: media corruption. Does nothing if there is no such byte.
    pub fn flip_bit(&self, name: &str, offset: u64, bit: u8) {
        let mut state = self.state.lock();
        let Some(&inode) = state.current.get(name) else {
            return;
        };
        let mask = 1u8 << (bit % 8);
        let inode = &mut state.inodes[inode];
        for bytes in [&mut inode.durable, &mut inode.current] {
            if let Some(byte) = usize::try_from(offset)
                .ok()
                .and_then(|at| bytes.get_mut(at))
            {
                *byte ^= mask;
            }
        }
    }
}

#[derive(Clone, Copy)]
enum Survival {
    Lost,
    Kept,
    FirstHalf,
    RandomSectors,
}

/// A file's bytes after a power failure: its durable bytes, then each pending operation
/// as it survives under `mode`.
fn crash_bytes(
    inode: &Inode,
    mode: LogCrashMode,
    last_append: Option<u64>,
    random: &mut SplitMix,
) -> Vec<u8> {
    let mut bytes = inode.durable.clone();
    for op in &inode.pending {
        match op {
            FileOp::Truncate { len } => {
                let kept = match mode {
                    LogCrashMode::LoseUnsynced => false,
                    LogCrashMode::KeepUnsynced | LogCrashMode::TearLast => true,
                    LogCrashMode::Random { .. } => random.next().is_multiple_of(2),
                };
                if kept {
                    bytes.truncate(usize::try_from(*len).unwrap_or(usize::MAX));
                }
            }
            FileOp::Append {
                sequence,
                offset,
                bytes: appended,
            } => {
                let survival = match mode {
                    LogCrashMode::LoseUnsynced => Survival::Lost,
                    LogCrashMode::KeepUnsynced => Survival::Kept,
                    LogCrashMode::TearLast if Some(*sequence) == last_append => Survival::FirstHalf,
                    LogCrashMode::TearLast => Survival::Kept,
                    LogCrashMode::Random { .. } => match random.next() % 3 {
                        0 => Survival::Lost,
                        1 => Survival::Kept,
                        _ => Survival::RandomSectors,
                    },
                };
                apply_append(&mut bytes, *offset, appended, survival, random);
            }
        }
    }
    bytes
}

/// Writes the surviving sectors of an append (sectors aligned on file offsets).
fn apply_append(
    image: &mut Vec<u8>,
    offset: u64,
    appended: &[u8],
    survival: Survival,
    random: &mut SplitMix,
) {
    let end = offset + appended.len() as u64;
    let mut chunks = Vec::new();
    let mut start = offset;
    while start < end {
        let chunk_end = ((start / SECTOR_BYTES + 1) * SECTOR_BYTES).min(end);
        chunks.push((start, chunk_end));
        start = chunk_end;
    }
    let count = chunks.len();
    for (number, (start, chunk_end)) in chunks.into_iter().enumerate() {
        let keep = match survival {
            Survival::Lost => false,
            Survival::Kept => true,
            Survival::FirstHalf => number < count / 2,
            Survival::RandomSectors => random.next().is_multiple_of(2),
        };
        if !keep {
            continue;
        }
        let (from, to) = (start as usize, chunk_end as usize);
        if image.len() < to {
            image.resize(to, 0);
        }
        let source = (start - offset) as usize..(chunk_end - offset) as usize;
        image[from..to].copy_from_slice(&appended[source]);
    }
}

/// A tiny deterministic generator (SplitMix64): no OS randomness in the model.
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

impl LogIo for MemoryLogIo {
    fn list(&self) -> Result<Vec<String>, LogIoError> {
        Ok(self.state.lock().current.keys().cloned().collect())
    }

    fn create(&self, name: &str) -> Result<(), LogIoError> {
        check_name(name)?;
        let mut state = self.state.lock();
        state.admit(OperationKind::Other)?;
        let inode = state.new_inode(Vec::new());
        state.current.insert(name.to_owned(), inode);
        state.pending_dir.push(DirOp::Link {
            name: name.to_owned(),
            inode,
        });
        Ok(())
    }

    fn len(&self, name: &str) -> Result<u64, LogIoError> {
        let state = self.state.lock();
        let inode = state.inode(name)?;
        Ok(state.inodes[inode].current.len() as u64)
    }

    fn append(&self, name: &str, bytes: &[u8]) -> Result<(), LogIoError> {
        let mut state = self.state.lock();
        let inode = state.inode(name)?;
        state.admit(OperationKind::Append)?;
        let sequence = state.append_sequence;
        state.append_sequence += 1;
        let file = &mut state.inodes[inode];
        let offset = file.current.len() as u64;
        file.current.extend_from_slice(bytes);
        file.pending.push(FileOp::Append {
            sequence,
            offset,
            bytes: bytes.to_vec(),
        });
        Ok(())
    }

    fn read(&self, name: &str, offset: u64, len: usize) -> Result<Vec<u8>, LogIoError> {
        let mut state = self.state.lock();
        state.reads_since_plan += 1;
        if state.plan.fail_read_number == Some(state.reads_since_plan - 1) {
            return Err(LogIoError::Injected("read error"));
        }
        let current = &state.inodes[state.inode(name)?].current;
        let start = usize::try_from(offset).unwrap_or(usize::MAX);
        match start.checked_add(len) {
            Some(end) if end <= current.len() => Ok(current[start..end].to_vec()),
            _ => Err(LogIoError::ShortRead {
                name: name.to_owned(),
                offset,
                len,
                file_len: current.len() as u64,
            }),
        }
    }

    fn sync(&self, name: &str) -> Result<(), LogIoError> {
        let mut state = self.state.lock();
        let inode = state.inode(name)?;
        state.admit(OperationKind::Sync)?;
        let file = &mut state.inodes[inode];
        file.durable = file.current.clone();
        file.pending.clear();
        Ok(())
    }

    fn truncate(&self, name: &str, len: u64) -> Result<(), LogIoError> {
        let mut state = self.state.lock();
        let inode = state.inode(name)?;
        state.admit(OperationKind::Other)?;
        let file = &mut state.inodes[inode];
        if (file.current.len() as u64) > len {
            file.current.truncate(len as usize);
            file.pending.push(FileOp::Truncate { len });
        }
        Ok(())
    }

    fn delete(&self, name: &str) -> Result<(), LogIoError> {
        let mut state = self.state.lock();
        state.inode(name)?;
        state.admit(OperationKind::Other)?;
        state.current.remove(name);
        state.pending_dir.push(DirOp::Unlink {
            name: name.to_owned(),
        });
        Ok(())
    }

    fn rename(&self, from: &str, to: &str) -> Result<(), LogIoError> {
        check_name(to)?;
        let mut state = self.state.lock();
        let inode = state.inode(from)?;
        state.admit(OperationKind::Other)?;
        state.current.remove(from);
        state.current.insert(to.to_owned(), inode);
        state.pending_dir.push(DirOp::Rename {
            from: from.to_owned(),
            to: to.to_owned(),
        });
        Ok(())
    }

    fn sync_dir(&self) -> Result<(), LogIoError> {
        let mut state = self.state.lock();
        state.admit(OperationKind::Sync)?;
        state.durable = state.current.clone();
        state.pending_dir.clear();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsynced_appends_follow_the_crash_mode() {
        let io = MemoryLogIo::new();
        io.create("a").unwrap();
        io.sync_dir().unwrap();
        io.append("a", &[1u8; 1024]).unwrap();
        io.sync("a").unwrap();
        io.append("a", &[2u8; 1024]).unwrap();
        assert_eq!(io.crash_image(LogCrashMode::LoseUnsynced)["a"], [1u8; 1024]);
        let kept = io.crash_image(LogCrashMode::KeepUnsynced);
        assert_eq!(kept["a"].len(), 2048);
        let torn = io.crash_image(LogCrashMode::TearLast);
        assert_eq!(
            torn["a"].len(),
            1536,
            "the first half of the last append survives"
        );
        assert_eq!(io.image()["a"].len(), 2048);
    }

    #[test]
    fn unsynced_directory_operations_are_lost_or_kept() {
        let io = MemoryLogIo::new();
        io.create("a").unwrap();
        assert!(io.crash_image(LogCrashMode::LoseUnsynced).is_empty());
        assert!(io.crash_image(LogCrashMode::KeepUnsynced).contains_key("a"));
        io.sync_dir().unwrap();
        io.rename("a", "b").unwrap();
        assert!(io.crash_image(LogCrashMode::LoseUnsynced).contains_key("a"));
        assert!(io.crash_image(LogCrashMode::KeepUnsynced).contains_key("b"));
    }

    #[test]
    fn truncation_is_lost_until_synced() {
        let io = MemoryLogIo::from_image(LogImage::from([("a".to_owned(), vec![7u8; 100])]));
        io.truncate("a", 10).unwrap();
        assert_eq!(io.crash_image(LogCrashMode::LoseUnsynced)["a"].len(), 100);
        io.sync("a").unwrap();
        assert_eq!(io.crash_image(LogCrashMode::LoseUnsynced)["a"].len(), 10);
    }

    #[test]
    fn the_power_fails_at_the_planned_operation_and_stays_off() {
        let io = MemoryLogIo::new();
        io.set_fault_plan(LogFaultPlan {
            crash_at_operation: Some(1),
            ..LogFaultPlan::default()
        });
        io.create("a").unwrap();
        assert!(io.append("a", &[1]).is_err());
        assert!(io.sync("a").is_err());
        assert!(io.crashed());
        assert_eq!(io.operations(), 3);
        assert!(io.image()["a"].is_empty());
    }

    #[test]
    fn a_planned_read_error_fails_once_and_counts_no_operation() {
        let io = MemoryLogIo::new();
        io.create("a").unwrap();
        io.append("a", &[1, 2, 3]).unwrap();
        let before = io.operations();
        io.set_fault_plan(LogFaultPlan {
            fail_read_number: Some(1),
            ..LogFaultPlan::default()
        });
        assert_eq!(io.read("a", 0, 3).unwrap(), [1, 2, 3]);
        assert!(matches!(
            io.read("a", 0, 3),
            Err(LogIoError::Injected("read error"))
        ));
        assert_eq!(io.read("a", 1, 2).unwrap(), [2, 3]);
        assert_eq!(io.operations(), before);
    }

    #[test]
    fn planned_append_and_sync_errors_fail_once() {
        let io = MemoryLogIo::new();
        io.create("a").unwrap();
        io.set_fault_plan(LogFaultPlan {
            fail_append_number: Some(1),
            fail_sync_number: Some(0),
            ..LogFaultPlan::default()
        });
        assert!(io.append("a", &[1]).is_ok());
        assert!(io.append("a", &[2]).is_err());
        assert!(io.sync("a").is_err());
        assert!(io.sync("a").is_ok());
        assert!(!io.crashed());
        assert_eq!(io.read_all("a").unwrap(), vec![1]);
    }
}

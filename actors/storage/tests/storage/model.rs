//! Model-based property test: random sequences of inserts, removes, point reads, range
//! scans (both directions), commits under every durability mode, aborts, syncs, clean
//! reopens and crashes run against the engine and against a `BTreeMap`, with readers
//! holding old snapshots across later commits. After a crash (unsynced writes lost) the
//! engine must equal the last *durable* model state, which exercises page reuse between
//! syncs. Any divergence, or a failed `verify()`, is a bug; proptest shrinks it.

use crate::common::{dump, open_memory, small_limits, Model};
use inferadb_storage::io::{CrashMode, MemoryIo};
use inferadb_storage::{Database, Durability, ReadTransaction};
use proptest::prelude::*;
use std::ops::Bound;
use std::sync::Arc;

#[derive(Debug, Clone)]
enum Operation {
    Insert(u16, usize),
    Remove(u16),
    Get(u16),
    Range(u16, u16, bool),
}

#[derive(Debug, Clone)]
enum Step {
    Transaction(Vec<Operation>, bool, Durability),
    HoldReader,
    ReleaseReader,
    Sync,
    Reopen,
    Crash,
}

fn key_of(index: u16) -> Vec<u8> {
    format!("k{index:05}").into_bytes()
}

fn value_of(index: u16, length: usize) -> Vec<u8> {
    (0..length)
        .map(|offset| (index as usize + offset) as u8)
        .collect()
}

fn operation() -> impl Strategy<Value = Operation> {
    let key = 0u16..400;
    // Mostly small values, some past the inline limit to exercise overflow chains.
    let length = prop_oneof![8 => 0usize..60, 1 => 100usize..2000];
    prop_oneof![
        6 => (key.clone(), length).prop_map(|(key, length)| Operation::Insert(key, length)),
        3 => key.clone().prop_map(Operation::Remove),
        1 => key.clone().prop_map(Operation::Get),
        1 => (key.clone(), key, any::<bool>()).prop_map(|(a, b, reverse)| Operation::Range(a, b, reverse)),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        8 => (
            prop::collection::vec(operation(), 1..120),
            prop::bool::weighted(0.8),
            prop_oneof![Just(Durability::Immediate), Just(Durability::Deferred), Just(Durability::None)],
        )
            .prop_map(|(operations, commit, durability)| Step::Transaction(operations, commit, durability)),
        1 => Just(Step::HoldReader),
        1 => Just(Step::ReleaseReader),
        1 => Just(Step::Sync),
        1 => Just(Step::Reopen),
        1 => Just(Step::Crash),
    ]
}

fn model_range(model: &Model, a: u16, b: u16, reverse: bool) -> Vec<(Vec<u8>, Vec<u8>)> {
    let (low, high) = (key_of(a.min(b)), key_of(a.max(b)));
    let entries = model.range::<Vec<u8>, _>((Bound::Included(&low), Bound::Excluded(&high)));
    let mut entries: Vec<_> = entries.map(|(k, v)| (k.clone(), v.clone())).collect();
    if reverse {
        entries.reverse();
    }
    entries
}

/// Runs one transaction against the engine and a copy of the model; returns the copy.
fn run_transaction(
    db: &Database,
    committed: &Model,
    operations: &[Operation],
    commit: bool,
    durability: Durability,
) -> Model {
    let mut model = committed.clone();
    let mut write = db.begin_write().expect("begin write");
    write.set_durability(durability);
    {
        let mut table = write.open_table("t").expect("open table");
        for operation in operations {
            match *operation {
                Operation::Insert(key, length) => {
                    let replaced = table
                        .insert(&key_of(key), &value_of(key, length))
                        .expect("insert");
                    assert_eq!(
                        replaced,
                        model.insert(key_of(key), value_of(key, length)).is_some()
                    );
                }
                Operation::Remove(key) => {
                    assert_eq!(
                        table.remove(&key_of(key)).expect("remove"),
                        model.remove(&key_of(key))
                    );
                }
                Operation::Get(key) => {
                    let found = table
                        .get(&key_of(key))
                        .expect("get")
                        .map(|value| value.to_vec());
                    assert_eq!(found.as_ref(), model.get(&key_of(key)));
                }
                Operation::Range(a, b, reverse) => {
                    let (low, high) = (key_of(a.min(b)), key_of(a.max(b)));
                    let range = table.range(&low[..]..&high[..]).expect("range");
                    let entries: Vec<_> = if reverse {
                        range
                            .rev()
                            .map(|e| e.expect("entry"))
                            .map(|(k, v)| (k.to_vec(), v.to_vec()))
                            .collect()
                    } else {
                        range
                            .map(|e| e.expect("entry"))
                            .map(|(k, v)| (k.to_vec(), v.to_vec()))
                            .collect()
                    };
                    assert_eq!(entries, model_range(&model, a, b, reverse));
                }
            }
        }
        assert_eq!(table.len(), model.len() as u64);
    }
    if commit {
        write.commit().expect("commit");
        model
    } else {
        write.abort();
        committed.clone()
    }
}

fn check_readers(readers: &[(ReadTransaction, Model)]) {
    for (reader, model) in readers {
        let seen: Model = match reader.open_table("t") {
            Ok(table) => table
                .iter()
                .expect("iterate")
                .map(|entry| entry.expect("entry"))
                .map(|(k, v)| (k.to_vec(), v.to_vec()))
                .collect(),
            Err(_) => Model::new(),
        };
        assert_eq!(&seen, model, "a held snapshot changed under its reader");
    }
}

/// The engine under test and what the model says it holds.
struct Harness {
    io: Arc<MemoryIo>,
    db: Database,
    committed: Model,
    /// What survives a crash: the state of the last `Immediate` commit or sync.
    durable: Model,
    readers: Vec<(ReadTransaction, Model)>,
}

impl Harness {
    fn reopen(&mut self, image: Vec<u8>) {
        self.readers.clear();
        self.io = Arc::new(MemoryIo::from_image(image));
        self.db = open_memory(&self.io, small_limits());
    }

    fn step(&mut self, step: Step) {
        match step {
            Step::Transaction(operations, commit, durability) => {
                self.committed =
                    run_transaction(&self.db, &self.committed, &operations, commit, durability);
                if commit && durability == Durability::Immediate {
                    self.durable = self.committed.clone();
                }
                self.db.verify().expect("verify after transaction");
            }
            Step::HoldReader => self
                .readers
                .push((self.db.begin_read(), self.committed.clone())),
            Step::ReleaseReader => {
                self.readers.pop();
            }
            Step::Sync => {
                self.db.sync().expect("sync");
                self.durable = self.committed.clone();
            }
            Step::Reopen => {
                // A clean close makes deferred commits durable.
                self.readers.clear();
                let db = std::mem::replace(
                    &mut self.db,
                    open_memory(&Arc::new(MemoryIo::default()), small_limits()),
                );
                drop(db);
                self.reopen(self.io.image());
                self.durable = self.committed.clone();
            }
            Step::Crash => {
                let image = self.io.crash_image(CrashMode::LoseUnsynced);
                self.reopen(image);
                self.committed = self.durable.clone();
                self.db.verify().expect("verify after crash");
            }
        }
        check_readers(&self.readers);
        assert_same(&dump(&self.db, "t"), &self.committed);
    }
}

/// Compares the engine's contents with the model, naming the first difference (whole
/// models are too large to print usefully).
fn assert_same(actual: &Model, expected: &Model) {
    if actual == expected {
        return;
    }
    let differing = actual
        .keys()
        .chain(expected.keys())
        .find(|key| actual.get(*key) != expected.get(*key))
        .map(|key| String::from_utf8_lossy(key).into_owned());
    panic!(
        "engine holds {} entries, model {}; first difference at key {differing:?}",
        actual.len(),
        expected.len()
    );
}

fn run(steps: Vec<Step>) {
    let io = Arc::new(MemoryIo::default());
    let db = open_memory(&io, small_limits());
    let mut harness = Harness {
        io,
        db,
        committed: Model::new(),
        durable: Model::new(),
        readers: Vec::new(),
    };
    for step in steps {
        harness.step(step);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn engine_matches_a_btreemap_model(steps in prop::collection::vec(step(), 1..30)) {
        run(steps);
    }
}

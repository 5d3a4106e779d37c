//! Model-based property test: random sequences of inserts, removes, point reads, range
//! scans (both directions), commits, aborts and reopens run against the engine and
//! against a `BTreeMap`, with readers holding old snapshots across later commits. Any
//! divergence, or a failed `verify()`, is a bug; proptest shrinks it to a minimal case.

use crate::common::{dump, open_memory, small_limits, Model};
use inferadb_storage::io::MemoryIo;
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
    Transaction(Vec<Operation>, bool),
    HoldReader,
    ReleaseReader,
    Reopen,
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
        8 => (prop::collection::vec(operation(), 1..120), prop::bool::weighted(0.8))
            .prop_map(|(operations, commit)| Step::Transaction(operations, commit)),
        1 => Just(Step::HoldReader),
        1 => Just(Step::ReleaseReader),
        1 => Just(Step::Reopen),
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
) -> Model {
    let mut model = committed.clone();
    let mut write = db.begin_write().expect("begin write");
    write.set_durability(Durability::None);
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

fn run(steps: Vec<Step>) {
    let limits = small_limits();
    let mut io = Arc::new(MemoryIo::default());
    let mut db = open_memory(&io, limits.clone());
    let mut committed = Model::new();
    let mut readers: Vec<(ReadTransaction, Model)> = Vec::new();
    for step in steps {
        match step {
            Step::Transaction(operations, commit) => {
                committed = run_transaction(&db, &committed, &operations, commit);
                db.verify().expect("verify after transaction");
            }
            Step::HoldReader => readers.push((db.begin_read(), committed.clone())),
            Step::ReleaseReader => {
                readers.pop();
            }
            Step::Reopen => {
                readers.clear();
                drop(db);
                io = Arc::new(MemoryIo::from_image(io.image()));
                db = open_memory(&io, limits.clone());
            }
        }
        check_readers(&readers);
        assert_eq!(dump(&db, "t"), committed);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn engine_matches_a_btreemap_model(steps in prop::collection::vec(step(), 1..30)) {
        run(steps);
    }
}

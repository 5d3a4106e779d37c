//! Three Raft members, each with its own shard machine, replicate vault commands: the
//! leader's client gets the machine's answer and all three hold identical vaults.

use inferadb_raft::core::{RaftConfig, RaftCore};
use inferadb_raft::group::{Completion, RaftGroup};
use inferadb_raft::logging::raft_logger;
use inferadb_raft::memory_store::MemoryStore;
use inferadb_shard::{ShardAnswer, ShardCommand, ShardMachine};
use raft::eraftpb::ConfState;

use crate::common::{command, fingerprint, machine, Spec};

type Member = RaftGroup<MemoryStore, ShardMachine>;

fn member(id: u64) -> Member {
    let conf_state = ConfState {
        voters: vec![1, 2, 3],
        ..ConfState::default()
    };
    let store = MemoryStore::new_with_conf_state(conf_state);
    let core = RaftCore::new(&RaftConfig::new(id, 11), store, &raft_logger("shard-test")).unwrap();
    RaftGroup::new(core, machine().0, 0)
}

/// Delivers every message until the group is quiet; returns the completions.
fn settle(members: &mut [Member]) -> Vec<(u64, Completion)> {
    let mut completions = Vec::new();
    for _ in 0..100 {
        let mut inflight = Vec::new();
        for member in members.iter_mut() {
            let outputs = member.drain().unwrap();
            inflight.extend(outputs.messages);
            let id = member.core().id();
            completions.extend(outputs.completions.into_iter().map(|c| (id, c)));
        }
        if inflight.is_empty() {
            return completions;
        }
        for message in inflight {
            let to = message.to as usize - 1;
            let _ = members[to].step(message);
        }
    }
    panic!("the group did not settle");
}

/// Proposes on the leader (member 1) and returns the decoded answer.
fn propose(members: &mut [Member], command: &ShardCommand) -> ShardAnswer {
    let ticket = members[0].propose(command.encode()).unwrap();
    let completions = settle(members);
    let output = completions
        .into_iter()
        .find_map(|(id, completion)| match completion {
            Completion::Applied {
                ticket: done,
                output,
            } if id == 1 && done == ticket => Some(output),
            _ => None,
        })
        .expect("the proposal is applied on the leader");
    ShardAnswer::decode(&output).unwrap()
}

#[test]
fn a_shard_machine_can_move_to_an_actor_thread() {
    fn send<T: Send>() {}
    send::<ShardMachine>();
    send::<Member>();
}

#[test]
fn three_members_replicate_vault_commands_and_agree() {
    let mut members: Vec<Member> = (1..=3).map(member).collect();
    members[0].core_mut().campaign().unwrap();
    settle(&mut members);
    assert!(members[0].core().is_leader());

    let specs = [
        Spec::Create { vault: 0, name: 0 },
        Spec::Deploy {
            vault: 0,
            schema: 0,
        },
        Spec::Write {
            vault: 0,
            mutations: vec![(0, 0, 0), (0, 6, 0), (2, 8, 7)],
            precondition: None,
        },
        Spec::Write {
            vault: 0,
            mutations: vec![(0, 1, 0)],
            precondition: Some((false, 0)),
        },
        Spec::Write {
            vault: 0,
            mutations: vec![(3, 0, 0)],
            precondition: Some((true, 0)),
        },
    ];
    let answers: Vec<ShardAnswer> = specs
        .iter()
        .enumerate()
        // The leader's first entry is its term's empty entry, so commands start at index 2.
        .map(|(offset, spec)| propose(&mut members, &command(spec, offset as u64 + 2)))
        .collect();
    let summary: Vec<String> = answers
        .iter()
        .map(|answer| match answer {
            ShardAnswer::VaultCreated { id, .. } => format!("created {id}"),
            ShardAnswer::SchemaDeployed { version, .. } => format!("schema v{version}"),
            ShardAnswer::Written {
                inserted, removed, ..
            } => format!("+{inserted} -{removed}"),
            ShardAnswer::Refused { kind, .. } => kind.clone(),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(
        summary,
        [
            "created 0000000000000100",
            "schema v1",
            "+3 -0",
            "precondition_failed",
            "+0 -1"
        ]
    );
    // A lone machine applying the same entries at the same indexes answers the same.
    let (mut alone, _) = machine();
    for (offset, spec) in specs.iter().enumerate() {
        let index = offset as u64 + 2;
        let answer = alone.apply_command(index, &command(spec, index).encode());
        assert_eq!(answer, answers[offset]);
    }

    let leader = fingerprint(members[0].machine());
    assert_eq!(leader.1[0].blocks.len(), 3);
    for member in &members[1..] {
        assert_eq!(fingerprint(member.machine()), leader);
    }
    assert_eq!(members[0].machine().applied_index(), members[0].applied());
}

#[test]
fn three_members_replicate_leases_and_agree() {
    let mut members: Vec<Member> = (1..=3).map(member).collect();
    members[0].core_mut().campaign().unwrap();
    settle(&mut members);
    assert!(members[0].core().is_leader());

    let acquire = |holder, now_ms| ShardCommand::AcquireLease {
        job: "gc".into(),
        holder,
        duration_ms: 1_000,
        now_ms,
    };
    let answers: Vec<ShardAnswer> = [acquire(1, 0), acquire(2, 500), acquire(2, 1_000)]
        .iter()
        .map(|command| propose(&mut members, command))
        .collect();
    assert_eq!(
        answers[0],
        ShardAnswer::LeaseGranted {
            epoch: 1,
            expires_at_ms: 1_000
        }
    );
    assert!(matches!(&answers[1], ShardAnswer::Refused { kind, .. } if kind == "lease_held"));
    assert_eq!(
        answers[2],
        ShardAnswer::LeaseGranted {
            epoch: 2,
            expires_at_ms: 2_000
        }
    );
    let leader = fingerprint(members[0].machine());
    assert_eq!(leader.2 .0, 2);
    for member in &members[1..] {
        assert_eq!(fingerprint(member.machine()), leader);
        assert!(member.machine().leases().check("gc", 2, 1_500));
        assert!(!member.machine().leases().check("gc", 1, 500));
    }
}

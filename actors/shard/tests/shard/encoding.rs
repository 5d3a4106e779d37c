//! Commands and answers round-trip through their encodings; anything else is refused.

use inferadb_protocols::{ObjectId, RelationName, Relationship, Revision, TypeName, VaultId};
use inferadb_shard::{DecodeError, GroupItem, ShardAnswer, ShardCommand};
use inferadb_vault::{Mutation, Precondition, PreconditionKind, RelationshipFilter, WriteBatch};
use proptest::prelude::*;

fn name() -> impl Strategy<Value = String> {
    prop::sample::select(vec!["doc", "user", "group", "a_b", "x1"]).prop_map(str::to_owned)
}

fn id() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9_|-]{1,12}"
}

fn relationship() -> impl Strategy<Value = Relationship> {
    let subject = prop_oneof![
        (name(), id()).prop_map(|(t, i)| format!("{t}:{i}")),
        (name(), id(), name()).prop_map(|(t, i, r)| format!("{t}:{i}#{r}")),
        name().prop_map(|t| format!("{t}:*")),
    ];
    (
        name(),
        id(),
        name(),
        subject,
        prop::option::of(any::<u64>()),
    )
        .prop_map(|(t, i, r, s, expiry)| {
            let relationship: Relationship = format!("{t}:{i}#{r}@{s}").parse().unwrap();
            match expiry {
                Some(at) => relationship.with_expiry(at),
                None => relationship,
            }
        })
}

fn filter() -> impl Strategy<Value = RelationshipFilter> {
    (
        prop::option::of(name()),
        prop::option::of(id()),
        prop::option::of(name()),
        prop::option::of(name()),
        prop::option::of(prop_oneof![
            id(),
            Just("*".to_owned()),
            Just("not valid!".to_owned())
        ]),
        prop::option::of(name()),
    )
        .prop_map(|(rt, ri, rel, st, si, sr)| RelationshipFilter {
            resource_type: rt.map(|t| TypeName::new(t).unwrap()),
            resource_id: ri.map(|i| ObjectId::new(i).unwrap()),
            relation: rel.map(|r| RelationName::new(r).unwrap()),
            subject_type: st.map(|t| TypeName::new(t).unwrap()),
            subject_id: si,
            subject_relation: sr.map(|r| RelationName::new(r).unwrap()),
        })
}

fn batch() -> impl Strategy<Value = WriteBatch> {
    let mutation = prop_oneof![
        relationship().prop_map(Mutation::Create),
        relationship().prop_map(Mutation::Touch),
        relationship().prop_map(Mutation::Delete),
        filter().prop_map(Mutation::DeleteMatching),
    ];
    let precondition = (any::<bool>(), filter()).prop_map(|(must, filter)| Precondition {
        kind: if must {
            PreconditionKind::MustMatch
        } else {
            PreconditionKind::MustNotMatch
        },
        filter,
    });
    (
        prop::collection::vec(mutation, 0..6),
        prop::collection::vec(precondition, 0..3),
    )
        .prop_map(|(mutations, preconditions)| WriteBatch {
            mutations,
            preconditions,
        })
}

/// Every command: a vault's, or one of the tables shard 0 keeps for the cluster.
fn command() -> impl Strategy<Value = ShardCommand> {
    prop_oneof![vault_command(), registry_command()]
}

fn vault_command() -> impl Strategy<Value = ShardCommand> {
    prop_oneof![
        (any::<u64>(), ".{0,20}", any::<u64>()).prop_map(|(id, name, now_ms)| {
            ShardCommand::CreateVault {
                id: VaultId(id),
                name,
                now_ms,
            }
        }),
        any::<u64>().prop_map(|id| ShardCommand::DeleteVault { id: VaultId(id) }),
        (any::<u64>(), ".{0,40}", any::<u64>()).prop_map(|(id, text, now_ms)| {
            ShardCommand::DeploySchema {
                vault: VaultId(id),
                text,
                now_ms,
            }
        }),
        (any::<u64>(), batch(), any::<u64>()).prop_map(|(id, batch, now_ms)| ShardCommand::Write {
            vault: VaultId(id),
            batch,
            now_ms
        }),
        (
            any::<u64>(),
            prop::collection::vec(batch(), 0..4),
            any::<u64>()
        )
            .prop_map(|(id, batches, now_ms)| ShardCommand::WriteGroup {
                vault: VaultId(id),
                batches,
                now_ms
            }),
        (
            any::<u64>(),
            any::<u64>(),
            any::<u32>(),
            ".{0,20}",
            any::<u64>(),
            any::<u64>()
        )
            .prop_map(|(id, now_ms, limit, job, holder, epoch)| {
                ShardCommand::PurgeExpired {
                    vault: VaultId(id),
                    now_ms,
                    limit,
                    job,
                    holder,
                    epoch,
                }
            }),
    ]
}

fn registry_command() -> impl Strategy<Value = ShardCommand> {
    prop_oneof![
        (".{0,20}", any::<u64>(), any::<u64>(), any::<u64>()).prop_map(
            |(job, holder, duration_ms, now_ms)| ShardCommand::AcquireLease {
                job,
                holder,
                duration_ms,
                now_ms,
            }
        ),
        (
            ".{0,20}",
            any::<u64>(),
            any::<u64>(),
            any::<u64>(),
            any::<u64>()
        )
            .prop_map(|(job, holder, epoch, duration_ms, now_ms)| {
                ShardCommand::RenewLease {
                    job,
                    holder,
                    epoch,
                    duration_ms,
                    now_ms,
                }
            }),
        (".{0,20}", any::<u64>(), any::<u64>())
            .prop_map(|(job, holder, epoch)| { ShardCommand::ReleaseLease { job, holder, epoch } }),
        (
            any::<u64>(),
            prop_oneof![
                ".{0,30}",
                "[0-9.]{7,15}:[0-9]{1,5}",
                Just("[::1]:7000".to_owned())
            ]
        )
            .prop_map(|(id, address)| ShardCommand::AddMember { id, address }),
        any::<u64>().prop_map(|id| ShardCommand::RemoveMember { id }),
        (any::<u64>(), ".{0,20}", any::<u32>()).prop_map(|(id, name, data_shards)| {
            ShardCommand::PlaceVault {
                id: VaultId(id),
                name,
                data_shards,
            }
        }),
        any::<u64>().prop_map(|id| ShardCommand::UnplaceVault { id: VaultId(id) }),
    ]
}

fn refusal() -> impl Strategy<Value = (String, String, Vec<u8>)> {
    (
        "[a-z_]{0,20}",
        ".{0,40}",
        prop::collection::vec(any::<u8>(), 0..24),
    )
}

fn group_item() -> impl Strategy<Value = GroupItem> {
    prop_oneof![
        (any::<u64>(), any::<u64>(), any::<u64>()).prop_map(|(revision, inserted, removed)| {
            GroupItem::Written {
                revision: Revision(revision),
                inserted,
                removed,
            }
        }),
        refusal().prop_map(|(kind, message, detail)| GroupItem::Refused {
            kind,
            message,
            detail
        }),
    ]
}

fn answer() -> impl Strategy<Value = ShardAnswer> {
    prop_oneof![
        (any::<u64>(), ".{0,20}", any::<u64>()).prop_map(|(id, name, created_at_ms)| {
            ShardAnswer::VaultCreated {
                id: VaultId(id),
                name,
                created_at_ms,
            }
        }),
        any::<u64>().prop_map(|id| ShardAnswer::VaultDeleted { id: VaultId(id) }),
        (any::<u32>(), any::<u64>()).prop_map(|(version, revision)| ShardAnswer::SchemaDeployed {
            version,
            revision: Revision(revision)
        }),
        (any::<u64>(), any::<u64>(), any::<u64>()).prop_map(|(revision, inserted, removed)| {
            ShardAnswer::Written {
                revision: Revision(revision),
                inserted,
                removed,
            }
        }),
        refusal().prop_map(|(kind, message, detail)| ShardAnswer::Refused {
            kind,
            message,
            detail
        }),
        Just(ShardAnswer::AlreadyApplied),
        ".{0,40}".prop_map(|message| ShardAnswer::Fatal { message }),
        (any::<u64>(), any::<u64>()).prop_map(|(epoch, expires_at_ms)| {
            ShardAnswer::LeaseGranted {
                epoch,
                expires_at_ms,
            }
        }),
        Just(ShardAnswer::LeaseReleased),
        prop::collection::vec(group_item(), 0..5)
            .prop_map(|results| ShardAnswer::WroteGroup { results }),
        Just(ShardAnswer::MembersChanged),
        (any::<u64>(), any::<u64>()).prop_map(|(id, shard)| ShardAnswer::VaultPlaced {
            id: VaultId(id),
            shard
        }),
        any::<u64>().prop_map(|id| ShardAnswer::VaultUnplaced { id: VaultId(id) }),
    ]
}

proptest! {
    #[test]
    fn commands_round_trip_and_every_strict_prefix_is_refused(command in command()) {
        let bytes = command.encode();
        prop_assert_eq!(ShardCommand::decode(&bytes), Ok(command));
        for length in 0..bytes.len() {
            prop_assert!(ShardCommand::decode(&bytes[..length]).is_err());
        }
        let mut longer = bytes.clone();
        longer.push(0);
        prop_assert_eq!(ShardCommand::decode(&longer), Err(DecodeError::TrailingBytes { count: 1 }));
    }

    #[test]
    fn answers_round_trip_and_every_strict_prefix_is_refused(answer in answer()) {
        let bytes = answer.encode();
        prop_assert_eq!(ShardAnswer::decode(&bytes), Ok(answer));
        for length in 0..bytes.len() {
            prop_assert!(ShardAnswer::decode(&bytes[..length]).is_err());
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_decoders(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        let _ = ShardCommand::decode(&bytes);
        let _ = ShardAnswer::decode(&bytes);
    }
}

#[test]
fn unknown_versions_tags_and_non_canonical_text_are_refused() {
    let command = ShardCommand::DeleteVault { id: VaultId(7) };
    let mut bytes = command.encode();
    assert_eq!(bytes, [1, 2, 0, 0, 0, 0, 0, 0, 0, 7]);
    bytes[0] = 2;
    assert_eq!(
        ShardCommand::decode(&bytes),
        Err(DecodeError::UnknownVersion {
            what: "shard command",
            version: 2
        })
    );
    assert_eq!(ShardCommand::decode(&[]), Err(DecodeError::Empty));
    assert_eq!(
        ShardCommand::decode(&[1, 14]),
        Err(DecodeError::UnknownTag {
            what: "command",
            tag: 14
        })
    );
    assert_eq!(
        ShardAnswer::decode(&[3, 6]),
        Err(DecodeError::UnknownVersion {
            what: "shard answer",
            version: 3
        })
    );

    // A relationship whose text parses but does not print back identically.
    let write = |text: &str| {
        let mut bytes = vec![1, 4];
        bytes.extend_from_slice(&7u64.to_be_bytes());
        bytes.extend_from_slice(&9u64.to_be_bytes());
        bytes.extend_from_slice(&1u32.to_be_bytes());
        bytes.push(1);
        bytes.extend_from_slice(&(text.len() as u32).to_be_bytes());
        bytes.extend_from_slice(text.as_bytes());
        bytes.extend_from_slice(&0u32.to_be_bytes());
        bytes
    };
    assert!(ShardCommand::decode(&write("doc:a#viewer@user:b[expires_at_ms:9]")).is_ok());
    assert!(matches!(
        ShardCommand::decode(&write("doc:a#viewer@user:b[expires_at_ms:09]")),
        Err(DecodeError::NonCanonical { .. })
    ));
    assert!(matches!(
        ShardCommand::decode(&write("doc:a#viewer")),
        Err(DecodeError::InvalidText {
            what: "relationship",
            ..
        })
    ));
    // A count larger than the input can hold is refused before allocating.
    let mut huge = write("doc:a#viewer@user:b");
    huge[18..22].copy_from_slice(&u32::MAX.to_be_bytes());
    assert!(matches!(
        ShardCommand::decode(&huge),
        Err(DecodeError::Truncated { .. })
    ));
}

#[test]
fn lease_commands_and_answers_have_fixed_bytes() {
    let be = |value: u64| value.to_be_bytes().to_vec();
    let job = [0, 0, 0, 2, b'g', b'c'];
    let acquire = ShardCommand::AcquireLease {
        job: "gc".into(),
        holder: 1,
        duration_ms: 2,
        now_ms: 3,
    };
    assert_eq!(
        acquire.encode(),
        [vec![1, 5], job.to_vec(), be(1), be(2), be(3)].concat()
    );
    let renew = ShardCommand::RenewLease {
        job: "gc".into(),
        holder: 1,
        epoch: 4,
        duration_ms: 2,
        now_ms: 3,
    };
    assert_eq!(
        renew.encode(),
        [vec![1, 6], job.to_vec(), be(1), be(4), be(2), be(3)].concat()
    );
    let release = ShardCommand::ReleaseLease {
        job: "gc".into(),
        holder: 1,
        epoch: 4,
    };
    assert_eq!(
        release.encode(),
        [vec![1, 7], job.to_vec(), be(1), be(4)].concat()
    );
    let granted = ShardAnswer::LeaseGranted {
        epoch: 4,
        expires_at_ms: 5,
    };
    assert_eq!(granted.encode(), [vec![1, 8], be(4), be(5)].concat());
    assert_eq!(ShardAnswer::LeaseReleased.encode(), [1, 9]);
    // The old tags are unchanged.
    assert_eq!(ShardAnswer::AlreadyApplied.encode(), [1, 6]);
    assert_eq!(
        ShardCommand::decode(&[1, 14]),
        Err(DecodeError::UnknownTag {
            what: "command",
            tag: 14
        })
    );
    assert_eq!(
        ShardAnswer::decode(&[1, 14]),
        Err(DecodeError::UnknownTag {
            what: "answer",
            tag: 14
        })
    );
}

#[test]
fn write_group_commands_have_fixed_bytes() {
    let be = |value: u64| value.to_be_bytes().to_vec();
    let be32 = |value: u32| value.to_be_bytes().to_vec();
    let text = "doc:a#viewer@user:b";
    let relationship: Relationship = text.parse().unwrap();
    let one = WriteBatch {
        mutations: vec![Mutation::Create(relationship)],
        preconditions: vec![],
    };
    let group = ShardCommand::WriteGroup {
        vault: VaultId(7),
        batches: vec![one, WriteBatch::default()],
        now_ms: 9,
    };
    let first = [
        be32(1),
        vec![1],
        be32(text.len() as u32),
        text.as_bytes().to_vec(),
        be32(0),
    ]
    .concat();
    let second = [be32(0), be32(0)].concat();
    assert_eq!(
        group.encode(),
        [vec![1, 8], be(7), be(9), be32(2), first, second].concat()
    );
    // A count of batches larger than the input can hold is refused before allocating.
    let mut huge = group.encode();
    huge[18..22].copy_from_slice(&u32::MAX.to_be_bytes());
    assert!(matches!(
        ShardCommand::decode(&huge),
        Err(DecodeError::Truncated { .. })
    ));
}

#[test]
fn refusals_and_group_answers_have_fixed_bytes() {
    let be = |value: u64| value.to_be_bytes().to_vec();
    let be32 = |value: u32| value.to_be_bytes().to_vec();
    let refusal = |tag: u8| {
        [
            vec![tag],
            be32(1),
            b"k".to_vec(),
            be32(1),
            b"m".to_vec(),
            be32(2),
            b"{}".to_vec(),
        ]
        .concat()
    };
    let refused = ShardAnswer::Refused {
        kind: "k".into(),
        message: "m".into(),
        detail: b"{}".to_vec(),
    };
    assert_eq!(refused.encode(), [vec![1], refusal(5)].concat());
    let wrote = ShardAnswer::WroteGroup {
        results: vec![
            GroupItem::Written {
                revision: Revision(3),
                inserted: 1,
                removed: 0,
            },
            GroupItem::Refused {
                kind: "k".into(),
                message: "m".into(),
                detail: b"{}".to_vec(),
            },
        ],
    };
    assert_eq!(
        wrote.encode(),
        [
            vec![1, 10],
            be32(2),
            vec![1],
            be(3),
            be(1),
            be(0),
            refusal(2)
        ]
        .concat()
    );
    assert_eq!(
        ShardAnswer::decode(&[vec![1, 10], be32(1), vec![3], vec![0; 12]].concat()),
        Err(DecodeError::UnknownTag {
            what: "group item",
            tag: 3
        })
    );
}

#[test]
fn member_commands_and_answers_have_fixed_bytes() {
    let be = |value: u64| value.to_be_bytes().to_vec();
    let add = ShardCommand::AddMember {
        id: 3,
        address: "10.0.0.3:7000".into(),
    };
    assert_eq!(
        add.encode(),
        [
            vec![1, 9],
            be(3),
            vec![0, 0, 0, 13],
            b"10.0.0.3:7000".to_vec()
        ]
        .concat()
    );
    let remove = ShardCommand::RemoveMember { id: 3 };
    assert_eq!(remove.encode(), [vec![1, 10], be(3)].concat());
    assert_eq!(ShardAnswer::MembersChanged.encode(), [1, 11]);
    for command in [add, remove] {
        assert_eq!(ShardCommand::decode(&command.encode()), Ok(command));
    }
    assert_eq!(
        ShardAnswer::decode(&[1, 11]),
        Ok(ShardAnswer::MembersChanged)
    );
    // The address is any UTF-8 on the wire (the machine refuses a bad one when applying),
    // but not bytes that are not UTF-8.
    let not_utf8 = [vec![1, 9], be(3), vec![0, 0, 0, 1, 0xff]].concat();
    assert_eq!(
        ShardCommand::decode(&not_utf8),
        Err(DecodeError::InvalidUtf8 {
            what: "member address"
        })
    );
}

#[test]
fn placement_and_purge_commands_have_fixed_bytes() {
    let be = |value: u64| value.to_be_bytes().to_vec();
    let be32 = |value: u32| value.to_be_bytes().to_vec();
    let place = ShardCommand::PlaceVault {
        id: VaultId(7),
        name: "alpha".into(),
        data_shards: 3,
    };
    assert_eq!(
        place.encode(),
        [vec![1, 11], be(7), be32(5), b"alpha".to_vec(), be32(3)].concat()
    );
    let unplace = ShardCommand::UnplaceVault { id: VaultId(7) };
    assert_eq!(unplace.encode(), [vec![1, 12], be(7)].concat());
    let purge = ShardCommand::PurgeExpired {
        vault: VaultId(7),
        now_ms: 9,
        limit: 100,
        job: "gc".into(),
        holder: 2,
        epoch: 4,
    };
    assert_eq!(
        purge.encode(),
        [
            vec![1, 13],
            be(7),
            be(9),
            be32(100),
            be32(2),
            b"gc".to_vec(),
            be(2),
            be(4)
        ]
        .concat()
    );
    for command in [place, unplace, purge] {
        assert_eq!(ShardCommand::decode(&command.encode()), Ok(command));
    }
    // The older tags are unchanged, and the next one is unknown.
    assert_eq!(
        ShardCommand::RemoveMember { id: 3 }.encode(),
        [vec![1, 10], be(3)].concat()
    );
    assert_eq!(
        ShardCommand::decode(&[1, 14]),
        Err(DecodeError::UnknownTag {
            what: "command",
            tag: 14
        })
    );
    // A name that is not UTF-8 is refused on the wire (an invalid UTF-8 name only when
    // applied).
    let not_utf8 = [vec![1, 11], be(7), vec![0, 0, 0, 1, 0xff], be32(3)].concat();
    assert_eq!(
        ShardCommand::decode(&not_utf8),
        Err(DecodeError::InvalidUtf8 { what: "vault name" })
    );
}

#[test]
fn placement_answers_have_fixed_bytes() {
    let be = |value: u64| value.to_be_bytes().to_vec();
    let placed = ShardAnswer::VaultPlaced {
        id: VaultId(7),
        shard: 2,
    };
    assert_eq!(placed.encode(), [vec![1, 12], be(7), be(2)].concat());
    let unplaced = ShardAnswer::VaultUnplaced { id: VaultId(7) };
    assert_eq!(unplaced.encode(), [vec![1, 13], be(7)].concat());
    for answer in [placed, unplaced] {
        assert_eq!(ShardAnswer::decode(&answer.encode()), Ok(answer));
    }
    // The older tags are unchanged, and the next one is unknown.
    assert_eq!(ShardAnswer::MembersChanged.encode(), [1, 11]);
    assert_eq!(
        ShardAnswer::decode(&[1, 14]),
        Err(DecodeError::UnknownTag {
            what: "answer",
            tag: 14
        })
    );
}

//! Unit properties: key encodings, the Merkle root, bucket arithmetic, block encoding and
//! revision tokens.

use inferadb_protocols::{Relationship, Revision, VaultId};
use inferadb_vault::keys::{
    canonical_key, decode_canonical, decode_forward, decode_index_value, decode_reverse,
    encode_index_value, forward_key, is_long_id, reverse_key, INDEX_KEY_LENGTH_MAX,
};
use inferadb_vault::ledger::{
    bucket_of, decode_operation, encode_operation, merkle_root, sha256, Block, Operation,
    StateBuckets,
};
use inferadb_vault::{RevisionToken, TokenError, TokenRevision};
use proptest::prelude::*;

fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => "[a-z][a-z0-9_]{0,6}",
        1 => "[a-z][a-z0-9_]{63}",
    ]
}

/// Short ids, and long ones (up to the 1,024-byte limit) that index keys shorten, some
/// sharing every byte the shortened form keeps.
fn id() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => "[A-Za-z0-9_./+=|@-]{1,12}",
        1 => "[A-Za-z0-9_./+=|@-]{250,1024}",
        1 => "[a-c]{1,40}".prop_map(|tail| format!("{}{tail}", "p".repeat(240))),
    ]
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
        proptest::option::of(any::<u64>()),
    )
        .prop_map(|(t, i, r, s, expiry)| {
            let mut relationship: Relationship = format!("{t}:{i}#{r}@{s}").parse().unwrap();
            relationship.expires_at_ms = expiry;
            relationship
        })
}

proptest! {
    #[test]
    fn keys_round_trip_fit_a_page_and_order_like_components(a in relationship(), b in relationship()) {
        let value = encode_index_value(&a);
        prop_assert_eq!(decode_forward(&forward_key(&a), &value), Some(a.clone()));
        prop_assert_eq!(decode_reverse(&reverse_key(&a), &value), Some(a.clone()));
        prop_assert_eq!(decode_canonical(&canonical_key(&a), a.expires_at_ms), Some(a.clone()));
        prop_assert_eq!(decode_index_value(&value).unwrap().expires_at_ms, a.expires_at_ms);
        // With the expiry in front (the expiry index), every key fits a vault page.
        prop_assert!(forward_key(&a).len() + 8 <= INDEX_KEY_LENGTH_MAX);
        prop_assert!(reverse_key(&a).len() + 8 <= INDEX_KEY_LENGTH_MAX);
        // Index keys are injective: equal keys only for equal relationships.
        prop_assert_eq!(forward_key(&a) == forward_key(&b), canonical_key(&a) == canonical_key(&b));
        prop_assert_eq!(reverse_key(&a) == reverse_key(&b), canonical_key(&a) == canonical_key(&b));
        let components = |r: &Relationship| {
            (r.resource.object_type.to_string(), r.resource.object_id.to_string(), r.relation.to_string())
        };
        // Canonical order is the order of the leading components; index order too, as long
        // as no resource id is shortened.
        if components(&a) < components(&b) {
            prop_assert!(canonical_key(&a) < canonical_key(&b));
            let long = |r: &Relationship| is_long_id(r.resource.object_id.as_ref());
            if !long(&a) && !long(&b) {
                prop_assert!(forward_key(&a) < forward_key(&b));
            }
        }
    }

    #[test]
    fn an_index_entry_with_a_wrong_or_missing_full_id_is_malformed(a in relationship(), flip in any::<prop::sample::Index>()) {
        let value = encode_index_value(&a);
        let key = forward_key(&a);
        if value.len() > 8 {
            // A shortened key without its ids, or with one byte of them changed, decodes to nothing.
            let expiry = a.expires_at_ms.map_or_else(Vec::new, |at| at.to_le_bytes().to_vec());
            prop_assert_eq!(decode_forward(&key, &expiry), None);
            let mut changed = value.clone();
            let at = 12 + flip.index(value.len() - 12);
            changed[at] = if changed[at] == b'a' { b'b' } else { b'a' };
            prop_assert_eq!(decode_forward(&key, &changed), None);
            prop_assert_eq!(decode_reverse(&reverse_key(&a), &changed), None);
        }
    }

    #[test]
    fn operations_and_blocks_round_trip(ops in proptest::collection::vec(relationship(), 0..6), flag in any::<bool>()) {
        let operations: Vec<Operation> = ops
            .into_iter()
            .map(|r| if flag { Operation::Insert(r) } else { Operation::Remove(r) })
            .chain([Operation::SchemaDeployed { version: 3, text_sha256: sha256(b"x") }])
            .collect();
        for operation in &operations {
            prop_assert_eq!(decode_operation(&encode_operation(operation)), Some(operation.clone()));
        }
        let block = Block {
            height: 4,
            previous_hash: [1; 32],
            timestamp_ms: 99,
            operations_root: [2; 32],
            state_root: [3; 32],
            operations,
            hash: [4; 32],
        };
        prop_assert_eq!(Block::decode(&block.encode()), Some(block));
    }

    #[test]
    fn buckets_are_an_order_independent_multiset_hash(
        rels in proptest::collection::vec(relationship(), 1..12),
        seed in any::<u64>(),
    ) {
        let mut forward = StateBuckets::default();
        for r in &rels {
            forward.insert(r);
        }
        let mut shuffled = rels.clone();
        let len = shuffled.len();
        shuffled.rotate_left((seed as usize) % len);
        shuffled.reverse();
        let mut backward = StateBuckets::default();
        for r in &shuffled {
            backward.insert(r);
        }
        prop_assert_eq!(forward.root(), backward.root());
        // Removing everything returns to the empty state; one bucket per relationship.
        let changed = forward.insert(&rels[0]);
        prop_assert_eq!(changed, bucket_of(&rels[0]));
        forward.remove(&rels[0]);
        for r in &rels {
            forward.remove(r);
        }
        prop_assert_eq!(forward.root(), StateBuckets::default().root());
    }

    #[test]
    fn tokens_round_trip_and_refuse_tampering(
        shard in any::<u64>(), vault in any::<u64>(), height in any::<u64>(),
        other in any::<u64>(), position in 3usize..67,
    ) {
        let secret = [9; 32];
        let token = RevisionToken::encode(&secret, shard, VaultId(vault), Revision(height));
        prop_assert!(token.is_ascii() && token.len() == 67);
        prop_assert_eq!(
            RevisionToken::decode(&secret, VaultId(vault), &token),
            Ok(TokenRevision { shard, revision: Revision(height) })
        );
        prop_assert_eq!(RevisionToken::decode(&[8; 32], VaultId(vault), &token), Err(TokenError::Forged));
        if other != vault {
            let refused = RevisionToken::decode(&secret, VaultId(other), &token);
            prop_assert_eq!(refused, Err(TokenError::OtherVault { expected: VaultId(other), found: VaultId(vault) }));
        }
        // Changing any hex digit (shard, vault, height or MAC) is either another vault or a
        // forgery, never accepted.
        let mut bytes = token.into_bytes();
        bytes[position] = if bytes[position] == b'0' { b'1' } else { b'0' };
        let altered = String::from_utf8(bytes).unwrap();
        prop_assert!(RevisionToken::decode(&secret, VaultId(vault), &altered).is_err());
    }
}

#[test]
fn merkle_root_follows_the_documented_shape() {
    let leaf = |bytes: &[u8]| sha256(&[&[0u8][..], bytes].concat());
    let node = |l: [u8; 32], r: [u8; 32]| sha256(&[&[1u8][..], &l, &r].concat());
    assert_eq!(merkle_root(&[]), sha256(b""));
    let ops: Vec<Vec<u8>> = vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec()];
    assert_eq!(merkle_root(&ops[..1]), leaf(b"a"));
    // Three leaves: (a, b) pair up, c is promoted, then the two join.
    let expected = node(node(leaf(b"a"), leaf(b"b")), leaf(b"c"));
    assert_eq!(merkle_root(&ops), expected);
}

#[test]
fn malformed_tokens_say_why() {
    let secret = [1; 32];
    for bad in [
        "",
        "r2_00",
        "r2_zz",
        "r2_0123",
        &format!("r2_{}", "A".repeat(64)),
        &format!("r1_{}", "0".repeat(48)),
    ] {
        assert!(
            matches!(
                RevisionToken::decode(&secret, VaultId(1), bad),
                Err(TokenError::Malformed { .. })
            ),
            "{bad}"
        );
    }
}

/// The documented exception to byte order: after its first 223 bytes, a long (shortened)
/// id sorts before every id of 224–256 bytes that shares them, and after one of exactly
/// 223 bytes.
#[test]
fn a_long_id_sorts_by_its_kept_prefix_then_before_medium_ids_that_share_it() {
    let prefix = "p".repeat(223);
    let key = |id: &str| forward_key(&format!("doc:{id}#owner@user:a").parse().unwrap());
    let long = key(&format!("{prefix}{}", "z".repeat(40)));
    assert!(key(&prefix) < long);
    assert!(long < key(&format!("{prefix}a")));
    assert!(long < key(&format!("{prefix}{}", "a".repeat(33))));
    assert!(key(&"o".repeat(300)) < long && long < key(&"q".repeat(10)));
}

proptest! {
    /// The state root is what docs/api.md defines: BLAKE3 over the 256 buckets in order,
    /// each as four little-endian u64 lanes.
    #[test]
    fn the_state_root_is_blake3_over_the_buckets_in_order(relationships in proptest::collection::vec(relationship(), 0..20)) {
        let mut buckets = StateBuckets::default();
        for relationship in &relationships {
            buckets.insert(relationship);
        }
        let mut reference = blake3::Hasher::new();
        for bucket in 0..=255u8 {
            for lane in buckets.get(bucket) {
                reference.update(&lane.to_le_bytes());
            }
        }
        prop_assert_eq!(buckets.root(), *reference.finalize().as_bytes());
    }
}

//! [`PeerMsg`]: the protocol of the peer inbox, the one actor other nodes reach, and the only
//! message type that crosses nodes. Also [`ConnectorMsg`], the (local) protocol of the actor
//! that keeps the links to the other nodes up.
//!
//! **Payloads.** Every [`PeerMsg`] carries one payload of bytes: a typed, versioned wire enum
//! (private to this module) encoded with bincode 2 in its standard configuration
//! (little-endian, variable-length integers). The functions here encode and decode those
//! payloads (pure: no actor, no I/O) and refuse what they cannot read with a [`PayloadError`]
//! that names the payload.
//!
//! | payload | wire enum, version 1 |
//! |---|---|
//! | request of [`PeerMsg::Propose`] | `ForwardedProposalWire::V1 { group: u64, data: bytes }` |
//! | reply of [`PeerMsg::Propose`] | `ProposeReplyWire::V1(Result<{ index: u64, output: bytes }, ProposeErrorWire>)` |
//! | request of [`PeerMsg::ReadBarrier`] | `ReadBarrierRequestWire::V1 { group: u64 }` |
//! | reply of [`PeerMsg::ReadBarrier`] | `ReadBarrierReplyWire::V1(Result<u64, ProposeErrorWire>)` |
//!
//! `ProposeErrorWire` mirrors [`ProposeError`] variant for variant, so the local error type
//! stays free of wire concerns.
//!
//! **Versions.** bincode writes an enum's variant index first, as a variable-length integer
//! (one byte below 251), so a payload opens with its version: variant `V1` is index 0, `Vn` is
//! index n − 1. A node refuses a version it does not know ([`PayloadError::Version`]) rather
//! than guess at its layout. To change a payload, add a variant `V2` (never edit `V1`), keep
//! reading `V1` while a rolling upgrade mixes builds, and write `V2` only once every node reads
//! it.
//!
//! **Hostile bytes.** Decoding never panics. Every payload must be consumed exactly (trailing
//! bytes are refused); byte and text fields are borrowed from the input, their declared
//! lengths checked against it, and copied only once the whole payload has decoded, so a forged
//! length prefix cannot make a node allocate; and the fields of one payload may declare at
//! most [`MAX_PAYLOAD_BYTES`] in all.
//!
//! **Wire framing.** [`PeerMsg`] implements [`ractor::Message`] by hand rather than through
//! `ractor_cluster`'s derive: the derived decoder slices its input without checking lengths
//! (a malformed frame panics inside the receiving actor), and a decoding error terminates the
//! receiving actor. Here the ractor "variant" is the variant's name and the ractor "args" are
//! the payload itself; decoding never fails: a frame this build cannot read (an unknown
//! variant, a cast where a call was expected) becomes an empty payload, which the payload
//! decoders refuse and the inbox counts as refused.

use bincode::config::{Configuration, Limit, LittleEndian, Varint};
use bincode::error::DecodeError;
use bincode::{BorrowDecode, Decode, Encode};
use ractor::message::{BoxedDowncastErr, SerializedMessage};
use ractor::RpcReplyPort;

use crate::raft::{Applied, ProposeError};

/// The ractor variant tag of [`PeerMsg::Raft`].
const RAFT_VARIANT: &str = "Raft";
/// The ractor variant tag of [`PeerMsg::Propose`].
const PROPOSE_VARIANT: &str = "Propose";
/// The ractor variant tag of [`PeerMsg::ReadBarrier`].
const READ_BARRIER_VARIANT: &str = "ReadBarrier";

/// Messages to a node's peer inbox, from another node.
#[derive(Debug)]
pub enum PeerMsg {
    /// One raft `PeerEnvelope`, in its byte encoding (`PeerEnvelope::encode`). No reply: raft
    /// tolerates loss and retries on its own.
    Raft(Vec<u8>),
    /// A proposal forwarded by a follower to this node. Request: an encoded
    /// [`ForwardedProposal`]; reply: an encoded `Result<Vec<u8>, ProposeError>`
    /// ([`encode_propose_reply`]).
    Propose(Vec<u8>, RpcReplyPort<Vec<u8>>),
    /// A linearizable read barrier on one group. Request: the group id
    /// ([`encode_read_barrier_request`]); reply: an encoded `Result<u64, ProposeError>`, the
    /// leader's applied index after a read-index round ([`encode_read_barrier_reply`]).
    ReadBarrier(Vec<u8>, RpcReplyPort<Vec<u8>>),
}

impl ractor::Message for PeerMsg {
    fn serializable() -> bool {
        true
    }

    fn serialize(self) -> Result<SerializedMessage, BoxedDowncastErr> {
        Ok(match self {
            PeerMsg::Raft(args) => SerializedMessage::Cast {
                variant: RAFT_VARIANT.to_string(),
                args,
                metadata: None,
            },
            PeerMsg::Propose(args, reply) => SerializedMessage::Call {
                variant: PROPOSE_VARIANT.to_string(),
                args,
                reply,
                metadata: None,
            },
            PeerMsg::ReadBarrier(args, reply) => SerializedMessage::Call {
                variant: READ_BARRIER_VARIANT.to_string(),
                args,
                reply,
                metadata: None,
            },
        })
    }

    fn deserialize(message: SerializedMessage) -> Result<Self, BoxedDowncastErr> {
        // Never an error: ractor terminates an actor whose message does not decode, and a
        // peer running another build must not be able to stop this node's inbox.
        match message {
            SerializedMessage::Cast { variant, args, .. } => Ok(if variant == RAFT_VARIANT {
                PeerMsg::Raft(args)
            } else {
                PeerMsg::Raft(Vec::new())
            }),
            SerializedMessage::Call {
                variant,
                args,
                reply,
                ..
            } => Ok(match variant.as_str() {
                PROPOSE_VARIANT => PeerMsg::Propose(args, reply),
                READ_BARRIER_VARIANT => PeerMsg::ReadBarrier(args, reply),
                _ => PeerMsg::Propose(Vec::new(), reply),
            }),
            // Replies travel to the calling node's remote-actor shim, never to an inbox.
            SerializedMessage::CallReply(..) => Err(BoxedDowncastErr),
        }
    }
}

/// Messages to the connector, the actor that keeps a link up to every configured peer.
#[derive(Debug)]
pub enum ConnectorMsg {
    /// Reconcile the links (sent by the connector's own interval): record sessions that
    /// became ready, forget dead ones, and connect to each peer that has no session.
    Reconnect,
}

// Local only: never sent to another node (ractor's `cluster` feature needs the impl spelled out).
impl ractor::Message for ConnectorMsg {}

/// A proposal forwarded by a follower to the node it believes leads `group`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ForwardedProposal {
    /// The raft group (shard) to propose to.
    pub group: u64,
    /// The command.
    pub data: Vec<u8>,
}

/// Which payload a [`PayloadError`] is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PayloadKind {
    /// The request of [`PeerMsg::Propose`].
    ForwardedProposal,
    /// The reply of [`PeerMsg::Propose`].
    ProposeReply,
    /// The request of [`PeerMsg::ReadBarrier`].
    ReadBarrierRequest,
    /// The reply of [`PeerMsg::ReadBarrier`].
    ReadBarrierReply,
}

impl std::fmt::Display for PayloadKind {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(match self {
            PayloadKind::ForwardedProposal => "forwarded proposal",
            PayloadKind::ProposeReply => "proposal reply",
            PayloadKind::ReadBarrierRequest => "read barrier request",
            PayloadKind::ReadBarrierReply => "read barrier reply",
        })
    }
}

/// Why a peer payload was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    /// No bytes at all, so no version either.
    #[error("{kind}: empty payload (no version)")]
    Empty {
        /// The payload.
        kind: PayloadKind,
    },
    /// A format version this build does not read.
    #[error("{kind}: payload version {found} is not supported (this node reads 1 to {newest})")]
    Version {
        /// The payload.
        kind: PayloadKind,
        /// The version found (the wire enum's variant index plus one).
        found: u64,
        /// The newest version of this payload this build reads.
        newest: u32,
    },
    /// The payload ends before a field it must hold.
    #[error("{kind}: truncated: {missing_bytes} more bytes are needed")]
    Truncated {
        /// The payload.
        kind: PayloadKind,
        /// How many bytes the field being read lacks.
        missing_bytes: usize,
    },
    /// Bytes after the last field.
    #[error("{kind}: {extra_bytes} unexpected trailing bytes")]
    Trailing {
        /// The payload.
        kind: PayloadKind,
        /// How many.
        extra_bytes: usize,
    },
    /// A variant tag (of a result, an error or an option) this build does not know.
    #[error("{kind}: unknown tag {tag}")]
    UnknownTag {
        /// The payload.
        kind: PayloadKind,
        /// The tag found.
        tag: u32,
    },
    /// A text field is not UTF-8.
    #[error("{kind}: a text field is not UTF-8")]
    Utf8 {
        /// The payload.
        kind: PayloadKind,
    },
    /// A field declares more bytes than any payload may hold ([`MAX_PAYLOAD_BYTES`]).
    #[error("{kind}: a field declares more than the {MAX_PAYLOAD_BYTES} bytes a payload may hold")]
    TooLarge {
        /// The payload.
        kind: PayloadKind,
    },
    /// Bytes that are not a valid encoding for another reason (say, an integer in a width its
    /// field cannot hold).
    #[error("{kind}: malformed: {reason}")]
    Malformed {
        /// The payload.
        kind: PayloadKind,
        /// The decoder's account of the fault.
        reason: String,
    },
}

/// The most bytes a payload's fields may declare, added up; decoding refuses more before it
/// copies anything. Generous: it bounds a forged length prefix, not a real command.
pub const MAX_PAYLOAD_BYTES: usize = 256 * 1024 * 1024;

/// How payloads are written: bincode's standard configuration. The layout does not depend on
/// the limit, so encoding has none; an oversized payload is refused by its reader.
const ENCODING: Configuration = bincode::config::standard();

/// How payloads are read: the same layout, with [`MAX_PAYLOAD_BYTES`] as the limit.
const DECODING: Configuration<LittleEndian, Varint, Limit<MAX_PAYLOAD_BYTES>> =
    bincode::config::standard().with_limit::<MAX_PAYLOAD_BYTES>();

/// A versioned wire enum: one variant per format version, `V1` first.
trait Wire<'a>: Encode + BorrowDecode<'a, ()> {
    /// The payload this enum carries.
    const KIND: PayloadKind;
    /// The newest version this build reads (the number of variants).
    const NEWEST_VERSION: u32;
}

/// The request of [`PeerMsg::Propose`].
#[derive(Encode, BorrowDecode)]
enum ForwardedProposalWire<'a> {
    V1 { group: u64, data: &'a [u8] },
}

impl<'a> Wire<'a> for ForwardedProposalWire<'a> {
    const KIND: PayloadKind = PayloadKind::ForwardedProposal;
    const NEWEST_VERSION: u32 = 1;
}

/// The request of [`PeerMsg::ReadBarrier`].
#[derive(Encode, Decode)]
enum ReadBarrierRequestWire {
    V1 { group: u64 },
}

impl Wire<'_> for ReadBarrierRequestWire {
    const KIND: PayloadKind = PayloadKind::ReadBarrierRequest;
    const NEWEST_VERSION: u32 = 1;
}

/// The reply of [`PeerMsg::Propose`]: the command's output, or why there is none.
#[derive(Encode, BorrowDecode)]
enum ProposeReplyWire<'a> {
    V1(Result<AppliedWire<'a>, ProposeErrorWire<'a>>),
}

/// [`Applied`] on the wire.
#[derive(Encode, BorrowDecode)]
struct AppliedWire<'a> {
    index: u64,
    output: &'a [u8],
}

impl<'a> Wire<'a> for ProposeReplyWire<'a> {
    const KIND: PayloadKind = PayloadKind::ProposeReply;
    const NEWEST_VERSION: u32 = 1;
}

/// The reply of [`PeerMsg::ReadBarrier`]: the leader's applied index, or why there is none.
#[derive(Encode, BorrowDecode)]
enum ReadBarrierReplyWire<'a> {
    V1(Result<u64, ProposeErrorWire<'a>>),
}

impl<'a> Wire<'a> for ReadBarrierReplyWire<'a> {
    const KIND: PayloadKind = PayloadKind::ReadBarrierReply;
    const NEWEST_VERSION: u32 = 1;
}

/// [`ProposeError`] on the wire. Part of every reply's `V1`: never reorder or edit its
/// variants; a new error needs new reply versions.
#[derive(Encode, BorrowDecode)]
enum ProposeErrorWire<'a> {
    NotLeader { leader_hint: Option<u64> },
    Dropped,
    Unknown,
    Failed(&'a str),
}

impl<'a> From<&'a ProposeError> for ProposeErrorWire<'a> {
    fn from(error: &'a ProposeError) -> Self {
        match error {
            ProposeError::NotLeader { leader_hint } => ProposeErrorWire::NotLeader {
                leader_hint: *leader_hint,
            },
            ProposeError::Dropped => ProposeErrorWire::Dropped,
            ProposeError::Unknown => ProposeErrorWire::Unknown,
            ProposeError::Failed(reason) => ProposeErrorWire::Failed(reason),
        }
    }
}

impl From<ProposeErrorWire<'_>> for ProposeError {
    fn from(error: ProposeErrorWire<'_>) -> Self {
        match error {
            ProposeErrorWire::NotLeader { leader_hint } => ProposeError::NotLeader { leader_hint },
            ProposeErrorWire::Dropped => ProposeError::Dropped,
            ProposeErrorWire::Unknown => ProposeError::Unknown,
            ProposeErrorWire::Failed(reason) => ProposeError::Failed(reason.to_string()),
        }
    }
}

/// Encodes a [`ForwardedProposal`] (`ForwardedProposalWire::V1`).
pub fn encode_forwarded_proposal(proposal: &ForwardedProposal) -> Vec<u8> {
    encode(&ForwardedProposalWire::V1 {
        group: proposal.group,
        data: &proposal.data,
    })
}

/// Decodes a [`ForwardedProposal`] written by [`encode_forwarded_proposal`].
pub fn decode_forwarded_proposal(bytes: &[u8]) -> Result<ForwardedProposal, PayloadError> {
    match decode::<ForwardedProposalWire>(bytes)? {
        ForwardedProposalWire::V1 { group, data } => Ok(ForwardedProposal {
            group,
            data: data.to_vec(),
        }),
    }
}

/// Encodes a read barrier request on `group` (`ReadBarrierRequestWire::V1`).
pub fn encode_read_barrier_request(group: u64) -> Vec<u8> {
    encode(&ReadBarrierRequestWire::V1 { group })
}

/// Decodes a read barrier request written by [`encode_read_barrier_request`]: the group.
pub fn decode_read_barrier_request(bytes: &[u8]) -> Result<u64, PayloadError> {
    match decode::<ReadBarrierRequestWire>(bytes)? {
        ReadBarrierRequestWire::V1 { group } => Ok(group),
    }
}

/// Encodes a proposal's answer: the applied entry's index and output, or the error
/// (`ProposeReplyWire::V1`).
pub fn encode_propose_reply(reply: &Result<Applied, ProposeError>) -> Vec<u8> {
    let reply = match reply {
        Ok(applied) => Ok(AppliedWire {
            index: applied.index,
            output: applied.output.as_slice(),
        }),
        Err(error) => Err(ProposeErrorWire::from(error)),
    };
    encode(&ProposeReplyWire::V1(reply))
}

/// Decodes a proposal's answer written by [`encode_propose_reply`].
pub fn decode_propose_reply(bytes: &[u8]) -> Result<Result<Applied, ProposeError>, PayloadError> {
    match decode::<ProposeReplyWire>(bytes)? {
        ProposeReplyWire::V1(reply) => Ok(reply
            .map(|applied| Applied {
                index: applied.index,
                output: applied.output.to_vec(),
            })
            .map_err(ProposeError::from)),
    }
}

/// Encodes a read barrier's answer: the leader's applied index or the error
/// (`ReadBarrierReplyWire::V1`).
pub fn encode_read_barrier_reply(reply: &Result<u64, ProposeError>) -> Vec<u8> {
    let reply = match reply {
        Ok(applied_index) => Ok(*applied_index),
        Err(error) => Err(ProposeErrorWire::from(error)),
    };
    encode(&ReadBarrierReplyWire::V1(reply))
}

/// Decodes a read barrier's answer written by [`encode_read_barrier_reply`].
pub fn decode_read_barrier_reply(bytes: &[u8]) -> Result<Result<u64, ProposeError>, PayloadError> {
    match decode::<ReadBarrierReplyWire>(bytes)? {
        ReadBarrierReplyWire::V1(reply) => Ok(reply.map_err(ProposeError::from)),
    }
}

/// Writes one payload.
fn encode(payload: &impl Encode) -> Vec<u8> {
    bincode::encode_to_vec(payload, ENCODING)
        .expect("invariant: integers, bytes and text always encode into a Vec")
}

/// Reads one payload of type `W`: its version first, then the whole of it, refusing an
/// unknown version, a short or oversized field and trailing bytes.
fn decode<'a, W: Wire<'a>>(bytes: &'a [u8]) -> Result<W, PayloadError> {
    let kind = W::KIND;
    if bytes.is_empty() {
        return Err(PayloadError::Empty { kind });
    }
    // The derived decoder reads the variant index first, as this u32; reading it here tells
    // an unknown version apart from an unknown tag deeper in the payload.
    let (variant, _): (u32, usize) =
        bincode::decode_from_slice(bytes, DECODING).map_err(|error| refusal(kind, error))?;
    if variant >= W::NEWEST_VERSION {
        return Err(PayloadError::Version {
            kind,
            found: u64::from(variant) + 1,
            newest: W::NEWEST_VERSION,
        });
    }
    let (payload, read) = bincode::borrow_decode_from_slice::<W, _>(bytes, DECODING)
        .map_err(|error| refusal(kind, error))?;
    if read != bytes.len() {
        return Err(PayloadError::Trailing {
            kind,
            extra_bytes: bytes.len() - read,
        });
    }
    Ok(payload)
}

/// The [`PayloadError`] for a bincode decoding error.
fn refusal(kind: PayloadKind, error: DecodeError) -> PayloadError {
    match error {
        DecodeError::UnexpectedEnd { additional } => PayloadError::Truncated {
            kind,
            missing_bytes: additional,
        },
        DecodeError::LimitExceeded => PayloadError::TooLarge { kind },
        DecodeError::UnexpectedVariant { found, .. } => {
            PayloadError::UnknownTag { kind, tag: found }
        }
        DecodeError::Utf8 { .. } => PayloadError::Utf8 { kind },
        other => PayloadError::Malformed {
            kind,
            reason: other.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use ractor::Message as _;

    fn every_error() -> Vec<ProposeError> {
        vec![
            ProposeError::NotLeader { leader_hint: None },
            ProposeError::NotLeader {
                leader_hint: Some(u64::MAX),
            },
            ProposeError::Dropped,
            ProposeError::Unknown,
            ProposeError::Failed(String::new()),
            ProposeError::Failed("disk full: é".into()),
        ]
    }

    #[test]
    fn every_propose_error_round_trips_in_both_replies() {
        for error in every_error() {
            let propose = Err(error.clone());
            assert_eq!(
                decode_propose_reply(&encode_propose_reply(&propose)),
                Ok(propose)
            );
            let read = Err(error);
            assert_eq!(
                decode_read_barrier_reply(&encode_read_barrier_reply(&read)),
                Ok(read)
            );
        }
    }

    #[test]
    fn requests_and_answers_round_trip() {
        for data in [Vec::new(), b"write".to_vec()] {
            let proposal = ForwardedProposal {
                group: 7,
                data: data.clone(),
            };
            assert_eq!(
                decode_forwarded_proposal(&encode_forwarded_proposal(&proposal)),
                Ok(proposal)
            );
            let applied = Applied {
                index: 12,
                output: data,
            };
            assert_eq!(
                decode_propose_reply(&encode_propose_reply(&Ok(applied.clone()))),
                Ok(Ok(applied))
            );
        }
        assert_eq!(
            decode_read_barrier_request(&encode_read_barrier_request(9)),
            Ok(9)
        );
        assert_eq!(
            decode_read_barrier_reply(&encode_read_barrier_reply(&Ok(42))),
            Ok(Ok(42))
        );
    }

    /// Pins the V1 layouts: a change here breaks every node still running the old build.
    #[test]
    fn version_one_layouts_are_stable() {
        let proposal = ForwardedProposal {
            group: 7,
            data: b"ab".to_vec(),
        };
        assert_eq!(encode_forwarded_proposal(&proposal), [0, 7, 2, b'a', b'b']);
        assert_eq!(encode_read_barrier_request(300), [0, 251, 0x2c, 0x01]);
        let applied = Applied {
            index: 300,
            output: b"x".to_vec(),
        };
        assert_eq!(
            encode_propose_reply(&Ok(applied)),
            [0, 0, 251, 0x2c, 0x01, 1, b'x']
        );
        let not_leader = ProposeError::NotLeader {
            leader_hint: Some(5),
        };
        assert_eq!(encode_propose_reply(&Err(not_leader)), [0, 1, 0, 1, 5]);
        assert_eq!(encode_read_barrier_reply(&Ok(3)), [0, 0, 3]);
        assert_eq!(
            encode_read_barrier_reply(&Err(ProposeError::Failed("é".into()))),
            [0, 1, 3, 2, 0xc3, 0xa9]
        );
    }

    #[test]
    fn unknown_versions_are_refused_by_every_decoder() {
        for (bytes, found) in [(vec![1, 0, 0], 2), (vec![251, 0x10, 0x27], 10_001)] {
            let version = |kind| PayloadError::Version {
                kind,
                found,
                newest: 1,
            };
            assert_eq!(
                decode_forwarded_proposal(&bytes),
                Err(version(PayloadKind::ForwardedProposal))
            );
            assert_eq!(
                decode_read_barrier_request(&bytes),
                Err(version(PayloadKind::ReadBarrierRequest))
            );
            assert_eq!(
                decode_propose_reply(&bytes),
                Err(version(PayloadKind::ProposeReply))
            );
            assert_eq!(
                decode_read_barrier_reply(&bytes),
                Err(version(PayloadKind::ReadBarrierReply))
            );
        }
    }

    #[test]
    fn empty_truncated_and_trailing_bytes_are_refused() {
        let kind = PayloadKind::ReadBarrierRequest;
        assert_eq!(
            decode_read_barrier_request(&[]),
            Err(PayloadError::Empty { kind })
        );
        assert_eq!(
            decode_read_barrier_request(&[0]),
            Err(PayloadError::Truncated {
                kind,
                missing_bytes: 1
            })
        );
        assert_eq!(
            decode_read_barrier_request(&[0, 253, 1, 2]),
            Err(PayloadError::Truncated {
                kind,
                missing_bytes: 6
            })
        );
        let mut trailing = encode_read_barrier_request(1);
        trailing.push(0);
        assert_eq!(
            decode_read_barrier_request(&trailing),
            Err(PayloadError::Trailing {
                kind,
                extra_bytes: 1
            })
        );
        let mut trailing = encode_forwarded_proposal(&ForwardedProposal {
            group: 1,
            data: b"abc".to_vec(),
        });
        trailing.extend_from_slice(b"de");
        assert_eq!(
            decode_forwarded_proposal(&trailing),
            Err(PayloadError::Trailing {
                kind: PayloadKind::ForwardedProposal,
                extra_bytes: 2
            })
        );
        // Declares 3 data bytes, holds 1.
        assert_eq!(
            decode_forwarded_proposal(&[0, 1, 3, 9]),
            Err(PayloadError::Truncated {
                kind: PayloadKind::ForwardedProposal,
                missing_bytes: 2
            })
        );
    }

    #[test]
    fn unknown_tags_and_bad_text_are_refused() {
        let kind = PayloadKind::ProposeReply;
        // Result tag 2, error tag 42, option tag 2.
        for (bytes, tag) in [(vec![0, 2], 2), (vec![0, 1, 42], 42), (vec![0, 1, 0, 2], 2)] {
            assert_eq!(
                decode_propose_reply(&bytes),
                Err(PayloadError::UnknownTag { kind, tag })
            );
        }
        assert_eq!(
            decode_read_barrier_reply(&[0, 1, 3, 2, 0xff, 0xfe]),
            Err(PayloadError::Utf8 {
                kind: PayloadKind::ReadBarrierReply
            })
        );
    }

    #[test]
    fn forged_lengths_and_integers_are_refused_without_allocating() {
        // V1, group 1, then a data length written as a u64.
        let mut forged = vec![0, 1, 253];
        forged.extend_from_slice(&u64::MAX.to_le_bytes());
        assert_eq!(
            decode_forwarded_proposal(&forged),
            Err(PayloadError::TooLarge {
                kind: PayloadKind::ForwardedProposal
            })
        );
        // V1, Ok, index 1, then an output length written as a u32, one byte over the limit.
        let mut just_over = vec![0, 0, 1, 252];
        let over = u32::try_from(MAX_PAYLOAD_BYTES + 1).unwrap();
        just_over.extend_from_slice(&over.to_le_bytes());
        assert_eq!(
            decode_propose_reply(&just_over),
            Err(PayloadError::TooLarge {
                kind: PayloadKind::ProposeReply
            })
        );
        // A version written as a u64 does not fit the u32 variant index.
        let mut wide = vec![253];
        wide.extend_from_slice(&0u64.to_le_bytes());
        assert!(matches!(
            decode_read_barrier_reply(&wide),
            Err(PayloadError::Malformed {
                kind: PayloadKind::ReadBarrierReply,
                ..
            })
        ));
    }

    #[test]
    fn error_messages_name_the_payload() {
        let error = decode_read_barrier_request(&[]).unwrap_err();
        assert!(error.to_string().starts_with("read barrier request:"));
        let error = decode_forwarded_proposal(&[7]).unwrap_err();
        assert!(error.to_string().starts_with("forwarded proposal:"));
    }

    #[test]
    fn peer_messages_survive_ractor_serialization() {
        let raft = PeerMsg::Raft(vec![1, 2, 3]).serialize().unwrap();
        assert!(
            matches!(PeerMsg::deserialize(raft), Ok(PeerMsg::Raft(bytes)) if bytes == [1, 2, 3])
        );

        let (sender, mut receiver) = ractor::concurrency::oneshot();
        let call = PeerMsg::ReadBarrier(vec![4], RpcReplyPort::from(sender))
            .serialize()
            .unwrap();
        let Ok(PeerMsg::ReadBarrier(bytes, reply)) = PeerMsg::deserialize(call) else {
            panic!("a read barrier must decode as one");
        };
        assert_eq!(bytes, [4]);
        reply.send(vec![5]).unwrap();
        assert_eq!(receiver.try_recv().unwrap(), [5]);
    }

    #[test]
    fn unreadable_frames_become_empty_payloads_instead_of_errors() {
        let cast = SerializedMessage::Cast {
            variant: "FromTheFuture".into(),
            args: vec![1, 2],
            metadata: None,
        };
        assert!(matches!(PeerMsg::deserialize(cast), Ok(PeerMsg::Raft(bytes)) if bytes.is_empty()));
        let (sender, _receiver) = ractor::concurrency::oneshot();
        let call = SerializedMessage::Call {
            variant: "FromTheFuture".into(),
            args: vec![1, 2],
            reply: RpcReplyPort::from(sender),
            metadata: None,
        };
        assert!(
            matches!(PeerMsg::deserialize(call), Ok(PeerMsg::Propose(bytes, _)) if bytes.is_empty())
        );
    }

    fn any_error() -> impl Strategy<Value = ProposeError> {
        prop_oneof![
            any::<Option<u64>>().prop_map(|leader_hint| ProposeError::NotLeader { leader_hint }),
            Just(ProposeError::Dropped),
            Just(ProposeError::Unknown),
            ".{0,40}".prop_map(ProposeError::Failed),
        ]
    }

    /// Arbitrary bytes, half of them opening with the known version so that decoding gets
    /// past the version check and into the fields.
    fn any_payload_bytes() -> impl Strategy<Value = Vec<u8>> {
        (any::<bool>(), proptest::collection::vec(any::<u8>(), 0..64)).prop_map(
            |(versioned, mut bytes)| {
                if versioned {
                    bytes.insert(0, 0);
                }
                bytes
            },
        )
    }

    proptest! {
        #[test]
        fn payloads_round_trip(
            group in any::<u64>(),
            data in proptest::collection::vec(any::<u8>(), 0..64),
            applied_index in any::<u64>(),
            error in any_error(),
            succeeded in any::<bool>(),
        ) {
            let proposal = ForwardedProposal { group, data: data.clone() };
            prop_assert_eq!(decode_forwarded_proposal(&encode_forwarded_proposal(&proposal)), Ok(proposal));
            prop_assert_eq!(decode_read_barrier_request(&encode_read_barrier_request(group)), Ok(group));
            let propose = if succeeded {
                Ok(Applied { index: applied_index, output: data })
            } else {
                Err(error.clone())
            };
            prop_assert_eq!(decode_propose_reply(&encode_propose_reply(&propose)), Ok(propose));
            let read = if succeeded { Ok(applied_index) } else { Err(error) };
            prop_assert_eq!(decode_read_barrier_reply(&encode_read_barrier_reply(&read)), Ok(read));
        }

        /// Never panics, and whatever decodes re-encodes to a payload that decodes the same.
        #[test]
        fn arbitrary_bytes_never_panic_and_what_decodes_round_trips(bytes in any_payload_bytes()) {
            if let Ok(proposal) = decode_forwarded_proposal(&bytes) {
                let again = decode_forwarded_proposal(&encode_forwarded_proposal(&proposal));
                prop_assert_eq!(again, Ok(proposal));
            }
            if let Ok(group) = decode_read_barrier_request(&bytes) {
                prop_assert_eq!(decode_read_barrier_request(&encode_read_barrier_request(group)), Ok(group));
            }
            if let Ok(reply) = decode_propose_reply(&bytes) {
                prop_assert_eq!(decode_propose_reply(&encode_propose_reply(&reply)), Ok(reply));
            }
            if let Ok(reply) = decode_read_barrier_reply(&bytes) {
                prop_assert_eq!(decode_read_barrier_reply(&encode_read_barrier_reply(&reply)), Ok(reply));
            }
        }
    }
}

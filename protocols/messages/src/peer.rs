//! [`PeerMsg`]: the protocol of the peer inbox, the one actor other nodes reach, and the only
//! message type that crosses nodes. Also [`ConnectorMsg`], the (local) protocol of the actor
//! that keeps the links to the other nodes up.
//!
//! Every [`PeerMsg`] carries one payload of bytes whose first byte is a format version
//! ([`PEER_PAYLOAD_VERSION`]); the functions here encode and decode those payloads (pure: no
//! actor, no I/O), and refuse an unknown version or malformed bytes with a [`PayloadError`].
//!
//! **Wire framing.** [`PeerMsg`] implements [`ractor::Message`] by hand rather than through
//! `ractor_cluster`'s derive: the derived decoder slices its input without checking lengths
//! (a malformed frame panics inside the receiving actor), and a decoding error terminates the
//! receiving actor. Here the ractor "variant" is the variant's name and the ractor "args" are
//! the payload itself; decoding never fails: a frame this build cannot read (an unknown
//! variant, a cast where a call was expected) becomes an empty payload, which the payload
//! decoders refuse and the inbox counts as refused.

use ractor::message::{BoxedDowncastErr, SerializedMessage};
use ractor::RpcReplyPort;

use crate::raft::ProposeError;

/// The payload format this build writes and reads (the first byte of every payload).
pub const PEER_PAYLOAD_VERSION: u8 = 1;

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
    /// No bytes at all, so no version byte either.
    #[error("{kind}: empty payload (no version byte)")]
    Empty {
        /// The payload.
        kind: PayloadKind,
    },
    /// Another format version.
    #[error(
        "{kind}: payload version {found} is not supported (this node speaks {PEER_PAYLOAD_VERSION})"
    )]
    Version {
        /// The payload.
        kind: PayloadKind,
        /// The version found.
        found: u8,
    },
    /// The payload ends before a field it must hold.
    #[error(
        "{kind}: truncated: a field needs {needed_bytes} more bytes, {remaining_bytes} remain"
    )]
    Truncated {
        /// The payload.
        kind: PayloadKind,
        /// The bytes the next field needs.
        needed_bytes: usize,
        /// The bytes left.
        remaining_bytes: usize,
    },
    /// Bytes after the last field.
    #[error("{kind}: {extra_bytes} unexpected trailing bytes")]
    Trailing {
        /// The payload.
        kind: PayloadKind,
        /// How many.
        extra_bytes: usize,
    },
    /// A tag byte (result or error variant) this build does not know.
    #[error("{kind}: unknown tag {tag}")]
    UnknownTag {
        /// The payload.
        kind: PayloadKind,
        /// The tag found.
        tag: u8,
    },
    /// A text field is not UTF-8.
    #[error("{kind}: a text field is not UTF-8")]
    Utf8 {
        /// The payload.
        kind: PayloadKind,
    },
}

/// Result tag: the request succeeded.
const TAG_OK: u8 = 0;
/// Result tag: the request failed with a [`ProposeError`].
const TAG_ERR: u8 = 1;
/// [`ProposeError::NotLeader`].
const ERROR_NOT_LEADER: u8 = 0;
/// [`ProposeError::Dropped`].
const ERROR_DROPPED: u8 = 1;
/// [`ProposeError::Unknown`].
const ERROR_UNKNOWN: u8 = 2;
/// [`ProposeError::Failed`].
const ERROR_FAILED: u8 = 3;
/// `NotLeader`'s hint flag: no leader known.
const HINT_NONE: u8 = 0;
/// `NotLeader`'s hint flag: a leader id follows.
const HINT_SOME: u8 = 1;

/// Encodes a [`ForwardedProposal`]: version, group (u64 big-endian), then the command bytes.
pub fn encode_forwarded_proposal(proposal: &ForwardedProposal) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(1 + 8 + proposal.data.len());
    bytes.push(PEER_PAYLOAD_VERSION);
    bytes.extend_from_slice(&proposal.group.to_be_bytes());
    bytes.extend_from_slice(&proposal.data);
    bytes
}

/// Decodes a [`ForwardedProposal`] written by [`encode_forwarded_proposal`].
pub fn decode_forwarded_proposal(bytes: &[u8]) -> Result<ForwardedProposal, PayloadError> {
    let mut reader = Reader::open(PayloadKind::ForwardedProposal, bytes)?;
    let group = reader.u64()?;
    Ok(ForwardedProposal {
        group,
        data: reader.rest().to_vec(),
    })
}

/// Encodes a read barrier request: version, then the group (u64 big-endian).
pub fn encode_read_barrier_request(group: u64) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(1 + 8);
    bytes.push(PEER_PAYLOAD_VERSION);
    bytes.extend_from_slice(&group.to_be_bytes());
    bytes
}

/// Decodes a read barrier request written by [`encode_read_barrier_request`]: the group.
pub fn decode_read_barrier_request(bytes: &[u8]) -> Result<u64, PayloadError> {
    let mut reader = Reader::open(PayloadKind::ReadBarrierRequest, bytes)?;
    let group = reader.u64()?;
    reader.finish()?;
    Ok(group)
}

/// Encodes a proposal's answer: version, then tag 0 and the output bytes, or tag 1 and the
/// error (see [`encode_read_barrier_reply`] for the error's layout).
pub fn encode_propose_reply(reply: &Result<Vec<u8>, ProposeError>) -> Vec<u8> {
    let mut bytes = vec![PEER_PAYLOAD_VERSION];
    match reply {
        Ok(output) => {
            bytes.push(TAG_OK);
            bytes.extend_from_slice(output);
        }
        Err(error) => {
            bytes.push(TAG_ERR);
            write_propose_error(&mut bytes, error);
        }
    }
    bytes
}

/// Decodes a proposal's answer written by [`encode_propose_reply`].
pub fn decode_propose_reply(bytes: &[u8]) -> Result<Result<Vec<u8>, ProposeError>, PayloadError> {
    let mut reader = Reader::open(PayloadKind::ProposeReply, bytes)?;
    match reader.u8()? {
        TAG_OK => Ok(Ok(reader.rest().to_vec())),
        TAG_ERR => {
            let error = reader.propose_error()?;
            reader.finish()?;
            Ok(Err(error))
        }
        tag => Err(reader.unknown_tag(tag)),
    }
}

/// Encodes a read barrier's answer: version, then tag 0 and the applied index (u64
/// big-endian), or tag 1 and the error. An error is one tag byte (0 `NotLeader`, 1 `Dropped`,
/// 2 `Unknown`, 3 `Failed`); `NotLeader` adds a flag byte (1 when a leader id follows) and the
/// leader id (u64 big-endian); `Failed` adds the text's length (u32 big-endian) and its UTF-8.
pub fn encode_read_barrier_reply(reply: &Result<u64, ProposeError>) -> Vec<u8> {
    let mut bytes = vec![PEER_PAYLOAD_VERSION];
    match reply {
        Ok(applied_index) => {
            bytes.push(TAG_OK);
            bytes.extend_from_slice(&applied_index.to_be_bytes());
        }
        Err(error) => {
            bytes.push(TAG_ERR);
            write_propose_error(&mut bytes, error);
        }
    }
    bytes
}

/// Decodes a read barrier's answer written by [`encode_read_barrier_reply`].
pub fn decode_read_barrier_reply(bytes: &[u8]) -> Result<Result<u64, ProposeError>, PayloadError> {
    let mut reader = Reader::open(PayloadKind::ReadBarrierReply, bytes)?;
    let reply = match reader.u8()? {
        TAG_OK => Ok(reader.u64()?),
        TAG_ERR => Err(reader.propose_error()?),
        tag => return Err(reader.unknown_tag(tag)),
    };
    reader.finish()?;
    Ok(reply)
}

/// Appends `error` in the layout [`encode_read_barrier_reply`] describes.
fn write_propose_error(bytes: &mut Vec<u8>, error: &ProposeError) {
    match error {
        ProposeError::NotLeader { leader_hint } => {
            bytes.push(ERROR_NOT_LEADER);
            match leader_hint {
                Some(leader) => {
                    bytes.push(HINT_SOME);
                    bytes.extend_from_slice(&leader.to_be_bytes());
                }
                None => bytes.push(HINT_NONE),
            }
        }
        ProposeError::Dropped => bytes.push(ERROR_DROPPED),
        ProposeError::Unknown => bytes.push(ERROR_UNKNOWN),
        ProposeError::Failed(reason) => {
            bytes.push(ERROR_FAILED);
            // A reason longer than u32::MAX bytes is cut: it is only a diagnostic.
            let text = reason.as_bytes();
            let length = u32::try_from(text.len()).unwrap_or(u32::MAX);
            bytes.extend_from_slice(&length.to_be_bytes());
            bytes.extend_from_slice(&text[..length as usize]);
        }
    }
}

/// Reads one payload's fields in order, refusing what does not fit.
struct Reader<'a> {
    kind: PayloadKind,
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    /// Checks the version byte and positions the reader after it.
    fn open(kind: PayloadKind, bytes: &'a [u8]) -> Result<Reader<'a>, PayloadError> {
        let Some((&version, rest)) = bytes.split_first() else {
            return Err(PayloadError::Empty { kind });
        };
        if version != PEER_PAYLOAD_VERSION {
            return Err(PayloadError::Version {
                kind,
                found: version,
            });
        }
        Ok(Reader { kind, bytes: rest })
    }

    fn take(&mut self, length: usize) -> Result<&'a [u8], PayloadError> {
        if self.bytes.len() < length {
            return Err(PayloadError::Truncated {
                kind: self.kind,
                needed_bytes: length,
                remaining_bytes: self.bytes.len(),
            });
        }
        let (field, rest) = self.bytes.split_at(length);
        self.bytes = rest;
        Ok(field)
    }

    fn u8(&mut self) -> Result<u8, PayloadError> {
        Ok(self.take(1)?[0])
    }

    fn u64(&mut self) -> Result<u64, PayloadError> {
        let mut field = [0u8; 8];
        field.copy_from_slice(self.take(8)?);
        Ok(u64::from_be_bytes(field))
    }

    fn u32(&mut self) -> Result<u32, PayloadError> {
        let mut field = [0u8; 4];
        field.copy_from_slice(self.take(4)?);
        Ok(u32::from_be_bytes(field))
    }

    /// Everything left (the last field of a payload whose length is the frame's).
    fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.bytes)
    }

    /// Refuses trailing bytes.
    fn finish(&self) -> Result<(), PayloadError> {
        if self.bytes.is_empty() {
            Ok(())
        } else {
            Err(PayloadError::Trailing {
                kind: self.kind,
                extra_bytes: self.bytes.len(),
            })
        }
    }

    fn unknown_tag(&self, tag: u8) -> PayloadError {
        PayloadError::UnknownTag {
            kind: self.kind,
            tag,
        }
    }

    fn propose_error(&mut self) -> Result<ProposeError, PayloadError> {
        match self.u8()? {
            ERROR_NOT_LEADER => {
                let leader_hint = match self.u8()? {
                    HINT_NONE => None,
                    HINT_SOME => Some(self.u64()?),
                    tag => return Err(self.unknown_tag(tag)),
                };
                Ok(ProposeError::NotLeader { leader_hint })
            }
            ERROR_DROPPED => Ok(ProposeError::Dropped),
            ERROR_UNKNOWN => Ok(ProposeError::Unknown),
            ERROR_FAILED => {
                let length = self.u32()? as usize;
                let text = self.take(length)?;
                let reason = std::str::from_utf8(text)
                    .map_err(|_| PayloadError::Utf8 { kind: self.kind })?;
                Ok(ProposeError::Failed(reason.to_string()))
            }
            tag => Err(self.unknown_tag(tag)),
        }
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
    fn requests_round_trip() {
        let proposal = ForwardedProposal {
            group: 7,
            data: b"write".to_vec(),
        };
        assert_eq!(
            decode_forwarded_proposal(&encode_forwarded_proposal(&proposal)),
            Ok(proposal)
        );
        assert_eq!(
            decode_read_barrier_request(&encode_read_barrier_request(9)),
            Ok(9)
        );
        assert_eq!(
            decode_read_barrier_reply(&encode_read_barrier_reply(&Ok(42))),
            Ok(Ok(42))
        );
    }

    #[test]
    fn unknown_versions_and_malformed_bytes_are_refused() {
        let kind = PayloadKind::ReadBarrierRequest;
        assert_eq!(
            decode_read_barrier_request(&[]),
            Err(PayloadError::Empty { kind })
        );
        assert_eq!(
            decode_read_barrier_request(&[2, 0, 0, 0, 0, 0, 0, 0, 1]),
            Err(PayloadError::Version { kind, found: 2 })
        );
        assert_eq!(
            decode_read_barrier_request(&[1, 0, 0]),
            Err(PayloadError::Truncated {
                kind,
                needed_bytes: 8,
                remaining_bytes: 2
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
        assert_eq!(
            decode_propose_reply(&[1, 9]),
            Err(PayloadError::UnknownTag {
                kind: PayloadKind::ProposeReply,
                tag: 9
            })
        );
        assert_eq!(
            decode_propose_reply(&[1, TAG_ERR, 42]),
            Err(PayloadError::UnknownTag {
                kind: PayloadKind::ProposeReply,
                tag: 42
            })
        );
        assert_eq!(
            decode_read_barrier_reply(&[1, TAG_ERR, ERROR_FAILED, 0, 0, 0, 2, 0xff, 0xfe]),
            Err(PayloadError::Utf8 {
                kind: PayloadKind::ReadBarrierReply
            })
        );
        assert!(decode_forwarded_proposal(&[1, 0, 0, 0]).is_err());
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
            let propose = if succeeded { Ok(data) } else { Err(error.clone()) };
            prop_assert_eq!(decode_propose_reply(&encode_propose_reply(&propose)), Ok(propose));
            let read = if succeeded { Ok(applied_index) } else { Err(error) };
            prop_assert_eq!(decode_read_barrier_reply(&encode_read_barrier_reply(&read)), Ok(read));
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..32)) {
            let _ = decode_forwarded_proposal(&bytes);
            let _ = decode_read_barrier_request(&bytes);
            let _ = decode_propose_reply(&bytes);
            let _ = decode_read_barrier_reply(&bytes);
        }
    }
}

//! [`Transport`]: how a raft group's messages reach its peers. The node's shell sends them
//! through ractor (in process, and over ractor_cluster between nodes); the simulator through
//! its simulated network. Messages travel as [`PeerEnvelope`]s: raft-rs's protobuf bytes in
//! our versioned envelope, so a node can refuse a format it does not speak.
//!
//! Between nodes an envelope travels as bytes ([`PeerEnvelope::encode`]): its version byte,
//! then group, from and to (u64 big-endian each), then the raft message's protobuf bytes.

use protobuf::Message as _;
use raft::eraftpb::Message;

/// The envelope format this build writes and reads.
pub const ENVELOPE_VERSION: u8 = 1;

/// The encoded header: version byte, then group, from and to.
const ENVELOPE_HEADER_BYTES: usize = 1 + 3 * 8;

/// A raft message between members of one group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerEnvelope {
    /// The envelope format ([`ENVELOPE_VERSION`]).
    pub version: u8,
    /// The raft group (shard) the message belongs to.
    pub group: u64,
    /// The sending member.
    pub from: u64,
    /// The receiving member.
    pub to: u64,
    /// The raft-rs message, protobuf-encoded.
    pub bytes: Vec<u8>,
}

/// Why an envelope could not be opened.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EnvelopeError {
    /// Another format version.
    #[error(
        "raft envelope version {found} is not supported (this node speaks {ENVELOPE_VERSION})"
    )]
    Version {
        /// The version found.
        found: u8,
    },
    /// The encoded envelope is shorter than its header.
    #[error("raft envelope truncated: {length_bytes} bytes, the header alone needs {ENVELOPE_HEADER_BYTES}")]
    Truncated {
        /// The bytes received.
        length_bytes: usize,
    },
    /// The bytes are not a raft message, or do not match the envelope's addresses.
    #[error("raft envelope from {from}: {reason}")]
    Malformed {
        /// The sender.
        from: u64,
        /// What is wrong.
        reason: String,
    },
}

impl PeerEnvelope {
    /// Seals a raft message of `group`.
    pub fn seal(group: u64, message: &Message) -> Result<PeerEnvelope, EnvelopeError> {
        let bytes = message
            .write_to_bytes()
            .map_err(|error| EnvelopeError::Malformed {
                from: message.from,
                reason: error.to_string(),
            })?;
        Ok(PeerEnvelope {
            version: ENVELOPE_VERSION,
            group,
            from: message.from,
            to: message.to,
            bytes,
        })
    }

    /// The envelope's byte encoding, for the wire between nodes: this envelope's own version
    /// byte, then group, from and to (u64 big-endian each), then the message bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(ENVELOPE_HEADER_BYTES + self.bytes.len());
        bytes.push(self.version);
        bytes.extend_from_slice(&self.group.to_be_bytes());
        bytes.extend_from_slice(&self.from.to_be_bytes());
        bytes.extend_from_slice(&self.to.to_be_bytes());
        bytes.extend_from_slice(&self.bytes);
        bytes
    }

    /// Reads an envelope written by [`PeerEnvelope::encode`], refusing another version or a
    /// truncated header. The raft message itself is checked when the envelope is opened.
    pub fn decode(bytes: &[u8]) -> Result<PeerEnvelope, EnvelopeError> {
        let Some(&version) = bytes.first() else {
            return Err(EnvelopeError::Truncated { length_bytes: 0 });
        };
        if version != ENVELOPE_VERSION {
            return Err(EnvelopeError::Version { found: version });
        }
        if bytes.len() < ENVELOPE_HEADER_BYTES {
            return Err(EnvelopeError::Truncated {
                length_bytes: bytes.len(),
            });
        }
        let field = |index: usize| {
            let start = 1 + index * 8;
            let mut word = [0u8; 8];
            word.copy_from_slice(&bytes[start..start + 8]);
            u64::from_be_bytes(word)
        };
        Ok(PeerEnvelope {
            version,
            group: field(0),
            from: field(1),
            to: field(2),
            bytes: bytes[ENVELOPE_HEADER_BYTES..].to_vec(),
        })
    }

    /// Opens the envelope, checking its version and that the message's addresses match.
    pub fn open(&self) -> Result<Message, EnvelopeError> {
        if self.version != ENVELOPE_VERSION {
            return Err(EnvelopeError::Version {
                found: self.version,
            });
        }
        let malformed = |reason: String| EnvelopeError::Malformed {
            from: self.from,
            reason,
        };
        let message =
            Message::parse_from_bytes(&self.bytes).map_err(|error| malformed(error.to_string()))?;
        if message.from != self.from || message.to != self.to {
            return Err(malformed(
                "the message's addresses differ from the envelope's".into(),
            ));
        }
        Ok(message)
    }
}

/// Delivers envelopes to peers. Sends never block and may be lost: raft tolerates loss,
/// duplication and reordering, and retries on its own.
pub trait Transport: Send + Sync {
    /// Sends `envelope` to member `envelope.to`.
    fn send(&self, envelope: PeerEnvelope);
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft::eraftpb::MessageType;

    #[test]
    fn envelopes_round_trip_and_refuse_other_versions_and_forged_addresses() {
        let mut message = Message::default();
        message.set_msg_type(MessageType::MsgHeartbeat);
        message.from = 1;
        message.to = 2;
        message.term = 7;
        let envelope = PeerEnvelope::seal(9, &message).unwrap();
        assert_eq!(envelope.open().unwrap(), message);
        let mut other = envelope.clone();
        other.version = 2;
        assert_eq!(other.open(), Err(EnvelopeError::Version { found: 2 }));
        let mut forged = envelope.clone();
        forged.from = 3;
        assert!(matches!(
            forged.open(),
            Err(EnvelopeError::Malformed { .. })
        ));
        let mut garbage = envelope;
        garbage.bytes = vec![0xff; 5];
        assert!(garbage.open().is_err());
    }

    #[test]
    fn encoded_envelopes_round_trip_and_refuse_other_versions_and_short_headers() {
        let mut message = Message::default();
        message.set_msg_type(MessageType::MsgAppend);
        message.from = 3;
        message.to = u64::MAX;
        message.term = 2;
        let envelope = PeerEnvelope::seal(u64::MAX - 1, &message).unwrap();
        let bytes = envelope.encode();
        assert_eq!(bytes[0], ENVELOPE_VERSION);
        let decoded = PeerEnvelope::decode(&bytes).unwrap();
        assert_eq!(decoded, envelope);
        assert_eq!(decoded.open().unwrap(), message);

        let mut other = bytes.clone();
        other[0] = 2;
        assert_eq!(
            PeerEnvelope::decode(&other),
            Err(EnvelopeError::Version { found: 2 })
        );
        assert_eq!(
            PeerEnvelope::decode(&[]),
            Err(EnvelopeError::Truncated { length_bytes: 0 })
        );
        assert_eq!(
            PeerEnvelope::decode(&bytes[..ENVELOPE_HEADER_BYTES - 1]),
            Err(EnvelopeError::Truncated {
                length_bytes: ENVELOPE_HEADER_BYTES - 1
            })
        );
        let empty_message = PeerEnvelope::decode(&bytes[..ENVELOPE_HEADER_BYTES]).unwrap();
        assert!(empty_message.bytes.is_empty());
    }

    proptest::proptest! {
        #[test]
        fn any_envelope_round_trips_and_any_bytes_decode_without_panic(
            group in proptest::prelude::any::<u64>(),
            from in proptest::prelude::any::<u64>(),
            to in proptest::prelude::any::<u64>(),
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64),
        ) {
            let envelope = PeerEnvelope { version: ENVELOPE_VERSION, group, from, to, bytes: bytes.clone() };
            proptest::prop_assert_eq!(PeerEnvelope::decode(&envelope.encode()), Ok(envelope));
            let _ = PeerEnvelope::decode(&bytes);
        }
    }
}

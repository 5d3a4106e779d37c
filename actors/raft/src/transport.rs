//! [`Transport`]: how a raft group's messages reach its peers. The node's shell sends them
//! through ractor (in process, and over ractor_cluster between nodes); the simulator through
//! its simulated network. Messages travel as [`PeerEnvelope`]s: raft-rs's protobuf bytes in
//! our versioned envelope, so a node can refuse a format it does not speak.

use protobuf::Message as _;
use raft::eraftpb::Message;

/// The envelope format this build writes and reads.
pub const ENVELOPE_VERSION: u8 = 1;

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
}

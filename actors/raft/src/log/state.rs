//! Payloads of the state file's records and of the snapshot file.
//!
//! State record payload (kind 2):
//!
//! ```text
//! sequence          u64 LE   increases by one per state written (the newest wins)
//! watermark segment u64 LE   first index of the segment the watermark is in (0: none)
//! watermark length  u64 LE   bytes of that segment known durable when this was written
//! hard state length u32 LE
//! hard state        protobuf HardState
//! conf state        protobuf ConfState (the rest)
//! ```
//!
//! Snapshot record payload (kind 3): `state length u32 LE ‖ state payload ‖ protobuf
//! Snapshot` (metadata and data).

use super::LogError;
use protobuf::Message as _;
use raft::eraftpb::{ConfState, HardState, Snapshot};

/// A complete persisted state: what `initial_state` returns, plus bookkeeping.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct StateRecord {
    /// Order of writes: on open, the record with the highest sequence wins.
    pub(crate) sequence: u64,
    /// `(segment first index, length)`: the bytes of that segment that were durable when the
    /// record was written. A bad record before it is corruption, not a torn tail.
    pub(crate) watermark: Option<(u64, u64)>,
    /// Term, vote, commit.
    pub(crate) hard_state: HardState,
    /// Membership.
    pub(crate) conf_state: ConfState,
}

fn encode_error(what: &str, error: protobuf::ProtobufError) -> LogError {
    LogError::Misuse(format!("{what} does not encode: {error}"))
}

fn take<'a>(bytes: &mut &'a [u8], count: usize, location: &str) -> Result<&'a [u8], LogError> {
    if bytes.len() < count {
        return Err(LogError::Corrupt {
            location: location.to_owned(),
            reason: "payload too short".to_owned(),
        });
    }
    let (head, tail) = bytes.split_at(count);
    *bytes = tail;
    Ok(head)
}

fn take_u64(bytes: &mut &[u8], location: &str) -> Result<u64, LogError> {
    let mut word = [0u8; 8];
    word.copy_from_slice(take(bytes, 8, location)?);
    Ok(u64::from_le_bytes(word))
}

fn take_u32(bytes: &mut &[u8], location: &str) -> Result<usize, LogError> {
    let mut word = [0u8; 4];
    word.copy_from_slice(take(bytes, 4, location)?);
    Ok(u32::from_le_bytes(word) as usize)
}

fn corrupt_decode(location: &str, error: protobuf::ProtobufError) -> LogError {
    LogError::Corrupt {
        location: location.to_owned(),
        reason: format!("does not decode: {error}"),
    }
}

impl StateRecord {
    /// The record's payload.
    pub(crate) fn encode(&self) -> Result<Vec<u8>, LogError> {
        let hard_state = self
            .hard_state
            .write_to_bytes()
            .map_err(|error| encode_error("hard state", error))?;
        let conf_state = self
            .conf_state
            .write_to_bytes()
            .map_err(|error| encode_error("conf state", error))?;
        let (segment, length) = self.watermark.unwrap_or((0, 0));
        let mut out = Vec::with_capacity(28 + hard_state.len() + conf_state.len());
        out.extend_from_slice(&self.sequence.to_le_bytes());
        out.extend_from_slice(&segment.to_le_bytes());
        out.extend_from_slice(&length.to_le_bytes());
        out.extend_from_slice(&(hard_state.len() as u32).to_le_bytes());
        out.extend_from_slice(&hard_state);
        out.extend_from_slice(&conf_state);
        Ok(out)
    }

    /// Decodes a payload; `location` names the record in errors.
    pub(crate) fn decode(mut bytes: &[u8], location: &str) -> Result<StateRecord, LogError> {
        let sequence = take_u64(&mut bytes, location)?;
        let segment = take_u64(&mut bytes, location)?;
        let length = take_u64(&mut bytes, location)?;
        let hard_state_len = take_u32(&mut bytes, location)?;
        let hard_state = HardState::parse_from_bytes(take(&mut bytes, hard_state_len, location)?)
            .map_err(|error| corrupt_decode(location, error))?;
        let conf_state =
            ConfState::parse_from_bytes(bytes).map_err(|error| corrupt_decode(location, error))?;
        Ok(StateRecord {
            sequence,
            watermark: (segment != 0).then_some((segment, length)),
            hard_state,
            conf_state,
        })
    }
}

/// The snapshot file's payload.
pub(crate) fn encode_snapshot(
    state: &StateRecord,
    snapshot: &Snapshot,
) -> Result<Vec<u8>, LogError> {
    let state = state.encode()?;
    let snapshot = snapshot
        .write_to_bytes()
        .map_err(|error| encode_error("snapshot", error))?;
    let mut out = Vec::with_capacity(4 + state.len() + snapshot.len());
    out.extend_from_slice(&(state.len() as u32).to_le_bytes());
    out.extend_from_slice(&state);
    out.extend_from_slice(&snapshot);
    Ok(out)
}

/// Decodes the snapshot file's payload.
pub(crate) fn decode_snapshot(
    mut bytes: &[u8],
    location: &str,
) -> Result<(StateRecord, Snapshot), LogError> {
    let state_len = take_u32(&mut bytes, location)?;
    let state = StateRecord::decode(take(&mut bytes, state_len, location)?, location)?;
    let snapshot =
        Snapshot::parse_from_bytes(bytes).map_err(|error| corrupt_decode(location, error))?;
    Ok((state, snapshot))
}

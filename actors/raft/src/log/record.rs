//! Checksummed records: the unit of every file of the durable log (segments, the state
//! file, the snapshot file).
//!
//! ```text
//! offset  size  field
//!      0     4  payload length, u32 little-endian
//!      4     8  checksum: the first 8 bytes of BLAKE3(length LE ‖ kind ‖ payload), as u64 LE
//!     12     1  kind (1 = entry, 2 = state, 3 = snapshot)
//!     13     n  payload
//! ```

/// Bytes before the payload.
pub(crate) const HEADER_BYTES: usize = 13;

/// A record kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A Raft entry (protobuf `Entry`), in a segment.
    Entry = 1,
    /// Hard state + conf state + sync watermark, in the state file (and the snapshot file).
    State = 2,
    /// The snapshot file's single record.
    Snapshot = 3,
}

impl Kind {
    fn from_byte(byte: u8) -> Option<Kind> {
        match byte {
            1 => Some(Kind::Entry),
            2 => Some(Kind::State),
            3 => Some(Kind::Snapshot),
            _ => None,
        }
    }
}

fn checksum(length: u32, kind: u8, payload: &[u8]) -> u64 {
    let mut hasher = blake3::Hasher::new();
    hasher.update(&length.to_le_bytes());
    hasher.update(&[kind]);
    hasher.update(payload);
    let hash = hasher.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&hash.as_bytes()[..8]);
    u64::from_le_bytes(first)
}

/// Appends the record `(kind, payload)` to `out`. Payloads longer than `u32::MAX` bytes are
/// refused (the caller turns that into a misuse error).
pub(crate) fn encode(kind: Kind, payload: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
    let length = u32::try_from(payload.len())
        .map_err(|_| format!("record payload of {} bytes exceeds 4 GiB", payload.len()))?;
    out.reserve(HEADER_BYTES + payload.len());
    out.extend_from_slice(&length.to_le_bytes());
    out.extend_from_slice(&checksum(length, kind as u8, payload).to_le_bytes());
    out.push(kind as u8);
    out.extend_from_slice(payload);
    Ok(())
}

/// One decoded record of a scanned file.
#[derive(Debug)]
pub(crate) struct Record<'a> {
    /// Byte offset of the record's header in its file.
    pub(crate) offset: u64,
    /// Length of the whole record (header + payload).
    pub(crate) len: u64,
    /// Its kind.
    pub(crate) kind: Kind,
    /// Its payload.
    pub(crate) payload: &'a [u8],
}

/// Where a scan stopped before the end of the bytes: the offset of the first record that is
/// incomplete or fails its checksum, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BadRecord {
    /// Offset of the bad record's header.
    pub(crate) offset: u64,
    /// What is wrong with it.
    pub(crate) reason: String,
}

/// Decodes one record at the start of `bytes` (the file offset of which is `offset`).
pub(crate) fn decode(bytes: &[u8], offset: u64) -> Result<Record<'_>, BadRecord> {
    let bad = |reason: String| BadRecord { offset, reason };
    if bytes.len() < HEADER_BYTES {
        return Err(bad(format!("incomplete header ({} bytes)", bytes.len())));
    }
    let mut length = [0u8; 4];
    length.copy_from_slice(&bytes[..4]);
    let length = u32::from_le_bytes(length);
    let mut stored = [0u8; 8];
    stored.copy_from_slice(&bytes[4..12]);
    let stored = u64::from_le_bytes(stored);
    let kind_byte = bytes[12];
    let end = HEADER_BYTES + length as usize;
    if bytes.len() < end {
        return Err(bad(format!(
            "incomplete record: {length}-byte payload, {} bytes present",
            bytes.len() - HEADER_BYTES
        )));
    }
    let payload = &bytes[HEADER_BYTES..end];
    if checksum(length, kind_byte, payload) != stored {
        return Err(bad("checksum mismatch".to_owned()));
    }
    let kind =
        Kind::from_byte(kind_byte).ok_or_else(|| bad(format!("unknown kind {kind_byte}")))?;
    Ok(Record {
        offset,
        len: end as u64,
        kind,
        payload,
    })
}

/// Whether the bad record is complete (its declared length fits) and more bytes follow it.
/// A torn write can only damage the last record of a file, which nothing follows; a bad
/// record with data after it is corruption (bit rot, a misdirected write), never a tear.
pub(crate) fn is_followed(bytes: &[u8], bad: &BadRecord) -> bool {
    let start = bad.offset as usize;
    let Some(header) = bytes.get(start..start + HEADER_BYTES) else {
        return false;
    };
    let mut length = [0u8; 4];
    length.copy_from_slice(&header[..4]);
    let end = start + HEADER_BYTES + u32::from_le_bytes(length) as usize;
    end < bytes.len()
}

/// Decodes consecutive records from the start of `bytes` until the end or the first bad
/// record.
pub(crate) fn scan(bytes: &[u8]) -> (Vec<Record<'_>>, Option<BadRecord>) {
    let mut records = Vec::new();
    let mut at = 0usize;
    while at < bytes.len() {
        match decode(&bytes[at..], at as u64) {
            Ok(record) => {
                at += record.len as usize;
                records.push(record);
            }
            Err(bad) => return (records, Some(bad)),
        }
    }
    (records, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_damage_is_detected() {
        let mut bytes = Vec::new();
        encode(Kind::Entry, b"hello", &mut bytes).unwrap();
        encode(Kind::State, b"", &mut bytes).unwrap();
        let (records, bad) = scan(&bytes);
        assert!(bad.is_none());
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].payload, b"hello");
        assert_eq!(records[1].offset, (HEADER_BYTES + 5) as u64);
        let (records, bad) = scan(&bytes[..bytes.len() - 1]);
        assert_eq!(records.len(), 1);
        assert_eq!(bad.unwrap().offset, (HEADER_BYTES + 5) as u64);
        let mut flipped = bytes.clone();
        flipped[HEADER_BYTES + 1] ^= 4;
        let (records, bad) = scan(&flipped);
        assert!(records.is_empty());
        assert_eq!(bad.unwrap().reason, "checksum mismatch");
        let (records, bad) = scan(&[0u8; 64]);
        assert!(
            records.is_empty() && bad.is_some(),
            "zeros are never a record"
        );
    }
}

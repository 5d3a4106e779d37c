//! The byte-level pieces every encoding of this crate shares: big-endian integers, `u32`
//! length-prefixed UTF-8 strings and byte strings, `0x00`/`0x01` option tags, and a reader
//! that fails with a typed [`DecodeError`] instead of panicking.

/// Bytes that are not a valid encoding.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// No bytes at all.
    #[error("empty input")]
    Empty,
    /// A format byte this version does not know.
    #[error("{what}: unknown format version {version}")]
    UnknownVersion {
        /// What was decoded.
        what: &'static str,
        /// The version byte found.
        version: u8,
    },
    /// A tag (variant, kind, option flag) this version does not know.
    #[error("{what}: unknown tag {tag}")]
    UnknownTag {
        /// What the tag selects.
        what: &'static str,
        /// The tag found.
        tag: u8,
    },
    /// The input ends inside a value.
    #[error("truncated input: {what}")]
    Truncated {
        /// The value being read.
        what: &'static str,
    },
    /// Bytes remain after the value.
    #[error("{count} trailing bytes after the value")]
    TrailingBytes {
        /// How many.
        count: usize,
    },
    /// A string is not UTF-8.
    #[error("{what}: not UTF-8")]
    InvalidUtf8 {
        /// The field.
        what: &'static str,
    },
    /// A text field does not parse (a relationship, a type name, …).
    #[error("{what}: {message}")]
    InvalidText {
        /// The field.
        what: &'static str,
        /// The parser's error.
        message: String,
    },
    /// A text field parses but is not in its canonical form, so the same value would have
    /// two encodings.
    #[error("{what}: `{text}` is not in canonical form")]
    NonCanonical {
        /// The field.
        what: &'static str,
        /// The text found.
        text: String,
    },
    /// A count or length beyond what the encoder ever writes.
    #[error("{what}: {value} is too large")]
    TooLarge {
        /// The field.
        what: &'static str,
        /// The value found.
        value: u64,
    },
}

/// Appends canonical bytes.
#[derive(Default)]
pub(crate) struct Writer {
    pub(crate) out: Vec<u8>,
}

impl Writer {
    pub(crate) fn u8(&mut self, value: u8) {
        self.out.push(value);
    }

    pub(crate) fn u32(&mut self, value: u32) {
        self.out.extend_from_slice(&value.to_be_bytes());
    }

    pub(crate) fn u64(&mut self, value: u64) {
        self.out.extend_from_slice(&value.to_be_bytes());
    }

    /// A length or count. Every length this crate writes comes from an in-memory value far
    /// below 4 GiB (storage values and Raft entries are much smaller).
    pub(crate) fn len(&mut self, length: usize) {
        let length = u32::try_from(length).expect("invariant: encoded lengths are below 4 GiB");
        self.u32(length);
    }

    pub(crate) fn bytes(&mut self, bytes: &[u8]) {
        self.len(bytes.len());
        self.out.extend_from_slice(bytes);
    }

    pub(crate) fn str(&mut self, text: &str) {
        self.bytes(text.as_bytes());
    }

    pub(crate) fn opt_str(&mut self, text: Option<&str>) {
        match text {
            None => self.u8(0),
            Some(text) => {
                self.u8(1);
                self.str(text);
            }
        }
    }
}

/// Reads canonical bytes.
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Self { bytes }
    }

    fn take(&mut self, length: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        if self.bytes.len() < length {
            return Err(DecodeError::Truncated { what });
        }
        let (head, tail) = self.bytes.split_at(length);
        self.bytes = tail;
        Ok(head)
    }

    pub(crate) fn u8(&mut self, what: &'static str) -> Result<u8, DecodeError> {
        Ok(self.take(1, what)?[0])
    }

    pub(crate) fn u32(&mut self, what: &'static str) -> Result<u32, DecodeError> {
        let mut buffer = [0u8; 4];
        buffer.copy_from_slice(self.take(4, what)?);
        Ok(u32::from_be_bytes(buffer))
    }

    pub(crate) fn u64(&mut self, what: &'static str) -> Result<u64, DecodeError> {
        let mut buffer = [0u8; 8];
        buffer.copy_from_slice(self.take(8, what)?);
        Ok(u64::from_be_bytes(buffer))
    }

    /// A count of items that follow, each at least `min_item_bytes` long: a count the
    /// remaining input cannot hold is refused before anything is allocated for it.
    pub(crate) fn count(
        &mut self,
        what: &'static str,
        min_item_bytes: usize,
    ) -> Result<usize, DecodeError> {
        let count = self.u32(what)?;
        let count = usize::try_from(count).map_err(|_| DecodeError::TooLarge {
            what,
            value: u64::from(count),
        })?;
        if count.saturating_mul(min_item_bytes.max(1)) > self.bytes.len() {
            return Err(DecodeError::Truncated { what });
        }
        Ok(count)
    }

    pub(crate) fn bytes(&mut self, what: &'static str) -> Result<&'a [u8], DecodeError> {
        let length = self.count(what, 1)?;
        self.take(length, what)
    }

    pub(crate) fn str(&mut self, what: &'static str) -> Result<&'a str, DecodeError> {
        std::str::from_utf8(self.bytes(what)?).map_err(|_| DecodeError::InvalidUtf8 { what })
    }

    pub(crate) fn opt_str(&mut self, what: &'static str) -> Result<Option<&'a str>, DecodeError> {
        match self.u8(what)? {
            0 => Ok(None),
            1 => self.str(what).map(Some),
            tag => Err(DecodeError::UnknownTag { what, tag }),
        }
    }

    /// Succeeds only when every byte was read.
    pub(crate) fn finish(self) -> Result<(), DecodeError> {
        if self.bytes.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::TrailingBytes {
                count: self.bytes.len(),
            })
        }
    }
}

/// Reads the leading format byte and checks it.
pub(crate) fn expect_format(
    reader: &mut Reader<'_>,
    what: &'static str,
    format: u8,
) -> Result<(), DecodeError> {
    let version = reader.u8(what).map_err(|_| DecodeError::Empty)?;
    if version == format {
        Ok(())
    } else {
        Err(DecodeError::UnknownVersion { what, version })
    }
}

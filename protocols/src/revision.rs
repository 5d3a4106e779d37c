//! Revisions: a vault's ledger height.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{quote, ParseError};

/// A vault's ledger height: the number of blocks committed. Every answer carries the revision
/// it was computed at; a higher revision includes every write of a lower one.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Revision(pub u64);

impl Revision {
    /// The revision of an empty vault, before any write.
    pub const ZERO: Revision = Revision(0);

    /// The height as an integer.
    pub fn height(self) -> u64 {
        self.0
    }

    /// The revision after this one. Panics at `u64::MAX`: a ledger cannot get that tall.
    pub fn next(self) -> Revision {
        Revision(
            self.0
                .checked_add(1)
                .expect("invariant: a ledger never reaches u64::MAX blocks"),
        )
    }
}

impl fmt::Display for Revision {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}", self.0)
    }
}

impl FromStr for Revision {
    type Err = ParseError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = || ParseError::InvalidRevision { value: quote(text) };
        if text.is_empty() || !text.bytes().all(|byte| byte.is_ascii_digit()) {
            return Err(invalid());
        }
        text.parse::<u64>().map(Revision).map_err(|_| invalid())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revisions_round_trip_and_order() {
        assert_eq!("42".parse::<Revision>(), Ok(Revision(42)));
        assert!("-1".parse::<Revision>().is_err());
        assert!("+1".parse::<Revision>().is_err());
        assert!("18446744073709551616".parse::<Revision>().is_err());
        assert!(Revision(1) < Revision(1).next());
        assert_eq!(serde_json::to_string(&Revision(7)).unwrap(), "7");
    }
}

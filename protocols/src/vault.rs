//! Vault ids: the stable, opaque identity of one tenant's authorization store.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{quote, ParseError};

/// A vault's id: a 64-bit number, written as 16 lowercase hexadecimal digits
/// (`0f3a9c2e5b7d1804`). Ids are chosen at random when a vault is created and never reused
/// while the vault exists.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VaultId(pub u64);

impl fmt::Display for VaultId {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{:016x}", self.0)
    }
}

impl FromStr for VaultId {
    type Err = ParseError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let well_formed = text.len() == 16
            && text
                .bytes()
                .all(|byte| byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte));
        if !well_formed {
            return Err(ParseError::InvalidVaultId { value: quote(text) });
        }
        u64::from_str_radix(text, 16)
            .map(VaultId)
            .map_err(|_| ParseError::InvalidVaultId { value: quote(text) })
    }
}

impl Serialize for VaultId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for VaultId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vault_ids_round_trip_and_reject_other_shapes() {
        let id = VaultId(0x0f3a_9c2e_5b7d_1804);
        assert_eq!(id.to_string(), "0f3a9c2e5b7d1804");
        assert_eq!("0f3a9c2e5b7d1804".parse::<VaultId>(), Ok(id));
        for bad in [
            "",
            "0F3A9C2E5B7D1804",
            "0f3a9c2e5b7d180",
            "0f3a9c2e5b7d18041",
            "+f3a9c2e5b7d1804",
        ] {
            assert!(bad.parse::<VaultId>().is_err(), "{bad}");
        }
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"0f3a9c2e5b7d1804\"");
    }
}

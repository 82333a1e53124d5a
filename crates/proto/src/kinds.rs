//! How the store treats an event, by its kind (NIP-01 kind ranges).

use nostr::prelude::Kind;

/// The storage class of an event kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KindClass {
    /// Kept as is (1, 6, 7, 1000–9999, …).
    Regular,
    /// Only the newest per author and kind is kept (0, 3, 10000–19999).
    Replaceable,
    /// Relayed live to subscribers, never stored (20000–29999).
    Ephemeral,
    /// Only the newest per author, kind and `d` tag is kept (30000–39999).
    Addressable,
}

impl KindClass {
    /// The class of `kind`.
    pub fn of(kind: Kind) -> Self {
        if kind.is_replaceable() {
            Self::Replaceable
        } else if kind.is_ephemeral() {
            Self::Ephemeral
        } else if kind.is_addressable() {
            Self::Addressable
        } else {
            Self::Regular
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_follow_nip01_ranges() {
        assert_eq!(KindClass::of(Kind::from_u16(0)), KindClass::Replaceable);
        assert_eq!(KindClass::of(Kind::from_u16(1)), KindClass::Regular);
        assert_eq!(KindClass::of(Kind::from_u16(3)), KindClass::Replaceable);
        assert_eq!(KindClass::of(Kind::from_u16(5)), KindClass::Regular);
        assert_eq!(
            KindClass::of(Kind::from_u16(10_002)),
            KindClass::Replaceable
        );
        assert_eq!(KindClass::of(Kind::from_u16(20_001)), KindClass::Ephemeral);
        assert_eq!(
            KindClass::of(Kind::from_u16(30_023)),
            KindClass::Addressable
        );
        assert_eq!(KindClass::of(Kind::from_u16(40_000)), KindClass::Regular);
    }
}

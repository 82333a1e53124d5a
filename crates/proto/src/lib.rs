//! starling's protocol layer: Nostr types, event validation, client/relay messages and
//! filter matching. Pure logic without I/O, used by the store, the client APIs and (later)
//! the peer-to-peer network, so that every event is checked the same way wherever it comes
//! from.
//!
//! The Nostr data model itself (events, ids, keys, kinds, filters, NIP-19) comes from the
//! `nostr` crate and is re-exported here so the rest of the workspace names one source.

pub mod dm;
pub mod filter;
pub mod kinds;
pub mod limits;
pub mod message;
pub mod render;
pub mod stored;
pub mod validate;

pub use filter::{matches, matches_any};
pub use kinds::KindClass;
pub use limits::Limits;
pub use message::{
    parse_client_message, raw_event_id, raw_event_kind, raw_event_pubkey, ClientMessage,
    MessageError, RelayMessage,
};
pub use render::RenderedEvent;
pub use stored::{stored_kind, stored_pubkey};
pub use validate::{
    validate_event, validate_parsed, validate_parsed_known, validate_rendered,
    validate_rendered_known, KnownKey, ValidationError,
};

/// NIP-19 entities (`nevent`, `nprofile`, …).
pub use nostr::nips::nip19;
/// NIP-59 gift wraps (the envelopes of NIP-17 private messages).
pub use nostr::nips::nip59;
/// The Nostr types used across starling.
pub use nostr::prelude::{
    Event, EventBuilder, EventId, Filter, Keys, Kind, PublicKey, SecretKey, SingleLetterTag,
    SubscriptionId, Tag, Tags, Timestamp,
};
/// NIP-19 bech32 encoding (`npub`, `nsec`, `note`).
pub use nostr::prelude::{
    FinalizeEvent, FinalizeUnsignedEvent, FromBech32, ToBech32, UnsignedEvent,
};

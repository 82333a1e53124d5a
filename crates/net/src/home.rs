//! Home records: the owner-signed binding of a user's public key to the node that serves
//! them (its PeerId and addresses).
//!
//! A home record is a replaceable Nostr event of kind [`HOME_RECORD_KIND`], signed by the
//! user key, with one `peer` tag and one `addr` tag per address. It is stored in the DHT
//! under [`dht_key`], a hash of the public key, so any node can find any user's node from
//! an npub alone. Every reader (and every DHT node asked to store one) checks it with
//! [`HomeRecord::from_json`]: valid id and signature, the right kind, the author matching
//! the key it was found under, a parseable PeerId. The newest valid record wins.

use libp2p::{Multiaddr, PeerId};
use sha2::{Digest, Sha256};
use starling_proto::{
    validate_event, Event, EventBuilder, FinalizeEvent, Keys, Kind, Limits, PublicKey, Tag,
    Timestamp,
};

/// The replaceable kind that carries a home record.
pub const HOME_RECORD_KIND: Kind = Kind::Custom(17_375);

/// Domain separation for the DHT key.
const KEY_DOMAIN: &[u8] = b"starling/home/v1/";

/// The DHT key under which `author`'s home record is stored.
pub fn dht_key(author: &PublicKey) -> Vec<u8> {
    let mut hash = Sha256::new();
    hash.update(KEY_DOMAIN);
    hash.update(author.to_bytes());
    hash.finalize().to_vec()
}

/// Why a home record was rejected.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum HomeRecordError {
    #[error("not a valid event: {0}")]
    Invalid(String),
    #[error("kind {0} is not a home record")]
    WrongKind(u16),
    #[error("signed by a different key than the one it is stored under")]
    WrongAuthor,
    #[error("missing or malformed peer tag")]
    BadPeer,
}

/// A checked home record.
#[derive(Debug, Clone, PartialEq)]
pub struct HomeRecord {
    pub author: PublicKey,
    pub peer: PeerId,
    pub addrs: Vec<Multiaddr>,
    pub created_at: Timestamp,
    /// The signed event, as JSON, exactly as it travels.
    pub json: String,
}

impl HomeRecord {
    /// Signs a new home record for `keys`' public key.
    pub fn sign(keys: &Keys, peer: PeerId, addrs: &[Multiaddr]) -> Self {
        let mut tags = vec![Tag::parse(["peer", &peer.to_string()]).expect("two strings")];
        tags.extend(
            addrs
                .iter()
                .map(|a| Tag::parse(["addr", &a.to_string()]).expect("two strings")),
        );
        let event = EventBuilder::new(HOME_RECORD_KIND, "")
            .tags(tags)
            .finalize(keys)
            .expect("signing with a secret key");
        Self::from_event(&event, event.as_json()).expect("a record we just built is valid")
    }

    /// Parses and checks a record found (or offered) under the DHT key of `expected`, if
    /// given.
    pub fn from_json(json: &str, expected: Option<&PublicKey>) -> Result<Self, HomeRecordError> {
        let event = validate_event(json, &Limits::default(), Timestamp::now())
            .map_err(|e| HomeRecordError::Invalid(e.to_string()))?;
        if let Some(expected) = expected {
            if &event.pubkey != expected {
                return Err(HomeRecordError::WrongAuthor);
            }
        }
        Self::from_event(&event, json.to_owned())
    }

    fn from_event(event: &Event, json: String) -> Result<Self, HomeRecordError> {
        if event.kind != HOME_RECORD_KIND {
            return Err(HomeRecordError::WrongKind(event.kind.as_u16()));
        }
        let mut peer = None;
        let mut addrs = Vec::new();
        for tag in event.tags.iter() {
            match tag.as_slice() {
                [name, value, ..] if name == "peer" => {
                    peer = Some(
                        value
                            .parse::<PeerId>()
                            .map_err(|_| HomeRecordError::BadPeer)?,
                    )
                }
                // An address this build cannot parse is skipped, not fatal: a newer node
                // may announce transports we do not know.
                [name, value, ..] if name == "addr" => {
                    if let Ok(addr) = value.parse() {
                        addrs.push(addr);
                    }
                }
                _ => {}
            }
        }
        Ok(Self {
            author: event.pubkey,
            peer: peer.ok_or(HomeRecordError::BadPeer)?,
            addrs,
            created_at: event.created_at,
            json,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_checks() {
        let keys = Keys::generate();
        let peer = PeerId::random();
        let addr: Multiaddr = "/ip4/127.0.0.1/tcp/4001".parse().unwrap();
        let record = HomeRecord::sign(&keys, peer, std::slice::from_ref(&addr));
        let back = HomeRecord::from_json(&record.json, Some(&keys.public_key())).unwrap();
        assert_eq!(back.peer, peer);
        assert_eq!(back.addrs, vec![addr]);

        let other = Keys::generate().public_key();
        assert_eq!(
            HomeRecord::from_json(&record.json, Some(&other)),
            Err(HomeRecordError::WrongAuthor)
        );
        let forged = record
            .json
            .replace(&peer.to_string(), &PeerId::random().to_string());
        assert!(matches!(
            HomeRecord::from_json(&forged, None),
            Err(HomeRecordError::Invalid(_))
        ));
        assert_ne!(dht_key(&keys.public_key()), dht_key(&other));
    }
}

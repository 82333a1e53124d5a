//! The store's events in the form set reconciliation (negentropy, NIP-77) compares:
//! [`EventKey`]s, sorted and sealed into a negentropy storage. Both the peer-to-peer
//! reconciliation and the local relay's NIP-77 endpoint build their sets here.

use negentropy::{Id, NegentropyStorageVector};

use crate::EventKey;

/// A sealed negentropy set of `keys` (in any order).
pub fn negentropy_storage(keys: &[EventKey]) -> Result<NegentropyStorageVector, negentropy::Error> {
    let mut storage = NegentropyStorageVector::with_capacity(keys.len());
    for k in keys {
        storage.insert(k.created_at, Id::from_byte_array(k.id))?;
    }
    storage.seal()?;
    Ok(storage)
}

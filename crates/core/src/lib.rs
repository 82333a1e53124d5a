//! The node core: the one path by which events enter a node ([`ingest::Ingest`]) and the
//! bus that hands newly stored events to live subscribers ([`bus::EventBus`]). Local
//! clients (relay, REST, CLI), imports and — from the network crate on — peers all submit
//! through [`ingest::Ingest`], tagged with their [`ingest::Origin`], so validation, the
//! write policy and live delivery are the same for every source.

pub mod bus;
pub mod ingest;
pub mod rate;
pub mod remote;

pub use bus::{EventBus, LiveEvent};
pub use ingest::{Ack, Ingest, IngestCounts, IngestError, Origin};
pub use rate::{Bucket, Buckets, Rate};
pub use remote::Remote;

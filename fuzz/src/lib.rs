//! The code behind starling's fuzz targets (`fuzz_targets/`, one module each), kept in a
//! library that the seed generator (`examples/seeds.rs`) shares.
//!
//! Each `run(data)` hands the bytes to the same public decoder the node uses for outside
//! bytes, then checks properties that must hold for whatever came in (round trips, bounds,
//! "a freshly signed event is accepted"). A panic, an overflow or an out-of-memory in any
//! of them is a crash that libFuzzer reports.

pub mod client_message;
pub mod event_json;
pub mod fixture;
pub mod negentropy;
pub mod p2p_wire;
pub mod rest_body;

//! The flood benchmark (issue 7): two real starling nodes on loopback, B following A. An
//! honest user posts on A a few times a second; B's subscriber and A's own receive each
//! post live, and the run records the delay from publish to arrival. Then one hostile
//! client (from another loopback address, 127.0.0.2, so it is "another IP") sends
//! junk EVENTs (bad ids, bad signatures, malformed JSON) at 1,000/s and broad REQs at
//! 100/s to A while the honest user goes on. The honest delays unloaded and under the
//! flood are compared in the same run, once with the default limits and once with the
//! rate limits turned off. Nothing is asserted; figures are printed and written out.

pub mod flooder;
pub mod honest;
pub mod pair;
pub mod report;
pub mod socket;

//! The replica-load benchmark behind `--bin replica_load`.
//!
//! [`run`] drives one run on the in-process network of `netsim`: the seeded power-law
//! follow graph (`graph`, shared with the scale benchmark), the follow lists and
//! subscriptions, [`posting`]'s rounds of notes and replies, the wait for every outbox
//! to drain; then [`census`] takes every node's figures (held authors, stored bytes by
//! class, copies per author) and [`requests`] has counted the requests served, from the
//! request service's log events. [`placement`] computes, without running them, how
//! users spread over the home sets of a larger network. [`report`] turns the rows into distributions over nodes
//! and holds what is written as JSON.

pub mod census;
pub mod cli;
pub mod placement;
pub mod posting;
pub mod report;
pub mod requests;
pub mod run;

//! The network-scale benchmark behind `--bin scale`.
//!
//! One configuration is one (N, mode) pair. [`run`] drives it: [`graph`] draws the seeded
//! power-law follow graph, [`cluster`] starts N real starling nodes ([`node`]) over the
//! in-memory transport and waits until they are set up (follow subscriptions in place, or
//! the broadcast topic joined), [`posting`] has every node post while one collector per node
//! records arrivals from its event bus, [`figures`] turns the samples into delivery ratio,
//! latency percentiles and bytes, and [`report`] prints and writes the tables and targets.
//! [`sys`] reads the process's memory and CPU time and describes the machine.

pub mod cli;
pub mod cluster;
pub mod figures;
pub mod graph;
pub mod posting;
pub mod report;
pub mod run;
pub mod sys;

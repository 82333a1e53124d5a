//! The catch-up benchmark behind `--bin catchup`.
//!
//! [`run`] drives one run: [`world`] starts the in-process network (extra nodes, one node
//! per author, the follower R with a network key outside its followees' home sets),
//! [`posting`] has the authors post (a few notes R receives live, then the offline
//! notes), [`measure`] times starling's own catch-up when R restarts and [`naive`] a
//! since-fetch from a copy of the same offline store, both against the same counters;
//! [`probe`] measures what one home-set lookup costs, the part of both that does not
//! depend on the missed events; [`report`] prints the table and the targets and holds what is written as JSON.

pub mod cli;
pub mod measure;
pub mod naive;
pub mod posting;
pub mod probe;
pub mod report;
pub mod run;
pub mod world;

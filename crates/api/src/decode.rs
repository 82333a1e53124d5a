//! The decoders of this crate that take bytes from outside (a WebSocket client, an HTTP
//! body), made public for the fuzz targets in `fuzz/` so that they call exactly the code the
//! handlers call. The handlers themselves stay private to the crate.
//!
//! - NIP-77 `NEG-*` client messages ([`parse_neg_message`]) and the relay's negentropy
//!   sessions that answer them ([`NegSessions`]);
//! - NostrP2P's REST bodies: `POST /publish` ([`publish_text`], then the ingest path's
//!   validation) and `POST /req` ([`parse_req`]), and the gzipped msgpack answer of `/req`
//!   ([`encode_req_answer`]).

pub use crate::relay::neg_message::{parse as parse_neg_message, NegParseError, NegRequest};
pub use crate::relay::negentropy::{NegError, NegSessions, FRAME_SIZE_LIMIT};
pub use crate::rest::msgpack::encode as encode_req_answer;
pub use crate::rest::req::{parse_req, RestQuery};
pub use crate::rest::{publish_text, RestError};

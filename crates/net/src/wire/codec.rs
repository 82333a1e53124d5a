//! The request-response codec: CBOR (cbor4ii) with a size bound, that hands malformed and
//! oversized requests to the node as [`Inbound::Malformed`] instead of failing the stream
//! silently, so the sender can be held to account (libp2p reports a request that fails to
//! decode only as a debug log line).

use std::io;

use futures_util::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::request_response::Codec;
use libp2p::StreamProtocol;

use super::{Request, Response, MAX_MESSAGE_BYTES};

/// A request as read off the wire.
#[derive(Debug, Clone, PartialEq)]
pub enum Inbound {
    /// A well-formed request.
    Request(Request),
    /// Bytes that are not a request, or more bytes than a request may have.
    Malformed(String),
}

impl From<Request> for Inbound {
    fn from(r: Request) -> Self {
        Inbound::Request(r)
    }
}

/// starling's codec.
#[derive(Debug, Clone, Copy)]
pub struct StarlingCodec {
    max: u64,
}

impl Default for StarlingCodec {
    fn default() -> Self {
        Self {
            max: MAX_MESSAGE_BYTES,
        }
    }
}

/// Reads at most `max + 1` bytes; `None` if there were more than `max`.
async fn read_bounded<T: AsyncRead + Unpin + Send>(
    io: &mut T,
    max: u64,
) -> io::Result<Option<Vec<u8>>> {
    let mut buf = Vec::new();
    io.take(max + 1).read_to_end(&mut buf).await?;
    Ok((buf.len() as u64 <= max).then_some(buf))
}

/// A request from a message's bytes (already within the size bound).
pub fn decode_request(bytes: &[u8]) -> Inbound {
    match cbor4ii::serde::from_slice::<Request>(bytes) {
        Ok(request) => Inbound::Request(request),
        Err(e) => Inbound::Malformed(format!("undecodable message: {e}")),
    }
}

/// A response from a message's bytes (already within the size bound).
pub fn decode_response(bytes: &[u8]) -> io::Result<Response> {
    cbor4ii::serde::from_slice(bytes)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))
}

impl Codec for StarlingCodec {
    type Protocol = StreamProtocol;
    type Request = Inbound;
    type Response = Response;

    async fn read_request<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<Inbound> {
        let Some(bytes) = read_bounded(io, self.max).await? else {
            return Ok(Inbound::Malformed(format!(
                "message larger than {} bytes",
                self.max
            )));
        };
        Ok(decode_request(&bytes))
    }

    async fn read_response<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<Response> {
        let bytes = read_bounded(io, self.max)
            .await?
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "response too large"))?;
        decode_response(&bytes)
    }

    async fn write_request<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        request: Inbound,
    ) -> io::Result<()> {
        let Inbound::Request(request) = request else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "only well-formed requests are sent",
            ));
        };
        write_cbor(io, &request, self.max).await
    }

    async fn write_response<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        response: Response,
    ) -> io::Result<()> {
        write_cbor(io, &response, self.max).await
    }
}

async fn write_cbor<T: AsyncWrite + Unpin + Send>(
    io: &mut T,
    value: &impl serde::Serialize,
    max: u64,
) -> io::Result<()> {
    let bytes = cbor4ii::serde::to_vec(Vec::new(), value)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
    if bytes.len() as u64 > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("message of {} bytes exceeds the bound", bytes.len()),
        ));
    }
    io.write_all(&bytes).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::RequestBody;

    fn read(bytes: &[u8], max: u64) -> Inbound {
        let mut codec = StarlingCodec { max };
        let mut io = futures_util::io::Cursor::new(bytes.to_vec());
        futures_executor_block_on(codec.read_request(&StreamProtocol::new("/t"), &mut io)).unwrap()
    }

    fn futures_executor_block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn garbage_and_oversized_become_malformed() {
        let ok = Request::new(RequestBody::Push {
            events: vec!["{}".into()],
        });
        let bytes = cbor4ii::serde::to_vec(Vec::new(), &ok).unwrap();
        assert_eq!(read(&bytes, 1024), Inbound::Request(ok));
        assert!(matches!(
            read(b"\xff\x00garbage", 1024),
            Inbound::Malformed(_)
        ));
        assert!(matches!(read(&[0u8; 2000], 1024), Inbound::Malformed(m) if m.contains("larger")));
        // Random bytes of every length never panic.
        let mut x = 0x9e37_79b9u32;
        for len in 0..300 {
            let junk: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    x as u8
                })
                .collect();
            let _ = read(&junk, 1024);
        }
    }
}

//! Frames between processes: a little-endian `u32` length, then that many bytes of postcard.
//!
//! Both links between processes are cut into these frames: a router and its worker processes
//! ([`crate::wire`]) and the switch and its routers ([`crate::switch`]). Each protocol keeps its
//! own messages; this module writes a message as a frame, cuts a byte stream back into frame
//! bodies and decodes a body.
//!
//! Reading never trusts the peer: a length above [`MAX_FRAME`] (or a smaller limit) or bytes
//! that do not decode are errors, never panics or unbounded allocations.

use bytes::{Bytes, BytesMut};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt};

/// The largest frame accepted (64 MiB).
pub(crate) const MAX_FRAME: usize = 64 << 20;

/// Bytes of the length prefix.
const PREFIX: usize = 4;

/// What can go wrong reading or writing a frame.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FrameError {
    /// The peer closed the stream between frames.
    #[error("the peer closed the connection")]
    Closed,
    /// Reading or writing failed.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// The announced length is above [`MAX_FRAME`].
    #[error("frame of {0} bytes is over the {MAX_FRAME}-byte limit")]
    TooLarge(usize),
    /// The bytes are not a valid frame.
    #[error("malformed frame: {0}")]
    Malformed(#[from] postcard::Error),
}

/// Appends one frame (length prefix and postcard body of `message`) to `out`.
///
/// # Errors
/// [`FrameError::Malformed`] when `message` cannot be serialized, [`FrameError::TooLarge`]
/// above [`MAX_FRAME`]; `out` is then as it was.
pub(crate) fn push_frame<T: Serialize + ?Sized>(
    out: &mut Vec<u8>,
    message: &T,
) -> Result<(), FrameError> {
    let at = out.len();
    out.extend_from_slice(&[0; PREFIX]);
    if let Err(e) = postcard::to_io(message, &mut *out) {
        out.truncate(at);
        return Err(e.into());
    }
    seal(out, at)
}

/// One frame's bytes.
///
/// # Errors
/// As [`push_frame`].
pub(crate) fn frame<T: Serialize + ?Sized>(message: &T) -> Result<Vec<u8>, FrameError> {
    let mut out = Vec::new();
    push_frame(&mut out, message)?;
    Ok(out)
}

/// Writes the length of the frame that starts at `at` (its prefix) and runs to the end of
/// `out`; removes the frame when it is too large.
///
/// # Errors
/// [`FrameError::TooLarge`] above [`MAX_FRAME`].
pub(crate) fn seal(out: &mut Vec<u8>, at: usize) -> Result<(), FrameError> {
    let len = out.len() - at - PREFIX;
    match u32::try_from(len) {
        Ok(prefix) if len <= MAX_FRAME => {
            out[at..at + PREFIX].copy_from_slice(&prefix.to_le_bytes());
            Ok(())
        }
        _ => {
            out.truncate(at);
            Err(FrameError::TooLarge(len))
        }
    }
}

/// The body length announced by a frame's prefix, refused above `limit` (and [`MAX_FRAME`]).
fn body_len(prefix: [u8; PREFIX], limit: usize) -> Result<usize, FrameError> {
    let len = u32::from_le_bytes(prefix) as usize;
    if len > limit.min(MAX_FRAME) { Err(FrameError::TooLarge(len)) } else { Ok(len) }
}

/// The error of reading a frame's prefix: a clean end of stream is [`FrameError::Closed`].
fn prefix_error(e: std::io::Error) -> FrameError {
    if e.kind() == std::io::ErrorKind::UnexpectedEof { FrameError::Closed } else { e.into() }
}

/// Reads one frame's body, refusing a length above `limit` before allocating anything.
///
/// # Errors
/// [`FrameError::Closed`] at a clean end of stream, [`FrameError::TooLarge`], or I/O.
#[cfg(any(feature = "switch", test))]
pub(crate) async fn read_body<R: AsyncRead + Unpin>(
    reader: &mut R,
    limit: usize,
) -> Result<Bytes, FrameError> {
    let mut prefix = [0u8; PREFIX];
    reader.read_exact(&mut prefix).await.map_err(prefix_error)?;
    let mut body = vec![0u8; body_len(prefix, limit)?];
    reader.read_exact(&mut body).await?;
    Ok(Bytes::from(body))
}

/// Blocking twin of [`read_body`], for threads that own their pipe.
///
/// # Errors
/// As [`read_body`].
pub(crate) fn read_body_blocking<R: std::io::Read>(
    reader: &mut R,
    limit: usize,
) -> Result<Vec<u8>, FrameError> {
    let mut prefix = [0u8; PREFIX];
    reader.read_exact(&mut prefix).map_err(prefix_error)?;
    let mut body = vec![0u8; body_len(prefix, limit)?];
    reader.read_exact(&mut body)?;
    Ok(body)
}

/// Decodes a whole frame body as `T` (trailing bytes are an error too).
///
/// # Errors
/// [`FrameError::Malformed`].
pub(crate) fn decode<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, FrameError> {
    let (value, rest) = postcard::take_from_bytes(body)?;
    if rest.is_empty() {
        Ok(value)
    } else {
        Err(FrameError::Malformed(postcard::Error::DeserializeBadEncoding))
    }
}

/// Reads frames like [`read_body`], but a read may be abandoned (in a `select!`) without
/// losing bytes: what was read waits in the reader's buffer for the next call.
pub(crate) struct FrameReader<R> {
    inner: R,
    buf: BytesMut,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    pub(crate) fn new(inner: R) -> Self {
        Self { inner, buf: BytesMut::new() }
    }

    /// The next frame's body.
    ///
    /// # Errors
    /// As [`read_body`] (with the limit [`MAX_FRAME`]).
    pub(crate) async fn next_body(&mut self) -> Result<Bytes, FrameError> {
        loop {
            if let Some(prefix) = self.buf.first_chunk::<PREFIX>() {
                let len = body_len(*prefix, MAX_FRAME)?;
                if self.buf.len() >= PREFIX + len {
                    let frame = self.buf.split_to(PREFIX + len).freeze();
                    return Ok(frame.slice(PREFIX..));
                }
                self.buf.reserve(PREFIX + len - self.buf.len());
            } else {
                self.buf.reserve(64 << 10);
            }
            if self.inner.read_buf(&mut self.buf).await? == 0 {
                return Err(if self.buf.is_empty() {
                    FrameError::Closed
                } else {
                    std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into()
                });
            }
        }
    }

    /// The next frame, decoded.
    ///
    /// # Errors
    /// As [`next_body`](Self::next_body) and [`decode`].
    pub(crate) async fn next<T: DeserializeOwned>(&mut self) -> Result<T, FrameError> {
        decode(&self.next_body().await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_is_a_little_endian_length_then_postcard() {
        let bytes = frame(&("hi", 300u32)).unwrap();
        // postcard: string length 2, "hi", varint 300 = ac 02.
        assert_eq!(bytes, [5, 0, 0, 0, 2, b'h', b'i', 0xac, 0x02]);
        let mut out = vec![7];
        push_frame(&mut out, &("hi", 300u32)).unwrap();
        assert_eq!(out[1..], bytes[..]);
        assert_eq!(decode::<(String, u32)>(&bytes[4..]).unwrap(), ("hi".to_owned(), 300));
    }

    #[test]
    fn a_frame_sealed_in_place_is_the_same_frame() {
        let mut pieces = vec![0; PREFIX];
        postcard::to_io(&(1u8, 2u8), &mut pieces).unwrap();
        seal(&mut pieces, 0).unwrap();
        assert_eq!(pieces, frame(&(1u8, 2u8)).unwrap());
        // Too large: the frame is removed, what came before stays.
        let mut out = vec![1, 2];
        out.resize(2 + PREFIX + MAX_FRAME + 1, 0);
        assert!(matches!(seal(&mut out, 2), Err(FrameError::TooLarge(n)) if n == MAX_FRAME + 1));
        assert_eq!(out, [1, 2]);
    }

    #[test]
    fn decoding_refuses_trailing_bytes_and_limits_hold() {
        let mut body = postcard::to_stdvec(&7u32).unwrap();
        body.push(0);
        assert!(matches!(decode::<u32>(&body), Err(FrameError::Malformed(_))));
        let prefix = 100u32.to_le_bytes();
        assert!(matches!(body_len(prefix, 99), Err(FrameError::TooLarge(100))));
        assert_eq!(body_len(prefix, 100).unwrap(), 100);
        let huge = u32::MAX.to_le_bytes();
        assert!(matches!(body_len(huge, usize::MAX), Err(FrameError::TooLarge(_))));
        let mut input = &[3, 0, 0, 0, 1, 2][..];
        assert!(matches!(read_body_blocking(&mut input, MAX_FRAME), Err(FrameError::Io(_))));
    }

    #[tokio::test]
    async fn bodies_come_back_in_order_through_both_readers() {
        let mut bytes = frame(&1u8).unwrap();
        push_frame(&mut bytes, &"two").unwrap();
        let mut reader = FrameReader::new(&bytes[..]);
        assert_eq!(reader.next::<u8>().await.unwrap(), 1);
        assert_eq!(reader.next::<String>().await.unwrap(), "two");
        assert!(matches!(reader.next::<u8>().await, Err(FrameError::Closed)));
        let mut input = &bytes[..];
        assert_eq!(read_body(&mut input, MAX_FRAME).await.unwrap()[..], [1]);
        assert_eq!(read_body(&mut input, MAX_FRAME).await.unwrap()[..], [3, b't', b'w', b'o']);
        assert!(matches!(read_body(&mut input, MAX_FRAME).await, Err(FrameError::Closed)));
    }
}

//! Frames between processes: a little-endian `u32` length, then that many bytes of postcard.
//!
//! Reading never trusts the peer: a length above [`MAX_FRAME`] or bytes that do not decode
//! are errors, never panics or unbounded allocations.

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The largest frame accepted (64 MiB).
pub const MAX_FRAME: usize = 64 << 20;

/// What can go wrong reading or writing a frame.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
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

/// The bytes of one frame: length prefix and postcard body.
fn encode<T: Serialize + ?Sized>(message: &T) -> Result<Vec<u8>, FrameError> {
    let body = postcard::to_stdvec(message)?;
    let len = u32::try_from(body.len())
        .ok()
        .filter(|&n| n as usize <= MAX_FRAME)
        .ok_or(FrameError::TooLarge(body.len()))?;
    let mut frame = Vec::with_capacity(4 + body.len());
    frame.extend_from_slice(&len.to_le_bytes());
    frame.extend_from_slice(&body);
    Ok(frame)
}

/// The body length announced by a frame's prefix, refused above [`MAX_FRAME`].
fn body_len(prefix: [u8; 4]) -> Result<usize, FrameError> {
    let len = u32::from_le_bytes(prefix) as usize;
    if len > MAX_FRAME { Err(FrameError::TooLarge(len)) } else { Ok(len) }
}

/// The error of reading a frame's prefix: a clean end of stream is [`FrameError::Closed`].
fn prefix_error(e: std::io::Error) -> FrameError {
    if e.kind() == std::io::ErrorKind::UnexpectedEof { FrameError::Closed } else { e.into() }
}

/// Writes one frame (and flushes).
///
/// # Errors
/// [`FrameError::Io`] or, for a message over the limit, [`FrameError::TooLarge`].
pub async fn write_frame<W, T>(writer: &mut W, message: &T) -> Result<(), FrameError>
where
    W: AsyncWrite + Unpin,
    T: Serialize + ?Sized,
{
    writer.write_all(&encode(message)?).await?;
    writer.flush().await?;
    Ok(())
}

/// Reads one frame.
///
/// # Errors
/// [`FrameError::Closed`] at a clean end of stream, otherwise as [`FrameError`] says.
pub async fn read_frame<R, T>(reader: &mut R) -> Result<T, FrameError>
where
    R: AsyncRead + Unpin,
    T: DeserializeOwned,
{
    let mut prefix = [0u8; 4];
    reader.read_exact(&mut prefix).await.map_err(prefix_error)?;
    let mut body = vec![0u8; body_len(prefix)?];
    reader.read_exact(&mut body).await?;
    Ok(postcard::from_bytes(&body)?)
}

/// Reads frames like [`read_frame`], but a read may be abandoned (in a `select!`) without
/// losing bytes: what was read waits in the reader's buffer for the next call.
pub(crate) struct FrameReader<R> {
    inner: R,
    buf: Vec<u8>,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    pub(crate) fn new(inner: R) -> Self {
        Self { inner, buf: Vec::new() }
    }

    /// The next frame.
    ///
    /// # Errors
    /// As [`read_frame`].
    pub(crate) async fn next<T: DeserializeOwned>(&mut self) -> Result<T, FrameError> {
        loop {
            if let Some(prefix) = self.buf.first_chunk::<4>() {
                let len = body_len(*prefix)?;
                if self.buf.len() >= 4 + len {
                    let message = postcard::from_bytes(&self.buf[4..4 + len]);
                    self.buf.drain(..4 + len);
                    return Ok(message?);
                }
                self.buf.reserve(4 + len - self.buf.len());
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
}

/// Blocking twin of [`write_frame`], for threads that own their pipe.
///
/// # Errors
/// As [`write_frame`].
pub fn write_frame_blocking<W, T>(writer: &mut W, message: &T) -> Result<(), FrameError>
where
    W: std::io::Write,
    T: Serialize + ?Sized,
{
    writer.write_all(&encode(message)?)?;
    writer.flush()?;
    Ok(())
}

/// Blocking twin of [`read_frame`].
///
/// # Errors
/// As [`read_frame`].
pub fn read_frame_blocking<R, T>(reader: &mut R) -> Result<T, FrameError>
where
    R: std::io::Read,
    T: DeserializeOwned,
{
    let mut prefix = [0u8; 4];
    reader.read_exact(&mut prefix).map_err(prefix_error)?;
    let mut body = vec![0u8; body_len(prefix)?];
    reader.read_exact(&mut body)?;
    Ok(postcard::from_bytes(&body)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn round_trip_and_garbage() {
        let (mut a, mut b) = tokio::io::duplex(1024);
        write_frame(&mut a, &("hello", 42u32)).await.unwrap();
        let back: (String, u32) = read_frame(&mut b).await.unwrap();
        assert_eq!(back, ("hello".to_owned(), 42));

        // An oversize length is refused before anything is allocated.
        a.write_all(&u32::MAX.to_le_bytes()).await.unwrap();
        assert!(matches!(read_frame::<_, u32>(&mut b).await, Err(FrameError::TooLarge(_))));

        // Garbage bytes are an error, not a panic.
        let (mut a, mut b) = tokio::io::duplex(1024);
        a.write_all(&3u32.to_le_bytes()).await.unwrap();
        a.write_all(&[0xff, 0xff, 0xff]).await.unwrap();
        assert!(matches!(
            read_frame::<_, (String, u32)>(&mut b).await,
            Err(FrameError::Malformed(_))
        ));

        drop(a);
        assert!(matches!(read_frame::<_, u32>(&mut b).await, Err(FrameError::Closed)));
    }

    #[tokio::test]
    async fn an_abandoned_read_loses_nothing() {
        let (mut a, b) = tokio::io::duplex(64);
        let mut reader = FrameReader::new(b);
        let message: Vec<u32> = (0..1000).collect();
        let writer = tokio::spawn(async move {
            for _ in 0..3 {
                write_frame(&mut a, &message).await.unwrap();
            }
        });
        let mut got = 0;
        while got < 3 {
            // Abandon most reads half-way: the bytes read so far stay buffered.
            let next = tokio::time::timeout(std::time::Duration::from_micros(50), reader.next());
            if let Ok(frame) = next.await {
                let frame: Vec<u32> = frame.unwrap();
                assert_eq!(frame.len(), 1000);
                got += 1;
            }
        }
        writer.await.unwrap();
        assert!(matches!(reader.next::<Vec<u32>>().await, Err(FrameError::Closed)));
    }

    #[test]
    fn blocking_twins_speak_the_same_frames() {
        let mut buf = Vec::new();
        write_frame_blocking(&mut buf, &("hello", 42u32)).unwrap();
        let back: (String, u32) = read_frame_blocking(&mut buf.as_slice()).unwrap();
        assert_eq!(back, ("hello".to_owned(), 42));
        let mut oversize = &u32::MAX.to_le_bytes()[..];
        assert!(matches!(
            read_frame_blocking::<_, u32>(&mut oversize),
            Err(FrameError::TooLarge(_))
        ));
        assert!(matches!(read_frame_blocking::<_, u32>(&mut &[][..]), Err(FrameError::Closed)));
    }
}

//! Frames between a router and its worker processes: a little-endian `u32` length, then that
//! many bytes of postcard, carrying the messages of the worker protocol ([`crate::worker`]).
//! The switch links use the same frames.
//!
//! Reading never trusts the peer: a length above [`MAX_FRAME`] or bytes that do not decode
//! are errors, never panics or unbounded allocations.

pub(crate) use crate::framing::FrameReader;
pub(crate) use crate::framing::{FrameError, MAX_FRAME};
use crate::framing::{decode, frame, read_body_blocking};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncWrite, AsyncWriteExt};

/// Writes one frame (and flushes).
///
/// # Errors
/// [`FrameError::Io`] or, for a message over the limit, [`FrameError::TooLarge`].
pub(crate) async fn write_frame<W, T>(writer: &mut W, message: &T) -> Result<(), FrameError>
where
    W: AsyncWrite + Unpin,
    T: Serialize + ?Sized,
{
    writer.write_all(&frame(message)?).await?;
    writer.flush().await?;
    Ok(())
}

/// Blocking twin of [`write_frame`], for threads that own their pipe.
///
/// # Errors
/// As [`write_frame`].
pub(crate) fn write_frame_blocking<W, T>(writer: &mut W, message: &T) -> Result<(), FrameError>
where
    W: std::io::Write,
    T: Serialize + ?Sized,
{
    writer.write_all(&frame(message)?)?;
    writer.flush()?;
    Ok(())
}

/// Reads one frame, blocking (the worker's side of the pipe).
///
/// # Errors
/// [`FrameError::Closed`] at a clean end of stream, otherwise as [`FrameError`] says.
pub(crate) fn read_frame_blocking<R, T>(reader: &mut R) -> Result<T, FrameError>
where
    R: std::io::Read,
    T: DeserializeOwned,
{
    decode(&read_body_blocking(reader, MAX_FRAME)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads one frame, as the parent's [`FrameReader`] does.
    async fn read_frame<R, T>(reader: &mut R) -> Result<T, FrameError>
    where
        R: tokio::io::AsyncRead + Unpin,
        T: serde::de::DeserializeOwned,
    {
        decode(&crate::framing::read_body(reader, MAX_FRAME).await?)
    }

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

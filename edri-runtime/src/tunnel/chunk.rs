//! [`Chunk`]: bytes as one tunnel item.

use serde::Serialize;

/// A run of bytes as a tunnel item: serialized as one block (a plain `Vec<u8>` is serialized
/// byte by byte, which costs far more across routers).
///
/// # Examples
///
/// ```
/// use edri::prelude::*;
/// use edri::Chunk;
///
/// #[event(tunnel, send = Chunk, receive = Chunk)]
/// pub struct Upper;
///
/// let mut chunk = Chunk::from(b"abc".to_vec());
/// chunk.make_ascii_uppercase(); // a `Vec<u8>` underneath
/// assert_eq!(chunk.into_inner(), b"ABC");
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Chunk(pub Vec<u8>);

impl Chunk {
    /// The bytes.
    pub fn into_inner(self) -> Vec<u8> {
        self.0
    }
}

impl std::ops::Deref for Chunk {
    type Target = Vec<u8>;
    fn deref(&self) -> &Vec<u8> {
        &self.0
    }
}

impl std::ops::DerefMut for Chunk {
    fn deref_mut(&mut self) -> &mut Vec<u8> {
        &mut self.0
    }
}

impl From<Vec<u8>> for Chunk {
    fn from(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }
}

impl From<&[u8]> for Chunk {
    fn from(bytes: &[u8]) -> Self {
        Self(bytes.to_vec())
    }
}

impl Serialize for Chunk {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Chunk {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Chunk;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Chunk, E> {
                Ok(Chunk(v.to_vec()))
            }
            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Chunk, E> {
                Ok(Chunk(v))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Chunk, A::Error> {
                let mut bytes = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 20));
                while let Some(b) = seq.next_element()? {
                    bytes.push(b);
                }
                Ok(Chunk(bytes))
            }
        }
        deserializer.deserialize_byte_buf(Visitor)
    }
}

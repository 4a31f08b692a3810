//! A stored value: postcard bytes with the identity of the type they were written from, and
//! the check that a read (or an increment) goes through that type.

use super::shape::shape_of;
use crate::Failure;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// A value as the store keeps it and its events carry it: postcard bytes, with the shape and
/// the name of the type they were written from.
///
/// Postcard is not self-describing: the bytes of a `u32` 300 read as an `i32` give 150, those
/// of the `i64` counter 1 read as a `u64` give 2. So each value carries its type, and a read
/// through another type is `Invalid`, naming both.
///
/// **Which identity.** `std::any::type_name` is not stable across compiler versions (and a
/// type moved to another module changes it), and `TypeId` is not even stable across builds;
/// neither may decide whether a durable file written by another build can be read. The
/// deciding part is [`shape`](Self::shape): a hash of what the value's `Serialize` tells a
/// serializer, without the data. It names each primitive kind (`u32` is not `i32`), each
/// struct, enum, variant and field as serde names them, the arity of tuples; for a sequence or
/// a map, the set of its elements' shapes. A read decodes the bytes as the reader's type and
/// compares the shape of what it got (its own `Serialize`) with the stored one: equal shapes
/// mean the two types agree on everything these bytes say, so nothing is reinterpreted. Two
/// types with one serde shape (a struct moved to another module, `String` and `&str`) read
/// each other's values; an empty sequence (or `None`) says nothing about its element type, so
/// an empty `Vec<u32>` reads as an empty `Vec<String>`. The [`type_name`](Self::type_name) is
/// kept for messages only.
///
/// # Examples
///
/// ```
/// use edri::store::StoredValue;
///
/// let value = StoredValue::new(&300_u32).unwrap();
/// assert_eq!(value.type_name, "u32");
/// assert_eq!(value.read::<u32>("count").unwrap(), 300);
/// let refused = value.read::<i32>("count").unwrap_err(); // same bytes, another type
/// assert!(refused.message().starts_with("`count` holds a `u32`, which cannot be read as a `i32`"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredValue {
    /// The writer's type as `std::any::type_name` spelled it, for messages.
    pub type_name: String,
    /// The shape of the value (see above); the check of every read.
    pub shape: u64,
    /// The value, as postcard.
    pub bytes: Vec<u8>,
}

impl StoredValue {
    /// `value` as the store keeps it.
    ///
    /// # Errors
    /// `Invalid` when the value cannot be serialized.
    pub fn new<T: Serialize + ?Sized>(value: &T) -> Result<Self, Failure> {
        let shape = shape_of(value).map_err(|e| {
            Failure::invalid(format!("a `{}` cannot be stored: {e}", std::any::type_name::<T>()))
        })?;
        Ok(Self {
            type_name: std::any::type_name::<T>().to_owned(),
            shape,
            bytes: crate::ctx::encode(value)?,
        })
    }

    /// The value of `key` as a `T`.
    ///
    /// # Errors
    /// `Invalid`, naming the stored type and `T`, when the value is not a `T`.
    pub fn read<T: Serialize + DeserializeOwned>(&self, key: &str) -> Result<T, Failure> {
        let value = match postcard::take_from_bytes::<T>(&self.bytes) {
            Ok((value, [])) => value,
            Ok((_, rest)) => {
                return Err(self.not_a::<T>(key, &format!("{} bytes left over", rest.len())));
            }
            Err(e) => return Err(self.not_a::<T>(key, &e.to_string())),
        };
        match shape_of(&value) {
            Ok(shape) if shape == self.shape => Ok(value),
            Ok(_) => Err(self.not_a::<T>(key, "their serde shapes differ")),
            Err(e) => Err(self.not_a::<T>(key, &e.to_string())),
        }
    }

    /// `Invalid`: `key` holds this value, not a `T`.
    fn not_a<T>(&self, key: &str, why: &str) -> Failure {
        mismatch(key, &self.type_name, std::any::type_name::<T>(), why)
    }
}

/// `Invalid`: `key` holds a `stored`, which cannot be read as a `wanted`.
pub(crate) fn mismatch(key: &str, stored: &str, wanted: &str, why: &str) -> Failure {
    let same_name = if stored == wanted {
        " (two versions of the type: a field or variant was added, removed, renamed or retyped)"
    } else {
        ""
    };
    Failure::invalid(format!(
        "`{key}` holds a `{stored}`, which cannot be read as a `{wanted}`: {why}{same_name}"
    ))
}

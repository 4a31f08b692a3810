//! The shape of a value: what its `Serialize` tells a serializer about it, without its data,
//! hashed into a `u64` (FNV-1a, stable across compilers, platforms and processes).
//!
//! The shape names each primitive kind (`u32` is not `i32`), each struct, enum, variant and
//! field by the names serde gives them, and the arity of tuples; a sequence or a map
//! contributes the set of its elements' (entries') shapes, in no order and without counts, so
//! that a `HashMap` read back in another order has the same shape. It is computed from a
//! serializer that says it is not human-readable, like postcard, so that types which
//! serialize differently for humans (`IpAddr`, ...) are seen as postcard sees them.

use serde::ser::{self, Serialize};
use std::collections::BTreeSet;
use std::fmt;

/// The shape of `value`.
///
/// # Errors
/// When `value`'s `Serialize` fails (it would fail with postcard too).
pub(crate) fn shape_of<T: Serialize + ?Sized>(value: &T) -> Result<u64, ShapeError> {
    value.serialize(Shape)
}

/// A `Serialize` impl that failed.
#[derive(Debug)]
pub(crate) struct ShapeError(String);

impl fmt::Display for ShapeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ShapeError {}

impl ser::Error for ShapeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Self(msg.to_string())
    }
}

/// An FNV-1a hash being built.
#[derive(Clone, Copy)]
struct Fnv(u64);

impl Fnv {
    const fn new(kind: &str) -> Self {
        Self(0xcbf2_9ce4_8422_2325).text(kind)
    }

    const fn bytes(mut self, bytes: &[u8]) -> Self {
        let mut i = 0;
        while i < bytes.len() {
            self.0 ^= bytes[i] as u64;
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
            i += 1;
        }
        self
    }

    /// A length-prefixed text, so that `("ab", "c")` and `("a", "bc")` differ.
    const fn text(self, text: &str) -> Self {
        self.number(text.len() as u64).bytes(text.as_bytes())
    }

    const fn number(self, n: u64) -> Self {
        self.bytes(&n.to_le_bytes())
    }
}

fn kind(kind: &str) -> Result<u64, ShapeError> {
    Ok(Fnv::new(kind).0)
}

/// The serializer computing a shape.
struct Shape;

/// The elements of an ordered compound (tuple, struct): each element's shape in turn.
struct Ordered(Fnv);

/// The elements of a sequence or the entries of a map: the set of their shapes.
struct Unordered {
    head: Fnv,
    shapes: BTreeSet<u64>,
    /// The last shape added: a run of elements of one shape costs no lookups.
    last: Option<u64>,
    /// A map's key waiting for its value.
    key: Option<u64>,
}

impl Unordered {
    fn new(kind: &str) -> Self {
        Self { head: Fnv::new(kind), shapes: BTreeSet::new(), last: None, key: None }
    }

    fn add(&mut self, shape: u64) {
        if self.last != Some(shape) {
            self.shapes.insert(shape);
            self.last = Some(shape);
        }
    }

    fn finish(self) -> u64 {
        self.shapes.into_iter().fold(self.head, Fnv::number).0
    }
}

macro_rules! primitives {
    ($($method:ident: $ty:ty),* $(,)?) => {$(
        fn $method(self, _: $ty) -> Result<u64, ShapeError> {
            const SHAPE: u64 = Fnv::new(stringify!($ty)).0;
            Ok(SHAPE)
        }
    )*};
}

impl ser::Serializer for Shape {
    type Ok = u64;
    type Error = ShapeError;
    type SerializeSeq = Unordered;
    type SerializeTuple = Ordered;
    type SerializeTupleStruct = Ordered;
    type SerializeTupleVariant = Ordered;
    type SerializeMap = Unordered;
    type SerializeStruct = Ordered;
    type SerializeStructVariant = Ordered;

    primitives! {
        serialize_bool: bool, serialize_i8: i8, serialize_i16: i16, serialize_i32: i32,
        serialize_i64: i64, serialize_i128: i128, serialize_u8: u8, serialize_u16: u16,
        serialize_u32: u32, serialize_u64: u64, serialize_u128: u128, serialize_f32: f32,
        serialize_f64: f64, serialize_char: char, serialize_str: &str, serialize_bytes: &[u8],
    }

    fn serialize_none(self) -> Result<u64, ShapeError> {
        kind("none")
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<u64, ShapeError> {
        Ok(Fnv::new("some").number(value.serialize(Shape)?).0)
    }

    fn serialize_unit(self) -> Result<u64, ShapeError> {
        kind("()")
    }

    fn serialize_unit_struct(self, name: &'static str) -> Result<u64, ShapeError> {
        Ok(Fnv::new("unit struct").text(name).0)
    }

    fn serialize_unit_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
    ) -> Result<u64, ShapeError> {
        Ok(variant_head("unit variant", name, index, variant).0)
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        value: &T,
    ) -> Result<u64, ShapeError> {
        Ok(Fnv::new("newtype struct").text(name).number(value.serialize(Shape)?).0)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<u64, ShapeError> {
        Ok(variant_head("newtype variant", name, index, variant).number(value.serialize(Shape)?).0)
    }

    fn serialize_seq(self, _: Option<usize>) -> Result<Unordered, ShapeError> {
        Ok(Unordered::new("seq"))
    }

    fn serialize_tuple(self, len: usize) -> Result<Ordered, ShapeError> {
        Ok(Ordered(Fnv::new("tuple").number(len as u64)))
    }

    fn serialize_tuple_struct(self, name: &'static str, len: usize) -> Result<Ordered, ShapeError> {
        Ok(Ordered(Fnv::new("tuple struct").text(name).number(len as u64)))
    }

    fn serialize_tuple_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Ordered, ShapeError> {
        Ok(Ordered(variant_head("tuple variant", name, index, variant).number(len as u64)))
    }

    fn serialize_map(self, _: Option<usize>) -> Result<Unordered, ShapeError> {
        Ok(Unordered::new("map"))
    }

    fn serialize_struct(self, name: &'static str, _: usize) -> Result<Ordered, ShapeError> {
        Ok(Ordered(Fnv::new("struct").text(name)))
    }

    fn serialize_struct_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<Ordered, ShapeError> {
        Ok(Ordered(variant_head("struct variant", name, index, variant)))
    }

    fn is_human_readable(&self) -> bool {
        false
    }
}

fn variant_head(kind: &str, name: &str, index: u32, variant: &str) -> Fnv {
    Fnv::new(kind).text(name).number(u64::from(index)).text(variant)
}

impl ser::SerializeSeq for Unordered {
    type Ok = u64;
    type Error = ShapeError;

    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), ShapeError> {
        let shape = value.serialize(Shape)?;
        self.add(shape);
        Ok(())
    }

    fn end(self) -> Result<u64, ShapeError> {
        Ok(self.finish())
    }
}

impl ser::SerializeMap for Unordered {
    type Ok = u64;
    type Error = ShapeError;

    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), ShapeError> {
        self.key = Some(key.serialize(Shape)?);
        Ok(())
    }

    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), ShapeError> {
        let key = self.key.take().ok_or_else(|| ShapeError("a map value without a key".into()))?;
        let entry = Fnv::new("entry").number(key).number(value.serialize(Shape)?);
        self.add(entry.0);
        Ok(())
    }

    fn end(self) -> Result<u64, ShapeError> {
        Ok(self.finish())
    }
}

impl Ordered {
    fn element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), ShapeError> {
        self.0 = self.0.number(value.serialize(Shape)?);
        Ok(())
    }

    fn field<T: Serialize + ?Sized>(&mut self, key: &str, value: &T) -> Result<(), ShapeError> {
        self.0 = self.0.text(key);
        self.element(value)
    }
}

macro_rules! ordered {
    ($($trait:ident: $method:ident $(($key:ident))?),* $(,)?) => {$(
        impl ser::$trait for Ordered {
            type Ok = u64;
            type Error = ShapeError;

            fn $method<T: Serialize + ?Sized>(
                &mut self,
                $($key: &'static str,)?
                value: &T,
            ) -> Result<(), ShapeError> {
                ordered!(@call self $($key)? value)
            }

            fn end(self) -> Result<u64, ShapeError> {
                Ok(self.0.0)
            }
        }
    )*};
    (@call $self:ident $key:ident $value:ident) => { $self.field($key, $value) };
    (@call $self:ident $value:ident) => { $self.element($value) };
}

ordered! {
    SerializeTuple: serialize_element,
    SerializeTupleStruct: serialize_field,
    SerializeTupleVariant: serialize_field,
    SerializeStruct: serialize_field(key),
    SerializeStructVariant: serialize_field(key),
}

#[cfg(test)]
mod tests {
    use super::shape_of;
    use std::collections::{BTreeMap, HashMap};

    #[derive(serde::Serialize)]
    struct Price {
        currency: String,
        cents: u64,
    }

    #[derive(serde::Serialize)]
    struct Cost {
        currency: String,
        cents: u64,
    }

    #[derive(serde::Serialize)]
    enum Event {
        Up(u8),
        Down { by: u8 },
    }

    fn shape<T: serde::Serialize + ?Sized>(value: &T) -> u64 {
        shape_of(value).unwrap()
    }

    #[test]
    fn kinds_and_names_count_data_does_not() {
        assert_eq!(shape(&1u32), shape(&300u32));
        assert_ne!(shape(&300u32), shape(&150i32));
        assert_ne!(shape(&1i64), shape(&1u64));
        assert_eq!(shape("text"), shape(&String::from("other")));
        let price = Price { currency: "EUR".into(), cents: 1 };
        assert_ne!(shape(&price), shape(&Cost { currency: "EUR".into(), cents: 1 }));
        assert_ne!(shape(&Event::Up(1)), shape(&Event::Down { by: 1 }));
        assert_ne!(shape(&(1u8, 2u8)), shape(&vec![1u8, 2]));
        assert_eq!(shape(&(1u8, 2u8)), shape(&[1u8, 2]), "serde writes arrays as tuples");
        assert_ne!(shape(&vec![1u8]), shape(&vec![1u16]));
        assert_ne!(shape(&Some(1u8)), shape(&Some(1i8)));
    }

    #[test]
    fn sequences_and_maps_ignore_order_and_count() {
        assert_eq!(shape(&vec![1u8; 3]), shape(&vec![7u8]));
        assert_eq!(
            shape(&vec![Event::Up(1), Event::Down { by: 2 }]),
            shape(&vec![Event::Down { by: 3 }, Event::Up(4), Event::Up(5)])
        );
        let map: HashMap<String, Event> = (0..50)
            .map(|i| (i.to_string(), if i % 2 == 0 { Event::Up(i) } else { Event::Down { by: i } }))
            .collect();
        let ordered: BTreeMap<_, _> = map.iter().collect();
        assert_eq!(shape(&map), shape(&ordered));
        assert_ne!(shape(&map), shape(&HashMap::<String, u8>::from([("a".into(), 1)])));
    }
}

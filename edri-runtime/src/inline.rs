//! A small event stored inside its envelope instead of on the heap.
//!
//! Notifications with one subscriber are the hottest path of the router; boxing them cost an
//! allocation and a free per event, more than the rest of the hop. An event of at most
//! [`INLINE_BYTES`] bytes whose alignment is at most a word's travels inline; larger ones are
//! boxed as before. `Inline<W>` holds at most `W` words: an envelope holds [`INLINE_WORDS`], a
//! reply sender one.
//!
//! This module is the runtime's only `unsafe` code besides two `dup` calls in `mode/process/child.rs`:
//! type-erased inline storage cannot be written without it. Each block says why it is sound,
//! and the tests below check the type check, the move-out and the drop.
#![allow(unsafe_code)]

use std::any::TypeId;
use std::mem::{ManuallyDrop, MaybeUninit};

/// The words of an envelope's inline storage: a 64-byte event travels without a box.
pub(crate) const INLINE_WORDS: usize = 8;

/// The largest event stored inline in an envelope.
#[cfg(test)]
pub(crate) const INLINE_BYTES: usize = INLINE_WORDS * size_of::<usize>();

/// A value of some `'static + Send` type `E` that fits in `W` words.
pub(crate) struct Inline<const W: usize = INLINE_WORDS> {
    vtable: &'static VTable,
    data: MaybeUninit<[usize; W]>,
}

struct VTable {
    type_id: TypeId,
    drop: unsafe fn(*mut u8),
}

struct VTableOf<E>(std::marker::PhantomData<E>);

impl<E: 'static> VTableOf<E> {
    const VTABLE: VTable = VTable { type_id: TypeId::of::<E>(), drop: drop_as::<E> };
}

/// Drops the `E` stored at `data`.
///
/// # Safety
/// `data` must hold an initialized `E` that is not used afterwards.
unsafe fn drop_as<E>(data: *mut u8) {
    // SAFETY: the caller guarantees `data` holds an initialized `E`, aligned (checked in
    // `Inline::new`), which nobody reads again.
    unsafe {
        std::ptr::drop_in_place(data.cast::<E>());
    }
}

impl<const W: usize> Inline<W> {
    /// Stores `value` inline, or gives it back when it does not fit.
    #[inline]
    pub(crate) fn new<E: Send + 'static>(value: E) -> Result<Self, E> {
        if size_of::<E>() > size_of::<[usize; W]>() || align_of::<E>() > align_of::<usize>() {
            return Err(value);
        }
        let mut data = MaybeUninit::<[usize; W]>::uninit();
        // SAFETY: `E` fits in `W` words in size and alignment (checked above), so the write
        // stays inside `data` and is aligned. From now on `data` holds an initialized `E`,
        // described by the vtable stored beside it.
        unsafe {
            data.as_mut_ptr().cast::<E>().write(value);
        }
        Ok(Self { vtable: &VTableOf::<E>::VTABLE, data })
    }

    /// Takes the value out as an `E`, or gives the `Inline` back when it holds another type.
    #[inline]
    pub(crate) fn take<E: 'static>(self) -> Result<E, Self> {
        if self.vtable.type_id != TypeId::of::<E>() {
            return Err(self);
        }
        let this = ManuallyDrop::new(self);
        // SAFETY: the vtable says `data` holds an initialized `E` (same `TypeId`); `this` is
        // never dropped, so the value is moved out exactly once.
        unsafe { Ok(this.data.as_ptr().cast::<E>().read()) }
    }

    /// The value as an `E`, in place; `None` when it holds another type.
    #[inline]
    pub(crate) fn get_mut<E: 'static>(&mut self) -> Option<&mut E> {
        if self.vtable.type_id != TypeId::of::<E>() {
            return None;
        }
        // SAFETY: the vtable says `data` holds an initialized `E` (same `TypeId`), aligned
        // (checked in `new`); the borrow of `self` keeps it alive and unshared meanwhile.
        unsafe { Some(&mut *self.data.as_mut_ptr().cast::<E>()) }
    }
}

impl<const W: usize> Drop for Inline<W> {
    fn drop(&mut self) {
        // SAFETY: `data` holds the initialized value the vtable describes (it was not taken:
        // `take` does not drop `self`), and it is dropped exactly once, here.
        unsafe {
            (self.vtable.drop)(self.data.as_mut_ptr().cast());
        }
    }
}

// SAFETY: `Inline::new` only accepts `E: Send`, so moving the stored value to another thread
// is sound; `Inline` gives no shared access to it.
unsafe impl<const W: usize> Send for Inline<W> {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn round_trip_type_check_and_drop() {
        let small = Inline::<8>::new((1u64, 2u32)).ok().unwrap();
        let small = small.take::<u32>().err().unwrap();
        assert_eq!(small.take::<(u64, u32)>().ok(), Some((1, 2)));

        let counted = Arc::new(());
        let inline = Inline::<1>::new(counted.clone()).ok().unwrap();
        assert_eq!(Arc::strong_count(&counted), 2);
        drop(inline);
        assert_eq!(Arc::strong_count(&counted), 1, "dropping an Inline drops its value");

        assert!(Inline::<8>::new([0u8; INLINE_BYTES + 1]).is_err(), "too large");
        assert!(Inline::<1>::new([0u8; 9]).is_err(), "too large for one word");
        assert!(Inline::<8>::new([0u8; INLINE_BYTES]).is_ok(), "a 64-byte event fits");
        assert!(Inline::<8>::new(0u128).is_err() || align_of::<u128>() <= align_of::<usize>());
        let mut text = Inline::<8>::new(String::from("moved")).ok().unwrap();
        assert!(text.get_mut::<u64>().is_none(), "another type");
        text.get_mut::<String>().unwrap().push_str(", not copied");
        assert_eq!(text.take::<String>().ok().as_deref(), Some("moved, not copied"));
    }
}

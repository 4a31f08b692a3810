//! Bench programs and shared bench events live in `router.rs`.

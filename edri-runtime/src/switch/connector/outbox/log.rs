//! The bytes of the events one stream keeps until they are acknowledged: encoded once, straight
//! into one growing buffer (no allocation per event), copied into the write buffer when sent,
//! and freed from the front when acknowledged.
//!
//! Positions are byte offsets in the stream since it began (`u64`, never reused); the buffer
//! holds the bytes from [`Log::start`] to [`Log::end`].

/// Dead bytes at the front tolerated before the live ones are moved down (and at least as
/// many as live ones: each byte is moved at most once on average).
const COMPACT_AFTER: usize = 64 << 10;
/// An empty buffer larger than this is given back (after a burst).
const KEEP_CAPACITY: usize = 4 << 20;

#[derive(Default)]
pub(super) struct Log {
    buf: Vec<u8>,
    /// Where the live bytes begin in `buf`.
    head: usize,
    /// The stream position of `buf[head]`.
    start: u64,
}

impl Log {
    /// The stream position of the first byte kept.
    pub(super) fn start(&self) -> u64 {
        self.start
    }

    /// The stream position after the last byte.
    pub(super) fn end(&self) -> u64 {
        self.start + (self.buf.len() - self.head) as u64
    }

    /// The buffer to append to (the caller appends whole items, or truncates back with
    /// [`Log::truncate`]).
    pub(super) fn buf(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }

    /// Drops what was appended beyond stream position `end`.
    pub(super) fn truncate(&mut self, end: u64) {
        let keep = usize::try_from(end.saturating_sub(self.start)).unwrap_or(usize::MAX);
        self.buf.truncate(self.head + keep);
    }

    /// The bytes from stream position `from` to `to` (both within the log).
    pub(super) fn slice(&self, from: u64, to: u64) -> &[u8] {
        let at = |pos: u64| self.head + usize::try_from(pos - self.start).unwrap_or(usize::MAX);
        &self.buf[at(from)..at(to)]
    }

    /// Frees everything before stream position `to`.
    pub(super) fn free_to(&mut self, to: u64) {
        let to = to.min(self.end());
        if to <= self.start {
            return;
        }
        self.head += usize::try_from(to - self.start).unwrap_or(usize::MAX);
        self.start = to;
        let live = self.buf.len() - self.head;
        if live == 0 {
            if self.buf.capacity() > KEEP_CAPACITY {
                self.buf = Vec::new();
            } else {
                self.buf.clear();
            }
            self.head = 0;
        } else if self.head >= COMPACT_AFTER && self.head >= live {
            self.buf.copy_within(self.head.., 0);
            self.buf.truncate(live);
            self.head = 0;
        }
    }

    /// Bytes kept.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.buf.len() - self.head
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_survive_freeing_and_compaction() {
        let mut log = Log::default();
        for i in 0..100_000u32 {
            log.buf().extend_from_slice(&i.to_le_bytes());
        }
        assert_eq!(log.end(), 400_000);
        assert_eq!(log.slice(8, 12), 2u32.to_le_bytes());
        log.free_to(300_000);
        assert_eq!(log.len(), 100_000);
        assert_eq!(log.slice(300_000, 300_004), 75_000u32.to_le_bytes());
        assert_eq!(log.head, 0, "compacted: more dead bytes than live ones");
        log.buf().extend_from_slice(&[1, 2, 3]);
        log.truncate(400_001);
        assert_eq!(log.end(), 400_001);
        log.free_to(u64::MAX);
        assert_eq!((log.len(), log.end(), log.head), (0, 400_001, 0));
        log.free_to(5);
        assert_eq!(log.end(), 400_001, "freeing behind the start changes nothing");
    }
}

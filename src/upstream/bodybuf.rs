//! Where a node's answer body is collected. A large body of declared length
//! gets its own anonymous memory mapping, handed back to the system the
//! moment the last reference to it is dropped; smaller ones use the heap.
//!
//! Why: a job-list body is tens of megabytes, lives for one request, and
//! several arrive at once. From the allocator, bodies just under its mmap
//! threshold (glibc: 32 MiB) land in per-thread arenas that keep their pages
//! after use, so peak memory grew with every request size seen before
//! (BENCHMARKS.md).

use bytes::{Bytes, BytesMut};
use memmap2::{MmapMut, MmapOptions};

/// Bodies of at least this declared size get a mapping.
pub const MAP_MIN_BYTES: usize = 1 << 20;

/// A body being received.
pub enum BodyBuf {
    /// On the heap.
    Heap(BytesMut),
    /// In its own mapping of the declared size; `len` bytes received.
    Mapped {
        /// The mapping.
        map: MmapMut,
        /// Bytes received so far.
        len: usize,
    },
}

/// The body grew past its declared length.
#[derive(Debug, PartialEq, Eq)]
pub struct Overflow;

// === impl BodyBuf ===

impl BodyBuf {
    /// A buffer for a body of `declared` bytes, if declared.
    pub fn for_declared(declared: Option<usize>) -> BodyBuf {
        match declared {
            // Populated at once: one call instead of a page fault per 4 KiB.
            Some(len) if len >= MAP_MIN_BYTES => {
                match MmapOptions::new().len(len).populate().map_anon() {
                    Ok(map) => BodyBuf::Mapped { map, len: 0 },
                    Err(_) => BodyBuf::Heap(BytesMut::with_capacity(len)),
                }
            }
            Some(len) => BodyBuf::Heap(BytesMut::with_capacity(len)),
            None => BodyBuf::Heap(BytesMut::new()),
        }
    }

    /// Bytes received so far.
    pub fn len(&self) -> usize {
        match self {
            BodyBuf::Heap(buf) => buf.len(),
            BodyBuf::Mapped { len, .. } => *len,
        }
    }

    /// Whether nothing was received.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends `data`.
    pub fn push(&mut self, data: &[u8]) -> Result<(), Overflow> {
        match self {
            BodyBuf::Heap(buf) => buf.extend_from_slice(data),
            BodyBuf::Mapped { map, len } => {
                let end = len.checked_add(data.len()).ok_or(Overflow)?;
                map.get_mut(*len..end)
                    .ok_or(Overflow)?
                    .copy_from_slice(data);
                *len = end;
            }
        }
        Ok(())
    }

    /// The body received.
    pub fn freeze(self) -> Bytes {
        match self {
            BodyBuf::Heap(buf) => buf.freeze(),
            BodyBuf::Mapped { map, len } => Bytes::from_owner(map).slice(..len),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_declared_bodies_are_mapped_and_bounded() {
        let mut buf = BodyBuf::for_declared(Some(MAP_MIN_BYTES));
        assert!(matches!(buf, BodyBuf::Mapped { .. }));
        buf.push(b"abc").expect("fits");
        buf.push(&vec![7u8; MAP_MIN_BYTES - 3])
            .expect("fits exactly");
        assert_eq!(
            buf.push(b"x"),
            Err(Overflow),
            "never past the declared size"
        );
        let body = buf.freeze();
        assert_eq!(body.len(), MAP_MIN_BYTES);
        assert_eq!(&body[..4], b"abc\x07");

        let mut short = BodyBuf::for_declared(Some(2 * MAP_MIN_BYTES));
        short.push(b"only this").expect("fits");
        assert_eq!(short.freeze(), Bytes::from_static(b"only this"));
    }

    #[test]
    fn small_or_undeclared_bodies_use_the_heap() {
        for declared in [None, Some(10)] {
            let mut buf = BodyBuf::for_declared(declared);
            assert!(matches!(buf, BodyBuf::Heap(_)));
            buf.push(b"0123456789ab").expect("the heap grows");
            assert_eq!(buf.freeze(), Bytes::from_static(b"0123456789ab"));
        }
    }
}

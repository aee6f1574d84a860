//! How an O_DIRECT write lays out its bytes in memory. The device reads whole
//! aligned blocks from aligned addresses. A chunk (a batch as it arrived in
//! its request frame) whose addresses are congruent to its file positions
//! modulo the alignment already lies that way, so its whole blocks are
//! written from where they are; only the blocks it shares with its
//! neighbours or with the kept tail block are copied, as are chunks that lie
//! any other way. (The connection reads a large produce frame so that its
//! batch lands congruent with where the partition will write it:
//! `server/src/net/append_positions.rs`.) Copying every byte cost a quarter
//! of the broker's CPU in a produce run (docs/PERFORMANCE.md, session 14).
//!
//! Invariants (asserted): the pieces, in order, hold exactly the tail's and
//! the chunks' bytes, then zeros up to the next block boundary; every piece
//! starts at an aligned address and is a whole number of blocks; with a
//! non-empty tail the first piece is exactly the tail's block, which lies in
//! an extent already written (the caller writes it on its own, see
//! `SegmentWriter::write_blocks`).

use bytes::Bytes;

use crate::io::AlignedBuf;
use crate::limits::DIRECT_IO_ALIGNMENT_BYTES;

const ALIGN: usize = DIRECT_IO_ALIGNMENT_BYTES;

/// A congruent chunk is written in place only for at least this many whole
/// blocks: below, one more iovec (and block-layer segment) saves little.
pub const IN_PLACE_BYTES_MIN: usize = 32 * 1024;

/// One piece of a direct write.
pub enum WritePiece {
    /// Bytes copied into an aligned buffer, from `start` on.
    Copied { buf: AlignedBuf, start: usize },
    /// Whole blocks of a caller's chunk, written from where they lie.
    InPlace(Bytes),
}

impl WritePiece {
    fn copied(parts: &[&[u8]]) -> Self {
        Self::Copied {
            buf: AlignedBuf::concat(parts),
            start: 0,
        }
    }

    pub fn as_slice(&self) -> &[u8] {
        match self {
            Self::Copied { buf, start } => &buf.as_slice()[*start..],
            Self::InPlace(bytes) => bytes,
        }
    }

    pub fn len(&self) -> usize {
        self.as_slice().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops the first `bytes` (what a short write wrote: whole blocks, or
    /// the next write of the rest is refused as unaligned).
    pub fn advance(&mut self, bytes: usize) {
        assert!(bytes <= self.len(), "advance within the piece");
        match self {
            Self::Copied { start, .. } => *start += bytes,
            Self::InPlace(chunk) => *chunk = chunk.slice(bytes..),
        }
    }
}

// SAFETY: both variants own (or share ownership of) memory that never moves
// while the value lives; the reported length is what they hold.
unsafe impl tokio_uring::buf::IoBuf for WritePiece {
    fn stable_ptr(&self) -> *const u8 {
        self.as_slice().as_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.len()
    }
    fn bytes_total(&self) -> usize {
        self.len()
    }
}

/// A direct write laid out.
pub struct DirectLayout {
    pub pieces: Vec<WritePiece>,
    /// Bytes of the chunks (the tail excluded), and how many go in place.
    pub chunk_bytes: usize,
    pub in_place_bytes: usize,
    /// The bytes of the last, partly filled block: the next write's tail.
    pub new_tail: Vec<u8>,
}

/// Lays out `tail` (the kept bytes of the block at `align_down(position)`)
/// followed by `chunks`, the first of which goes at logical `position`.
pub fn lay_out(tail: &[u8], position: u64, chunks: &[Bytes]) -> DirectLayout {
    assert_eq!(
        position % ALIGN as u64,
        tail.len() as u64,
        "the tail is the start of position's block"
    );
    let mut builder = Builder {
        pieces: Vec::new(),
        run: vec![tail],
        run_bytes: tail.len(),
        first_block_alone: !tail.is_empty(),
        in_place_bytes: 0,
    };
    let mut at = position;
    for chunk in chunks {
        match in_place_range(chunk, at) {
            Some(range) => {
                builder.push_copied(&chunk[..range.start]);
                builder.push_in_place(chunk.slice(range.clone()));
                builder.push_copied(&chunk[range.end..]);
            }
            None => builder.push_copied(chunk),
        }
        at += chunk.len() as u64;
    }
    builder.flush();
    let chunk_bytes = (at - position) as usize;
    let logical_bytes = tail.len() + chunk_bytes;
    check(&builder.pieces, logical_bytes, !tail.is_empty());
    let new_tail = last_block_data(&builder.pieces, logical_bytes % ALIGN);
    DirectLayout {
        pieces: builder.pieces,
        chunk_bytes,
        in_place_bytes: builder.in_place_bytes,
        new_tail,
    }
}

/// The first `data_bytes` of the pieces' last block: what lies before its
/// zero padding (the last piece is copied whenever a block is partly filled).
fn last_block_data(pieces: &[WritePiece], data_bytes: usize) -> Vec<u8> {
    let Some(last) = pieces.last().filter(|_| data_bytes > 0) else {
        return Vec::new();
    };
    let last = last.as_slice();
    last[last.len() - ALIGN..][..data_bytes].to_vec()
}

/// The part of `chunk` (at file position `at`) that can be written in place:
/// its whole blocks, if its addresses are congruent to its positions.
fn in_place_range(chunk: &[u8], at: u64) -> Option<std::ops::Range<usize>> {
    let address = chunk.as_ptr() as u64;
    if address % ALIGN as u64 != at % ALIGN as u64 {
        return None;
    }
    let first_block = crate::io::align_up(at);
    let end_block = crate::io::align_down(at + chunk.len() as u64);
    if end_block < first_block + IN_PLACE_BYTES_MIN as u64 {
        return None;
    }
    Some((first_block - at) as usize..(end_block - at) as usize)
}

struct Builder<'a> {
    pieces: Vec<WritePiece>,
    /// Bytes to copy next, starting at a block boundary.
    run: Vec<&'a [u8]>,
    run_bytes: usize,
    first_block_alone: bool,
    in_place_bytes: usize,
}

impl<'a> Builder<'a> {
    fn push_copied(&mut self, bytes: &'a [u8]) {
        if !bytes.is_empty() {
            self.run.push(bytes);
            self.run_bytes += bytes.len();
        }
    }

    fn push_in_place(&mut self, blocks: Bytes) {
        assert!(
            self.run_bytes.is_multiple_of(ALIGN),
            "an in-place piece starts on a block boundary"
        );
        self.flush();
        self.in_place_bytes += blocks.len();
        self.pieces.push(WritePiece::InPlace(blocks));
    }

    /// Copies the run into aligned buffers (the last one padded with zeros).
    fn flush(&mut self) {
        if self.run_bytes == 0 {
            self.run.clear();
            return;
        }
        if std::mem::take(&mut self.first_block_alone) {
            let (first, rest) = split_parts(&self.run, ALIGN);
            self.pieces.push(WritePiece::copied(&first));
            if !rest.is_empty() {
                self.pieces.push(WritePiece::copied(&rest));
            }
        } else {
            self.pieces.push(WritePiece::copied(&self.run));
        }
        self.run.clear();
        self.run_bytes = 0;
    }
}

/// The layout's invariants (module comment), checked on every write: a
/// broken layout would write wrong bytes where a batch should be.
fn check(pieces: &[WritePiece], logical_bytes: usize, has_tail: bool) {
    let total: usize = pieces.iter().map(WritePiece::len).sum();
    assert_eq!(
        total,
        crate::io::align_up(logical_bytes as u64) as usize,
        "pieces cover the bytes and the padding"
    );
    for piece in pieces {
        assert!(piece.len().is_multiple_of(ALIGN), "whole blocks");
        assert!(
            (piece.as_slice().as_ptr() as usize).is_multiple_of(ALIGN),
            "aligned address"
        );
    }
    if has_tail {
        assert_eq!(pieces[0].len(), ALIGN, "the tail's block is a piece of its own");
    }
}

/// `parts` split after their first `at` bytes.
fn split_parts<'a>(parts: &[&'a [u8]], at: usize) -> (Vec<&'a [u8]>, Vec<&'a [u8]>) {
    let (mut head, mut rest) = (Vec::new(), Vec::new());
    let mut remaining = at;
    for part in parts {
        let cut = remaining.min(part.len());
        remaining -= cut;
        if cut > 0 {
            head.push(&part[..cut]);
        }
        if cut < part.len() {
            rest.push(&part[cut..]);
        }
    }
    (head, rest)
}

#[cfg(test)]
/// `len` bytes of a pattern whose first byte lies at an address
/// congruent to `position`.
pub(crate) fn congruent_chunk(position: u64, len: usize, seed: u8) -> Bytes {
    let mut buf = bytes::BytesMut::zeroed(len + 2 * ALIGN);
    let offset = (ALIGN - buf.as_ptr() as usize % ALIGN) % ALIGN + (position % ALIGN as u64) as usize;
    for (i, byte) in buf[offset..offset + len].iter_mut().enumerate() {
        *byte = seed.wrapping_add((i % 251) as u8);
    }
    buf.freeze().slice(offset..offset + len)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn laid_out_bytes(layout: &DirectLayout) -> Vec<u8> {
        layout.pieces.iter().flat_map(|p| p.as_slice().to_vec()).collect()
    }

    fn expected_bytes(tail: &[u8], chunks: &[Bytes]) -> Vec<u8> {
        let mut all = tail.to_vec();
        chunks.iter().for_each(|c| all.extend_from_slice(c));
        all.resize(crate::io::align_up(all.len() as u64) as usize, 0);
        all
    }

    #[test]
    fn congruent_chunks_are_written_in_place_but_for_their_edge_blocks() {
        let tail = vec![7u8; 100];
        let position = 3 * ALIGN as u64 + 100;
        let first = congruent_chunk(position, 16, 0); // a batch's stamped head: copied
        let second = congruent_chunk(position + 16, 300_000, 1);
        let third = congruent_chunk(position + 16 + 300_000, 200_000, 9);
        let chunks = [first, second.clone(), third];
        let layout = lay_out(&tail, position, &chunks);
        assert_eq!(laid_out_bytes(&layout), expected_bytes(&tail, &chunks));
        let in_place: Vec<&WritePiece> = layout
            .pieces
            .iter()
            .filter(|p| matches!(p, WritePiece::InPlace(_)))
            .collect();
        assert_eq!(in_place.len(), 2, "both large chunks");
        assert!(
            in_place[0].as_slice().as_ptr() >= second.as_ptr(),
            "written from the chunk's own memory"
        );
        let copied = 500_016 + 100 - layout.in_place_bytes;
        assert!(copied <= 3 * 2 * ALIGN, "only edge blocks copied, {copied} bytes");
    }

    #[test]
    fn chunks_lying_any_other_way_are_copied() {
        let position = 12_345u64;
        let tail = vec![1u8; (position % ALIGN as u64) as usize];
        let skewed = congruent_chunk(position + 8, 300_000, 3);
        let small = congruent_chunk(position + 300_000, 20_000, 4);
        let chunks = [skewed, small];
        let layout = lay_out(&tail, position, &chunks);
        assert_eq!(layout.in_place_bytes, 0);
        assert_eq!(laid_out_bytes(&layout), expected_bytes(&tail, &chunks));
    }

    #[test]
    fn any_mix_of_chunks_keeps_every_invariant() {
        let mut seed = 0x2545_f491_u64;
        let mut next = |bound: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % bound
        };
        for _ in 0..200 {
            let position = next(64 * ALIGN as u64);
            let tail = vec![0xAB; (position % ALIGN as u64) as usize];
            let mut chunks = Vec::new();
            let mut at = position;
            for _ in 0..1 + next(6) {
                let len = [1, 16, 61, 5_000, 40_000, 300_001][next(6) as usize];
                let skew = [0, 0, 1, 512][next(4) as usize];
                let chunk = congruent_chunk(at + skew, len, next(256) as u8);
                at += chunk.len() as u64;
                chunks.push(chunk);
            }
            let layout = lay_out(&tail, position, &chunks);
            let expected = expected_bytes(&tail, &chunks);
            assert_eq!(laid_out_bytes(&layout), expected);
            let logical_bytes = (at - position) as usize + tail.len();
            let last_block = crate::io::align_down(logical_bytes as u64) as usize;
            assert_eq!(layout.new_tail, &expected[last_block..logical_bytes], "the next tail");
        }
    }

    #[test]
    fn a_piece_advanced_by_a_short_write_holds_the_rest() {
        let chunk = congruent_chunk(0, 3 * ALIGN, 5);
        let mut piece = WritePiece::InPlace(chunk.clone());
        piece.advance(ALIGN);
        assert_eq!(piece.as_slice(), &chunk[ALIGN..]);
        let mut copied = WritePiece::copied(&[&chunk[..]]);
        copied.advance(2 * ALIGN);
        assert_eq!(copied.as_slice(), &chunk[2 * ALIGN..]);
    }

    #[test]
    fn parts_split_where_asked() {
        let parts: [&[u8]; 3] = [b"abc", b"", b"defgh"];
        let (head, rest) = split_parts(&parts, 4);
        assert_eq!(head.concat(), b"abcd");
        assert_eq!(rest.concat(), b"efgh");
        let (head, rest) = split_parts(&parts, 100);
        assert_eq!((head.concat(), rest.len()), (b"abcdefgh".to_vec(), 0));
    }
}

//! The compact encoding of a run of one process's samples (format 3).
//!
//! A recording of 1,000 processes changing every second for an hour holds
//! 3.6 million samples. As one SQLite row each, reading them back costs
//! more than the whole analysis (every row is a B-tree cell of seven
//! columns, decoded column by column), and takes ~26 bytes each. The writer
//! therefore folds each process's rows, [`CHUNK_SAMPLES`] at a time (see
//! `Writer`), into blobs of at most [`MAX_CHUNK_BYTES`]:
//!
//! ```text
//! byte 0      encoding (1)
//! per sample  zigzag varint: change of the time step (delta of delta, ns)
//!             5 × zigzag varint: change of vm, rss_anon, rss_file,
//!                                rss_shmem, swap since the previous sample
//! ```
//!
//! A sampler that ticks regularly makes the first varint one byte, and a
//! change of a few pages two; a sample costs ~7–12 bytes and decodes in
//! nanoseconds. The first sample's deltas are from zero, so a chunk is read
//! without its neighbours.

use integer_encoding::VarInt;

use crate::sample::Mem;

/// Samples per chunk. Large enough that chunk rows are few (a process
/// sampled every second makes one every ~4 min) and the per-chunk row cost
/// vanishes; small enough that the rows still waiting to be folded, which
/// the reader reads as plain rows, stay a small part of a long file.
pub const CHUNK_SAMPLES: usize = 256;

/// The first byte of a chunk: how the rest is encoded.
const ENCODING: u8 = 1;

/// Largest memory figure or time a chunk may hold (as the row reader, 1
/// EiB): anything above comes from a damaged file.
const MAX_VALUE: i64 = 1 << 60;

/// Largest chunk blob the writer makes. SQLite keeps a row of a WITHOUT
/// ROWID table on its B-tree page only up to ~1,000 bytes (with 4 KiB
/// pages); a longer one spills into overflow pages, which cost a page
/// read each and leave most of the page empty (256-sample chunks made a
/// file half again as large as its data).
pub const MAX_CHUNK_BYTES: usize = 960;

/// Splits samples in time order into chunk blobs of at most
/// [`MAX_CHUNK_BYTES`] (a single sample may exceed it: it is never split),
/// as (number of samples, blob).
pub fn encode(samples: &[(u64, Mem)]) -> Vec<(usize, Vec<u8>)> {
    let mut out = Vec::new();
    let mut enc = Encoder::new();
    let mut one = Encoder::new();
    for &(t, m) in samples {
        // The sample as it would be appended; a fresh chunk restarts its
        // deltas from zero, so it is encoded again there.
        one.clone_from(&enc);
        one.push(t, &m);
        if one.buf.len() > MAX_CHUNK_BYTES && enc.n > 0 {
            out.push((enc.n, std::mem::take(&mut enc.buf)));
            enc = Encoder::new();
            enc.push(t, &m);
        } else {
            std::mem::swap(&mut enc, &mut one);
        }
    }
    if enc.n > 0 {
        out.push((enc.n, enc.buf));
    }
    out
}

#[derive(Clone)]
struct Encoder {
    buf: Vec<u8>,
    n: usize,
    prev_t: i64,
    prev_dt: i64,
    prev: [i64; 5],
}

impl Encoder {
    fn new() -> Self {
        Encoder {
            buf: vec![ENCODING],
            n: 0,
            prev_t: 0,
            prev_dt: 0,
            prev: [0; 5],
        }
    }

    fn put(&mut self, v: i64) {
        let mut b = [0u8; 10];
        let n = v.encode_var(&mut b);
        self.buf.extend_from_slice(&b[..n]);
    }

    fn push(&mut self, t: u64, m: &Mem) {
        let t = t as i64;
        if self.n == 0 {
            self.prev_t = t;
        }
        let dt = t - self.prev_t;
        self.put(dt - self.prev_dt);
        (self.prev_t, self.prev_dt) = (t, dt);
        for (i, v) in fields(m).into_iter().enumerate() {
            self.put(v - self.prev[i]);
            self.prev[i] = v;
        }
        self.n += 1;
    }
}

fn fields(m: &Mem) -> [i64; 5] {
    [m.vm, m.rss_anon, m.rss_file, m.rss_shmem, m.swap].map(|v| v as i64)
}

/// Why a chunk could not be decoded (the file was damaged or not written
/// by memleak).
#[derive(Debug, PartialEq, Eq)]
pub struct BadChunk(pub &'static str);

/// Appends the `n` samples of a chunk that starts at `t_first` to `out`.
/// Never panics on hostile input: every value is checked.
pub fn decode_into(
    blob: &[u8],
    t_first: u64,
    n: usize,
    out: &mut Vec<(u64, Mem)>,
) -> Result<(), BadChunk> {
    let Some((&ENCODING, mut rest)) = blob.split_first() else {
        return Err(BadChunk("unknown chunk encoding"));
    };
    if n == 0 || n > rest.len() {
        return Err(BadChunk("chunk sample count does not match its data"));
    }
    let (mut t, mut dt) = (
        i64::try_from(t_first).map_err(|_| BadChunk("time out of range"))?,
        0i64,
    );
    let mut cur = [0i64; 5];
    out.reserve(n);
    for i in 0..n {
        dt = dt
            .checked_add(varint(&mut rest)?)
            .ok_or(BadChunk("time out of range"))?;
        if (i == 0 && dt != 0) || (i > 0 && dt <= 0) {
            return Err(BadChunk("sample times do not increase"));
        }
        t = t.checked_add(dt).ok_or(BadChunk("time out of range"))?;
        for c in &mut cur {
            *c = c
                .checked_add(varint(&mut rest)?)
                .ok_or(BadChunk("value out of range"))?;
            if !(0..=MAX_VALUE).contains(c) {
                return Err(BadChunk("memory figure out of range"));
            }
        }
        if !(0..=MAX_VALUE).contains(&t) {
            return Err(BadChunk("time out of range"));
        }
        let [vm, rss_anon, rss_file, rss_shmem, swap] = cur.map(|v| v as u64);
        out.push((
            t as u64,
            Mem {
                vm,
                rss_anon,
                rss_file,
                rss_shmem,
                swap,
            },
        ));
    }
    if !rest.is_empty() {
        return Err(BadChunk("chunk has data after its last sample"));
    }
    Ok(())
}

/// The next zigzag varint of `rest`, which moves past it.
///
/// Most deltas fit one byte (an unchanged figure is a 0): those are decoded
/// inline, which with the call itself inlined halved the reader's decoding
/// time. Longer ones go to the crate; the zigzag is the crate's.
#[inline(always)]
fn varint(rest: &mut &[u8]) -> Result<i64, BadChunk> {
    if let Some((&b, tail)) = rest.split_first() {
        if b < 0x80 {
            *rest = tail;
            return Ok(i64::from(b >> 1) ^ -i64::from(b & 1));
        }
    }
    let (v, used) = i64::decode_var(rest).ok_or(BadChunk("chunk data cut short"))?;
    *rest = &rest[used..];
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn mem(v: [u64; 5]) -> Mem {
        Mem {
            vm: v[0],
            rss_anon: v[1],
            rss_file: v[2],
            rss_shmem: v[3],
            swap: v[4],
        }
    }

    fn decode(blob: &[u8], t0: u64, n: usize) -> Result<Vec<(u64, Mem)>, BadChunk> {
        let mut out = Vec::new();
        decode_into(blob, t0, n, &mut out).map(|()| out)
    }

    /// A regular 1 s sampler growing a page at a time: the case the
    /// encoding is built for, ~8 bytes a sample (a row is ~26).
    #[test]
    fn regular_samples_are_small() {
        let s: Vec<_> = (0..CHUNK_SAMPLES as u64)
            .map(|i| {
                let base = 100 << 20;
                (
                    5_000_000_000 + i * 1_000_000_000,
                    mem([base * 4 + i * 4096, base + i * 4096, base, 0, 0]),
                )
            })
            .collect();
        let chunks = encode(&s);
        let bytes: usize = chunks.iter().map(|c| c.1.len()).sum();
        assert!(bytes < 9 * s.len(), "{bytes} bytes");
        assert_eq!(decode_all(&chunks, &s), s);
        assert!(chunks.len() > 1);
        assert!(chunks.iter().all(|c| c.1.len() <= MAX_CHUNK_BYTES));
    }

    /// Decodes split chunks back, each from its own first time.
    fn decode_all(chunks: &[(usize, Vec<u8>)], s: &[(u64, Mem)]) -> Vec<(u64, Mem)> {
        let mut out = Vec::new();
        let mut at = 0;
        for (n, blob) in chunks {
            decode_into(blob, s[at].0, *n, &mut out).unwrap();
            at += n;
        }
        out
    }

    #[test]
    fn damaged_chunks_are_errors_not_panics() {
        let s = vec![(10, mem([1, 2, 3, 4, 5])), (20, mem([6, 7, 8, 9, 10]))];
        let blob = encode(&s).remove(0).1;
        assert!(decode(&blob, 10, 3).is_err(), "count too high");
        assert!(decode(&blob, 10, 1).is_err(), "data left over");
        assert!(decode(&blob[..blob.len() - 1], 10, 2).is_err(), "cut short");
        assert!(decode(&[], 10, 1).is_err(), "empty");
        assert!(decode(&[9, 0, 0], 10, 1).is_err(), "unknown encoding");
        assert!(decode(&blob, u64::MAX, 2).is_err(), "time out of range");
        // A decreasing figure below zero.
        let neg = [ENCODING, 0, 3, 0, 0, 0, 0];
        assert!(decode(&neg, 10, 1).is_err());
    }

    proptest! {
        /// Any increasing times and plausible figures come back unchanged.
        #[test]
        fn round_trip(
            start in 0u64..1 << 50,
            steps in proptest::collection::vec(
                (1u64..1 << 40, proptest::array::uniform5(0u64..1 << 59)), 1..300),
        ) {
            let mut t = start;
            let s: Vec<_> = steps.iter().map(|(dt, v)| { t += dt; (t, mem(*v)) }).collect();
            let chunks = encode(&s);
            prop_assert!(chunks.iter().all(|c| c.1.len() <= MAX_CHUNK_BYTES || c.0 == 1));
            prop_assert_eq!(decode_all(&chunks, &s), s);
        }

        /// Small steps (one-byte deltas of either sign, the decoder's fast
        /// path, mixed with longer ones) come back unchanged.
        #[test]
        fn round_trip_small_steps(
            start in 0u64..1 << 50,
            steps in proptest::collection::vec(
                (1u64..200, proptest::array::uniform5(0u64..300)), 1..300),
        ) {
            let mut t = start;
            let s: Vec<_> = steps.iter().map(|(dt, v)| { t += dt; (t, mem(*v)) }).collect();
            prop_assert_eq!(decode_all(&encode(&s), &s), s);
        }

        /// Arbitrary bytes never panic the decoder.
        #[test]
        fn hostile_bytes(blob in proptest::collection::vec(any::<u8>(), 0..200),
                         t0 in any::<u64>(), n in 0usize..100) {
            let _ = decode(&blob, t0, n);
        }
    }
}

//! The AVX-512 VNNI kernel of the 8-bit product ([`super::int8_dot`]): register tiles of four
//! weight rows (output columns) by up to four activation rows.
//!
//! A tile walks the blocks two at a time (one 512-bit register holds two blocks of 32 codes).
//! Each weight block pair is loaded and unpacked once for every activation row of the tile, and
//! each activation pair once for the four weight rows, so one `vpdpbusd`, one conversion, one
//! scale product and one multiply-add remain per output element and block pair, held in sixteen
//! accumulator registers. The row-at-a-time kernel it replaced spent about twice as many
//! instructions per element, unpacking and scaling for each row.
//!
//! `vpdpbusd` multiplies unsigned bytes by signed ones. Q4_1's codes are unsigned nibbles and
//! meet the signed activation codes directly. For the signed formats (Q8_0, Q6_K) the activation
//! codes are shifted to unsigned (`x + 128`, an exclusive or with `0x80`) and the shift's
//! contribution `128·Σw`, one `vpdpbusd` per weight block pair, seeds the sum: the integer
//! result is exact either way.
//!
//! Q4_1's minimum term `m_w·d_x·Σq_x` is added per block in the same accumulators, in the
//! block's first lane.
//!
//! An odd last block is loaded alone (its missing partner reads as zero codes and zero
//! scales), so nothing is read past a row's end. Each output element goes through the same
//! sequence of operations whatever the tile's row count, so a row gets bitwise the same result
//! alone or in a batch.

use std::arch::x86_64::*;

use std::ops::Range;

use super::int8_dot::XRow;
use crate::gguf::dequant::BLOCK;
use crate::quantized::{QuantFormat, QuantizedBlocks};

/// Weight rows (output columns) per tile.
pub(super) const TILE_COLS: usize = 4;
/// Most activation rows per tile.
pub(super) const TILE_ROWS: usize = 4;

/// `out[r·stride + j]`: the product of `rows[r]` with weight row `cols.start + j`, Q4_1's
/// minimum term included, for `1 ≤ rows.len() ≤ TILE_ROWS`; `wide` takes [`TILE_COLS`] weight
/// rows at a time, else one.
///
/// # Safety
/// The CPU must have AVX-512 F, BW, DQ, VL and VNNI; `cols` must lie within `w`'s rows, every
/// row of `rows` must hold `w.cols / 32` blocks, and `out` must hold
/// `(rows.len() − 1)·stride + cols.len()` values.
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx512vnni")]
pub(super) unsafe fn tile(
    w: &QuantizedBlocks,
    cols: Range<usize>,
    wide: bool,
    rows: &[XRow],
    out: &mut [f32],
    stride: usize,
) {
    if wide {
        by_rows::<TILE_COLS>(w, cols, rows, out, stride)
    } else {
        by_rows::<1>(w, cols, rows, out, stride)
    }
}

#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx512vnni")]
unsafe fn by_rows<const C: usize>(
    w: &QuantizedBlocks,
    cols: Range<usize>,
    rows: &[XRow],
    out: &mut [f32],
    stride: usize,
) {
    let run = (w, cols, rows, out, stride);
    match (w.format, rows.len()) {
        (QuantFormat::Q8_0, 1) => kernel::<1, C, 0>(run),
        (QuantFormat::Q8_0, 2) => kernel::<2, C, 0>(run),
        (QuantFormat::Q8_0, 3) => kernel::<3, C, 0>(run),
        (QuantFormat::Q8_0, _) => kernel::<4, C, 0>(run),
        (QuantFormat::Q4_1, 1) => kernel::<1, C, 1>(run),
        (QuantFormat::Q4_1, 2) => kernel::<2, C, 1>(run),
        (QuantFormat::Q4_1, 3) => kernel::<3, C, 1>(run),
        (QuantFormat::Q4_1, _) => kernel::<4, C, 1>(run),
        (QuantFormat::Q6_K, 1) => kernel::<1, C, 2>(run),
        (QuantFormat::Q6_K, 2) => kernel::<2, C, 2>(run),
        (QuantFormat::Q6_K, 3) => kernel::<3, C, 2>(run),
        (QuantFormat::Q6_K, _) => kernel::<4, C, 2>(run),
    }
}

/// What [`tile`] takes, passed on whole.
type Run<'a, 'b> = (
    &'a QuantizedBlocks,
    Range<usize>,
    &'a [XRow<'b>],
    &'a mut [f32],
    usize,
);

/// `R` activation rows by `C` weight rows at a time; `F`: 0 Q8_0, 1 Q4_1, 2 Q6_K. Lanes 0..8
/// hold block `b`, 8..16 block `b + 1`. Every output element goes through the same operations
/// whatever `R` and `C` are; a short last group of weight rows repeats its last row.
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx512vnni")]
unsafe fn kernel<const R: usize, const C: usize, const F: u8>((w, cols, rows, out, stride): Run) {
    let blocks = w.blocks_per_row();
    let wpb = if F == 1 { 4 } else { 8 };
    let spb = if F == 2 { 2 } else { 1 };
    let nibble_mask = _mm256_set1_epi8(0x0f);
    let shift = _mm512_set1_epi8(-128);
    // Scales of two blocks spread over their lanes: one per block, or (Q6_K) one per half.
    let by_block = _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0);
    let by_half = _mm512_set_epi32(3, 3, 3, 3, 2, 2, 2, 2, 1, 1, 1, 1, 0, 0, 0, 0);
    // Lanes 0 and 8: where a block's minimum term goes (once per block, not once per lane).
    let first_lanes: u16 = 0x0101;
    let x_codes: [*const i8; R] = std::array::from_fn(|r| rows[r].codes.as_ptr());
    let x_scales: [*const f32; R] = std::array::from_fn(|r| rows[r].scales.as_ptr());
    let x_sums: [*const f32; R] = std::array::from_fn(|r| rows[r].block_sums.as_ptr());
    let (codes, scales, mins) = (
        w.codes.as_ptr() as *const u8,
        w.scales.as_ptr(),
        w.mins.as_ptr(),
    );
    let n = cols.len();
    let mut j = 0;
    while j < n {
        let col = |c: usize| cols.start + (j + c).min(n - 1);
        let w_codes: [*const u8; C] = std::array::from_fn(|c| codes.add(4 * wpb * blocks * col(c)));
        let w_scales: [*const f32; C] = std::array::from_fn(|c| scales.add(spb * blocks * col(c)));
        let w_mins: [*const f32; C] = std::array::from_fn(|c| {
            if F == 1 {
                mins.add(blocks * col(c))
            } else {
                mins
            }
        });
        let sums = columns::<R, C, F>(
            blocks,
            (&w_codes, &w_scales, &w_mins),
            (&x_codes, &x_scales, &x_sums),
            (nibble_mask, shift, by_block, by_half, first_lanes),
        );
        for (r, row) in sums.iter().enumerate() {
            for (c, &sum) in row.iter().enumerate().take(n - j) {
                *out.get_unchecked_mut(r * stride + j + c) = sum;
            }
        }
        j += C;
    }
}

/// The `R × C` sums of one group of weight rows.
#[allow(clippy::type_complexity)]
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx512vnni")]
unsafe fn columns<const R: usize, const C: usize, const F: u8>(
    blocks: usize,
    (w_codes, w_scales, w_mins): (&[*const u8; C], &[*const f32; C], &[*const f32; C]),
    (x_codes, x_scales, x_sums): (&[*const i8; R], &[*const f32; R], &[*const f32; R]),
    (nibble_mask, shift, by_block, by_half, first_lanes): (__m256i, __m512i, __m512i, __m512i, u16),
) -> [[f32; C]; R] {
    let wpb = if F == 1 { 4 } else { 8 };
    let mut acc = [[_mm512_setzero_ps(); C]; R];
    // One block pair (`whole`), or the odd last block alone, its partner read as zeros.
    macro_rules! pair {
        ($b:expr, $whole:expr) => {{
            let b = $b;
            let mut w = [_mm512_setzero_si512(); C];
            let mut seed = [_mm512_setzero_si512(); C];
            let mut w_scale = [_mm512_setzero_ps(); C];
            let mut w_min = [_mm512_setzero_ps(); C];
            for c in 0..C {
                let at = w_codes[c].add(4 * wpb * b);
                if F == 1 {
                    // Two blocks' 32 packed bytes → [low₀ high₀ low₁ high₁] in 128-bit lanes.
                    let packed = bytes_32(at, $whole);
                    let low = _mm256_and_si256(packed, nibble_mask);
                    let high = _mm256_and_si256(_mm256_srli_epi16(packed, 4), nibble_mask);
                    let both = _mm512_inserti64x4(_mm512_castsi256_si512(low), high, 1);
                    w[c] = _mm512_shuffle_i64x2(both, both, 0b11_01_10_00);
                    let two = floats_2(w_mins[c].add(b), $whole);
                    w_min[c] = _mm512_maskz_permutexvar_ps(
                        first_lanes,
                        by_block,
                        _mm512_castps128_ps512(two),
                    );
                } else {
                    w[c] = bytes_64(at, $whole);
                    // −128·Σw, which the shifted activations' products carry in excess.
                    let excess = _mm512_dpbusd_epi32(_mm512_setzero_si512(), shift, w[c]);
                    seed[c] = _mm512_sub_epi32(_mm512_setzero_si512(), excess);
                }
                w_scale[c] = if F == 2 {
                    let four = floats_4(w_scales[c].add(2 * b), $whole);
                    _mm512_permutexvar_ps(by_half, _mm512_castps128_ps512(four))
                } else {
                    let two = floats_2(w_scales[c].add(b), $whole);
                    _mm512_permutexvar_ps(by_block, _mm512_castps128_ps512(two))
                };
            }
            for r in 0..R {
                let x = bytes_64(x_codes[r].add(BLOCK * b) as *const u8, $whole);
                let two = floats_2(x_scales[r].add(b), $whole);
                let x_scale = _mm512_permutexvar_ps(by_block, _mm512_castps128_ps512(two));
                let x = if F == 1 {
                    x
                } else {
                    _mm512_xor_si512(x, shift)
                };
                let x_sum = if F == 1 {
                    let two = floats_2(x_sums[r].add(b), $whole);
                    _mm512_permutexvar_ps(by_block, _mm512_castps128_ps512(two))
                } else {
                    _mm512_setzero_ps()
                };
                for c in 0..C {
                    let quads = if F == 1 {
                        _mm512_dpbusd_epi32(_mm512_setzero_si512(), w[c], x)
                    } else {
                        _mm512_dpbusd_epi32(seed[c], x, w[c])
                    };
                    let scale = _mm512_mul_ps(w_scale[c], x_scale);
                    acc[r][c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(quads), scale, acc[r][c]);
                    if F == 1 {
                        // Q4_1's `m_w·d_x·Σq_x`, in the block's first lane.
                        acc[r][c] = _mm512_fmadd_ps(w_min[c], x_sum, acc[r][c]);
                    }
                }
            }
        }};
    }
    let mut b = 0;
    while b + 1 < blocks {
        pair!(b, true);
        b += 2;
    }
    if b < blocks {
        pair!(b, false);
    }
    let mut sums = [[0.0f32; C]; R];
    for r in 0..R {
        for c in 0..C {
            sums[r][c] = _mm512_reduce_add_ps(acc[r][c]);
        }
    }
    sums
}

// Loads of one block pair's data, or of the odd last block's half with the rest zero: plain
// loads either way (nothing is read past the half), which the hardware prefetchers follow
// better than masked ones.

/// 64 bytes, or 32 and zeros.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx512vnni")]
unsafe fn bytes_64(at: *const u8, whole: bool) -> __m512i {
    if whole {
        _mm512_loadu_si512(at as *const __m512i)
    } else {
        _mm512_zextsi256_si512(_mm256_loadu_si256(at as *const __m256i))
    }
}

/// 32 bytes, or 16 and zeros.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx512vnni")]
unsafe fn bytes_32(at: *const u8, whole: bool) -> __m256i {
    if whole {
        _mm256_loadu_si256(at as *const __m256i)
    } else {
        _mm256_zextsi128_si256(_mm_loadu_si128(at as *const __m128i))
    }
}

/// Two floats, or one and zeros, in the low lanes.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx512vnni")]
unsafe fn floats_2(at: *const f32, whole: bool) -> __m128 {
    if whole {
        _mm_castpd_ps(_mm_load_sd(at as *const f64))
    } else {
        _mm_load_ss(at)
    }
}

/// Four floats, or two and zeros.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx512vnni")]
unsafe fn floats_4(at: *const f32, whole: bool) -> __m128 {
    if whole {
        _mm_loadu_ps(at)
    } else {
        floats_2(at, true)
    }
}

//! `x·Wᵀ` against a weight kept in a block format, with the activations quantized to 8 bits:
//! each row of `x` is cut into blocks of 32 values, each block stored as signed 8-bit codes with
//! one f32 scale (`max|x|/127`, the activation format of fast CPU engines such as llama.cpp's
//! Q8_0), once per product. Each weight block then meets an activation block as one integer dot
//! product of 32 code pairs, scaled once: `d_w·d_x·Σ q_w q_x` (Q8_0), the same per half block
//! with Q6_K's two scales, and `d_w·d_x·Σ q_w q_x + m_w·d_x·Σ q_x` for Q4_1's unsigned codes
//! with a minimum.
//!
//! The integer dot products run on AVX2 (`vpmaddubsw` + `vpmaddwd`) or AVX-512 VNNI
//! (`vpdpbusd`, two blocks per instruction, in register tiles: [`super::int8_tiles`]) where the
//! CPU has them, chosen at run time, and in portable Rust elsewhere. [`matmul`] computes each
//! output element from its row of `x` alone, so a row gets bitwise the same result alone or in
//! a batch: decode steps take it. [`matmul_prompt`], for prompt chunks, runs products of at
//! least [`AMX_MIN_ROWS`] rows in AMX tiles ([`super::int8_amx`]) on CPUs that have them
//! (the same bits for a row in any such product, not the same as [`matmul`]'s).
//! [`matmul_reference`] is the obvious loop they are all tested against.

use super::host_ops::lane_dot;
#[cfg(target_arch = "x86_64")]
pub use super::int8_amx::AMX_MIN_ROWS;
/// Fewest rows for which AMX would take a product (no AMX kernel on this architecture).
#[cfg(not(target_arch = "x86_64"))]
pub const AMX_MIN_ROWS: usize = usize::MAX;
use crate::gguf::dequant::BLOCK;
use crate::quantized::{QuantFormat, QuantizedBlocks};

/// Tasks per thread a product is cut into (by output columns): enough to balance the threads,
/// few enough that waking them costs little beside a decode step's small products.
const TASKS_PER_THREAD: usize = 4;
/// Fewest output columns per task.
const MIN_CHUNK: usize = 16;
/// Rows of `x` that go through one column's weights while they are in the L1 cache.
const ROW_TILE: usize = 8;
/// Rows whose codes the tiled kernel keeps in the L2 cache while a chunk's weight rows pass.
const ROW_BLOCK: usize = 64;
/// Fewest rows for which the tiled kernel takes four weight rows at a time.
const WIDE_TILE_ROWS: usize = 16;

/// Rows of activations in blocks of 32 signed 8-bit codes with an f32 scale each.
#[derive(Debug, Clone, PartialEq)]
pub struct Q8Activations {
    pub rows: usize,
    pub cols: usize,
    /// `[rows, cols]`.
    pub codes: Vec<i8>,
    /// `[rows, cols / 32]`.
    pub scales: Vec<f32>,
    /// `[rows, cols / 32]`: each block's scale times the sum of its codes (what a Q4_1
    /// block's minimum multiplies).
    pub block_sums: Vec<f32>,
}

impl Q8Activations {
    /// Quantizes a row-major `[rows, cols]` matrix (`cols` a multiple of 32).
    ///
    /// # Panics
    /// If `x` is not `rows · cols` long or `cols` is not a multiple of 32.
    pub fn quantize(x: &[f32], rows: usize, cols: usize) -> Self {
        assert_eq!(x.len(), rows * cols, "x is [rows, cols]");
        assert_eq!(cols % BLOCK, 0, "rows are whole blocks of 32");
        let blocks = rows * cols / BLOCK;
        let mut codes = vec![0i8; rows * cols];
        let mut scales = vec![0.0f32; blocks];
        let mut block_sums = vec![0.0f32; blocks];
        for (b, (values, out)) in x
            .chunks_exact(BLOCK)
            .zip(codes.chunks_exact_mut(BLOCK))
            .enumerate()
        {
            let max = values.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            let d = max / 127.0;
            let inverse = if d > 0.0 { 1.0 / d } else { 0.0 };
            let mut sum = 0i32;
            for (q, &v) in out.iter_mut().zip(values) {
                *q = (v * inverse).round().clamp(-127.0, 127.0) as i8;
                sum += i32::from(*q);
            }
            scales[b] = d;
            block_sums[b] = d * sum as f32;
        }
        Self {
            rows,
            cols,
            codes,
            scales,
            block_sums,
        }
    }

    fn blocks_per_row(&self) -> usize {
        self.cols / BLOCK
    }

    fn row(&self, r: usize) -> XRow<'_> {
        let blocks = self.blocks_per_row();
        XRow {
            codes: &self.codes[r * self.cols..][..self.cols],
            scales: &self.scales[r * blocks..][..blocks],
            block_sums: &self.block_sums[r * blocks..][..blocks],
        }
    }
}

/// The instruction set the integer dot products use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DotIsa {
    Portable,
    Avx2,
    Avx512Vnni,
    /// AVX-512 VNNI below [`AMX_MIN_ROWS`] rows, AMX tiles from there (never what
    /// [`DotIsa::detect`] returns: [`matmul_prompt`] chooses it).
    Amx,
}

impl DotIsa {
    /// The best this CPU has.
    pub fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::is_x86_feature_detected as has;
            let avx2 = has!("avx2") && has!("fma");
            if avx2
                && has!("avx512f")
                && has!("avx512bw")
                && has!("avx512dq")
                && has!("avx512vl")
                && has!("avx512vnni")
            {
                return Self::Avx512Vnni;
            }
            if avx2 {
                return Self::Avx2;
            }
        }
        Self::Portable
    }

    /// Whether this CPU can run `self`.
    pub fn is_available(self) -> bool {
        match self {
            Self::Portable => true,
            Self::Avx2 => matches!(Self::detect(), Self::Avx2 | Self::Avx512Vnni),
            Self::Avx512Vnni => Self::detect() == Self::Avx512Vnni,
            #[cfg(target_arch = "x86_64")]
            Self::Amx => Self::detect() == Self::Avx512Vnni && super::int8_amx::available(),
            #[cfg(not(target_arch = "x86_64"))]
            Self::Amx => false,
        }
    }
}

/// `y` `[m, n]` from `x` `[m, k]` and `w` `[n, k]`, with the best instruction set of this CPU
/// that keeps a row's bits whatever the batch.
pub fn matmul(x: &Q8Activations, w: &QuantizedBlocks) -> Vec<f32> {
    matmul_with(DotIsa::detect(), x, w)
}

/// [`matmul`] for prompt chunks: in AMX tiles from [`AMX_MIN_ROWS`] rows where the CPU has
/// them.
pub fn matmul_prompt(x: &Q8Activations, w: &QuantizedBlocks) -> Vec<f32> {
    let isa = if DotIsa::Amx.is_available() {
        DotIsa::Amx
    } else {
        DotIsa::detect()
    };
    matmul_with(isa, x, w)
}

/// [`matmul`] with a chosen instruction set.
///
/// # Panics
/// If the CPU lacks `isa` or the shapes disagree.
pub fn matmul_with(isa: DotIsa, x: &Q8Activations, w: &QuantizedBlocks) -> Vec<f32> {
    assert!(isa.is_available(), "{isa:?} is not available on this CPU");
    assert_eq!(x.cols, w.cols, "x is [m, k] and w is [n, k]");
    let (m, n) = (x.rows, w.rows);
    let chunk = n
        .div_ceil(TASKS_PER_THREAD * rayon::current_num_threads())
        .max(MIN_CHUNK);
    #[cfg(target_arch = "x86_64")]
    if isa == DotIsa::Amx && m >= AMX_MIN_ROWS {
        // Whole groups of 16 weight rows per task: the AMX tile's width.
        let chunk = chunk.next_multiple_of(16);
        // SAFETY: `Amx` is available (checked above), so `int8_amx::available()` returned
        // true, and the shapes agree.
        return unsafe { super::int8_amx::matmul(x, w, chunk) };
    }
    let rows: Vec<XRow> = (0..m).map(|r| x.row(r)).collect();
    super::skinny::by_column_chunks(m, n, chunk, |cols| match isa {
        #[cfg(target_arch = "x86_64")]
        DotIsa::Avx512Vnni | DotIsa::Amx => by_tiles(w, &rows, cols),
        _ => by_rows(isa, w, &rows, cols),
    })
}

/// Columns `cols` of every row, `[m, cols.len()]`: weight rows one at a time, each unpacked
/// block shared by up to four activation rows.
fn by_rows(
    isa: DotIsa,
    w: &QuantizedBlocks,
    rows: &[XRow],
    cols: std::ops::Range<usize>,
) -> Vec<f32> {
    let (m, width) = (rows.len(), cols.len());
    let mut out = vec![0.0f32; m * width];
    for tile in (0..m).step_by(ROW_TILE) {
        let tile_rows = &rows[tile..m.min(tile + ROW_TILE)];
        for (j, col) in cols.clone().enumerate() {
            let weights = WRow::of(w, col);
            let mut r = 0;
            while r < tile_rows.len() {
                let take = (tile_rows.len() - r).min(4);
                let group = &tile_rows[r..r + take];
                let mut sums = [0.0f32; 4];
                dot_rows(isa, w.format, &weights, group, &mut sums[..take]);
                for (i, sum) in sums[..take].iter().enumerate() {
                    out[(tile + r + i) * width + j] =
                        sum + minimum_term(w.format, &weights, &group[i]);
                }
                r += take;
            }
        }
    }
    out
}

/// Columns `cols` of every row through [`int8_tiles`]' register tiles: rows in blocks of
/// [`ROW_BLOCK`] (their codes stay in the L2 cache while the weight rows pass), up to four
/// activation rows per tile, and one weight row per tile below [`WIDE_TILE_ROWS`] rows (the
/// weights then stream from memory in order, which a decode step's few rows are bound by),
/// four from there (a short last group repeats its last row). Each output element's arithmetic
/// is the same either way.
#[cfg(target_arch = "x86_64")]
fn by_tiles(w: &QuantizedBlocks, rows: &[XRow], cols: std::ops::Range<usize>) -> Vec<f32> {
    use super::int8_tiles::{tile, TILE_COLS, TILE_ROWS};
    let (m, width) = (rows.len(), cols.len());
    let mut out = vec![0.0f32; m * width];
    if m < WIDE_TILE_ROWS {
        // Each group of rows meets every weight row of the chunk in one call, the weights
        // streaming in order.
        for (g, group) in rows.chunks(TILE_ROWS).enumerate() {
            let at = g * TILE_ROWS * width;
            // SAFETY: only called for `DotIsa::Avx512Vnni`, which `matmul_with` checked; the
            // rows hold `w.cols / 32` blocks and `out` holds every row's `width` columns.
            unsafe { tile(w, cols.clone(), false, group, &mut out[at..], width) };
        }
        return out;
    }
    for block in (0..m).step_by(ROW_BLOCK) {
        let block_rows = &rows[block..m.min(block + ROW_BLOCK)];
        for first in (0..width).step_by(TILE_COLS) {
            let tile_cols = cols.start + first..cols.start + width.min(first + TILE_COLS);
            for (t, group) in block_rows.chunks(TILE_ROWS).enumerate() {
                let at = (block + t * TILE_ROWS) * width + first;
                // SAFETY: as above.
                unsafe { tile(w, tile_cols.clone(), true, group, &mut out[at..], width) };
            }
        }
    }
    out
}

/// Q4_1's `Σ m_w·d_x·Σq_x` over the blocks (zero for formats without minimums).
fn minimum_term(format: QuantFormat, w: &WRow, row: &XRow) -> f32 {
    if format.has_mins() {
        lane_dot(w.mins, row.block_sums)
    } else {
        0.0
    }
}

/// One activation row.
#[derive(Clone, Copy)]
pub(super) struct XRow<'a> {
    pub(super) codes: &'a [i8],
    pub(super) scales: &'a [f32],
    pub(super) block_sums: &'a [f32],
}

/// One weight row (one output column).
struct WRow<'a> {
    codes: &'a [u32],
    scales: &'a [f32],
    mins: &'a [f32],
}

impl<'a> WRow<'a> {
    fn of(w: &'a QuantizedBlocks, col: usize) -> Self {
        let blocks = w.blocks_per_row();
        let (wpb, spb) = (w.format.words_per_block(), w.format.scales_per_block());
        Self {
            codes: &w.codes[col * blocks * wpb..][..blocks * wpb],
            scales: &w.scales[col * blocks * spb..][..blocks * spb],
            mins: if w.format.has_mins() {
                &w.mins[col * blocks..][..blocks]
            } else {
                &[]
            },
        }
    }
}

/// `sums[i]` = the scaled code products of `rows[i]` with `w` (without Q4_1's minimum term),
/// for up to four rows.
fn dot_rows(isa: DotIsa, format: QuantFormat, w: &WRow, rows: &[XRow], sums: &mut [f32]) {
    debug_assert!(rows.len() == sums.len() && rows.len() <= 4);
    match isa {
        DotIsa::Portable => portable::dot_rows(format, w, rows, sums),
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `matmul_with` checked that the CPU has the instructions (AVX-512 VNNI
        // implies AVX2).
        DotIsa::Avx2 | DotIsa::Avx512Vnni | DotIsa::Amx => unsafe {
            avx2::dot_rows(format, w, rows, sums)
        },
        #[cfg(not(target_arch = "x86_64"))]
        _ => portable::dot_rows(format, w, rows, sums),
    }
}

/// The weight block's codes as bytes in element order (Q8_0 and Q6_K: 32 signed codes; Q4_1:
/// 16 bytes whose low nibbles are elements 0..16 and high nibbles 16..32).
fn block_bytes(codes: &[u32], wpb: usize, b: usize) -> &[u8] {
    bytemuck::cast_slice(&codes[b * wpb..(b + 1) * wpb])
}

mod portable {
    use super::*;

    pub fn dot_rows(format: QuantFormat, w: &WRow, rows: &[XRow], sums: &mut [f32]) {
        for (row, sum) in rows.iter().zip(sums) {
            *sum = dot(format, w, row);
        }
    }

    fn dot(format: QuantFormat, w: &WRow, row: &XRow) -> f32 {
        let wpb = format.words_per_block();
        let mut total = 0.0f32;
        for b in 0..row.scales.len() {
            let codes = block_bytes(w.codes, wpb, b);
            let x = &row.codes[b * BLOCK..][..BLOCK];
            let signed = |range: std::ops::Range<usize>| -> f32 {
                range
                    .map(|i| i32::from(codes[i] as i8) * i32::from(x[i]))
                    .sum::<i32>() as f32
            };
            let dx = row.scales[b];
            total += match format {
                QuantFormat::Q8_0 => w.scales[b] * dx * signed(0..BLOCK),
                QuantFormat::Q6_K => {
                    w.scales[2 * b] * dx * signed(0..16) + w.scales[2 * b + 1] * dx * signed(16..32)
                }
                QuantFormat::Q4_1 => {
                    let s: i32 = (0..16)
                        .map(|i| {
                            i32::from(codes[i] & 0x0f) * i32::from(x[i])
                                + i32::from(codes[i] >> 4) * i32::from(x[16 + i])
                        })
                        .sum();
                    w.scales[b] * dx * s as f32
                }
            };
        }
        total
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::*;

    /// The eight lanes' sum.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn hsum(v: __m256) -> f32 {
        let quad = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let pair = _mm_add_ps(quad, _mm_movehl_ps(quad, quad));
        let one = _mm_add_ss(pair, _mm_movehdup_ps(pair));
        _mm_cvtss_f32(one)
    }

    /// The 32 unsigned nibbles of a Q4_1 block, in element order.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn nibbles(bytes: *const u8) -> __m256i {
        let packed = _mm_loadu_si128(bytes as *const __m128i);
        let mask = _mm_set1_epi8(0x0f);
        let low = _mm_and_si128(packed, mask);
        let high = _mm_and_si128(_mm_srli_epi16(packed, 4), mask);
        _mm256_set_m128i(high, low)
    }

    /// Every row's products (see [`super::dot_rows`]). Each row keeps two accumulators,
    /// one for even and one for odd blocks, so that consecutive blocks do not wait on each
    /// other's multiply-add.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn dot_rows(format: QuantFormat, w: &WRow, rows: &[XRow], sums: &mut [f32]) {
        match (format, rows.len()) {
            (QuantFormat::Q8_0, 1) => tile::<1, 0>(w, rows, sums),
            (QuantFormat::Q8_0, 2) => tile::<2, 0>(w, rows, sums),
            (QuantFormat::Q8_0, 3) => tile::<3, 0>(w, rows, sums),
            (QuantFormat::Q8_0, _) => tile::<4, 0>(w, rows, sums),
            (QuantFormat::Q4_1, 1) => tile::<1, 1>(w, rows, sums),
            (QuantFormat::Q4_1, 2) => tile::<2, 1>(w, rows, sums),
            (QuantFormat::Q4_1, 3) => tile::<3, 1>(w, rows, sums),
            (QuantFormat::Q4_1, _) => tile::<4, 1>(w, rows, sums),
            (QuantFormat::Q6_K, 1) => tile::<1, 2>(w, rows, sums),
            (QuantFormat::Q6_K, 2) => tile::<2, 2>(w, rows, sums),
            (QuantFormat::Q6_K, 3) => tile::<3, 2>(w, rows, sums),
            (QuantFormat::Q6_K, _) => tile::<4, 2>(w, rows, sums),
        }
    }

    /// `R` rows; `F`: 0 Q8_0, 1 Q4_1, 2 Q6_K.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn tile<const R: usize, const F: u8>(w: &WRow, rows: &[XRow], sums: &mut [f32]) {
        let blocks = rows[0].scales.len();
        let x_codes: [*const i8; R] = std::array::from_fn(|r| rows[r].codes.as_ptr());
        let x_scales: [*const f32; R] = std::array::from_fn(|r| rows[r].scales.as_ptr());
        let mut even = [_mm256_setzero_ps(); R];
        let mut odd = [_mm256_setzero_ps(); R];
        let mut b = 0;
        while b + 1 < blocks {
            add_block::<R, F>(w, &x_codes, &x_scales, b, &mut even);
            add_block::<R, F>(w, &x_codes, &x_scales, b + 1, &mut odd);
            b += 2;
        }
        if b < blocks {
            add_block::<R, F>(w, &x_codes, &x_scales, b, &mut even);
        }
        for r in 0..R {
            sums[r] += hsum(_mm256_add_ps(even[r], odd[r]));
        }
    }

    /// Adds block `b`'s scaled products of every row to `acc`.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn add_block<const R: usize, const F: u8>(
        w: &WRow,
        x_codes: &[*const i8; R],
        x_scales: &[*const f32; R],
        b: usize,
        acc: &mut [__m256; R],
    ) {
        let wpb = if F == 1 { 4 } else { 8 };
        let at = (w.codes.as_ptr() as *const u8).add(4 * wpb * b);
        // Unsigned codes, and for signed formats the signs to move onto x.
        let (unsigned, signs) = if F == 1 {
            (nibbles(at), _mm256_setzero_si256())
        } else {
            let codes = _mm256_loadu_si256(at as *const __m256i);
            (_mm256_sign_epi8(codes, codes), codes)
        };
        let w_scales = w.scales.as_ptr();
        let weight_scale = if F == 2 {
            _mm256_set_m128(
                _mm_set1_ps(*w_scales.add(2 * b + 1)),
                _mm_set1_ps(*w_scales.add(2 * b)),
            )
        } else {
            _mm256_set1_ps(*w_scales.add(b))
        };
        for r in 0..R {
            let x = _mm256_loadu_si256(x_codes[r].add(BLOCK * b) as *const __m256i);
            let x = if F == 1 {
                x
            } else {
                _mm256_sign_epi8(x, signs)
            };
            let pairs = _mm256_maddubs_epi16(unsigned, x);
            let quads = _mm256_madd_epi16(pairs, _mm256_set1_epi16(1));
            let scale = _mm256_mul_ps(weight_scale, _mm256_set1_ps(*x_scales[r].add(b)));
            acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(quads), scale, acc[r]);
        }
    }
}

/// The obvious loops: dequantized activations times dequantized weights, summed in f64 per
/// block and scaled as the kernels do.
pub fn matmul_reference(x: &Q8Activations, w: &QuantizedBlocks) -> Vec<f32> {
    let (m, n, k) = (x.rows, w.rows, w.cols);
    let mut y = vec![0.0f32; m * n];
    for r in 0..m {
        for j in 0..n {
            let mut dot = 0.0f64;
            for i in 0..k {
                let xv = f64::from(x.scales[r * (k / BLOCK) + i / BLOCK])
                    * f64::from(x.codes[r * k + i]);
                dot += xv * f64::from(w.value(j, i));
            }
            y[r * n + j] = dot as f32;
        }
    }
    y
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn random(n: usize, seed: u64) -> Vec<f32> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        (0..n).map(|_| rng.random_range(-2.0f32..2.0)).collect()
    }

    fn isas() -> Vec<DotIsa> {
        let all = [
            DotIsa::Portable,
            DotIsa::Avx2,
            DotIsa::Avx512Vnni,
            DotIsa::Amx,
        ];
        let available: Vec<_> = all.into_iter().filter(|i| i.is_available()).collect();
        for isa in all.iter().filter(|i| !available.contains(i)) {
            eprintln!("SKIPPED: {isa:?} (this CPU lacks it)");
        }
        available
    }

    #[test]
    fn activation_codes_give_back_the_values_within_half_a_step() {
        let x = random(3 * 64, 7);
        let q = Q8Activations::quantize(&x, 3, 64);
        for (i, &v) in x.iter().enumerate() {
            let d = q.scales[i / BLOCK];
            assert!(
                (f32::from(q.codes[i]) * d - v).abs() <= 0.5 * d + 1e-6,
                "{i}"
            );
        }
        let zero = Q8Activations::quantize(&[0.0; 32], 1, 32);
        assert_eq!((zero.scales[0], zero.block_sums[0]), (0.0, 0.0));
    }

    #[test]
    fn every_instruction_set_matches_the_reference_on_random_inputs() {
        for format in [QuantFormat::Q8_0, QuantFormat::Q4_1, QuantFormat::Q6_K] {
            // Odd block counts exercise the two-block loop's tail.
            for &(m, n, k) in &[
                (1, 1, 32),
                (3, 65, 96),
                (9, 70, 320),
                (17, 7, 64),
                (70, 9, 96),
                // AMX: a partial last group of rows and of weight rows, and an odd span.
                (130, 40, 224),
                (65, 16, 32),
            ] {
                let w = QuantizedBlocks::quantize(format, &random(n * k, 1), n, k).unwrap();
                let x = Q8Activations::quantize(&random(m * k, 2), m, k);
                let want = matmul_reference(&x, &w);
                for isa in isas() {
                    let got = matmul_with(isa, &x, &w);
                    for (a, b) in got.iter().zip(&want) {
                        assert!(
                            (a - b).abs() < 1e-4 * (k as f32).sqrt() * (1.0 + b.abs()),
                            "{format:?} {isa:?} {m}x{n}x{k}: {a} vs {b}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn extreme_codes_do_not_saturate() {
        // Weight codes of −128 and 127 against activations of ±127: the largest pair sums the
        // 16-bit step of vpmaddubsw sees.
        let (n, k) = (4, 64);
        let mut w = QuantizedBlocks::quantize(QuantFormat::Q8_0, &random(n * k, 3), n, k).unwrap();
        for (i, word) in w.codes.iter_mut().enumerate() {
            *word = if i % 2 == 0 { 0x8080_8080 } else { 0x7f7f_7f7f };
        }
        let x: Vec<f32> = (0..k)
            .map(|i| if i % 3 == 0 { -1.0 } else { 1.0 })
            .collect();
        let x = Q8Activations::quantize(&x, 1, k);
        let want = matmul_reference(&x, &w);
        for isa in isas() {
            let got = matmul_with(isa, &x, &w);
            for (a, b) in got.iter().zip(&want) {
                assert!(
                    (a - b).abs() <= 1e-3 * b.abs().max(1.0),
                    "{isa:?}: {a} vs {b}"
                );
            }
        }
    }

    #[test]
    fn a_row_gets_the_same_bits_alone_or_in_a_batch() {
        // 70 rows cross the tiled kernel's row blocks; 96 columns end on an odd block.
        let (m, n, k) = (70, 150, 96);
        let xs = random(m * k, 4);
        let product = |isa, rows: std::ops::Range<usize>, w: &QuantizedBlocks| {
            let x = Q8Activations::quantize(&xs[rows.start * k..rows.end * k], rows.len(), k);
            matmul_with(isa, &x, w)
        };
        for format in [QuantFormat::Q8_0, QuantFormat::Q4_1, QuantFormat::Q6_K] {
            let w = QuantizedBlocks::quantize(format, &random(n * k, 3), n, k).unwrap();
            for isa in isas() {
                // Every instruction set gives a row alone its bits in the batch, except AMX,
                // which gives a row the same bits in any product it takes.
                let large = product(isa, 0..m, &w);
                for r in [0, 3, 5, 17, 39, 64, 69] {
                    let (other, at) = if isa == DotIsa::Amx {
                        let start = r.min(m - AMX_MIN_ROWS);
                        (product(isa, start..start + AMX_MIN_ROWS, &w), r - start)
                    } else {
                        (product(isa, r..r + 1, &w), 0)
                    };
                    assert_eq!(
                        other[at * n..(at + 1) * n],
                        large[r * n..(r + 1) * n],
                        "{format:?} {isa:?} row {r} of {m}"
                    );
                }
            }
        }
    }

    #[test]
    fn decode_products_keep_a_rows_bits_and_prompt_products_may_take_amx() {
        let (m, n, k) = (2 * AMX_MIN_ROWS + 3, 40, 128);
        let xs = random(m * k, 5);
        let w = QuantizedBlocks::quantize(QuantFormat::Q4_1, &random(n * k, 6), n, k).unwrap();
        let x = Q8Activations::quantize(&xs, m, k);
        // `matmul` (decode steps) never takes AMX, whatever the row count.
        let batch = matmul(&x, &w);
        let last = Q8Activations::quantize(&xs[(m - 1) * k..], 1, k);
        assert_eq!(matmul(&last, &w), batch[(m - 1) * n..]);
        // `matmul_prompt` takes AMX from `AMX_MIN_ROWS` rows where the CPU has it.
        let prompt = matmul_prompt(&x, &w);
        if DotIsa::Amx.is_available() {
            assert_eq!(prompt, matmul_with(DotIsa::Amx, &x, &w));
        } else {
            eprintln!("SKIPPED: the AMX half (this CPU lacks AMX)");
            assert_eq!(prompt, batch);
        }
    }
}

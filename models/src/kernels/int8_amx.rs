//! The AMX kernel of the 8-bit product ([`super::int8_dot`]) for prompt chunks: integer
//! dot products in AMX tiles, 16 activation rows × 16 weight rows × one block per instruction.
//!
//! A tile product `tdpbssd` multiplies a tile of 16 rows × 32 signed activation codes (one
//! block of each row; the activations are first repacked so that each tile's codes are
//! contiguous) by a tile of 32 × 16 signed weight codes and leaves 16 × 16 exact 32-bit sums: one block's
//! integer dot product for each row and weight row. Each block's sums are then scaled as the
//! other kernels scale them, `acc += f32(Σ q_w q_x) · (d_w·d_x)`, plus Q4_1's minimum term
//! `m_w·(d_x·Σq_x)`, in sixteen AVX-512 accumulators whose lanes are the sixteen weight rows.
//! Q6_K keeps a scale per 16 values, so its tiles take 16 codes per row and one tile product
//! per half block.
//!
//! The weight tile wants its codes in groups of four consecutive values per weight row
//! (`[values / 4][16 weight rows][4]`): each group of 16 weight rows is unpacked into that
//! layout once (Q4_1's nibbles to bytes) and then serves every activation row, which is why
//! this kernel is for products of many rows ([`AMX_MIN_ROWS`]). It serves prompt chunks only:
//! decode steps keep the register-tile kernel, whose result for a row is bitwise the same in
//! any batch. Within this kernel a row's result does not depend on the other rows either (the
//! sums are exact and each output element is scaled and accumulated block by block in the same
//! order), but it is not bitwise the register tiles' result.
//!
//! Stable Rust has no AMX intrinsics, so the five tile instructions are inline assembly. Linux
//! hands a process the AMX register state only after it asks (`arch_prctl`), which
//! [`available`] does once.

use std::arch::asm;
use std::arch::x86_64::*;
use std::ops::Range;
use std::sync::OnceLock;

use super::int8_dot::Q8Activations;
use crate::gguf::dequant::BLOCK;
use crate::quantized::{QuantFormat, QuantizedBlocks};

/// Fewest activation rows for which a prompt chunk's product takes this kernel: one tile of
/// rows (at 8 rows it runs level with the register tiles, from 32 rows 1.6–3× faster:
/// `cargo bench -p mars2-benches --bench quantized_dot`).
pub const AMX_MIN_ROWS: usize = 16;
/// Activation rows, and weight rows, per tile.
const TILE: usize = 16;

/// Whether this CPU has AMX with 8-bit tile products, AVX-512 for the scaling, and Linux has
/// granted this process the tile state (asked once); false when the environment variable
/// `MARS2_AMX` is `off` (for side-by-side runs).
pub fn available() -> bool {
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    *AVAILABLE.get_or_init(|| {
        if std::env::var("MARS2_AMX").as_deref() == Ok("off") {
            return false;
        }
        use std::arch::is_x86_feature_detected as has;
        // CPUID leaf 7: EDX bit 24 AMX-TILE, bit 25 AMX-INT8.
        let edx = __cpuid_count(7, 0).edx;
        let cpu = has!("avx512f")
            && has!("avx512bw")
            && has!("avx512dq")
            && has!("avx512vl")
            && has!("avx512vnni")
            && (edx >> 24) & 1 == 1
            && (edx >> 25) & 1 == 1;
        cpu && request_tile_state()
    })
}

/// Asks Linux for the AMX tile data state (`ARCH_REQ_XCOMP_PERM`, `XFEATURE_XTILEDATA`);
/// process-wide once granted.
#[cfg(target_os = "linux")]
fn request_tile_state() -> bool {
    const ARCH_REQ_XCOMP_PERM: libc::c_long = 0x1023;
    const XFEATURE_XTILEDATA: libc::c_long = 18;
    // SAFETY: a plain system call with integer arguments.
    unsafe {
        libc::syscall(
            libc::SYS_arch_prctl,
            ARCH_REQ_XCOMP_PERM,
            XFEATURE_XTILEDATA,
        ) == 0
    }
}

#[cfg(not(target_os = "linux"))]
fn request_tile_state() -> bool {
    false
}

/// The 64-byte tile configuration `ldtilecfg` reads.
#[repr(C, align(64))]
struct TileConfig([u8; 64]);

impl TileConfig {
    /// Tiles 0 and 3 hold sums (16 × 16 `i32`), 1 and 4 activation codes (16 rows × `span`
    /// bytes), 2 and 5 weight codes (`span / 4` rows of 16 × 4 bytes).
    fn for_span(span: usize) -> Self {
        let mut config = [0u8; 64];
        config[0] = 1; // palette 1
        let mut set = |tile: usize, rows: usize, bytes: usize| {
            config[16 + 2 * tile..18 + 2 * tile].copy_from_slice(&(bytes as u16).to_le_bytes());
            config[48 + tile] = rows as u8;
        };
        for pair in [0, 3] {
            set(pair, TILE, 4 * TILE);
            set(pair + 1, TILE, span);
            set(pair + 2, span / 4, 4 * TILE);
        }
        Self(config)
    }
}

/// `y` `[m, n]` from `x` `[m, k]` and `w` `[n, k]`, in tasks of `chunk` weight rows (a
/// multiple of 16) across threads, each writing its columns of `y` in place.
///
/// # Safety
/// [`available`] must have returned true, and `x.cols == w.cols`.
pub(super) unsafe fn matmul(x: &Q8Activations, w: &QuantizedBlocks, chunk: usize) -> Vec<f32> {
    use rayon::prelude::*;
    let (m, n) = (x.rows, w.rows);
    let rows = PackedRows::pack(x, span_of(w.format));
    let mut y = vec![0.0f32; m * n];
    let out = Out(y.as_mut_ptr());
    (0..n.div_ceil(chunk)).into_par_iter().for_each(|c| {
        let cols = c * chunk..n.min((c + 1) * chunk);
        // SAFETY: the caller's conditions; each task writes only its own columns of `y`.
        unsafe { columns(&rows, w, cols, &out, n) }
    });
    y
}

/// Values per tile row: a block, or half of one for Q6_K's scale per 16 values.
fn span_of(format: QuantFormat) -> usize {
    if format == QuantFormat::Q6_K {
        16
    } else {
        BLOCK
    }
}

/// The activations in groups of 16 rows (the last padded with zero rows), laid out so that
/// each tile's codes are contiguous: codes `[groups][spans][16 rows][span]`, and block
/// scales and scaled code sums `[groups][blocks][16 rows]`.
struct PackedRows {
    rows: usize,
    spans: usize,
    span: usize,
    blocks: usize,
    codes: Vec<i8>,
    scales: Vec<f32>,
    block_sums: Vec<f32>,
}

impl PackedRows {
    fn pack(x: &Q8Activations, span: usize) -> Self {
        let (m, k) = (x.rows, x.cols);
        let (spans, blocks, groups) = (k / span, k / BLOCK, m.div_ceil(TILE));
        let mut codes = vec![0i8; groups * TILE * k];
        let mut scales = vec![0.0f32; groups * TILE * blocks];
        let mut block_sums = vec![0.0f32; groups * TILE * blocks];
        for r in 0..m {
            let (g, t) = (r / TILE, r % TILE);
            for (s, values) in x.codes[r * k..(r + 1) * k].chunks_exact(span).enumerate() {
                let at = ((g * spans + s) * TILE + t) * span;
                codes[at..at + span].copy_from_slice(values);
            }
            for b in 0..blocks {
                let at = (g * blocks + b) * TILE + t;
                scales[at] = x.scales[r * blocks + b];
                block_sums[at] = x.block_sums[r * blocks + b];
            }
        }
        Self {
            rows: m,
            spans,
            span,
            blocks,
            codes,
            scales,
            block_sums,
        }
    }
}

/// The output matrix, written by several tasks at disjoint columns.
struct Out(*mut f32);
// SAFETY: tasks write disjoint elements, and `matmul` waits for them all.
unsafe impl Sync for Out {}

/// Columns `cols` of `x·Wᵀ` for every row of `x`, written to `out` (rows `stride` apart).
///
/// # Safety
/// As [`matmul`]; `cols` lies within `w`'s rows and `out` holds `x.rows` rows of `stride`
/// values, of which no other task writes columns `cols`.
unsafe fn columns(
    x: &PackedRows,
    w: &QuantizedBlocks,
    cols: Range<usize>,
    out: &Out,
    stride: usize,
) {
    let (m, width) = (x.rows, cols.len());
    let mut panel = WeightPanel::new(w.format, w.cols, x.span);
    // The sums of two tile products, read back from the tiles, twice.
    let mut sums = [Sums([[0; TILE * TILE]; 2]), Sums([[0; TILE * TILE]; 2])];
    let config = TileConfig::for_span(x.span);
    // SAFETY: the configuration is 64 valid bytes; the tile state was granted.
    asm!("ldtilecfg [{}]", in(reg) config.0.as_ptr(), options(nostack));
    for first in (0..width).step_by(TILE) {
        let group = first..width.min(first + TILE);
        panel.unpack(w, cols.start + group.start..cols.start + group.end);
        for (g, row0) in (0..m).step_by(TILE).enumerate() {
            let target = Target {
                out: out.0.add(row0 * stride + cols.start + group.start),
                stride,
                rows: TILE.min(m - row0),
                cols: group.len(),
            };
            tile_rows(x, g, &panel, &mut sums, target);
        }
    }
    asm!("tilerelease", options(nostack, nomem));
}

/// Where a tile's outputs go: `rows × cols` of them, rows `stride` apart.
struct Target {
    out: *mut f32,
    stride: usize,
    rows: usize,
    cols: usize,
}

/// The outputs of one group of 16 rows and the panel's weight rows, written to `target`.
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl")]
unsafe fn tile_rows(
    x: &PackedRows,
    group: usize,
    panel: &WeightPanel,
    sums: &mut [Sums; 2],
    target: Target,
) {
    let (span, spans) = (x.span, x.spans);
    let stride = span;
    let codes = x.codes.as_ptr().add(group * spans * TILE * span);
    let scales = x.scales.as_ptr().add(group * x.blocks * TILE);
    let block_sums = x.block_sums.as_ptr().add(group * x.blocks * TILE);
    let has_mins = panel.format.has_mins();
    let mut acc = [_mm512_setzero_ps(); TILE];
    // Spans go two at a time: the tile products of one pair run while the sums of the pair
    // before are scaled, read from the other buffer.
    let pairs = spans.div_ceil(2);
    for pair in 0..=pairs {
        let s = 2 * pair;
        let two = s + 1 < spans;
        if pair < pairs {
            let a0 = codes.add(s * TILE * span);
            let b0 = panel.codes.as_ptr().add(s * span * TILE);
            asm!(
                "tilezero tmm0",
                "tileloadd tmm1, [{a} + {stride}]",
                "tileloadd tmm2, [{b} + {wide}]",
                "tdpbssd tmm0, tmm1, tmm2",
                a = in(reg) a0,
                b = in(reg) b0,
                stride = in(reg) stride,
                wide = in(reg) 4 * TILE,
                options(nostack),
            );
            if two {
                asm!(
                    "tilezero tmm3",
                    "tileloadd tmm4, [{a} + {stride}]",
                    "tileloadd tmm5, [{b} + {wide}]",
                    "tdpbssd tmm3, tmm4, tmm5",
                    a = in(reg) a0.add(TILE * span),
                    b = in(reg) b0.add(span * TILE),
                    stride = in(reg) stride,
                    wide = in(reg) 4 * TILE,
                    options(nostack),
                );
            }
        }
        if pair > 0 {
            let first = s - 2;
            let count = (spans - first).min(2);
            for (i, tile_sums) in sums[(pair - 1) % 2].0.iter().enumerate().take(count) {
                let at = first + i;
                // The activation block this span lies in.
                let block = at * span / BLOCK;
                let w_scale = _mm512_loadu_ps(panel.scales.as_ptr().add(at * TILE));
                // Q4_1's minimum term, once per block.
                let w_min = (has_mins && (at * span) % BLOCK == 0)
                    .then(|| _mm512_loadu_ps(panel.mins.as_ptr().add(block * TILE)));
                for (r, row) in acc.iter_mut().enumerate() {
                    let x_scale = _mm512_set1_ps(*scales.add(block * TILE + r));
                    let scale = _mm512_mul_ps(w_scale, x_scale);
                    let products = _mm512_cvtepi32_ps(_mm512_loadu_si512(
                        tile_sums.as_ptr().add(r * TILE) as *const _,
                    ));
                    *row = _mm512_fmadd_ps(products, scale, *row);
                    if let Some(w_min) = w_min {
                        let x_sum = _mm512_set1_ps(*block_sums.add(block * TILE + r));
                        *row = _mm512_fmadd_ps(w_min, x_sum, *row);
                    }
                }
            }
        }
        if pair < pairs {
            let buffer = &mut sums[pair % 2].0;
            asm!(
                "tilestored [{c} + {wide}], tmm0",
                c = in(reg) buffer[0].as_mut_ptr(),
                wide = in(reg) 4 * TILE,
                options(nostack),
            );
            if two {
                asm!(
                    "tilestored [{c} + {wide}], tmm3",
                    c = in(reg) buffer[1].as_mut_ptr(),
                    wide = in(reg) 4 * TILE,
                    options(nostack),
                );
            }
        }
    }
    let mask: __mmask16 = ((1u32 << target.cols) - 1) as __mmask16;
    for (r, &row) in acc.iter().enumerate().take(target.rows) {
        _mm512_mask_storeu_ps(target.out.add(r * target.stride), mask, row);
    }
}

/// Two tiles of 16 × 16 sums, aligned for `tilestored`.
#[repr(C, align(64))]
struct Sums([[i32; TILE * TILE]; 2]);

/// Sixteen weight rows laid out for the weight tile: per span of values,
/// `[span / 4][16 rows][4 codes]`; and their scales (`[spans][16]`) and Q4_1 minimums
/// (`[blocks][16]`), zero for rows past the matrix's end.
struct WeightPanel {
    format: QuantFormat,
    codes: Vec<i8>,
    scales: Vec<f32>,
    mins: Vec<f32>,
}

impl WeightPanel {
    fn new(format: QuantFormat, k: usize, span: usize) -> Self {
        Self {
            format,
            codes: vec![0; k * TILE],
            scales: vec![0.0; k / span * TILE],
            mins: vec![
                0.0;
                if format.has_mins() {
                    k / BLOCK * TILE
                } else {
                    0
                }
            ],
        }
    }

    /// Lays out weight rows `rows` (at most 16); the rest of the panel becomes zero. Each
    /// word of four codes is gathered from the sixteen rows at once.
    ///
    /// # Safety
    /// The CPU must have AVX-512 F; `rows` must lie within `w`'s rows, and `w` must have the
    /// panel's format and row length.
    #[target_feature(enable = "avx512f")]
    unsafe fn unpack(&mut self, w: &QuantizedBlocks, rows: Range<usize>) {
        let blocks = w.blocks_per_row();
        let (wpb, spb) = (w.format.words_per_block(), w.format.scales_per_block());
        let nibbles = w.format == QuantFormat::Q4_1;
        debug_assert!(rows.len() <= TILE && rows.end <= w.rows && blocks * BLOCK == w.cols);
        let present: __mmask16 = ((1u32 << rows.len()) - 1) as __mmask16;
        let lane = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
        let row_start =
            |per_row: usize| _mm512_mullo_epi32(lane, _mm512_set1_epi32(per_row as i32));
        let (code_rows, scale_rows, min_rows) = (
            row_start(blocks * wpb),
            row_start(blocks * spb),
            row_start(blocks),
        );
        let codes = w.codes.as_ptr().add(rows.start * blocks * wpb) as *const i32;
        let scales = w.scales.as_ptr().add(rows.start * blocks * spb);
        let mins = w.mins.as_ptr().add(rows.start * blocks);
        let panel = self.codes.as_mut_ptr() as *mut i32;
        let low = _mm512_set1_epi32(0x0f0f_0f0f);
        let zero = _mm512_setzero_si512();
        let gather = |index: __m512i, at: usize| {
            let index = _mm512_add_epi32(index, _mm512_set1_epi32(at as i32));
            _mm512_mask_i32gather_epi32::<4>(zero, present, index, codes)
        };
        let gather_floats = |index: __m512i, at: usize, from: *const f32| {
            let index = _mm512_add_epi32(index, _mm512_set1_epi32(at as i32));
            _mm512_mask_i32gather_ps::<4>(_mm512_setzero_ps(), present, index, from)
        };
        for b in 0..blocks {
            // The block's eight words of four codes, `[word][row]`.
            let block_panel = panel.add(b * BLOCK / 4 * TILE);
            for g in 0..wpb {
                let words = gather(code_rows, b * wpb + g);
                if nibbles {
                    // Byte i holds value i in its low nibble and value 16 + i in its high one.
                    let (first, second) = (
                        _mm512_and_si512(words, low),
                        _mm512_and_si512(_mm512_srli_epi32::<4>(words), low),
                    );
                    _mm512_storeu_si512(block_panel.add(g * TILE) as *mut _, first);
                    _mm512_storeu_si512(block_panel.add((4 + g) * TILE) as *mut _, second);
                } else {
                    _mm512_storeu_si512(block_panel.add(g * TILE) as *mut _, words);
                }
            }
            for h in 0..spb {
                let at = (b * spb + h) * TILE;
                let values = gather_floats(scale_rows, b * spb + h, scales);
                _mm512_storeu_ps(self.scales.as_mut_ptr().add(at), values);
            }
            if nibbles {
                let values = gather_floats(min_rows, b, mins);
                _mm512_storeu_ps(self.mins.as_mut_ptr().add(b * TILE), values);
            }
        }
    }
}

//! Weight matrices kept in a block format instead of f32, in a layout the quantized
//! matrix-product kernels read directly.
//!
//! A matrix `[rows, cols]` (Hugging Face order `[out, in]`) is quantized along its rows in
//! blocks of 32 values, as GGUF stores it. Each block keeps its scales (and for Q4_1 its
//! minimum) as f32, and its codes packed into 32-bit words:
//!
//! - Q8_0: 8 words per block; byte `b` of word `w` is the signed code of element `4w + b`;
//!   `x = d·q`.
//! - Q4_1: 4 words per block, GGUF's 16 code bytes in order; byte `b` of word `w` holds element
//!   `4w + b` in its low nibble and element `16 + 4w + b` in its high nibble; `x = d·q + m`.
//! - Q6_K: codes as in Q8_0 (signed, `q − 32` of GGUF's 6-bit codes), two scales per block,
//!   one for each half of 16 values; `x = d_h·q`.
//!
//! GGUF's other block types are held in one of these three without changing a value
//! ([`crate::quantized_gguf`]): Q4_0 and Q5_0 as Q8_0, Q4_K as Q4_1 (scale `d·sc`, minimum
//! `−dmin·m` per sub-block), Q6_K as Q6_K (scale `d·sc` per 16 values). Q8_0 and Q4_1 convert
//! back to the exact GGUF bytes they came from ([`QuantizedBlocks::to_gguf_bytes`]).

use half::f16;

use crate::gguf::dequant::{self, GgmlType, BLOCK};

/// A block format the quantized kernels compute with (named after the GGUF types).
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QuantFormat {
    Q8_0,
    Q4_1,
    Q6_K,
}

impl QuantFormat {
    /// The format that holds a GGUF tensor type's values exactly, if there is one.
    pub fn from_ggml(ty: GgmlType) -> Option<Self> {
        match ty {
            GgmlType::Q8_0 | GgmlType::Q5_0 | GgmlType::Q4_0 => Some(Self::Q8_0),
            GgmlType::Q4_1 | GgmlType::Q4_K => Some(Self::Q4_1),
            GgmlType::Q6_K => Some(Self::Q6_K),
            _ => None,
        }
    }

    /// Packed code words per block of 32 values.
    pub fn words_per_block(self) -> usize {
        match self {
            Self::Q8_0 | Self::Q6_K => 8,
            Self::Q4_1 => 4,
        }
    }

    /// f32 scales per block of 32 values.
    pub fn scales_per_block(self) -> usize {
        match self {
            Self::Q8_0 | Self::Q4_1 => 1,
            Self::Q6_K => 2,
        }
    }

    /// Whether blocks carry a minimum (`x = d·q + m`).
    pub fn has_mins(self) -> bool {
        self == Self::Q4_1
    }

    /// Bytes a `[rows, cols]` matrix holds in this format: its f32 scales and minimums and the
    /// code words of every block.
    pub fn byte_size(self, rows: usize, cols: usize) -> usize {
        let blocks = rows * cols / BLOCK;
        let mins = if self.has_mins() { blocks } else { 0 };
        4 * (blocks * self.scales_per_block() + mins + blocks * self.words_per_block())
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Q8_0 => "q8_0",
            Self::Q4_1 => "q4_1",
            Self::Q6_K => "q6_k",
        }
    }
}

impl std::str::FromStr for QuantFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "q8_0" => Ok(Self::Q8_0),
            "q4_1" => Ok(Self::Q4_1),
            "q6_k" => Ok(Self::Q6_K),
            other => Err(format!(
                "unknown quantization format {other:?} (supported: q8_0, q4_1, q6_k)"
            )),
        }
    }
}

/// Which block format each matrix gets when a model is quantized
/// ([`crate::Transformer::quantize_with`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Quantization {
    /// Every projection and the output head in this format. A matrix the checkpoint already
    /// stores in this format keeps its stored blocks; any other is quantized from its values.
    To(QuantFormat),
    /// Each matrix the checkpoint stores in a block format keeps those blocks as they are;
    /// matrices stored as floats stay f32.
    AsStored,
}

impl Quantization {
    /// The name the command line takes: a format's (`q8_0`, `q4_1`, `q6_k`) or `stored`.
    pub fn name(self) -> &'static str {
        match self {
            Self::To(format) => format.name(),
            Self::AsStored => "stored",
        }
    }
}

impl std::str::FromStr for Quantization {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if s.eq_ignore_ascii_case("stored") {
            return Ok(Self::AsStored);
        }
        s.parse::<QuantFormat>().map(Self::To).map_err(|_| {
            format!("unknown quantization {s:?} (supported: q8_0, q4_1, q6_k, stored)")
        })
    }
}

/// Why a matrix cannot be held in a block format.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantizeError {
    #[error("a quantized matrix needs rows of a multiple of {block} values, got {cols}")]
    PartialBlock { cols: usize, block: usize },
    #[error("{} data for a {rows}×{cols} matrix is {expected} bytes, got {actual}", ty.name())]
    WrongLength {
        ty: GgmlType,
        rows: usize,
        cols: usize,
        expected: usize,
        actual: usize,
    },
    #[error("block {block} has a non-finite scale or minimum")]
    NonFiniteScale { block: usize },
}

/// A `[rows, cols]` matrix in a block format (see the module documentation for the layout).
#[derive(Debug, Clone, PartialEq)]
pub struct QuantizedBlocks {
    pub format: QuantFormat,
    pub rows: usize,
    pub cols: usize,
    /// `[rows, cols / 32 · scales_per_block]`.
    pub scales: Vec<f32>,
    /// `[rows, cols / 32]` for Q4_1; empty for Q8_0.
    pub mins: Vec<f32>,
    /// `[rows, cols / 32 · words_per_block]`.
    pub codes: Vec<u32>,
}

impl QuantizedBlocks {
    /// Blocks per row.
    pub fn blocks_per_row(&self) -> usize {
        self.cols / BLOCK
    }

    /// Bytes held (scales, minimums and codes).
    pub fn byte_size(&self) -> usize {
        self.format.byte_size(self.rows, self.cols)
    }

    /// Quantizes a row-major `[rows, cols]` f32 matrix: Q8_0 and Q4_1 as GGUF would (scales
    /// rounded to f16), Q6_K with an f32 scale `max|x|/31` per 16 values and codes in −32..=31.
    pub fn quantize(
        format: QuantFormat,
        values: &[f32],
        rows: usize,
        cols: usize,
    ) -> Result<Self, QuantizeError> {
        if !cols.is_multiple_of(BLOCK) {
            return Err(QuantizeError::PartialBlock { cols, block: BLOCK });
        }
        assert_eq!(values.len(), rows * cols, "values hold rows·cols entries");
        let (ty, bytes) = match format {
            QuantFormat::Q8_0 => (GgmlType::Q8_0, dequant::quantize_q8_0(values)),
            QuantFormat::Q4_1 => (GgmlType::Q4_1, dequant::quantize_q4_1(values)),
            QuantFormat::Q6_K => return Ok(quantize_in_16s(values, rows, cols)),
        };
        Ok(Self::from_gguf(ty, &bytes, rows, cols)?.expect("Q8_0 and Q4_1 are held as they are"))
    }

    /// The value at `(row, col)`, decoded from its block's words one element at a time (the slow
    /// definition the kernels are tested against).
    pub fn value(&self, row: usize, col: usize) -> f32 {
        let b = row * self.blocks_per_row() + col / BLOCK;
        let i = col % BLOCK;
        let words = &self.codes[b * self.format.words_per_block()..];
        let byte = |at: usize| words[at / 4].to_le_bytes()[at % 4];
        match self.format {
            QuantFormat::Q8_0 => self.scales[b] * f32::from(byte(i) as i8),
            QuantFormat::Q6_K => self.scales[2 * b + i / 16] * f32::from(byte(i) as i8),
            QuantFormat::Q4_1 => {
                let q = if i < 16 {
                    byte(i) & 0x0f
                } else {
                    byte(i - 16) >> 4
                };
                self.scales[b] * f32::from(q) + self.mins[b]
            }
        }
    }

    /// The matrix whose row `i` is row `source_rows[i]` of this one (blocks run along rows, so
    /// rows move whole).
    ///
    /// # Panics
    /// If `source_rows` does not name `rows` rows that exist.
    pub fn with_rows_from(&self, source_rows: &[usize]) -> Self {
        assert_eq!(source_rows.len(), self.rows, "one source row per row");
        let per_row = |v: &Vec<f32>| v.len() / self.rows.max(1);
        let gather = |v: &Vec<f32>| -> Vec<f32> {
            let n = per_row(v);
            source_rows
                .iter()
                .flat_map(|&r| v[r * n..(r + 1) * n].iter().copied())
                .collect()
        };
        let words = self.codes.len() / self.rows.max(1);
        Self {
            format: self.format,
            rows: self.rows,
            cols: self.cols,
            scales: gather(&self.scales),
            mins: gather(&self.mins),
            codes: source_rows
                .iter()
                .flat_map(|&r| self.codes[r * words..(r + 1) * words].iter().copied())
                .collect(),
        }
    }

    /// The GGUF block bytes of a Q8_0 or Q4_1 matrix (`None` for Q6_K, whose per-16 scales
    /// have no GGUF block of their own).
    pub fn to_gguf_bytes(&self) -> Option<Vec<u8>> {
        if self.format == QuantFormat::Q6_K {
            return None;
        }
        let wpb = self.format.words_per_block();
        let mut out = Vec::with_capacity(self.scales.len() * (2 + 2 + 4 * wpb));
        for (b, &d) in self.scales.iter().enumerate() {
            out.extend_from_slice(&f16::from_f32(d).to_le_bytes());
            if self.format == QuantFormat::Q4_1 {
                out.extend_from_slice(&f16::from_f32(self.mins[b]).to_le_bytes());
            }
            for w in &self.codes[b * wpb..(b + 1) * wpb] {
                out.extend_from_slice(&w.to_le_bytes());
            }
        }
        Some(out)
    }

    /// The values as a row-major `[rows, cols]` f32 matrix.
    pub fn dequantize(&self) -> Vec<f32> {
        self.dequantize_rows(0..self.rows)
    }

    /// Rows `rows` of the matrix in f32, row-major `[rows.len(), cols]`.
    pub fn dequantize_rows(&self, rows: std::ops::Range<usize>) -> Vec<f32> {
        let mut out = vec![0.0f32; rows.len() * self.cols];
        let first = rows.start * self.blocks_per_row();
        for (b, block) in out.chunks_exact_mut(BLOCK).enumerate() {
            let block: &mut [f32; BLOCK] = block.try_into().expect("chunks of one block");
            self.dequantize_block(first + b, block);
        }
        out
    }

    /// Block `b` (row-major over all blocks) into `out`.
    pub fn dequantize_block(&self, b: usize, out: &mut [f32; BLOCK]) {
        let wpb = self.format.words_per_block();
        let words = &self.codes[b * wpb..(b + 1) * wpb];
        match self.format {
            QuantFormat::Q8_0 => unpack_q8_0(words, self.scales[b], out),
            QuantFormat::Q4_1 => unpack_q4_1(words, self.scales[b], self.mins[b], out),
            QuantFormat::Q6_K => unpack_q6_k(words, &self.scales[2 * b..2 * b + 2], out),
        }
    }
}

/// Q6_K from f32 values: per 16 values an f32 scale `max|x| / 31`, codes `round(x / d)` in
/// −32..=31, packed as Q8_0's are.
fn quantize_in_16s(values: &[f32], rows: usize, cols: usize) -> QuantizedBlocks {
    let mut scales = Vec::with_capacity(values.len() / 16);
    let mut bytes = Vec::with_capacity(values.len());
    for group in values.chunks(16) {
        let d = group.iter().fold(0.0f32, |a, &v| a.max(v.abs())) / 31.0;
        let inv = if d == 0.0 { 0.0 } else { 1.0 / d };
        scales.push(d);
        bytes.extend(
            group
                .iter()
                .map(|&v| (v * inv).round().clamp(-32.0, 31.0) as i8 as u8),
        );
    }
    QuantizedBlocks {
        format: QuantFormat::Q6_K,
        rows,
        cols,
        scales,
        mins: Vec::new(),
        codes: bytes
            .chunks_exact(4)
            .map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]]))
            .collect(),
    }
}

/// One Q8_0 block (8 words, scale `d`) as its values `d·q`.
#[inline(always)]
pub(crate) fn unpack_q8_0(words: &[u32], d: f32, out: &mut [f32; BLOCK]) {
    for (w, word) in words.iter().enumerate() {
        for (i, byte) in word.to_le_bytes().into_iter().enumerate() {
            out[4 * w + i] = d * f32::from(byte as i8);
        }
    }
}

/// One Q6_K block (8 words, a scale for each half of 16 values) as its values `d_h·q`.
#[inline(always)]
pub(crate) fn unpack_q6_k(words: &[u32], d: &[f32], out: &mut [f32; BLOCK]) {
    for (w, word) in words.iter().enumerate() {
        let d = d[w / 4];
        for (i, byte) in word.to_le_bytes().into_iter().enumerate() {
            out[4 * w + i] = d * f32::from(byte as i8);
        }
    }
}

/// One Q4_1 block (4 words, scale `d`, minimum `m`) as its values `d·q + m`: low nibbles
/// first, then high nibbles.
#[inline(always)]
pub(crate) fn unpack_q4_1(words: &[u32], d: f32, m: f32, out: &mut [f32; BLOCK]) {
    for (w, word) in words.iter().enumerate() {
        for (i, byte) in word.to_le_bytes().into_iter().enumerate() {
            out[4 * w + i] = d * f32::from(byte & 0x0f) + m;
            out[16 + 4 * w + i] = d * f32::from(byte >> 4) + m;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn random(n: usize, seed: u64) -> Vec<f32> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        (0..n).map(|_| rng.random_range(-1.5f32..1.0)).collect()
    }

    const FORMATS: [QuantFormat; 3] = [QuantFormat::Q8_0, QuantFormat::Q4_1, QuantFormat::Q6_K];

    #[test]
    fn packing_agrees_with_the_gguf_definition_and_round_trips_its_bytes() {
        for (format, ty) in [
            (QuantFormat::Q8_0, GgmlType::Q8_0),
            (QuantFormat::Q4_1, GgmlType::Q4_1),
        ] {
            let (rows, cols) = (5, 96);
            let q = QuantizedBlocks::quantize(format, &random(rows * cols, 1), rows, cols)
                .expect("whole blocks");
            let bytes = q.to_gguf_bytes().expect("a GGUF format");
            let reference = dequant::dequantize_reference(ty, &bytes, rows * cols);
            assert_eq!(q.dequantize(), reference, "{format:?}");
            let again = QuantizedBlocks::from_gguf(ty, &bytes, rows, cols).unwrap();
            assert_eq!(again, Some(q.clone()));
            assert_eq!(
                q.byte_size(),
                4 * (q.scales.len() + q.mins.len() + q.codes.len())
            );
        }
    }

    #[test]
    fn the_slow_accessor_agrees_with_block_unpacking() {
        for format in FORMATS {
            let (rows, cols) = (3, 64);
            let q = QuantizedBlocks::quantize(format, &random(rows * cols, 5), rows, cols).unwrap();
            let values = q.dequantize();
            for r in 0..rows {
                for c in 0..cols {
                    assert_eq!(q.value(r, c), values[r * cols + c], "{format:?} ({r}, {c})");
                }
            }
            assert_eq!(
                q.byte_size(),
                4 * (q.scales.len() + q.mins.len() + q.codes.len())
            );
        }
    }

    #[test]
    fn quantization_error_is_within_half_a_step() {
        for format in FORMATS {
            let values = random(4 * 64, 2);
            let q = QuantizedBlocks::quantize(format, &values, 4, 64).unwrap();
            let back = q.dequantize();
            let spb = format.scales_per_block();
            let group = BLOCK / spb;
            for (b, (orig, got)) in values.chunks(group).zip(back.chunks(group)).enumerate() {
                // One quantization step, plus the f16 rounding of the scale and minimum.
                let step = q.scales[b].abs() * 1.01 + 1e-3;
                for (x, y) in orig.iter().zip(got) {
                    assert!((x - y).abs() <= step, "{format:?} block {b}: {x} vs {y}");
                }
            }
        }
    }

    #[test]
    fn moving_rows_moves_their_values() {
        for format in FORMATS {
            let (rows, cols) = (3, 64);
            let q = QuantizedBlocks::quantize(format, &random(rows * cols, 3), rows, cols).unwrap();
            let moved = q.with_rows_from(&[2, 0, 2]);
            let (before, after) = (q.dequantize(), moved.dequantize());
            for (i, src) in [2, 0, 2].into_iter().enumerate() {
                assert_eq!(
                    after[i * cols..(i + 1) * cols],
                    before[src * cols..(src + 1) * cols],
                    "{format:?} row {i}"
                );
            }
        }
    }

    #[test]
    fn quantization_names_parse() {
        assert_eq!("stored".parse::<Quantization>(), Ok(Quantization::AsStored));
        assert_eq!(
            "q8_0".parse::<Quantization>(),
            Ok(Quantization::To(QuantFormat::Q8_0))
        );
        let err = "q2_k".parse::<Quantization>().unwrap_err();
        assert!(err.contains("q2_k") && err.contains("stored"), "{err}");
    }

    #[test]
    fn bad_inputs_are_refused() {
        assert_eq!(
            QuantizedBlocks::quantize(QuantFormat::Q8_0, &[0.0; 40], 1, 40),
            Err(QuantizeError::PartialBlock {
                cols: 40,
                block: BLOCK
            })
        );
        assert!("q5_k".parse::<QuantFormat>().is_err());
        assert_eq!("Q4_1".parse::<QuantFormat>(), Ok(QuantFormat::Q4_1));
    }
}

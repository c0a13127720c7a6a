//! Weight matrices kept in a GGUF block format (Q8_0, Q4_1) instead of f32, in a layout the
//! quantized matrix-product kernels read directly.
//!
//! A matrix `[rows, cols]` (Hugging Face order `[out, in]`) is quantized along its rows in
//! blocks of 32 values, as GGUF stores it. Each block keeps its scale (and for Q4_1 its minimum)
//! as f32, and its codes packed into 32-bit words:
//!
//! - Q8_0: 8 words per block; byte `b` of word `w` is the signed code of element `4w + b`;
//!   `x = d·q`.
//! - Q4_1: 4 words per block, GGUF's 16 code bytes in order; byte `b` of word `w` holds element
//!   `4w + b` in its low nibble and element `16 + 4w + b` in its high nibble; `x = d·q + m`.
//!
//! The scales come from GGUF's f16 fields, so a matrix converts back to the exact GGUF bytes it
//! came from ([`QuantizedBlocks::to_gguf_bytes`]); the definition of the values is GGUF's
//! ([`crate::gguf::dequant`]).

use half::f16;

use crate::gguf::dequant::{self, GgmlType, BLOCK};

/// A GGUF block format the quantized kernels compute with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QuantFormat {
    Q8_0,
    Q4_1,
}

impl QuantFormat {
    /// The format of a GGUF tensor type, if it is one of ours.
    pub fn from_ggml(ty: GgmlType) -> Option<Self> {
        match ty {
            GgmlType::Q8_0 => Some(Self::Q8_0),
            GgmlType::Q4_1 => Some(Self::Q4_1),
            _ => None,
        }
    }

    pub fn ggml(self) -> GgmlType {
        match self {
            Self::Q8_0 => GgmlType::Q8_0,
            Self::Q4_1 => GgmlType::Q4_1,
        }
    }

    /// Packed code words per block of 32 values.
    pub fn words_per_block(self) -> usize {
        match self {
            Self::Q8_0 => 8,
            Self::Q4_1 => 4,
        }
    }

    /// Bytes a `[rows, cols]` matrix holds in this format: an f32 scale (and for Q4_1 an f32
    /// minimum) and the code words of every block.
    pub fn byte_size(self, rows: usize, cols: usize) -> usize {
        let blocks = rows * cols / BLOCK;
        let mins = if self == Self::Q4_1 { blocks } else { 0 };
        4 * (blocks + mins + blocks * self.words_per_block())
    }

    /// Bytes of one GGUF block.
    fn gguf_block_bytes(self) -> usize {
        match self {
            Self::Q8_0 => 34,
            Self::Q4_1 => 20,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Q8_0 => "q8_0",
            Self::Q4_1 => "q4_1",
        }
    }
}

impl std::str::FromStr for QuantFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "q8_0" => Ok(Self::Q8_0),
            "q4_1" => Ok(Self::Q4_1),
            other => Err(format!(
                "unknown quantization format {other:?} (supported: q8_0, q4_1)"
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
    /// The name the command line takes: a format's (`q8_0`, `q4_1`) or `stored`.
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
        s.parse::<QuantFormat>()
            .map(Self::To)
            .map_err(|_| format!("unknown quantization {s:?} (supported: q8_0, q4_1, stored)"))
    }
}

/// Why a matrix cannot be held in a block format.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantizeError {
    #[error("a quantized matrix needs rows of a multiple of {BLOCK} values, got {cols}")]
    PartialBlock { cols: usize },
    #[error("{format:?} data for a {rows}×{cols} matrix is {expected} bytes, got {actual}")]
    WrongLength {
        format: QuantFormat,
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
    /// `[rows, cols / 32]`.
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

    /// Reads GGUF block data of a `[rows, cols]` tensor (GGUF dims `[cols, rows]`).
    pub fn from_gguf_bytes(
        format: QuantFormat,
        bytes: &[u8],
        rows: usize,
        cols: usize,
    ) -> Result<Self, QuantizeError> {
        if !cols.is_multiple_of(BLOCK) {
            return Err(QuantizeError::PartialBlock { cols });
        }
        let blocks = rows * cols / BLOCK;
        let expected = blocks * format.gguf_block_bytes();
        if bytes.len() != expected {
            return Err(QuantizeError::WrongLength {
                format,
                rows,
                cols,
                expected,
                actual: bytes.len(),
            });
        }
        let half = |b: &[u8]| f16::from_le_bytes([b[0], b[1]]).to_f32();
        let mut out = Self {
            format,
            rows,
            cols,
            scales: Vec::with_capacity(blocks),
            mins: Vec::new(),
            codes: Vec::with_capacity(blocks * format.words_per_block()),
        };
        let code_bytes = match format {
            QuantFormat::Q8_0 => 2,
            QuantFormat::Q4_1 => 4,
        };
        for (i, block) in bytes.chunks_exact(format.gguf_block_bytes()).enumerate() {
            let d = half(block);
            if !d.is_finite() {
                return Err(QuantizeError::NonFiniteScale { block: i });
            }
            out.scales.push(d);
            if format == QuantFormat::Q4_1 {
                let m = half(&block[2..]);
                if !m.is_finite() {
                    return Err(QuantizeError::NonFiniteScale { block: i });
                }
                out.mins.push(m);
            }
            out.codes.extend(
                block[code_bytes..]
                    .chunks_exact(4)
                    .map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]])),
            );
        }
        Ok(out)
    }

    /// Quantizes a row-major `[rows, cols]` f32 matrix as GGUF would (scales rounded to f16).
    pub fn quantize(
        format: QuantFormat,
        values: &[f32],
        rows: usize,
        cols: usize,
    ) -> Result<Self, QuantizeError> {
        if !cols.is_multiple_of(BLOCK) {
            return Err(QuantizeError::PartialBlock { cols });
        }
        assert_eq!(values.len(), rows * cols, "values hold rows·cols entries");
        let bytes = match format {
            QuantFormat::Q8_0 => dequant::quantize_q8_0(values),
            QuantFormat::Q4_1 => dequant::quantize_q4_1(values),
        };
        Self::from_gguf_bytes(format, &bytes, rows, cols)
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

    /// The GGUF block bytes of this matrix.
    pub fn to_gguf_bytes(&self) -> Vec<u8> {
        let wpb = self.format.words_per_block();
        let mut out = Vec::with_capacity(self.scales.len() * self.format.gguf_block_bytes());
        for (b, &d) in self.scales.iter().enumerate() {
            out.extend_from_slice(&f16::from_f32(d).to_le_bytes());
            if self.format == QuantFormat::Q4_1 {
                out.extend_from_slice(&f16::from_f32(self.mins[b]).to_le_bytes());
            }
            for w in &self.codes[b * wpb..(b + 1) * wpb] {
                out.extend_from_slice(&w.to_le_bytes());
            }
        }
        out
    }

    /// The values as a row-major `[rows, cols]` f32 matrix.
    pub fn dequantize(&self) -> Vec<f32> {
        let mut out = vec![0.0f32; self.rows * self.cols];
        for (b, block) in out.chunks_exact_mut(BLOCK).enumerate() {
            let block: &mut [f32; BLOCK] = block.try_into().expect("chunks of one block");
            self.dequantize_block(b, block);
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
        }
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

    #[test]
    fn packing_agrees_with_the_gguf_definition_and_round_trips_its_bytes() {
        for format in [QuantFormat::Q8_0, QuantFormat::Q4_1] {
            let (rows, cols) = (5, 96);
            let q = QuantizedBlocks::quantize(format, &random(rows * cols, 1), rows, cols)
                .expect("whole blocks");
            let bytes = q.to_gguf_bytes();
            let reference = dequant::dequantize_reference(format.ggml(), &bytes, rows * cols);
            assert_eq!(q.dequantize(), reference, "{format:?}");
            let again = QuantizedBlocks::from_gguf_bytes(format, &bytes, rows, cols).unwrap();
            assert_eq!(again, q);
            assert_eq!(
                q.byte_size(),
                4 * (q.scales.len() + q.mins.len() + q.codes.len())
            );
        }
    }

    #[test]
    fn quantization_error_is_within_half_a_step() {
        for format in [QuantFormat::Q8_0, QuantFormat::Q4_1] {
            let values = random(4 * 64, 2);
            let q = QuantizedBlocks::quantize(format, &values, 4, 64).unwrap();
            let back = q.dequantize();
            for (b, (orig, got)) in values.chunks(BLOCK).zip(back.chunks(BLOCK)).enumerate() {
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
        for format in [QuantFormat::Q8_0, QuantFormat::Q4_1] {
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
            Err(QuantizeError::PartialBlock { cols: 40 })
        );
        assert!(matches!(
            QuantizedBlocks::from_gguf_bytes(QuantFormat::Q4_1, &[0u8; 39], 1, 64),
            Err(QuantizeError::WrongLength { expected: 40, .. })
        ));
        let mut bytes = vec![0u8; 34];
        bytes[..2].copy_from_slice(&f16::INFINITY.to_le_bytes());
        assert_eq!(
            QuantizedBlocks::from_gguf_bytes(QuantFormat::Q8_0, &bytes, 1, 32),
            Err(QuantizeError::NonFiniteScale { block: 0 })
        );
        assert!("q5_k".parse::<QuantFormat>().is_err());
        assert_eq!("Q4_1".parse::<QuantFormat>(), Ok(QuantFormat::Q4_1));
    }
}

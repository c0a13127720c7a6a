//! Dequantization of GGUF tensor data to f32: F32, F16, BF16 and the 32-element block formats
//! Q8_0, Q4_0 and Q4_1. Each block format has a scalar reference (`*_reference`) written
//! element by element from the format's definition, and the fast path used at load time.

use half::{bf16, f16};

/// GGUF tensor element types this crate understands (numbering from the GGUF specification).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GgmlType {
    F32,
    F16,
    Q4_0,
    Q4_1,
    Q8_0,
    BF16,
    /// A type defined by GGUF that this crate cannot dequantize (its number and name).
    Other(u32, &'static str),
}

/// Elements per quantization block.
pub const BLOCK: usize = 32;

impl GgmlType {
    pub fn from_id(id: u32) -> Self {
        match id {
            0 => Self::F32,
            1 => Self::F16,
            2 => Self::Q4_0,
            3 => Self::Q4_1,
            8 => Self::Q8_0,
            30 => Self::BF16,
            6 => Self::Other(id, "Q5_0"),
            7 => Self::Other(id, "Q5_1"),
            9 => Self::Other(id, "Q8_1"),
            10 => Self::Other(id, "Q2_K"),
            11 => Self::Other(id, "Q3_K"),
            12 => Self::Other(id, "Q4_K"),
            13 => Self::Other(id, "Q5_K"),
            14 => Self::Other(id, "Q6_K"),
            15 => Self::Other(id, "Q8_K"),
            _ => Self::Other(id, "unknown"),
        }
    }

    pub fn name(self) -> String {
        match self {
            Self::F32 => "F32".into(),
            Self::F16 => "F16".into(),
            Self::Q4_0 => "Q4_0".into(),
            Self::Q4_1 => "Q4_1".into(),
            Self::Q8_0 => "Q8_0".into(),
            Self::BF16 => "BF16".into(),
            Self::Other(id, name) => format!("{name} (type {id})"),
        }
    }

    /// Bytes needed for `numel` elements, or `None` for unsupported types or a partial block.
    pub fn byte_size(self, numel: usize) -> Option<usize> {
        let blocks = |bytes_per_block: usize| {
            numel
                .is_multiple_of(BLOCK)
                .then_some(numel / BLOCK * bytes_per_block)
        };
        match self {
            Self::F32 => Some(numel * 4),
            Self::F16 | Self::BF16 => Some(numel * 2),
            Self::Q4_0 => blocks(18),
            Self::Q4_1 => blocks(20),
            Self::Q8_0 => blocks(34),
            Self::Other(..) => None,
        }
    }
}

/// Dequantizes `bytes` (exactly `ty.byte_size(numel)` long) into f32.
pub fn dequantize(ty: GgmlType, bytes: &[u8], numel: usize) -> Option<Vec<f32>> {
    if ty.byte_size(numel)? != bytes.len() {
        return None;
    }
    Some(match ty {
        GgmlType::F32 => bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        GgmlType::F16 => bytes
            .chunks_exact(2)
            .map(|c| f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        GgmlType::BF16 => bytes
            .chunks_exact(2)
            .map(|c| bf16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        GgmlType::Q8_0 => dequantize_q8_0(bytes),
        GgmlType::Q4_0 => dequantize_q4_0(bytes),
        GgmlType::Q4_1 => dequantize_q4_1(bytes),
        GgmlType::Other(..) => return None,
    })
}

fn scale(bytes: &[u8]) -> f32 {
    f16::from_le_bytes([bytes[0], bytes[1]]).to_f32()
}

/// Q8_0: per block an f16 scale `d` then 32 signed bytes; `x = d·q`.
pub fn dequantize_q8_0(bytes: &[u8]) -> Vec<f32> {
    let mut out = Vec::with_capacity(bytes.len() / 34 * BLOCK);
    for block in bytes.chunks_exact(34) {
        let d = scale(block);
        out.extend(block[2..].iter().map(|&q| d * f32::from(q as i8)));
    }
    out
}

/// Q4_0: per block an f16 scale `d` then 16 bytes of nibbles; the low nibbles are elements
/// 0..16 and the high nibbles 16..32; `x = d·(q − 8)`.
pub fn dequantize_q4_0(bytes: &[u8]) -> Vec<f32> {
    let mut out = vec![0.0f32; bytes.len() / 18 * BLOCK];
    for (block, dst) in bytes.chunks_exact(18).zip(out.chunks_exact_mut(BLOCK)) {
        let d = scale(block);
        let (lo, hi) = dst.split_at_mut(16);
        for (j, &q) in block[2..].iter().enumerate() {
            lo[j] = d * (f32::from(q & 0x0f) - 8.0);
            hi[j] = d * (f32::from(q >> 4) - 8.0);
        }
    }
    out
}

/// Q4_1: per block an f16 scale `d`, an f16 minimum `m`, then 16 bytes of nibbles laid out as
/// in Q4_0; `x = d·q + m`.
pub fn dequantize_q4_1(bytes: &[u8]) -> Vec<f32> {
    let mut out = vec![0.0f32; bytes.len() / 20 * BLOCK];
    for (block, dst) in bytes.chunks_exact(20).zip(out.chunks_exact_mut(BLOCK)) {
        let d = scale(block);
        let m = scale(&block[2..4]);
        let (lo, hi) = dst.split_at_mut(16);
        for (j, &q) in block[4..].iter().enumerate() {
            lo[j] = d * f32::from(q & 0x0f) + m;
            hi[j] = d * f32::from(q >> 4) + m;
        }
    }
    out
}

/// Element-at-a-time reference for the block formats: element `i` of block `b` computed
/// directly from the byte that holds it.
pub fn dequantize_reference(ty: GgmlType, bytes: &[u8], numel: usize) -> Vec<f32> {
    (0..numel)
        .map(|i| {
            let (b, k) = (i / BLOCK, i % BLOCK);
            match ty {
                GgmlType::Q8_0 => {
                    let blk = &bytes[b * 34..];
                    scale(blk) * f32::from(blk[2 + k] as i8)
                }
                GgmlType::Q4_0 => {
                    let blk = &bytes[b * 18..];
                    let byte = blk[2 + k % 16];
                    let nibble = if k < 16 { byte & 0x0f } else { byte >> 4 };
                    scale(blk) * (f32::from(nibble) - 8.0)
                }
                GgmlType::Q4_1 => {
                    let blk = &bytes[b * 20..];
                    let byte = blk[4 + k % 16];
                    let nibble = if k < 16 { byte & 0x0f } else { byte >> 4 };
                    scale(blk) * f32::from(nibble) + scale(&blk[2..4])
                }
                _ => panic!("dequantize_reference covers block formats only"),
            }
        })
        .collect()
}

/// Quantizes f32 values to Q8_0 (used by tests and by writers of small GGUF files).
pub fn quantize_q8_0(values: &[f32]) -> Vec<u8> {
    let mut out = Vec::new();
    for block in values.chunks(BLOCK) {
        let amax = block.iter().fold(0.0f32, |a, &v| a.max(v.abs()));
        let d = amax / 127.0;
        let inv = if d == 0.0 { 0.0 } else { 1.0 / d };
        out.extend_from_slice(&f16::from_f32(d).to_le_bytes());
        out.extend(
            block
                .iter()
                .map(|&v| (v * inv).round().clamp(-127.0, 127.0) as i8 as u8),
        );
    }
    out
}

/// Quantizes f32 values to Q4_1: per block `d = (max − min) / 15` and `m = min`, both rounded
/// to f16, codes `round((x − m) / d)` clamped to 0..=15.
pub fn quantize_q4_1(values: &[f32]) -> Vec<u8> {
    let mut out = Vec::new();
    for block in values.chunks(BLOCK) {
        let lo = block.iter().copied().fold(f32::INFINITY, f32::min);
        let hi = block.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let d = f16::from_f32((hi - lo) / 15.0);
        let m = f16::from_f32(lo);
        let (df, mf) = (d.to_f32(), m.to_f32());
        let inv = if df == 0.0 { 0.0 } else { 1.0 / df };
        let code = |x: f32| ((x - mf) * inv).round().clamp(0.0, 15.0) as u8;
        out.extend_from_slice(&d.to_le_bytes());
        out.extend_from_slice(&m.to_le_bytes());
        let mut codes = [0u8; BLOCK];
        for (c, &x) in codes.iter_mut().zip(block) {
            *c = code(x);
        }
        out.extend((0..16).map(|j| codes[j] | (codes[j + 16] << 4)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        (0..len).map(|_| rng.random()).collect()
    }

    /// Random bytes, with every block's f16 scales replaced by finite values.
    fn random_blocks(ty: GgmlType, blocks: usize, seed: u64) -> Vec<u8> {
        let bytes_per = ty.byte_size(BLOCK).unwrap();
        let mut bytes = random_bytes(blocks * bytes_per, seed);
        let n_scales = if ty == GgmlType::Q4_1 { 2 } else { 1 };
        for (b, block) in bytes.chunks_exact_mut(bytes_per).enumerate() {
            for s in 0..n_scales {
                let v = f16::from_f32(0.01 * (b as f32 + 1.0) * if s == 0 { 1.0 } else { -0.5 });
                block[2 * s..2 * s + 2].copy_from_slice(&v.to_le_bytes());
            }
        }
        bytes
    }

    #[test]
    fn block_formats_match_the_reference_on_random_data() {
        for ty in [GgmlType::Q8_0, GgmlType::Q4_0, GgmlType::Q4_1] {
            for blocks in [1, 3, 17] {
                let bytes = random_blocks(ty, blocks, blocks as u64);
                let numel = blocks * BLOCK;
                let fast = dequantize(ty, &bytes, numel).unwrap();
                let slow = dequantize_reference(ty, &bytes, numel);
                assert_eq!(fast, slow, "{ty:?} with {blocks} blocks");
            }
        }
    }

    #[test]
    fn q4_1_known_block() {
        let mut block = Vec::new();
        block.extend_from_slice(&f16::from_f32(0.5).to_le_bytes());
        block.extend_from_slice(&f16::from_f32(-1.0).to_le_bytes());
        block.extend(std::iter::repeat_n(0x21u8, 16)); // low nibble 1, high nibble 2
        let x = dequantize_q4_1(&block);
        assert_eq!(x[0], -0.5);
        assert_eq!(x[16], 0.0);
    }

    #[test]
    fn q8_0_round_trip_is_close() {
        let values: Vec<f32> = (0..64).map(|i| (i as f32 - 30.0) / 7.0).collect();
        let back = dequantize_q8_0(&quantize_q8_0(&values));
        for (a, b) in values.iter().zip(&back) {
            assert!((a - b).abs() < 0.04, "{a} vs {b}");
        }
    }

    #[test]
    fn wrong_lengths_and_unknown_types_are_refused() {
        assert!(dequantize(GgmlType::Q8_0, &[0u8; 33], 32).is_none());
        assert!(dequantize(GgmlType::Q4_0, &[0u8; 18], 31).is_none());
        assert!(dequantize(GgmlType::from_id(14), &[0u8; 210], 256).is_none());
        assert_eq!(GgmlType::from_id(14).name(), "Q6_K (type 14)");
    }
}

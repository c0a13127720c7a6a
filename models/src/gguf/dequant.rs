//! Dequantization of GGUF tensor data to f32: F32, F16, BF16, the 32-element block formats
//! Q8_0, Q4_0, Q4_1, Q5_0 and Q5_1, and the 256-element K-quant super-blocks Q4_K, Q5_K and Q6_K
//! ([`super::dequant_k`]). Every block format has an element-at-a-time reference
//! ([`dequantize_reference`]) written from the format's definition, beside the block-at-a-time
//! fast path used at load time.

use half::{bf16, f16};

use super::dequant_k;

/// GGUF tensor element types this crate understands (numbering from the GGUF specification),
/// named as GGUF names them.
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GgmlType {
    F32,
    F16,
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
    Q8_0,
    Q4_K,
    Q5_K,
    Q6_K,
    BF16,
    /// A type defined by GGUF that this crate cannot dequantize (its number and name).
    Other(u32, &'static str),
}

/// Elements per quantization block of the 32-element formats (and per sub-block of the
/// K-quants, as the runtime kernels see them).
pub const BLOCK: usize = 32;

/// Elements per K-quant super-block.
pub const SUPER_BLOCK: usize = 256;

impl GgmlType {
    pub fn from_id(id: u32) -> Self {
        match id {
            0 => Self::F32,
            1 => Self::F16,
            2 => Self::Q4_0,
            3 => Self::Q4_1,
            6 => Self::Q5_0,
            7 => Self::Q5_1,
            8 => Self::Q8_0,
            12 => Self::Q4_K,
            13 => Self::Q5_K,
            14 => Self::Q6_K,
            30 => Self::BF16,
            9 => Self::Other(id, "Q8_1"),
            10 => Self::Other(id, "Q2_K"),
            11 => Self::Other(id, "Q3_K"),
            15 => Self::Other(id, "Q8_K"),
            _ => Self::Other(id, "unknown"),
        }
    }

    /// The type's number in the GGUF specification.
    pub fn id(self) -> u32 {
        match self {
            Self::F32 => 0,
            Self::F16 => 1,
            Self::Q4_0 => 2,
            Self::Q4_1 => 3,
            Self::Q5_0 => 6,
            Self::Q5_1 => 7,
            Self::Q8_0 => 8,
            Self::Q4_K => 12,
            Self::Q5_K => 13,
            Self::Q6_K => 14,
            Self::BF16 => 30,
            Self::Other(id, _) => id,
        }
    }

    pub fn name(self) -> String {
        let plain = match self {
            Self::F32 => "F32",
            Self::F16 => "F16",
            Self::Q4_0 => "Q4_0",
            Self::Q4_1 => "Q4_1",
            Self::Q5_0 => "Q5_0",
            Self::Q5_1 => "Q5_1",
            Self::Q8_0 => "Q8_0",
            Self::Q4_K => "Q4_K",
            Self::Q5_K => "Q5_K",
            Self::Q6_K => "Q6_K",
            Self::BF16 => "BF16",
            Self::Other(id, name) => return format!("{name} (type {id})"),
        };
        plain.into()
    }

    /// `(elements, bytes)` of one block, or `None` for a type this crate cannot read. Plain
    /// floats count as blocks of one element.
    pub fn block_layout(self) -> Option<(usize, usize)> {
        Some(match self {
            Self::F32 => (1, 4),
            Self::F16 | Self::BF16 => (1, 2),
            Self::Q4_0 => (BLOCK, 18),
            Self::Q4_1 => (BLOCK, 20),
            Self::Q5_0 => (BLOCK, 22),
            Self::Q5_1 => (BLOCK, 24),
            Self::Q8_0 => (BLOCK, 34),
            Self::Q4_K => (SUPER_BLOCK, 144),
            Self::Q5_K => (SUPER_BLOCK, 176),
            Self::Q6_K => (SUPER_BLOCK, 210),
            Self::Other(..) => return None,
        })
    }

    /// Bytes needed for `numel` elements, or `None` for unsupported types or a partial block.
    pub fn byte_size(self, numel: usize) -> Option<usize> {
        let (elements, bytes) = self.block_layout()?;
        numel
            .is_multiple_of(elements)
            .then_some(numel / elements * bytes)
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
        GgmlType::Q5_0 => dequantize_q5_0(bytes),
        GgmlType::Q5_1 => dequantize_q5_1(bytes),
        GgmlType::Q4_K => dequantize_k(bytes, 144, dequant_k::q4_k_block),
        GgmlType::Q5_K => dequantize_k(bytes, 176, dequant_k::q5_k_block),
        GgmlType::Q6_K => dequantize_k(bytes, 210, dequant_k::q6_k_block),
        GgmlType::Other(..) => return None,
    })
}

/// An f16 field at the start of `bytes`, as f32.
pub(crate) fn scale(bytes: &[u8]) -> f32 {
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

/// The 5-bit codes of a Q5_0/Q5_1 block: the low four bits come from the 16 nibble bytes as in
/// Q4_0, the fifth bit of element `j` is bit `j` of the little-endian 32-bit field `qh`.
pub(crate) fn five_bit_codes(qh: &[u8], qs: &[u8]) -> [u8; BLOCK] {
    let high = u32::from_le_bytes([qh[0], qh[1], qh[2], qh[3]]);
    let mut codes = [0u8; BLOCK];
    for (j, &q) in qs[..16].iter().enumerate() {
        codes[j] = (q & 0x0f) | ((((high >> j) & 1) as u8) << 4);
        codes[j + 16] = (q >> 4) | ((((high >> (j + 16)) & 1) as u8) << 4);
    }
    codes
}

/// Q5_0: per block an f16 scale `d`, 4 bytes of fifth bits, 16 bytes of nibbles;
/// `x = d·(q − 16)`.
pub fn dequantize_q5_0(bytes: &[u8]) -> Vec<f32> {
    let mut out = Vec::with_capacity(bytes.len() / 22 * BLOCK);
    for block in bytes.chunks_exact(22) {
        let d = scale(block);
        let codes = five_bit_codes(&block[2..6], &block[6..]);
        out.extend(codes.iter().map(|&q| d * f32::from(q as i8 - 16)));
    }
    out
}

/// Q5_1: per block an f16 scale `d`, an f16 minimum `m`, 4 bytes of fifth bits, 16 bytes of
/// nibbles; `x = d·q + m`.
pub fn dequantize_q5_1(bytes: &[u8]) -> Vec<f32> {
    let mut out = Vec::with_capacity(bytes.len() / 24 * BLOCK);
    for block in bytes.chunks_exact(24) {
        let (d, m) = (scale(block), scale(&block[2..]));
        let codes = five_bit_codes(&block[4..8], &block[8..]);
        out.extend(codes.iter().map(|&q| d * f32::from(q) + m));
    }
    out
}

/// Runs a K-quant block decoder over every super-block.
fn dequantize_k(
    bytes: &[u8],
    block_bytes: usize,
    decode: fn(&[u8], &mut [f32; SUPER_BLOCK]),
) -> Vec<f32> {
    let mut out = vec![0.0f32; bytes.len() / block_bytes * SUPER_BLOCK];
    for (block, dst) in bytes
        .chunks_exact(block_bytes)
        .zip(out.chunks_exact_mut(SUPER_BLOCK))
    {
        decode(block, dst.try_into().expect("chunks of one super-block"));
    }
    out
}

/// Element-at-a-time reference for the block formats: each element computed directly from the
/// bytes that hold it, following the format's definition.
///
/// # Panics
/// For types that are not block formats.
pub fn dequantize_reference(ty: GgmlType, bytes: &[u8], numel: usize) -> Vec<f32> {
    (0..numel)
        .map(|i| {
            let (b, k) = (i / BLOCK, i % BLOCK);
            let bit5 = |qh: &[u8]| (qh[k / 8] >> (k % 8)) & 1;
            let nibble = |qs: &[u8]| {
                let byte = qs[k % 16];
                if k < 16 {
                    byte & 0x0f
                } else {
                    byte >> 4
                }
            };
            match ty {
                GgmlType::Q5_0 => {
                    let blk = &bytes[b * 22..];
                    let q = nibble(&blk[6..]) | (bit5(&blk[2..]) << 4);
                    scale(blk) * (f32::from(q) - 16.0)
                }
                GgmlType::Q5_1 => {
                    let blk = &bytes[b * 24..];
                    let q = nibble(&blk[8..]) | (bit5(&blk[4..]) << 4);
                    scale(blk) * f32::from(q) + scale(&blk[2..])
                }
                GgmlType::Q4_K | GgmlType::Q5_K | GgmlType::Q6_K => {
                    dequant_k::element_reference(ty, bytes, i)
                }
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

/// Random block data with finite f16 scales, for tests of everything that reads blocks.
#[cfg(test)]
pub(crate) fn random_blocks(ty: GgmlType, blocks: usize, seed: u64) -> Vec<u8> {
    use rand::{Rng, SeedableRng};
    let (_, bytes_per) = ty.block_layout().expect("a block format");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut bytes: Vec<u8> = (0..blocks * bytes_per).map(|_| rng.random()).collect();
    // Byte offsets of the f16 fields (scale, then minimum where the format has one).
    let fields: &[usize] = match ty {
        GgmlType::Q4_1 | GgmlType::Q5_1 | GgmlType::Q4_K | GgmlType::Q5_K => &[0, 2],
        GgmlType::Q6_K => &[208],
        _ => &[0],
    };
    for block in bytes.chunks_exact_mut(bytes_per) {
        for (s, &at) in fields.iter().enumerate() {
            let magnitude = rng.random_range(0.001f32..0.1);
            let v = f16::from_f32(if s == 0 { magnitude } else { -0.5 * magnitude });
            block[at..at + 2].copy_from_slice(&v.to_le_bytes());
        }
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    const BLOCK_FORMATS: [GgmlType; 8] = [
        GgmlType::Q8_0,
        GgmlType::Q4_0,
        GgmlType::Q4_1,
        GgmlType::Q5_0,
        GgmlType::Q5_1,
        GgmlType::Q4_K,
        GgmlType::Q5_K,
        GgmlType::Q6_K,
    ];

    #[test]
    fn block_formats_match_the_reference_on_random_data() {
        for ty in BLOCK_FORMATS {
            let (elements, _) = ty.block_layout().unwrap();
            for blocks in [1, 3, 17] {
                let bytes = random_blocks(ty, blocks, blocks as u64);
                let numel = blocks * elements;
                let fast = dequantize(ty, &bytes, numel).unwrap();
                let slow = dequantize_reference(ty, &bytes, numel);
                assert_eq!(fast, slow, "{ty:?} with {blocks} blocks");
            }
        }
    }

    #[test]
    fn every_type_keeps_its_number() {
        for ty in BLOCK_FORMATS {
            assert_eq!(GgmlType::from_id(ty.id()), ty);
        }
    }

    #[test]
    fn q5_0_known_block() {
        // d = 0.5; fifth bit set for element 0 only; every nibble byte 0x21.
        let mut block = f16::from_f32(0.5).to_le_bytes().to_vec();
        block.extend_from_slice(&1u32.to_le_bytes());
        block.extend(std::iter::repeat_n(0x21u8, 16));
        let x = dequantize_q5_0(&block);
        assert_eq!(x[0], 0.5 * (17.0 - 16.0));
        assert_eq!(x[1], 0.5 * (1.0 - 16.0));
        assert_eq!(x[16], 0.5 * (2.0 - 16.0));
    }

    #[test]
    fn q6_k_known_block() {
        // All low nibbles 1, all high parts 2 (q = 33), scales 1..=16, d = 0.25.
        let mut block = vec![0x11u8; 128];
        block.extend(std::iter::repeat_n(0xaau8, 64));
        block.extend((1..=16).map(|s: i8| s as u8));
        block.extend_from_slice(&f16::from_f32(0.25).to_le_bytes());
        let x = dequantize(GgmlType::Q6_K, &block, 256).unwrap();
        for (e, v) in x.iter().enumerate() {
            assert_eq!(*v, 0.25 * (e / 16 + 1) as f32, "element {e}");
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
        assert!(dequantize(GgmlType::Q6_K, &[0u8; 210], 255).is_none());
        assert!(dequantize(GgmlType::Q4_K, &[0u8; 143], 256).is_none());
        assert!(dequantize(GgmlType::from_id(10), &[0u8; 84], 256).is_none());
        assert_eq!(GgmlType::from_id(10).name(), "Q2_K (type 10)");
    }
}

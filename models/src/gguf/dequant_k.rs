//! The K-quant super-blocks of GGUF (256 elements each): Q4_K, Q5_K and Q6_K.
//!
//! - Q4_K (144 bytes): f16 `d`, f16 `dmin`, 12 bytes packing eight 6-bit scales and eight 6-bit
//!   minimums, 128 bytes of nibbles. Sub-block `j` (elements `32j..32j+32`) reads the low
//!   nibbles (even `j`) or high nibbles (odd `j`) of bytes `32·(j/2)..`; `x = d·sc_j·q − dmin·m_j`.
//! - Q5_K (176 bytes): as Q4_K, with 32 bytes of fifth bits after the scales; the fifth bit of
//!   element `l` of sub-block `j` is bit `j` of high-bit byte `l`.
//! - Q6_K (210 bytes): 128 bytes of low nibbles, 64 bytes of two-bit high parts, sixteen signed
//!   8-bit scales, f16 `d` last; element `e` has scale `sc[e/16]` and `x = d·sc·(q − 32)`.
//!
//! The products `d·sc` and `dmin·m` are formed in f32 first, as gguf-py's reference does, which
//! keeps the values bit-exact with it. [`element_reference`] decodes one element at a time from
//! these definitions; the block decoders are the fast path.

use super::dequant::{scale, GgmlType, BLOCK, SUPER_BLOCK};

/// Sub-block `j`'s 6-bit scale and minimum from Q4_K/Q5_K's 12 packed bytes.
pub fn scale_and_min(packed: &[u8], j: usize) -> (u8, u8) {
    if j < 4 {
        (packed[j] & 63, packed[j + 4] & 63)
    } else {
        (
            (packed[j + 4] & 0x0f) | ((packed[j - 4] >> 6) << 4),
            (packed[j + 4] >> 4) | ((packed[j] >> 6) << 4),
        )
    }
}

/// Each sub-block's `(d·sc, dmin·m)` of a Q4_K or Q5_K super-block: `x = d·sc·q − dmin·m`.
pub fn sub_block_scales(block: &[u8]) -> [(f32, f32); 8] {
    let (d, dmin) = (scale(block), scale(&block[2..]));
    std::array::from_fn(|j| {
        let (sc, m) = scale_and_min(&block[4..16], j);
        (d * f32::from(sc), dmin * f32::from(m))
    })
}

/// The 4-bit codes of sub-block `j` of a Q4_K super-block.
pub fn q4_k_codes(block: &[u8], j: usize) -> [u8; BLOCK] {
    let qs = &block[16 + 32 * (j / 2)..][..BLOCK];
    let shift = 4 * (j % 2);
    std::array::from_fn(|l| (qs[l] >> shift) & 0x0f)
}

/// The 5-bit codes of sub-block `j` of a Q5_K super-block.
pub fn q5_k_codes(block: &[u8], j: usize) -> [u8; BLOCK] {
    let qh = &block[16..48];
    let qs = &block[48 + 32 * (j / 2)..][..BLOCK];
    let shift = 4 * (j % 2);
    std::array::from_fn(|l| ((qs[l] >> shift) & 0x0f) | (((qh[l] >> j) & 1) << 4))
}

/// The sixteen `d·sc` scales of a Q6_K super-block (scale `i` covers elements `16i..16i+16`).
pub fn q6_k_scales(block: &[u8]) -> [f32; SUPER_BLOCK / 16] {
    let d = scale(&block[208..]);
    std::array::from_fn(|i| d * f32::from(block[192 + i] as i8))
}

/// The signed codes `q − 32` of all 256 elements of a Q6_K super-block.
pub fn q6_k_codes(block: &[u8]) -> [i8; SUPER_BLOCK] {
    let (ql, qh) = (&block[..128], &block[128..192]);
    let mut out = [0i8; SUPER_BLOCK];
    for half in 0..2 {
        let (ql, qh) = (&ql[64 * half..], &qh[32 * half..]);
        let dst = &mut out[128 * half..];
        for l in 0..32 {
            let high = |g: usize| (qh[l] >> (2 * g)) & 3;
            let quarters = [
                (ql[l] & 0x0f) | (high(0) << 4),
                (ql[l + 32] & 0x0f) | (high(1) << 4),
                (ql[l] >> 4) | (high(2) << 4),
                (ql[l + 32] >> 4) | (high(3) << 4),
            ];
            for (g, q) in quarters.into_iter().enumerate() {
                dst[32 * g + l] = q as i8 - 32;
            }
        }
    }
    out
}

/// Decodes one Q4_K super-block.
pub fn q4_k_block(block: &[u8], out: &mut [f32; SUPER_BLOCK]) {
    for (j, (d, m)) in sub_block_scales(block).into_iter().enumerate() {
        let codes = q4_k_codes(block, j);
        for (x, q) in out[BLOCK * j..][..BLOCK].iter_mut().zip(codes) {
            *x = d * f32::from(q) - m;
        }
    }
}

/// Decodes one Q5_K super-block.
pub fn q5_k_block(block: &[u8], out: &mut [f32; SUPER_BLOCK]) {
    for (j, (d, m)) in sub_block_scales(block).into_iter().enumerate() {
        let codes = q5_k_codes(block, j);
        for (x, q) in out[BLOCK * j..][..BLOCK].iter_mut().zip(codes) {
            *x = d * f32::from(q) - m;
        }
    }
}

/// Decodes one Q6_K super-block.
pub fn q6_k_block(block: &[u8], out: &mut [f32; SUPER_BLOCK]) {
    let scales = q6_k_scales(block);
    for (e, (x, q)) in out.iter_mut().zip(q6_k_codes(block)).enumerate() {
        *x = scales[e / 16] * f32::from(q);
    }
}

/// Element `i` of K-quant data, read bit by bit from the format's definition (the slow
/// reference for the block decoders above and the runtime layouts built from them).
///
/// # Panics
/// For types other than Q4_K, Q5_K and Q6_K.
pub fn element_reference(ty: GgmlType, bytes: &[u8], i: usize) -> f32 {
    let (b, e) = (i / SUPER_BLOCK, i % SUPER_BLOCK);
    let (j, l) = (e / BLOCK, e % BLOCK);
    match ty {
        GgmlType::Q4_K | GgmlType::Q5_K => {
            let size = if ty == GgmlType::Q4_K { 144 } else { 176 };
            let blk = &bytes[b * size..(b + 1) * size];
            let (sc, m) = scale_and_min(&blk[4..16], j);
            let codes_at = if ty == GgmlType::Q4_K { 16 } else { 48 };
            let byte = blk[codes_at + 32 * (j / 2) + l];
            let mut q = if j % 2 == 0 { byte & 0x0f } else { byte >> 4 };
            if ty == GgmlType::Q5_K {
                q |= ((blk[16 + l] >> j) & 1) << 4;
            }
            scale(blk) * f32::from(sc) * f32::from(q) - scale(&blk[2..]) * f32::from(m)
        }
        GgmlType::Q6_K => {
            let blk = &bytes[b * 210..(b + 1) * 210];
            let (half, rest) = (e / 128, e % 128);
            let (quarter, l) = (rest / 32, rest % 32);
            let low_byte = blk[64 * half + 32 * (quarter % 2) + l];
            let low = if quarter < 2 {
                low_byte & 0x0f
            } else {
                low_byte >> 4
            };
            let high = (blk[128 + 32 * half + l] >> (2 * quarter)) & 3;
            let q = i32::from(low | (high << 4)) - 32;
            let sc = blk[192 + e / 16] as i8;
            scale(&blk[208..]) * f32::from(sc) * q as f32
        }
        _ => panic!("element_reference covers the K-quants only"),
    }
}

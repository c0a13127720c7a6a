//! GGUF block data into the runtime block layouts of [`crate::quantized`], value for value.
//!
//! Each GGUF type is held in the runtime format whose arithmetic reproduces its values exactly
//! (the same f32 operations as gguf-py's dequantization):
//!
//! | GGUF | runtime | scale | minimum | code |
//! |---|---|---|---|---|
//! | Q8_0 | Q8_0 | `d` | | `q` |
//! | Q4_0 | Q8_0 | `d` | | `q − 8` |
//! | Q5_0 | Q8_0 | `d` | | `q − 16` |
//! | Q4_1 | Q4_1 | `d` | `m` | `q` |
//! | Q4_K | Q4_1 | `d·sc_j` | `−(dmin·m_j)` | `q` |
//! | Q6_K | Q6_K | `d·sc` per 16 values | | `q − 32` |
//!
//! Other types (Q5_1, Q5_K, floats) have no runtime block format and load as f32.

use crate::gguf::dequant::{self, GgmlType, BLOCK, SUPER_BLOCK};
use crate::gguf::dequant_k;
use crate::quantized::{QuantFormat, QuantizeError, QuantizedBlocks};

/// One runtime block while it is built: its scales, minimum and 32 codes.
struct Block {
    scales: [f32; 2],
    min: f32,
    codes: [u8; BLOCK],
}

impl QuantizedBlocks {
    /// Reads the GGUF data of a `[rows, cols]` tensor (GGUF dims `[cols, rows]`) of type `ty`
    /// into its runtime format; `Ok(None)` for a type that has none.
    pub fn from_gguf(
        ty: GgmlType,
        bytes: &[u8],
        rows: usize,
        cols: usize,
    ) -> Result<Option<Self>, QuantizeError> {
        let Some(format) = QuantFormat::from_ggml(ty) else {
            return Ok(None);
        };
        let (per_block, block_bytes) = ty.block_layout().expect("every runtime type has blocks");
        if !cols.is_multiple_of(per_block) {
            return Err(QuantizeError::PartialBlock {
                cols,
                block: per_block,
            });
        }
        let expected = rows * cols / per_block * block_bytes;
        if bytes.len() != expected {
            return Err(QuantizeError::WrongLength {
                ty,
                rows,
                cols,
                expected,
                actual: bytes.len(),
            });
        }
        let blocks = rows * cols / BLOCK;
        let mut out = Self {
            format,
            rows,
            cols,
            scales: Vec::with_capacity(blocks * format.scales_per_block()),
            mins: Vec::with_capacity(if format.has_mins() { blocks } else { 0 }),
            codes: Vec::with_capacity(blocks * format.words_per_block()),
        };
        for (i, gguf_block) in bytes.chunks_exact(block_bytes).enumerate() {
            let finite = |v: f32| v.is_finite();
            let mut push = |block: Block| -> Result<(), QuantizeError> {
                let spb = format.scales_per_block();
                if !block.scales[..spb].iter().copied().all(finite) || !finite(block.min) {
                    return Err(QuantizeError::NonFiniteScale { block: i });
                }
                out.scales.extend_from_slice(&block.scales[..spb]);
                if format.has_mins() {
                    out.mins.push(block.min);
                }
                pack_codes(format, &block.codes, &mut out.codes);
                Ok(())
            };
            for block in runtime_blocks(ty, gguf_block) {
                push(block)?;
            }
        }
        Ok(Some(out))
    }
}

/// The runtime blocks of one GGUF block (one, or eight for a K-quant super-block). Codes are
/// the runtime's: signed bytes for Q8_0 and Q6_K, 4-bit values for Q4_1.
fn runtime_blocks(ty: GgmlType, b: &[u8]) -> Vec<Block> {
    let signed = |codes: [u8; BLOCK], offset: u8| codes.map(|q| q.wrapping_sub(offset));
    let low_high = |qs: &[u8]| -> [u8; BLOCK] {
        std::array::from_fn(|k| {
            if k < 16 {
                qs[k] & 0x0f
            } else {
                qs[k - 16] >> 4
            }
        })
    };
    let one = |d: f32, min: f32, codes: [u8; BLOCK]| {
        vec![Block {
            scales: [d, 0.0],
            min,
            codes,
        }]
    };
    match ty {
        GgmlType::Q8_0 => one(
            dequant::scale(b),
            0.0,
            b[2..34].try_into().expect("32 codes"),
        ),
        GgmlType::Q4_0 => one(dequant::scale(b), 0.0, signed(low_high(&b[2..]), 8)),
        GgmlType::Q5_0 => one(
            dequant::scale(b),
            0.0,
            signed(dequant::five_bit_codes(&b[2..6], &b[6..]), 16),
        ),
        GgmlType::Q4_1 => one(
            dequant::scale(b),
            dequant::scale(&b[2..]),
            low_high(&b[4..]),
        ),
        GgmlType::Q4_K => dequant_k::sub_block_scales(b)
            .into_iter()
            .enumerate()
            .map(|(j, (d, m))| Block {
                scales: [d, 0.0],
                min: -m,
                codes: dequant_k::q4_k_codes(b, j),
            })
            .collect(),
        GgmlType::Q6_K => {
            let scales = dequant_k::q6_k_scales(b);
            let codes = dequant_k::q6_k_codes(b);
            (0..SUPER_BLOCK / BLOCK)
                .map(|j| Block {
                    scales: [scales[2 * j], scales[2 * j + 1]],
                    min: 0.0,
                    codes: std::array::from_fn(|l| codes[BLOCK * j + l] as u8),
                })
                .collect()
        }
        _ => unreachable!("from_ggml maps only the types above"),
    }
}

/// Appends one block's codes as the runtime's 32-bit words.
fn pack_codes(format: QuantFormat, codes: &[u8; BLOCK], words: &mut Vec<u32>) {
    match format {
        QuantFormat::Q8_0 | QuantFormat::Q6_K => words.extend(
            codes
                .chunks_exact(4)
                .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])),
        ),
        QuantFormat::Q4_1 => {
            let bytes: [u8; 16] = std::array::from_fn(|j| codes[j] | (codes[j + 16] << 4));
            words.extend(
                bytes
                    .chunks_exact(4)
                    .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gguf::dequant::random_blocks;
    use half::f16;

    const HELD: [GgmlType; 6] = [
        GgmlType::Q8_0,
        GgmlType::Q4_0,
        GgmlType::Q5_0,
        GgmlType::Q4_1,
        GgmlType::Q4_K,
        GgmlType::Q6_K,
    ];

    #[test]
    fn every_held_type_keeps_its_values_bit_for_bit() {
        for ty in HELD {
            let (per_block, _) = ty.block_layout().unwrap();
            let (rows, cols) = (3, 2 * per_block);
            let bytes = random_blocks(ty, rows * 2, ty.id().into());
            let held = QuantizedBlocks::from_gguf(ty, &bytes, rows, cols)
                .unwrap()
                .expect("a runtime format");
            let reference = dequant::dequantize_reference(ty, &bytes, rows * cols);
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&held.dequantize()), bits(&reference), "{ty:?}");
            for (i, want) in reference.iter().enumerate() {
                assert_eq!(held.value(i / cols, i % cols).to_bits(), want.to_bits());
            }
        }
    }

    #[test]
    fn types_without_a_runtime_format_are_left_to_f32() {
        for ty in [GgmlType::Q5_1, GgmlType::Q5_K, GgmlType::F32] {
            let (per_block, bytes_per) = ty.block_layout().unwrap();
            let bytes = vec![0u8; bytes_per * 256 / per_block];
            assert_eq!(
                QuantizedBlocks::from_gguf(ty, &bytes, 1, 256),
                Ok(None),
                "{ty:?}"
            );
        }
    }

    #[test]
    fn bad_block_data_is_refused() {
        assert!(matches!(
            QuantizedBlocks::from_gguf(GgmlType::Q4_1, &[0u8; 39], 1, 64),
            Err(QuantizeError::WrongLength { expected: 40, .. })
        ));
        assert_eq!(
            QuantizedBlocks::from_gguf(GgmlType::Q6_K, &[0u8; 210], 2, 128),
            Err(QuantizeError::PartialBlock {
                cols: 128,
                block: 256
            })
        );
        let mut bytes = vec![0u8; 34];
        bytes[..2].copy_from_slice(&f16::INFINITY.to_le_bytes());
        assert_eq!(
            QuantizedBlocks::from_gguf(GgmlType::Q8_0, &bytes, 1, 32),
            Err(QuantizeError::NonFiniteScale { block: 0 })
        );
        let mut k = vec![0u8; 144];
        k[2..4].copy_from_slice(&f16::NAN.to_le_bytes());
        k[4] = 1; // sub-block 0's minimum scale is non-zero, so dmin·m is NaN
        k[8] = 1;
        assert_eq!(
            QuantizedBlocks::from_gguf(GgmlType::Q4_K, &k, 1, 256),
            Err(QuantizeError::NonFiniteScale { block: 0 })
        );
    }
}

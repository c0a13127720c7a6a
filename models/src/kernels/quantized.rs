//! A weight matrix kept in a block format where the backend computes ([`QuantizedMatrix`]), and
//! the product `x·Wᵀ` with it ([`quantized_linear`]).
//!
//! On the ndarray backend the blocks stay in host memory as packed words and decode steps run
//! the host kernel [`super::skinny_quantized`]. On every other backend they become three
//! tensors (scales and minimums in f32 whatever the backend's float type, codes as 32-bit
//! integers); CubeCL backends run
//! [`super::cube`]'s quantized kernel for decode steps. Longer inputs (prefill), and backends
//! without a kernel, unpack the weight with Burn's own ops ([`dequantize_with_stock_ops`]) and
//! multiply densely; the f32 copy lives only for that call.

use std::sync::Arc;

use burn::tensor::backend::Backend;
use burn::tensor::{DType, Element, ElementConversion, FloatDType, Int, Tensor, TensorData};

use super::{enabled, host, quantized_autodiff, stock};
use crate::gguf::dequant::BLOCK;
use crate::quantized::{QuantFormat, QuantizedBlocks};

/// Most rows of `x` the fused kernels take; more rows amortize unpacking the weight once.
pub const MAX_FUSED_ROWS: usize = 16;

/// A `[rows, cols]` weight (`[out, in]`) in a block format, on a backend's device.
#[derive(Debug, Clone)]
pub struct QuantizedMatrix<B: Backend> {
    pub(super) format: QuantFormat,
    pub(super) rows: usize,
    pub(super) cols: usize,
    pub(super) storage: Storage<B>,
}

#[derive(Debug, Clone)]
pub(super) enum Storage<B: Backend> {
    /// The ndarray backend: the packed blocks themselves.
    Host(Arc<QuantizedBlocks>),
    Device(DeviceBlocks<B>),
}

/// The blocks as tensors: `scales` `[rows, cols/32 · scales_per_block]` and `mins`
/// `[rows, cols/32]` in f32 (`mins` `[1, 1]` of zero for formats without), `codes`
/// `[rows, cols/32 · words]` holding each packed word's bits as an integer.
#[derive(Debug, Clone)]
pub struct DeviceBlocks<B: Backend> {
    pub scales: Tensor<B, 2>,
    pub mins: Tensor<B, 2>,
    pub codes: Tensor<B, 2, Int>,
}

impl<B: Backend> DeviceBlocks<B> {
    /// The blocks as tensors on `device`.
    pub fn upload(blocks: QuantizedBlocks, device: &B::Device) -> Self {
        let (format, rows, cols) = (blocks.format, blocks.rows, blocks.cols);
        let per_row = cols / BLOCK;
        let words = per_row * format.words_per_block();
        let f32_on_device = (device, DType::F32);
        let mins = if format.has_mins() {
            Tensor::from_data(TensorData::new(blocks.mins, [rows, per_row]), f32_on_device)
        } else {
            Tensor::zeros([1, 1], f32_on_device)
        };
        let codes: Vec<i32> = blocks.codes.iter().map(|&w| w as i32).collect();
        Self {
            scales: Tensor::from_data(
                TensorData::new(blocks.scales, [rows, per_row * format.scales_per_block()]),
                f32_on_device,
            ),
            mins,
            codes: Tensor::from_data(TensorData::new(codes, [rows, words]), device),
        }
    }
}

impl<B: Backend> QuantizedMatrix<B> {
    /// Places `blocks` on `device`: kept as they are on the ndarray backend, uploaded as
    /// tensors on every other.
    pub fn new(blocks: QuantizedBlocks, device: &B::Device) -> Self {
        let (format, rows, cols) = (blocks.format, blocks.rows, blocks.cols);
        // The CPU training backend keeps host blocks too (its product is
        // `quantized_autodiff`'s).
        let storage = if host::is_ndarray::<B>() || quantized_autodiff::is_cpu_learner::<B>() {
            Storage::Host(Arc::new(blocks))
        } else {
            Storage::Device(DeviceBlocks::upload(blocks, device))
        };
        Self {
            format,
            rows,
            cols,
            storage,
        }
    }

    pub fn format(&self) -> QuantFormat {
        self.format
    }

    /// `[rows, cols]`: `[out, in]`.
    pub fn dims(&self) -> [usize; 2] {
        [self.rows, self.cols]
    }

    /// Bytes of weight data this matrix keeps (4 per scale, minimum and code word).
    pub fn byte_size(&self) -> usize {
        self.format.byte_size(self.rows, self.cols)
    }

    /// The values as a dense `[rows, cols]` f32 tensor.
    pub fn dequantize(&self) -> Tensor<B, 2> {
        match &self.storage {
            Storage::Host(blocks) => {
                let device = Default::default();
                Tensor::from_data(
                    TensorData::new(blocks.dequantize(), [self.rows, self.cols]),
                    &device,
                )
            }
            Storage::Device(d) => dequantize_with_stock_ops(d, self.format, self.rows, self.cols),
        }
    }

    /// The blocks themselves on the ndarray backend (`None` on others, which hold tensors).
    pub fn host_blocks(&self) -> Option<&QuantizedBlocks> {
        match &self.storage {
            Storage::Host(blocks) => Some(blocks),
            Storage::Device(_) => None,
        }
    }

    /// The device tensors (`None` on the ndarray backend, which keeps host blocks).
    pub fn device_blocks(&self) -> Option<&DeviceBlocks<B>> {
        match &self.storage {
            Storage::Device(d) => Some(d),
            Storage::Host(_) => None,
        }
    }
}

/// `x·Wᵀ` for `x` `[batch, tokens, k]` and a quantized `W` `[n, k]`: `[batch, tokens, n]`.
pub fn quantized_linear<B: Backend>(x: Tensor<B, 3>, w: &QuantizedMatrix<B>) -> Tensor<B, 3> {
    let [b, t, k] = x.dims();
    assert_eq!(k, w.cols, "x's last dimension is the weight's input size");
    if let Storage::Host(blocks) = &w.storage {
        let flat = x.clone().reshape([b * t, k]);
        if let Some(y) = quantized_autodiff::quantized_linear(&flat, blocks) {
            return y.reshape([b, t, w.rows]);
        }
    }
    if enabled() {
        if let Some(y) = fused_matmul(&x.clone().reshape([b * t, k]), w) {
            return y.reshape([b, t, w.rows]);
        }
    }
    stock::linear_transposed(x, w.dequantize())
}

/// `x` `[m, k]` times `Wᵀ` through a fused kernel (the host kernel on ndarray, the CubeCL
/// kernel on GPU backends); `None` on a backend without one, and for more than
/// [`MAX_FUSED_ROWS`] rows unless the host kernel quantizes the activations to 8 bits (its
/// register tiles beat unpacking the weight for a dense product at every row count:
/// `cargo bench -p mars2-benches --bench quantized_dot`).
pub fn fused_matmul<B: Backend>(x: &Tensor<B, 2>, w: &QuantizedMatrix<B>) -> Option<Tensor<B, 2>> {
    let [m, k] = x.dims();
    if m == 0 || k != w.cols {
        return None;
    }
    let many_rows = m > MAX_FUSED_ROWS;
    match &w.storage {
        Storage::Host(blocks) => {
            let most = match super::host_activations() {
                super::HostActivations::F32 => MAX_FUSED_ROWS,
                super::HostActivations::Int8 => usize::MAX,
            };
            (m <= most)
                .then(|| host::quantized_matmul(x, blocks))
                .flatten()
        }
        Storage::Device(_) if many_rows => None,
        Storage::Device(d) => device_matmul(x, d, w.format),
    }
}

#[cfg(feature = "cubecl")]
fn device_matmul<B: Backend>(
    x: &Tensor<B, 2>,
    d: &DeviceBlocks<B>,
    format: QuantFormat,
) -> Option<Tensor<B, 2>> {
    super::cube::quantized_matmul(x, d, format)
}

#[cfg(not(feature = "cubecl"))]
fn device_matmul<B: Backend>(
    _x: &Tensor<B, 2>,
    _d: &DeviceBlocks<B>,
    _format: QuantFormat,
) -> Option<Tensor<B, 2>> {
    None
}

/// Unpacks the blocks with Burn tensor ops (shifts and masks on the code words): the path of
/// every backend without a fused kernel, and the baseline the kernels are measured against.
/// The values are computed in f32 and given in the backend's own float type.
pub fn dequantize_with_stock_ops<B: Backend>(
    d: &DeviceBlocks<B>,
    format: QuantFormat,
    rows: usize,
    cols: usize,
) -> Tensor<B, 2> {
    let blocks = cols / BLOCK;
    let field = |shift: i32, mask: i32| -> Tensor<B, 2> {
        d.codes
            .clone()
            .bitwise_right_shift_scalar(shift.elem())
            .bitwise_and_scalar(mask.elem())
            .cast(FloatDType::F32)
    };
    let spb = format.scales_per_block();
    let scales = d.scales.clone().reshape([rows, blocks * spb, 1]);
    let values = match format {
        QuantFormat::Q8_0 | QuantFormat::Q6_K => {
            // Byte b of word w is element 4w + b, a signed code; Q6_K has a scale per 16.
            let bytes: Vec<Tensor<B, 2>> = (0..4)
                .map(|b| {
                    let u = field(8 * b, 0xff);
                    let negative = u.clone().greater_equal_elem(128.0).cast(FloatDType::F32);
                    u - negative * 256.0
                })
                .collect();
            Tensor::stack::<3>(bytes, 2).reshape([rows, blocks * spb, BLOCK / spb]) * scales
        }
        QuantFormat::Q4_1 => {
            // Low nibbles of the 16 bytes are elements 0..16, high nibbles 16..32.
            let nibbles = |high: i32| -> Tensor<B, 3> {
                let parts: Vec<Tensor<B, 2>> = (0..4).map(|b| field(8 * b + high, 0x0f)).collect();
                Tensor::stack::<3>(parts, 2).reshape([rows, blocks, BLOCK / 2])
            };
            let codes = Tensor::cat(vec![nibbles(0), nibbles(4)], 2);
            let mins = d.mins.clone().reshape([rows, blocks, 1]);
            codes * scales + mins
        }
    };
    let model_type: FloatDType = <B::FloatElem as Element>::dtype().into();
    values.reshape([rows, cols]).cast(model_type)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn_ndarray::NdArray;
    use rand::{Rng, SeedableRng};

    #[test]
    fn stock_op_unpacking_matches_the_blocks_on_random_inputs() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        let (rows, cols) = (6, 96);
        let values: Vec<f32> = (0..rows * cols)
            .map(|_| rng.random_range(-2.0f32..2.0))
            .collect();
        for format in [QuantFormat::Q8_0, QuantFormat::Q4_1, QuantFormat::Q6_K] {
            let blocks = QuantizedBlocks::quantize(format, &values, rows, cols).unwrap();
            let device = Default::default();
            let on_device = DeviceBlocks::<NdArray>::upload(blocks.clone(), &device);
            let unpacked: Vec<f32> = dequantize_with_stock_ops(&on_device, format, rows, cols)
                .into_data()
                .to_vec()
                .unwrap();
            assert_eq!(unpacked, blocks.dequantize(), "{format:?}");
        }
    }
}

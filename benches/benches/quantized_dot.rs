//! The host products with weights kept in blocks, at the shapes of decode and prefill of
//! Qwen2.5-Coder-0.5B's up projection (`[m, 896] · [4864, 896]ᵀ`) and SmolLM2-135M's down
//! projection (`[m, 1536] · [576, 1536]ᵀ`): the f32 kernel (blocks unpacked to f32)
//! and, from 32 rows, the dense product prompt chunks took before (the weight unpacked to f32,
//! then Burn's matrix product) against the 8-bit-activation kernel on every instruction set this
//! CPU has, activation quantization included. Throughput is in weight bytes read.

use burn::backend::NdArray;
use burn::tensor::{Tensor, TensorData};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use mars2_models::kernels::int8_dot::{self, DotIsa, Q8Activations};
use mars2_models::kernels::skinny_quantized;
use mars2_models::quantized::{QuantFormat, QuantizedBlocks};

/// `(k, n)`: Qwen2.5-Coder-0.5B's up projection and SmolLM2-135M's down projection.
const SHAPES: [(usize, usize); 2] = [(896, 4864), (1536, 576)];

fn values(n: usize, seed: u32) -> Vec<f32> {
    // A cheap deterministic spread of values in (−1, 1).
    (0..n as u32)
        .map(|i| {
            ((i.wrapping_mul(2_654_435_761).wrapping_add(seed) >> 8) as f32 / 8_388_608.0) - 1.0
        })
        .collect()
}

fn quantized_dot(c: &mut Criterion) {
    for (format, (k, n)) in [QuantFormat::Q4_1, QuantFormat::Q8_0, QuantFormat::Q6_K]
        .into_iter()
        .flat_map(|f| SHAPES.map(|shape| (f, shape)))
    {
        let w = QuantizedBlocks::quantize(format, &values(n * k, 1), n, k).expect("quantizes");
        for m in [1, 8, 32, 128, 512] {
            let x = values(m * k, 2);
            let mut group =
                c.benchmark_group(format!("quantized_dot/{} {m}x{k}x{n}", format.name()));
            group.sample_size(10);
            group.throughput(Throughput::Bytes(w.byte_size() as u64));
            if m <= 128 {
                group.bench_function("f32", |b| b.iter(|| skinny_quantized::matmul(&x, m, &w)));
            }
            if m >= 32 {
                group.bench_function("dense f32", |b| b.iter(|| dense(&x, m, &w)));
            }
            for isa in [
                DotIsa::Portable,
                DotIsa::Avx2,
                DotIsa::Avx512Vnni,
                DotIsa::Amx,
            ] {
                if !isa.is_available() {
                    continue;
                }
                group.bench_function(format!("int8 {isa:?}"), |b| {
                    b.iter(|| int8_dot::matmul_with(isa, &Q8Activations::quantize(&x, m, k), &w))
                });
            }
            group.finish();
        }
    }
}

/// `x·Wᵀ` as a prompt chunk without a block kernel runs it: `W` unpacked to f32, then one
/// matrix product.
fn dense(x: &[f32], m: usize, w: &QuantizedBlocks) -> Tensor<NdArray, 2> {
    let device = Default::default();
    let x = Tensor::<NdArray, 2>::from_data(TensorData::new(x.to_vec(), [m, w.cols]), &device);
    let w =
        Tensor::<NdArray, 2>::from_data(TensorData::new(w.dequantize(), [w.rows, w.cols]), &device);
    x.matmul(w.transpose())
}

criterion_group!(benches, quantized_dot);
criterion_main!(benches);

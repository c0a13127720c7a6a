//! The host products with weights kept in blocks, at the shapes of decode and prefill of
//! Qwen2.5-Coder-0.5B's MLP (`[m, 896] · [4864, 896]ᵀ`): the f32 kernel (blocks unpacked to f32)
//! against the 8-bit-activation kernel on every instruction set this CPU has, activation
//! quantization included. Throughput is in weight bytes read.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use mars2_models::kernels::int8_dot::{self, DotIsa, Q8Activations};
use mars2_models::kernels::skinny_quantized;
use mars2_models::quantized::{QuantFormat, QuantizedBlocks};

const K: usize = 896;
const N: usize = 4864;

fn values(n: usize, seed: u32) -> Vec<f32> {
    // A cheap deterministic spread of values in (−1, 1).
    (0..n as u32)
        .map(|i| {
            ((i.wrapping_mul(2_654_435_761).wrapping_add(seed) >> 8) as f32 / 8_388_608.0) - 1.0
        })
        .collect()
}

fn quantized_dot(c: &mut Criterion) {
    for format in [QuantFormat::Q4_1, QuantFormat::Q8_0, QuantFormat::Q6_K] {
        let w = QuantizedBlocks::quantize(format, &values(N * K, 1), N, K).expect("quantizes");
        for m in [1, 8, 32, 128] {
            let x = values(m * K, 2);
            let mut group =
                c.benchmark_group(format!("quantized_dot/{} {m}x{K}x{N}", format.name()));
            group.sample_size(10);
            group.throughput(Throughput::Bytes(w.byte_size() as u64));
            group.bench_function("f32", |b| b.iter(|| skinny_quantized::matmul(&x, m, &w)));
            for isa in [DotIsa::Portable, DotIsa::Avx2, DotIsa::Avx512Vnni] {
                if !isa.is_available() {
                    continue;
                }
                group.bench_function(format!("int8 {isa:?}"), |b| {
                    b.iter(|| int8_dot::matmul_with(isa, &Q8Activations::quantize(&x, m, K), &w))
                });
            }
            group.finish();
        }
    }
}

criterion_group!(benches, quantized_dot);
criterion_main!(benches);

//! The fused kernels (RMSNorm, RoPE, paged attention, sampling, quantized matmul) against their
//! slow host references on random inputs: odd sizes, non-contiguous inputs, ragged rows, blocks
//! shared between rows, grouped-query heads. Outputs are poisoned with NaN first, so an element a kernel forgets to
//! write fails the comparison.
//!
//! Runs on the CPU (the stock Burn ops, and the host sampling kernel); with
//! `MARS2_TEST_DEVICE=cuda` or `wgpu` (feature built) the same checks run the CubeCL kernels,
//! and the test asserts that they did. On the
//! half-precision devices (`wgpu-f16`, `cuda-f16`, `cuda-bf16`) the references take the inputs
//! as the device stores them, and the outputs may differ by their rounding to that type: the
//! kernels compute in f32. Burn's stock ops compute in half precision there and are held to
//! the model-level parity tests instead.

use burn::tensor::backend::Backend;
use burn::tensor::{DType, Int, Tensor, TensorData};
use mars2_engine::{run_on, BackendTask, DeviceKind};
use mars2_models::kernels::{self, reference, stock};
use mars2_tests::test_device;

/// Deterministic values in [-2, 2) (a 64-bit LCG; no dependency needed).
fn random(n: usize, seed: u64) -> Vec<f32> {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 40) as f32 / (1u64 << 24) as f32) * 4.0 - 2.0
        })
        .collect()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| {
            if x.is_nan() || y.is_nan() {
                f32::INFINITY
            } else {
                (x - y).abs()
            }
        })
        .fold(0.0, f32::max)
}

/// Whether the test device stores floats in f16 or bf16.
fn half_precision() -> bool {
    test_device().float_type() != DType::F32
}

/// The largest error allowed for a kernel output near `expected`: `f32_tolerance`, plus twice
/// the rounding of values as large as `expected`'s to the device's float type.
fn allowed(expected: &[f32], f32_tolerance: f32) -> f32 {
    let unit_roundoff = match test_device().float_type() {
        DType::F16 => 2f32.powi(-11),
        DType::BF16 => 2f32.powi(-8),
        _ => 0.0,
    };
    let largest = expected.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    f32_tolerance + 2.0 * unit_roundoff * largest
}

/// `v` as the test device stores it (rounded to f16 or bf16 there, unchanged in f32).
fn as_stored<B: Backend>(v: Vec<f32>, device: &B::Device) -> Vec<f32> {
    let n = v.len();
    host(tensor::<B, 1>(v, [n], device))
}

fn host<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    t.into_data().convert::<f32>().to_vec().expect("f32 data")
}

fn tensor<B: Backend, const D: usize>(
    v: Vec<f32>,
    dims: [usize; D],
    device: &B::Device,
) -> Tensor<B, D> {
    Tensor::from_data(TensorData::new(v, dims), device)
}

fn ints<B: Backend>(rows: &[Vec<usize>], device: &B::Device) -> Tensor<B, 2, Int> {
    let width = rows.iter().map(Vec::len).max().unwrap_or(1).max(1);
    let mut data = Vec::new();
    for row in rows {
        data.extend(row.iter().map(|&v| v as i64));
        data.extend(std::iter::repeat_n(0i64, width - row.len()));
    }
    Tensor::from_data(TensorData::new(data, [rows.len(), width]), device)
}

fn rms_norm_checks<B: Backend>(device: &B::Device) {
    for (i, &(rows, dim)) in [(1, 1), (7, 577), (3, 1000), (130, 64), (2, 2048)]
        .iter()
        .enumerate()
    {
        let x = as_stored::<B>(random(rows * dim, 10 + i as u64), device);
        let w = as_stored::<B>(random(dim, 20 + i as u64), device);
        let expected = reference::rms_norm(&x, &w, 1e-5);
        let xt = tensor::<B, 2>(x, [rows, dim], device);
        let wt = tensor::<B, 1>(w, [dim], device);
        let fused = host(kernels::rms_norm(xt.clone(), wt.clone(), 1e-5));
        let stock = host(stock::rms_norm(xt, wt, 1e-5));
        let tolerance = allowed(&expected, 1e-5);
        assert!(
            max_diff(&fused, &expected) < tolerance,
            "{rows}x{dim} fused: {}",
            max_diff(&fused, &expected)
        );
        assert!(
            half_precision() || max_diff(&stock, &expected) < 1e-5,
            "{rows}x{dim} stock: {}",
            max_diff(&stock, &expected)
        );
    }
    // Rank 4, non-contiguous (a transposed view).
    let x = random(2 * 3 * 5 * 64, 7);
    let xt = tensor::<B, 4>(x, [2, 5, 3, 64], device).swap_dims(1, 2);
    let contiguous = host(xt.clone());
    let w = as_stored::<B>(random(64, 8), device);
    let expected = reference::rms_norm(&contiguous, &w, 1e-6);
    let fused = host(kernels::rms_norm(xt, tensor::<B, 1>(w, [64], device), 1e-6));
    assert!(
        max_diff(&fused, &expected) < allowed(&expected, 1e-5),
        "strided: {}",
        max_diff(&fused, &expected)
    );
}

fn rope_checks<B: Backend>(device: &B::Device) {
    for (i, &[b, h, t, d]) in [[3, 5, 7, 64], [1, 1, 1, 2], [2, 9, 13, 10], [4, 3, 1, 128]]
        .iter()
        .enumerate()
    {
        let seed = 100 + 10 * i as u64;
        let x = as_stored::<B>(random(b * h * t * d, seed), device);
        let cos = as_stored::<B>(random(b * t * d, seed + 1), device);
        let sin = as_stored::<B>(random(b * t * d, seed + 2), device);
        let expected = reference::rope(&x, &cos, &sin, [b, h, t, d]);
        let cos_t = tensor::<B, 4>(cos, [b, 1, t, d], device);
        let sin_t = tensor::<B, 4>(sin, [b, 1, t, d], device);
        // x arrives as [b, t, h, d] swapped to [b, h, t, d], as the attention layer makes it.
        let mut swapped = vec![0.0; x.len()];
        for bi in 0..b {
            for hi in 0..h {
                for ti in 0..t {
                    for e in 0..d {
                        swapped[((bi * t + ti) * h + hi) * d + e] =
                            x[((bi * h + hi) * t + ti) * d + e];
                    }
                }
            }
        }
        let xt = tensor::<B, 4>(swapped, [b, t, h, d], device).swap_dims(1, 2);
        let fused = host(kernels::rope(xt.clone(), &cos_t, &sin_t));
        let stock = host(stock::rope(xt, &cos_t, &sin_t));
        assert!(
            max_diff(&fused, &expected) < allowed(&expected, 1e-5),
            "{b}x{h}x{t}x{d} fused: {}",
            max_diff(&fused, &expected)
        );
        assert!(
            half_precision() || max_diff(&stock, &expected) < 1e-5,
            "{b}x{h}x{t}x{d} stock: {}",
            max_diff(&stock, &expected)
        );
    }
}

/// A ragged paged batch: rows of different lengths, blocks shared between rows (a common
/// prefix), several query tokens per row with growing visibility, grouped-query heads.
fn paged_attention_checks<B: Backend>(device: &B::Device, expect_kernel: bool) {
    for (i, &(heads, kv_heads, d, block_size, tokens)) in [
        (9, 3, 64, 16, 1),
        (4, 4, 32, 4, 3),
        (6, 2, 128, 8, 5),
        (2, 1, 16, 1, 2),
    ]
    .iter()
    .enumerate()
    {
        let num_blocks = 40;
        let width = kv_heads * d;
        let seed = 1000 + 10 * i as u64;
        let k_cache = as_stored::<B>(random(num_blocks * block_size * width, seed), device);
        let v_cache = as_stored::<B>(random(num_blocks * block_size * width, seed + 1), device);
        // Row lengths (keys after this step) and their blocks: rows 0 and 1 share blocks 3 and 7.
        let lengths = [3 * block_size + 1, 2 * block_size, 1, 5 * block_size - 1];
        let tables: Vec<Vec<usize>> = vec![
            vec![3, 7, 12, 30],
            vec![3, 7],
            vec![21],
            vec![1, 2, 4, 8, 16],
        ];
        let batch = lengths.len();
        // Token places: the last `tokens` positions of each row (fewer if the row is shorter;
        // padding places repeat the last position).
        let visible: Vec<Vec<usize>> = lengths
            .iter()
            .map(|&len| {
                (0..tokens)
                    .map(|j| (len + j + 1).saturating_sub(tokens).clamp(1, len))
                    .collect()
            })
            .collect();
        let q = as_stored::<B>(random(batch * heads * tokens * d, seed + 2), device);
        let shape = reference::PagedShape {
            batch,
            heads,
            kv_heads,
            tokens,
            head_dim: d,
            block_size,
        };
        let expected = reference::paged_attention(&q, &k_cache, &v_cache, &tables, &visible, shape);
        let slots = num_blocks * block_size;
        let got = kernels::paged_attention(
            &tensor::<B, 4>(q, [batch, heads, tokens, d], device),
            &tensor::<B, 2>(k_cache, [slots, width], device),
            &tensor::<B, 2>(v_cache, [slots, width], device),
            &ints::<B>(&tables, device),
            &ints::<B>(&visible, device),
            block_size,
        );
        match got {
            Some(out) => {
                let out = host(out);
                let err = max_diff(&out, &expected);
                assert!(
                    err < allowed(&expected, 1e-5),
                    "heads {heads}/{kv_heads} d {d} bs {block_size} t {tokens}: {err}"
                );
            }
            None => assert!(
                !expect_kernel,
                "the paged attention kernel declined on a GPU backend"
            ),
        }
    }
}

macro_rules! on_test_device {
    ($name:ident, $check:expr) => {
        #[test]
        fn $name() {
            struct Task;
            impl BackendTask for Task {
                type Output = ();
                fn run<B: Backend>(self, device: B::Device) {
                    kernels::set_enabled(true);
                    let gpu = test_device() != DeviceKind::Cpu;
                    assert_eq!(
                        kernels::accelerated::<B>(),
                        gpu,
                        "kernels used iff on a GPU backend"
                    );
                    kernels::set_poison_outputs(true);
                    $check(&device, gpu);
                }
            }
            run_on(test_device(), Task).expect("test device available");
        }
    };
}

on_test_device!(rms_norm_matches_reference, |d: &B::Device, _| {
    rms_norm_checks::<B>(d)
});
on_test_device!(rope_matches_reference, |d: &B::Device, _| rope_checks::<B>(
    d
));
on_test_device!(paged_attention_matches_reference, |d: &B::Device, gpu| {
    paged_attention_checks::<B>(d, gpu)
});
// Every backend has a sampling kernel (CubeCL on GPU backends, the host kernel on ndarray). It
// writes token ids as floats, exact in f32 only: it declines half precision.
on_test_device!(sampling_matches_reference, |d: &B::Device, _| {
    sampling_checks::<B>(d, !half_precision())
});

/// The sampling rows every shape is checked with: greedy, plain temperature, and each cut alone
/// and combined (a top-p of 0 keeps only the most likely token).
fn sampling_rows(rows: usize, seed: u64) -> Vec<reference::SampleParams> {
    let kinds = [
        (0.0, 0, 1.0, 0.0),
        (0.7, 0, 1.0, 0.0),
        (1.0, 1, 1.0, 0.0),
        (1.0, 50, 1.0, 0.0),
        (0.8, 0, 0.9, 0.0),
        (1.3, 0, 1.0, 0.1),
        (1.0, 20, 0.8, 0.05),
        (1.0, 0, 0.0, 0.0),
        (0.5, 3, 0.5, 0.0),
    ];
    let uniforms = random(rows, seed);
    (0..rows)
        .map(|r| {
            let (temperature, top_k, top_p, min_p) = kinds[(r + seed as usize) % kinds.len()];
            reference::SampleParams {
                temperature,
                top_k,
                top_p,
                min_p,
                uniform: (uniforms[r] + 2.0) / 4.0,
            }
        })
        .collect()
}

fn sampling_checks<B: Backend>(device: &B::Device, expect_kernel: bool) {
    use mars2_engine::device_sampling::{sample_on_device, RowDraw};
    for (case, &(rows, vocab)) in [(1, 1), (9, 1000), (18, 4099), (9, 49152)]
        .iter()
        .enumerate()
    {
        let seed = 40 + case as u64;
        // Logits spread like a model's (about ±6), with a few exact ties.
        let mut logits: Vec<f32> = random(rows * vocab, seed).iter().map(|v| v * 3.0).collect();
        if vocab > 10 {
            logits[3] = logits[7];
        }
        let logits = as_stored::<B>(logits, device);
        let params = sampling_rows(rows, seed);
        let draws: Vec<RowDraw> = params
            .iter()
            .map(|p| RowDraw {
                temperature: p.temperature,
                top_k: p.top_k,
                top_p: p.top_p,
                min_p: p.min_p,
                uniform: p.uniform as f64,
            })
            .collect();
        let logits_t = tensor::<B, 2>(logits.clone(), [rows, vocab], device);
        let flat: Vec<f32> = params.iter().flat_map(|p| p.row()).collect();
        let params_t = tensor::<B, 2>(flat, [rows, reference::SampleParams::WIDTH], device);
        let fused = kernels::sample(&logits_t, &params_t).map(host);
        assert_eq!(
            fused.is_some(),
            expect_kernel,
            "the sampling kernel runs on f32 logits"
        );
        let sampled = sample_on_device(logits_t, &draws, device);
        for (r, p) in params.iter().enumerate() {
            let row = &logits[r * vocab..][..vocab];
            let (want_id, want_lp) = reference::sample(row, *p);
            let got = &sampled[r];
            let got_lp = got.logprob as f64;
            if p.temperature <= 0.0 {
                assert_eq!(
                    got.id as usize, want_id,
                    "{rows}x{vocab} row {r}: greedy id"
                );
                assert!(
                    (got_lp - want_lp).abs() < 1e-3,
                    "row {r}: {got_lp} vs {want_lp}"
                );
                continue;
            }
            // Whatever the order of the draw, the token is kept and its log-prob is its
            // probability under the kept distribution.
            let kept = reference::sampling_distribution(row, *p);
            let prob = kept
                .iter()
                .find(|(i, _)| *i == got.id as usize)
                .map(|(_, q)| *q)
                .unwrap_or_else(|| {
                    panic!("{rows}x{vocab} row {r} {p:?}: token {} not kept", got.id)
                });
            assert!(
                (got_lp - prob.ln()).abs() < 1e-3,
                "{rows}x{vocab} row {r} {p:?}: log-prob {got_lp} vs {}",
                prob.ln()
            );
            if let Some(out) = &fused {
                // The kernel draws exactly as the reference, up to a uniform number a hair
                // away from a boundary of the cumulative distribution.
                let id = out[2 * r] as usize;
                let near = [-1e-4f32, 1e-4].iter().any(|d| {
                    let shifted = reference::SampleParams {
                        uniform: (p.uniform + d).clamp(0.0, 0.999_999),
                        ..*p
                    };
                    reference::sample(row, shifted).0 == id
                });
                assert!(
                    id == want_id || near,
                    "{rows}x{vocab} row {r} {p:?}: kernel drew {id}, reference {want_id}"
                );
                assert!((out[2 * r + 1] as f64 - want_lp).abs() < 1e-3 || id != want_id);
            }
        }
    }
}

/// On backends without the kernel the engine gathers keys and runs dense attention; the host
/// reference must agree with that path too (it is the definition both are held to).
#[test]
fn reference_paged_attention_agrees_with_dense_attention() {
    use burn::tensor::Bool;
    use mars2_models::attention_reference;
    type C = burn::backend::NdArray<f32>;
    let device = Default::default();
    let (heads, kv_heads, d, bs) = (4, 2, 8, 4);
    let width = kv_heads * d;
    let tables = vec![vec![2, 0, 5], vec![2, 1]];
    let lengths = [10usize, 6];
    let visible = vec![vec![9, 10], vec![5, 6]];
    let k_cache = random(6 * bs * width, 1);
    let v_cache = random(6 * bs * width, 2);
    let q = random(2 * heads * 2 * d, 3);
    let shape = reference::PagedShape {
        batch: 2,
        heads,
        kv_heads,
        tokens: 2,
        head_dim: d,
        block_size: bs,
    };
    let expected = reference::paged_attention(&q, &k_cache, &v_cache, &tables, &visible, shape);
    // Dense: gather each row's keys in position order, pad to 10, mask beyond visibility.
    let mut keys = vec![0.0f32; 2 * 10 * width];
    let mut values = keys.clone();
    let mut hidden = Vec::new();
    for b in 0..2 {
        for j in 0..lengths[b] {
            let slot = tables[b][j / bs] * bs + j % bs;
            keys[(b * 10 + j) * width..][..width]
                .copy_from_slice(&k_cache[slot * width..][..width]);
            values[(b * 10 + j) * width..][..width]
                .copy_from_slice(&v_cache[slot * width..][..width]);
        }
        for &seen in &visible[b] {
            hidden.extend((0..10).map(|j| j >= seen));
        }
    }
    let heads_first =
        |v: Vec<f32>| tensor::<C, 4>(v, [2, 10, kv_heads, d], &device).swap_dims(1, 2);
    let mask = Tensor::<C, 3, Bool>::from_data(TensorData::new(hidden, [2, 2, 10]), &device)
        .unsqueeze_dim(1);
    let dense = attention_reference(
        tensor::<C, 4>(q, [2, heads, 2, d], &device),
        heads_first(keys),
        heads_first(values),
        mask,
    );
    let err = max_diff(&host(dense), &expected);
    assert!(err < 1e-5, "{err}");
}

fn quantized_matmul_checks<B: Backend>(device: &B::Device, gpu: bool) {
    use mars2_models::kernels::quantized::{fused_matmul, MAX_FUSED_ROWS};
    use mars2_models::kernels::{quantized_linear, QuantizedMatrix};
    use mars2_models::{QuantFormat, QuantizedBlocks};
    // Every shape is measured and printed before anything is asserted.
    let mut failures = Vec::new();
    for format in [QuantFormat::Q8_0, QuantFormat::Q4_1, QuantFormat::Q6_K] {
        for (i, &(m, n, k)) in [
            (1, 70, 96),
            (3, 33, 32),
            (16, 129, 576),
            (5, 1, 2048),
            (17, 40, 64),
        ]
        .iter()
        .enumerate()
        {
            let seed = 500 + 10 * i as u64;
            let blocks = QuantizedBlocks::quantize(format, &random(n * k, seed), n, k)
                .expect("whole blocks");
            let x = random(m * k, seed + 1);
            let w = QuantizedMatrix::<B>::new(blocks.clone(), device);
            assert_eq!(w.dims(), [n, k]);
            // Kept quantized: 9 bits a value (Q8_0), 6 (Q4_1), 10 (Q6_K).
            let bits = match format {
                QuantFormat::Q8_0 => 9,
                QuantFormat::Q4_1 => 6,
                QuantFormat::Q6_K => 10,
            };
            assert!(
                w.byte_size() * 8 <= n * k * bits,
                "{format:?} keeps {} bytes",
                w.byte_size()
            );
            let dense = host(w.dequantize());
            let values = blocks.dequantize();
            let unpacking = max_diff(&dense, &values);
            if unpacking >= allowed(&values, 1e-6) {
                failures.push(format!(
                    "{format:?} {n}x{k}: unpacking differs by {unpacking}"
                ));
            }
            let x = as_stored::<B>(x, device);
            let expected = reference::quantized_matmul(&x, m, &blocks);
            let xt = tensor::<B, 2>(x, [m, k], device);
            let tolerance = allowed(&expected, 2e-4 * (k as f32).sqrt());
            let y = host(quantized_linear(xt.clone().reshape([1, m, k]), &w));
            let err = max_diff(&y, &expected);
            // Burn's f32 matmul on CUDA rounds like TF32 (8.9e-3 at k = 96 on an H200).
            let stock_tolerance = if gpu {
                allowed(&expected, 3e-3 * (k as f32).sqrt())
            } else {
                tolerance
            };
            let stock = host(stock::linear_transposed(
                xt.clone().reshape([1, m, k]),
                w.dequantize(),
            ));
            let stock_err = max_diff(&stock, &expected);
            let fused = fused_matmul(&xt, &w);
            println!(
                "{format:?} {m}x{k}·{n}: quantized_linear {err:.2e}, stock {stock_err:.2e} \
                 (allowed {tolerance:.2e} through the fused kernel, {stock_tolerance:.2e} \
                 through the stock product), fused kernel used: {}",
                fused.is_some()
            );
            // Past the fused kernel's rows, `quantized_linear` is the stock dense product.
            let kernel_tolerance = if fused.is_some() {
                tolerance
            } else {
                stock_tolerance
            };
            if err >= kernel_tolerance {
                failures.push(format!("{format:?} {m}x{k}·{n}: kernel {err}"));
            }
            if !half_precision() && stock_err >= stock_tolerance {
                failures.push(format!("{format:?} {m}x{k}·{n}: stock {stock_err}"));
            }
            // The ndarray host kernel and the GPU kernel both take up to 16 rows.
            if fused.is_some() != (m <= MAX_FUSED_ROWS) {
                failures.push(format!(
                    "{format:?} {m} rows (gpu: {gpu}): fused kernel used: {}",
                    fused.is_some()
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

on_test_device!(quantized_matmul_matches_reference, |d: &B::Device, gpu| {
    quantized_matmul_checks::<B>(d, gpu)
});

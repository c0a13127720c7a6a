//! The kernel benchmark workloads, shared by `cargo bench --bench kernels` (criterion) and
//! `cargo xtask bench kernels` (a table): each op at SmolLM2-135M's shapes, through Burn's
//! stock ops and, where the backend has one, through the project's fused kernel.
//!
//! Every run ends with a device sync, so GPU timings cover the work and not only its launch.

use burn::tensor::backend::Backend;
use burn::tensor::{Bool, Distribution, Int, Tensor, TensorData};
use mars2_engine::device_sampling::{sample_with_stock_ops, RowDraw};
use mars2_models::attention_reference;
use mars2_models::kernels::quantized::fused_matmul;
use mars2_models::kernels::reference::SampleParams;
use mars2_models::kernels::{self, stock, QuantizedMatrix};
use mars2_models::{QuantFormat, QuantizedBlocks};

/// One way of running an op (stock or fused); returns after the device finished.
pub type Runner = Box<dyn Fn()>;

/// An operation at one shape with its cost model.
pub struct Workload {
    pub op: String,
    pub shape: String,
    /// Bytes read and written once by an ideal implementation (for GB/s).
    pub bytes: f64,
    /// Floating-point operations (for GFLOP/s); 0 where bandwidth is the measure.
    pub flops: f64,
    pub stock: Runner,
    /// `None` where this backend has no custom kernel for the op.
    pub fused: Option<Runner>,
}

fn sync<B: Backend>(device: &B::Device) {
    // A failed sync surfaces on the next read anyway; benchmarks only need the wait.
    let _ = B::sync(device);
}

/// Bytes of one float of `B` (4 for f32, 2 for f16 and bf16).
fn elem_bytes<B: Backend>() -> usize {
    std::mem::size_of::<B::FloatElem>()
}

/// `B`'s float type as a name (`f32`, `f16`, `bf16`).
fn float_name<B: Backend>() -> &'static str {
    use burn::tensor::{DType, Element};
    match <B::FloatElem as Element>::dtype() {
        DType::F16 => "f16",
        DType::BF16 => "bf16",
        DType::F64 => "f64",
        _ => "f32",
    }
}

fn random<B: Backend, const D: usize>(dims: [usize; D], device: &B::Device) -> Tensor<B, D> {
    Tensor::random(dims, Distribution::Uniform(-1.0, 1.0), device)
}

const HIDDEN: usize = 576;
const HEADS: usize = 9;
const KV_HEADS: usize = 3;
const HEAD_DIM: usize = 64;
const INTERMEDIATE: usize = 1536;
const VOCAB: usize = 49_152;
const BLOCK: usize = 16;

fn rms_norm<B: Backend>(rows: usize, device: &B::Device) -> Workload {
    let x = random::<B, 2>([rows, HIDDEN], device);
    let w = random::<B, 1>([HIDDEN], device);
    let (x2, w2, d1, d2) = (x.clone(), w.clone(), device.clone(), device.clone());
    Workload {
        op: "rms_norm".into(),
        shape: format!("{rows}×{HIDDEN}"),
        bytes: ((2 * rows * HIDDEN + HIDDEN) * elem_bytes::<B>()) as f64,
        flops: 0.0,
        stock: Box::new(move || {
            let _ = stock::rms_norm(x.clone(), w.clone(), 1e-5);
            sync::<B>(&d1);
        }),
        fused: kernels::accelerated::<B>().then(|| -> Runner {
            Box::new(move || {
                let _ = kernels::rms_norm(x2.clone(), w2.clone(), 1e-5);
                sync::<B>(&d2);
            })
        }),
    }
}

fn rope<B: Backend>(batch: usize, tokens: usize, device: &B::Device) -> Workload {
    let x = random::<B, 4>([batch, HEADS, tokens, HEAD_DIM], device);
    let cos = random::<B, 4>([batch, 1, tokens, HEAD_DIM], device);
    let sin = random::<B, 4>([batch, 1, tokens, HEAD_DIM], device);
    let elems = batch * HEADS * tokens * HEAD_DIM;
    let (x2, c2, s2, d1, d2) = (
        x.clone(),
        cos.clone(),
        sin.clone(),
        device.clone(),
        device.clone(),
    );
    Workload {
        op: "rope".into(),
        shape: format!("{batch}×{HEADS}×{tokens}×{HEAD_DIM}"),
        bytes: ((2 * elems + 2 * batch * tokens * HEAD_DIM) * elem_bytes::<B>()) as f64,
        flops: 0.0,
        stock: Box::new(move || {
            let _ = stock::rope(x.clone(), &cos, &sin);
            sync::<B>(&d1);
        }),
        fused: kernels::accelerated::<B>().then(|| -> Runner {
            Box::new(move || {
                let _ = kernels::rope(x2.clone(), &c2, &s2);
                sync::<B>(&d2);
            })
        }),
    }
}

/// Decode attention: one new query per row over `context` cached keys, rows' blocks scattered
/// through the pool. Stock: gather the keys in position order, dense masked attention (what
/// the engine does without the kernel).
fn paged_decode<B: Backend>(batch: usize, context: usize, device: &B::Device) -> Workload {
    let width = KV_HEADS * HEAD_DIM;
    let blocks_per_row = context.div_ceil(BLOCK);
    let pool_blocks = batch * blocks_per_row + 1;
    let k_cache = random::<B, 2>([pool_blocks * BLOCK, width], device);
    let v_cache = random::<B, 2>([pool_blocks * BLOCK, width], device);
    // Row r owns blocks r, r + batch, r + 2·batch… (interleaved, as a busy pool leaves them).
    let tables: Vec<i64> = (0..batch)
        .flat_map(|r| (0..blocks_per_row).map(move |i| (r + i * batch) as i64))
        .collect();
    let slots: Vec<i64> = (0..batch)
        .flat_map(|r| {
            (0..context).map(move |j| ((r + (j / BLOCK) * batch) * BLOCK + j % BLOCK) as i64)
        })
        .collect();
    let tables =
        Tensor::<B, 2, Int>::from_data(TensorData::new(tables, [batch, blocks_per_row]), device);
    let visible = Tensor::<B, 2, Int>::from_data(
        TensorData::new(vec![context as i64; batch], [batch, 1]),
        device,
    );
    let slots = Tensor::<B, 1, Int>::from_data(TensorData::new(slots, [batch * context]), device);
    let mask = Tensor::<B, 4, Bool>::from_data(
        TensorData::new(vec![false; batch * context], [batch, 1, 1, context]),
        device,
    );
    let q = random::<B, 4>([batch, HEADS, 1, HEAD_DIM], device);
    let (q2, k2, v2, d1, d2) = (
        q.clone(),
        k_cache.clone(),
        v_cache.clone(),
        device.clone(),
        device.clone(),
    );
    let kv_bytes = 2 * batch * context * width * elem_bytes::<B>();
    Workload {
        op: "paged_decode_attention".into(),
        shape: format!("{batch} rows × {context} keys, {HEADS}/{KV_HEADS} heads of {HEAD_DIM}"),
        bytes: kv_bytes as f64,
        flops: (4 * batch * HEADS * context * HEAD_DIM) as f64,
        stock: Box::new(move || {
            let heads_first = |t: Tensor<B, 2>| {
                t.reshape([batch, context, KV_HEADS, HEAD_DIM])
                    .swap_dims(1, 2)
            };
            let k = heads_first(k_cache.clone().select(0, slots.clone()));
            let v = heads_first(v_cache.clone().select(0, slots.clone()));
            let _ = mars2_models::attention_grouped(q.clone(), k, v, mask.clone());
            sync::<B>(&d1);
        }),
        fused: kernels::accelerated::<B>().then(|| -> Runner {
            Box::new(move || {
                let _ = kernels::paged_attention(&q2, &k2, &v2, &tables, &visible, BLOCK);
                sync::<B>(&d2);
            })
        }),
    }
}

fn matmul<B: Backend>(m: usize, k: usize, n: usize, device: &B::Device) -> Workload {
    let a = random::<B, 2>([m, k], device);
    let b = random::<B, 2>([k, n], device);
    let d = device.clone();
    Workload {
        op: format!("matmul {}", float_name::<B>()),
        shape: format!("{m}×{k} · {k}×{n}"),
        bytes: ((m * k + k * n + m * n) * elem_bytes::<B>()) as f64,
        flops: (2 * m * k * n) as f64,
        stock: Box::new(move || {
            let _ = a.clone().matmul(b.clone());
            sync::<B>(&d);
        }),
        fused: None,
    }
}

/// A projection of a few rows (a decode step): Burn's matmul against `kernels::linear`, which
/// takes the skinny host kernel on the CPU backend.
fn projection<B: Backend>(m: usize, k: usize, n: usize, device: &B::Device) -> Workload {
    let x = random::<B, 3>([1, m, k], device);
    let w = random::<B, 2>([k, n], device);
    let fused = (kernels::host::is_ndarray::<B>() && m <= kernels::skinny::MAX_ROWS).then(|| {
        let (x, w) = (x.clone(), w.clone());
        Box::new(move || {
            let _ = kernels::linear(x.clone(), w.clone());
        }) as Runner
    });
    let d = device.clone();
    Workload {
        op: format!("projection {}", float_name::<B>()),
        shape: format!("{m}×{k} · {k}×{n}"),
        bytes: ((m * k + k * n + m * n) * elem_bytes::<B>()) as f64,
        flops: (2 * m * k * n) as f64,
        stock: Box::new(move || {
            let _ = stock::linear(x.clone(), w.clone());
            sync::<B>(&d);
        }),
        fused,
    }
}

/// A projection with a weight kept in a block format: Burn's ops unpacking the weight and
/// multiplying densely, against the fused quantized kernel (host kernel on ndarray, CubeCL
/// kernel on GPU backends). `n` outputs from `k` inputs, weight stored `[n, k]`.
fn quantized_projection<B: Backend>(
    format: QuantFormat,
    m: usize,
    k: usize,
    n: usize,
    device: &B::Device,
) -> Workload {
    let x = random::<B, 3>([1, m, k], device);
    let values: Vec<f32> = random::<B, 2>([n, k], device)
        .into_data()
        .iter::<f32>()
        .collect();
    let blocks = QuantizedBlocks::quantize(format, &values, n, k)
        .expect("the benchmark shapes are whole blocks");
    let w = QuantizedMatrix::<B>::new(blocks, device);
    let weight_bytes = w.byte_size();
    let fused = fused_matmul(&x.clone().reshape([m, k]), &w)
        .is_some()
        .then(|| {
            let (x, w, d) = (x.clone(), w.clone(), device.clone());
            Box::new(move || {
                let _ = kernels::quantized_linear(x.clone(), &w);
                sync::<B>(&d);
            }) as Runner
        });
    let d = device.clone();
    Workload {
        op: format!("projection {}", format.name()),
        shape: format!("{m}×{k} · {k}×{n}"),
        bytes: (weight_bytes + (m * k + m * n) * elem_bytes::<B>()) as f64,
        flops: (2 * m * k * n) as f64,
        stock: Box::new(move || {
            let _ = stock::linear_transposed(x.clone(), w.dequantize());
            sync::<B>(&d);
        }),
        fused,
    }
}

/// Causal prefill attention of one sequence (stock dense attention).
fn prefill_attention<B: Backend>(tokens: usize, device: &B::Device) -> Workload {
    let q = random::<B, 4>([1, HEADS, tokens, HEAD_DIM], device);
    let k = random::<B, 4>([1, KV_HEADS, tokens, HEAD_DIM], device);
    let v = random::<B, 4>([1, KV_HEADS, tokens, HEAD_DIM], device);
    let hidden: Vec<bool> = (0..tokens)
        .flat_map(|t| (0..tokens).map(move |s| s > t))
        .collect();
    let mask = Tensor::<B, 2, Bool>::from_data(TensorData::new(hidden, [tokens, tokens]), device)
        .reshape([1, 1, tokens, tokens]);
    let d = device.clone();
    Workload {
        op: "prefill attention".into(),
        shape: format!("{tokens} tokens, {HEADS}/{KV_HEADS} heads of {HEAD_DIM}"),
        bytes: ((HEADS + 2 * KV_HEADS) * tokens * HEAD_DIM * elem_bytes::<B>() * 2) as f64,
        flops: (4 * HEADS * tokens * tokens * HEAD_DIM) as f64,
        stock: Box::new(move || {
            let _ = attention_reference(q.clone(), k.clone(), v.clone(), mask.clone());
            sync::<B>(&d);
        }),
        fused: None,
    }
}

/// Top-k/top-p sampling with log-probs over the full vocabulary, per-row parameters; in f32
/// whatever the backend's float type, as the engine samples. The logits are drawn uniformly
/// from [-1, 1]: a nearly flat distribution (top-p 0.95 keeps most of the vocabulary, the worst
/// case for a kernel that looks at the most likely tokens first). `peaked` lifts every 2,048th
/// token by 20, so that 24 tokens hold nearly all the mass, as a language model's next-token
/// distribution often does.
fn sampling<B: Backend>(rows: usize, peaked: bool, device: &B::Device) -> Workload {
    let mut logits = random::<B, 2>([rows, VOCAB], device).cast(burn::tensor::FloatDType::F32);
    if peaked {
        let lift: Vec<f32> = (0..VOCAB)
            .map(|i| if i % 2048 == 0 { 20.0 } else { 0.0 })
            .collect();
        let lift = Tensor::<B, 1>::from_data(
            TensorData::new(lift, [VOCAB]),
            (device, burn::tensor::DType::F32),
        );
        logits = logits + lift.unsqueeze::<2>();
    }
    let draws: Vec<RowDraw> = (0..rows)
        .map(|i| RowDraw {
            temperature: 0.7,
            top_k: if i % 2 == 0 { 50 } else { 0 },
            top_p: 0.95,
            min_p: 0.0,
            uniform: (i as f64 + 0.5) / rows as f64,
        })
        .collect();
    let params: Vec<f32> = draws.iter().flat_map(|d| d.sample_params().row()).collect();
    let params = Tensor::<B, 2>::from_data(
        TensorData::new(params, [rows, SampleParams::WIDTH]),
        (device, burn::tensor::DType::F32),
    );
    let fused = kernels::sample(&logits, &params).is_some().then(|| {
        let (logits, params) = (logits.clone(), params.clone());
        Box::new(move || {
            if let Some(out) = kernels::sample(&logits, &params) {
                // The engine reads the ids back every step; so does the benchmark.
                let _ = out.into_data();
            }
        }) as Runner
    });
    let d = device.clone();
    Workload {
        op: "sampling".into(),
        shape: if peaked {
            format!("{rows}×{VOCAB}, peaked")
        } else {
            format!("{rows}×{VOCAB}, flat")
        },
        bytes: (rows * VOCAB * 4) as f64,
        flops: 0.0,
        stock: Box::new(move || {
            let _ = sample_with_stock_ops(logits.clone(), &draws, &d);
        }),
        fused,
    }
}

/// Every workload at decode and prefill sizes.
pub fn workloads<B: Backend>(device: &B::Device) -> Vec<Workload> {
    vec![
        rms_norm::<B>(32, device),
        rms_norm::<B>(4096, device),
        rope::<B>(32, 1, device),
        rope::<B>(8, 512, device),
        paged_decode::<B>(8, 1024, device),
        paged_decode::<B>(32, 1024, device),
        projection::<B>(1, HIDDEN, INTERMEDIATE, device),
        projection::<B>(8, HIDDEN, INTERMEDIATE, device),
        projection::<B>(16, HIDDEN, INTERMEDIATE, device),
        quantized_projection::<B>(QuantFormat::Q8_0, 1, HIDDEN, INTERMEDIATE, device),
        quantized_projection::<B>(QuantFormat::Q4_1, 1, HIDDEN, INTERMEDIATE, device),
        quantized_projection::<B>(QuantFormat::Q4_1, 16, HIDDEN, INTERMEDIATE, device),
        matmul::<B>(32, HIDDEN, INTERMEDIATE, device),
        matmul::<B>(2048, HIDDEN, INTERMEDIATE, device),
        prefill_attention::<B>(512, device),
        sampling::<B>(32, false, device),
        sampling::<B>(32, true, device),
    ]
}

//! Fused kernels with one entry point per operation and a choice of implementation per backend.
//!
//! On a CubeCL backend (`cuda`, `wgpu` features), with f32, f16 or bf16 tensors, the operations
//! below run as hand-written CubeCL kernels ([`cube`], computing in f32): one launch instead of
//! the chain of Burn ops that expresses them. Everywhere else (the ndarray CPU backend, autodiff
//! backends during training) they run as Burn tensor ops ([`stock`]), which is also what the
//! kernels are benchmarked against. [`reference`] holds slow, obvious host implementations that both
//! are tested against.
//!
//! On the ndarray CPU backend, products of a few rows with a weight matrix (decode steps) run
//! through [`skinny`], which reads the weight once instead of packing it, and token sampling
//! runs through [`host_sampling`].
//!
//! Weights kept in a GGUF block format ([`quantized`]) multiply through their own kernels: the
//! host kernel [`skinny_quantized`] on ndarray, a CubeCL kernel on GPU backends, and
//! [`quantized_autodiff`] while training on the CPU (the gradient reaches the input, the
//! blocks stay blocks).
//!
//! The backend is recognised at run time from the type of its tensor primitive, so model code
//! stays generic over `B: Backend`.

#[cfg(feature = "cubecl")]
pub mod cube;
pub mod host;
pub mod host_attention;
pub mod host_ops;
pub mod host_sampling;
#[cfg(target_arch = "x86_64")]
mod int8_amx;
pub mod int8_dot;
#[cfg(target_arch = "x86_64")]
mod int8_tiles;
pub mod quantized;
pub mod quantized_autodiff;
mod quantized_module;
pub mod reference;
pub mod skinny;
pub mod skinny_quantized;
pub mod stock;

pub use quantized::{quantized_linear, QuantizedMatrix};

use std::any::Any;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor};

/// 0: not decided yet (read `MARS2_KERNELS`), 1: on, 2: off.
static ENABLED: AtomicU8 = AtomicU8::new(0);
static POISON: AtomicBool = AtomicBool::new(false);

/// Turns the custom kernels on or off process-wide; off runs the stock ops everywhere, for
/// side-by-side measurements. The default is on, unless the environment variable
/// `MARS2_KERNELS` is `stock` (or `off`).
pub fn set_enabled(enabled: bool) {
    ENABLED.store(if enabled { 1 } else { 2 }, Ordering::Relaxed);
}

pub fn enabled() -> bool {
    match ENABLED.load(Ordering::Relaxed) {
        0 => {
            let off = matches!(
                std::env::var("MARS2_KERNELS").as_deref(),
                Ok("stock") | Ok("off")
            );
            set_enabled(!off);
            !off
        }
        state => state == 1,
    }
}

/// How the host kernel multiplies activations with weights kept in blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HostActivations {
    /// Blocks unpacked to f32 and multiplied with the f32 activations ([`skinny_quantized`]).
    F32,
    /// Activations quantized to 8-bit blocks once per product, integer dot products
    /// ([`int8_dot`]), as llama.cpp computes: faster, with the activations' rounding error.
    Int8,
}

impl HostActivations {
    /// Its name on command lines and in run records.
    pub fn name(self) -> &'static str {
        match self {
            HostActivations::F32 => "f32",
            HostActivations::Int8 => "int8",
        }
    }
}

impl std::str::FromStr for HostActivations {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "f32" => Ok(HostActivations::F32),
            "int8" => Ok(HostActivations::Int8),
            _ => Err(format!("unknown activations {s:?} (supported: f32, int8)")),
        }
    }
}

/// 0: not decided yet (read `MARS2_ACTIVATIONS`), 1: f32, 2: int8.
static ACTIVATIONS: AtomicU8 = AtomicU8::new(0);

thread_local! {
    /// A choice for this thread only ([`with_host_activations`]), over the process-wide one.
    static ACTIVATIONS_HERE: std::cell::Cell<Option<HostActivations>> =
        const { std::cell::Cell::new(None) };
}

/// Chooses the host kernel for weights kept in blocks, process-wide. The default is
/// [`HostActivations::F32`] unless the environment variable `MARS2_ACTIVATIONS` is `int8`.
pub fn set_host_activations(activations: HostActivations) {
    let code = match activations {
        HostActivations::F32 => 1,
        HostActivations::Int8 => 2,
    };
    ACTIVATIONS.store(code, Ordering::Relaxed);
}

/// Runs `f` with `activations` chosen on this thread (where a forward pass decides its
/// kernels), whatever the process-wide choice; the previous choice comes back afterwards.
pub fn with_host_activations<R>(activations: HostActivations, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<HostActivations>);
    impl Drop for Restore {
        fn drop(&mut self) {
            ACTIVATIONS_HERE.with(|here| here.set(self.0));
        }
    }
    let _restore = Restore(ACTIVATIONS_HERE.with(|here| here.replace(Some(activations))));
    f()
}

/// The host kernel used on this thread for weights kept in blocks.
pub fn host_activations() -> HostActivations {
    if let Some(here) = ACTIVATIONS_HERE.with(|here| here.get()) {
        return here;
    }
    match ACTIVATIONS.load(Ordering::Relaxed) {
        0 => {
            let chosen = match std::env::var("MARS2_ACTIVATIONS").as_deref() {
                Ok("int8") => HostActivations::Int8,
                _ => HostActivations::F32,
            };
            set_host_activations(chosen);
            chosen
        }
        1 => HostActivations::F32,
        _ => HostActivations::Int8,
    }
}

/// Fills every kernel output with NaN before the kernel runs, so that tests see any element a
/// kernel forgot to write.
pub fn set_poison_outputs(poison: bool) {
    POISON.store(poison, Ordering::Relaxed);
}

#[cfg(feature = "cubecl")]
pub(crate) fn poison_outputs() -> bool {
    POISON.load(Ordering::Relaxed)
}

/// Moves `x` into a `U` when `T` and `U` are the same type (how generic tensors reach a
/// backend's concrete primitive without unsafe code).
pub(crate) fn cast<T: 'static, U: 'static>(x: T) -> Result<U, T> {
    let mut slot = Some(x);
    match (&mut slot as &mut dyn Any)
        .downcast_mut::<Option<U>>()
        .and_then(Option::take)
    {
        Some(u) => Ok(u),
        None => Err(slot.expect("the value is still there when the types differ")),
    }
}

/// Whether this backend has any custom kernel (GPU kernels, or the host kernels of the ndarray
/// backend); benchmarks then also time the stock ops beside them.
pub fn has_custom_kernels<B: Backend>() -> bool {
    accelerated::<B>() || (enabled() && host::is_ndarray::<B>())
}

/// Whether this backend runs the custom kernels (else every entry point falls back to Burn ops).
pub fn accelerated<B: Backend>() -> bool {
    #[cfg(feature = "cubecl")]
    if enabled() && cube::is_cube_backend::<B>() {
        return true;
    }
    false
}

/// `x / sqrt(mean(x²) + ε) · weight` over the last dimension.
pub fn rms_norm<B: Backend, const D: usize>(
    x: Tensor<B, D>,
    weight: Tensor<B, 1>,
    eps: f64,
) -> Tensor<B, D> {
    #[cfg(feature = "cubecl")]
    if enabled() {
        if let Some(out) = cube::rms_norm(&x, &weight, eps) {
            return out;
        }
    }
    stock::rms_norm(x, weight, eps)
}

/// Rotate-half RoPE of `x` `[batch, heads, tokens, head_dim]` with per-token tables
/// `[batch, 1, tokens, head_dim]` (see `Rope::tables`).
pub fn rope<B: Backend>(x: Tensor<B, 4>, cos: &Tensor<B, 4>, sin: &Tensor<B, 4>) -> Tensor<B, 4> {
    #[cfg(feature = "cubecl")]
    if enabled() {
        if let Some(out) = cube::rope(&x, cos, sin) {
            return out;
        }
    }
    stock::rope(x, cos, sin)
}

/// Attention of queries `q` `[batch, heads, tokens, head_dim]` over paged keys and values.
///
/// `k_cache`/`v_cache` are one layer's slots `[slots, kv_heads·head_dim]`, slot `s` in block
/// `s / block_size`; `block_tables` `[batch, max_blocks]` lists each row's blocks in position
/// order; query `t` of row `b` sees keys at positions `0..visible[b, t]`. Returns `None` on
/// backends without the kernel: the caller gathers and runs dense attention instead (see
/// [`reference::paged_attention`] for the definition).
pub fn paged_attention<B: Backend>(
    q: &Tensor<B, 4>,
    k_cache: &Tensor<B, 2>,
    v_cache: &Tensor<B, 2>,
    block_tables: &Tensor<B, 2, Int>,
    visible: &Tensor<B, 2, Int>,
    block_size: usize,
) -> Option<Tensor<B, 4>> {
    #[cfg(feature = "cubecl")]
    if enabled() {
        return cube::paged_attention(q, k_cache, v_cache, block_tables, visible, block_size);
    }
    let _ = (q, k_cache, v_cache, block_tables, visible, block_size);
    None
}

/// One token per row of `logits` `[rows, vocab]` under per-row parameters `params`
/// `[rows, 5]` (the rows of [`reference::SampleParams::row`]): returns `[rows, 2]` holding each
/// row's token id (as a float, exact below 2²⁴) and its log-probability, so a decode step reads
/// back one small tensor. `None` on backends without the kernel (the engine then samples with
/// stock ops). See [`reference::sample`] for the definition; on ndarray the host kernel
/// [`host_sampling`] runs it.
pub fn sample<B: Backend>(logits: &Tensor<B, 2>, params: &Tensor<B, 2>) -> Option<Tensor<B, 2>> {
    let [rows, vocab] = logits.dims();
    // Token ids travel as f32, exact below 2²⁴.
    let shapes_fit =
        params.dims() == [rows, reference::SampleParams::WIDTH] && vocab > 0 && vocab < 1 << 24;
    if !enabled() || !shapes_fit {
        return None;
    }
    #[cfg(feature = "cubecl")]
    if let Some(out) = cube::sample(logits, params) {
        return Some(out);
    }
    host::sample(logits, params)
}

/// `x·W` for `x` `[batch, tokens, k]` and `W` `[k, n]`.
pub fn linear<B: Backend>(x: Tensor<B, 3>, weight: Tensor<B, 2>) -> Tensor<B, 3> {
    project(x, weight, skinny::WeightLayout::InOut, stock::linear)
}

/// `x·Wᵀ` for `x` `[batch, tokens, k]` and `W` `[n, k]` (a tied output head).
pub fn linear_transposed<B: Backend>(x: Tensor<B, 3>, weight: Tensor<B, 2>) -> Tensor<B, 3> {
    project(
        x,
        weight,
        skinny::WeightLayout::OutIn,
        stock::linear_transposed,
    )
}

/// A projection through the skinny host kernel when it takes the shape and backend, else
/// through `stock`.
fn project<B: Backend>(
    x: Tensor<B, 3>,
    weight: Tensor<B, 2>,
    layout: skinny::WeightLayout,
    stock: fn(Tensor<B, 3>, Tensor<B, 2>) -> Tensor<B, 3>,
) -> Tensor<B, 3> {
    let [b, t, k] = x.dims();
    if enabled() && b * t <= skinny::MAX_ROWS {
        let flat = x.clone().reshape([b * t, k]);
        if let Some(y) = host::skinny_matmul(&flat, &weight, layout) {
            let n = y.dims()[1];
            return y.reshape([b, t, n]);
        }
    }
    stock(x, weight)
}

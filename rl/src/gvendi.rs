//! G-Vendi: the diversity of a set of solutions measured in the gradient space of a proxy
//! model. For each solution x_i, g_i = ∇θ LM-loss(x_i) over the proxy's last decoder layers
//! and final norm; g_i is projected to `dim` coordinates by a count sketch (every gradient
//! coordinate lands in one seeded bucket with a seeded sign, so no P × d matrix is formed)
//! and unit-normalised; with Σ = (1/n) Σ ĝ ĝᵀ, G-Vendi = exp(−Σ_k λ_k log λ_k) over Σ's
//! eigenvalues: 1 for n copies of one solution, n for n orthogonal ones.
//!
//! Σ's non-zero eigenvalues are those of the n × n Gram matrix (1/n) Ĝ Ĝᵀ, which is what is
//! decomposed; the d × d form is kept as the reference.
//!
//! Conventions: a zero vector has no direction, so it is left out of Σ (n counts only the
//! non-zero vectors and Σ keeps trace 1; counting it as a zero row would shrink the trace
//! and make the entropy meaningless). A set with no non-zero vector scores 0. A vector with a
//! non-finite coordinate makes the score NaN; [`g_vendi`] reports such a gradient as an error
//! instead.
//!
//! Only the chosen parameters are tracked by autodiff (the rest of the proxy is frozen for
//! the backward pass), so the backward pass runs through the last layers and the head's
//! input only: no embedding or head-weight gradient is formed.

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::Tensor;
use mars2_models::Transformer;
use nalgebra::{DMatrix, SymmetricEigen};
use serde::{Deserialize, Serialize};

use crate::logprobs::response_logprobs;

/// How the gradients are taken and projected.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GVendiConfig {
    /// Coordinates after projection.
    pub dim: usize,
    /// Decoder layers (from the top) whose parameters count, plus the final norm (0: the
    /// final norm only; more than the model has: every layer).
    pub last_layers: usize,
    /// Seed of the count sketch's buckets and signs.
    pub seed: u64,
}

impl Default for GVendiConfig {
    fn default() -> Self {
        GVendiConfig {
            dim: 512,
            last_layers: 1,
            seed: 0,
        }
    }
}

/// The score of a set and how many solutions it was computed over.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GVendi {
    pub score: f64,
    /// Solutions whose gradients were taken (a zero gradient counts here but has no
    /// direction, so it adds nothing to Σ).
    pub samples: usize,
}

/// Why G-Vendi could not be computed; `index` is the position of the offending sample.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GVendiError {
    #[error("the projected dimension must be at least 1")]
    ZeroDim,
    #[error("sample {index}: empty prompt or response")]
    EmptySequence { index: usize },
    #[error("sample {index}: token {token} is outside the proxy's vocabulary of {vocab}")]
    TokenOutOfVocab {
        index: usize,
        token: u32,
        vocab: usize,
    },
    #[error("sample {index}: {tokens} tokens exceed the proxy's {max} positions")]
    TooLong {
        index: usize,
        tokens: usize,
        max: usize,
    },
    #[error("sample {index}: the gradient is not finite")]
    NonFinite { index: usize },
}

fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// The hash key of parameter tensor number `tensor` under `seed`.
fn tensor_key(seed: u64, tensor: usize) -> u64 {
    splitmix64(seed ^ ((tensor as u64) << 40))
}

/// Bucket and sign of coordinate `index` of the tensor with hash key `key`.
fn sketch_cell(key: u64, index: usize, dim: usize) -> (usize, f64) {
    let h = splitmix64(key ^ index as u64);
    let sign = if h >> 63 == 0 { 1.0 } else { -1.0 };
    ((h % dim as u64) as usize, sign)
}

/// Adds the count sketch of `values` (the flat coordinates of parameter tensor number
/// `tensor`) into `out`, whose length is the projected dimension. O(len) time.
pub fn sketch_into(out: &mut [f64], values: &[f32], tensor: usize, seed: u64) {
    let dim = out.len();
    if dim == 0 {
        return;
    }
    let key = tensor_key(seed, tensor);
    for (j, &v) in values.iter().enumerate() {
        let (bucket, sign) = sketch_cell(key, j, dim);
        out[bucket] += sign * v as f64;
    }
}

/// The count sketch of a gradient given as its parameter tensors (each flattened), to `dim`
/// coordinates.
pub fn sketch_gradient(tensors: &[Vec<f32>], dim: usize, seed: u64) -> Vec<f32> {
    let mut out = vec![0.0f64; dim];
    for (t, values) in tensors.iter().enumerate() {
        sketch_into(&mut out, values, t, seed);
    }
    out.into_iter().map(|x| x as f32).collect()
}

/// The same projection as an explicit `dim × P` matrix (one ±1 per column) times the
/// concatenated vector: the reference of [`sketch_gradient`].
pub fn sketch_dense_reference(tensors: &[Vec<f32>], dim: usize, seed: u64) -> Vec<f32> {
    let columns: usize = tensors.iter().map(Vec::len).sum();
    let mut matrix = vec![vec![0.0f64; columns]; dim];
    let mut flat = Vec::with_capacity(columns);
    for (t, values) in tensors.iter().enumerate() {
        let key = tensor_key(seed, t);
        for (j, &v) in values.iter().enumerate() {
            let (bucket, sign) = sketch_cell(key, j, dim);
            matrix[bucket][flat.len()] = sign;
            flat.push(v as f64);
        }
    }
    matrix
        .iter()
        .map(|row| row.iter().zip(&flat).map(|(a, b)| a * b).sum::<f64>() as f32)
        .collect()
}

/// The unit vectors of `embeddings`, zero vectors left out.
fn units(embeddings: &[Vec<f32>]) -> Vec<Vec<f64>> {
    embeddings
        .iter()
        .filter_map(|v| {
            let norm = v.iter().map(|&x| (x as f64).powi(2)).sum::<f64>().sqrt();
            (norm != 0.0).then(|| v.iter().map(|&x| x as f64 / norm).collect())
        })
        .collect()
}

fn entropy_exp(eigenvalues: impl Iterator<Item = f64>) -> f64 {
    let mut h = 0.0;
    for l in eigenvalues {
        if l.is_nan() {
            return f64::NAN;
        }
        // Round-off leaves tiny negative eigenvalues; 0 · log 0 = 0.
        if l > 1e-12 {
            h -= l * l.ln();
        }
    }
    h.exp()
}

fn has_non_finite(embeddings: &[Vec<f32>]) -> bool {
    embeddings.iter().flatten().any(|x| !x.is_finite())
}

/// The Vendi score of embeddings (unit-normalised here, zero vectors left out), from the
/// n × n Gram matrix; 0 for a set with no non-zero vector, NaN when a coordinate is not
/// finite. Embeddings of different lengths are compared over their common prefix.
pub fn vendi_score(embeddings: &[Vec<f32>]) -> f64 {
    if has_non_finite(embeddings) {
        return f64::NAN;
    }
    let units = units(embeddings);
    let n = units.len();
    if n == 0 {
        return 0.0;
    }
    let gram = DMatrix::from_fn(n, n, |i, j| {
        units[i]
            .iter()
            .zip(&units[j])
            .map(|(a, b)| a * b)
            .sum::<f64>()
            / n as f64
    });
    entropy_exp(SymmetricEigen::new(gram).eigenvalues.iter().copied())
}

/// The reference of [`vendi_score`]: Σ = (1/n) Σ ĝ ĝᵀ formed in d × d and decomposed.
pub fn vendi_score_reference(embeddings: &[Vec<f32>]) -> f64 {
    if has_non_finite(embeddings) {
        return f64::NAN;
    }
    let units = units(embeddings);
    let n = units.len();
    let Some(d) = units.iter().map(Vec::len).min() else {
        return 0.0;
    };
    let mut sigma = DMatrix::<f64>::zeros(d, d);
    for u in &units {
        for a in 0..d {
            for b in 0..d {
                sigma[(a, b)] += u[a] * u[b] / n as f64;
            }
        }
    }
    entropy_exp(SymmetricEigen::new(sigma).eigenvalues.iter().copied())
}

/// Marks every visited parameter as tracked by autodiff.
struct Track;

impl<B: AutodiffBackend> ModuleMapper<B> for Track {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        param.set_require_grad(true)
    }
}

/// A copy of `model` in which only the chosen parameters (the last `last_layers` decoder
/// layers and the final norm) are tracked; parameter ids are kept.
pub fn gradient_proxy<B: AutodiffBackend>(
    model: &Transformer<B>,
    last_layers: usize,
) -> Transformer<B> {
    let mut proxy = model.clone().no_grad();
    let first = proxy.layers.len().saturating_sub(last_layers);
    for layer in &mut proxy.layers[first..] {
        *layer = layer.clone().map(&mut Track);
    }
    proxy.norm = proxy.norm.clone().map(&mut Track);
    proxy
}

/// Sketches the gradients of the visited parameters, one tensor index per parameter in
/// visiting order (parameters without a gradient still take their index).
struct SketchVisitor<'a> {
    grads: &'a GradientsParams,
    seed: u64,
    tensor: usize,
    out: Vec<f64>,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for SketchVisitor<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if let Some(g) = self.grads.get::<B::InnerBackend, D>(param.id) {
            let values: Vec<f32> = g.to_data().iter::<f32>().collect();
            sketch_into(&mut self.out, &values, self.tensor, self.seed);
        }
        self.tensor += 1;
    }
}

/// Checks one (prompt, response) pair against the proxy's vocabulary and positions.
fn check_sample<B: AutodiffBackend>(
    model: &Transformer<B>,
    index: usize,
    prompt: &[u32],
    response: &[u32],
) -> Result<(), GVendiError> {
    if prompt.is_empty() || response.is_empty() {
        return Err(GVendiError::EmptySequence { index });
    }
    let vocab = model.vocab_size();
    if let Some(&token) = prompt
        .iter()
        .chain(response)
        .find(|&&t| t as usize >= vocab)
    {
        return Err(GVendiError::TokenOutOfVocab {
            index,
            token,
            vocab,
        });
    }
    let (tokens, max) = (prompt.len() + response.len(), model.rope.max_positions);
    if tokens > max {
        return Err(GVendiError::TooLong { index, tokens, max });
    }
    Ok(())
}

/// The sketched gradient of the mean response NLL of one checked pair under a proxy made by
/// [`gradient_proxy`]; the chosen parameters are sketched in the order of the layers then the
/// norm, so that the same parameter always gets the same buckets.
fn sketch_one<B: AutodiffBackend>(
    proxy: &Transformer<B>,
    prompt: &[u32],
    response: &[u32],
    config: &GVendiConfig,
    device: &B::Device,
) -> Vec<f32> {
    let nll = response_logprobs(proxy, prompt, response, device)
        .mean()
        .neg();
    let grads = GradientsParams::from_grads(nll.backward(), proxy);
    let mut visitor = SketchVisitor {
        grads: &grads,
        seed: config.seed,
        tensor: 0,
        out: vec![0.0; config.dim],
    };
    let first = proxy.layers.len().saturating_sub(config.last_layers);
    for layer in &proxy.layers[first..] {
        layer.visit(&mut visitor);
    }
    proxy.norm.visit(&mut visitor);
    visitor.out.into_iter().map(|x| x as f32).collect()
}

/// The sketched gradient (∇ of the mean response NLL over the last `config.last_layers`
/// layers and the final norm) of one (prompt, response) pair.
pub fn projected_gradient<B: AutodiffBackend>(
    model: &Transformer<B>,
    prompt: &[u32],
    response: &[u32],
    config: &GVendiConfig,
    device: &B::Device,
) -> Result<Vec<f32>, GVendiError> {
    if config.dim == 0 {
        return Err(GVendiError::ZeroDim);
    }
    check_sample(model, 0, prompt, response)?;
    let proxy = gradient_proxy(model, config.last_layers);
    let sketch = sketch_one(&proxy, prompt, response, config, device);
    if has_non_finite(std::slice::from_ref(&sketch)) {
        return Err(GVendiError::NonFinite { index: 0 });
    }
    Ok(sketch)
}

/// G-Vendi of a set of (prompt, response) token sequences under the proxy `model`. Every
/// pair is checked before any gradient is taken; an empty set scores 0.
pub fn g_vendi<B: AutodiffBackend>(
    model: &Transformer<B>,
    samples: &[(Vec<u32>, Vec<u32>)],
    config: &GVendiConfig,
    device: &B::Device,
) -> Result<GVendi, GVendiError> {
    if config.dim == 0 {
        return Err(GVendiError::ZeroDim);
    }
    for (index, (prompt, response)) in samples.iter().enumerate() {
        check_sample(model, index, prompt, response)?;
    }
    let proxy = gradient_proxy(model, config.last_layers);
    let mut embeddings = Vec::with_capacity(samples.len());
    for (index, (prompt, response)) in samples.iter().enumerate() {
        let sketch = sketch_one(&proxy, prompt, response, config, device);
        if has_non_finite(std::slice::from_ref(&sketch)) {
            return Err(GVendiError::NonFinite { index });
        }
        embeddings.push(sketch);
    }
    Ok(GVendi {
        score: vendi_score(&embeddings),
        samples: embeddings.len(),
    })
}

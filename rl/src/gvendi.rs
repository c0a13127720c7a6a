//! G-Vendi: the diversity of a set of solutions measured in the gradient space of a proxy
//! model. For each solution x_i, g_i = ∇θ LM-loss(x_i) over the proxy's last decoder layers
//! and final norm; g_i is projected to `dim` coordinates by a count sketch (every gradient
//! coordinate lands in one seeded bucket with a seeded sign, so no P × d matrix is formed)
//! and unit-normalised; with Σ = (1/n) Σ ĝ ĝᵀ, G-Vendi = exp(−Σ_k λ_k log λ_k) over Σ's
//! eigenvalues: 1 for n copies of one solution, n for n orthogonal ones.
//!
//! Σ's non-zero eigenvalues are those of the n × n Gram matrix (1/n) Ĝ Ĝᵀ, which is what is
//! decomposed; the d × d form is kept as the reference.

use burn::module::{Module, ModuleVisitor, Param};
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
    /// Decoder layers (from the top) whose parameters count, plus the final norm.
    pub last_layers: usize,
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
    pub samples: usize,
}

fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Bucket and sign of coordinate `index` of parameter tensor `tensor`.
fn sketch_cell(seed: u64, tensor: usize, index: usize, dim: usize) -> (usize, f32) {
    let h = splitmix64(splitmix64(seed ^ ((tensor as u64) << 40)) ^ index as u64);
    let sign = if h >> 63 == 0 { 1.0 } else { -1.0 };
    ((h % dim as u64) as usize, sign)
}

/// Adds the count sketch of `values` (coordinates of parameter tensor number `tensor`) into
/// `out` (length = the projected dimension).
pub fn sketch_into(out: &mut [f32], values: &[f32], tensor: usize, seed: u64) {
    let dim = out.len();
    for (j, &v) in values.iter().enumerate() {
        let (bucket, sign) = sketch_cell(seed, tensor, j, dim);
        out[bucket] += sign * v;
    }
}

/// The same projection as an explicit `dim × P` matrix times the vector (the reference).
pub fn sketch_dense_reference(tensors: &[Vec<f32>], dim: usize, seed: u64) -> Vec<f32> {
    let columns: usize = tensors.iter().map(Vec::len).sum();
    let mut matrix = vec![vec![0.0f32; columns]; dim];
    let mut flat = Vec::with_capacity(columns);
    let mut col = 0;
    for (t, values) in tensors.iter().enumerate() {
        for (j, &v) in values.iter().enumerate() {
            let (bucket, sign) = sketch_cell(seed, t, j, dim);
            matrix[bucket][col] = sign;
            flat.push(v);
            col += 1;
        }
    }
    matrix
        .iter()
        .map(|row| row.iter().zip(&flat).map(|(a, b)| a * b).sum())
        .collect()
}

/// The unit vectors of `embeddings`; a zero vector has no direction and is left out (so Σ
/// keeps trace 1).
fn units(embeddings: &[Vec<f32>]) -> Vec<Vec<f64>> {
    embeddings
        .iter()
        .filter_map(|v| {
            let norm = v.iter().map(|&x| (x as f64).powi(2)).sum::<f64>().sqrt();
            (norm > 0.0).then(|| v.iter().map(|&x| x as f64 / norm).collect())
        })
        .collect()
}

fn entropy_exp(eigenvalues: impl Iterator<Item = f64>) -> f64 {
    let h: f64 = eigenvalues
        .map(|l| l.max(0.0))
        .filter(|&l| l > 1e-12)
        .map(|l| -l * l.ln())
        .sum();
    h.exp()
}

/// The Vendi score of embeddings (unit-normalised here, zero vectors left out), from the
/// n × n Gram matrix; 0 for a set with no non-zero vector.
pub fn vendi_score(embeddings: &[Vec<f32>]) -> f64 {
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

/// The reference: Σ = (1/n) Σ ĝ ĝᵀ formed in d × d and decomposed.
pub fn vendi_score_reference(embeddings: &[Vec<f32>]) -> f64 {
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

/// Collects the gradients of the visited parameters as host vectors, in visiting order.
struct GradientCollector<'a> {
    grads: &'a GradientsParams,
    out: Vec<Vec<f32>>,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for GradientCollector<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if let Some(g) = self.grads.get::<B::InnerBackend, D>(param.id) {
            self.out.push(g.to_data().iter::<f32>().collect());
        }
    }
}

/// The projected gradient of the mean response NLL of one (prompt, response) pair; `None`
/// when either is empty.
pub fn projected_gradient<B: AutodiffBackend>(
    model: &Transformer<B>,
    prompt: &[u32],
    response: &[u32],
    config: &GVendiConfig,
    device: &B::Device,
) -> Option<Vec<f32>> {
    if prompt.is_empty() || response.is_empty() || config.dim == 0 {
        return None;
    }
    let nll = response_logprobs(model, prompt, response, device)
        .mean()
        .neg();
    let grads = GradientsParams::from_grads(nll.backward(), model);
    let mut collector = GradientCollector {
        grads: &grads,
        out: Vec::new(),
    };
    let layers = model.layers.len();
    for layer in &model.layers[layers.saturating_sub(config.last_layers)..] {
        layer.visit(&mut collector);
    }
    model.norm.visit(&mut collector);
    let mut sketch = vec![0.0f32; config.dim];
    for (t, values) in collector.out.iter().enumerate() {
        sketch_into(&mut sketch, values, t, config.seed);
    }
    Some(sketch)
}

/// G-Vendi of a set of (prompt, response) token sequences under the proxy `model`.
/// Pairs with an empty side are left out; fewer than one usable pair scores 0.
pub fn g_vendi<B: AutodiffBackend>(
    model: &Transformer<B>,
    samples: &[(Vec<u32>, Vec<u32>)],
    config: &GVendiConfig,
    device: &B::Device,
) -> GVendi {
    let embeddings: Vec<Vec<f32>> = samples
        .iter()
        .filter_map(|(p, r)| projected_gradient(model, p, r, config, device))
        .collect();
    GVendi {
        score: vendi_score(&embeddings),
        samples: embeddings.len(),
    }
}

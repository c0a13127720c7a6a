//! Low-rank adapters (LoRA) on the projections of a frozen base. A projection `y = x·W + b`
//! with an adapter computes `y = x·W + b + s·(x·A)·B` with `A` `[d_in, r]`, `B` `[r, d_out]` and
//! `s = α / r`; `A` starts random and `B` at zero, so an adapted model starts as its base. Only
//! `A` and `B` are trained ([`crate::Transformer::with_adapters`] freezes everything else), so
//! the optimizer keeps moments for the adapters alone and the base can stay in its GGUF block
//! format. Merging folds `s·A·B` into a dense weight ([`crate::layers::linear::Linear::merge_adapter`]).

use burn::module::{Module, Param};
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// A projection an adapter may be put on, by its Hugging Face name within a layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LoraTarget {
    QProj,
    KProj,
    VProj,
    OProj,
    GateProj,
    UpProj,
    DownProj,
}

impl LoraTarget {
    /// Every projection, in [`crate::layers::decoder_layer::DecoderLayer::projections`]' order.
    pub const ALL: [LoraTarget; 7] = [
        Self::QProj,
        Self::KProj,
        Self::VProj,
        Self::OProj,
        Self::GateProj,
        Self::UpProj,
        Self::DownProj,
    ];

    /// The projection's name within a layer, as `DecoderLayer::projections` gives it.
    pub fn layer_name(self) -> &'static str {
        match self {
            Self::QProj => "self_attn.q_proj",
            Self::KProj => "self_attn.k_proj",
            Self::VProj => "self_attn.v_proj",
            Self::OProj => "self_attn.o_proj",
            Self::GateProj => "mlp.gate_proj",
            Self::UpProj => "mlp.up_proj",
            Self::DownProj => "mlp.down_proj",
        }
    }
}

/// Where adapters go and how large they are.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoraConfig {
    /// r: the adapters' inner width.
    pub rank: usize,
    /// α: the update is scaled by α / r.
    pub alpha: f64,
    pub targets: Vec<LoraTarget>,
    /// Seeds the random `A` matrices.
    #[serde(default)]
    pub seed: u64,
}

impl Default for LoraConfig {
    /// Rank 16, α 32, on every projection.
    fn default() -> Self {
        LoraConfig {
            rank: 16,
            alpha: 32.0,
            targets: LoraTarget::ALL.to_vec(),
            seed: 0,
        }
    }
}

impl LoraConfig {
    /// α / r.
    pub fn scale(&self) -> f64 {
        self.alpha / self.rank as f64
    }

    /// Why the config cannot be used, if it cannot.
    pub fn check(&self) -> Result<(), String> {
        if self.rank == 0 {
            return Err("lora.rank must be at least 1".into());
        }
        if !self.alpha.is_finite() || self.alpha <= 0.0 {
            return Err(format!("lora.alpha must be positive, got {}", self.alpha));
        }
        if self.targets.is_empty() {
            return Err("lora.targets names no projection".into());
        }
        Ok(())
    }
}

/// The adapter of one projection.
#[derive(Module, Debug)]
pub struct LoraAdapter<B: Backend> {
    /// `[d_in, rank]`, uniform in ±1/√d_in at the start.
    pub a: Param<Tensor<B, 2>>,
    /// `[rank, d_out]`, zero at the start.
    pub b: Param<Tensor<B, 2>>,
    /// α / r.
    pub scale: f64,
}

impl<B: Backend> LoraAdapter<B> {
    /// A fresh adapter for a `d_in → d_out` projection: `A` drawn from `seed`, `B` zero.
    pub fn new(
        d_in: usize,
        d_out: usize,
        rank: usize,
        scale: f64,
        seed: u64,
        device: &B::Device,
    ) -> Self {
        let bound = 1.0 / (d_in.max(1) as f32).sqrt();
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let a: Vec<f32> = (0..d_in * rank)
            .map(|_| rng.random_range(-bound..bound))
            .collect();
        LoraAdapter {
            a: Param::from_tensor(Tensor::from_data(TensorData::new(a, [d_in, rank]), device)),
            b: Param::from_tensor(Tensor::zeros([rank, d_out], device)),
            scale,
        }
    }

    /// `s·(x·A)·B` for `x` `[batch, tokens, d_in]`.
    pub fn delta(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let [batch, tokens, d_in] = x.dims();
        let [_, d_out] = self.b.dims();
        x.reshape([batch * tokens, d_in])
            .matmul(self.a.val())
            .matmul(self.b.val())
            .mul_scalar(self.scale)
            .reshape([batch, tokens, d_out])
    }

    /// `s·A·B`, `[d_in, d_out]`: what merging adds to the base weight.
    pub fn delta_weight(&self) -> Tensor<B, 2> {
        self.a.val().matmul(self.b.val()).mul_scalar(self.scale)
    }

    /// Trainable values: `rank·(d_in + d_out)`.
    pub fn parameters(&self) -> usize {
        let [d_in, rank] = self.a.dims();
        let [_, d_out] = self.b.dims();
        rank * (d_in + d_out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;

    type B = NdArray<f32>;

    #[test]
    fn a_fresh_adapter_changes_nothing_and_is_seeded() {
        let device = Default::default();
        let adapter = LoraAdapter::<B>::new(6, 4, 2, 2.0, 7, &device);
        let x = Tensor::<B, 3>::ones([1, 3, 6], &device);
        let delta: Vec<f32> = adapter.delta(x).to_data().to_vec().unwrap();
        assert!(delta.iter().all(|&v| v == 0.0));
        let again = LoraAdapter::<B>::new(6, 4, 2, 2.0, 7, &device);
        assert_eq!(adapter.a.val().to_data(), again.a.val().to_data());
        let other = LoraAdapter::<B>::new(6, 4, 2, 2.0, 8, &device);
        assert_ne!(adapter.a.val().to_data(), other.a.val().to_data());
        let bound = 1.0 / 6f32.sqrt();
        let a: Vec<f32> = adapter.a.val().to_data().to_vec().unwrap();
        assert!(a.iter().all(|v| v.abs() <= bound));
        assert_eq!(adapter.parameters(), 2 * (6 + 4));
    }

    #[test]
    fn the_delta_is_the_product_of_x_and_the_delta_weight() {
        let device = Default::default();
        let mut adapter = LoraAdapter::<B>::new(5, 3, 2, 1.5, 1, &device);
        let b: Vec<f32> = (0..6).map(|i| i as f32 * 0.1 - 0.2).collect();
        adapter.b = Param::from_tensor(Tensor::from_data(TensorData::new(b, [2, 3]), &device));
        let x: Vec<f32> = (0..10).map(|i| (i as f32 * 0.37).sin()).collect();
        let x = Tensor::<B, 3>::from_data(TensorData::new(x, [1, 2, 5]), &device);
        let got: Vec<f32> = adapter.delta(x.clone()).to_data().to_vec().unwrap();
        // Reference: plain loops over x·(s·A·B).
        let w: Vec<f32> = adapter.delta_weight().to_data().to_vec().unwrap();
        let xs: Vec<f32> = x.to_data().to_vec().unwrap();
        for t in 0..2 {
            for o in 0..3 {
                let want: f32 = (0..5).map(|i| xs[t * 5 + i] * w[i * 3 + o]).sum();
                assert!((got[t * 3 + o] - want).abs() < 1e-5, "{t},{o}");
            }
        }
    }

    #[test]
    fn configs_that_cannot_work_are_refused() {
        assert!(LoraConfig::default().check().is_ok());
        for bad in [
            LoraConfig {
                rank: 0,
                ..LoraConfig::default()
            },
            LoraConfig {
                alpha: -1.0,
                ..LoraConfig::default()
            },
            LoraConfig {
                targets: vec![],
                ..LoraConfig::default()
            },
        ] {
            assert!(bad.check().is_err(), "{bad:?}");
        }
        let parsed: LoraConfig =
            serde_json::from_str(r#"{"rank": 4, "alpha": 8, "targets": ["q_proj", "down_proj"]}"#)
                .unwrap();
        assert_eq!(parsed.targets, [LoraTarget::QProj, LoraTarget::DownProj]);
        assert_eq!(parsed.scale(), 2.0);
    }
}

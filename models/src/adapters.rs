//! A transformer with low-rank adapters on a frozen base ([`crate::layers::lora`]): putting
//! them on, the base without them (the KL reference of training: no second copy of the
//! weights), and merging them into dense weights for export or fast decoding.

use burn::module::Module;
use burn::tensor::backend::Backend;

use crate::layers::lora::{LoraAdapter, LoraConfig, LoraTarget};
use crate::transformer::Transformer;

impl<B: Backend> Transformer<B> {
    /// Freezes every weight of the model and puts a fresh adapter on each projection
    /// `config` targets (replacing any adapter already there). Gradients then reach the
    /// adapters alone.
    pub fn with_adapters(self, config: &LoraConfig) -> Self {
        let mut model = self.no_grad();
        let device = model.embed_tokens.device();
        let scale = config.scale();
        for (i, layer) in model.layers.iter_mut().enumerate() {
            for (j, (name, linear)) in layer.projections_mut().into_iter().enumerate() {
                if !config.targets.iter().any(|t| t.layer_name() == name) {
                    continue;
                }
                let (d_in, d_out) = linear.dims();
                let seed = config
                    .seed
                    .wrapping_mul(0x9E37_79B9_7F4A_7C15)
                    .wrapping_add((i * LoraTarget::ALL.len() + j) as u64);
                linear.lora = Some(LoraAdapter::new(
                    d_in,
                    d_out,
                    config.rank,
                    scale,
                    seed,
                    &device,
                ));
            }
        }
        model
    }

    /// Freezes every weight but the adapters' (after loading a record, say).
    pub fn freeze_base(self) -> Self {
        let mut model = self.no_grad();
        for layer in &mut model.layers {
            for (_, linear) in layer.projections_mut() {
                if let Some(lora) = &mut linear.lora {
                    lora.a = lora.a.clone().set_require_grad(true);
                    lora.b = lora.b.clone().set_require_grad(true);
                }
            }
        }
        model
    }

    /// Whether any projection carries an adapter.
    pub fn has_adapters(&self) -> bool {
        self.layers.iter().any(|layer| {
            layer
                .projections()
                .iter()
                .any(|(_, linear)| linear.lora.is_some())
        })
    }

    /// Trainable values in the adapters.
    pub fn adapter_parameters(&self) -> usize {
        self.layers
            .iter()
            .flat_map(|layer| layer.projections())
            .filter_map(|(_, linear)| linear.lora.as_ref().map(LoraAdapter::parameters))
            .sum()
    }

    /// The base model: the same weights (shared, not copied) with every adapter off.
    pub fn without_adapters(&self) -> Self {
        let mut base = self.clone();
        for layer in &mut base.layers {
            for (_, linear) in layer.projections_mut() {
                linear.lora = None;
            }
        }
        base
    }

    /// Every projection's adapter (`None` where it has none), layer by layer in
    /// [`crate::layers::decoder_layer::DecoderLayer::projections`]' order: the trainable part
    /// of an adapted model, which a checkpoint keeps without the base.
    pub fn adapters(&self) -> Vec<Option<LoraAdapter<B>>> {
        self.layers
            .iter()
            .flat_map(|layer| layer.projections())
            .map(|(_, linear)| linear.lora.clone())
            .collect()
    }

    /// Puts `adapters` (in [`Transformer::adapters`]' order) on the projections; an error
    /// when their number or any adapter's shape does not fit the model.
    pub fn set_adapters(mut self, adapters: Vec<Option<LoraAdapter<B>>>) -> Result<Self, String> {
        let projections = self.layers.len() * LoraTarget::ALL.len();
        if adapters.len() != projections {
            return Err(format!(
                "{} adapter places for a model with {projections} projections",
                adapters.len()
            ));
        }
        let mut adapters = adapters.into_iter();
        for (i, layer) in self.layers.iter_mut().enumerate() {
            for (name, linear) in layer.projections_mut() {
                let adapter = adapters.next().flatten();
                if let Some(lora) = &adapter {
                    let (d_in, d_out) = linear.dims();
                    let ([a_in, rank], [b_rank, b_out]) = (lora.a.dims(), lora.b.dims());
                    if a_in != d_in || b_out != d_out || rank != b_rank {
                        return Err(format!(
                            "layer {i} {name}: an adapter [{a_in}, {rank}]·[{b_rank}, {b_out}] \
                             on a {d_in} → {d_out} projection"
                        ));
                    }
                }
                linear.lora = adapter;
            }
        }
        Ok(self)
    }

    /// This model with the adapters of `source` (a model of the same architecture: the
    /// learner's copy) in place of its own: how the engine's copy of a base, kept in blocks,
    /// takes a learner's current adapters without copying any base weight.
    pub fn with_adapters_of(self, source: &Transformer<B>) -> Result<Self, String> {
        self.set_adapters(source.adapters())
    }

    /// Folds every adapter into its projection's weight: the result computes what the adapted
    /// model computes, with dense f32 weights where adapters were (block-format weights
    /// without an adapter stay in blocks).
    pub fn merge_adapters(mut self) -> Self {
        for layer in &mut self.layers {
            for (_, linear) in layer.projections_mut() {
                linear.merge_adapter();
            }
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use burn::backend::NdArray;
    use burn::module::Param;
    use burn::tensor::{Int, Tensor, TensorData};

    use super::*;
    use crate::attention_context::FullSequence;
    use crate::quantized::QuantFormat;
    use crate::ModelConfig;

    type B = NdArray<f32>;

    fn logits(model: &Transformer<B>) -> Vec<f32> {
        let device = Default::default();
        let ids =
            Tensor::<B, 2, Int>::from_data(TensorData::new(vec![1i64, 5, 3, 7], [1, 4]), &device);
        let positions =
            Tensor::<B, 2, Int>::from_data(TensorData::new(vec![0i64, 1, 2, 3], [1, 4]), &device);
        let mut ctx = FullSequence::new(positions.clone());
        model
            .forward(ids, positions, &mut ctx)
            .to_data()
            .to_vec()
            .unwrap()
    }

    fn max_diff(a: &[f32], b: &[f32]) -> f32 {
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max)
    }

    /// Gives every adapter a non-zero `B`, as training would.
    fn trained(mut model: Transformer<B>) -> Transformer<B> {
        for layer in &mut model.layers {
            for (_, linear) in layer.projections_mut() {
                if let Some(lora) = &mut linear.lora {
                    let [r, d_out] = lora.b.dims();
                    let values: Vec<f32> = (0..r * d_out)
                        .map(|i| ((i as f32) * 0.61).sin() * 0.05)
                        .collect();
                    lora.b = Param::from_tensor(Tensor::from_data(
                        TensorData::new(values, [r, d_out]),
                        &Default::default(),
                    ));
                }
            }
        }
        model
    }

    fn config() -> ModelConfig {
        ModelConfig {
            intermediate_size: 64,
            ..ModelConfig::tiny_llama(11, 32, 2)
        }
    }

    #[test]
    fn fresh_adapters_leave_the_model_as_it_was() {
        let base = Transformer::<B>::random(&config(), &Default::default());
        let before = logits(&base);
        let adapted = base.with_adapters(&LoraConfig::default());
        assert!(adapted.has_adapters());
        assert_eq!(logits(&adapted), before);
        // Rank 16 on all seven projections of two layers (q, k, v, o, gate, up, down).
        let per_layer = 16 * ((32 + 32) + (32 + 16) * 2 + (32 + 32) + (32 + 64) * 2 + (64 + 32));
        assert_eq!(adapted.adapter_parameters(), 2 * per_layer);
    }

    #[test]
    fn only_targeted_projections_get_adapters() {
        let config = LoraConfig {
            targets: vec![LoraTarget::VProj, LoraTarget::DownProj],
            ..LoraConfig::default()
        };
        let model =
            Transformer::<B>::random(&self::config(), &Default::default()).with_adapters(&config);
        for layer in &model.layers {
            let with: Vec<&str> = layer
                .projections()
                .iter()
                .filter(|(_, l)| l.lora.is_some())
                .map(|(name, _)| *name)
                .collect();
            assert_eq!(with, ["self_attn.v_proj", "mlp.down_proj"]);
        }
    }

    #[test]
    fn merged_weights_compute_what_the_adapters_compute() {
        let base = Transformer::<B>::random(&config(), &Default::default());
        let base_logits = logits(&base);
        let adapted = trained(base.with_adapters(&LoraConfig::default()));
        let adapted_logits = logits(&adapted);
        assert!(
            max_diff(&adapted_logits, &base_logits) > 1e-3,
            "the adapters change the output"
        );
        // Adapters off: the base again, with its weights shared.
        assert_eq!(logits(&adapted.without_adapters()), base_logits);
        let merged = adapted.merge_adapters();
        assert!(!merged.has_adapters());
        let diff = max_diff(&logits(&merged), &adapted_logits);
        assert!(diff < 1e-4, "merged against adapted: {diff}");
    }

    #[test]
    fn adapters_work_over_a_base_kept_in_blocks() {
        let mut base = Transformer::<B>::random(&config(), &Default::default());
        base.quantize(QuantFormat::Q8_0).expect("quantized");
        let base_logits = logits(&base);
        let adapted = trained(base.with_adapters(&LoraConfig::default()));
        let adapted_logits = logits(&adapted);
        assert!(max_diff(&adapted_logits, &base_logits) > 1e-3);
        assert_eq!(logits(&adapted.without_adapters()), base_logits);
        let merged = adapted.merge_adapters();
        // Where an adapter was, the weight is now dense; the output head stays in blocks.
        assert!(merged.layers[0].attention.q_proj.quantized.is_none());
        assert!(merged.quantized_head.is_some());
        let diff = max_diff(&logits(&merged), &adapted_logits);
        assert!(diff < 1e-4, "merged against adapted: {diff}");
    }

    #[test]
    fn adapters_move_between_copies_of_a_model_and_misfits_are_refused() {
        let base = Transformer::<B>::random(&config(), &Default::default());
        let adapted = trained(base.clone().with_adapters(&LoraConfig::default()));
        let moved = base.clone().set_adapters(adapted.adapters()).unwrap();
        assert_eq!(logits(&moved), logits(&adapted));
        let err = base.clone().set_adapters(vec![None; 3]).err().unwrap();
        assert!(
            err.contains("3 adapter places") && err.contains("14"),
            "{err}"
        );
        let mut wrong = adapted.adapters();
        wrong.swap(0, 6);
        let err = base.set_adapters(wrong).err().unwrap();
        assert!(err.contains("layer 0 self_attn.q_proj"), "{err}");
    }
}

//! The decoder-only transformer shared by Llama, Qwen2 and Qwen3: embeddings, a stack of
//! [`DecoderLayer`]s, final RMSNorm and the LM head (tied to the embeddings or not).
//!
//! Built from any [`WeightSource`] by Hugging Face tensor names, with every shape checked.

use burn::module::{Module, Param};
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};

use crate::attention_context::AttentionContext;
use crate::config::ModelConfig;
use crate::error::{ModelError, Result};
use crate::host_tensor::{BlockSource, HostTensor, WeightSource};
use crate::kernels::QuantizedMatrix;
use crate::layers::attention::SelfAttention;
use crate::layers::decoder_layer::DecoderLayer;
use crate::layers::linear::Linear;
use crate::layers::mlp::Mlp;
use crate::layers::rms_norm::RmsNorm;
use crate::layers::rope::Rope;
use crate::quantized::{QuantFormat, Quantization, QuantizeError, QuantizedBlocks};

/// What quantization does to one matrix.
enum MatrixChoice {
    /// The checkpoint's own blocks.
    Stored(QuantizedBlocks),
    /// Blocks made from the matrix's values.
    Quantized(QuantizedBlocks),
    /// Left as it is.
    Dense,
}

/// The Hugging Face name of projection `name` (`self_attn.q_proj`, …) of layer `layer`.
fn projection_name(layer: usize, name: &str) -> String {
    format!("model.layers.{layer}.{name}.weight")
}

/// How many matrices [`Transformer::quantize_with`] took as stored, quantized, or left f32.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QuantizeReport {
    pub stored: usize,
    pub quantized: usize,
    pub dense: usize,
}

impl std::fmt::Display for QuantizeReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} matrices kept as stored blocks, {} quantized, {} left f32",
            self.stored, self.quantized, self.dense
        )
    }
}

#[derive(Module, Debug)]
pub struct Transformer<B: Backend> {
    /// `[vocab, hidden]`.
    pub embed_tokens: Param<Tensor<B, 2>>,
    pub layers: Vec<DecoderLayer<B>>,
    pub norm: RmsNorm<B>,
    /// `[hidden, vocab]`; `None` when tied to `embed_tokens`.
    pub lm_head: Option<Param<Tensor<B, 2>>>,
    pub rope: Rope<B>,
    /// The output head `[vocab, hidden]` in a block format once [`Transformer::quantize`]d
    /// (tied or not); the embedding lookup keeps reading `embed_tokens`.
    #[module(skip)]
    pub quantized_head: Option<QuantizedMatrix<B>>,
}

impl<B: Backend> Transformer<B> {
    /// Hidden states after the final norm, `[batch, tokens, hidden]`.
    ///
    /// `ids` and `positions` are `[batch, tokens]`; every position must be below
    /// `config.max_position_embeddings` (callers check: they own the positions).
    pub fn forward_hidden(
        &self,
        ids: Tensor<B, 2, Int>,
        positions: Tensor<B, 2, Int>,
        ctx: &mut dyn AttentionContext<B>,
    ) -> Tensor<B, 3> {
        let [batch, tokens] = ids.dims();
        let hidden = self.embed_tokens.dims()[1];
        let mut x = self
            .embed_tokens
            .val()
            .select(0, ids.reshape([batch * tokens]))
            .reshape([batch, tokens, hidden]);
        let (cos, sin) = self.rope.tables(positions);
        for (i, layer) in self.layers.iter().enumerate() {
            x = layer.forward(i, x, &cos, &sin, ctx);
        }
        self.norm.forward(x)
    }

    /// Logits `[batch, tokens, vocab]` from hidden states.
    pub fn lm_head(&self, hidden: Tensor<B, 3>) -> Tensor<B, 3> {
        if let Some(q) = &self.quantized_head {
            return crate::kernels::quantized_linear(hidden, q);
        }
        match &self.lm_head {
            Some(w) => crate::kernels::linear(hidden, w.val()),
            None => crate::kernels::linear_transposed(hidden, self.embed_tokens.val()),
        }
    }

    /// Logits at every position, `[batch, tokens, vocab]`.
    pub fn forward(
        &self,
        ids: Tensor<B, 2, Int>,
        positions: Tensor<B, 2, Int>,
        ctx: &mut dyn AttentionContext<B>,
    ) -> Tensor<B, 3> {
        self.lm_head(self.forward_hidden(ids, positions, ctx))
    }

    pub fn vocab_size(&self) -> usize {
        self.embed_tokens.dims()[0]
    }

    /// Keeps every projection and the output head in the block format `format` from now on
    /// (for inference: quantized weights get no gradients, and
    /// [`crate::export::hf_tensors`] writes their dequantized values). Norms stay f32; a tied
    /// embedding table takes the quantized values of the head but stays an f32 tensor for the
    /// lookup. Matrices already quantized keep their blocks. Every matrix is quantized before
    /// any is replaced, so a refusal changes nothing.
    pub fn quantize(&mut self, format: QuantFormat) -> std::result::Result<(), QuantizeError> {
        let plan = self.plan_quantization(|_, [rows, cols], values| {
            QuantizedBlocks::quantize(format, &values(), rows, cols).map(MatrixChoice::Quantized)
        })?;
        self.apply_plan(plan);
        Ok(())
    }

    /// Quantizes as `quantization` says, taking the blocks `stored` holds (a GGUF file's own
    /// Q8_0/Q4_1 tensors) as they are instead of quantizing their values again.
    ///
    /// Every matrix's blocks are read, checked or made before the model changes, so an error
    /// leaves it as it was. [`Quantization::AsStored`] with nothing stored is an error.
    pub fn quantize_with(
        &mut self,
        quantization: Quantization,
        stored: &mut dyn BlockSource,
    ) -> Result<QuantizeReport> {
        let wanted = match quantization {
            Quantization::To(format) => Some(format),
            Quantization::AsStored => None,
        };
        let path = stored.path().to_path_buf();
        let plan = self.plan_quantization(|name, [rows, cols], values| {
            if let Some(blocks) = stored.blocks(name, wanted)? {
                if [blocks.rows, blocks.cols] != [rows, cols] {
                    return Err(ModelError::WrongShape {
                        path: path.clone(),
                        name: name.to_string(),
                        expected: vec![rows, cols],
                        actual: vec![blocks.rows, blocks.cols],
                    });
                }
                return Ok(MatrixChoice::Stored(blocks));
            }
            let Some(format) = wanted else {
                return Ok(MatrixChoice::Dense);
            };
            QuantizedBlocks::quantize(format, &values(), rows, cols)
                .map(MatrixChoice::Quantized)
                .map_err(|source| ModelError::Quantize {
                    name: name.to_string(),
                    source,
                })
        })?;
        let any_stored = plan
            .iter()
            .any(|(_, choice)| matches!(choice, MatrixChoice::Stored(_)));
        if quantization == Quantization::AsStored && !any_stored {
            return Err(ModelError::NothingStored { path });
        }
        Ok(self.apply_plan(plan))
    }

    /// Decides, without changing the model, what becomes of each matrix quantization may
    /// replace: every projection and the output head not yet quantized, layer by layer and
    /// then the head. `choose` gets the matrix's Hugging Face name, its `[out, in]` shape and
    /// a way to read its values (row-major `[out, in]`).
    fn plan_quantization<E>(
        &self,
        mut choose: impl FnMut(
            &str,
            [usize; 2],
            &dyn Fn() -> Vec<f32>,
        ) -> std::result::Result<MatrixChoice, E>,
    ) -> std::result::Result<Vec<(String, MatrixChoice)>, E> {
        let mut plan = Vec::new();
        for (i, layer) in self.layers.iter().enumerate() {
            for (name, linear) in layer.projections() {
                if linear.quantized.is_some() {
                    continue;
                }
                let (d_in, d_out) = linear.dims();
                let name = projection_name(i, name);
                let choice = choose(&name, [d_out, d_in], &|| linear.weight_out_in())?;
                plan.push((name, choice));
            }
        }
        if self.quantized_head.is_none() {
            let name = self.head_name();
            let choice = choose(name, self.embed_tokens.dims(), &|| self.head_values())?;
            plan.push((name.to_string(), choice));
        }
        Ok(plan)
    }

    /// Carries out a plan of [`Self::plan_quantization`], walking the matrices in the same
    /// order; nothing here can fail.
    fn apply_plan(&mut self, plan: Vec<(String, MatrixChoice)>) -> QuantizeReport {
        let mut report = QuantizeReport::default();
        let mut plan = plan.into_iter();
        let mut next = |expected: &str| -> Option<QuantizedBlocks> {
            let (name, choice) = plan.next().expect("one planned choice per matrix");
            debug_assert_eq!(name, expected, "the plan follows the same walk");
            match choice {
                MatrixChoice::Stored(blocks) => {
                    report.stored += 1;
                    Some(blocks)
                }
                MatrixChoice::Quantized(blocks) => {
                    report.quantized += 1;
                    Some(blocks)
                }
                MatrixChoice::Dense => {
                    report.dense += 1;
                    None
                }
            }
        };
        for (i, layer) in self.layers.iter_mut().enumerate() {
            for (name, linear) in layer.projections_mut() {
                if linear.quantized.is_none() {
                    if let Some(blocks) = next(&projection_name(i, name)) {
                        linear.set_quantized(blocks);
                    }
                }
            }
        }
        if self.quantized_head.is_none() {
            if let Some(blocks) = next(self.head_name()) {
                self.set_quantized_head(blocks);
            }
        }
        report
    }

    /// The Hugging Face name of the output head's weight (the embedding table when tied).
    fn head_name(&self) -> &'static str {
        match self.lm_head {
            Some(_) => "lm_head.weight",
            None => "model.embed_tokens.weight",
        }
    }

    /// The output head's values, row-major `[vocab, hidden]`.
    fn head_values(&self) -> Vec<f32> {
        let values = match &self.lm_head {
            Some(head) => head.val().transpose(),
            None => self.embed_tokens.val(),
        };
        values
            .into_data()
            .convert::<f32>()
            .into_vec::<f32>()
            .expect("a float tensor converts to f32")
    }

    /// Computes the output head with `blocks` (`[vocab, hidden]`) from now on.
    fn set_quantized_head(&mut self, blocks: QuantizedBlocks) {
        let device = self.embed_tokens.device();
        let [vocab, hidden] = [blocks.rows, blocks.cols];
        if self.lm_head.is_some() {
            self.lm_head = Some(Param::from_tensor(Tensor::zeros([hidden, 0], &device)));
        } else {
            // Tied: the lookup reads the quantized values too (as GGUF files store one table
            // for both), so the model stays tied and exports as it computes.
            self.embed_tokens = Param::from_tensor(Tensor::from_data(
                TensorData::new(blocks.dequantize(), [vocab, hidden]),
                &device,
            ));
        }
        self.quantized_head = Some(QuantizedMatrix::new(blocks, &device));
    }

    /// Whether any matrix is kept in a block format.
    pub fn is_quantized(&self) -> bool {
        self.quantized_head.is_some()
            || self.layers.iter().any(|layer| {
                layer
                    .projections()
                    .iter()
                    .any(|(_, linear)| linear.quantized.is_some())
            })
    }

    /// Builds the model from named weights, checking every shape against `config`.
    pub fn from_weights(
        config: &ModelConfig,
        source: &mut dyn WeightSource,
        device: &B::Device,
    ) -> Result<Self> {
        let mut loader = Loader { source, device };
        let c = config;
        let q_dim = c.num_heads * c.head_dim;
        let kv_dim = c.num_kv_heads * c.head_dim;
        let embed = loader.matrix(
            "model.embed_tokens.weight",
            [c.vocab_size, c.hidden_size],
            false,
        )?;
        let mut layers = Vec::with_capacity(c.num_layers);
        for i in 0..c.num_layers {
            let p = format!("model.layers.{i}");
            let linear =
                |l: &mut Loader<B>, name: &str, d_in, d_out, bias: bool| -> Result<Linear<B>> {
                    let w = l.matrix(&format!("{p}.{name}.weight"), [d_out, d_in], true)?;
                    let b = if bias {
                        Some(l.vector(&format!("{p}.{name}.bias"), d_out)?)
                    } else {
                        None
                    };
                    Ok(Linear::new(w, b))
                };
            let norm = |l: &mut Loader<B>, name: &str, dim| -> Result<RmsNorm<B>> {
                Ok(RmsNorm::new(
                    l.vector(&format!("{p}.{name}.weight"), dim)?,
                    c.rms_norm_eps,
                ))
            };
            let attention = SelfAttention {
                q_proj: linear(
                    &mut loader,
                    "self_attn.q_proj",
                    c.hidden_size,
                    q_dim,
                    c.attention_bias,
                )?,
                k_proj: linear(
                    &mut loader,
                    "self_attn.k_proj",
                    c.hidden_size,
                    kv_dim,
                    c.attention_bias,
                )?,
                v_proj: linear(
                    &mut loader,
                    "self_attn.v_proj",
                    c.hidden_size,
                    kv_dim,
                    c.attention_bias,
                )?,
                o_proj: linear(
                    &mut loader,
                    "self_attn.o_proj",
                    q_dim,
                    c.hidden_size,
                    c.attention_out_bias,
                )?,
                q_norm: if c.qk_norm {
                    Some(norm(&mut loader, "self_attn.q_norm", c.head_dim)?)
                } else {
                    None
                },
                k_norm: if c.qk_norm {
                    Some(norm(&mut loader, "self_attn.k_norm", c.head_dim)?)
                } else {
                    None
                },
                num_heads: c.num_heads,
                num_kv_heads: c.num_kv_heads,
                head_dim: c.head_dim,
            };
            let mlp = Mlp {
                gate: linear(
                    &mut loader,
                    "mlp.gate_proj",
                    c.hidden_size,
                    c.intermediate_size,
                    c.mlp_bias,
                )?,
                up: linear(
                    &mut loader,
                    "mlp.up_proj",
                    c.hidden_size,
                    c.intermediate_size,
                    c.mlp_bias,
                )?,
                down: linear(
                    &mut loader,
                    "mlp.down_proj",
                    c.intermediate_size,
                    c.hidden_size,
                    c.mlp_bias,
                )?,
            };
            layers.push(DecoderLayer {
                input_norm: norm(&mut loader, "input_layernorm", c.hidden_size)?,
                attention,
                post_attention_norm: norm(&mut loader, "post_attention_layernorm", c.hidden_size)?,
                mlp,
            });
        }
        let norm = RmsNorm::new(
            loader.vector("model.norm.weight", c.hidden_size)?,
            c.rms_norm_eps,
        );
        let lm_head = if c.tie_word_embeddings {
            None
        } else {
            Some(Param::from_tensor(loader.matrix(
                "lm_head.weight",
                [c.vocab_size, c.hidden_size],
                true,
            )?))
        };
        Ok(Self {
            embed_tokens: Param::from_tensor(embed),
            layers,
            norm,
            lm_head,
            rope: Rope::new(config, device),
            quantized_head: None,
        })
    }

    /// A model with random weights of the given shape (benchmarks, tests).
    pub fn random(config: &ModelConfig, device: &B::Device) -> Self {
        let mut source = RandomWeights {
            config: config.clone(),
            path: "<random>".into(),
        };
        Self::from_weights(config, &mut source, device)
            .expect("random weights always have the configured shapes")
    }
}

/// Fetches tensors from a source and checks their shapes.
struct Loader<'a, B: Backend> {
    source: &'a mut dyn WeightSource,
    device: &'a B::Device,
}

impl<B: Backend> Loader<'_, B> {
    fn fetch(&mut self, name: &str, expected: &[usize]) -> Result<HostTensor> {
        let tensor = self
            .source
            .load(name)?
            .ok_or_else(|| ModelError::MissingTensor {
                path: self.source.path().to_path_buf(),
                name: name.to_string(),
            })?;
        if tensor.shape != expected {
            return Err(ModelError::WrongShape {
                path: self.source.path().to_path_buf(),
                name: name.to_string(),
                expected: expected.to_vec(),
                actual: tensor.shape,
            });
        }
        Ok(tensor)
    }

    /// A 2-D weight stored `[rows, cols]`; `transpose` turns a `[out, in]` projection into the
    /// `[in, out]` layout `Linear` multiplies with.
    fn matrix(&mut self, name: &str, shape: [usize; 2], transpose: bool) -> Result<Tensor<B, 2>> {
        let t = self.fetch(name, &shape)?;
        let t = if transpose { t.transposed() } else { t };
        let dims = [t.shape[0], t.shape[1]];
        Ok(Tensor::from_data(
            TensorData::new(t.data, dims),
            self.device,
        ))
    }

    fn vector(&mut self, name: &str, len: usize) -> Result<Tensor<B, 1>> {
        let t = self.fetch(name, &[len])?;
        Ok(Tensor::from_data(
            TensorData::new(t.data, [len]),
            self.device,
        ))
    }
}

/// Weights drawn from N(0, 0.02²) (norms: 1), deterministic per tensor name.
struct RandomWeights {
    config: ModelConfig,
    path: std::path::PathBuf,
}

impl WeightSource for RandomWeights {
    fn path(&self) -> &std::path::Path {
        &self.path
    }

    fn load(&mut self, name: &str) -> Result<Option<HostTensor>> {
        let shape = expected_shape(&self.config, name);
        let Some(shape) = shape else { return Ok(None) };
        let numel: usize = shape.iter().product();
        let data = if name.contains("norm") {
            vec![1.0; numel]
        } else {
            // A small, fast, deterministic generator (splitmix64) keyed by the name.
            let mut state = name.bytes().fold(0x9E37_79B9_7F4A_7C15u64, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01B3)
            });
            (0..numel)
                .map(|_| {
                    state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
                    let mut z = state;
                    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
                    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
                    z ^= z >> 31;
                    ((z >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.07
                })
                .collect()
        };
        Ok(Some(HostTensor::new(shape, data)))
    }
}

/// The Hugging Face shape of a named tensor under `config`, if the model has it.
pub fn expected_shape(c: &ModelConfig, name: &str) -> Option<Vec<usize>> {
    let q_dim = c.num_heads * c.head_dim;
    let kv_dim = c.num_kv_heads * c.head_dim;
    match name {
        "model.embed_tokens.weight" => return Some(vec![c.vocab_size, c.hidden_size]),
        "model.norm.weight" => return Some(vec![c.hidden_size]),
        "lm_head.weight" if !c.tie_word_embeddings => {
            return Some(vec![c.vocab_size, c.hidden_size])
        }
        _ => {}
    }
    let rest = name.strip_prefix("model.layers.")?;
    let (layer, suffix) = rest.split_once('.')?;
    if layer.parse::<usize>().ok()? >= c.num_layers {
        return None;
    }
    Some(match suffix {
        "self_attn.q_proj.weight" => vec![q_dim, c.hidden_size],
        "self_attn.k_proj.weight" | "self_attn.v_proj.weight" => vec![kv_dim, c.hidden_size],
        "self_attn.o_proj.weight" => vec![c.hidden_size, q_dim],
        "self_attn.q_proj.bias" if c.attention_bias => vec![q_dim],
        "self_attn.k_proj.bias" | "self_attn.v_proj.bias" if c.attention_bias => vec![kv_dim],
        "self_attn.o_proj.bias" if c.attention_out_bias => vec![c.hidden_size],
        "self_attn.q_norm.weight" | "self_attn.k_norm.weight" if c.qk_norm => vec![c.head_dim],
        "mlp.gate_proj.weight" | "mlp.up_proj.weight" => vec![c.intermediate_size, c.hidden_size],
        "mlp.down_proj.weight" => vec![c.hidden_size, c.intermediate_size],
        "mlp.gate_proj.bias" | "mlp.up_proj.bias" if c.mlp_bias => vec![c.intermediate_size],
        "mlp.down_proj.bias" if c.mlp_bias => vec![c.hidden_size],
        "input_layernorm.weight" | "post_attention_layernorm.weight" => vec![c.hidden_size],
        _ => return None,
    })
}

//! A decode-sized forward pass on the ndarray CPU backend without Burn ops: the transformer's
//! layers run as host loops over a few reused buffers, the projections through the host
//! kernels ([`crate::kernels::skinny`], [`crate::kernels::skinny_quantized`],
//! [`crate::kernels::int8_dot`]) and attention reads the paged keys and values where they lie
//! ([`crate::kernels::host_attention`]). A projection with a low-rank adapter adds the
//! adapter's update on the fly, so an adapted model decodes from its base's blocks.
//!
//! A decode step of a small model does little arithmetic per layer; as a chain of Burn tensor
//! ops it pays an allocation, a dispatch and often a thread wake-up per op (about thirty per
//! layer), which cost more than the products themselves. Here a layer is the products plus a
//! handful of loops, and the activations of q, k and v (and of gate and up) are quantized once
//! when the products take 8-bit activations.
//!
//! The caller owns the keys and values ([`HostKvLayer`], one per layer) and says where each
//! token writes and what each query sees ([`HostStep`]); [`Transformer::forward_hidden`] with a
//! paged context is the definition this path is tested against.

use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};

use crate::kernels::host::{is_ndarray, with_f32_values};
use crate::kernels::int8_dot::{self, Q8Activations};
use crate::kernels::reference::PagedShape;
use crate::kernels::skinny::{self, WeightLayout};
use crate::kernels::{enabled, HostActivations};
use crate::kernels::{host_activations, host_attention, host_ops, skinny_quantized};
use crate::layers::linear::Linear;
use crate::layers::lora::LoraAdapter;
use crate::transformer::Transformer;

/// Most token places (batch × tokens) one host pass takes; longer steps (prompt chunks) keep
/// the dense path, whose matrix products and attention amortize better.
pub const MAX_HOST_ROWS: usize = 64;
/// Most token places one host pass takes when every projection is kept in blocks and takes
/// 8-bit activations: their register-tiled products beat unpacking the weights for Burn's
/// matrix product at any length, so prompt chunks run here too (SmolLM2-135M, a 512-token
/// prompt: 1.8× the dense path's rate, `cargo xtask bench vs-llama-cpp`).
pub const MAX_INT8_HOST_ROWS: usize = 1 << 16;

/// One layer's keys and values in host memory: `[slots, kv_heads·head_dim]` each, row-major.
#[derive(Debug, Clone, Default)]
pub struct HostKvLayer {
    pub keys: Vec<f32>,
    pub values: Vec<f32>,
}

/// What one forward pass over `batch` rows of `tokens` places reads and writes. Every slice
/// is indexed by place `b·tokens + t` except the per-row tables.
#[derive(Debug, Clone, Copy)]
pub struct HostStep<'a> {
    pub batch: usize,
    pub tokens: usize,
    /// Token id at each place (padding places repeat any valid id).
    pub ids: &'a [u32],
    /// Position of each place (the RoPE angle).
    pub positions: &'a [usize],
    /// Slot each place's key and value go to.
    pub write_slots: &'a [usize],
    /// Per row, its blocks in position order.
    pub block_tables: &'a [Vec<usize>],
    /// Per row and place, how many keys (positions `0..n`) the query sees.
    pub visible: &'a [Vec<usize>],
    pub block_size: usize,
}

/// What a step's rows are: one new token per sequence (decode), or prompt chunks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StepRows {
    /// Every product keeps a row's bits whatever the batch (the register-tile kernel).
    Decode,
    /// Long products may take AMX tiles where the CPU has them
    /// ([`int8_dot::matmul_prompt`]).
    Prompt,
}

/// Activations shared by the products that read the same input, quantized on first use.
struct SharedInput<'a> {
    x: &'a [f32],
    rows: usize,
    cols: usize,
    step_rows: StepRows,
    q8: Option<Q8Activations>,
}

impl<'a> SharedInput<'a> {
    fn new(x: &'a [f32], rows: usize, cols: usize, step_rows: StepRows) -> Self {
        Self {
            x,
            rows,
            cols,
            step_rows,
            q8: None,
        }
    }

    /// `x·Wᵀ + b` for `linear`'s weight; `None` when a weight is neither host blocks nor a
    /// contiguous f32 tensor.
    fn project<B: Backend>(&mut self, linear: &Linear<B>) -> Option<Vec<f32>> {
        let (rows, cols) = (self.rows, self.cols);
        let mut y = match linear.quantized.as_ref() {
            Some(q) => {
                let blocks = q.host_blocks()?;
                match host_activations() {
                    HostActivations::Int8 => {
                        let x = self.x;
                        let q8 = self
                            .q8
                            .get_or_insert_with(|| Q8Activations::quantize(x, rows, cols));
                        match self.step_rows {
                            StepRows::Decode => int8_dot::matmul(q8, blocks),
                            StepRows::Prompt => int8_dot::matmul_prompt(q8, blocks),
                        }
                    }
                    // Every row in one pass: the weight streams from memory once per step.
                    _ => skinny_quantized::matmul(self.x, rows, blocks),
                }
            }
            None => {
                let weight = linear.weight.val();
                let n = weight.dims()[1];
                with_f32_values(&weight, false, |w| {
                    by_row_chunks(self.x, rows, cols, skinny::MAX_ROWS, |x, m| {
                        skinny::matmul(x, m, cols, w, n, WeightLayout::InOut)
                    })
                })?
            }
        };
        if let Some(lora) = &linear.lora {
            let delta = adapter_delta(self.x, rows, cols, lora)?;
            host_ops::add_in_place(&mut y, &delta);
        }
        if let Some(bias) = &linear.bias {
            let bias = with_f32_values(&bias.val(), true, <[f32]>::to_vec)?;
            host_ops::add_bias_rows(&mut y, &bias);
        }
        Some(y)
    }
}

/// `f` over chunks of at most `limit` rows of `x` `[rows, cols]`, outputs concatenated.
fn by_row_chunks(
    x: &[f32],
    rows: usize,
    cols: usize,
    limit: usize,
    f: impl Fn(&[f32], usize) -> Vec<f32>,
) -> Vec<f32> {
    if rows <= limit {
        return f(x, rows);
    }
    x.chunks(limit * cols)
        .flat_map(|chunk| f(chunk, chunk.len() / cols))
        .collect()
}

/// An adapter's update `s·(x·A)·B` of `x` `[rows, cols]`: two thin products (rank `r` inner
/// width) beside the base product, so the base keeps its blocks.
fn adapter_delta<B: Backend>(
    x: &[f32],
    rows: usize,
    cols: usize,
    lora: &LoraAdapter<B>,
) -> Option<Vec<f32>> {
    let [_, rank] = lora.a.dims();
    let [_, d_out] = lora.b.dims();
    let xa = with_f32_values(&lora.a.val(), true, |a| {
        by_row_chunks(x, rows, cols, skinny::MAX_ROWS, |x, m| {
            skinny::matmul(x, m, cols, a, rank, WeightLayout::InOut)
        })
    })?;
    let mut delta = with_f32_values(&lora.b.val(), true, |b| {
        by_row_chunks(&xa, rows, rank, skinny::MAX_ROWS, |u, m| {
            skinny::matmul(u, m, rank, b, d_out, WeightLayout::InOut)
        })
    })?;
    let scale = lora.scale as f32;
    delta.iter_mut().for_each(|v| *v *= scale);
    Some(delta)
}

/// A norm's weight vector, copied (a few hundred values).
fn norm_weight<B: Backend>(norm: &crate::layers::rms_norm::RmsNorm<B>) -> Option<Vec<f32>> {
    with_f32_values(&norm.weight.val(), true, <[f32]>::to_vec)
}

impl<B: Backend> Transformer<B> {
    /// Hidden states after the final norm, `[batch, tokens, hidden]`, computed on the host
    /// with the keys and values in `kv` (written at the step's slots, read through its block
    /// tables). `None`, with nothing written, when this path does not apply: not the ndarray
    /// backend, kernels turned off, more than [`MAX_HOST_ROWS`] places, a weight that is
    /// neither host blocks nor a contiguous f32 tensor, a token id or position out of range,
    /// or caches too small for the step's slots.
    pub fn forward_hidden_host(
        &self,
        step: &HostStep<'_>,
        kv: &mut [HostKvLayer],
    ) -> Option<Tensor<B, 3>> {
        let rows = step.batch * step.tokens;
        if !is_ndarray::<B>() || !enabled() || rows == 0 || rows > self.max_host_rows() {
            return None;
        }
        if !self.host_step_fits(step, kv) {
            return None;
        }
        let [vocab, hidden] = self.embed_tokens.dims();
        if step.ids.iter().any(|&id| id as usize >= vocab)
            || step.positions.iter().any(|&p| p >= self.rope.max_positions)
        {
            return None;
        }
        let mut x = with_f32_values(&self.embed_tokens.val(), false, |table| {
            let mut x = Vec::with_capacity(rows * hidden);
            for &id in step.ids {
                x.extend_from_slice(&table[id as usize * hidden..][..hidden]);
            }
            x
        })?;
        let x = self
            .rope
            .with_host_tables(|cos, sin| self.host_layers(step, kv, &mut x, cos, sin))
            .flatten()
            .map(|()| x)?;
        let mut out = x;
        host_ops::rms_norm_rows_in_place(&mut out, &norm_weight(&self.norm)?, self.norm.eps);
        Some(Tensor::from_data(
            TensorData::new(out, [step.batch, step.tokens, hidden]),
            &self.embed_tokens.device(),
        ))
    }

    /// [`MAX_INT8_HOST_ROWS`] when every projection is kept in host blocks and products take
    /// 8-bit activations, else [`MAX_HOST_ROWS`].
    fn max_host_rows(&self) -> usize {
        let all_in_blocks = self.layers.iter().all(|layer| {
            layer.projections().iter().all(|(_, linear)| {
                linear
                    .quantized
                    .as_ref()
                    .is_some_and(|q| q.host_blocks().is_some())
            })
        });
        if all_in_blocks && host_activations() == HostActivations::Int8 {
            MAX_INT8_HOST_ROWS
        } else {
            MAX_HOST_ROWS
        }
    }

    /// Whether the slices of `step` agree with each other and `kv` holds every slot the step
    /// writes or reads.
    fn host_step_fits(&self, step: &HostStep<'_>, kv: &[HostKvLayer]) -> bool {
        let rows = step.batch * step.tokens;
        let Some(first) = self.layers.first() else {
            return false;
        };
        let width = first.attention.num_kv_heads * first.attention.head_dim;
        let slots = kv
            .iter()
            .map(|l| l.keys.len().min(l.values.len()))
            .min()
            .unwrap_or(0)
            / width.max(1);
        let bs = step.block_size.max(1);
        let reads_fit = step.block_tables.iter().zip(step.visible).all(|(t, v)| {
            v.len() == step.tokens
                && v.iter().all(|&n| n <= t.len() * bs)
                && t.iter().all(|&b| (b + 1) * bs <= slots)
        });
        let weights_readable = self.layers.iter().all(|layer| {
            layer.projections().iter().all(|(_, linear)| {
                let adapter_readable = linear.lora.as_ref().is_none_or(|lora| {
                    with_f32_values(&lora.a.val(), true, |_| ()).is_some()
                        && with_f32_values(&lora.b.val(), true, |_| ()).is_some()
                });
                adapter_readable
                    && match &linear.quantized {
                        Some(q) => q.host_blocks().is_some(),
                        None => with_f32_values(&linear.weight.val(), false, |_| ()).is_some(),
                    }
            })
        });
        weights_readable
            && kv.len() == self.layers.len()
            && step.ids.len() == rows
            && step.positions.len() == rows
            && step.write_slots.len() == rows
            && step.block_tables.len() == step.batch
            && step.visible.len() == step.batch
            && step.write_slots.iter().all(|&s| s < slots)
            && reads_fit
    }

    /// Every decoder layer over `x` `[rows, hidden]` in place.
    fn host_layers(
        &self,
        step: &HostStep<'_>,
        kv: &mut [HostKvLayer],
        x: &mut [f32],
        cos: &[f32],
        sin: &[f32],
    ) -> Option<()> {
        let rows = step.batch * step.tokens;
        let hidden = x.len() / rows;
        let step_rows = if step.tokens == 1 {
            StepRows::Decode
        } else {
            StepRows::Prompt
        };
        let mut normed = vec![0.0f32; x.len()];
        for (layer, cache) in self.layers.iter().zip(kv.iter_mut()) {
            let attention = &layer.attention;
            let (heads, kv_heads, d) = (
                attention.num_heads,
                attention.num_kv_heads,
                attention.head_dim,
            );
            let width = kv_heads * d;
            host_ops::rms_norm_rows(
                x,
                &norm_weight(&layer.input_norm)?,
                layer.input_norm.eps,
                &mut normed,
            );
            let mut input = SharedInput::new(&normed, rows, hidden, step_rows);
            let mut q = input.project(&attention.q_proj)?;
            let mut k = input.project(&attention.k_proj)?;
            let v = input.project(&attention.v_proj)?;
            if let Some(norm) = &attention.q_norm {
                host_ops::rms_norm_rows_in_place(&mut q, &norm_weight(norm)?, norm.eps);
            }
            if let Some(norm) = &attention.k_norm {
                host_ops::rms_norm_rows_in_place(&mut k, &norm_weight(norm)?, norm.eps);
            }
            host_ops::rope_in_place(&mut q, step.positions, d, cos, sin);
            host_ops::rope_in_place(&mut k, step.positions, d, cos, sin);
            for (place, &slot) in step.write_slots.iter().enumerate() {
                let at = slot * width;
                cache.keys[at..at + width].copy_from_slice(&k[place * width..][..width]);
                cache.values[at..at + width].copy_from_slice(&v[place * width..][..width]);
            }
            let mut attended = vec![0.0f32; rows * heads * d];
            host_attention::paged_attention(
                &q,
                &cache.keys,
                &cache.values,
                step.block_tables,
                step.visible,
                PagedShape {
                    batch: step.batch,
                    heads,
                    kv_heads,
                    tokens: step.tokens,
                    head_dim: d,
                    block_size: step.block_size,
                },
                &mut attended,
            );
            let out = SharedInput::new(&attended, rows, heads * d, step_rows)
                .project(&attention.o_proj)?;
            host_ops::add_in_place(x, &out);

            let post = &layer.post_attention_norm;
            host_ops::rms_norm_rows(x, &norm_weight(post)?, post.eps, &mut normed);
            let mut input = SharedInput::new(&normed, rows, hidden, step_rows);
            let mut gate = input.project(&layer.mlp.gate)?;
            let up = input.project(&layer.mlp.up)?;
            host_ops::silu_mul_in_place(&mut gate, &up);
            let intermediate = gate.len() / rows;
            let down =
                SharedInput::new(&gate, rows, intermediate, step_rows).project(&layer.mlp.down)?;
            host_ops::add_in_place(x, &down);
        }
        Some(())
    }
}

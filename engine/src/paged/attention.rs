//! One forward pass over paged KV memory: each row writes its new tokens' keys and values to
//! its slots, then attends over the slots of its whole sequence, gathered in position order.
//!
//! The batch is ragged: row `b` brings `n_b ≤ T` new tokens and has `len_b` tokens in all after
//! them. Padding tokens write to a scratch slot that nobody reads unmasked; key entries past a
//! row's length point at slot 0 and are masked.

use burn::tensor::backend::Backend;
use burn::tensor::{Bool, Int, Tensor, TensorData};

use mars2_models::attention_context::{attention_grouped, AttentionContext};

use super::storage::AgentKvStorage;

/// The attention context of one forward pass over paged memory.
pub struct PagedStep<'a, B: Backend> {
    storage: &'a mut AgentKvStorage<B>,
    write_slots: Vec<usize>,
    write_slots_tensor: Tensor<B, 2, Int>,
    reads: Reads<B>,
    batch: usize,
    tokens: usize,
    keys: usize,
    device: B::Device,
}

/// How the keys are read: by the paged attention kernel through block tables, or gathered in
/// position order for dense attention (built on first use, also when the kernel declines).
struct Reads<B: Backend> {
    /// `[batch, max_blocks]` and `[batch, tokens]`, on backends with the kernel.
    paged: Option<(Tensor<B, 2, Int>, Tensor<B, 2, Int>)>,
    /// The step's layout, from which the gather path's slots and mask are built when needed
    /// (never, when the kernel runs every layer).
    layout: StepLayout,
    gathered: Option<Gathered<B>>,
}

/// The slot of each key place (padded rows point at slot 0), as host indices and as a
/// tensor, and whether each (token, key) pair is hidden.
#[derive(Clone)]
struct Gathered<B: Backend> {
    slots: Vec<usize>,
    slots_tensor: Tensor<B, 1, Int>,
    mask: Tensor<B, 4, Bool>,
}

/// Host-side description of a ragged step.
pub struct StepLayout {
    /// Per row: slot of each of the `T` token places (padding places → scratch slot).
    pub write_slots: Vec<Vec<usize>>,
    /// Per row: slots of positions `0..len_b` after this step.
    pub read_slots: Vec<Vec<usize>>,
    /// Per row: position of each of the `T` token places (padding repeats the last).
    pub positions: Vec<Vec<usize>>,
}

impl StepLayout {
    /// Per row, its blocks in position order (read off the slots of positions `0, bs, 2·bs…`).
    pub fn block_tables(&self, block_size: usize) -> Vec<Vec<usize>> {
        self.read_slots
            .iter()
            .map(|slots| {
                slots
                    .iter()
                    .step_by(block_size)
                    .map(|s| s / block_size)
                    .collect()
            })
            .collect()
    }

    /// Per row and token place, how many keys (positions `0..n`) the query sees.
    pub fn visible(&self) -> Vec<Vec<usize>> {
        self.positions
            .iter()
            .zip(&self.read_slots)
            .map(|(positions, slots)| {
                positions
                    .iter()
                    .map(|&p| (p + 1).min(slots.len()))
                    .collect()
            })
            .collect()
    }
}

fn int_tensor<B: Backend>(rows: &[Vec<usize>], device: &B::Device) -> Tensor<B, 2, Int> {
    let width = rows.iter().map(Vec::len).max().unwrap_or(0).max(1);
    let mut data = Vec::with_capacity(rows.len() * width);
    for row in rows {
        data.extend(row.iter().map(|&v| v as i64));
        data.extend(std::iter::repeat_n(0, width - row.len()));
    }
    Tensor::from_data(TensorData::new(data, [rows.len(), width]), device)
}

impl<'a, B: Backend> PagedStep<'a, B> {
    pub fn new(storage: &'a mut AgentKvStorage<B>, layout: StepLayout, device: &B::Device) -> Self {
        let batch = layout.write_slots.len();
        let tokens = layout.write_slots.first().map_or(0, Vec::len);
        let keys = layout
            .read_slots
            .iter()
            .map(Vec::len)
            .max()
            .unwrap_or(0)
            .max(1);
        let write_slots: Vec<usize> = layout.write_slots.iter().flatten().copied().collect();
        let write: Vec<i64> = write_slots.iter().map(|&s| s as i64).collect();
        let paged = mars2_models::kernels::accelerated::<B>().then(|| {
            (
                int_tensor(&layout.block_tables(storage.block_size()), device),
                int_tensor(&layout.visible(), device),
            )
        });
        Self {
            storage,
            write_slots,
            write_slots_tensor: Tensor::from_data(
                TensorData::new(write, [batch * tokens, 1]),
                device,
            ),
            reads: Reads {
                paged,
                layout,
                gathered: None,
            },
            batch,
            tokens,
            keys,
            device: device.clone(),
        }
    }

    fn gathered(&mut self) -> Gathered<B> {
        let (batch, tokens, keys) = (self.batch, self.tokens, self.keys);
        let reads = &mut self.reads;
        let device = &self.device;
        reads
            .gathered
            .get_or_insert_with(|| {
                // Slot per key place, and whether each (token, key) pair is hidden.
                let layout = &reads.layout;
                let mut read = Vec::with_capacity(batch * keys);
                let mut hidden = Vec::with_capacity(batch * tokens * keys);
                for (row, slots) in layout.read_slots.iter().enumerate() {
                    read.extend(slots.iter().copied());
                    read.extend(std::iter::repeat_n(0, keys - slots.len()));
                    for &pos in &layout.positions[row] {
                        hidden.extend((0..keys).map(|k| k > pos || k >= slots.len()));
                    }
                }
                let as_i64: Vec<i64> = read.iter().map(|&s| s as i64).collect();
                Gathered {
                    slots_tensor: Tensor::from_data(
                        TensorData::new(as_i64, [batch * keys]),
                        device,
                    ),
                    slots: read,
                    mask: Tensor::<B, 3, Bool>::from_data(
                        TensorData::new(hidden, [batch, tokens, keys]),
                        device,
                    )
                    .unsqueeze_dim(1),
                }
            })
            .clone()
    }
}

impl<B: Backend> AttentionContext<B> for PagedStep<'_, B> {
    fn attend(
        &mut self,
        layer: usize,
        q: Tensor<B, 4>,
        k: Tensor<B, 4>,
        v: Tensor<B, 4>,
    ) -> Tensor<B, 4> {
        let [b, kv_heads, t, d] = k.dims();
        let rows = |x: Tensor<B, 4>| x.swap_dims(1, 2).reshape([b * t, kv_heads * d]);
        self.storage.write(
            layer,
            &self.write_slots,
            &self.write_slots_tensor,
            rows(k),
            rows(v),
        );
        if let (Some((tables, visible)), Some((k_cache, v_cache))) =
            (&self.reads.paged, self.storage.layer(layer))
        {
            if let Some(out) = mars2_models::kernels::paged_attention(
                &q,
                k_cache,
                v_cache,
                tables,
                visible,
                self.storage.block_size(),
            ) {
                return out;
            }
        }
        let Gathered {
            slots,
            slots_tensor,
            mask,
        } = self.gathered();
        let (keys, values) = self.storage.read(layer, &slots, &slots_tensor);
        let shape = |x: Tensor<B, 2>| {
            x.reshape([self.batch, self.keys, kv_heads, d])
                .swap_dims(1, 2)
        };
        attention_grouped(q, shape(keys), shape(values), mask)
    }
}

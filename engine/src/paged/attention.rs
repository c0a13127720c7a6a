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
    write_slots: Tensor<B, 2, Int>,
    read_slots: Tensor<B, 1, Int>,
    mask: Tensor<B, 4, Bool>,
    batch: usize,
    keys: usize,
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

impl<'a, B: Backend> PagedStep<'a, B> {
    pub fn new(
        storage: &'a mut AgentKvStorage<B>,
        layout: &StepLayout,
        device: &B::Device,
    ) -> Self {
        let batch = layout.write_slots.len();
        let tokens = layout.write_slots.first().map_or(0, Vec::len);
        let keys = layout
            .read_slots
            .iter()
            .map(Vec::len)
            .max()
            .unwrap_or(0)
            .max(1);
        let write: Vec<i64> = layout
            .write_slots
            .iter()
            .flatten()
            .map(|&s| s as i64)
            .collect();
        let mut read = Vec::with_capacity(batch * keys);
        let mut hidden = Vec::with_capacity(batch * tokens * keys);
        for (row, slots) in layout.read_slots.iter().enumerate() {
            read.extend(slots.iter().map(|&s| s as i64));
            read.extend(std::iter::repeat_n(0, keys - slots.len()));
            for &pos in &layout.positions[row] {
                hidden.extend((0..keys).map(|k| k > pos || k >= slots.len()));
            }
        }
        Self {
            storage,
            write_slots: Tensor::from_data(TensorData::new(write, [batch * tokens, 1]), device),
            read_slots: Tensor::from_data(TensorData::new(read, [batch * keys]), device),
            mask: Tensor::<B, 3, Bool>::from_data(
                TensorData::new(hidden, [batch, tokens, keys]),
                device,
            )
            .unsqueeze_dim(1),
            batch,
            keys,
        }
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
        self.storage
            .write(layer, self.write_slots.clone(), rows(k), rows(v));
        let (keys, values) = self.storage.read(layer, self.read_slots.clone());
        let shape = |x: Tensor<B, 2>| {
            x.reshape([self.batch, self.keys, kv_heads, d])
                .swap_dims(1, 2)
        };
        attention_grouped(q, shape(keys), shape(values), self.mask.clone())
    }
}

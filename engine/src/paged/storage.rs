//! One agent's keys and values: per layer a `[slots, kv_heads·head_dim]` tensor for keys and one
//! for values. Slot `s` belongs to block `s / block_size`. Storage grows (doubling) when the
//! agent's block ids pass its capacity; writes are scatters of whole rows, reads are gathers.

use burn::tensor::backend::Backend;
use burn::tensor::{IndexingUpdateOp, Int, Tensor, TensorData};

use crate::kv::BlockCopy;

/// Bytes one token's keys and values take over all layers, in the float type of `B` (f32, or
/// f16/bf16 on the half-precision devices).
pub fn kv_bytes_per_token<B: Backend>(
    num_layers: usize,
    kv_heads: usize,
    head_dim: usize,
) -> usize {
    2 * num_layers * kv_heads * head_dim * std::mem::size_of::<B::FloatElem>()
}

pub struct AgentKvStorage<B: Backend> {
    layers: Vec<(Tensor<B, 2>, Tensor<B, 2>)>,
    block_size: usize,
    width: usize,
    capacity_blocks: usize,
    device: B::Device,
}

impl<B: Backend> AgentKvStorage<B> {
    pub fn new(
        num_layers: usize,
        kv_heads: usize,
        head_dim: usize,
        block_size: usize,
        device: &B::Device,
    ) -> Self {
        let width = kv_heads * head_dim;
        let initial = 16;
        let zeros = || Tensor::<B, 2>::zeros([initial * block_size, width], device);
        Self {
            layers: (0..num_layers).map(|_| (zeros(), zeros())).collect(),
            block_size,
            width,
            capacity_blocks: initial,
            device: device.clone(),
        }
    }

    pub fn block_size(&self) -> usize {
        self.block_size
    }

    /// One layer's key and value slots, `[slots, kv_heads·head_dim]` each.
    pub fn layer(&self, layer: usize) -> (&Tensor<B, 2>, &Tensor<B, 2>) {
        let (k, v) = &self.layers[layer];
        (k, v)
    }

    pub fn capacity_blocks(&self) -> usize {
        self.capacity_blocks
    }

    /// Makes block ids `0..blocks` addressable.
    pub fn ensure_blocks(&mut self, blocks: usize) {
        if blocks <= self.capacity_blocks {
            return;
        }
        let new_capacity = blocks.max(self.capacity_blocks * 2);
        let extra = (new_capacity - self.capacity_blocks) * self.block_size;
        for (k, v) in &mut self.layers {
            let pad = Tensor::<B, 2>::zeros([extra, self.width], &self.device);
            *k = Tensor::cat(vec![k.clone(), pad.clone()], 0);
            *v = Tensor::cat(vec![v.clone(), pad], 0);
        }
        self.capacity_blocks = new_capacity;
    }

    fn index_tensor(&self, slots: &[usize]) -> Tensor<B, 2, Int> {
        let data: Vec<i64> = slots.iter().map(|&s| s as i64).collect();
        Tensor::from_data(TensorData::new(data, [slots.len(), 1]), &self.device)
    }

    /// Executes copy-on-write copies (before the step's writes).
    pub fn copy_blocks(&mut self, copies: &[BlockCopy]) {
        if copies.is_empty() {
            return;
        }
        let mut src = Vec::new();
        let mut dst = Vec::new();
        for c in copies {
            for i in 0..c.slots {
                src.push(c.src as usize * self.block_size + i);
                dst.push(c.dst as usize * self.block_size + i);
            }
        }
        if src.is_empty() {
            return;
        }
        let src_idx = self.index_tensor(&src).reshape([src.len()]);
        let dst_idx = self.index_tensor(&dst);
        for (k, v) in &mut self.layers {
            let k_rows = k.clone().select(0, src_idx.clone());
            let v_rows = v.clone().select(0, src_idx.clone());
            *k = k
                .clone()
                .scatter_nd(dst_idx.clone(), k_rows, IndexingUpdateOp::Assign);
            *v = v
                .clone()
                .scatter_nd(dst_idx.clone(), v_rows, IndexingUpdateOp::Assign);
        }
    }

    /// Writes rows `[n, kv_heads·head_dim]` of keys and values at `slots` (`[n, 1]`).
    pub fn write(
        &mut self,
        layer: usize,
        slots: Tensor<B, 2, Int>,
        k: Tensor<B, 2>,
        v: Tensor<B, 2>,
    ) {
        let (kc, vc) = &mut self.layers[layer];
        // Take the tensors out so the scatter owns a unique buffer and can write in place.
        let kt = std::mem::replace(kc, Tensor::empty([0, 0], &self.device));
        let vt = std::mem::replace(vc, Tensor::empty([0, 0], &self.device));
        *kc = kt.scatter_nd(slots.clone(), k, IndexingUpdateOp::Assign);
        *vc = vt.scatter_nd(slots, v, IndexingUpdateOp::Assign);
    }

    /// Gathers keys and values at `slots` (`[n]`): two `[n, kv_heads·head_dim]` tensors.
    pub fn read(&self, layer: usize, slots: Tensor<B, 1, Int>) -> (Tensor<B, 2>, Tensor<B, 2>) {
        let (k, v) = &self.layers[layer];
        (
            k.clone().select(0, slots.clone()),
            v.clone().select(0, slots),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_takes_its_keys_and_values_in_the_backends_float_type() {
        // SmolLM2-135M: 30 layers, 3 KV heads of 64.
        assert_eq!(kv_bytes_per_token::<crate::device::Cpu>(30, 3, 64), 46_080);
        #[cfg(feature = "wgpu")]
        assert_eq!(
            kv_bytes_per_token::<crate::device::WgpuF16>(30, 3, 64),
            23_040
        );
    }
}

//! One agent's keys and values: per layer `[slots, kv_heads·head_dim]` for keys and the same for
//! values, as backend tensors or (on the ndarray CPU backend) host vectors. Slot `s` belongs to
//! block `s / block_size`. Storage grows (doubling) when the agent's block ids pass its
//! capacity; writes are scatters of whole rows, reads are gathers.

use burn::tensor::backend::Backend;
use burn::tensor::{IndexingUpdateOp, Int, Tensor, TensorData};

use mars2_models::host_decode::HostKvLayer;
use mars2_models::kernels::{self, host};

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
    layers: Layers<B>,
    block_size: usize,
    width: usize,
    capacity_blocks: usize,
    device: B::Device,
}

/// Where the slots live: tensors of the backend, or plain host vectors on the ndarray CPU
/// backend, which the host decode path ([`mars2_models::host_decode`]) reads and writes in
/// place and the tensor path reaches through copies of the rows it touches.
enum Layers<B: Backend> {
    Tensors(Vec<(Tensor<B, 2>, Tensor<B, 2>)>),
    Host(Vec<HostKvLayer>),
}

/// The values of a float tensor as host f32s.
fn host_values<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .into_vec::<f32>()
        .expect("a float tensor converts to f32")
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
        let slots = initial * block_size;
        let layers = if host::is_ndarray::<B>() && kernels::enabled() {
            Layers::Host(
                (0..num_layers)
                    .map(|_| HostKvLayer {
                        keys: vec![0.0; slots * width],
                        values: vec![0.0; slots * width],
                    })
                    .collect(),
            )
        } else {
            let zeros = || Tensor::<B, 2>::zeros([slots, width], device);
            Layers::Tensors((0..num_layers).map(|_| (zeros(), zeros())).collect())
        };
        Self {
            layers,
            block_size,
            width,
            capacity_blocks: initial,
            device: device.clone(),
        }
    }

    pub fn block_size(&self) -> usize {
        self.block_size
    }

    /// One layer's key and value slots, `[slots, kv_heads·head_dim]` each, when they are
    /// tensors (`None` when they live in host vectors: [`Self::host_layers_mut`]).
    pub fn layer(&self, layer: usize) -> Option<(&Tensor<B, 2>, &Tensor<B, 2>)> {
        match &self.layers {
            Layers::Tensors(layers) => {
                let (k, v) = &layers[layer];
                Some((k, v))
            }
            Layers::Host(_) => None,
        }
    }

    /// Every layer's slots as host vectors, when they live there.
    pub fn host_layers_mut(&mut self) -> Option<&mut [HostKvLayer]> {
        match &mut self.layers {
            Layers::Host(layers) => Some(layers),
            Layers::Tensors(_) => None,
        }
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
        match &mut self.layers {
            Layers::Tensors(layers) => {
                for (k, v) in layers {
                    let pad = Tensor::<B, 2>::zeros([extra, self.width], &self.device);
                    *k = Tensor::cat(vec![k.clone(), pad.clone()], 0);
                    *v = Tensor::cat(vec![v.clone(), pad], 0);
                }
            }
            Layers::Host(layers) => {
                let len = new_capacity * self.block_size * self.width;
                for layer in layers {
                    layer.keys.resize(len, 0.0);
                    layer.values.resize(len, 0.0);
                }
            }
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
        let width = self.width;
        if let Layers::Host(layers) = &mut self.layers {
            for layer in layers {
                for (&from, &to) in src.iter().zip(&dst) {
                    layer
                        .keys
                        .copy_within(from * width..(from + 1) * width, to * width);
                    layer
                        .values
                        .copy_within(from * width..(from + 1) * width, to * width);
                }
            }
            return;
        }
        let src_idx = self.index_tensor(&src).reshape([src.len()]);
        let dst_idx = self.index_tensor(&dst);
        if let Layers::Tensors(layers) = &mut self.layers {
            for (k, v) in layers {
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
    }

    /// Writes rows `[n, kv_heads·head_dim]` of keys and values at `slots` (given both as
    /// host indices and as the `[n, 1]` tensor of them).
    pub fn write(
        &mut self,
        layer: usize,
        slots: &[usize],
        slots_tensor: &Tensor<B, 2, Int>,
        k: Tensor<B, 2>,
        v: Tensor<B, 2>,
    ) {
        let width = self.width;
        match &mut self.layers {
            Layers::Tensors(layers) => {
                let (kc, vc) = &mut layers[layer];
                // Take the tensors out so the scatter owns a unique buffer and can write in
                // place.
                let kt = std::mem::replace(kc, Tensor::empty([0, 0], &self.device));
                let vt = std::mem::replace(vc, Tensor::empty([0, 0], &self.device));
                *kc = kt.scatter_nd(slots_tensor.clone(), k, IndexingUpdateOp::Assign);
                *vc = vt.scatter_nd(slots_tensor.clone(), v, IndexingUpdateOp::Assign);
            }
            Layers::Host(layers) => {
                let (k, v) = (host_values(k), host_values(v));
                let cache = &mut layers[layer];
                for (i, &slot) in slots.iter().enumerate() {
                    let at = slot * width;
                    cache.keys[at..at + width].copy_from_slice(&k[i * width..][..width]);
                    cache.values[at..at + width].copy_from_slice(&v[i * width..][..width]);
                }
            }
        }
    }

    /// Gathers keys and values at `slots` (given both as host indices and as the `[n]`
    /// tensor of them): two `[n, kv_heads·head_dim]` tensors.
    pub fn read(
        &self,
        layer: usize,
        slots: &[usize],
        slots_tensor: &Tensor<B, 1, Int>,
    ) -> (Tensor<B, 2>, Tensor<B, 2>) {
        match &self.layers {
            Layers::Tensors(layers) => {
                let (k, v) = &layers[layer];
                (
                    k.clone().select(0, slots_tensor.clone()),
                    v.clone().select(0, slots_tensor.clone()),
                )
            }
            Layers::Host(layers) => {
                let width = self.width;
                let cache = &layers[layer];
                let gather = |values: &[f32]| {
                    let mut rows = Vec::with_capacity(slots.len() * width);
                    for &slot in slots {
                        rows.extend_from_slice(&values[slot * width..][..width]);
                    }
                    Tensor::from_data(TensorData::new(rows, [slots.len(), width]), &self.device)
                };
                (gather(&cache.keys), gather(&cache.values))
            }
        }
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

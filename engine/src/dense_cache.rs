//! A contiguous KV cache: per layer one `[batch, kv_heads, capacity, head_dim]` tensor for keys
//! and one for values, where a token's slot is its position.
//!
//! Rows advance independently: before each forward pass the caller says at which slot each
//! row's new tokens start ([`DenseKvCache::begin_step`]); a query at position `p` sees slots
//! `0..=p` of its row. Slots past a row's end may hold stale values (padding of a ragged
//! prefill); they are never visible, because a query at `p` only sees slots already rewritten.
//! Simple and exact; the paged block pool replaces it where memory sharing matters.

use burn::tensor::backend::Backend;
use burn::tensor::{Bool, Tensor, TensorData};

use mars2_models::attention_context::{attention_grouped, AttentionContext};

pub struct DenseKvCache<B: Backend> {
    layers: Vec<Option<(Tensor<B, 4>, Tensor<B, 4>)>>,
    batch: usize,
    capacity: usize,
    device: B::Device,
    starts: Vec<usize>,
    tokens: usize,
    visible: usize,
    mask: Option<Tensor<B, 4, Bool>>,
}

impl<B: Backend> DenseKvCache<B> {
    pub fn new(num_layers: usize, batch: usize, capacity: usize, device: &B::Device) -> Self {
        Self {
            layers: (0..num_layers).map(|_| None).collect(),
            batch,
            capacity,
            device: device.clone(),
            starts: vec![0; batch],
            tokens: 0,
            visible: 0,
            mask: None,
        }
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Prepares the next forward pass: row `i`'s `tokens` new tokens go to slots
    /// `starts[i]..starts[i] + tokens` (which are also their positions).
    ///
    /// # Panics
    /// If a row would pass the capacity (the caller sized the cache).
    pub fn begin_step(&mut self, starts: &[usize], tokens: usize) {
        assert_eq!(starts.len(), self.batch, "one start per row");
        let visible = starts.iter().map(|s| s + tokens).max().unwrap_or(0);
        assert!(
            visible <= self.capacity,
            "KV cache capacity {} exceeded",
            self.capacity
        );
        let mut hidden = Vec::with_capacity(self.batch * tokens * visible);
        for &start in starts {
            for t in 0..tokens {
                hidden.extend((0..visible).map(|slot| slot > start + t));
            }
        }
        let mask = Tensor::<B, 3, Bool>::from_data(
            TensorData::new(hidden, [self.batch, tokens, visible]),
            &self.device,
        );
        self.mask = Some(mask.unsqueeze_dim(1));
        self.starts = starts.to_vec();
        self.tokens = tokens;
        self.visible = visible;
    }

    fn write(&self, cache: Tensor<B, 4>, new: Tensor<B, 4>) -> Tensor<B, 4> {
        let [b, h, t, d] = new.dims();
        let first = self.starts[0];
        if self.starts.iter().all(|&s| s == first) {
            return cache.slice_assign([0..b, 0..h, first..first + t, 0..d], new);
        }
        let mut cache = cache;
        for (row, &start) in self.starts.iter().enumerate() {
            let values = new.clone().slice([row..row + 1, 0..h, 0..t, 0..d]);
            cache = cache.slice_assign([row..row + 1, 0..h, start..start + t, 0..d], values);
        }
        cache
    }
}

impl<B: Backend> AttentionContext<B> for DenseKvCache<B> {
    fn attend(
        &mut self,
        layer: usize,
        q: Tensor<B, 4>,
        k: Tensor<B, 4>,
        v: Tensor<B, 4>,
    ) -> Tensor<B, 4> {
        let [b, h, _, d] = k.dims();
        let (kc, vc) = self.layers[layer].take().unwrap_or_else(|| {
            let zeros = || Tensor::zeros([b, h, self.capacity, d], &self.device);
            (zeros(), zeros())
        });
        let kc = self.write(kc, k);
        let vc = self.write(vc, v);
        let visible = self.visible;
        let keys = kc.clone().slice([0..b, 0..h, 0..visible, 0..d]);
        let values = vc.clone().slice([0..b, 0..h, 0..visible, 0..d]);
        self.layers[layer] = Some((kc, vc));
        let mask = self
            .mask
            .clone()
            .expect("begin_step must be called before a forward pass");
        attention_grouped(q, keys, values, mask)
    }
}

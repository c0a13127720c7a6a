//! Helpers shared by the model tests (each test binary uses the ones it needs).
#![allow(dead_code)]

use burn::backend::NdArray;
use burn::tensor::{Int, Tensor, TensorData};
use mars2_models::attention_context::FullSequence;
use mars2_models::Transformer;

pub type Cpu = NdArray<f32>;

/// The logits of `ids` (one sequence, positions from 0), `[tokens × vocab]` row-major.
pub fn logits(model: &Transformer<Cpu>, ids: &[i64]) -> Vec<f32> {
    let device = Default::default();
    let tokens = ids.len();
    let ids = Tensor::<Cpu, 2, Int>::from_data(TensorData::new(ids.to_vec(), [1, tokens]), &device);
    let positions: Vec<i64> = (0..tokens as i64).collect();
    let positions =
        Tensor::<Cpu, 2, Int>::from_data(TensorData::new(positions, [1, tokens]), &device);
    let mut ctx = FullSequence::new(positions.clone());
    model
        .forward(ids, positions, &mut ctx)
        .to_data()
        .iter::<f32>()
        .collect()
}

/// Largest absolute difference between two equally long slices.
pub fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "length mismatch");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

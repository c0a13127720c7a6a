//! G-Vendi: the count sketch against its explicit matrix, the Gram-matrix eigenvalues against
//! the d × d covariance, the known values (copies → 1, orthogonal → n), and gradients of a
//! tiny transformer.

use burn::backend::{Autodiff, NdArray};
use mars2_models::{ModelConfig, Transformer};
use mars2_rl::gvendi::{
    g_vendi, sketch_dense_reference, sketch_into, vendi_score, vendi_score_reference, GVendiConfig,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

#[test]
fn count_sketch_equals_its_matrix() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let tensors: Vec<Vec<f32>> = [7, 1, 13]
        .iter()
        .map(|&n| (0..n).map(|_| rng.random_range(-1.0..1.0)).collect())
        .collect();
    for dim in [1, 5, 16] {
        let mut fast = vec![0.0; dim];
        for (t, v) in tensors.iter().enumerate() {
            sketch_into(&mut fast, v, t, 9);
        }
        let slow = sketch_dense_reference(&tensors, dim, 9);
        assert!(fast.iter().zip(&slow).all(|(a, b)| (a - b).abs() < 1e-5));
    }
}

#[test]
fn gram_and_covariance_agree_and_known_values_hold() {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    for (n, d) in [(1, 4), (3, 8), (6, 5), (9, 3)] {
        let set: Vec<Vec<f32>> = (0..n)
            .map(|_| (0..d).map(|_| rng.random_range(-1.0..1.0)).collect())
            .collect();
        let (fast, slow) = (vendi_score(&set), vendi_score_reference(&set));
        assert!((fast - slow).abs() < 1e-9, "{n}×{d}: {fast} vs {slow}");
        assert!((1.0 - 1e-9..=n.min(d) as f64 + 1e-9).contains(&fast));
    }
    let copies = vec![vec![0.3, -2.0, 1.0]; 5];
    assert!((vendi_score(&copies) - 1.0).abs() < 1e-9);
    let orthogonal: Vec<Vec<f32>> = (0..4)
        .map(|i| (0..4).map(|j| if i == j { 2.0 } else { 0.0 }).collect())
        .collect();
    assert!((vendi_score(&orthogonal) - 4.0).abs() < 1e-9);
    assert_eq!(vendi_score(&[]), 0.0);
    // A zero vector has no direction and is left out.
    let with_zero = vec![vec![1.0, 0.0], vec![0.0, 0.0], vec![0.0, 3.0]];
    assert!((vendi_score(&with_zero) - 2.0).abs() < 1e-9);
    assert!((vendi_score_reference(&with_zero) - 2.0).abs() < 1e-9);
    assert_eq!(vendi_score(&[vec![0.0; 3]]), 0.0);
}

#[test]
fn gradient_diversity_of_a_tiny_model() {
    let config = ModelConfig::tiny_llama(32, 16, 2);
    let device = Default::default();
    let model = Transformer::<Autodiff<NdArray<f32>>>::random(&config, &device);
    let settings = GVendiConfig {
        dim: 64,
        ..GVendiConfig::default()
    };
    let a = (vec![1, 2, 3], vec![4, 5, 6]);
    let b = (vec![1, 2, 3], vec![20, 9, 31, 7]);
    let same = g_vendi(&model, &[a.clone(), a.clone()], &settings, &device);
    assert_eq!(same.samples, 2);
    assert!((same.score - 1.0).abs() < 1e-6, "{}", same.score);
    let two = g_vendi(&model, &[a.clone(), b], &settings, &device);
    assert!(two.score > 1.01 && two.score <= 2.0 + 1e-9, "{}", two.score);
    let empty = g_vendi(&model, &[(vec![], vec![1]), a], &settings, &device);
    assert_eq!(empty.samples, 1);
    assert!((empty.score - 1.0).abs() < 1e-9);
}

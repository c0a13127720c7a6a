//! G-Vendi: the count sketch against its explicit matrix, the Gram-matrix eigenvalues against
//! the d × d covariance, the known values (copies → 1, orthogonal → n), the frozen-proxy
//! gradients against a full backward pass, scores on a tiny transformer, and the documented
//! results on empty, zero and invalid input.

use burn::backend::{Autodiff, NdArray};
use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::Tensor;
use mars2_models::{ModelConfig, Transformer};
use mars2_rl::gvendi::{
    g_vendi, gradient_proxy, projected_gradient, sketch_dense_reference, sketch_gradient,
    vendi_score, vendi_score_reference, GVendiConfig, GVendiError,
};
use mars2_rl::logprobs::response_logprobs;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

type B = Autodiff<NdArray<f32>>;

fn random_set(rng: &mut ChaCha8Rng, n: usize, d: usize) -> Vec<Vec<f32>> {
    (0..n)
        .map(|_| (0..d).map(|_| rng.random_range(-1.0..1.0)).collect())
        .collect()
}

fn tiny_model() -> Transformer<B> {
    Transformer::<B>::random(&ModelConfig::tiny_llama(32, 16, 2), &Default::default())
}

#[test]
fn count_sketch_equals_its_matrix() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    for sizes in [vec![7, 1, 13], vec![40], vec![3, 0, 25, 2]] {
        let tensors: Vec<Vec<f32>> = sizes
            .iter()
            .map(|&n| random_set(&mut rng, 1, n)[0].clone())
            .collect();
        for dim in [1, 5, 16, 64] {
            for seed in [0, 9] {
                let fast = sketch_gradient(&tensors, dim, seed);
                let slow = sketch_dense_reference(&tensors, dim, seed);
                assert_eq!(fast.len(), dim);
                for (a, b) in fast.iter().zip(&slow) {
                    assert!((a - b).abs() < 1e-5, "{sizes:?} dim {dim}: {a} vs {b}");
                }
            }
        }
    }
    // The sketch preserves the norm in expectation; with one bucket it is a signed sum.
    let one = sketch_gradient(&[vec![1.0, 2.0, 3.0]], 1, 4);
    assert!([-6.0, -4.0, -2.0, 0.0, 2.0, 4.0, 6.0].contains(&one[0]));
    assert!(sketch_gradient(&[vec![1.0]], 0, 0).is_empty());
}

#[test]
fn gram_and_covariance_agree_on_random_sets() {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    for (n, d) in [(1, 4), (2, 2), (3, 8), (6, 5), (9, 3), (12, 12)] {
        for _ in 0..4 {
            let set = random_set(&mut rng, n, d);
            let (fast, slow) = (vendi_score(&set), vendi_score_reference(&set));
            assert!((fast - slow).abs() < 1e-9, "{n}×{d}: {fast} vs {slow}");
            assert!((1.0 - 1e-9..=n.min(d) as f64 + 1e-9).contains(&fast));
        }
    }
}

#[test]
fn known_values() {
    let copies = vec![vec![0.3, -2.0, 1.0]; 5];
    assert!((vendi_score(&copies) - 1.0).abs() < 1e-6);
    // Scaling a vector does not change its direction.
    let scaled = vec![vec![0.3, -2.0, 1.0], vec![3.0, -20.0, 10.0]];
    assert!((vendi_score(&scaled) - 1.0).abs() < 1e-6);
    for n in 1..=6 {
        let orthogonal: Vec<Vec<f32>> = (0..n)
            .map(|i| (0..n + 2).map(|j| if i == j { 2.0 } else { 0.0 }).collect())
            .collect();
        assert!((vendi_score(&orthogonal) - n as f64).abs() < 1e-9);
        assert!((vendi_score_reference(&orthogonal) - n as f64).abs() < 1e-9);
    }
    // Two unit vectors at angle θ: eigenvalues (1 ± cos θ) / 2.
    let theta = 0.7f64;
    let pair = vec![vec![1.0, 0.0], vec![theta.cos() as f32, theta.sin() as f32]];
    let (a, b) = ((1.0 + theta.cos()) / 2.0, (1.0 - theta.cos()) / 2.0);
    let expected = (-(a * a.ln()) - b * b.ln()).exp();
    assert!((vendi_score(&pair) - expected).abs() < 1e-6);
}

#[test]
fn empty_zero_and_non_finite_sets() {
    assert_eq!(vendi_score(&[]), 0.0);
    assert_eq!(vendi_score_reference(&[]), 0.0);
    assert_eq!(vendi_score(&[vec![0.0; 3]]), 0.0);
    assert_eq!(vendi_score(&[vec![]]), 0.0);
    // A zero vector has no direction and is left out.
    let with_zero = vec![vec![1.0, 0.0], vec![0.0, 0.0], vec![0.0, 3.0]];
    assert!((vendi_score(&with_zero) - 2.0).abs() < 1e-9);
    assert!((vendi_score_reference(&with_zero) - 2.0).abs() < 1e-9);
    assert!(vendi_score(&[vec![1.0, f32::NAN]]).is_nan());
    assert!(vendi_score(&[vec![1.0, 0.0], vec![f32::INFINITY, 0.0]]).is_nan());
    assert!(vendi_score_reference(&[vec![f32::NAN]]).is_nan());
}

/// Collects every visited parameter's gradient, flattened, in visiting order.
struct Collect<'a> {
    grads: &'a GradientsParams,
    out: Vec<Vec<f32>>,
}

impl<AB: AutodiffBackend> ModuleVisitor<AB> for Collect<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<AB, D>>) {
        let g = self
            .grads
            .get::<AB::InnerBackend, D>(param.id)
            .expect("every parameter has a gradient in a full backward pass");
        self.out.push(g.to_data().iter::<f32>().collect());
    }
}

#[test]
fn frozen_proxy_gradient_equals_the_full_backward_pass() {
    let model = tiny_model();
    let device = Default::default();
    let (prompt, response) = (vec![1, 2, 3, 4], vec![5, 6, 7]);
    for last_layers in [0, 1, 2, 5] {
        let config = GVendiConfig {
            dim: 24,
            last_layers,
            seed: 3,
        };
        let fast = projected_gradient(&model, &prompt, &response, &config, &device).unwrap();

        // Reference: backward through the whole model, then the chosen tensors' gradients
        // sketched with the explicit matrix.
        let nll = response_logprobs(&model, &prompt, &response, &device)
            .mean()
            .neg();
        let grads = GradientsParams::from_grads(nll.backward(), &model);
        let mut collect = Collect {
            grads: &grads,
            out: Vec::new(),
        };
        let first = model.layers.len().saturating_sub(last_layers);
        for layer in &model.layers[first..] {
            layer.visit(&mut collect);
        }
        model.norm.visit(&mut collect);
        let slow = sketch_dense_reference(&collect.out, config.dim, config.seed);

        let scale = slow.iter().map(|x| x.abs()).fold(0.0f32, f32::max);
        assert!(scale > 0.0);
        for (a, b) in fast.iter().zip(&slow) {
            assert!(
                (a - b).abs() <= 1e-4 * scale,
                "last {last_layers}: {a} vs {b}"
            );
        }
    }
    // Only the chosen parameters are tracked in the proxy.
    let proxy = gradient_proxy(&model, 1);
    assert!(!proxy.embed_tokens.val().is_require_grad());
    assert!(!proxy.layers[0].input_norm.weight.val().is_require_grad());
    assert!(proxy.layers[1].input_norm.weight.val().is_require_grad());
    assert!(proxy.norm.weight.val().is_require_grad());
}

#[test]
fn gradient_diversity_of_a_tiny_model() {
    let model = tiny_model();
    let device = Default::default();
    let settings = GVendiConfig {
        dim: 64,
        ..GVendiConfig::default()
    };
    let a = (vec![1, 2, 3], vec![4, 5, 6]);
    let b = (vec![1, 2, 3], vec![20, 9, 31, 7]);
    let same = g_vendi(&model, &[a.clone(), a.clone()], &settings, &device).unwrap();
    assert_eq!(same.samples, 2);
    assert!((same.score - 1.0).abs() < 1e-6, "{}", same.score);
    let two = g_vendi(&model, &[a.clone(), b.clone()], &settings, &device).unwrap();
    assert_eq!(two.samples, 2);
    assert!(two.score > 1.01 && two.score <= 2.0 + 1e-9, "{}", two.score);
    let three = g_vendi(
        &model,
        &[a.clone(), b.clone(), a.clone()],
        &settings,
        &device,
    )
    .unwrap();
    assert!(three.score > 1.0 && three.score < 3.0, "{}", three.score);
    let one = g_vendi(&model, std::slice::from_ref(&b), &settings, &device).unwrap();
    assert!((one.score - 1.0).abs() < 1e-9);
    let none = g_vendi(&model, &[], &settings, &device).unwrap();
    assert_eq!((none.score, none.samples), (0.0, 0));
}

#[test]
fn invalid_samples_are_errors() {
    let model = tiny_model();
    let device = Default::default();
    let config = GVendiConfig::default();
    let ok = (vec![1, 2], vec![3]);
    let run = |samples: &[(Vec<u32>, Vec<u32>)], config: &GVendiConfig| {
        g_vendi(&model, samples, config, &device).unwrap_err()
    };
    assert_eq!(
        run(&[ok.clone(), (vec![], vec![1])], &config),
        GVendiError::EmptySequence { index: 1 }
    );
    assert_eq!(
        run(&[(vec![1], vec![])], &config),
        GVendiError::EmptySequence { index: 0 }
    );
    assert_eq!(
        run(&[ok.clone(), ok.clone(), (vec![1], vec![32])], &config),
        GVendiError::TokenOutOfVocab {
            index: 2,
            token: 32,
            vocab: 32
        }
    );
    assert_eq!(
        run(&[(vec![1; 60], vec![2; 5])], &config),
        GVendiError::TooLong {
            index: 0,
            tokens: 65,
            max: 64
        }
    );
    let zero_dim = GVendiConfig {
        dim: 0,
        ..GVendiConfig::default()
    };
    assert_eq!(
        run(std::slice::from_ref(&ok), &zero_dim),
        GVendiError::ZeroDim
    );
    assert_eq!(
        projected_gradient(&model, &[], &[1], &config, &device),
        Err(GVendiError::EmptySequence { index: 0 })
    );
}

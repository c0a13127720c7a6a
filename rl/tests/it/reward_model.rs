//! The reward model's head: its gradient against finite differences, that it learns a
//! linearly separable rule, its one-class fallback; pooled features of a tiny transformer.

use burn::backend::NdArray;
use mars2_models::{ModelConfig, Transformer};
use mars2_rl::reward_model::{pooled_features, HeadTraining, RewardHead};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn random_set(rng: &mut ChaCha8Rng, n: usize, d: usize) -> (Vec<Vec<f32>>, Vec<bool>) {
    let direction: Vec<f32> = (0..d)
        .map(|j| if j % 2 == 0 { 1.0 } else { -0.5 })
        .collect();
    let features: Vec<Vec<f32>> = (0..n)
        .map(|_| {
            (0..d)
                .map(|_| rng.random_range(-1.0..1.0) * 3.0 + 2.0)
                .collect()
        })
        .collect();
    let labels = features
        .iter()
        .map(|x| {
            x.iter()
                .zip(&direction)
                .map(|(a, b)| (a - 2.0) * b)
                .sum::<f32>()
                > 0.5
        })
        .collect();
    (features, labels)
}

#[test]
fn head_gradient_matches_finite_differences() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let (features, labels) = random_set(&mut rng, 40, 5);
    let mut head = RewardHead::fit(
        &features,
        &labels,
        &HeadTraining {
            steps: 3,
            ..HeadTraining::default()
        },
    );
    head.weights
        .iter_mut()
        .for_each(|w| *w += rng.random_range(-0.5..0.5));
    let l2 = 0.1;
    let (grad_w, grad_b) = head.objective_gradient(&features, &labels, l2);
    let h = 1e-6;
    for (j, analytic) in grad_w.iter().enumerate() {
        let mut plus = head.clone();
        plus.weights[j] += h;
        let mut minus = head.clone();
        minus.weights[j] -= h;
        let numeric = (plus.objective(&features, &labels, l2)
            - minus.objective(&features, &labels, l2))
            / (2.0 * h);
        assert!(
            (numeric - analytic).abs() < 1e-6,
            "w{j}: {numeric} vs {analytic}"
        );
    }
    let mut plus = head.clone();
    plus.bias += h;
    let mut minus = head.clone();
    minus.bias -= h;
    let numeric = (plus.objective(&features, &labels, l2)
        - minus.objective(&features, &labels, l2))
        / (2.0 * h);
    assert!((numeric - grad_b).abs() < 1e-6);
}

#[test]
fn head_learns_a_separable_rule_and_generalises() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let (train_x, train_y) = random_set(&mut rng, 300, 8);
    let (test_x, test_y) = random_set(&mut rng, 200, 8);
    assert!(train_y.iter().any(|&l| l) && train_y.iter().any(|&l| !l));
    let head = RewardHead::fit(&train_x, &train_y, &HeadTraining::default());
    let before = RewardHead::fit(
        &train_x,
        &train_y,
        &HeadTraining {
            steps: 0,
            ..HeadTraining::default()
        },
    );
    assert!(
        head.objective(&train_x, &train_y, 1e-2) < 0.5 * before.objective(&train_x, &train_y, 1e-2)
    );
    let correct = test_x
        .iter()
        .zip(&test_y)
        .filter(|(x, &y)| (head.score(x) > 0.5) == y)
        .count();
    assert!(correct >= 190, "{correct}/200 right on held-out points");
    assert!(test_x.iter().all(|x| (0.0..=1.0).contains(&head.score(x))));
}

#[test]
fn one_class_data_gives_its_smoothed_frequency() {
    let features = vec![vec![1.0, 2.0]; 9];
    let head = RewardHead::fit(&features, &[false; 9], &HeadTraining::default());
    assert!((head.score(&[5.0, -3.0]) - 0.05).abs() < 1e-9);
    let empty = RewardHead::fit(&[], &[], &HeadTraining::default());
    assert!((empty.score(&[]) - 0.5).abs() < 1e-9);
}

#[test]
fn pooled_features_mean_the_prefix_that_fits() {
    let config = ModelConfig::tiny_llama(16, 16, 1);
    let device = Default::default();
    let model = Transformer::<NdArray<f32>>::random(&config, &device);
    let long = pooled_features(&model, &[1, 2, 3, 4, 5], 3, &device);
    let short = pooled_features(&model, &[1, 2, 3], 64, &device);
    assert_eq!(long.len(), 16);
    assert!(long.iter().zip(&short).all(|(a, b)| (a - b).abs() < 1e-6));
    let other = pooled_features(&model, &[4, 5, 6], 64, &device);
    assert!(long.iter().zip(&other).any(|(a, b)| (a - b).abs() > 1e-4));
    assert!(pooled_features(&model, &[], 8, &device)
        .iter()
        .all(|&v| v == 0.0));
}

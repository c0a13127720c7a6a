//! The learned reward model of MARS²-T+: a scalar head on a small transformer. The
//! transformer (frozen) reads "problem + program" and its final hidden states are mean-pooled
//! into a feature vector; the head is a logistic regression on standardised features,
//! trained on (problem, program, passed-hidden-tests) pairs collected from search trees.
//! [`RewardModel`] implements the search's [`Scorer`].
//!
//! The head is trained full-batch by gradient descent with L2 regularisation and a weight on
//! the positive class that balances the classes (passing programs are rare).

use std::sync::Mutex;

use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};
use mars2_models::attention_context::FullSequence;
use mars2_models::{TextTokenizer, Transformer};
use mars2_sandbox::Problem;
use mars2_search::prompts::problem_text;
use mars2_search::Scorer;
use serde::{Deserialize, Serialize};

/// The text the reward model reads for a candidate.
pub fn reward_text(problem: &Problem, code: &str) -> String {
    format!(
        "Problem:\n{}\nCandidate program:\n```python\n{}\n```\n",
        problem_text(problem),
        code.trim_end()
    )
}

/// Mean of the final hidden states over `tokens` (at most `max_tokens` of them, the first),
/// as host floats; empty input gives a zero vector.
pub fn pooled_features<B: Backend>(
    model: &Transformer<B>,
    tokens: &[u32],
    max_tokens: usize,
    device: &B::Device,
) -> Vec<f32> {
    let hidden_size = model.embed_tokens.dims()[1];
    let tokens = &tokens[..tokens.len().min(max_tokens)];
    if tokens.is_empty() {
        return vec![0.0; hidden_size];
    }
    let len = tokens.len();
    let ids = Tensor::<B, 2, Int>::from_data(
        TensorData::new(
            tokens.iter().map(|&t| t as i64).collect::<Vec<_>>(),
            [1, len],
        ),
        device,
    );
    let positions = Tensor::<B, 2, Int>::from_data(
        TensorData::new((0..len as i64).collect::<Vec<_>>(), [1, len]),
        device,
    );
    let mut ctx = FullSequence::new(positions.clone());
    let hidden = model.forward_hidden(ids, positions, &mut ctx);
    hidden
        .mean_dim(1)
        .reshape([hidden_size])
        .to_data()
        .iter::<f32>()
        .collect()
}

/// Settings of the head's training.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeadTraining {
    pub steps: usize,
    pub lr: f64,
    /// L2 penalty on the weights (not the bias).
    pub l2: f64,
}

impl Default for HeadTraining {
    fn default() -> Self {
        HeadTraining {
            steps: 500,
            lr: 0.5,
            l2: 1e-2,
        }
    }
}

/// Logistic regression on standardised features: `σ(w · (x − μ)/σ + b)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RewardHead {
    pub mean: Vec<f64>,
    pub scale: Vec<f64>,
    pub weights: Vec<f64>,
    pub bias: f64,
}

/// Per-class weights that give each class half of the loss.
#[derive(Debug, Clone, Copy)]
struct ClassWeights {
    positive: f64,
    negative: f64,
}

impl ClassWeights {
    fn of(labels: &[bool]) -> Self {
        let n = labels.len() as f64;
        let positives = labels.iter().filter(|&&l| l).count().max(1) as f64;
        let negatives = labels.iter().filter(|&&l| !l).count().max(1) as f64;
        ClassWeights {
            positive: n / (2.0 * positives),
            negative: n / (2.0 * negatives),
        }
    }

    fn of_label(self, label: bool) -> f64 {
        if label {
            self.positive
        } else {
            self.negative
        }
    }
}

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

impl RewardHead {
    /// The probability of passing for a feature vector.
    pub fn score(&self, features: &[f32]) -> f64 {
        sigmoid(self.logit(features))
    }

    fn logit(&self, x: &[f32]) -> f64 {
        let mut z = self.bias;
        for (j, &v) in x.iter().enumerate().take(self.weights.len()) {
            z += self.weights[j] * (v as f64 - self.mean[j]) / self.scale[j];
        }
        z
    }

    /// Fits the head to `features` with labels `labels` (true = passed). Features of unequal
    /// length are cut to the shortest. With one class only, the head predicts that class's
    /// (smoothed) frequency.
    pub fn fit(features: &[Vec<f32>], labels: &[bool], training: &HeadTraining) -> RewardHead {
        let n = features.len().min(labels.len());
        let d = features[..n].iter().map(Vec::len).min().unwrap_or(0);
        let mut mean = vec![0.0; d];
        let mut scale = vec![1.0; d];
        if n > 0 {
            for x in &features[..n] {
                for j in 0..d {
                    mean[j] += x[j] as f64 / n as f64;
                }
            }
            for (j, s) in scale.iter_mut().enumerate() {
                let var = features[..n]
                    .iter()
                    .map(|x| (x[j] as f64 - mean[j]).powi(2))
                    .sum::<f64>()
                    / n as f64;
                *s = var.sqrt().max(1e-6);
            }
        }
        let positives = labels[..n].iter().filter(|&&l| l).count();
        let prior = (positives as f64 + 0.5) / (n as f64 + 1.0);
        let mut head = RewardHead {
            mean,
            scale,
            weights: vec![0.0; d],
            bias: (prior / (1.0 - prior)).ln(),
        };
        if positives == 0 || positives == n {
            return head;
        }
        head.bias = 0.0;
        for _ in 0..training.steps {
            let (grad_w, grad_b) =
                head.objective_gradient(&features[..n], &labels[..n], training.l2);
            for (w, g) in head.weights.iter_mut().zip(&grad_w) {
                *w -= training.lr * g;
            }
            head.bias -= training.lr * grad_b;
        }
        head
    }

    /// Gradient of [`RewardHead::objective`] in the weights and the bias.
    pub fn objective_gradient(
        &self,
        features: &[Vec<f32>],
        labels: &[bool],
        l2: f64,
    ) -> (Vec<f64>, f64) {
        let class = ClassWeights::of(labels);
        let n = features.len() as f64;
        let mut grad_w: Vec<f64> = self.weights.iter().map(|w| l2 * w).collect();
        let mut grad_b = 0.0;
        for (x, &label) in features.iter().zip(labels) {
            let target = if label { 1.0 } else { 0.0 };
            let residual = class.of_label(label) * (self.score(x) - target) / n;
            for (j, g) in grad_w.iter_mut().enumerate() {
                *g += residual * (x[j] as f64 - self.mean[j]) / self.scale[j];
            }
            grad_b += residual;
        }
        (grad_w, grad_b)
    }

    /// What training minimises: the class-balanced mean cross-entropy plus `l2/2 · |w|²`.
    pub fn objective(&self, features: &[Vec<f32>], labels: &[bool], l2: f64) -> f64 {
        let class = ClassWeights::of(labels);
        let n = features.len();
        let data: f64 = features
            .iter()
            .zip(labels)
            .map(|(x, &label)| {
                let p = self.score(x).clamp(1e-12, 1.0 - 1e-12);
                -class.of_label(label) * if label { p.ln() } else { (1.0 - p).ln() }
            })
            .sum::<f64>()
            / n as f64;
        data + 0.5 * l2 * self.weights.iter().map(|w| w * w).sum::<f64>()
    }
}

/// A frozen transformer, its tokenizer and a trained head.
pub struct RewardModel<B: Backend> {
    backbone: Mutex<Transformer<B>>,
    tokenizer: TextTokenizer,
    pub head: RewardHead,
    pub max_tokens: usize,
    device: B::Device,
}

impl<B: Backend> RewardModel<B> {
    pub fn new(
        backbone: Transformer<B>,
        tokenizer: TextTokenizer,
        head: RewardHead,
        max_tokens: usize,
        device: B::Device,
    ) -> Self {
        RewardModel {
            backbone: Mutex::new(backbone),
            tokenizer,
            head,
            max_tokens,
            device,
        }
    }

    /// The feature vector of a candidate (`None` when its text cannot be tokenized).
    pub fn features(&self, problem: &Problem, code: &str) -> Option<Vec<f32>> {
        let tokens = self.tokenizer.encode(&reward_text(problem, code)).ok()?;
        let backbone = self.backbone.lock().ok()?;
        Some(pooled_features(
            &backbone,
            &tokens,
            self.max_tokens,
            &self.device,
        ))
    }
}

impl<B: Backend> Scorer for RewardModel<B>
where
    B::Device: Sync,
{
    /// The head's probability of passing; 0.5 (no opinion) when the text cannot be read.
    fn score(&self, problem: &Problem, code: &str) -> f64 {
        self.features(problem, code)
            .map_or(0.5, |x| self.head.score(&x))
    }
}

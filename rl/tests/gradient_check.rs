//! The gradient of the whole training forward (log-probs → GSPO loss with KL) against
//! finite differences on a tiny model in f64.
//!
//! Kept in its own test binary: it runs the f64 ndarray backend, and Burn 0.21 fixes the CPU
//! device's float type at the first tensor made on it (shared by `NdArray<f32>` and
//! `NdArray<f64>`), so next to f32 tests it would compute in f32.

use burn::backend::{Autodiff, NdArray};
use burn::module::Param;
use burn::tensor::{Tensor, TensorData};
use mars2_models::{ModelConfig, Transformer};
use mars2_rl::logprobs::response_logprobs;
use mars2_rl::loss::{sequence_loss, LossConfig, SequenceTerms};

type Cpu64 = NdArray<f64>;

fn tiny_config() -> ModelConfig {
    ModelConfig {
        intermediate_size: 12,
        ..ModelConfig::tiny_llama(11, 8, 2)
    }
}

#[test]
fn training_gradient_matches_finite_differences() {
    type B = Autodiff<Cpu64>;
    let device = Default::default();
    let config = tiny_config();
    let model = Transformer::<B>::random(&config, &device);
    let prompt = [1u32, 4, 2];
    let response = [7u32, 3, 9, 5];
    let rollout = [-2.3f32, -2.5, -2.2, -2.6];
    let loss_config = LossConfig {
        kl_beta: 0.1,
        ..LossConfig::default()
    };
    let reference = [-2.4f32, -2.4, -2.4, -2.4];
    let old: Vec<f32> = response_logprobs(&model, &prompt, &response, &device)
        .to_data()
        .iter::<f64>()
        .map(|v| v as f32)
        .collect();
    let loss_of = |m: &Transformer<B>| {
        let logp = response_logprobs(m, &prompt, &response, &device);
        let terms = SequenceTerms {
            rollout: &rollout,
            old: &old,
            reference: Some(&reference),
            advantage: 1.3,
            batch_tokens: 4,
        };
        sequence_loss(logp, &terms, &loss_config)
    };
    let (loss, _) = loss_of(&model);
    let grads = loss.backward();
    let weight = model.layers[1].mlp.down.weight.val();
    let grad: Vec<f64> = weight
        .grad(&grads)
        .unwrap()
        .to_data()
        .iter::<f64>()
        .collect();
    let base: Vec<f64> = weight.to_data().iter::<f64>().collect();
    let dims = weight.dims();
    let eps = 1e-5;
    let mut checked = 0;
    for i in [0, 5, 17, 30, 41] {
        let at = |delta: f64| {
            let mut values = base.clone();
            values[i] += delta;
            let mut m = model.clone();
            m.layers[1].mlp.down.weight =
                Param::from_tensor(Tensor::from_data(TensorData::new(values, dims), &device));
            // The importance weights use π_old from the unperturbed model in both evaluations.
            loss_of(&m).1.loss
        };
        let numeric = (at(eps) - at(-eps)) / (2.0 * eps);
        assert!(
            (numeric - grad[i]).abs() < 1e-5 + 1e-3 * grad[i].abs(),
            "weight {i}: numeric {numeric} vs autodiff {}",
            grad[i]
        );
        checked += (grad[i].abs() > 1e-8) as usize;
    }
    assert!(checked >= 3, "the checked gradients should not all vanish");
}

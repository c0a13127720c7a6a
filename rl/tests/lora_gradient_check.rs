//! The gradient of the training forward (log-probs → GSPO loss with KL) through low-rank
//! adapters against finite differences, on a tiny model in f64: the adapters' `A` and `B` get
//! the gradient of the adapted model, and the frozen base gets none.
//!
//! Kept in its own test binary: it runs the f64 ndarray backend, and Burn 0.21 fixes the CPU
//! device's float type at the first tensor made on it (shared by `NdArray<f32>` and
//! `NdArray<f64>`), so next to f32 tests it would compute in f32.

use burn::backend::{Autodiff, NdArray};
use burn::module::Param;
use burn::tensor::{Tensor, TensorData};
use mars2_models::layers::linear::Linear;
use mars2_models::layers::lora::{LoraAdapter, LoraConfig, LoraTarget};
use mars2_models::{ModelConfig, Transformer};
use mars2_rl::logprobs::response_logprobs;
use mars2_rl::loss::{sequence_loss, LossConfig, SequenceTerms};

type B = Autodiff<NdArray<f64>>;

/// Which adapter matrix of layer 1 a check perturbs.
#[derive(Clone, Copy, Debug)]
enum Matrix {
    QA,
    QB,
    DownA,
    DownB,
}

fn lora(linear: &Linear<B>) -> &LoraAdapter<B> {
    linear.lora.as_ref().expect("adapter")
}

fn matrix(model: &Transformer<B>, which: Matrix) -> Tensor<B, 2> {
    let layer = &model.layers[1];
    match which {
        Matrix::QA => lora(&layer.attention.q_proj).a.val(),
        Matrix::QB => lora(&layer.attention.q_proj).b.val(),
        Matrix::DownA => lora(&layer.mlp.down).a.val(),
        Matrix::DownB => lora(&layer.mlp.down).b.val(),
    }
}

fn set_matrix(model: &mut Transformer<B>, which: Matrix, values: Tensor<B, 2>) {
    let layer = &mut model.layers[1];
    let param = Param::from_tensor(values);
    match which {
        Matrix::QA => layer.attention.q_proj.lora.as_mut().expect("adapter").a = param,
        Matrix::QB => layer.attention.q_proj.lora.as_mut().expect("adapter").b = param,
        Matrix::DownA => layer.mlp.down.lora.as_mut().expect("adapter").a = param,
        Matrix::DownB => layer.mlp.down.lora.as_mut().expect("adapter").b = param,
    }
}

#[test]
fn adapter_gradients_match_finite_differences_and_the_base_gets_none() {
    let device = Default::default();
    let config = ModelConfig {
        intermediate_size: 12,
        ..ModelConfig::tiny_llama(11, 8, 2)
    };
    let lora = LoraConfig {
        rank: 2,
        alpha: 4.0,
        targets: vec![LoraTarget::QProj, LoraTarget::DownProj],
        seed: 3,
    };
    let mut model = Transformer::<B>::random(&config, &device).with_adapters(&lora);
    // A trained-looking B, so that A's gradient is not zero.
    for which in [Matrix::QB, Matrix::DownB] {
        let dims = matrix(&model, which).dims();
        let values: Vec<f64> = (0..dims[0] * dims[1])
            .map(|i| ((i as f64) * 0.7).sin() * 0.3)
            .collect();
        set_matrix(
            &mut model,
            which,
            Tensor::from_data(TensorData::new(values, dims), &device),
        );
    }
    let reference_model = model.without_adapters();
    let prompt = [1u32, 4, 2];
    let response = [7u32, 3, 9, 5];
    let rollout = [-2.3f32, -2.5, -2.2, -2.6];
    let reference: Vec<f32> = response_logprobs(&reference_model, &prompt, &response, &device)
        .to_data()
        .iter::<f64>()
        .map(|v| v as f32)
        .collect();
    let old: Vec<f32> = response_logprobs(&model, &prompt, &response, &device)
        .to_data()
        .iter::<f64>()
        .map(|v| v as f32)
        .collect();
    let loss_config = LossConfig {
        kl_beta: 0.1,
        ..LossConfig::default()
    };
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

    // The frozen base: no gradient for its weights.
    assert!(model.layers[1]
        .attention
        .q_proj
        .weight
        .val()
        .grad(&grads)
        .is_none());
    assert!(model.layers[0].mlp.up.weight.val().grad(&grads).is_none());
    assert!(model.embed_tokens.val().grad(&grads).is_none());

    let eps = 1e-5;
    let mut checked = 0;
    for which in [Matrix::QA, Matrix::QB, Matrix::DownA, Matrix::DownB] {
        let tensor = matrix(&model, which);
        let grad: Vec<f64> = tensor
            .grad(&grads)
            .unwrap_or_else(|| panic!("{which:?} has a gradient"))
            .to_data()
            .iter::<f64>()
            .collect();
        let base: Vec<f64> = tensor.to_data().iter::<f64>().collect();
        let dims = tensor.dims();
        for i in [0, base.len() / 2, base.len() - 1] {
            let at = |delta: f64| {
                let mut values = base.clone();
                values[i] += delta;
                let mut m = model.clone();
                set_matrix(
                    &mut m,
                    which,
                    Tensor::from_data(TensorData::new(values, dims), &device),
                );
                loss_of(&m).1.loss
            };
            let numeric = (at(eps) - at(-eps)) / (2.0 * eps);
            assert!(
                (numeric - grad[i]).abs() < 1e-5 + 1e-3 * grad[i].abs(),
                "{which:?}[{i}]: numeric {numeric} vs autodiff {}",
                grad[i]
            );
            checked += (grad[i].abs() > 1e-8) as usize;
        }
    }
    assert!(
        checked >= 8,
        "the checked gradients should not all vanish ({checked})"
    );
}

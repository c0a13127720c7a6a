//! The gradient of the whole training forward (log-probs → GSPO loss with KL) against finite
//! differences on a tiny model in f64: of every weight, and of low-rank adapters on a frozen
//! model (whose base then gets no gradient at all).
//!
//! Kept in its own test binary: it runs the f64 ndarray backend, and Burn 0.21 fixes the CPU
//! device's float type at the first tensor made on it (shared by `NdArray<f32>` and
//! `NdArray<f64>`), so next to f32 tests it would compute in f32.

use burn::backend::{Autodiff, NdArray};
use burn::module::Param;
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{Tensor, TensorData};
use mars2_models::layers::linear::Linear;
use mars2_models::layers::lora::{LoraAdapter, LoraConfig, LoraTarget};
use mars2_models::{ModelConfig, Transformer};
use mars2_rl::logprobs::response_logprobs;
use mars2_rl::loss::{sequence_loss, LossConfig, SequenceTerms};

type B = Autodiff<NdArray<f64>>;

const PROMPT: [u32; 3] = [1, 4, 2];
const RESPONSE: [u32; 4] = [7, 3, 9, 5];
const ROLLOUT: [f32; 4] = [-2.3, -2.5, -2.2, -2.6];

fn tiny_config() -> ModelConfig {
    ModelConfig {
        intermediate_size: 12,
        ..ModelConfig::tiny_llama(11, 8, 2)
    }
}

/// `model`'s log-probs of the response, as plain floats.
fn logprobs(model: &Transformer<B>) -> Vec<f32> {
    response_logprobs(model, &PROMPT, &RESPONSE, &Default::default())
        .to_data()
        .iter::<f64>()
        .map(|v| v as f32)
        .collect()
}

/// The GSPO loss (KL β 0.1, advantage 1.3) of the response under a model, with π_old and the
/// reference's log-probs fixed, so that a perturbed model changes only the policy's side.
fn gspo_loss(
    old: Vec<f32>,
    reference: Vec<f32>,
) -> impl Fn(&Transformer<B>) -> (Tensor<B, 1>, f64) {
    let config = LossConfig {
        kl_beta: 0.1,
        ..LossConfig::default()
    };
    move |m| {
        let logp = response_logprobs(m, &PROMPT, &RESPONSE, &Default::default());
        let terms = SequenceTerms {
            rollout: &ROLLOUT,
            old: &old,
            reference: Some(&reference),
            advantage: 1.3,
            batch_tokens: 4,
        };
        let (loss, stats) = sequence_loss(logp, &terms, &config);
        (loss, stats.loss)
    }
}

/// Checks the autodiff gradient of entries `indices` of the matrix `get` reads against
/// central differences of `loss_of` (each perturbed copy made by `set`); returns how many of
/// them were not vanishingly small.
fn check_entries(
    model: &Transformer<B>,
    grads: &<B as AutodiffBackend>::Gradients,
    name: &str,
    get: impl Fn(&Transformer<B>) -> Tensor<B, 2>,
    set: impl Fn(&mut Transformer<B>, Tensor<B, 2>),
    indices: &[usize],
    loss_of: &impl Fn(&Transformer<B>) -> (Tensor<B, 1>, f64),
) -> usize {
    let tensor = get(model);
    let grad: Vec<f64> = tensor
        .grad(grads)
        .unwrap_or_else(|| panic!("{name} has a gradient"))
        .to_data()
        .iter::<f64>()
        .collect();
    let base: Vec<f64> = tensor.to_data().iter::<f64>().collect();
    let dims = tensor.dims();
    let eps = 1e-5;
    let mut checked = 0;
    for &i in indices {
        let at = |delta: f64| {
            let mut values = base.clone();
            values[i] += delta;
            let mut m = model.clone();
            set(
                &mut m,
                Tensor::from_data(TensorData::new(values, dims), &Default::default()),
            );
            loss_of(&m).1
        };
        let numeric = (at(eps) - at(-eps)) / (2.0 * eps);
        assert!(
            (numeric - grad[i]).abs() < 1e-5 + 1e-3 * grad[i].abs(),
            "{name}[{i}]: numeric {numeric} vs autodiff {}",
            grad[i]
        );
        checked += (grad[i].abs() > 1e-8) as usize;
    }
    checked
}

#[test]
fn training_gradient_matches_finite_differences() {
    let model = Transformer::<B>::random(&tiny_config(), &Default::default());
    let loss_of = gspo_loss(logprobs(&model), vec![-2.4; 4]);
    let grads = loss_of(&model).0.backward();
    let checked = check_entries(
        &model,
        &grads,
        "layers[1].mlp.down",
        |m| m.layers[1].mlp.down.weight.val(),
        |m, values| m.layers[1].mlp.down.weight = Param::from_tensor(values),
        &[0, 5, 17, 30, 41],
        &loss_of,
    );
    assert!(checked >= 3, "the checked gradients should not all vanish");
}

/// Which adapter matrix of layer 1 a check perturbs.
#[derive(Clone, Copy, Debug)]
enum AdapterMatrix {
    QA,
    QB,
    DownA,
    DownB,
}

impl AdapterMatrix {
    fn adapter(self, model: &Transformer<B>) -> &LoraAdapter<B> {
        let layer = &model.layers[1];
        let linear: &Linear<B> = match self {
            Self::QA | Self::QB => &layer.attention.q_proj,
            Self::DownA | Self::DownB => &layer.mlp.down,
        };
        linear.lora.as_ref().expect("adapter")
    }

    fn get(self, model: &Transformer<B>) -> Tensor<B, 2> {
        let adapter = self.adapter(model);
        match self {
            Self::QA | Self::DownA => adapter.a.val(),
            Self::QB | Self::DownB => adapter.b.val(),
        }
    }

    fn set(self, model: &mut Transformer<B>, values: Tensor<B, 2>) {
        let layer = &mut model.layers[1];
        let linear = match self {
            Self::QA | Self::QB => &mut layer.attention.q_proj,
            Self::DownA | Self::DownB => &mut layer.mlp.down,
        };
        let adapter = linear.lora.as_mut().expect("adapter");
        let param = Param::from_tensor(values);
        match self {
            Self::QA | Self::DownA => adapter.a = param,
            Self::QB | Self::DownB => adapter.b = param,
        }
    }
}

#[test]
fn adapter_gradients_match_finite_differences_and_the_base_gets_none() {
    let lora = LoraConfig {
        rank: 2,
        alpha: 4.0,
        targets: vec![LoraTarget::QProj, LoraTarget::DownProj],
        seed: 3,
    };
    let mut model =
        Transformer::<B>::random(&tiny_config(), &Default::default()).with_adapters(&lora);
    // A trained-looking B, so that A's gradient is not zero.
    for which in [AdapterMatrix::QB, AdapterMatrix::DownB] {
        let dims = which.get(&model).dims();
        let values: Vec<f64> = (0..dims[0] * dims[1])
            .map(|i| ((i as f64) * 0.7).sin() * 0.3)
            .collect();
        which.set(
            &mut model,
            Tensor::from_data(TensorData::new(values, dims), &Default::default()),
        );
    }
    let loss_of = gspo_loss(logprobs(&model), logprobs(&model.without_adapters()));
    let grads = loss_of(&model).0.backward();

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

    let mut checked = 0;
    for which in [
        AdapterMatrix::QA,
        AdapterMatrix::QB,
        AdapterMatrix::DownA,
        AdapterMatrix::DownB,
    ] {
        let len = which.get(&model).dims().iter().product::<usize>();
        checked += check_entries(
            &model,
            &grads,
            &format!("{which:?}"),
            |m| which.get(m),
            |m, values| which.set(m, values),
            &[0, len / 2, len - 1],
            &loss_of,
        );
    }
    assert!(
        checked >= 8,
        "the checked gradients should not all vanish ({checked})"
    );
}

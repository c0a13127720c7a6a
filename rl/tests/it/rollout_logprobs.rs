//! The training forward reproduces the log-probs the engine reported for its samples, at the
//! rollout temperature: the importance ratio of an unchanged policy is 1.

use burn::backend::NdArray;
use mars2_engine::{generate, GenerationRequest, SamplingParams};
use mars2_models::{ModelConfig, Transformer};
use mars2_rl::logprobs::{response_logprobs, response_logprobs_at};

type Cpu = NdArray<f32>;

fn max_gap(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn training_logprobs_match_rollout_logprobs_at_the_sampling_temperature() {
    let config = ModelConfig::tiny_llama(32, 16, 2);
    let device = Default::default();
    let model = Transformer::<Cpu>::random(&config, &device);
    let prompt = vec![1u32, 7, 3, 9];
    for temperature in [0.7f32, 1.0, 1.6] {
        let request = GenerationRequest {
            prompt: prompt.clone(),
            params: SamplingParams {
                temperature,
                seed: 11,
                max_new_tokens: 12,
                ignore_eos: true,
                ..SamplingParams::default()
            },
        };
        let out = generate(&model, &config, &[request], &device).expect("generation");
        let out = &out[0];
        let at = |t: f64| -> Vec<f32> {
            response_logprobs_at(&model, &prompt, &out.tokens, t, &device)
                .to_data()
                .iter::<f32>()
                .collect()
        };
        let rollout = out.logprobs.clone();
        let gap = max_gap(&at(temperature as f64), &rollout);
        assert!(gap < 1e-4, "T = {temperature}: gap {gap}");
        if temperature != 1.0 {
            // At temperature 1 the same tokens have other log-probs: the temperature matters.
            let plain: Vec<f32> = response_logprobs(&model, &prompt, &out.tokens, &device)
                .to_data()
                .iter::<f32>()
                .collect();
            assert!(max_gap(&plain, &rollout) > 1e-2, "T = {temperature}");
        }
    }
}

//! Batched generation agrees with one-at-a-time generation, stops where asked, and refuses bad
//! prompts with clear errors.

use mars2_engine::device::Cpu;
use mars2_engine::{generate, EngineError, FinishReason, GenerationRequest, SamplingParams};
use mars2_models::config::{Architecture, ModelConfig, RopeScaling};
use mars2_models::Transformer;

fn tiny_config() -> ModelConfig {
    ModelConfig {
        architecture: Architecture::Qwen3,
        vocab_size: 97,
        hidden_size: 32,
        intermediate_size: 48,
        num_layers: 2,
        num_heads: 4,
        num_kv_heads: 2,
        head_dim: 8,
        rms_norm_eps: 1e-6,
        rope_theta: 10_000.0,
        rope_scaling: RopeScaling::None,
        max_position_embeddings: 64,
        tie_word_embeddings: true,
        attention_bias: false,
        attention_out_bias: false,
        mlp_bias: false,
        qk_norm: true,
        bos_token_id: None,
        eos_token_ids: vec![],
    }
}

fn request(
    prompt: Vec<u32>,
    temperature: f32,
    seed: u64,
    max_new_tokens: usize,
) -> GenerationRequest {
    GenerationRequest {
        prompt,
        params: SamplingParams {
            temperature,
            seed,
            max_new_tokens,
            top_p: 0.9,
            ..SamplingParams::default()
        },
    }
}

#[test]
fn ragged_batch_equals_single_sequences() {
    let config = tiny_config();
    let device = Default::default();
    let model = Transformer::<Cpu>::random(&config, &device);
    let requests = vec![
        request(vec![5, 6, 7], 0.0, 0, 9),
        request((1..20).collect(), 0.9, 11, 5),
        request(vec![42], 1.3, 12, 12),
        request((30..60).collect(), 0.0, 0, 3),
    ];
    let batched = generate(&model, &config, &requests, &device).unwrap();
    for (req, out) in requests.iter().zip(&batched) {
        let single = generate(&model, &config, std::slice::from_ref(req), &device).unwrap();
        assert_eq!(out.tokens, single[0].tokens);
        assert_eq!(out.tokens.len(), req.params.max_new_tokens);
        for (a, b) in out.logprobs.iter().zip(&single[0].logprobs) {
            assert!((a - b).abs() < 1e-4);
        }
        assert!(out.logprobs.iter().all(|l| *l <= 0.0));
    }
}

#[test]
fn stop_tokens_end_a_row_early() {
    let config = tiny_config();
    let device = Default::default();
    let model = Transformer::<Cpu>::random(&config, &device);
    let free = generate(&model, &config, &[request(vec![3, 4], 0.0, 0, 8)], &device).unwrap();
    let stop_at = free[0].tokens[2];
    let first = free[0].tokens.iter().position(|&t| t == stop_at).unwrap();
    let mut req = request(vec![3, 4], 0.0, 0, 8);
    req.params.stop_token_ids = vec![stop_at];
    let out = generate(&model, &config, &[req], &device).unwrap();
    assert_eq!(out[0].tokens, free[0].tokens[..=first]);
    assert_eq!(out[0].finish_reason, FinishReason::Stop);
    assert_eq!(free[0].finish_reason, FinishReason::Length);
}

#[test]
fn bad_prompts_are_refused() {
    let config = tiny_config();
    let device = Default::default();
    let model = Transformer::<Cpu>::random(&config, &device);
    let err = generate(&model, &config, &[request(vec![], 0.0, 0, 1)], &device).unwrap_err();
    assert!(matches!(err, EngineError::EmptyPrompt { index: 0 }));
    let err = generate(
        &model,
        &config,
        &[request(vec![1], 0.0, 0, 1), request(vec![97], 0.0, 0, 1)],
        &device,
    )
    .unwrap_err();
    assert!(err.to_string().contains("prompt 1: token id 97"), "{err}");
    let err = generate(
        &model,
        &config,
        &[request(vec![1; 60], 0.0, 0, 10)],
        &device,
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            EngineError::TooLong {
                needed: 70,
                max: 64,
                ..
            }
        ),
        "{err}"
    );
}

//! SmolLM2-135M-Instruct from its Q4_1 GGUF against transformers (which dequantizes the same
//! file to f32): chat text, token ids, last-position logits and the greedy continuation.
//!
//! The model comes from `cargo xtask fetch-model smollm2-135m-instruct`; without it the tests
//! fail, or skip by name under `MARS2_SKIP_MISSING_MODELS=1` (`cargo xtask test --offline`).

use mars2_engine::device::Cpu;
use mars2_engine::{generate, GenerationRequest, SamplingParams};
use mars2_models::{load_model, ChatMessage, ChatOptions, LoadedModel};
use mars2_tests::{ids, max_abs_diff, reference_json, reference_logits, registered_model};

const FIXTURE: &str = "smollm2-135m-instruct-q4_1";
/// Reached: 3.6e-5 (f32 throughout; only the accumulation order differs from PyTorch).
const LOGIT_TOLERANCE: f32 = 1e-4;

fn model() -> Option<LoadedModel<Cpu>> {
    let path = registered_model("smollm2-135m-instruct")?;
    Some(load_model::<Cpu>(&path, &Default::default()).expect("the GGUF loads"))
}

#[test]
fn smollm2_text_side_matches_transformers() {
    let Some(loaded) = model() else { return };
    let reference = reference_json(FIXTURE);
    let messages: Vec<ChatMessage> = serde_json::from_value(reference["messages"].clone()).unwrap();
    let template = loaded
        .chat_template
        .as_ref()
        .expect("the GGUF has a chat template");
    let text = template.render(&messages, ChatOptions::default()).unwrap();
    assert_eq!(text, reference["chat_text"].as_str().unwrap());
    let tokenizer = loaded
        .tokenizer
        .as_ref()
        .expect("the GGUF has a vocabulary");
    assert_eq!(
        tokenizer.encode(&text).unwrap(),
        ids(&reference["input_ids"])
    );
    for (s, expected) in reference["encodings"].as_object().unwrap() {
        assert_eq!(
            tokenizer.encode(s).unwrap(),
            ids(expected),
            "encoding of {s:?}"
        );
        assert_eq!(
            tokenizer.decode(&ids(expected), false).unwrap(),
            *s,
            "decoding of {s:?}"
        );
    }
}

#[test]
fn smollm2_logits_and_greedy_match_transformers() {
    let Some(loaded) = model() else { return };
    let device = Default::default();
    let reference = reference_json(FIXTURE);
    let input = ids(&reference["input_ids"]);
    let request = GenerationRequest {
        prompt: input.clone(),
        params: SamplingParams {
            ignore_eos: true,
            ..SamplingParams::greedy(48)
        },
    };
    let out = generate(&loaded.model, &loaded.config, &[request], &device).unwrap();
    let greedy = ids(&reference["greedy_48"]);
    let same = out[0]
        .tokens
        .iter()
        .zip(&greedy)
        .take_while(|(a, b)| a == b)
        .count();
    println!("smollm2 greedy: {same} of 48 tokens identical");
    assert!(
        same >= 16,
        "only {same} greedy tokens match: {:?}",
        out[0].tokens
    );

    let last = mars2_engine::generate::last_position_logits(
        &loaded.model,
        &loaded.config,
        &input,
        &device,
    )
    .unwrap();
    let (_, expected) = reference_logits(FIXTURE, "last_logits");
    let err = max_abs_diff(&last, &expected);
    println!("smollm2 last-position max |logit error| = {err:.2e}");
    assert!(err < LOGIT_TOLERANCE, "logits differ by {err}");
}

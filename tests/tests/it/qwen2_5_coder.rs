//! Qwen2.5-Coder-0.5B-Instruct (and, opted in with `MARS2_TEST_QWEN_1_5B=1`, the 1.5B) from
//! their Q4_K_M GGUF files against independent implementations (`fixtures/make_qwen_fixtures.py`):
//! Hugging Face's Qwen tokenizer, and transformers loading the same file (gguf-py dequantizes it
//! to f32). Checked: the tokenizer on code, unicode and digits; the chat text from the file's
//! template and its `<|im_end|>` stop; logits at every position of a chat prompt and a code
//! prompt of 200+ tokens with their greedy continuations; the engine's own greedy decode; and
//! the same with every matrix kept in its stored block format (`--quantize stored`), with f32
//! activations and with activations quantized to 8 bits.
//!
//! The models come from `cargo xtask fetch-model NAME`; without them the tests fail, or skip by
//! name under `MARS2_SKIP_MISSING_MODELS=1`.

use mars2_engine::device::Cpu;
use mars2_engine::generate::prompt_logits;
use mars2_engine::{generate, GenerationRequest, SamplingParams};
use mars2_models::gguf::GgufFile;
use mars2_models::kernels::{with_host_activations, HostActivations};
use mars2_models::{
    gguf_text_side, load_model, quantize_from_checkpoint, ChatMessage, ChatOptions, LoadedModel,
    Quantization,
};
use mars2_tests::{fixture, ids, opted_in, reference_json, reference_logits, registered_model};
use serde_json::Value;

/// Largest logit difference from transformers, f32 weights (measured: 6.5e-5 on the 0.5B's chat
/// prompt, 3.3e-5 on the 1.5B's; only the order of f32 sums differs).
const LOGIT_TOLERANCE: f32 = 5e-4;
/// The same with the matrices in their block formats (the same values, summed by other kernels).
const STORED_TOLERANCE: f32 = 1e-3;
/// With activations quantized to 8 bits per block of 32, as llama.cpp computes, greedy tokens
/// may differ from transformers' only where its two best logits are this close (measured: 32 of
/// 32 greedy tokens identical on both prompts of the 0.5B).
const INT8_TIE: f32 = 0.1;
/// `<|im_end|>`, the end of a ChatML turn.
const IM_END: u32 = 151_645;

struct Qwen {
    name: &'static str,
    fixture: &'static str,
}

const QWEN_0_5B: Qwen = Qwen {
    name: "qwen2.5-coder-0.5b-instruct",
    fixture: "qwen2.5-coder-0.5b",
};
const QWEN_1_5B: Qwen = Qwen {
    name: "qwen2.5-coder-1.5b-instruct",
    fixture: "qwen2.5-coder-1.5b",
};

/// The text side: tokenizer against Hugging Face's, chat text and ids against transformers',
/// and `<|im_end|>` as the stop.
fn check_text_side(qwen: &Qwen) {
    let Some(path) = registered_model(qwen.name) else {
        return;
    };
    let file = GgufFile::open(&path).unwrap();
    let (tokenizer, template) = gguf_text_side(&file).unwrap();
    let tokenizer = tokenizer.expect("the GGUF has a vocabulary");
    let template = template.expect("the GGUF has a chat template");

    let encodings = &reference_json("qwen2.5-tokenizer")["encodings"];
    for (text, expected) in encodings.as_object().unwrap() {
        let expected = ids(expected);
        assert_eq!(
            tokenizer.encode(text).unwrap(),
            expected,
            "encoding {text:?}"
        );
        assert_eq!(
            tokenizer.decode(&expected, false).unwrap(),
            *text,
            "decoding {text:?}"
        );
    }

    let reference = reference_json(qwen.fixture);
    let messages: Vec<ChatMessage> = serde_json::from_value(reference["messages"].clone()).unwrap();
    let text = template.render(&messages, ChatOptions::default()).unwrap();
    assert_eq!(text, reference["chat_text"].as_str().unwrap());
    assert!(text.ends_with("<|im_start|>assistant\n"), "{text:?}");
    assert_eq!(
        tokenizer.encode(&text).unwrap(),
        ids(&reference["chat"]["input_ids"])
    );
    assert_eq!(tokenizer.token_to_id("<|im_end|>"), Some(IM_END));
    let config = mars2_models::gguf::llama::config_from_gguf(&file).unwrap();
    assert!(config.eos_token_ids.contains(&IM_END), "{config:?}");
    assert!(!config.tie_word_embeddings, "output.weight is stored");
}

/// Logits at every position of prompt + transformers' greedy continuation, compared at the
/// fixture's token ids (each position's top 64 and 256 fixed ids); returns the largest error.
fn logit_error(loaded: &LoadedModel<Cpu>, qwen: &Qwen, prompt: &str) -> f32 {
    let reference = &reference_json(qwen.fixture)[prompt];
    let mut sequence = ids(&reference["input_ids"]);
    sequence.extend(ids(&reference["greedy"]));
    let logits = prompt_logits(
        &loaded.model,
        &loaded.config,
        &sequence,
        &Default::default(),
    )
    .expect("a forward pass");
    let vocab = loaded.config.vocab_size;
    let (shape, picked) = reference_logits(qwen.fixture, &format!("{prompt}.ids"));
    let (_, values) = reference_logits(qwen.fixture, &format!("{prompt}.values"));
    assert_eq!(shape[0], sequence.len(), "one row per position");
    let per_row = shape[1];
    let mut worst = 0.0f32;
    for (p, (row_ids, row_values)) in picked
        .chunks_exact(per_row)
        .zip(values.chunks_exact(per_row))
        .enumerate()
    {
        for (&id, &want) in row_ids.iter().zip(row_values) {
            let got = logits[p * vocab + id as usize];
            worst = worst.max((got - want).abs());
        }
    }
    worst
}

/// The engine's own greedy decode against transformers' greedy continuation. A different token
/// is accepted only where transformers' two best logits are within `tie` of each other.
fn check_greedy(loaded: &LoadedModel<Cpu>, qwen: &Qwen, prompt: &str, tie: f32) {
    let reference = &reference_json(qwen.fixture)[prompt];
    let want = ids(&reference["greedy"]);
    let request = GenerationRequest {
        prompt: ids(&reference["input_ids"]),
        params: SamplingParams {
            ignore_eos: true,
            ..SamplingParams::greedy(want.len())
        },
    };
    let out = generate(
        &loaded.model,
        &loaded.config,
        &[request],
        &Default::default(),
    )
    .unwrap();
    let got = &out[0].tokens;
    let same = got.iter().zip(&want).take_while(|(a, b)| a == b).count();
    println!(
        "{} {prompt}: {same} of {} greedy tokens identical",
        qwen.name,
        want.len()
    );
    if same < want.len() {
        let position = reference["input_ids"].as_array().unwrap().len() + same;
        let (_, values) = reference_logits(qwen.fixture, &format!("{prompt}.values"));
        let (shape, _) = reference_logits(qwen.fixture, &format!("{prompt}.ids"));
        let row = &values[position * shape[1]..];
        let gap = row[0] - row[1];
        assert!(
            gap < tie,
            "{} {prompt}: token {same} differs ({} vs {}) where transformers' top two logits are \
             {gap} apart",
            qwen.name,
            got[same],
            want[same]
        );
    }
}

fn check_numerics(qwen: &Qwen) {
    let Some(path) = registered_model(qwen.name) else {
        return;
    };
    let mut loaded = load_model::<Cpu>(&path, &Default::default()).expect("the GGUF loads");
    for prompt in ["chat", "code"] {
        let err = logit_error(&loaded, qwen, prompt);
        println!("{} {prompt}: f32 max |logit error| = {err:.2e}", qwen.name);
        assert!(err < LOGIT_TOLERANCE, "{prompt}: logits differ by {err}");
        check_greedy(&loaded, qwen, prompt, 2.0 * LOGIT_TOLERANCE);
    }

    let report = quantize_from_checkpoint(
        &mut loaded.model,
        &path,
        &loaded.config,
        Quantization::AsStored,
    )
    .unwrap();
    println!("{} stored: {report}", qwen.name);
    let matrices = 7 * loaded.config.num_layers + 1;
    assert_eq!(
        (report.stored, report.dense),
        (matrices, 0),
        "every projection and the head keep their blocks"
    );
    for prompt in ["chat", "code"] {
        let err = logit_error(&loaded, qwen, prompt);
        println!(
            "{} {prompt}: stored max |logit error| = {err:.2e}",
            qwen.name
        );
        assert!(err < STORED_TOLERANCE, "{prompt}: logits differ by {err}");
        check_greedy(&loaded, qwen, prompt, 2.0 * STORED_TOLERANCE);
    }

    // The same blocks against activations quantized to 8 bits (`MARS2_ACTIVATIONS=int8`). The
    // logits above come from one pass over the whole prompt, more rows than the 8-bit kernel
    // takes, so it is checked where it runs: the greedy decode, one row per step.
    with_host_activations(HostActivations::Int8, || {
        for prompt in ["chat", "code"] {
            check_greedy(&loaded, qwen, prompt, INT8_TIE);
        }
    });
}

#[test]
fn qwen2_5_coder_0_5b_text_side_matches_hugging_face() {
    check_text_side(&QWEN_0_5B);
}

#[test]
fn qwen2_5_coder_0_5b_logits_and_greedy_match_transformers() {
    check_numerics(&QWEN_0_5B);
}

#[test]
fn qwen2_5_coder_1_5b_matches_hugging_face_and_transformers() {
    if !opted_in("MARS2_TEST_QWEN_1_5B") {
        return;
    }
    check_text_side(&QWEN_1_5B);
    check_numerics(&QWEN_1_5B);
}

#[test]
fn the_fixtures_hold_what_the_tests_read() {
    for qwen in [&QWEN_0_5B, &QWEN_1_5B] {
        let reference: Value = reference_json(qwen.fixture);
        for prompt in ["chat", "code"] {
            let prompt_len = reference[prompt]["input_ids"].as_array().unwrap().len();
            let greedy = reference[prompt]["greedy"].as_array().unwrap().len();
            assert_eq!(greedy, 32, "{} {prompt}", qwen.fixture);
            let (shape, _) = reference_logits(qwen.fixture, &format!("{prompt}.ids"));
            assert_eq!(
                shape,
                [prompt_len + greedy, 320],
                "{} {prompt}",
                qwen.fixture
            );
        }
        let code = reference["code"]["input_ids"].as_array().unwrap().len();
        assert!(code >= 100, "the code prompt has {code} tokens");
    }
    assert!(fixture("qwen2.5-tokenizer")
        .join("reference.json")
        .is_file());
}

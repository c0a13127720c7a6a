//! Embedding the engine in another Rust program: load a checkpoint, render a chat prompt,
//! generate greedily, print the text.
//!
//! Run with: `cargo run -p mars2-engine --example embed -- <model dir or .gguf>`
//! (e.g. the path printed by `cargo xtask fetch-model smollm2-135m-instruct`).

use mars2_engine::device::Cpu;
use mars2_engine::{generate, GenerationRequest, SamplingParams};
use mars2_models::{load_model, ChatMessage, ChatOptions};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .ok_or("usage: embed <model dir or .gguf>")?;
    let device = Default::default();
    let loaded = load_model::<Cpu>(path.as_ref(), &device)?;
    let tokenizer = loaded
        .tokenizer
        .as_ref()
        .ok_or("this checkpoint has no tokenizer")?;
    let template = loaded
        .chat_template
        .as_ref()
        .ok_or("this checkpoint has no chat template")?;
    let text = template.render(
        &[ChatMessage::user("Write hello world in Python.")],
        ChatOptions::default(),
    )?;
    let request = GenerationRequest {
        prompt: tokenizer.encode(&text)?,
        params: SamplingParams::greedy(48),
    };
    let outputs = generate(&loaded.model, &loaded.config, &[request], &device)?;
    println!("{}", tokenizer.decode(&outputs[0].tokens, true)?);
    Ok(())
}

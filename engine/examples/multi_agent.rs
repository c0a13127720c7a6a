//! Two agents in one engine, requests from two threads.
//!
//! The engine hosts two models (here two copies of the same checkpoint under different names,
//! as a team of heterogeneous agents would be hosted), and each thread asks its agent for a
//! continuation. Both threads' requests are batched by the engine's worker.
//!
//! Run with: `cargo run -p mars2-engine --example multi_agent -- <model dir or .gguf>`

use mars2_engine::device::Cpu;
use mars2_engine::{Engine, EngineConfig, GenerationRequest, SamplingParams};
use mars2_models::{load_model, ChatMessage, ChatOptions};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .ok_or("usage: multi_agent <model dir or .gguf>")?;
    let device = Default::default();
    let engine = Engine::<Cpu>::new(EngineConfig::default(), device);
    let first = load_model::<Cpu>(path.as_ref(), &device)?;
    let tokenizer = first
        .tokenizer
        .clone()
        .ok_or("this checkpoint has no tokenizer")?;
    let template = first
        .chat_template
        .clone()
        .ok_or("this checkpoint has no chat template")?;
    let generator = engine.add_agent("generator", first)?;
    let refiner = engine.add_agent("refiner", load_model::<Cpu>(path.as_ref(), &device)?)?;

    std::thread::scope(
        |scope| -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
            let jobs = [
                (generator, "Write a Python function that reverses a string."),
                (refiner, "Fix: def add(a, b): return a - b"),
            ];
            let handles: Vec<_> = jobs
                .iter()
                .map(|&(agent, question)| {
                    let (engine, tokenizer, template) = (&engine, &tokenizer, &template);
                    scope.spawn(
                        move || -> Result<String, Box<dyn std::error::Error + Send + Sync>> {
                            let text = template
                                .render(&[ChatMessage::user(question)], ChatOptions::default())?;
                            let request = GenerationRequest {
                                prompt: tokenizer.encode(&text)?,
                                params: SamplingParams {
                                    temperature: 0.7,
                                    seed: 1,
                                    max_new_tokens: 48,
                                    ..SamplingParams::default()
                                },
                            };
                            let output = engine.submit(agent, 0, request).wait()?;
                            Ok(tokenizer.decode(&output.tokens, true)?)
                        },
                    )
                })
                .collect();
            for (handle, (_, question)) in handles.into_iter().zip(jobs) {
                let answer = handle.join().map_err(|_| "worker thread panicked")??;
                println!("### {question}\n{answer}\n");
            }
            Ok(())
        },
    )
    .map_err(|e| e.to_string())?;
    println!("{:?}", engine.stats()?);
    Ok(())
}

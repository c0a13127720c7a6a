//! The threaded engine hosts agents of different architectures in one process and serves
//! requests from several threads, each answered exactly as single-sequence generation would.

use mars2_engine::device::Cpu;
use mars2_engine::{
    generate, Engine, EngineConfig, EngineError, GenerationRequest, SamplingParams,
};
use mars2_models::load_model;
use mars2_tests::{fixture, ids, reference_json};

#[test]
fn two_architectures_many_threads() {
    let device = Default::default();
    let engine = Engine::<Cpu>::new(
        EngineConfig {
            block_size: 8,
            ..EngineConfig::default()
        },
        device,
    );
    let names = ["llama-tiny", "qwen3-tiny"];
    let agents: Vec<_> = names
        .iter()
        .map(|n| {
            engine
                .add_agent(n, load_model::<Cpu>(&fixture(n), &device).unwrap())
                .unwrap()
        })
        .collect();
    let prompt = ids(&reference_json("llama-tiny")["long"]["input_ids"]);
    std::thread::scope(|scope| {
        let mut handles = Vec::new();
        for t in 0..4usize {
            let (engine, agents, prompt) = (&engine, &agents, &prompt);
            handles.push(scope.spawn(move || {
                let which = t % 2;
                let request = GenerationRequest {
                    prompt: prompt[..20 + 10 * t].to_vec(),
                    params: SamplingParams {
                        temperature: 0.9,
                        seed: t as u64,
                        max_new_tokens: 8,
                        ignore_eos: true,
                        ..SamplingParams::default()
                    },
                };
                let out = engine
                    .submit(agents[which], t as u64, request.clone())
                    .wait()
                    .unwrap();
                (which, request, out)
            }));
        }
        for h in handles {
            let (which, request, out) = h.join().unwrap();
            let loaded = load_model::<Cpu>(&fixture(names[which]), &device).unwrap();
            let expected = generate(&loaded.model, &loaded.config, &[request], &device).unwrap();
            assert_eq!(out.tokens, expected[0].tokens, "{}", names[which]);
        }
    });
    let stats = engine.stats().unwrap();
    assert_eq!(
        stats.decoded_tokens + 4,
        4 * 8,
        "each request samples one token at prefill"
    );
}

#[test]
fn bad_requests_fail_alone() {
    let device = Default::default();
    let engine = Engine::<Cpu>::new(EngineConfig::default(), device);
    let agent = engine
        .add_agent(
            "tiny",
            load_model::<Cpu>(&fixture("llama-tiny"), &device).unwrap(),
        )
        .unwrap();
    let bad = engine.submit(
        agent,
        0,
        GenerationRequest {
            prompt: vec![5000],
            params: SamplingParams::greedy(2),
        },
    );
    let good = engine.submit(
        agent,
        0,
        GenerationRequest {
            prompt: vec![1, 2],
            params: SamplingParams::greedy(2),
        },
    );
    assert!(matches!(
        bad.wait(),
        Err(EngineError::TokenOutOfRange { id: 5000, .. })
    ));
    assert_eq!(good.wait().unwrap().tokens.len(), 2);
}

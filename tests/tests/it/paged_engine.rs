//! The paged, batched, prefix-reusing scheduler returns exactly what plain single-sequence
//! generation returns: for ragged batches, for prompts extending cached sequences, and when
//! the KV budget is so small that sequences are preempted and recomputed.

use mars2_engine::device::Cpu;
use mars2_engine::scheduler::{EngineConfig, EngineCore};
use mars2_engine::{generate, GenerationOutput, GenerationRequest, SamplingParams};
use mars2_models::{load_model, LoadedModel};
use mars2_tests::{fixture, ids, reference_json};

fn model() -> LoadedModel<Cpu> {
    load_model::<Cpu>(&fixture("llama-tiny"), &Default::default()).unwrap()
}

fn prompts() -> Vec<Vec<u32>> {
    let r = reference_json("llama-tiny");
    let long = ids(&r["long"]["input_ids"]);
    vec![
        ids(&r["short"]["input_ids"]),
        long.clone(),
        long[..40].to_vec(),
        long[..17].to_vec(),
        vec![5],
    ]
}

fn request(prompt: Vec<u32>, i: usize) -> GenerationRequest {
    // Even rows greedy, odd rows sampled with their own seed; lengths vary.
    let params = if i.is_multiple_of(2) {
        SamplingParams {
            ignore_eos: true,
            ..SamplingParams::greedy(6 + i)
        }
    } else {
        SamplingParams {
            temperature: 0.8,
            top_p: 0.95,
            seed: i as u64,
            max_new_tokens: 9,
            ignore_eos: true,
            ..SamplingParams::default()
        }
    };
    GenerationRequest { prompt, params }
}

fn reference(loaded: &LoadedModel<Cpu>, requests: &[GenerationRequest]) -> Vec<GenerationOutput> {
    requests
        .iter()
        .map(|r| {
            generate(
                &loaded.model,
                &loaded.config,
                std::slice::from_ref(r),
                &Default::default(),
            )
            .unwrap()
            .remove(0)
        })
        .collect()
}

fn run(
    config: EngineConfig,
    requests: &[GenerationRequest],
) -> (Vec<GenerationOutput>, mars2_engine::scheduler::EngineStats) {
    run_model(model(), config, requests)
}

/// Every request through one engine hosting `loaded` (requests alternate between two groups);
/// the outputs in request order and the engine's counters.
fn run_model(
    loaded: LoadedModel<Cpu>,
    config: EngineConfig,
    requests: &[GenerationRequest],
) -> (Vec<GenerationOutput>, mars2_engine::scheduler::EngineStats) {
    let mut engine = EngineCore::<Cpu>::new(config, Default::default());
    let agent = engine
        .add_agent("tiny", loaded.model, loaded.config, None)
        .unwrap();
    let ids: Vec<_> = requests
        .iter()
        .enumerate()
        .map(|(i, r)| engine.submit(agent, (i % 2) as u64, r.clone()).unwrap())
        .collect();
    let mut results = engine.run_until_idle();
    let outputs = ids
        .iter()
        .map(|id| results.remove(id).unwrap().unwrap())
        .collect();
    (outputs, engine.stats())
}

fn assert_same(got: &[GenerationOutput], expected: &[GenerationOutput]) {
    for (i, (g, e)) in got.iter().zip(expected).enumerate() {
        assert_eq!(g.tokens, e.tokens, "request {i}");
        for (a, b) in g.logprobs.iter().zip(&e.logprobs) {
            assert!((a - b).abs() < 1e-4, "request {i}: logprob {a} vs {b}");
        }
    }
}

#[test]
fn ragged_paged_batch_matches_single_sequences() {
    let requests: Vec<_> = prompts()
        .into_iter()
        .enumerate()
        .map(|(i, p)| request(p, i))
        .collect();
    let expected = reference(&model(), &requests);
    let (got, stats) = run(
        EngineConfig {
            block_size: 4,
            prefill_chunk: 16,
            ..EngineConfig::default()
        },
        &requests,
    );
    assert_same(&got, &expected);
    assert_eq!(stats.preemptions, 0);
}

#[test]
fn prompts_extending_cached_sequences_reuse_their_blocks() {
    let loaded = model();
    let mut engine = EngineCore::<Cpu>::new(
        EngineConfig {
            block_size: 4,
            ..EngineConfig::default()
        },
        Default::default(),
    );
    let agent = engine
        .add_agent("tiny", loaded.model, loaded.config, None)
        .unwrap();
    let parent = request(prompts()[1][..30].to_vec(), 0);
    let id = engine.submit(agent, 0, parent.clone()).unwrap();
    let first = engine.run_until_idle().remove(&id).unwrap().unwrap();
    // The child's prompt is the parent's whole sequence plus new tokens (a refinement turn).
    let mut child_prompt = parent.prompt.clone();
    child_prompt.extend(&first.tokens);
    child_prompt.extend([7, 8, 9]);
    let child = request(child_prompt, 2);
    let before = engine.stats();
    let id = engine.submit(agent, 0, child.clone()).unwrap();
    let got = engine.run_until_idle().remove(&id).unwrap().unwrap();
    let after = engine.stats();
    let reused = after.reused_tokens - before.reused_tokens;
    let prefilled = after.prefilled_tokens - before.prefilled_tokens;
    assert_eq!(reused + prefilled, child.prompt.len());
    assert!(reused >= 32, "only {reused} tokens reused");
    assert!(prefilled <= 8, "{prefilled} tokens prefilled");
    assert_same(&[got], &reference(&model(), &[child]));

    // New weights (same values here) make the old blocks unreachable.
    let fresh = model();
    engine.update_weights(agent, fresh.model).unwrap();
    let before = engine.stats();
    let id = engine.submit(agent, 0, parent).unwrap();
    engine.run_until_idle().remove(&id).unwrap().unwrap();
    assert_eq!(engine.stats().reused_tokens, before.reused_tokens);
}

#[test]
fn out_of_blocks_preempts_and_recomputes_without_losing_requests() {
    let mut requests: Vec<_> = prompts()
        .into_iter()
        .enumerate()
        .map(|(i, p)| request(p, i))
        .collect();
    for i in 0..6 {
        requests.push(request(prompts()[i % 4].clone(), i + 5));
    }
    let expected = reference(&model(), &requests);
    // llama-tiny: 2 layers × 2 kv heads × 16 dims × (K, V) × 4 bytes = 512 bytes per token, so a
    // block of 4 tokens takes 2 KiB. 24 blocks hold the longest request (81 tokens) but nowhere
    // near all eleven at once.
    let tight = EngineConfig {
        kv_cache_bytes: 24 * 2048,
        block_size: 4,
        max_running: 32,
        ..EngineConfig::default()
    };
    let (got, stats) = run(tight, &requests);
    assert_same(&got, &expected);
    assert!(
        stats.preemptions > 0,
        "the budget should have forced preemption"
    );
    assert!(stats.peak_kv_bytes <= 24 * 2048);
}

/// The fixture's weights with every parameter scaled, so that they write other tokens.
fn other_weights() -> LoadedModel<Cpu> {
    use burn::module::{Module, ModuleMapper, Param};
    use burn::tensor::{backend::Backend, Tensor};
    struct Scale;
    impl<B: Backend> ModuleMapper<B> for Scale {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
            let (id, tensor, mapper) = param.consume();
            Param::from_mapped_value(id, tensor.mul_scalar(1.7), mapper)
        }
    }
    let mut loaded = model();
    loaded.model = loaded.model.map(&mut Scale);
    loaded
}

#[test]
fn requests_under_way_when_weights_change_start_over_on_the_new_weights() {
    let requests: Vec<_> = prompts()
        .into_iter()
        .enumerate()
        .map(|(i, p)| request(p, i))
        .collect();
    let new = other_weights();
    let expected = reference(&new, &requests);
    assert_ne!(
        expected,
        reference(&model(), &requests),
        "the new weights write something else"
    );

    let loaded = model();
    let mut engine = EngineCore::<Cpu>::new(EngineConfig::default(), Default::default());
    let agent = engine
        .add_agent("tiny", loaded.model, loaded.config, None)
        .unwrap();
    let ids: Vec<_> = requests
        .iter()
        .map(|r| engine.submit(agent, 0, r.clone()).unwrap())
        .collect();
    // Prefill and a few tokens on the old weights, then the update.
    for _ in 0..3 {
        engine.step();
    }
    assert!(engine.take_finished().is_empty(), "still under way");
    assert_eq!(engine.update_weights(agent, new.model.clone()).unwrap(), 1);
    let mut results = engine.run_until_idle();
    let got: Vec<GenerationOutput> = ids
        .iter()
        .map(|id| results.remove(id).unwrap().unwrap())
        .collect();
    assert_same(&got, &expected);
    assert!(got.iter().all(|g| g.weights_version == 1));
    assert_eq!(engine.stats().restarted_for_new_weights, requests.len());
}

/// The outputs of an engine over llama-tiny with its matrices in Q4_1 blocks.
fn run_in_blocks(config: EngineConfig, requests: &[GenerationRequest]) -> Vec<GenerationOutput> {
    let mut loaded = model();
    loaded
        .model
        .quantize(mars2_models::quantized::QuantFormat::Q4_1)
        .unwrap();
    run_model(loaded, config, requests).0
}

#[test]
fn an_engine_multiplies_blocks_with_the_activations_its_config_names() {
    use mars2_models::kernels::{with_host_activations, HostActivations};
    let requests: Vec<_> = prompts()
        .into_iter()
        .take(2)
        .map(|p| request(p, 0))
        .collect();
    let with = |activations| EngineConfig {
        activations,
        ..EngineConfig::default()
    };
    let int8 = run_in_blocks(with(Some(HostActivations::Int8)), &requests);
    // The same as the thread's own choice, whatever the thread chose otherwise.
    let chosen_here = with_host_activations(HostActivations::Int8, || {
        run_in_blocks(with(None), &requests)
    });
    let overridden = with_host_activations(HostActivations::F32, || {
        run_in_blocks(with(Some(HostActivations::Int8)), &requests)
    });
    for other in [&chosen_here, &overridden] {
        for (a, b) in int8.iter().zip(other) {
            assert_eq!((&a.tokens, &a.logprobs), (&b.tokens, &b.logprobs));
        }
    }
    // f32 activations give other log-probabilities (the 8-bit rounding shows).
    let f32 = run_in_blocks(with(Some(HostActivations::F32)), &requests);
    assert_ne!(int8[0].logprobs, f32[0].logprobs);
}

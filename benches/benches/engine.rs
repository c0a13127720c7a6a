//! Engine throughput with criterion: decode through the paged engine vs the dense-cache path at
//! several batch sizes, and a tree-shaped workload with prefix reuse on vs off.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use mars2_benches::bench_config;
use mars2_engine::device::Cpu;
use mars2_engine::scheduler::{EngineConfig, EngineCore};
use mars2_engine::{generate, GenerationRequest, SamplingParams};
use mars2_models::Transformer;

fn greedy(prompt: Vec<u32>, n: usize) -> GenerationRequest {
    GenerationRequest {
        prompt,
        params: SamplingParams {
            ignore_eos: true,
            ..SamplingParams::greedy(n)
        },
    }
}

fn decode(c: &mut Criterion) {
    let config = bench_config();
    let device = Default::default();
    let model = Transformer::<Cpu>::random(&config, &device);
    let prompt: Vec<u32> = (1..40).collect();
    let new_tokens = 16;
    let mut group = c.benchmark_group("decode");
    group.sample_size(10);
    for batch in [1usize, 8, 32] {
        group.throughput(Throughput::Elements((batch * new_tokens) as u64));
        group.bench_with_input(BenchmarkId::new("dense", batch), &batch, |b, &batch| {
            let requests: Vec<_> = (0..batch)
                .map(|_| greedy(prompt.clone(), new_tokens))
                .collect();
            b.iter(|| generate(&model, &config, &requests, &device).unwrap());
        });
        group.bench_with_input(BenchmarkId::new("paged", batch), &batch, |b, &batch| {
            b.iter(|| {
                let mut core = EngineCore::<Cpu>::new(
                    EngineConfig {
                        prefix_reuse: false,
                        ..EngineConfig::default()
                    },
                    device,
                );
                let agent = core
                    .add_agent("bench", model.clone(), config.clone(), None)
                    .unwrap();
                for i in 0..batch {
                    core.submit(agent, i as u64, greedy(prompt.clone(), new_tokens))
                        .unwrap();
                }
                core.run_until_idle()
            });
        });
    }
    group.finish();
}

fn tree(c: &mut Criterion) {
    let config = bench_config();
    let device = Default::default();
    let model = Transformer::<Cpu>::random(&config, &device);
    let parent: Vec<u32> = (0..300).map(|i| (i * 31 + 7) % 4096).collect();
    let mut group = c.benchmark_group("tree_8_children");
    group.sample_size(10);
    for reuse in [true, false] {
        group.bench_function(
            if reuse {
                "prefix_reuse_on"
            } else {
                "prefix_reuse_off"
            },
            |b| {
                b.iter(|| {
                    let mut core = EngineCore::<Cpu>::new(
                        EngineConfig {
                            prefix_reuse: reuse,
                            ..EngineConfig::default()
                        },
                        device,
                    );
                    let agent = core
                        .add_agent("bench", model.clone(), config.clone(), None)
                        .unwrap();
                    core.submit(agent, 0, greedy(parent.clone(), 1)).unwrap();
                    core.run_until_idle();
                    for child in 0..8u32 {
                        let mut p = parent.clone();
                        p.extend((0..50).map(|i| (child * 100 + i) % 4096));
                        core.submit(agent, 1, greedy(p, 8)).unwrap();
                    }
                    core.run_until_idle()
                });
            },
        );
    }
    group.finish();
}

criterion_group!(benches, decode, tree);
criterion_main!(benches);

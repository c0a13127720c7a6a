//! The host decode path (`Transformer::forward_hidden_host`) computes what the Burn forward pass
//! computes: token by token over a paged cache whose blocks are scattered, for Llama, Qwen2
//! (q/k/v bias) and Qwen3 (per-head q/k norms), with dense f32 weights and with weights kept in
//! blocks (f32 and 8-bit activations), with low-rank adapters added on the fly; prompt chunks
//! past `MAX_HOST_ROWS` places when every product takes 8-bit activations; and a row gets
//! bitwise the same hidden state alone or in a batch.

use burn::module::Param;
use burn::tensor::{Int, Tensor, TensorData};
use mars2_engine::device::Cpu;
use mars2_models::host_decode::{HostKvLayer, HostStep, MAX_HOST_ROWS};
use mars2_models::kernels::{with_host_activations, HostActivations};
use mars2_models::{load_model, FullSequence, LoadedModel, LoraConfig, QuantFormat, Transformer};
use mars2_tests::{fixture, ids, max_abs_diff, reference_json};

const BLOCK: usize = 4;
/// Blocks handed out in this order, so that a sequence's blocks are not contiguous.
const BLOCK_ORDER: [usize; 8] = [5, 2, 7, 0, 3, 6, 1, 4];

fn load(name: &str) -> LoadedModel<Cpu> {
    load_model::<Cpu>(&fixture(name), &Default::default()).unwrap()
}

fn prompt(name: &str, len: usize) -> Vec<u32> {
    ids(&reference_json(name)["long"]["input_ids"])[..len].to_vec()
}

/// Hidden states of the whole sequence at once through Burn ops, `[len, hidden]` row-major.
fn full_sequence_hidden(model: &Transformer<Cpu>, tokens: &[u32]) -> Vec<f32> {
    let device = Default::default();
    let n = tokens.len();
    let ids: Vec<i64> = tokens.iter().map(|&t| i64::from(t)).collect();
    let positions: Vec<i64> = (0..n as i64).collect();
    let ids = Tensor::<Cpu, 2, Int>::from_data(TensorData::new(ids, [1, n]), &device);
    let positions = Tensor::<Cpu, 2, Int>::from_data(TensorData::new(positions, [1, n]), &device);
    let mut ctx = FullSequence::new(positions.clone());
    model
        .forward_hidden(ids, positions, &mut ctx)
        .into_data()
        .to_vec()
        .unwrap()
}

/// A paged cache for one or more sequences; sequence `s` owns blocks `BLOCK_ORDER[s·4..]`.
struct Cache {
    layers: Vec<HostKvLayer>,
}

impl Cache {
    fn new(loaded: &LoadedModel<Cpu>) -> Self {
        let c = &loaded.config;
        let len = BLOCK_ORDER.len() * BLOCK * c.num_kv_heads * c.head_dim;
        Self {
            layers: (0..c.num_layers)
                .map(|_| HostKvLayer {
                    keys: vec![0.0; len],
                    values: vec![0.0; len],
                })
                .collect(),
        }
    }
}

fn table(sequence: usize) -> Vec<usize> {
    BLOCK_ORDER[sequence * 4..(sequence + 1) * 4].to_vec()
}

fn slot(sequence: usize, position: usize) -> usize {
    table(sequence)[position / BLOCK] * BLOCK + position % BLOCK
}

/// One host step: each row `(sequence, start, tokens)` brings its tokens at positions
/// `start..`; all rows bring equally many here.
fn host_step(
    model: &Transformer<Cpu>,
    cache: &mut Cache,
    rows: &[(usize, usize, &[u32])],
) -> Vec<f32> {
    let tokens = rows[0].2.len();
    let mut ids = Vec::new();
    let mut positions = Vec::new();
    let mut write_slots = Vec::new();
    let mut visible = Vec::new();
    for &(sequence, start, new) in rows {
        ids.extend_from_slice(new);
        positions.extend(start..start + tokens);
        write_slots.extend((start..start + tokens).map(|p| slot(sequence, p)));
        visible.push((start..start + tokens).map(|p| p + 1).collect());
    }
    let tables: Vec<Vec<usize>> = rows.iter().map(|r| table(r.0)).collect();
    let step = HostStep {
        batch: rows.len(),
        tokens,
        ids: &ids,
        positions: &positions,
        write_slots: &write_slots,
        block_tables: &tables,
        visible: &visible,
        block_size: BLOCK,
    };
    model
        .forward_hidden_host(&step, &mut cache.layers)
        .expect("the host path takes a decode step on ndarray")
        .into_data()
        .to_vec()
        .unwrap()
}

/// A 5-token prompt chunk, then one token per step; every step's hidden states against the
/// whole sequence's.
fn host_matches_full_sequence(loaded: &LoadedModel<Cpu>, tokens: &[u32], tolerance: f32) {
    let hidden = loaded.config.hidden_size;
    let full = full_sequence_hidden(&loaded.model, tokens);
    let mut cache = Cache::new(loaded);
    let first = host_step(&loaded.model, &mut cache, &[(0, 0, &tokens[..5])]);
    let diff = max_abs_diff(&first, &full[..5 * hidden]);
    assert!(diff < tolerance, "prompt chunk: {diff}");
    for p in 5..tokens.len() {
        let got = host_step(&loaded.model, &mut cache, &[(0, p, &tokens[p..p + 1])]);
        let diff = max_abs_diff(&got, &full[p * hidden..(p + 1) * hidden]);
        assert!(diff < tolerance, "position {p}: {diff}");
    }
}

#[test]
fn host_steps_match_the_burn_forward_pass_on_each_architecture() {
    for name in ["llama-tiny", "qwen2-tiny", "qwen3-tiny"] {
        let loaded = load(name);
        host_matches_full_sequence(&loaded, &prompt(name, 14), 1e-4);
    }
}

#[test]
fn host_steps_match_with_weights_kept_in_blocks() {
    for format in [QuantFormat::Q8_0, QuantFormat::Q4_1] {
        let mut loaded = load("qwen2-tiny");
        loaded.model.quantize(format).unwrap();
        let tokens = prompt("qwen2-tiny", 12);
        with_host_activations(HostActivations::F32, || {
            host_matches_full_sequence(&loaded, &tokens, 1e-4)
        });
        // 8-bit activations round each product's input: a looser, measured bound.
        with_host_activations(HostActivations::Int8, || {
            host_matches_full_sequence(&loaded, &tokens, 0.05)
        });
    }
}

#[test]
fn long_prompt_chunks_take_the_host_path_when_every_product_is_8_bit() {
    let mut loaded = load("qwen2-tiny");
    loaded.model.quantize(QuantFormat::Q4_1).unwrap();
    let tokens = prompt("qwen2-tiny", 71);
    let n = tokens.len();
    assert!(n > MAX_HOST_ROWS, "a chunk longer than decode steps");
    // One sequence whose blocks are handed out in reverse order.
    let c = &loaded.config;
    let blocks = n.div_ceil(BLOCK);
    let table: Vec<usize> = (0..blocks).rev().collect();
    let len = blocks * BLOCK * c.num_kv_heads * c.head_dim;
    let mut layers = vec![
        HostKvLayer {
            keys: vec![0.0; len],
            values: vec![0.0; len],
        };
        c.num_layers
    ];
    let positions: Vec<usize> = (0..n).collect();
    let write_slots: Vec<usize> = positions
        .iter()
        .map(|&p| table[p / BLOCK] * BLOCK + p % BLOCK)
        .collect();
    let tables = vec![table];
    let visible = vec![(1..=n).collect::<Vec<_>>()];
    let step = HostStep {
        batch: 1,
        tokens: n,
        ids: &tokens,
        positions: &positions,
        write_slots: &write_slots,
        block_tables: &tables,
        visible: &visible,
        block_size: BLOCK,
    };
    let declined = with_host_activations(HostActivations::F32, || {
        loaded
            .model
            .forward_hidden_host(&step, &mut layers)
            .is_none()
    });
    assert!(
        declined,
        "with f32 activations a long chunk keeps the dense path"
    );
    let got: Vec<f32> = with_host_activations(HostActivations::Int8, || {
        loaded.model.forward_hidden_host(&step, &mut layers)
    })
    .expect("with 8-bit activations the host path takes the chunk")
    .into_data()
    .to_vec()
    .unwrap();
    let want = with_host_activations(HostActivations::Int8, || {
        full_sequence_hidden(&loaded.model, &tokens)
    });
    let diff = max_abs_diff(&got, &want);
    assert!(diff < 0.05, "{n}-token chunk: {diff}");
}

/// Every adapter's `B` (zero when fresh) filled with small values drawn from `seed`.
fn with_nonzero_adapters(model: Transformer<Cpu>, seed: u64) -> Transformer<Cpu> {
    let mut model = model.with_adapters(&LoraConfig {
        rank: 4,
        alpha: 8.0,
        ..LoraConfig::default()
    });
    let mut state = seed;
    for layer in &mut model.layers {
        for (_, linear) in layer.projections_mut() {
            let lora = linear.lora.as_mut().expect("every projection is targeted");
            let dims = lora.b.dims();
            let values: Vec<f32> = (0..dims[0] * dims[1])
                .map(|_| {
                    state = state
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    ((state >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.2
                })
                .collect();
            lora.b = Param::from_tensor(Tensor::from_data(
                TensorData::new(values, dims),
                &Default::default(),
            ));
        }
    }
    model
}

#[test]
fn adapters_are_added_on_the_fly_over_dense_and_block_weights() {
    for format in [None, Some(QuantFormat::Q4_1)] {
        let mut loaded = load("qwen2-tiny");
        if let Some(format) = format {
            loaded.model.quantize(format).unwrap();
        }
        let tokens = prompt("qwen2-tiny", 12);
        let base = full_sequence_hidden(&loaded.model, &tokens);
        loaded.model = with_nonzero_adapters(loaded.model, 3);
        let adapted = full_sequence_hidden(&loaded.model, &tokens);
        assert!(
            max_abs_diff(&base, &adapted) > 1e-2,
            "the adapters change the hidden states ({format:?})"
        );
        with_host_activations(HostActivations::F32, || {
            host_matches_full_sequence(&loaded, &tokens, 1e-4)
        });
    }
}

#[test]
fn an_engine_copy_in_blocks_takes_the_learners_adapters() {
    // The learner and the engine hold the same base blocks, each its own copy.
    let in_blocks = || {
        let mut loaded = load("qwen2-tiny");
        loaded.model.quantize(QuantFormat::Q8_0).unwrap();
        loaded.model
    };
    let learner = with_nonzero_adapters(in_blocks(), 5);
    let engine_copy = in_blocks().with_adapters_of(&learner).unwrap();
    let tokens = prompt("qwen2-tiny", 10);
    let base = full_sequence_hidden(&in_blocks(), &tokens);
    let want = full_sequence_hidden(&learner, &tokens);
    let got = full_sequence_hidden(&engine_copy, &tokens);
    assert_eq!(
        got, want,
        "the engine's copy computes what the learner computes"
    );
    assert!(
        max_abs_diff(&base, &got) > 1e-2,
        "with the learner's adapters on"
    );
    assert!(engine_copy.layers[0].attention.q_proj.quantized.is_some());
}

#[test]
fn a_row_gets_the_same_hidden_state_alone_or_in_a_batch() {
    let loaded = load("qwen3-tiny");
    let hidden = loaded.config.hidden_size;
    let a = prompt("qwen3-tiny", 9);
    let b = ids(&reference_json("qwen3-tiny")["short"]["input_ids"]);
    let b = &b[..b.len().min(9)];
    // Prompts of 3 tokens each, then lockstep decoding of the rest.
    let mut alone = Cache::new(&loaded);
    let mut together = Cache::new(&loaded);
    host_step(&loaded.model, &mut alone, &[(0, 0, &a[..3])]);
    host_step(&loaded.model, &mut alone, &[(1, 0, &b[..3])]);
    host_step(
        &loaded.model,
        &mut together,
        &[(0, 0, &a[..3]), (1, 0, &b[..3])],
    );
    for p in 3..b.len() {
        let first = host_step(&loaded.model, &mut alone, &[(0, p, &a[p..p + 1])]);
        let second = host_step(&loaded.model, &mut alone, &[(1, p, &b[p..p + 1])]);
        let both = host_step(
            &loaded.model,
            &mut together,
            &[(0, p, &a[p..p + 1]), (1, p, &b[p..p + 1])],
        );
        assert_eq!(both[..hidden], first[..], "row 0 at position {p}");
        assert_eq!(both[hidden..], second[..], "row 1 at position {p}");
    }
}

#[test]
fn steps_the_host_path_cannot_take_are_declined_without_writing() {
    let loaded = load("llama-tiny");
    let mut cache = Cache::new(&loaded);
    let before = cache.layers.clone();
    let step = |ids: &'static [u32], write_slots: &'static [usize]| HostStep {
        batch: 1,
        tokens: 1,
        ids,
        positions: &[0],
        write_slots,
        block_tables: &[],
        visible: &[],
        block_size: BLOCK,
    };
    let tables = vec![table(0)];
    let visible = vec![vec![1]];
    let with_tables = |s: HostStep<'static>, layers: &mut [HostKvLayer]| -> Option<()> {
        let s = HostStep {
            block_tables: &tables,
            visible: &visible,
            ..s
        };
        loaded.model.forward_hidden_host(&s, layers).map(|_| ())
    };
    // A token id past the vocabulary (1000), a slot past the cache, tables missing.
    assert!(with_tables(step(&[1000], &[0]), &mut cache.layers).is_none());
    assert!(with_tables(step(&[1], &[10_000]), &mut cache.layers).is_none());
    assert!(loaded
        .model
        .forward_hidden_host(&step(&[1], &[0]), &mut cache.layers)
        .is_none());
    assert!(cache
        .layers
        .iter()
        .zip(&before)
        .all(|(a, b)| a.keys == b.keys && a.values == b.values));
    assert!(with_tables(step(&[1], &[0]), &mut cache.layers).is_some());
}

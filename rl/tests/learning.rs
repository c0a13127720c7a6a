//! A real learning test: a tiny model whose answers are one token, each token standing for
//! one program, is trained by MARS² (AB-MCTS trees judged in the sandbox, tree-consistent
//! shaping, tree-group advantages, GSPO with AdamW) on one easy problem, and its pass rate
//! rises.

use std::sync::RwLock;

use burn::backend::{Autodiff, NdArray};
use burn::tensor::activation::softmax;
use burn::tensor::{Int, Tensor, TensorData};
use mars2_engine::{generate, GenerationRequest, SamplingParams};
use mars2_models::attention_context::FullSequence;
use mars2_models::{ModelConfig, Transformer};
use mars2_rl::schedule::LrSchedule;
use mars2_rl::{tree_samples, AgentTrainer, LossConfig, ShapingConfig, TrainerConfig};
use mars2_sandbox::{Dataset, Problem, Sandbox, TestCase};
use mars2_search::config::{AgentSpec, Method, SearchConfig};
use mars2_search::runner::grow_tree;
use mars2_search::{Generation, Policy, PolicyRequest, SearchContext};

type Cpu = NdArray<f32>;
type Train = Autodiff<Cpu>;

const RIGHT_TOKEN: u32 = 5;
const FRESH_PROMPT: [u32; 2] = [1, 2];
const REFINE_PROMPT: [u32; 2] = [1, 3];

/// Token t answers with program `t`: only token 5 is right.
fn program_of(token: u32) -> String {
    let body = match token {
        RIGHT_TOKEN => "a + b".to_string(),
        t => format!("a - b + {t}"),
    };
    format!("```python\ndef add(a, b):\n    return {body}\n```")
}

fn config() -> ModelConfig {
    ModelConfig {
        intermediate_size: 24,
        max_position_embeddings: 32,
        ..ModelConfig::tiny_llama(8, 16, 1)
    }
}

struct OneTokenPolicy {
    model: RwLock<Transformer<Cpu>>,
}

impl Policy for OneTokenPolicy {
    fn models(&self) -> usize {
        1
    }
    fn model_name(&self, _: usize) -> String {
        "tiny".into()
    }
    fn generate(&self, r: PolicyRequest<'_>) -> mars2_search::Result<Generation> {
        let refine = r.messages.len() > 2 || r.messages[1].content.contains("previous attempt");
        let prompt = if refine { REFINE_PROMPT } else { FRESH_PROMPT }.to_vec();
        let model = self.model.read().unwrap();
        let request = GenerationRequest {
            prompt: prompt.clone(),
            params: SamplingParams {
                temperature: 1.0,
                seed: r.seed,
                max_new_tokens: 1,
                ignore_eos: true,
                ..SamplingParams::default()
            },
        };
        let out = generate(&model, &config(), &[request], &Default::default())
            .map_err(|e| mars2_search::SearchError::Generation(e.to_string()))?;
        let out = &out[0];
        Ok(Generation {
            text: program_of(out.tokens[0]),
            prompt_len: prompt.len(),
            prompt_tokens: prompt,
            response_len: 1,
            response_tokens: out.tokens.clone(),
            logprobs: out.logprobs.clone(),
            finish_reason: "length".into(),
            weights_version: 0,
        })
    }
}

/// The probability that a fresh answer is right: the model's probability of token 5.
fn pass_rate(model: &Transformer<Cpu>) -> f64 {
    let device = Default::default();
    let ids = Tensor::<Cpu, 2, Int>::from_data(TensorData::new(vec![1i64, 2], [1, 2]), &device);
    let positions =
        Tensor::<Cpu, 2, Int>::from_data(TensorData::new(vec![0i64, 1], [1, 2]), &device);
    let mut ctx = FullSequence::new(positions.clone());
    let logits = model
        .forward(ids, positions, &mut ctx)
        .slice([0..1, 1..2])
        .reshape([1, 8]);
    let p: Vec<f32> = softmax(logits, 1).to_data().iter::<f32>().collect();
    p[RIGHT_TOKEN as usize] as f64
}

fn problem() -> Problem {
    let t = |a: &str| TestCase::Assert {
        setup: String::new(),
        assertion: a.into(),
    };
    Problem {
        id: "toy/add".into(),
        dataset: Dataset::Mbpp,
        title: None,
        statement: "Write add(a, b).".into(),
        starter_code: String::new(),
        entry_point: Some("add".into()),
        public_tests: vec![t("assert add(1, 2) == 3")],
        hidden_tests: vec![t("assert add(1, 2) == 3"), t("assert add(0, 0) == 0")],
        reference_solution: None,
        platform: None,
        difficulty: None,
        split: None,
    }
}

#[test]
fn mars2_training_raises_the_pass_rate() {
    let device = Default::default();
    let model = Transformer::<Train>::random(&config(), &device);
    let policy = OneTokenPolicy {
        model: RwLock::new(Transformer::<Cpu>::random(&config(), &device)),
    };
    let before = pass_rate(&policy.model.read().unwrap());
    let mut trainer = AgentTrainer::new(
        model,
        TrainerConfig {
            schedule: LrSchedule {
                peak: 0.02,
                warmup_fraction: 0.0,
                total_steps: 12,
                floor_fraction: 0.5,
            },
            train_batch: 8,
            grad_clip: 1.0,
            loss: LossConfig {
                kl_beta: 0.0,
                ..LossConfig::default()
            },
            temperature: 1.0,
        },
        device,
    );
    let sandbox = Sandbox::with_defaults().unwrap();
    let team = [AgentSpec::new("tiny", 0)];
    let problem = problem();
    let mut steps = 0;
    for round in 0..12 {
        let search = SearchConfig {
            seed: round,
            ..SearchConfig::for_training(Method::Abmcts, 8)
        };
        let ctx = SearchContext {
            config: &search,
            team: &team,
            policy: &policy,
            sandbox: &sandbox,
            scorer: None,
        };
        let tree = grow_tree(&ctx, &problem, 0, &|_| {}).unwrap();
        trainer.push(
            tree_samples(&tree, &team, &ShapingConfig::default())
                .into_iter()
                .map(|(_, s)| s),
        );
        while let Some(metrics) = trainer.train_step() {
            assert!(metrics.loss.is_finite() && metrics.grad_norm.is_finite());
            steps += 1;
            *policy.model.write().unwrap() = trainer.inference_model().unwrap();
        }
    }
    let after = pass_rate(&policy.model.read().unwrap());
    assert!(steps >= 10, "{steps} updates");
    assert!(
        after > before + 0.25,
        "pass rate before {before:.3}, after {after:.3}"
    );
}

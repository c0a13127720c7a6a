//! Kill and resume: a learner checkpointed after its first update and restored into a fresh
//! process-like state continues exactly as the uninterrupted learner does (same metrics, same
//! weights, the samples its first update left over), and the Hugging Face export in the
//! checkpoint loads back; a learner with adapters checkpoints the adapters alone and resumes
//! as exactly.

use burn::backend::{Autodiff, NdArray};
use mars2_models::export::hf_tensors;
use mars2_models::{load_model, LoraConfig, ModelConfig, Transformer};
use mars2_rl::checkpoint::{load_checkpoint, save_checkpoint, ExportInfo};
use mars2_rl::schedule::LrSchedule;
use mars2_rl::{AgentTrainer, LossConfig, TrainSample, TrainerConfig};

type Cpu = NdArray<f32>;
type Train = Autodiff<Cpu>;

fn config() -> ModelConfig {
    ModelConfig {
        intermediate_size: 12,
        max_position_embeddings: 32,
        ..ModelConfig::tiny_llama(12, 8, 1)
    }
}

fn samples() -> Vec<TrainSample> {
    (0..6)
        .map(|i| TrainSample {
            prompt: vec![1, 2, 3],
            response: vec![4 + i as u32 % 5, 9, 3 + i as u32 % 3],
            rollout_logprobs: vec![-2.4, -2.5, -2.3],
            advantage: if i % 2 == 0 { 1.0 } else { -1.0 },
            reward: (i % 2 == 0) as u8 as f64,
            weights_version: 0,
        })
        .collect()
}

fn trainer() -> AgentTrainer<Train> {
    trainer_of(Transformer::<Train>::random(&config(), &Default::default()))
}

/// A learner of rank-2 adapters on the same random model.
fn adapted_trainer() -> AgentTrainer<Train> {
    let model = Transformer::<Train>::random(&config(), &Default::default());
    trainer_of(model.with_adapters(&LoraConfig {
        rank: 2,
        ..LoraConfig::default()
    }))
}

fn trainer_of(model: Transformer<Train>) -> AgentTrainer<Train> {
    let device = Default::default();
    AgentTrainer::new(
        model,
        TrainerConfig {
            schedule: LrSchedule {
                peak: 0.01,
                warmup_fraction: 0.3,
                total_steps: 3,
                floor_fraction: 0.1,
            },
            train_batch: 2,
            grad_clip: 1.0,
            loss: LossConfig {
                kl_beta: 0.05,
                ..LossConfig::default()
            },
            temperature: 1.0,
        },
        device,
    )
}

#[test]
fn resuming_from_a_checkpoint_continues_exactly() {
    let dir = resumes_exactly(trainer);
    let exported = load_model::<Cpu>(&dir.path().join("agent/model"), &Default::default()).unwrap();
    // The export holds the weights of step 1.
    assert_eq!(exported.config.vocab_size, 12);
}

#[test]
fn an_adapted_learner_checkpoints_its_adapters_alone_and_resumes_exactly() {
    let dir = resumes_exactly(adapted_trainer);
    let ckpt = dir.path().join("agent");
    assert!(!ckpt.join("trainer.bin").exists() && !ckpt.join("model").exists());
    let adapters = std::fs::metadata(ckpt.join("adapters.bin")).unwrap().len();
    let full = resumes_exactly(trainer);
    let weights = std::fs::metadata(full.path().join("agent/trainer.bin"))
        .unwrap()
        .len();
    assert!(
        adapters * 2 < weights,
        "adapters.bin {adapters} bytes against trainer.bin {weights}"
    );
}

/// Checkpoints a learner made by `make` after one update, restores it into a fresh one and
/// checks that the next two updates equal the uninterrupted learner's; returns the directory
/// holding the checkpoint (`agent/`).
fn resumes_exactly(trainer: fn() -> AgentTrainer<Train>) -> tempfile::TempDir {
    let mut whole = trainer();
    whole.push(samples());
    let expected: Vec<_> = (0..3)
        .map(|_| whole.train_step().unwrap().unwrap())
        .collect();

    let dir = tempfile::tempdir().unwrap();
    let ckpt = dir.path().join("agent");
    let mut first = trainer();
    first.push(samples());
    let step0 = first.train_step().unwrap().unwrap();
    let cfg = config();
    let export = ExportInfo {
        config: &cfg,
        tokenizer: None,
        template: None,
    };
    save_checkpoint(&ckpt, &first, &export, serde_json::json!({"round": 7})).unwrap();
    drop(first);

    let mut resumed = trainer();
    let state = load_checkpoint(&ckpt, &mut resumed, &Default::default()).unwrap();
    assert_eq!(state["round"], 7);
    assert_eq!(resumed.step, 1);
    // The four samples the first update left over came back with the checkpoint.
    let pending: Vec<TrainSample> = resumed.pending().cloned().collect();
    assert_eq!(pending, samples()[2..].to_vec());
    let rest: Vec<_> = (0..2)
        .map(|_| resumed.train_step().unwrap().unwrap())
        .collect();

    let strip = |m: &mars2_rl::StepMetrics| (m.step, m.loss, m.kl, m.grad_norm, m.lr, m.ratio);
    assert_eq!(strip(&step0), strip(&expected[0]));
    for (a, b) in rest.iter().zip(&expected[1..]) {
        assert_eq!(strip(a), strip(b));
    }
    assert_eq!(
        hf_tensors(&resumed.inference_model().unwrap()),
        hf_tensors(&whole.inference_model().unwrap())
    );
    dir
}

#[test]
fn a_missing_or_broken_checkpoint_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut t = trainer();
    let err = load_checkpoint(&dir.path().join("none"), &mut t, &Default::default()).unwrap_err();
    assert!(err.to_string().contains("state.json"), "{err}");
    let broken = dir.path().join("broken");
    std::fs::create_dir_all(&broken).unwrap();
    std::fs::write(broken.join("state.json"), "{\"step\": 1}").unwrap();
    let err = load_checkpoint(&broken, &mut t, &Default::default()).unwrap_err();
    assert!(err.to_string().contains("trainer.bin"), "{err}");
}

//! Supervised fine-tuning on a tiny model: the reported loss is the mean response NLL, and
//! training on one example drives it down.

use burn::backend::{Autodiff, NdArray};
use mars2_models::{ModelConfig, Transformer};
use mars2_rl::schedule::LrSchedule;
use mars2_rl::sft::{mean_nll, SftExample, SupervisedTrainer};

type Train = Autodiff<NdArray<f32>>;

fn tiny() -> ModelConfig {
    ModelConfig {
        tie_word_embeddings: false,
        ..ModelConfig::tiny_llama(16, 16, 1)
    }
}

#[test]
fn supervised_steps_lower_the_response_loss() {
    let device = Default::default();
    let model = Transformer::<Train>::random(&tiny(), &device);
    let examples = vec![
        SftExample {
            prompt: vec![1, 2, 3],
            response: vec![7, 8, 9, 10],
        },
        SftExample {
            prompt: vec![1, 4],
            response: vec![11, 12],
        },
        // Skipped: nothing to predict.
        SftExample {
            prompt: vec![1],
            response: vec![],
        },
    ];
    let schedule = LrSchedule {
        peak: 1e-2,
        warmup_fraction: 0.0,
        total_steps: 40,
        floor_fraction: 1.0,
    };
    let mut trainer = SupervisedTrainer::new(model, schedule, 1.0, device);
    let start = mean_nll(&trainer.inference_model().unwrap(), &examples, &device);
    let first = trainer.train_step(&examples).unwrap();
    assert_eq!(first.examples, 2);
    assert_eq!(first.tokens, 6);
    assert!(
        (first.loss - start).abs() < 1e-4,
        "step loss {} vs mean NLL {start}",
        first.loss
    );
    // A random model over 16 tokens starts near ln 16.
    assert!(start > 1.5, "{start}");
    for _ in 0..39 {
        trainer.train_step(&examples).unwrap();
    }
    let end = mean_nll(&trainer.inference_model().unwrap(), &examples, &device);
    assert!(end < 0.3 * start, "loss {start} → {end}");
    assert_eq!(trainer.step, 40);
    assert!(trainer
        .train_step(&[SftExample {
            prompt: vec![],
            response: vec![1]
        }])
        .is_none());
}

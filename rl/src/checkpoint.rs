//! Checkpoints of one agent's learner, written atomically (a `.partial` directory renamed into
//! place, so an interrupted write leaves the previous checkpoint intact):
//!
//! - `model/`: a Hugging Face checkpoint (safetensors with Hugging Face names + config.json +
//!   tokenizer and chat template) that this project and transformers load;
//! - `trainer.bin`: the trainable weights as a Burn record (parameter ids kept, so the
//!   optimizer state matches them on resume) and `optimizer.bin`: AdamW's moments;
//! - `pending.json`: the samples waiting for the next update (left over from the rounds so
//!   far), so that a resumed run trains on exactly what the uninterrupted run would have;
//! - `state.json`: the step counter and whatever the caller adds (round, problem cursor).

use std::path::{Path, PathBuf};

use burn::module::{AutodiffModule, Module};
use burn::optim::Optimizer;
use burn::record::{BinFileRecorder, FullPrecisionSettings, Recorder as _};
use burn::tensor::backend::AutodiffBackend;
use mars2_models::export::replace_dir_atomically;
use mars2_models::{save_hf_checkpoint, ChatTemplate, ModelConfig, TextTokenizer};

use crate::samples::TrainSample;
use crate::trainer::AgentTrainer;

/// Why a checkpoint could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
}

fn err(path: &Path, message: impl std::fmt::Display) -> CheckpointError {
    CheckpointError::File {
        path: path.to_path_buf(),
        message: message.to_string(),
    }
}

type FileFormat = BinFileRecorder<FullPrecisionSettings>;

/// The samples waiting for an update, in a checkpoint.
const PENDING_FILE: &str = "pending.json";

/// What goes into the Hugging Face export beside the weights.
pub struct ExportInfo<'a> {
    pub config: &'a ModelConfig,
    pub tokenizer: Option<&'a TextTokenizer>,
    pub template: Option<&'a ChatTemplate>,
}

/// Writes `trainer` to `dir` (replacing it atomically) with `state` as `state.json` (the
/// step counter is added as `"step"`).
pub fn save_checkpoint<B: AutodiffBackend>(
    dir: &Path,
    trainer: &AgentTrainer<B>,
    export: &ExportInfo<'_>,
    mut state: serde_json::Value,
) -> Result<(), CheckpointError> {
    let model = trainer
        .model()
        .ok_or_else(|| err(dir, "the trainer holds no model"))?;
    state["step"] = trainer.step.into();
    replace_dir_atomically(dir, err, |tmp| {
        save_hf_checkpoint(
            &tmp.join("model"),
            &model.valid(),
            export.config,
            export.tokenizer,
            export.template,
        )
        .map_err(|e| err(tmp, e))?;
        FileFormat::new()
            .record(model.clone().into_record(), tmp.join("trainer"))
            .map_err(|e| err(&tmp.join("trainer.bin"), e))?;
        FileFormat::new()
            .record(trainer.optimizer().to_record(), tmp.join("optimizer"))
            .map_err(|e| err(&tmp.join("optimizer.bin"), e))?;
        let pending: Vec<&TrainSample> = trainer.pending().collect();
        let pending_path = tmp.join(PENDING_FILE);
        let pending = serde_json::to_vec(&pending).map_err(|e| err(&pending_path, e))?;
        std::fs::write(&pending_path, pending).map_err(|e| err(&pending_path, e))?;
        let state_path = tmp.join("state.json");
        std::fs::write(
            &state_path,
            serde_json::to_string_pretty(&state).unwrap_or_default(),
        )
        .map_err(|e| err(&state_path, e))
    })
}

/// Restores `trainer` (weights, optimizer state, step) from `dir`; returns `state.json`.
pub fn load_checkpoint<B: AutodiffBackend>(
    dir: &Path,
    trainer: &mut AgentTrainer<B>,
    device: &B::Device,
) -> Result<serde_json::Value, CheckpointError> {
    let state_path = dir.join("state.json");
    let text = std::fs::read_to_string(&state_path).map_err(|e| err(&state_path, e))?;
    let state: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| err(&state_path, format!("not JSON: {e}")))?;
    let step = state
        .get("step")
        .and_then(|s| s.as_u64())
        .ok_or_else(|| err(&state_path, "no step counter"))? as usize;
    let model = trainer
        .model()
        .ok_or_else(|| err(dir, "the trainer holds no model"))?
        .clone();
    let record = FileFormat::new()
        .load(dir.join("trainer"), device)
        .map_err(|e| err(&dir.join("trainer.bin"), e))?;
    let model = model.load_record(record);
    // Only the adapters train when there are adapters, whatever flags the record carried.
    let model = if model.has_adapters() {
        model.freeze_base()
    } else {
        model
    };
    let optimizer = FileFormat::new()
        .load(dir.join("optimizer"), device)
        .map_err(|e| err(&dir.join("optimizer.bin"), e))?;
    let pending_path = dir.join(PENDING_FILE);
    let pending: Vec<TrainSample> = match std::fs::read(&pending_path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map_err(|e| err(&pending_path, format!("not a list of samples: {e}")))?,
        // Checkpoints written before pending samples were saved.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(err(&pending_path, e)),
    };
    trainer.restore(model, optimizer, step, pending);
    Ok(state)
}

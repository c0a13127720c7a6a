//! Checkpoints of one agent's learner, written atomically (a `.partial` directory renamed into
//! place, so an interrupted write leaves the previous checkpoint intact):
//!
//! - `model/`: a Hugging Face checkpoint (safetensors with Hugging Face names + config.json +
//!   tokenizer and chat template) that this project and transformers load;
//! - `trainer.bin`: the trainable weights as a Burn record (parameter ids kept, so the
//!   optimizer state matches them on resume) and `optimizer.bin`: AdamW's moments;
//! - for a learner with low-rank adapters, instead of `model/` and `trainer.bin`:
//!   `adapters.bin`, the adapters alone (the frozen base is the model the run started from, so
//!   a checkpoint is the adapters and their moments, megabytes instead of gigabytes; the
//!   merged model is exported once, by [`export_model`], when the run ends);
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

/// The adapters of an adapted learner, in a checkpoint (`adapters.bin`).
const ADAPTERS: &str = "adapters";

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
        if model.has_adapters() {
            FileFormat::new()
                .record(model.adapters().into_record(), tmp.join(ADAPTERS))
                .map_err(|e| err(&tmp.join("adapters.bin"), e))?;
        } else {
            export_model(&tmp.join("model"), trainer, export)?;
            FileFormat::new()
                .record(model.clone().into_record(), tmp.join("trainer"))
                .map_err(|e| err(&tmp.join("trainer.bin"), e))?;
        }
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

/// Writes the learner's current model, adapters merged, as a Hugging Face checkpoint in
/// `dir` (replacing it).
pub fn export_model<B: AutodiffBackend>(
    dir: &Path,
    trainer: &AgentTrainer<B>,
    export: &ExportInfo<'_>,
) -> Result<(), CheckpointError> {
    let model = trainer
        .model()
        .ok_or_else(|| err(dir, "the trainer holds no model"))?;
    save_hf_checkpoint(
        dir,
        &model.valid(),
        export.config,
        export.tokenizer,
        export.template,
    )
    .map_err(|e| err(dir, e))
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
    let model = if model.has_adapters() {
        let path = dir.join("adapters.bin");
        let record = FileFormat::new()
            .load(dir.join(ADAPTERS), device)
            .map_err(|e| err(&path, e))?;
        let adapters = model.adapters().load_record(record);
        // Only the adapters train, whatever flags the record carried.
        model
            .set_adapters(adapters)
            .map_err(|e| err(&path, e))?
            .freeze_base()
    } else {
        let record = FileFormat::new()
            .load(dir.join("trainer"), device)
            .map_err(|e| err(&dir.join("trainer.bin"), e))?;
        model.load_record(record)
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

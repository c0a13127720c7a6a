//! One entry point for every checkpoint kind: a Hugging Face directory (`config.json`,
//! safetensors, `tokenizer.json`, chat template) or a single `.gguf` file.

use std::path::{Path, PathBuf};

use burn::tensor::backend::Backend;

use crate::chat_template::ChatTemplate;
use crate::config::ModelConfig;
use crate::error::{ModelError, Result};
use crate::gguf::llama::{config_from_gguf, GgufWeights};
use crate::gguf::{GgufFile, MetadataValue};
use crate::host_tensor::BlockSource;
use crate::quantized::Quantization;
use crate::safetensors_source::SafetensorsSource;
use crate::tokenizer::TextTokenizer;
use crate::transformer::{QuantizeReport, Transformer};

/// A model ready to run, with the text side that came with it.
#[derive(Debug)]
pub struct LoadedModel<B: Backend> {
    pub config: ModelConfig,
    pub model: Transformer<B>,
    /// `None` for checkpoints shipped without a tokenizer (token ids only).
    pub tokenizer: Option<TextTokenizer>,
    pub chat_template: Option<ChatTemplate>,
    pub source: PathBuf,
}

/// The kind of checkpoint at a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckpointKind {
    HuggingFaceDir,
    Gguf,
}

/// Decides what `path` holds, or says why it is not a model.
pub fn checkpoint_kind(path: &Path) -> Result<CheckpointKind> {
    if path.is_dir() {
        if path.join("config.json").is_file() {
            return Ok(CheckpointKind::HuggingFaceDir);
        }
    } else if path.is_file() {
        let mut magic = [0u8; 4];
        let mut f = std::fs::File::open(path).map_err(|e| ModelError::io(path, e))?;
        if std::io::Read::read_exact(&mut f, &mut magic).is_ok() && &magic == b"GGUF" {
            return Ok(CheckpointKind::Gguf);
        }
        if path.extension().is_some_and(|e| e == "gguf") {
            return Err(ModelError::Gguf {
                path: path.to_path_buf(),
                message: format!("bad magic number {magic:?}, expected \"GGUF\""),
            });
        }
    } else if !path.exists() {
        return Err(ModelError::io(
            path,
            std::io::Error::new(std::io::ErrorKind::NotFound, "no such file or directory"),
        ));
    }
    Err(ModelError::NotAModel {
        path: path.to_path_buf(),
    })
}

/// Loads a model directory or GGUF file onto `device`.
pub fn load_model<B: Backend>(path: &Path, device: &B::Device) -> Result<LoadedModel<B>> {
    match checkpoint_kind(path)? {
        CheckpointKind::HuggingFaceDir => load_hf_dir(path, device),
        CheckpointKind::Gguf => load_gguf(path, device),
    }
}

fn load_hf_dir<B: Backend>(dir: &Path, device: &B::Device) -> Result<LoadedModel<B>> {
    let config = ModelConfig::from_hf_json_file(&dir.join("config.json"))?;
    let mut weights = SafetensorsSource::open_dir(dir)?;
    let model = Transformer::from_weights(&config, &mut weights, device)?;
    let tokenizer_path = dir.join("tokenizer.json");
    let tokenizer = if tokenizer_path.is_file() {
        Some(TextTokenizer::from_file(&tokenizer_path)?)
    } else {
        None
    };
    Ok(LoadedModel {
        config,
        model,
        tokenizer,
        chat_template: ChatTemplate::from_model_dir(dir)?,
        source: dir.to_path_buf(),
    })
}

fn load_gguf<B: Backend>(path: &Path, device: &B::Device) -> Result<LoadedModel<B>> {
    let file = GgufFile::open(path)?;
    let config = config_from_gguf(&file)?;
    let model = Transformer::from_weights(
        &config,
        &mut GgufWeights::new(&file, config.clone()),
        device,
    )?;
    let (tokenizer, chat_template) = gguf_text_side(&file)?;
    Ok(LoadedModel {
        config,
        model,
        tokenizer,
        chat_template,
        source: path.to_path_buf(),
    })
}

/// The tokenizer and chat template a GGUF file carries (without loading its weights).
pub fn gguf_text_side(file: &GgufFile) -> Result<(Option<TextTokenizer>, Option<ChatTemplate>)> {
    let tokenizer = if file.get("tokenizer.ggml.tokens").is_some() {
        Some(TextTokenizer::from_gguf(file)?)
    } else {
        None
    };
    let token_text = |key: &str| -> String {
        file.get(key)
            .and_then(MetadataValue::as_u64)
            .and_then(|id| tokenizer.as_ref()?.id_to_token(id as u32))
            .unwrap_or_default()
    };
    let chat_template = file
        .get("tokenizer.chat_template")
        .and_then(MetadataValue::as_str)
        .map(|src| {
            ChatTemplate::new(
                src,
                &token_text("tokenizer.ggml.bos_token_id"),
                &token_text("tokenizer.ggml.eos_token_id"),
            )
        })
        .transpose()?;
    Ok((tokenizer, chat_template))
}

/// Quantizes `model`, loaded from `checkpoint` with `config`, as `quantization` says. From a
/// GGUF file, the matrices it stores in block formats keep the file's values as they are (with
/// [`Quantization::To`], those stored in that format); a Hugging Face directory stores none, so
/// its matrices are quantized from their values, and [`Quantization::AsStored`] is refused.
pub fn quantize_from_checkpoint<B: Backend>(
    model: &mut Transformer<B>,
    checkpoint: &Path,
    config: &ModelConfig,
    quantization: Quantization,
) -> Result<QuantizeReport> {
    let report = match checkpoint_kind(checkpoint)? {
        CheckpointKind::Gguf => {
            let file = GgufFile::open(checkpoint)?;
            model.quantize_with(quantization, &mut GgufWeights::new(&file, config.clone()))
        }
        CheckpointKind::HuggingFaceDir => model.quantize_with(
            quantization,
            &mut NoStoredBlocks {
                path: checkpoint.to_path_buf(),
            },
        ),
    }?;
    // The f32 matrices the blocks replace are free now: give their memory back.
    crate::memory::release_freed_memory();
    Ok(report)
}

/// Keeps the matrices `checkpoint` stores in blocks as those blocks
/// ([`Quantization::AsStored`]); a checkpoint that stores none (every matrix in floats) leaves
/// the model in f32 and gives `None`.
pub fn keep_stored_blocks<B: Backend>(
    model: &mut Transformer<B>,
    checkpoint: &Path,
    config: &ModelConfig,
) -> Result<Option<QuantizeReport>> {
    match quantize_from_checkpoint(model, checkpoint, config, Quantization::AsStored) {
        Ok(report) => Ok(Some(report)),
        Err(ModelError::NothingStored { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// A checkpoint that stores every weight as floats (a Hugging Face directory).
struct NoStoredBlocks {
    path: PathBuf,
}

impl BlockSource for NoStoredBlocks {
    fn path(&self) -> &Path {
        &self.path
    }

    fn blocks(
        &mut self,
        _name: &str,
        _format: Option<crate::quantized::QuantFormat>,
    ) -> Result<Option<crate::quantized::QuantizedBlocks>> {
        Ok(None)
    }
}

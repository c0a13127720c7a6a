//! `TextTokenizer`: text ↔ token ids through the `tokenizers` crate, from a `tokenizer.json`
//! or from a GGUF file's vocabulary, plus the special token ids generation needs.

use std::path::{Path, PathBuf};

use crate::error::{ModelError, Result};
use crate::gguf::tokenizer::tokenizer_json_from_gguf;
use crate::gguf::GgufFile;

/// A loaded tokenizer and where it came from.
#[derive(Clone)]
pub struct TextTokenizer {
    inner: tokenizers::Tokenizer,
    source: PathBuf,
}

impl std::fmt::Debug for TextTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextTokenizer")
            .field("source", &self.source)
            .field("vocab_size", &self.vocab_size())
            .finish()
    }
}

impl TextTokenizer {
    /// Loads a `tokenizer.json`.
    pub fn from_file(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| ModelError::io(path, e))?;
        let inner =
            tokenizers::Tokenizer::from_bytes(&bytes).map_err(|e| ModelError::Tokenizer {
                path: path.to_path_buf(),
                message: e.to_string(),
            })?;
        Ok(Self {
            inner,
            source: path.to_path_buf(),
        })
    }

    /// Builds the tokenizer stored in a GGUF file's metadata.
    pub fn from_gguf(file: &GgufFile) -> Result<Self> {
        let json = tokenizer_json_from_gguf(file)?;
        let bytes = serde_json::to_vec(&json).map_err(|e| ModelError::Tokenizer {
            path: file.path().to_path_buf(),
            message: e.to_string(),
        })?;
        let inner =
            tokenizers::Tokenizer::from_bytes(&bytes).map_err(|e| ModelError::Tokenizer {
                path: file.path().to_path_buf(),
                message: e.to_string(),
            })?;
        Ok(Self {
            inner,
            source: file.path().to_path_buf(),
        })
    }

    /// Encodes text; special tokens written in the text (`<|im_start|>`) map to their ids.
    /// No BOS/EOS is added: chat templates write those themselves.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let enc = self
            .inner
            .encode(text, false)
            .map_err(|e| self.error(e.to_string()))?;
        Ok(enc.get_ids().to_vec())
    }

    /// Decodes ids to text; `skip_special` drops control tokens such as `<|im_end|>`.
    pub fn decode(&self, ids: &[u32], skip_special: bool) -> Result<String> {
        self.inner
            .decode(ids, skip_special)
            .map_err(|e| self.error(e.to_string()))
    }

    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    pub fn id_to_token(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// The underlying `tokenizers` object, for callers that need its full API.
    pub fn inner(&self) -> &tokenizers::Tokenizer {
        &self.inner
    }

    fn error(&self, message: String) -> ModelError {
        ModelError::Tokenizer {
            path: self.source.clone(),
            message,
        }
    }
}

//! Hugging Face safetensors checkpoints: one `model.safetensors` or a sharded set described by
//! `model.safetensors.index.json`; f32, f16 and bf16 tensors are widened to f32.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::Mmap;
use safetensors::{Dtype, SafeTensors};

use crate::error::{ModelError, Result};
use crate::host_tensor::{HostTensor, WeightSource};

/// Memory-mapped safetensors shards with a name → shard index.
pub struct SafetensorsSource {
    main_path: PathBuf,
    shards: Vec<(PathBuf, Mmap)>,
    shard_of: HashMap<String, usize>,
}

impl SafetensorsSource {
    /// Opens the weights of a model directory: the shard index if present, else `model.safetensors`.
    pub fn open_dir(dir: &Path) -> Result<Self> {
        let index = dir.join("model.safetensors.index.json");
        if index.exists() {
            Self::open_index(&index)
        } else {
            Self::open_files(&[dir.join("model.safetensors")])
        }
    }

    /// Opens a sharded checkpoint from its `model.safetensors.index.json`.
    pub fn open_index(index_path: &Path) -> Result<Self> {
        let text =
            std::fs::read_to_string(index_path).map_err(|e| ModelError::io(index_path, e))?;
        let value: serde_json::Value =
            serde_json::from_str(&text).map_err(|source| ModelError::Json {
                path: index_path.to_path_buf(),
                source,
            })?;
        let map = value
            .get("weight_map")
            .and_then(|m| m.as_object())
            .ok_or_else(|| ModelError::Safetensors {
                path: index_path.to_path_buf(),
                message: "index has no \"weight_map\" object".into(),
            })?;
        let dir = index_path.parent().unwrap_or(Path::new("."));
        let mut files: Vec<String> = map
            .values()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect();
        files.sort();
        files.dedup();
        let paths: Vec<PathBuf> = files.iter().map(|f| dir.join(f)).collect();
        let mut source = Self::open_files(&paths)?;
        source.main_path = index_path.to_path_buf();
        Ok(source)
    }

    /// Opens the given safetensors files; tensor names must not repeat across them.
    pub fn open_files(paths: &[PathBuf]) -> Result<Self> {
        let mut shards = Vec::with_capacity(paths.len());
        let mut shard_of = HashMap::new();
        for (i, path) in paths.iter().enumerate() {
            let file = File::open(path).map_err(|e| ModelError::io(path, e))?;
            // SAFETY: the mapping is read-only and the checkpoint is not modified while loaded.
            let mmap = unsafe { Mmap::map(&file) }.map_err(|e| ModelError::io(path, e))?;
            let parsed = SafeTensors::deserialize(&mmap).map_err(|e| ModelError::Safetensors {
                path: path.clone(),
                message: e.to_string(),
            })?;
            for name in parsed.names() {
                shard_of.insert(name.to_string(), i);
            }
            shards.push((path.clone(), mmap));
        }
        Ok(Self {
            main_path: paths.first().cloned().unwrap_or_default(),
            shards,
            shard_of,
        })
    }

    /// All tensor names in the checkpoint.
    pub fn names(&self) -> Vec<&str> {
        self.shard_of.keys().map(String::as_str).collect()
    }
}

impl WeightSource for SafetensorsSource {
    fn path(&self) -> &Path {
        &self.main_path
    }

    fn load(&mut self, name: &str) -> Result<Option<HostTensor>> {
        let Some(&shard) = self.shard_of.get(name) else {
            return Ok(None);
        };
        let (path, mmap) = &self.shards[shard];
        let st = SafeTensors::deserialize(mmap).map_err(|e| ModelError::Safetensors {
            path: path.clone(),
            message: e.to_string(),
        })?;
        let view = st.tensor(name).map_err(|e| ModelError::Safetensors {
            path: path.clone(),
            message: e.to_string(),
        })?;
        let bytes = view.data();
        let data: Vec<f32> = match view.dtype() {
            Dtype::F32 => bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            Dtype::F16 => bytes
                .chunks_exact(2)
                .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            Dtype::BF16 => bytes
                .chunks_exact(2)
                .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            other => {
                return Err(ModelError::UnsupportedDtype {
                    path: path.clone(),
                    name: name.into(),
                    dtype: format!("{other:?}"),
                })
            }
        };
        Ok(Some(HostTensor::new(view.shape().to_vec(), data)))
    }
}

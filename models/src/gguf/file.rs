//! Reading a GGUF file: header, metadata, tensor directory, and tensor data by name.
//!
//! The file is memory-mapped; every read is bounds-checked, so a truncated or corrupt file gives
//! a `ModelError` naming the file and the part that could not be read, never a panic.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::Mmap;

use super::dequant::{dequantize, GgmlType};
use super::metadata::MetadataValue;
use crate::error::{ModelError, Result};
use crate::host_tensor::HostTensor;

const MAGIC: &[u8; 4] = b"GGUF";
const DEFAULT_ALIGNMENT: u64 = 32;
/// Upper bounds that catch corrupt counts before they turn into huge allocations.
const MAX_COUNT: u64 = 1 << 24;
const MAX_DIMS: u32 = 8;

/// One entry of the tensor directory.
#[derive(Debug, Clone)]
pub struct GgufTensorInfo {
    pub name: String,
    /// Dimensions in GGUF order: `dims[0]` varies fastest.
    pub dims: Vec<u64>,
    pub ty: GgmlType,
    /// Absolute byte offset of the data in the file.
    pub offset: u64,
}

impl GgufTensorInfo {
    pub fn numel(&self) -> u64 {
        self.dims.iter().product()
    }

    /// The shape in PyTorch order (slowest dimension first).
    pub fn torch_shape(&self) -> Vec<usize> {
        self.dims.iter().rev().map(|&d| d as usize).collect()
    }
}

/// A parsed, memory-mapped GGUF file.
pub struct GgufFile {
    path: PathBuf,
    mmap: Mmap,
    pub version: u32,
    pub metadata: HashMap<String, MetadataValue>,
    pub tensors: Vec<GgufTensorInfo>,
    index: HashMap<String, usize>,
}

struct Cursor<'a> {
    path: &'a Path,
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: u64, what: &str) -> Result<&'a [u8]> {
        let start = self.pos as u64;
        let end = start.saturating_add(n);
        if end > self.bytes.len() as u64 {
            return Err(ModelError::Truncated {
                path: self.path.to_path_buf(),
                what: what.to_string(),
                start,
                end,
                len: self.bytes.len() as u64,
            });
        }
        let slice = &self.bytes[self.pos..end as usize];
        self.pos = end as usize;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N]> {
        let s = self.take(N as u64, what)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    fn u32(&mut self, what: &str) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: &str) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    fn count(&mut self, what: &str) -> Result<u64> {
        let n = self.u64(what)?;
        if n > MAX_COUNT {
            return Err(self.corrupt(format!("{what} is {n}, which is implausibly large")));
        }
        Ok(n)
    }

    fn string(&mut self, what: &str) -> Result<String> {
        let len = self.u64(what)?;
        let bytes = self.take(len, what)?;
        String::from_utf8(bytes.to_vec())
            .map_err(|_| self.corrupt(format!("{what} is not valid UTF-8")))
    }

    fn corrupt(&self, message: String) -> ModelError {
        ModelError::Gguf {
            path: self.path.to_path_buf(),
            message: format!("{message} (at byte {})", self.pos),
        }
    }

    fn value(&mut self, ty: u32, key: &str) -> Result<MetadataValue> {
        Ok(match ty {
            0 => MetadataValue::U8(self.array::<1>(key)?[0]),
            1 => MetadataValue::I8(self.array::<1>(key)?[0] as i8),
            2 => MetadataValue::U16(u16::from_le_bytes(self.array(key)?)),
            3 => MetadataValue::I16(i16::from_le_bytes(self.array(key)?)),
            4 => MetadataValue::U32(self.u32(key)?),
            5 => MetadataValue::I32(i32::from_le_bytes(self.array(key)?)),
            6 => MetadataValue::F32(f32::from_le_bytes(self.array(key)?)),
            7 => MetadataValue::Bool(self.array::<1>(key)?[0] != 0),
            8 => MetadataValue::String(self.string(key)?),
            9 => {
                let item_ty = self.u32(key)?;
                let n = self.count(key)?;
                let mut items = Vec::with_capacity(n.min(1 << 16) as usize);
                for _ in 0..n {
                    items.push(self.value(item_ty, key)?);
                }
                MetadataValue::Array(items)
            }
            10 => MetadataValue::U64(self.u64(key)?),
            11 => MetadataValue::I64(i64::from_le_bytes(self.array(key)?)),
            12 => MetadataValue::F64(f64::from_le_bytes(self.array(key)?)),
            other => {
                return Err(self.corrupt(format!("metadata {key:?} has unknown value type {other}")))
            }
        })
    }
}

impl GgufFile {
    /// Opens and parses a GGUF file (tensor data is read lazily).
    pub fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).map_err(|e| ModelError::io(path, e))?;
        // SAFETY: read-only mapping of a file that is not modified while it is open.
        let mmap = unsafe { Mmap::map(&file) }.map_err(|e| ModelError::io(path, e))?;
        let (version, metadata, tensors) = parse(path, &mmap)?;
        let index = tensors
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name.clone(), i))
            .collect();
        Ok(Self {
            path: path.to_path_buf(),
            mmap,
            version,
            metadata,
            tensors,
            index,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn tensor_info(&self, name: &str) -> Option<&GgufTensorInfo> {
        self.index.get(name).map(|&i| &self.tensors[i])
    }

    /// The raw bytes of a tensor.
    pub fn tensor_bytes(&self, info: &GgufTensorInfo) -> Result<&[u8]> {
        let numel = usize::try_from(info.numel()).map_err(|_| self.corrupt("tensor too large"))?;
        let (block, _) =
            info.ty
                .block_layout()
                .ok_or_else(|| ModelError::UnsupportedQuantization {
                    path: self.path.clone(),
                    name: info.name.clone(),
                    kind: info.ty.name(),
                })?;
        // Blocks run along a row (GGUF's first dimension), so each row must be whole blocks.
        let row = info.dims.first().copied().unwrap_or(1);
        let size = match info.ty.byte_size(numel) {
            Some(size) if row % block as u64 == 0 => size,
            _ => {
                return Err(self.corrupt(&format!(
                    "tensor {:?} ({}) has rows of {row} values, not a whole number of its \
                     {block}-value blocks",
                    info.name,
                    info.ty.name()
                )))
            }
        };
        let end = info.offset.saturating_add(size as u64);
        if end > self.mmap.len() as u64 {
            return Err(ModelError::Truncated {
                path: self.path.clone(),
                what: format!("tensor {:?}", info.name),
                start: info.offset,
                end,
                len: self.mmap.len() as u64,
            });
        }
        Ok(&self.mmap[info.offset as usize..end as usize])
    }

    /// Loads a tensor by its GGUF name, dequantized to f32, in PyTorch shape order.
    pub fn load_f32(&self, name: &str) -> Result<Option<HostTensor>> {
        let Some(info) = self.tensor_info(name) else {
            return Ok(None);
        };
        let bytes = self.tensor_bytes(info)?;
        let numel = info.numel() as usize;
        let data = dequantize(info.ty, bytes, numel).ok_or_else(|| {
            ModelError::UnsupportedQuantization {
                path: self.path.clone(),
                name: info.name.clone(),
                kind: info.ty.name(),
            }
        })?;
        Ok(Some(HostTensor::new(info.torch_shape(), data)))
    }

    pub fn get(&self, key: &str) -> Option<&MetadataValue> {
        self.metadata.get(key)
    }

    /// A required metadata value; a missing key is an error naming the file.
    pub fn require(&self, key: &str) -> Result<&MetadataValue> {
        self.metadata
            .get(key)
            .ok_or_else(|| self.corrupt(&format!("missing metadata key {key:?}")))
    }

    pub(crate) fn corrupt(&self, message: &str) -> ModelError {
        ModelError::Gguf {
            path: self.path.clone(),
            message: message.to_string(),
        }
    }
}

type Parsed = (u32, HashMap<String, MetadataValue>, Vec<GgufTensorInfo>);

fn parse(path: &Path, bytes: &[u8]) -> Result<Parsed> {
    let mut cur = Cursor {
        path,
        bytes,
        pos: 0,
    };
    let magic = cur.array::<4>("magic number")?;
    if &magic != MAGIC {
        return Err(cur.corrupt(format!("bad magic number {magic:?}, expected \"GGUF\"")));
    }
    let version = cur.u32("version")?;
    if !(2..=3).contains(&version) {
        return Err(cur.corrupt(format!(
            "unsupported GGUF version {version} (supported: 2, 3)"
        )));
    }
    let n_tensors = cur.count("tensor count")?;
    let n_kv = cur.count("metadata count")?;
    let mut metadata = HashMap::new();
    for _ in 0..n_kv {
        let key = cur.string("metadata key")?;
        let ty = cur.u32(&key)?;
        let value = cur.value(ty, &key)?;
        metadata.insert(key, value);
    }
    let mut tensors = Vec::with_capacity(n_tensors as usize);
    for _ in 0..n_tensors {
        let name = cur.string("tensor name")?;
        let n_dims = cur.u32(&name)?;
        if n_dims == 0 || n_dims > MAX_DIMS {
            return Err(cur.corrupt(format!("tensor {name:?} has {n_dims} dimensions")));
        }
        let dims = (0..n_dims)
            .map(|_| cur.u64(&name))
            .collect::<Result<Vec<_>>>()?;
        if dims
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d))
            .is_none()
        {
            return Err(cur.corrupt(format!(
                "tensor {name:?} has overflowing dimensions {dims:?}"
            )));
        }
        let ty = GgmlType::from_id(cur.u32(&name)?);
        let offset = cur.u64(&name)?;
        tensors.push(GgufTensorInfo {
            name,
            dims,
            ty,
            offset,
        });
    }
    let alignment = metadata
        .get("general.alignment")
        .and_then(MetadataValue::as_u64)
        .unwrap_or(DEFAULT_ALIGNMENT);
    if alignment == 0 || !alignment.is_power_of_two() {
        return Err(cur.corrupt(format!(
            "general.alignment {alignment} is not a power of two"
        )));
    }
    let data_start = (cur.pos as u64).div_ceil(alignment) * alignment;
    for t in &mut tensors {
        t.offset = data_start
            .checked_add(t.offset)
            .ok_or_else(|| cur.corrupt(format!("tensor {:?} offset overflows", t.name)))?;
    }
    Ok((version, metadata, tensors))
}

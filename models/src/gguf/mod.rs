//! GGUF, the llama.cpp single-file format: parsing (`file`), metadata values (`metadata`),
//! block dequantization (`dequant`, `dequant_k` for the K-quants), the Llama weight mapping (`llama`) and the tokenizer
//! rebuilt from the file's own vocabulary (`tokenizer`).

pub mod dequant;
pub mod dequant_k;
pub mod file;
pub mod llama;
pub mod metadata;
pub mod tokenizer;
pub mod writer;

pub use file::{GgufFile, GgufTensorInfo};
pub use metadata::MetadataValue;

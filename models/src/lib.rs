//! Decoder-only language models written from scratch in Burn, and the files they come in.
//!
//! - [`Transformer`]: Llama, Qwen2 (q/k/v bias) and Qwen3 (per-head q/k RMSNorm) in one
//!   implementation, with rotate-half RoPE, grouped-query attention, SwiGLU and a tied or
//!   untied LM head. Each batch row carries its own positions.
//! - [`AttentionContext`]: how a model hands its keys and values to whoever caches them; this
//!   crate knows nothing about batching or caching policy.
//! - Loading: Hugging Face directories ([`SafetensorsSource`], [`ModelConfig`]) and GGUF files
//!   ([`gguf`]), through [`load_model`].
//! - Quantized weights: [`Transformer::quantize`] keeps projections in GGUF's Q8_0/Q4_1 blocks
//!   ([`QuantizedBlocks`]), multiplied by kernels that read the blocks directly;
//!   [`quantize_from_checkpoint`] takes a GGUF file's own blocks as they are.
//! - [`host_decode`]: decode steps on the CPU as host loops over reused buffers, without a
//!   Burn op per layer operation.
//! - Text: [`TextTokenizer`] (the `tokenizers` crate) and [`ChatTemplate`] (`minijinja`).
//! - [`word_level`]: tiny models whose tokens are whole programs, for tests and examples.

mod adapters;
pub mod attention_context;
pub mod chat_template;
pub mod config;
pub mod error;
pub mod export;
pub mod gguf;
pub mod host_decode;
pub mod host_tensor;
pub mod kernels;
pub mod layers;
pub mod load;
pub mod memory;
pub mod quantized;
mod quantized_gguf;
pub mod registry;
pub mod safetensors_source;
pub mod tokenizer;
pub mod transformer;
pub mod word_level;

pub use attention_context::{
    attention_grouped, attention_reference, AttentionContext, FullSequence,
};
pub use chat_template::{ChatMessage, ChatOptions, ChatTemplate};
pub use config::{Architecture, ModelConfig, RopeScaling};
pub use error::{ModelError, Result};
pub use export::save_hf_checkpoint;
pub use host_tensor::{BlockSource, HostTensor, WeightSource};
pub use layers::lora::{LoraConfig, LoraTarget};
pub use load::{
    checkpoint_kind, gguf_text_side, keep_stored_blocks, load_model, quantize_from_checkpoint,
    CheckpointKind, LoadedModel,
};
pub use memory::release_freed_memory;
pub use quantized::{QuantFormat, Quantization, QuantizedBlocks};
pub use safetensors_source::SafetensorsSource;
pub use tokenizer::TextTokenizer;
pub use transformer::{QuantizeReport, Transformer};
pub use word_level::{save_word_level_model, WORD_LEVEL_SPECIALS};

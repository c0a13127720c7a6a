//! The building blocks of the decoder, each a Burn module with its forward pass.

pub mod attention;
pub mod decoder_layer;
pub mod linear;
pub mod lora;
pub mod mlp;
pub mod rms_norm;
pub mod rope;

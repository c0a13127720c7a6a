//! Paged KV memory, host side: which block of which agent holds which tokens.
//!
//! - [`block_pool`]: one byte budget shared by all agents, each agent's blocks sized for its own
//!   model; ref-counted blocks, an O(1) free list, LRU eviction of cached blocks nobody uses.
//! - [`prefix_index`]: chained block hashes keyed by agent, weights version and token ids, so a
//!   request whose prompt starts like an earlier sequence reuses its full blocks.
//! - [`manager`]: sequences over blocks — start (with prefix reuse), reserve room (copy-on-write
//!   of a shared partial last block), commit computed tokens, fork, release.
//!
//! The tensors themselves live in [`crate::paged`]; this module never touches them.

pub mod block_pool;
pub mod manager;
pub mod prefix_index;

pub use block_pool::{AgentId, BlockId, BlockPool, OutOfBlocks};
pub use manager::{BlockCopy, KvManager, KvSequence};

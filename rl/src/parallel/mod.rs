//! Data-parallel learners on burn-collective: several peers (devices in one process, and
//! processes on several machines) each hold a replica of an agent's learner, compute the
//! gradients of their share of an update's samples, sum them with an all-reduce and apply the
//! same AdamW step. Across processes the round's trees are grown in shards and gathered in
//! one order, so every peer trains on the same batches.
//!
//! - [`settings`]: the layout ([`Parallel`], [`NodeSettings`]) from flags or environment.
//! - [`peers`]: a registered group of peers ([`PeerGroup`]): all-reduce with a time limit,
//!   gathering bytes from every node, the coordinator on node 0.
//! - [`flat_grads`]: an update's gradients as one flat tensor and back.

pub mod error;
pub mod flat_grads;
pub mod peers;
pub mod settings;

pub use error::ParallelError;
pub use peers::PeerGroup;
pub use settings::{NodeSettings, Parallel, DEFAULT_PEER_TIMEOUT};

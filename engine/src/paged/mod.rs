//! Paged KV memory, tensor side: per-agent storage addressed by slot (`block · block_size +
//! offset`), and attention whose keys are gathered through per-row slot tables.

pub mod attention;
pub mod storage;

pub use attention::{PagedStep, StepLayout};
pub use storage::{kv_bytes_per_token, AgentKvStorage};

//! Dedicated user ids for sandboxed runs. Each concurrent run gets its own unprivileged uid
//! (and gid of the same number), so the per-user process limit counts only that run's
//! processes and a program can signal nothing but its own processes.
//!
//! Ids come from a block chosen per host process (from its pid) so that two processes using
//! the sandbox at once are unlikely to share ids; within a process a counter cycles through
//! the block.

use std::sync::atomic::{AtomicU32, Ordering};

/// Ids handed out per host process.
const BLOCK: u32 = 4096;
/// First id of the range; far above ordinary system and login accounts.
const RANGE_START: u32 = 1_000_000;
/// Number of blocks; keeps every id below 2^31.
const BLOCKS: u32 = 100_000;

static NEXT: AtomicU32 = AtomicU32::new(0);

/// The first id of this process's block, or `base` when configured.
pub(crate) fn block_start(base: Option<u32>) -> u32 {
    base.unwrap_or(RANGE_START + (std::process::id() % BLOCKS) * BLOCK)
}

/// The next id of the block starting at `start`.
pub(crate) fn next_uid(start: u32) -> u32 {
    start + NEXT.fetch_add(1, Ordering::Relaxed) % BLOCK
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_stay_in_the_block_and_below_2_pow_31() {
        let start = block_start(None);
        assert!(start >= RANGE_START);
        assert!(u64::from(start) + u64::from(BLOCK) < 1 << 31);
        for _ in 0..10 {
            let id = next_uid(start);
            assert!(id >= start && id < start + BLOCK);
        }
        assert_eq!(block_start(Some(5000)), 5000);
    }
}

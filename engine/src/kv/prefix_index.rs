//! Prefix reuse by chained block hashes: the key of a full block is a hash of the previous
//! block's key, the agent, the agent's weights version and the block's token ids. A sequence's
//! first `k` full blocks are found by walking the chain from the start of its tokens.
//!
//! Entries also keep their parent key and tokens, and lookups compare them, so a hash collision
//! can never hand out the wrong keys and values.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};

use super::block_pool::{AgentId, BlockId};

/// The chain's starting key.
pub const ROOT_KEY: u64 = 0x6d61_7273_325f_6b76;

/// The key of a full block whose predecessor has key `parent`.
pub fn block_key(parent: u64, agent: AgentId, version: u64, tokens: &[u32]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    parent.hash(&mut h);
    agent.0.hash(&mut h);
    version.hash(&mut h);
    tokens.hash(&mut h);
    h.finish()
}

#[derive(Debug)]
struct Entry {
    block: BlockId,
    parent: u64,
    version: u64,
    tokens: Vec<u32>,
}

/// Registered full blocks of all agents.
#[derive(Debug, Default)]
pub struct PrefixIndex {
    entries: HashMap<(AgentId, u64), Entry>,
    key_of_block: HashMap<(AgentId, BlockId), u64>,
}

impl PrefixIndex {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The block registered under `key`, if its parent and tokens match exactly.
    pub fn lookup(
        &self,
        agent: AgentId,
        key: u64,
        parent: u64,
        version: u64,
        tokens: &[u32],
    ) -> Option<BlockId> {
        self.entries
            .get(&(agent, key))
            .filter(|e| e.parent == parent && e.version == version && e.tokens == tokens)
            .map(|e| e.block)
    }

    /// Registers a block; returns false (and changes nothing) if the key is taken or the block
    /// is already registered.
    pub fn insert(
        &mut self,
        agent: AgentId,
        key: u64,
        parent: u64,
        version: u64,
        tokens: &[u32],
        block: BlockId,
    ) -> bool {
        if self.entries.contains_key(&(agent, key))
            || self.key_of_block.contains_key(&(agent, block))
        {
            return false;
        }
        self.entries.insert(
            (agent, key),
            Entry {
                block,
                parent,
                version,
                tokens: tokens.to_vec(),
            },
        );
        self.key_of_block.insert((agent, block), key);
        true
    }

    /// Forgets a block (evicted or invalidated).
    pub fn remove_block(&mut self, agent: AgentId, block: BlockId) {
        if let Some(key) = self.key_of_block.remove(&(agent, block)) {
            self.entries.remove(&(agent, key));
        }
    }

    /// Forgets every block of `agent` registered under a version other than `version`;
    /// returns them.
    pub fn remove_stale(&mut self, agent: AgentId, version: u64) -> Vec<BlockId> {
        let stale: Vec<(u64, BlockId)> = self
            .entries
            .iter()
            .filter(|((a, _), e)| *a == agent && e.version != version)
            .map(|((_, k), e)| (*k, e.block))
            .collect();
        for (key, block) in &stale {
            self.entries.remove(&(agent, *key));
            self.key_of_block.remove(&(agent, *block));
        }
        stale.into_iter().map(|(_, b)| b).collect()
    }

    pub fn is_registered(&self, agent: AgentId, block: BlockId) -> bool {
        self.key_of_block.contains_key(&(agent, block))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_depend_on_everything() {
        let a = AgentId(0);
        let k = block_key(ROOT_KEY, a, 0, &[1, 2]);
        assert_ne!(k, block_key(ROOT_KEY, AgentId(1), 0, &[1, 2]));
        assert_ne!(k, block_key(ROOT_KEY, a, 1, &[1, 2]));
        assert_ne!(k, block_key(ROOT_KEY, a, 0, &[2, 1]));
        assert_ne!(k, block_key(k, a, 0, &[1, 2]));
        assert_eq!(k, block_key(ROOT_KEY, a, 0, &[1, 2]));
    }

    #[test]
    fn lookup_verifies_tokens_and_stale_versions_go() {
        let mut idx = PrefixIndex::new();
        let a = AgentId(0);
        let k = block_key(ROOT_KEY, a, 0, &[1, 2]);
        assert!(idx.insert(a, k, ROOT_KEY, 0, &[1, 2], 7));
        assert!(!idx.insert(a, k, ROOT_KEY, 0, &[1, 2], 8));
        assert_eq!(idx.lookup(a, k, ROOT_KEY, 0, &[1, 2]), Some(7));
        assert_eq!(
            idx.lookup(a, k, ROOT_KEY, 0, &[1, 3]),
            None,
            "a forged collision is refused"
        );
        assert_eq!(idx.remove_stale(a, 1), vec![7]);
        assert!(idx.is_empty());
    }
}

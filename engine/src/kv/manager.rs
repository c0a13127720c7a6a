//! Sequences over paged blocks: the bookkeeping the scheduler calls between forward passes.
//!
//! A [`KvSequence`] lists the blocks holding its tokens' keys and values (token `p` lives in
//! slot `p % block_size` of block `blocks[p / block_size]`). The manager starts sequences with
//! the longest cached prefix, reserves room before a forward pass (copy-on-write when the last,
//! partially filled block is shared with a fork), registers full blocks for reuse after the pass,
//! forks and releases. It never touches tensors: copies it asks for come back as [`BlockCopy`].

use super::block_pool::{AgentId, BlockId, BlockPool, OutOfBlocks};
use super::prefix_index::{block_key, PrefixIndex, ROOT_KEY};

/// The blocks and tokens of one sequence of one agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvSequence {
    pub agent: AgentId,
    /// Weights version the stored keys/values were computed with.
    pub version: u64,
    pub blocks: Vec<BlockId>,
    /// Tokens whose keys and values are stored, in position order.
    pub tokens: Vec<u32>,
    /// Chain keys of the full blocks hashed so far.
    keys: Vec<u64>,
}

impl KvSequence {
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }
}

/// Copy the first `slots` slots of block `src` into block `dst` (same agent) before writing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockCopy {
    pub agent: AgentId,
    pub src: BlockId,
    pub dst: BlockId,
    pub slots: usize,
}

/// Block pool + prefix index + per-agent weights versions.
#[derive(Debug)]
pub struct KvManager {
    pool: BlockPool,
    index: PrefixIndex,
    block_size: usize,
    versions: Vec<u64>,
    /// Register full blocks for reuse and look prompts up (on by default).
    pub prefix_reuse: bool,
}

impl KvManager {
    pub fn new(budget_bytes: usize, block_size: usize) -> Self {
        assert!(block_size > 0);
        Self {
            pool: BlockPool::new(budget_bytes),
            index: PrefixIndex::new(),
            block_size,
            versions: Vec::new(),
            prefix_reuse: true,
        }
    }

    /// Registers an agent whose keys and values take `bytes_per_token` per token (all layers).
    pub fn add_agent(&mut self, bytes_per_token: usize) -> AgentId {
        self.versions.push(0);
        self.pool.add_agent(bytes_per_token * self.block_size)
    }

    pub fn block_size(&self) -> usize {
        self.block_size
    }

    pub fn pool(&self) -> &BlockPool {
        &self.pool
    }

    pub fn cached_blocks(&self) -> usize {
        self.index.len()
    }

    pub fn version(&self, agent: AgentId) -> u64 {
        self.versions[agent.0]
    }

    /// New weights for `agent`: cached blocks of older versions become unreachable and those no
    /// sequence uses are freed at once.
    pub fn bump_version(&mut self, agent: AgentId) -> u64 {
        let next = self.versions[agent.0] + 1;
        self.bump_version_to(agent, next)
    }

    /// As [`KvManager::bump_version`], to `version` (or one past the current version if
    /// `version` is not newer): a resumed run numbers its weights as the run it continues.
    pub fn bump_version_to(&mut self, agent: AgentId, version: u64) -> u64 {
        self.versions[agent.0] = version.max(self.versions[agent.0] + 1);
        let version = self.versions[agent.0];
        for block in self.index.remove_stale(agent, version) {
            self.pool.uncache(agent, block);
        }
        version
    }

    /// Starts a sequence for `prompt`, reusing the longest run of cached full blocks. At least
    /// the last prompt token is left to compute (its logits are needed).
    pub fn start(&mut self, agent: AgentId, prompt: &[u32]) -> KvSequence {
        let version = self.versions[agent.0];
        let mut seq = KvSequence {
            agent,
            version,
            blocks: Vec::new(),
            tokens: Vec::new(),
            keys: Vec::new(),
        };
        if !self.prefix_reuse {
            return seq;
        }
        let bs = self.block_size;
        let reusable = prompt.len().saturating_sub(1) / bs;
        let mut parent = ROOT_KEY;
        for i in 0..reusable {
            let tokens = &prompt[i * bs..(i + 1) * bs];
            let key = block_key(parent, agent, version, tokens);
            let Some(block) = self.index.lookup(agent, key, parent, version, tokens) else {
                break;
            };
            self.pool.retain(agent, block);
            seq.blocks.push(block);
            seq.keys.push(key);
            seq.tokens.extend_from_slice(tokens);
            parent = key;
        }
        seq
    }

    /// Makes room for `new_tokens` more tokens. On failure nothing changes.
    pub fn reserve(
        &mut self,
        seq: &mut KvSequence,
        new_tokens: usize,
    ) -> Result<Vec<BlockCopy>, OutOfBlocks> {
        let bs = self.block_size;
        let len = seq.len();
        let needed_blocks = (len + new_tokens).div_ceil(bs);
        let mut copies = Vec::new();
        let mut fresh = Vec::new();
        let cow = !len.is_multiple_of(bs)
            && new_tokens > 0
            && self.pool.ref_count(seq.agent, seq.blocks[len / bs]) > 1;
        let count = needed_blocks.saturating_sub(seq.blocks.len()) + usize::from(cow);
        for _ in 0..count {
            let index = &mut self.index;
            match self
                .pool
                .allocate(seq.agent, |a, b| index.remove_block(a, b))
            {
                Ok(b) => fresh.push(b),
                Err(e) => {
                    for b in fresh {
                        self.pool.release(seq.agent, b);
                    }
                    return Err(e);
                }
            }
        }
        let mut fresh = fresh.into_iter();
        if cow {
            let last = len / bs;
            let dst = fresh.next().expect("allocated above");
            copies.push(BlockCopy {
                agent: seq.agent,
                src: seq.blocks[last],
                dst,
                slots: len % bs,
            });
            self.pool.release(seq.agent, seq.blocks[last]);
            seq.blocks[last] = dst;
        }
        seq.blocks.extend(fresh);
        Ok(copies)
    }

    /// Records that the keys and values of `tokens` were written after the sequence's current
    /// end, and registers the blocks this completes.
    pub fn commit(&mut self, seq: &mut KvSequence, tokens: &[u32]) {
        assert!(
            seq.len() + tokens.len() <= seq.blocks.len() * self.block_size,
            "commit beyond reserved blocks"
        );
        seq.tokens.extend_from_slice(tokens);
        if !self.prefix_reuse || seq.version != self.versions[seq.agent.0] {
            return;
        }
        let bs = self.block_size;
        while seq.keys.len() < seq.len() / bs {
            let i = seq.keys.len();
            let parent = seq.keys.last().copied().unwrap_or(ROOT_KEY);
            let block_tokens = &seq.tokens[i * bs..(i + 1) * bs];
            let key = block_key(parent, seq.agent, seq.version, block_tokens);
            let block = seq.blocks[i];
            if !self.index.is_registered(seq.agent, block)
                && self
                    .index
                    .insert(seq.agent, key, parent, seq.version, block_tokens, block)
            {
                self.pool.mark_cached(seq.agent, block);
            }
            seq.keys.push(key);
        }
    }

    /// A second sequence sharing every block of `seq` (copy-on-write on the partial last block).
    pub fn fork(&mut self, seq: &KvSequence) -> KvSequence {
        for &b in &seq.blocks {
            self.pool.retain(seq.agent, b);
        }
        seq.clone()
    }

    /// Gives the sequence's blocks back; registered ones stay cached until evicted.
    pub fn release(&mut self, seq: KvSequence) {
        for b in seq.blocks {
            self.pool.release(seq.agent, b);
        }
    }

    /// Slot of position `pos` in the agent's storage.
    pub fn slot(&self, seq: &KvSequence, pos: usize) -> usize {
        seq.blocks[pos / self.block_size] as usize * self.block_size + pos % self.block_size
    }

    pub fn check_invariants(&self) -> Result<(), String> {
        self.pool.check_invariants()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manager(blocks: usize) -> (KvManager, AgentId) {
        let mut m = KvManager::new(blocks * 4 * 10, 4);
        let a = m.add_agent(10);
        (m, a)
    }

    #[test]
    fn a_finished_sequence_is_reused_by_a_longer_prompt() {
        let (mut m, a) = manager(8);
        let prompt: Vec<u32> = (0..10).collect();
        let mut s = m.start(a, &prompt);
        assert!(s.is_empty());
        m.reserve(&mut s, 10).unwrap();
        m.commit(&mut s, &prompt);
        m.release(s);
        assert_eq!(m.cached_blocks(), 2);
        let longer: Vec<u32> = (0..15).collect();
        let s2 = m.start(a, &longer);
        assert_eq!(s2.len(), 8, "two full blocks reused");
        let same = m.start(a, &prompt[..8]);
        assert_eq!(same.len(), 4, "the last prompt token is always recomputed");
        m.release(s2);
        m.release(same);
        m.check_invariants().unwrap();
    }

    #[test]
    fn fork_copies_the_shared_partial_block_on_write() {
        let (mut m, a) = manager(8);
        let mut s = m.start(a, &[1, 2, 3, 4, 5, 6]);
        m.reserve(&mut s, 6).unwrap();
        m.commit(&mut s, &[1, 2, 3, 4, 5, 6]);
        let mut child = m.fork(&s);
        let copies = m.reserve(&mut child, 1).unwrap();
        assert_eq!(copies.len(), 1);
        assert_eq!((copies[0].src, copies[0].slots), (s.blocks[1], 2));
        assert_eq!(child.blocks[0], s.blocks[0], "full blocks stay shared");
        assert_ne!(child.blocks[1], s.blocks[1]);
        m.release(s);
        m.release(child);
        m.check_invariants().unwrap();
    }

    #[test]
    fn a_new_weights_version_makes_old_blocks_unreachable() {
        let (mut m, a) = manager(8);
        let prompt: Vec<u32> = (0..9).collect();
        let mut s = m.start(a, &prompt);
        m.reserve(&mut s, 9).unwrap();
        m.commit(&mut s, &prompt);
        m.release(s);
        assert_eq!(m.pool().used_bytes(), 2 * 40);
        m.bump_version(a);
        assert_eq!(m.pool().used_bytes(), 0, "stale cached blocks are freed");
        assert!(m.start(a, &prompt).is_empty());
        m.check_invariants().unwrap();
    }

    #[test]
    fn failed_reserve_changes_nothing() {
        let (mut m, a) = manager(2);
        let mut s = m.start(a, &[1]);
        assert!(m.reserve(&mut s, 12).is_err());
        assert!(s.blocks.is_empty());
        assert_eq!(m.pool().used_bytes(), 0);
        m.check_invariants().unwrap();
    }
}

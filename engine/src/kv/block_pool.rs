//! Block allocation under one byte budget shared by several agents.
//!
//! Each agent has its own id space of blocks (ids index that agent's KV storage) and its own
//! block size in bytes. A block is in one of three states:
//! - **free**: on its agent's free list, not counted against the budget;
//! - **referenced**: ref count > 0;
//! - **cached**: ref count 0 but still holding a registered prefix; counted against the budget,
//!   evictable in least-recently-used order.
//!
//! Complexity: allocate and free are O(1) without eviction; eviction and releasing into the
//! cache are O(log n) (an ordered LRU set).

use std::collections::BTreeSet;

/// An agent hosted by the engine (index in registration order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AgentId(pub usize);

/// A block index within one agent's storage.
pub type BlockId = u32;

/// No block could be allocated: the budget is spent on referenced blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("KV cache full: no free or evictable block for agent {0:?}")]
pub struct OutOfBlocks(pub AgentId);

#[derive(Debug)]
struct AgentBlocks {
    bytes_per_block: usize,
    ref_counts: Vec<u32>,
    /// Whether a block holds a registered prefix (so it is kept when unreferenced).
    cached: Vec<bool>,
    last_used: Vec<u64>,
    free: Vec<BlockId>,
    /// Number of non-free blocks.
    in_use: usize,
}

/// Blocks of all agents under one budget.
#[derive(Debug)]
pub struct BlockPool {
    budget_bytes: usize,
    used_bytes: usize,
    agents: Vec<AgentBlocks>,
    /// Unreferenced cached blocks by (last use, agent, block).
    evictable: BTreeSet<(u64, usize, BlockId)>,
    clock: u64,
}

impl BlockPool {
    pub fn new(budget_bytes: usize) -> Self {
        Self {
            budget_bytes,
            used_bytes: 0,
            agents: Vec::new(),
            evictable: BTreeSet::new(),
            clock: 0,
        }
    }

    /// Registers an agent whose blocks take `bytes_per_block` each.
    pub fn add_agent(&mut self, bytes_per_block: usize) -> AgentId {
        assert!(bytes_per_block > 0, "a block takes memory");
        self.agents.push(AgentBlocks {
            bytes_per_block,
            ref_counts: Vec::new(),
            cached: Vec::new(),
            last_used: Vec::new(),
            free: Vec::new(),
            in_use: 0,
        });
        AgentId(self.agents.len() - 1)
    }

    pub fn budget_bytes(&self) -> usize {
        self.budget_bytes
    }

    pub fn used_bytes(&self) -> usize {
        self.used_bytes
    }

    pub fn bytes_per_block(&self, agent: AgentId) -> usize {
        self.agents[agent.0].bytes_per_block
    }

    /// Blocks of this agent that are referenced or cached.
    pub fn blocks_in_use(&self, agent: AgentId) -> usize {
        self.agents[agent.0].in_use
    }

    /// One past the highest block id this agent has ever used: its storage must hold this many.
    pub fn high_water(&self, agent: AgentId) -> usize {
        self.agents[agent.0].ref_counts.len()
    }

    pub fn ref_count(&self, agent: AgentId, block: BlockId) -> u32 {
        self.agents[agent.0].ref_counts[block as usize]
    }

    pub fn is_cached(&self, agent: AgentId, block: BlockId) -> bool {
        self.agents[agent.0].cached[block as usize]
    }

    pub fn evictable_count(&self) -> usize {
        self.evictable.len()
    }

    fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    /// Allocates a block with ref count 1, evicting least-recently-used cached blocks (of any
    /// agent) if the budget requires. `on_evict` hears of every evicted block so that the
    /// prefix index can forget it.
    pub fn allocate(
        &mut self,
        agent: AgentId,
        mut on_evict: impl FnMut(AgentId, BlockId),
    ) -> Result<BlockId, OutOfBlocks> {
        let need = self.agents[agent.0].bytes_per_block;
        while self.used_bytes + need > self.budget_bytes {
            let Some(&(stamp, owner, block)) = self.evictable.iter().next() else {
                return Err(OutOfBlocks(agent));
            };
            self.evictable.remove(&(stamp, owner, block));
            self.agents[owner].cached[block as usize] = false;
            self.release_to_free(owner, block);
            on_evict(AgentId(owner), block);
        }
        let stamp = self.tick();
        let a = &mut self.agents[agent.0];
        let block = match a.free.pop() {
            Some(b) => b,
            None => {
                a.ref_counts.push(0);
                a.cached.push(false);
                a.last_used.push(0);
                (a.ref_counts.len() - 1) as BlockId
            }
        };
        a.ref_counts[block as usize] = 1;
        a.last_used[block as usize] = stamp;
        a.in_use += 1;
        self.used_bytes += need;
        Ok(block)
    }

    fn release_to_free(&mut self, agent: usize, block: BlockId) {
        let a = &mut self.agents[agent];
        a.free.push(block);
        a.in_use -= 1;
        self.used_bytes -= a.bytes_per_block;
    }

    /// Adds a reference; a cached unreferenced block leaves the eviction list.
    pub fn retain(&mut self, agent: AgentId, block: BlockId) {
        let stamp = self.tick();
        let a = &mut self.agents[agent.0];
        let i = block as usize;
        if a.ref_counts[i] == 0 {
            assert!(a.cached[i], "retaining a free block");
            let removed = self.evictable.remove(&(a.last_used[i], agent.0, block));
            debug_assert!(removed);
        }
        a.ref_counts[i] += 1;
        a.last_used[i] = stamp;
    }

    /// Drops a reference; at zero the block becomes evictable if cached, free otherwise.
    pub fn release(&mut self, agent: AgentId, block: BlockId) {
        let stamp = self.tick();
        let a = &mut self.agents[agent.0];
        let i = block as usize;
        assert!(a.ref_counts[i] > 0, "releasing an unreferenced block");
        a.ref_counts[i] -= 1;
        a.last_used[i] = stamp;
        if a.ref_counts[i] == 0 {
            if a.cached[i] {
                self.evictable.insert((stamp, agent.0, block));
            } else {
                self.release_to_free(agent.0, block);
            }
        }
    }

    /// Marks a block as holding a registered prefix (kept in the cache when unreferenced).
    pub fn mark_cached(&mut self, agent: AgentId, block: BlockId) {
        let a = &mut self.agents[agent.0];
        assert!(
            a.ref_counts[block as usize] > 0,
            "only referenced blocks get registered"
        );
        a.cached[block as usize] = true;
    }

    /// Unmarks a block (its prefix became unreachable); an unreferenced one is freed.
    pub fn uncache(&mut self, agent: AgentId, block: BlockId) {
        let i = block as usize;
        if !self.agents[agent.0].cached[i] {
            return;
        }
        self.agents[agent.0].cached[i] = false;
        if self.agents[agent.0].ref_counts[i] == 0 {
            let stamp = self.agents[agent.0].last_used[i];
            self.evictable.remove(&(stamp, agent.0, block));
            self.release_to_free(agent.0, block);
        }
    }

    /// Checks the internal accounting (used by tests): counts, free lists and the eviction set
    /// agree with the ref counts.
    pub fn check_invariants(&self) -> Result<(), String> {
        let mut used = 0;
        for (ai, a) in self.agents.iter().enumerate() {
            let free: std::collections::HashSet<_> = a.free.iter().copied().collect();
            if free.len() != a.free.len() {
                return Err(format!("agent {ai}: a block is twice on the free list"));
            }
            let mut in_use = 0;
            for (b, &rc) in a.ref_counts.iter().enumerate() {
                let is_free = free.contains(&(b as BlockId));
                let evictable = self.evictable.contains(&(a.last_used[b], ai, b as BlockId));
                match (is_free, rc, a.cached[b]) {
                    (true, 0, false) => {}
                    (true, _, _) => return Err(format!("agent {ai} block {b}: free but rc={rc}")),
                    (false, 0, true) if evictable => in_use += 1,
                    (false, 0, _) => return Err(format!("agent {ai} block {b}: leaked")),
                    (false, _, _) if evictable => {
                        return Err(format!("agent {ai} block {b}: referenced but evictable"))
                    }
                    (false, _, _) => in_use += 1,
                }
            }
            if in_use != a.in_use {
                return Err(format!(
                    "agent {ai}: in_use {} but counted {in_use}",
                    a.in_use
                ));
            }
            used += in_use * a.bytes_per_block;
        }
        if used != self.used_bytes {
            return Err(format!(
                "used_bytes {} but blocks account for {used}",
                self.used_bytes
            ));
        }
        if self.used_bytes > self.budget_bytes {
            return Err("over budget".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_is_shared_by_agents_of_different_block_sizes() {
        let mut pool = BlockPool::new(100);
        let small = pool.add_agent(10);
        let big = pool.add_agent(40);
        let a = pool.allocate(big, |_, _| {}).unwrap();
        let _b = pool.allocate(big, |_, _| {}).unwrap();
        for _ in 0..2 {
            pool.allocate(small, |_, _| {}).unwrap();
        }
        assert_eq!(pool.used_bytes(), 100);
        assert_eq!(pool.allocate(small, |_, _| {}), Err(OutOfBlocks(small)));
        pool.release(big, a);
        assert_eq!(pool.used_bytes(), 60);
        pool.check_invariants().unwrap();
    }

    #[test]
    fn cached_blocks_are_evicted_least_recently_used_first() {
        let mut pool = BlockPool::new(30);
        let agent = pool.add_agent(10);
        let blocks: Vec<_> = (0..3)
            .map(|_| pool.allocate(agent, |_, _| {}).unwrap())
            .collect();
        for &b in &blocks {
            pool.mark_cached(agent, b);
        }
        pool.release(agent, blocks[1]);
        pool.release(agent, blocks[0]);
        let mut evicted = Vec::new();
        let fresh = pool.allocate(agent, |_, b| evicted.push(b)).unwrap();
        assert_eq!(evicted, vec![blocks[1]]);
        assert_eq!(fresh, blocks[1], "the evicted id is reused");
        pool.check_invariants().unwrap();
    }

    #[test]
    fn retaining_a_cached_block_protects_it() {
        let mut pool = BlockPool::new(10);
        let agent = pool.add_agent(10);
        let b = pool.allocate(agent, |_, _| {}).unwrap();
        pool.mark_cached(agent, b);
        pool.release(agent, b);
        assert_eq!(pool.evictable_count(), 1);
        pool.retain(agent, b);
        assert_eq!(pool.evictable_count(), 0);
        assert!(pool.allocate(agent, |_, _| {}).is_err());
        pool.check_invariants().unwrap();
    }
}

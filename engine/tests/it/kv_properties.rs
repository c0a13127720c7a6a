//! Property tests of the paged KV bookkeeping: random starts, appends, forks, releases, preemptions
//! and weight updates across two agents with different block sizes never leak a block, never free
//! a referenced one, and account memory exactly.

use std::collections::HashMap;

use mars2_engine::kv::{AgentId, KvManager, KvSequence};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Start { agent: usize, prompt: Vec<u32> },
    Append { seq: usize, tokens: Vec<u32> },
    Fork { seq: usize },
    Release { seq: usize },
    Preempt { seq: usize },
    Bump { agent: usize },
}

fn op() -> impl Strategy<Value = Op> {
    // A tiny alphabet makes shared prefixes common.
    let tokens = |max| prop::collection::vec(0u32..3, 1..max);
    prop_oneof![
        (0..2usize, tokens(14)).prop_map(|(agent, prompt)| Op::Start { agent, prompt }),
        (0..8usize, tokens(7)).prop_map(|(seq, tokens)| Op::Append { seq, tokens }),
        (0..8usize).prop_map(|seq| Op::Fork { seq }),
        (0..8usize).prop_map(|seq| Op::Release { seq }),
        (0..8usize).prop_map(|seq| Op::Preempt { seq }),
        (0..2usize).prop_map(|agent| Op::Bump { agent }),
    ]
}

fn check(m: &KvManager, live: &[KvSequence]) {
    m.check_invariants().unwrap();
    let mut holders: HashMap<(AgentId, u32), u32> = HashMap::new();
    for s in live {
        assert!(
            s.blocks.len() * m.block_size() >= s.len(),
            "tokens beyond blocks"
        );
        for &b in &s.blocks {
            *holders.entry((s.agent, b)).or_default() += 1;
        }
    }
    for ((agent, block), count) in holders {
        assert_eq!(
            m.pool().ref_count(agent, block),
            count,
            "ref count of {agent:?}/{block}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn bookkeeping_never_leaks_or_double_frees(ops in prop::collection::vec(op(), 1..60)) {
        // Budget of 12 small blocks; the second agent's blocks cost three times as much.
        let mut m = KvManager::new(12 * 4 * 8, 4);
        let agents = [m.add_agent(8), m.add_agent(24)];
        let mut live: Vec<KvSequence> = Vec::new();
        let mut retries: Vec<Vec<u32>> = Vec::new();
        for op in ops {
            match op {
                Op::Start { agent, prompt } => {
                    let mut s = m.start(agents[agent], &prompt);
                    let rest = prompt[s.len()..].to_vec();
                    match m.reserve(&mut s, rest.len()) {
                        Ok(_) => {
                            m.commit(&mut s, &rest);
                            live.push(s);
                        }
                        Err(_) => m.release(s),
                    }
                }
                Op::Append { seq, tokens } if seq < live.len() => {
                    let s = &mut live[seq];
                    if m.reserve(s, tokens.len()).is_ok() {
                        m.commit(s, &tokens);
                    }
                }
                Op::Fork { seq } if seq < live.len() => {
                    let child = m.fork(&live[seq]);
                    live.push(child);
                }
                Op::Release { seq } if seq < live.len() => {
                    let s = live.swap_remove(seq);
                    m.release(s);
                }
                Op::Preempt { seq } if seq < live.len() => {
                    // Free now, recompute later from the prefix cache and the tokens.
                    let s = live.swap_remove(seq);
                    retries.push(s.tokens.clone());
                    m.release(s);
                }
                Op::Bump { agent } => {
                    m.bump_version(agents[agent]);
                }
                _ => {}
            }
            check(&m, &live);
        }
        for s in live.drain(..) {
            m.release(s);
        }
        check(&m, &live);
        // With nothing referenced, every block still in use is an evictable cached block.
        let in_use: usize = agents.iter().map(|&a| m.pool().blocks_in_use(a)).sum();
        prop_assert_eq!(in_use, m.pool().evictable_count());
        prop_assert_eq!(in_use, m.cached_blocks());
    }
}

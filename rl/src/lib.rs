//! Learning from finished search trees (to come): every node one sample; tree-consistent reward
//! shaping, group advantage over the tree, per-agent buffers; GSPO (and token-level GRPO/DAPO)
//! losses with truncated importance weights and k3 KL; one optimizer, reference model, step
//! counter and checkpoint per agent; weight hand-off to the engine; the learned reward model
//! used by T+; G-Vendi.

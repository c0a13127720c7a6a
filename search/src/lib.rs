//! The multi-agent tree search (to come): one AB-MCTS tree per problem, grown node by node —
//! Thompson sampling over GEN/CONT/child posteriors decides wider or deeper, and over per-agent
//! reward histories which agent writes the next node; refinement prompts (parent or path
//! context, T+ error feedback, depth-guided GEN scaling); baselines on the same node budget;
//! metrics (Pass@1, Pass@1(MCTS), Pass@N, AEC, DA@K) and reports. It calls the engine for
//! generations and the sandbox for verdicts, and never touches tensors.

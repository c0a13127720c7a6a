// llama.cpp's side of `cargo xtask bench vs-llama-cpp`: prefill and greedy decode of a GGUF file
// through the prebuilt CPU libraries of the npm package node-llama-cpp (no compiler needed).
//
// Usage: node llama_cpp_bench.mjs INPUT.json
// INPUT: {"node_llama_cpp": path of the package's dist/index.js, "model": path, "threads": n, "prefill_tokens": [...], "decode_prompt": [...],
//         "decode_tokens": n, "batches": [b...], "batch_tokens": n, "repeats": n}
// Prints one JSON object per figure on stdout (progress goes to stderr):
//   {"figure":"prefill","tokens":512,"seconds":...,"tokens_per_s":...}
//   {"figure":"decode","batch":8,"tokens":...,"seconds":...,"tokens_per_s":...,
//    "dispatched":{"8":64}}   <- tokens per llama_decode call → how many calls had that size
//
// Batched decode runs the sequences in lockstep: every step asks each sequence's generator for
// its next token at once, and a custom dispatch schedule sends the batch to llama.cpp only when
// all of them are queued, so each llama_decode call holds one token of every sequence. The sizes
// actually dispatched are counted and printed, so the comparison is at the real batch size.

import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";

const input = JSON.parse(readFileSync(process.argv[2], "utf8"));
// The package lives in a cache folder of its own, not beside this script.
const { getLlama } = await import(pathToFileURL(input.node_llama_cpp).href);
const threads = input.threads ?? 2;
const repeats = input.repeats ?? 1;
const log = (message) => process.stderr.write(`llama.cpp: ${message}\n`);
const emit = (value) => process.stdout.write(JSON.stringify(value) + "\n");

const llama = await getLlama({ gpu: false, build: "never", maxThreads: threads, logLevel: "error" });
const model = await llama.loadModel({ modelPath: input.model, gpuLayers: 0, useMmap: true });
emit({ figure: "info", build: llama.buildType, cpu_math_cores: llama.cpuMathCores, threads });

/** A context of `sequences` sequences whose dispatches wait until `expected()` items are queued. */
async function lockstepContext(sequences, contextSize, expected, sizes) {
    let queued = 0;
    let pending = null;
    const context = await model.createContext({
        sequences,
        contextSize,
        batchSize: Math.max(512, sequences),
        threads: { ideal: threads, min: threads },
        batching: {
            dispatchSchedule: (dispatch) => {
                pending = dispatch;
                setImmediate(function check() {
                    if (pending === null) return;
                    if (queued >= expected()) {
                        const run = pending;
                        pending = null;
                        queued = 0;
                        run();
                    } else {
                        setImmediate(check);
                    }
                });
            },
            itemPrioritizationStrategy: ({ items, size }) => {
                let left = size;
                const chosen = [];
                for (const item of items) {
                    const amount = Math.min(item.tokens.length, left);
                    if (amount === 0) break;
                    chosen.push({ item, processAmount: amount });
                    left -= amount;
                }
                const total = chosen.reduce((sum, c) => sum + c.processAmount, 0);
                sizes[total] = (sizes[total] ?? 0) + 1;
                return chosen;
            },
        },
    });
    return { context, note: () => (queued += 1) };
}

const contextFor = (tokens) => Math.ceil((tokens + 64) / 256) * 256;

// Prefill: one sequence evaluates the whole prompt (no token generated).
{
    const prompt = input.prefill_tokens;
    let best = Infinity;
    for (let r = 0; r < repeats; r++) {
        const context = await model.createContext({
            sequences: 1,
            contextSize: contextFor(prompt.length),
            batchSize: prompt.length,
            threads: { ideal: threads, min: threads },
        });
        const sequence = context.getSequence();
        const start = performance.now();
        await sequence.evaluateWithoutGeneratingNewTokens(prompt);
        best = Math.min(best, (performance.now() - start) / 1000);
        await context.dispose();
    }
    emit({ figure: "prefill", tokens: prompt.length, seconds: best, tokens_per_s: prompt.length / best });
    log(`prefill ${prompt.length} tokens: ${(prompt.length / best).toFixed(1)} tok/s`);
}

// Decode: `batch` sequences after the same prompt, greedy, in lockstep; the prompt's prefill and
// the first token are excluded from the time.
for (const batch of input.batches) {
    const steps = batch === 1 ? input.decode_tokens : input.batch_tokens;
    let best = null;
    for (let r = 0; r < repeats; r++) {
        const sizes = {};
        let expectedItems = batch;
        const { context, note } = await lockstepContext(
            batch,
            contextFor(input.decode_prompt.length + steps),
            () => expectedItems,
            sizes,
        );
        const sequences = Array.from({ length: batch }, () => context.getSequence());
        const generators = sequences.map((sequence) =>
            sequence.evaluate(input.decode_prompt, { temperature: 0, yieldEogToken: true }),
        );
        const step = () =>
            Promise.all(
                generators.map((generator) => {
                    note();
                    return generator.next();
                }),
            );
        await step(); // prefill of every sequence + the first token
        for (const key of Object.keys(sizes)) delete sizes[key];
        const start = performance.now();
        for (let i = 0; i < steps; i++) {
            const results = await step();
            if (results.some((result) => result.done)) throw new Error("a sequence ended early");
        }
        const seconds = (performance.now() - start) / 1000;
        const figure = {
            figure: "decode",
            batch,
            tokens: batch * steps,
            seconds,
            tokens_per_s: (batch * steps) / seconds,
            dispatched: { ...sizes },
        };
        if (best === null || figure.seconds < best.seconds) best = figure;
        for (const generator of generators) await generator.return();
        await context.dispose();
    }
    emit(best);
    log(`decode batch ${batch}: ${best.tokens_per_s.toFixed(1)} tok/s, dispatched ${JSON.stringify(best.dispatched)}`);
}

await model.dispose();
await llama.dispose();

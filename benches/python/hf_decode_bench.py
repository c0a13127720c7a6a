"""Decode throughput of Hugging Face transformers `generate` on SmolLM2-135M's or
Qwen2.5-Coder-0.5B's shape (random weights), for comparison with
`cargo xtask bench engine --model random:smollm2-135m` (or `random:qwen2.5-coder-0.5b`).

Measured the same way as the engine bench: the time of prefill + (n + 1) greedy tokens minus
the time of prefill + 1 token, for a 47-token prompt, every row decoding exactly n tokens.
Also prints the measured device-to-device copy bandwidth and the roofline decode rate it
implies (one read of all weights per decode step).

Usage: python3 benches/python/hf_decode_bench.py [--shape smollm2-135m|qwen2.5-coder-0.5b]
       [--batches 1,8,32,256] [--new-tokens 32] [--dtypes float32,bfloat16]
"""

import argparse
import json
import time

import torch
from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM


def smollm2_135m() -> LlamaConfig:
    return LlamaConfig(
        vocab_size=49152,
        hidden_size=576,
        intermediate_size=1536,
        num_hidden_layers=30,
        num_attention_heads=9,
        num_key_value_heads=3,
        head_dim=64,
        rms_norm_eps=1e-5,
        rope_theta=100000.0,
        max_position_embeddings=8192,
        tie_word_embeddings=True,
        bos_token_id=1,
        eos_token_id=2,
    )


def qwen2_5_coder_0_5b() -> Qwen2Config:
    return Qwen2Config(
        vocab_size=151936,
        hidden_size=896,
        intermediate_size=4864,
        num_hidden_layers=24,
        num_attention_heads=14,
        num_key_value_heads=2,
        rms_norm_eps=1e-6,
        rope_theta=1000000.0,
        max_position_embeddings=32768,
        tie_word_embeddings=True,
        bos_token_id=151643,
        eos_token_id=151645,
    )


SHAPES = {
    "smollm2-135m": (smollm2_135m, LlamaForCausalLM),
    "qwen2.5-coder-0.5b": (qwen2_5_coder_0_5b, Qwen2ForCausalLM),
}


def copy_bandwidth() -> float:
    """Bytes per second moved by a device-to-device copy (read + write)."""
    x = torch.empty(1 << 28, dtype=torch.float32, device="cuda")
    y = torch.empty_like(x)
    for _ in range(3):
        y.copy_(x)
    torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(10):
        y.copy_(x)
    torch.cuda.synchronize()
    return 2 * x.numel() * 4 * 10 / (time.perf_counter() - t)


def timed_generate(model, prompt, n: int) -> float:
    torch.cuda.synchronize()
    t = time.perf_counter()
    model.generate(
        prompt,
        attention_mask=torch.ones_like(prompt),
        max_new_tokens=n,
        min_new_tokens=n,
        do_sample=False,
        pad_token_id=0,
    )
    torch.cuda.synchronize()
    return time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batches", default="1,8,32,256")
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--shape", default="smollm2-135m", choices=sorted(SHAPES))
    parser.add_argument("--dtypes", default="float32,bfloat16")
    args = parser.parse_args()
    make_config, model_class = SHAPES[args.shape]
    torch.manual_seed(0)
    bandwidth = copy_bandwidth()
    print(json.dumps({"figure": "copy_bandwidth", "gb_per_s": bandwidth / 1e9}))
    for dtype in [getattr(torch, name) for name in args.dtypes.split(",")]:
        model = model_class(make_config()).to("cuda", dtype=dtype).eval()
        weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
        for batch in [int(b) for b in args.batches.split(",")]:
            prompt = torch.arange(1, 48, device="cuda").repeat(batch, 1)
            with torch.no_grad():
                timed_generate(model, prompt, 2)  # warm-up
                long = min(timed_generate(model, prompt, args.new_tokens + 1) for _ in range(2))
                short = min(timed_generate(model, prompt, 1) for _ in range(2))
            rate = batch * args.new_tokens / max(long - short, 1e-9)
            roofline = batch * bandwidth / weight_bytes
            print(json.dumps({
                "figure": "hf_decode", "shape": args.shape, "dtype": str(dtype).removeprefix("torch."), "batch": batch,
                "tokens_per_s": rate, "weight_bytes": weight_bytes,
                "roofline_tokens_per_s": roofline,
            }))


if __name__ == "__main__":
    main()

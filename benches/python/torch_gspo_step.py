"""One GSPO update in PyTorch on a model of SmolLM2-135M's or Qwen2.5-Coder-0.5B's shape (random
weights), for comparison with `cargo xtask bench train-step --model random:SHAPE`.

The same update as the project's trainer: per-token log-probs of the responses at temperature
0.7 (log-softmax gather), the GSPO sequence ratio exp(mean(log pi - log pi_rollout)) clipped at
0.2, the k3 KL penalty against a frozen reference when --kl-beta > 0 (a no-grad forward of a
copy), global-norm clipping at 1.0 and one AdamW step. The sequences are run as one batch (they
have the same length), as PyTorch code would naturally do it.

Usage: python3 benches/python/torch_gspo_step.py [--shape smollm2-135m] [--device cpu|cuda]
       [--threads 2] [--sequences 8] [--prompt-tokens 100] [--response-tokens 200] [--steps 3]
"""

import argparse
import copy
import json
import time

import torch

from hf_decode_bench import SHAPES

TEMPERATURE = 0.7
CLIP = 0.2


def response_logprobs(model, ids, prompt_tokens):
    logits = model(ids).logits[:, prompt_tokens - 1 : -1, :].float() / TEMPERATURE
    targets = ids[:, prompt_tokens:]
    return torch.log_softmax(logits, dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)


def step(model, reference, optimizer, ids, rollout, advantages, prompt_tokens, kl_beta):
    logp = response_logprobs(model, ids, prompt_tokens)
    ratio = torch.exp((logp - rollout).mean(dim=1))
    surrogate = torch.minimum(ratio * advantages, ratio.clamp(1 - CLIP, 1 + CLIP) * advantages)
    loss = -surrogate
    if kl_beta > 0:
        with torch.no_grad():
            ref = response_logprobs(reference, ids, prompt_tokens)
        delta = ref - logp
        k3 = (torch.exp(delta) - 1 - delta).clamp(-10, 10)
        loss = loss + kl_beta * k3.mean(dim=1)
    loss = loss.mean()
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    return loss.item(), norm.item()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shape", default="smollm2-135m", choices=sorted(SHAPES))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--sequences", type=int, default=8)
    parser.add_argument("--prompt-tokens", type=int, default=100)
    parser.add_argument("--response-tokens", type=int, default=200)
    parser.add_argument("--kl-beta", type=float, default=1e-3)
    parser.add_argument("--steps", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    make_config, model_class = SHAPES[args.shape]
    config = make_config()
    model = model_class(config).to(args.device).train()
    reference = copy.deepcopy(model).eval() if args.kl_beta > 0 else None
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-6, weight_decay=0.0)
    length = args.prompt_tokens + args.response_tokens
    ids = torch.randint(0, config.vocab_size, (args.sequences, length), device=args.device)
    with torch.no_grad():
        own = response_logprobs(model, ids, args.prompt_tokens)
    shifts = torch.tensor([0.01 if s % 2 == 0 else -0.01 for s in range(args.sequences)])
    rollout = own + shifts.to(args.device).unsqueeze(1)
    advantages = torch.tensor(
        [1.0 if s % 2 == 0 else -1.0 for s in range(args.sequences)], device=args.device
    )

    def sync():
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()

    step(model, reference, optimizer, ids, rollout, advantages, args.prompt_tokens, args.kl_beta)
    seconds = []
    for _ in range(args.steps):
        sync()
        started = time.perf_counter()
        step(model, reference, optimizer, ids, rollout, advantages, args.prompt_tokens, args.kl_beta)
        sync()
        seconds.append(time.perf_counter() - started)
    seconds.sort()
    median = seconds[len(seconds) // 2]
    print(json.dumps({
        "figure": "train_step", "engine": "pytorch", "torch": torch.__version__,
        "shape": args.shape, "device": args.device, "threads": args.threads,
        "sequences": args.sequences, "prompt_tokens": args.prompt_tokens,
        "response_tokens": args.response_tokens, "kl_beta": args.kl_beta,
        "median_seconds": median, "tokens_per_s": args.sequences * length / median,
    }))


if __name__ == "__main__":
    main()

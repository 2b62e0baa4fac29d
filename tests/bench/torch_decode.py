"""PyTorch bf16 eager decode of the FUSION decoders' shapes, for comparison with `fusion bench`.

Random weights (no download), built with `transformers` from configs of the published shapes:
Phi-3.5-mini (FUSION-Phi3.5-3B) and LLaMA-3.1-8B (FUSION-LLaMA3.1-8B). Measures, on the GPU the
script runs on: device copy bandwidth (read + write bytes, as `fusion bench` counts it), prefill
of a prompt as long as our image prompt, then greedy decode one token at a time through the KV
cache (eager, `use_cache=True`), and the bf16 decode roofline (copy bandwidth ÷ bytes of weights
and KV cache read per token).

    python3 tests/bench/torch_decode.py --out torch.json [--prompt 770] [--tokens 128]
"""

import argparse
import json
import time

import torch
import transformers

SHAPES = {
    "FUSION-Phi3.5-3B": dict(
        kind="phi3", hidden_size=3072, intermediate_size=8192, num_hidden_layers=32,
        num_attention_heads=32, num_key_value_heads=32, vocab_size=32064,
    ),
    "FUSION-LLaMA3.1-8B": dict(
        kind="llama", hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
        num_attention_heads=32, num_key_value_heads=8, vocab_size=128256, rope_theta=500000.0,
    ),
}


def config(shape):
    shape = dict(shape)
    kind = shape.pop("kind")
    cls = transformers.Phi3Config if kind == "phi3" else transformers.LlamaConfig
    # No long-RoPE scaling: it changes no shape and no cost per token at these lengths.
    return cls(max_position_embeddings=4096, tie_word_embeddings=False, **shape)


def copy_bandwidth_gb_s():
    src = torch.empty(256 * 2**20, dtype=torch.float32, device="cuda").normal_()
    dst = torch.empty_like(src)
    dst.copy_(src)
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(20):
        dst.copy_(src)
    end.record()
    torch.cuda.synchronize()
    ms = start.elapsed_time(end) / 20
    return 2 * src.numel() * 4 / (ms * 1e6)


@torch.inference_mode()
def bench(name, shape, prompt, tokens, copy_gbs):
    cfg = config(shape)
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = transformers.AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16)
    model.eval()
    params = sum(p.numel() for p in model.parameters())
    embedding = model.get_input_embeddings().weight.numel()
    ids = torch.randint(0, cfg.vocab_size, (1, prompt), device="cuda")

    def run():
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        out = model(input_ids=ids, use_cache=True)
        cache, nxt = out.past_key_values, out.logits[:, -1:].argmax(-1)
        torch.cuda.synchronize()
        t1 = time.perf_counter()
        for _ in range(tokens):
            out = model(input_ids=nxt, past_key_values=cache, use_cache=True)
            cache, nxt = out.past_key_values, out.logits[:, -1:].argmax(-1)
            nxt.item()  # a served token reaches the CPU each step, as ours does
        torch.cuda.synchronize()
        return t1 - t0, (time.perf_counter() - t1) / tokens

    run()  # warm-up: kernels, allocator
    prefill_s, decode_s = min((run() for _ in range(3)), key=lambda r: r[1])
    kv_heads, head_dim = cfg.num_key_value_heads, cfg.hidden_size // cfg.num_attention_heads
    context = prompt + tokens // 2
    weight_bytes = 2 * (params - embedding + cfg.hidden_size)  # one embedding row is read per token
    kv_bytes = cfg.num_hidden_layers * 2 * kv_heads * head_dim * context * 2
    roofline = copy_gbs * 1e9 / (weight_bytes + kv_bytes)
    del model
    torch.cuda.empty_cache()
    return {
        "model": name, "params": params, "prompt_tokens": prompt, "decode_steps": tokens,
        "prefill_ms": round(prefill_s * 1e3, 2), "prefill_tok_s": round(prompt / prefill_s, 1),
        "decode_ms_per_token": round(decode_s * 1e3, 3), "decode_tok_s": round(1 / decode_s, 1),
        "decode_bytes_per_token": weight_bytes + kv_bytes,
        "decode_roofline_tok_s": round(roofline, 1), "decode_vs_roofline": round(1 / decode_s / roofline, 3),
    }


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True)
    p.add_argument("--prompt", type=int, default=770, help="prompt tokens (our image prompt's length)")
    p.add_argument("--tokens", type=int, default=128, help="decode steps timed")
    p.add_argument("--model", action="append", choices=sorted(SHAPES), help="default: all")
    a = p.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("torch_decode.py: no CUDA device")
    copy_gbs = copy_bandwidth_gb_s()
    report = {
        "device": torch.cuda.get_device_name(), "torch": torch.__version__,
        "transformers": transformers.__version__, "dtype": "bfloat16", "mode": "eager",
        "copy_bandwidth_gb_s": round(copy_gbs, 1),
        "models": [bench(m, SHAPES[m], a.prompt, a.tokens, copy_gbs) for m in (a.model or SHAPES)],
    }
    with open(a.out, "w") as f:
        json.dump(report, f, indent=1)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()

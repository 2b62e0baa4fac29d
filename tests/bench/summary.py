"""The figures BENCHMARKS.md records, out of `fusion bench` and `torch_decode.py` reports.

    python3 tests/bench/summary.py bench-3b.json bench-8b.json torch-3b.json torch-8b.json

Prints markdown: per model the issue #4 targets, the whole-model figures, each kernel against
its ceiling (copy bandwidth) and against burn's, and PyTorch's decode and prefill beside ours.
A figure a report lacks (an older report, a run without `--stock` or `--f32-model`, a run stopped
early) prints as "–".
"""

import json
import sys

# torch_decode.py's model names for the shapes `fusion bench` calls 3b and 8b.
TORCH_NAMES = {"FUSION-Phi3.5-3B": "3b", "FUSION-LLaMA3.1-8B": "8b"}


def get(d, *path):
    for key in path:
        if not isinstance(d, dict) or key not in d:
            return None
        d = d[key]
    return d


def fmt(x, digits=3):
    if x is None:
        return "–"
    if isinstance(x, bool) or isinstance(x, str):
        return str(x)
    if isinstance(x, int) or abs(x) >= 100:
        return f"{x:,.0f}".replace(",", " ")
    return f"{x:.{digits}g}"


def pct(x):
    return "–" if x is None else f"{100 * x:.1f} %"


def table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(fmt(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def cpu_summary(c):
    mem = c.get("memory_after_load", {})
    return (f"CPU side ({c['device']}): decode {fmt(c['decode_recorded_us_per_token'])} µs per token recorded "
            f"(ceiling {fmt(c['decode_ceiling_tok_s'])} tok/s), {fmt(c['decode_launched_us_per_token'])} µs launched; "
            f"each step launched after reading the last token: {fmt(c.get('decode_recorded_reading_each_token_first_us_per_token'))} µs recorded, "
            f"{fmt(c.get('decode_launched_reading_each_token_first_us_per_token'))} µs launched; "
            f"tiles {fmt(c['tiles_ms'])} ms, vision {fmt(c['vision_ms'])} ms, prefill {fmt(c['prefill_ms'])} ms; "
            f"first decode step {fmt(c['first_decode_step_ms'])} ms; memory after loading: {memory_summary(mem)}.")


def memory_summary(mem):
    return (f"weights {fmt(mem.get('weights', 0) / 1e9)} GB, {fmt(mem.get('in_use', 0) / 1e9)} GB in use, "
            f"{fmt(mem.get('reserved', 0) / 1e9)} GB reserved")


def model_summary(m, torch):
    name = m.get("model", "?")
    # A run stopped early (a lease's time limit) saved the phases it finished, most wanted first.
    measured = [k for k in m if k not in ("model", "finished")]
    stopped = f"**Stopped early**: measured only {', '.join(measured) or 'nothing'}." if m.get("finished") is False else None
    if "int4_fused" not in m:
        if stopped:
            return f"### {name}\n\n{stopped}"
        return f"### {name}\n\n" + cpu_summary(m.get("cpu_side", {}))  # fusion bench --cpu-only
    fused = m.get("int4_fused", {})
    out = [f"### {name}: {fmt(get(m, 'decoder', 'layers'))} layers, hidden {fmt(get(m, 'decoder', 'hidden'))}"]
    if stopped:
        out.append(stopped)
    linears = m.get("linears", [])
    largest = max(linears, key=lambda l: l["shape"][0] * l["shape"][1], default={})
    t = torch.get(name, {})
    out.append(table(["target", "measured"], [
        ["int4 matvec ≥ 80 % of copy (largest matrix)", f"{pct(largest.get('int4_matvec_vs_copy'))} ({fmt(largest.get('int4_matvec_gb_s'))} GB/s, {largest.get('shape')})"],
        ["decode ≥ 60 % of roofline", f"{fmt(fused.get('decode_tok_s'))} tok/s, {pct(m.get('decode_vs_roofline'))} of {fmt(m.get('decode_roofline_tok_s'))}"],
        ["time to first token ≤ 0.4 s (3B)", f"{fmt(fused.get('time_to_first_token_ms'))} ms (tiles {fmt(fused.get('tiles_ms'))}, vision {fmt(fused.get('vision_ms'))}, prefill {fmt(fused.get('prefill_ms'))})"],
        ["PyTorch bf16 eager decode", f"{fmt(get(t, 'decode_tok_s'))} tok/s (ours ×{fmt(ratio(fused.get('decode_tok_s'), get(t, 'decode_tok_s')))}); prefill {fmt(get(t, 'prefill_tok_s'))} tok/s vs ours {fmt(fused.get('prefill_tok_s'))}"],
    ]))
    variants = [("int4, ours", "int4_fused"), ("int4, burn's attention etc.", "int4_burn_attention"), ("f32, all burn", "f32_burn_matmul_and_attention")]
    present = [(label, m[key]) for label, key in variants if key in m]
    rows = [[what] + [v.get(key) for _, v in present] for what, key in [
        ("decode tok/s", "decode_tok_s"), ("… each step launched after reading the last token", "decode_reading_each_token_first_tok_s"),
        ("decode graph", "decode_graph"), ("time to first token (ms)", "time_to_first_token_ms"),
        ("… photo's tiles already encoded", "time_to_first_token_photo_cached_ms"), ("prefill tok/s", "prefill_tok_s"),
        ("prompt tokens", "prompt_tokens")]]
    rows.append(["decode tok/s, every kernel launched", m.get("int4_fused_launched_decode_tok_s")] + [None] * (len(present) - 1))
    rows.append(["first decode step (ms; compiles, records)"] + [v.get("first_decode_step_ms") for _, v in present])
    out.append(table([""] + [label for label, _ in present], rows))
    if "memory_after_load" in m:
        out.append(f"GPU memory after loading: {memory_summary(m['memory_after_load'])}.")
    if "cpu_side" in m:
        out.append(cpu_summary(m["cpu_side"]))
    out.append(table(["shape (out × in)", "per token", "matvec ms", "GB/s", "vs copy", "burn f32 matvec ms", "GEMM ms", "TFLOP/s", "f16", "GEMM f32 ms", "vs burn f32 matmul"], [
        [f"{l['shape'][0]}×{l['shape'][1]}", l.get("per_token"), l.get("int4_matvec_ms"), l.get("int4_matvec_gb_s"), l.get("int4_matvec_vs_copy"),
         l.get("burn_f32_matvec_ms"), l.get("int4_matmul_ms"), l.get("int4_matmul_tflop_s"), l.get("int4_matmul_f16"), l.get("int4_matmul_f32_ms"), l.get("int4_matmul_speedup")]
        for l in linears]))
    out.append(table(["attention", "heads (kv)", "rows × keys", "hd", "ours ms", "burn ms", "speed-up", "vs copy"], [
        [a["case"], f"{a['heads']} ({a['kv_heads']})", f"{a['rows']} × {a['keys']}", a["head_dim"], a["fused_ms"], a["burn_ms"], a["speedup"], a.get("fused_vs_copy")]
        for a in m.get("attention", [])]))
    out.append(table(["matvec split (invocations × outputs × steps)", "shape", "subgroups", "GB/s", "vs copy", "default"], [
        [f"{s.get('workgroup')}×{s.get('outputs')}×{s.get('unroll', 1)}{' staged' if s.get('stage_x') else ''}", f"{s['shape'][0]}×{s['shape'][1]}", s.get("subgroups"), s.get("gb_s"), s.get("vs_copy"), s.get("default")]
        for s in m.get("matvec_shapes", [])]))
    out.append(table(["GEMM split along k", "rows", "shape", "splits", "ms", "TFLOP/s", "default"], [
        [g["case"], g["rows"], f"{g['shape'][0]}×{g['shape'][1]}", g["splits"], g["ms"], g["tflop_s"], g["default"]]
        for g in m.get("gemm_splits", [])]))
    e = m.get("swiglu_epilogue")
    if e:
        out.append(f"SwiGLU in the matvec epilogue {e['shape']}: {fmt(e['epilogue_ms'])} ms against {fmt(e['two_launches_ms'])} ms in two launches (×{fmt(e['speedup'])}).")
    e = m.get("norm_prologue")
    if e:
        out.append(f"RMSNorm in the matvec prologue {e['shape']}: {fmt(e['prologue_ms'])} ms against {fmt(e['two_launches_ms'])} ms in two launches (×{fmt(e['speedup'])}).")
    g = m.get("greedy_pick")
    if g:
        out.append(f"Greedy pick over {g['vocab']} logits: {fmt(g['gpu_argmax_us'])} µs with the argmax on the GPU, "
                   f"{fmt(g['read_back_and_cpu_argmax_us'])} µs reading them back for the CPU (×{fmt(g['speedup'])}).")
    return "\n\n".join(out)


def ratio(a, b):
    return a / b if a and b else None


def main(paths):
    if not paths:
        sys.exit(__doc__)
    reports = []
    for path in paths:
        try:
            with open(path) as f:
                reports.append(json.load(f))
        except (OSError, json.JSONDecodeError) as e:
            sys.exit(f"summary.py: cannot read {path}: {e}")
    torch = {TORCH_NAMES.get(m["model"], m["model"]): m for r in reports if "torch" in r for m in r["models"]}
    for r in reports:
        if "torch" in r:
            print(f"PyTorch {r['torch']} (transformers {r['transformers']}) on {r['device']}: copy {fmt(r['copy_bandwidth_gb_s'])} GB/s\n")
            continue
        if "copy_bandwidth_gb_s" not in r:  # fusion bench --cpu-only
            print(f"## CPU side only ({r.get('device')})\n")
            for m in r.get("models", []):
                print(model_summary(m, torch) + "\n")
            continue
        print(f"## {r.get('device')}: copy {fmt(r.get('copy_bandwidth_gb_s'))} GB/s; launch {fmt(get(r, 'launch_us', 'wgsl'))} µs (ours), "
              f"{fmt(get(r, 'launch_us', 'burn'))} µs (burn's); shader-f16 {r.get('shader_f16')}, subgroups {r.get('subgroups')}")
        for t in r.get("text_stream_us", []):
            print(f"text of a {t['answer_tokens']}-token answer: {fmt(t['stream'])} µs per token streamed, "
                  f"{fmt(t['whole_answer_each_step'])} µs per step decoding the whole answer")
        for t in r.get("sampling_us", []):
            print(f"sampled pick over {t['vocab']} logits ({'peaked' if t['spread'] > 2 else 'flat'}, top-p {t['top_p']}, nucleus {t['nucleus_tokens']}): "
                  f"{fmt(t['pick'])} µs; nucleus {fmt(t['nucleus_selected'])} µs selected, {fmt(t['nucleus_sorting_all'])} µs sorting all")
        print()
        for m in r.get("models", []):
            print(model_summary(m, torch) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])

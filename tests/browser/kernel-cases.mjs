// The kernel checks both WebGPU test suites run (Chromium on SwiftShader: kernel.test.mjs;
// Dawn for Node with shader-f16: kernel-f16.test.mjs): each `Engine` check method with its
// cases, the arguments before the seed.
import assert from 'node:assert/strict';

export const KERNELS = {
  // m, n, k, group, subgroup reduction (else workgroup memory)
  checkInt4Matvec: [
    [1, 37, 40, 32, false],
    [3, 129, 333, 32, false],
    [8, 257, 1000, 128, false],
    [2, 70, 4096, 64, false],
    [1, 37, 40, 32, true],
    [3, 129, 333, 32, true],
    [8, 257, 1000, 128, true],
    [1, 3072, 3072, 32, true],
  ],
  // m, n (gate rows, then as many up rows), k, group
  checkInt4MatvecSwiglu: [
    [1, 16384, 3072, 32],
    [3, 74, 96, 32],
  ],
  // m, n, k, group, SwiGLU: the RMSNorm inside the matvec (k = 1000 at group 128: x padded)
  checkInt4MatvecNormed: [
    [1, 9216, 3072, 32, false],
    [3, 74, 1000, 128, true],
  ],
  checkInt4Matmul: [
    [9, 17, 40, 32],
    [67, 130, 200, 64],
    [33, 129, 333, 32],
    [70, 65, 3072, 32], // Phi-3.5's width: 4 blocks, so split along k into 6 ranges of 32 staged steps (slices added after); each step's f16 sum added into f32
  ],
  // heads, kv heads, rows, keys, head dim, spare cache rows, causal, key bias
  checkAttention: [
    [6, 2, 5, 133, 12, 123, true, false], // prefill after cached positions, GQA
    [4, 4, 1, 300, 24, 212, true, false], // split-K decode
    [32, 8, 1, 200, 128, 56, true, false], // LLaMA-3.1-8B decode heads
    [3, 3, 70, 70, 9, 0, false, true], // vision rows, padded keys, odd head dim
    [2, 2, 40, 90, 96, 10, true, false], // Phi-3.5 prefill heads: staged in several steps
    [4, 1, 37, 101, 128, 27, true, false], // LLaMA-3.1 prefill heads, GQA 4, a part-filled row block
  ],
  checkRmsNorm: [
    [1, 3072],
    [5, 257],
  ],
  // positions, heads, kv heads, head dim, packed as the fused projection, first cache row, cache rows
  checkRope: [
    [1, 32, 32, 96, true, 650, 1024],
    [7, 6, 2, 10, false, 5, 13],
  ],
  // logits (one workgroup's 2048, then more, and Phi-3.5's vocabulary: two passes); the error
  // is the number of edge cases that disagree with the CPU's pick
  checkArgmax: [[7], [2049], [32064]],
  // vocab, width, prompt ids (f16 and f32 tables; ids from the CPU and picked on the GPU); the
  // error is the number of elements that differ from the CPU's lookup
  checkEmbedding: [
    [37, 47, 9],
    [1000, 3072, 5],
  ],
  checkSwiglu: [
    [1, 8192],
    [3, 257],
  ],
};

// The bounds are the tests', as in the native tests (tests/native/kernels.rs): f32 accumulation
// against an f64 reference; the int4 GEMM in f16 rounds x and the weights to f16 (2^-11
// relative, ≈ 3e-4 in L2 each) and sums 16 products in f16.
const F32_TOLERANCE = 1e-5;
const INT4_MATMUL_F16_TOLERANCE = 3e-3;

/** Every case's relative L2 error within its bound: the GEMM's wider where the device multiplies in f16. */
export function assertWithinTolerance(check, cases, errors, { f16, seed, log = [] }) {
  assert.equal(typeof f16, 'boolean', 'whether the device has shader-f16');
  const bound = check === 'checkInt4Matmul' && f16 ? INT4_MATMUL_F16_TOLERANCE : F32_TOLERANCE;
  cases.forEach((args, i) => {
    assert.ok(errors[i] < bound, `${check}(${args}) seed=${seed}: rel L2 ${errors[i]} (bound ${bound})\n${log.join('\n')}`);
  });
}

/**
 * Issue 16's DiffusionGemma step cost, host against GPU row statistics: a diffusion_gemma-shaped
 * model (the golden fixture's config, widened: vocab, canvas, hidden size and layers from the
 * arguments; random weights) generating one canvas after a 64-id prompt at the spec's
 * temperatures, every step run (never stable). For `--pick host` (every step's [canvas, vocab]
 * logits read back) and `--pick gpu` (the entropy_rows kernel, 28 bytes a row, plus any rows the
 * sampler recomputes): wall time a step (after a warm-up generation), bytes read back a step,
 * rows recomputed, and whether the two gave the same tokens.
 *   tsx bench/entropy-speed.ts [--vocab 262144] [--canvas 256] [--hidden 256] [--layers 2]
 *     [--steps 16] [--out FILE]
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { memorySource } from '../codegen/bundle.ts';
import { compileModel } from '../codegen/compile.ts';
import { entropyBoundOnSequence } from '../runtime/entropy-diffusion.ts';
import { GpuModel } from '../runtime/model.ts';
import { acquire } from '../runtime/node/webgpu-node.ts';
import { randomWeights } from '../src/import/random-init.ts';
import { diffusionGemmaModel, readDiffusionGemmaConfig } from '../src/import/hf-diffusion-gemma.ts';
import { entropyBoundGenerate, ENTROPY_BOUND_DEFAULTS } from '../src/ops/diffusion-entropy.ts';

const args = process.argv.slice(2);
const num = (k: string, d: number) => {
  const i = args.indexOf(k);
  return i < 0 ? d : Number(args[i + 1]);
};
const vocab = num('--vocab', 262144);
const canvas = num('--canvas', 256);
const hidden = num('--hidden', 256);
const layers = num('--layers', 2);
const steps = num('--steps', 16);
const outIdx = args.indexOf('--out');

const config = JSON.parse(
  readFileSync('test/fixtures/hf/diffusion_gemma/config.json', 'utf8'),
) as Record<string, unknown> & { text_config: Record<string, unknown> };
config.canvas_length = canvas;
const text = config.text_config;
text.vocab_size = vocab;
text.hidden_size = hidden;
text.num_hidden_layers = layers;
text.layer_types = Array.from({ length: layers }, (_, i) =>
  i % 2 ? 'full_attention' : 'sliding_attention',
);
text.per_layer_config = {};
text.sliding_window = 64;
text.max_position_embeddings = 4096;
const model = diffusionGemmaModel(
  readDiffusionGemmaConfig(config, 'bench'),
  'diffusion-gemma-bench',
);
const P = 64;
const gpu = await acquire();
const t0 = performance.now();
const c = compileModel(model, { caps: gpu.caps, maxT: canvas, capacity: P + canvas });
const gm = await GpuModel.load(gpu, memorySource(c, randomWeights(model, 0)));
console.log(
  `diffusion_gemma shape: vocab ${vocab}, canvas ${canvas}, hidden ${hidden}, ${layers} layers; loaded in ${((performance.now() - t0) / 1000).toFixed(1)} s on ${gpu.adapterInfo?.description ?? 'the GPU'}`,
);
const prompt = Array.from({ length: P }, (_, i) => (i * 7919) % vocab);
const run = {
  ...ENTROPY_BOUND_DEFAULTS,
  canvasLength: canvas,
  genLength: canvas,
  maxSteps: steps,
  // Never stable: every step runs.
  stabilityThreshold: steps + 1,
  eos: [],
  pad: null,
  seed: 1,
};

/** Bytes resolved by GpuModel.readback while `body` runs. */
async function counted<T>(body: () => Promise<T>): Promise<{ out: T; bytes: number }> {
  const original = gm.readback.bind(gm);
  let bytes = 0;
  gm.readback = async <R>(step: string, p: Promise<R>): Promise<R> => {
    const v = await original(step, p);
    if (v instanceof ArrayBuffer) bytes += v.byteLength;
    return v;
  };
  try {
    return { out: await body(), bytes };
  } finally {
    gm.readback = original;
  }
}

const rows: Record<string, unknown>[] = [];
const tokens: Record<string, number[]> = {};
for (const pick of ['host', 'gpu'] as const) {
  const once = async () => {
    let n = 0;
    let recomputed = 0;
    const seq = gm.newSequence();
    const out = await entropyBoundGenerate(entropyBoundOnSequence(seq), prompt, run, {
      deviceRows: pick === 'gpu',
      onStep: (s) => {
        n++;
        recomputed += s.recomputed;
      },
    });
    seq.destroy();
    return { tokens: Array.from(out), n, recomputed };
  };
  await once();
  const t = performance.now();
  const { out, bytes } = await counted(once);
  const s = (performance.now() - t) / 1000;
  tokens[pick] = out.tokens;
  const row = {
    pick,
    steps: out.n,
    msPerStep: (1000 * s) / out.n,
    bytesPerStep: bytes / out.n,
    recomputedRows: out.recomputed,
  };
  rows.push(row);
  console.log(
    `--pick ${pick}: ${out.n} steps, ${row.msPerStep.toFixed(2)} ms a step (prompt encode included), ${(row.bytesPerStep / 1e6).toFixed(3)} MB read back a step, ${out.recomputed} rows recomputed`,
  );
}
const same = tokens.host.every((x, i) => x === tokens.gpu[i]);
console.log(`same tokens: ${same}`);
if (outIdx >= 0)
  writeFileSync(
    args[outIdx + 1],
    JSON.stringify({ vocab, canvas, hidden, layers, steps, rows, same }, null, 2),
  );
gm.destroy();
if (!same) process.exitCode = 1;

/**
 * The main demo: a Jamba-style hybrid (7 Mamba-1 : 1 attention, dense and MoE SwiGLU FFNs
 * alternating) compiled into a bundle with its tokenizer, loaded on WebGPU, and asked to continue
 * a prompt. The model is examples/demo-model, trained by tools/demo-model/train.py on the King
 * James Bible and imported from its HuggingFace folder into a strata spec. Where that folder
 * holds no trained model, the demo says so and runs specs/demo-hybrid.strata with seeded random
 * weights and byte tokens instead: the same pipeline, but its text is noise.
 *
 *   npm run demo [-- "prompt text"]
 */
import { existsSync } from 'node:fs';
import type { ModelIR } from '../src/spec/model.ts';
import type { WeightProvider } from '../src/graph/params.ts';
import { importHfFolder } from '../src/import/hf-folder.ts';
import { readTokenizerFiles, type ModelTokenizer } from '../src/import/tokenizer-files.ts';
import { randomWeights } from '../src/import/random-init.ts';
import { loadSpec } from '../src/spec/load.ts';
import { printSpec } from '../src/spec/print.ts';
import { compileModel } from '../codegen/compile.ts';
import { writeBundle } from '../codegen/bundle.ts';
import { report } from '../src/cli/report.ts';
import { tokenTimer } from '../src/cli/speed.ts';
import { acquire } from '../runtime/node/webgpu-node.ts';
import { openBundle } from '../runtime/node/bundle-node.ts';
import { GpuModel } from '../runtime/model.ts';
import { byteTokenizer, hfTokenizer } from '../runtime/tokenizer.ts';
import { terminalProgress } from '../src/cli/progress.ts';

const modelDir = 'examples/demo-model';
const fallbackSpec = 'specs/demo-hybrid.strata';
const outDir = 'out/demo-hybrid.bundle';
const prompt = process.argv[2] ?? 'And God said';

let model: ModelIR;
let weights: WeightProvider;
let tokenizer: ModelTokenizer = 'bytes';
let close = async () => {};
if (existsSync(`${modelDir}/config.json`)) {
  const hf = await importHfFolder(modelDir, 'demo-hybrid');
  const files = await readTokenizerFiles(modelDir);
  if (!files) throw new Error(`${modelDir}: tokenizer.json is missing`);
  ({ model, tokenizer } = { model: hf.model, tokenizer: files });
  weights = (n) => hf.readTensorF32(n);
  close = () => hf.close();
  console.log(`spec imported from ${modelDir}:\n\n${printSpec(model)}`);
} else {
  model = loadSpec(fallbackSpec);
  weights = randomWeights(model, 1);
  console.log(
    `note: ${modelDir} holds no trained model (tools/demo-model/README.md makes one), so this ` +
      `runs ${fallbackSpec} with seeded random weights: the pipeline is the same, the text is noise\n\n` +
      printSpec(model),
  );
}

const gpu = await acquire();
const a = gpu.adapterInfo;
console.log(
  `WebGPU adapter: ${a.vendor} ${a.description}${gpu.fallback ? ' (SwiftShader CPU fallback)' : ''}`,
);
// f16 weights where the adapter has shader-f16 (the trained checkpoint is F16: nothing is lost).
const precision = gpu.caps.shaderF16 ? 'f16' : 'f32';
const compiled = compileModel(model, { caps: gpu.caps, maxT: 64, capacity: 512, precision });
const r = report(compiled);
console.log(
  `compiled at ${precision}: ${r.kernels} kernels, ${r.dispatchesPerDecodeToken} dispatches per decode token, ` +
    `${r.parameters.toLocaleString('en')} parameters, KV ${r.kvBytesPerToken} B/token`,
);
await writeBundle(compiled, weights, outDir, terminalProgress(), {}, tokenizer);
await close();
console.log(`bundle written to ${outDir}\n`);

const gm = await GpuModel.load(gpu, await openBundle(outDir), terminalProgress());
const tok = typeof tokenizer === 'object' ? hfTokenizer(tokenizer, modelDir) : null;
const decode = tok?.decodeStream();
// Random weights emit arbitrary bytes, mostly not UTF-8: ASCII as text, the rest as \xNN.
const show = (t: number) =>
  decode
    ? decode(t)
    : t >= 32 && t < 127
      ? String.fromCharCode(t)
      : `\\x${t.toString(16).padStart(2, '0')}`;
const ids = tok ? tok.encode(prompt) : byteTokenizer(gm.vocab).encode(prompt);
const eos = tok ? [...tok.eos] : [];
process.stdout.write(`prompt: ${prompt}\ngenerated: ${prompt}`);
const timing = tokenTimer();
for await (const t of gm.newSequence().generate(ids, {
  maxTokens: 64,
  temperature: 0.7,
  topK: 40,
  seed: 42,
  stopTokens: eos,
})) {
  timing.token();
  if (eos.includes(t)) break;
  process.stdout.write(show(t));
}
console.log(`\n\n${timing.line(ids.length)} on ${gpu.fallback ? 'SwiftShader' : a.description}`);
gm.destroy();
process.exit(0);

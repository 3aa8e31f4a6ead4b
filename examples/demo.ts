/**
 * The main demo: a trained Jamba-style hybrid (7 Mamba-1 : 1 attention, dense and MoE SwiGLU
 * FFNs alternating; examples/demo-model, trained by tools/demo-model/train.py on the King James
 * Bible) is imported from its HuggingFace folder into a strata spec, compiled into a bundle
 * with its tokenizer, loaded on WebGPU, and asked to continue a prompt.
 *
 *   npm run demo [-- "prompt text"]
 */
import { importHfFolder } from '../src/import/hf-folder.ts';
import { readTokenizerFiles } from '../src/import/tokenizer-files.ts';
import { printSpec } from '../src/spec/print.ts';
import { compileModel } from '../codegen/compile.ts';
import { writeBundle } from '../codegen/bundle.ts';
import { report } from '../src/cli/report.ts';
import { tokenTimer } from '../src/cli/speed.ts';
import { acquire } from '../runtime/node/webgpu-node.ts';
import { openBundle } from '../runtime/node/bundle-node.ts';
import { GpuModel } from '../runtime/model.ts';
import { hfTokenizer } from '../runtime/tokenizer.ts';
import { terminalProgress } from '../src/cli/progress.ts';

const modelDir = 'examples/demo-model';
const outDir = 'out/demo-hybrid.bundle';
const prompt = process.argv[2] ?? 'And God said';

const hf = await importHfFolder(modelDir, 'demo-hybrid');
const files = await readTokenizerFiles(modelDir);
if (!files) throw new Error(`${modelDir}: tokenizer.json is missing`);
console.log(`spec imported from ${modelDir}:\n\n${printSpec(hf.model)}`);

const gpu = await acquire();
const a = gpu.adapterInfo;
console.log(
  `WebGPU adapter: ${a.vendor} ${a.description}${gpu.fallback ? ' (SwiftShader CPU fallback)' : ''}`,
);
// f16 weights where the adapter has shader-f16 (the checkpoint is F16, so nothing is lost).
const precision = gpu.caps.shaderF16 ? 'f16' : 'f32';
const compiled = compileModel(hf.model, { caps: gpu.caps, maxT: 64, capacity: 512, precision });
const r = report(compiled);
console.log(
  `compiled at ${precision}: ${r.kernels} kernels, ${r.dispatchesPerDecodeToken} dispatches per decode token, ` +
    `${r.parameters.toLocaleString('en')} parameters, KV ${r.kvBytesPerToken} B/token`,
);
await writeBundle(compiled, (n) => hf.readTensorF32(n), outDir, terminalProgress(), {}, files);
await hf.close();
console.log(`bundle written to ${outDir}\n`);

const gm = await GpuModel.load(gpu, await openBundle(outDir), terminalProgress());
const tok = hfTokenizer(files, modelDir);
const decode = tok.decodeStream();
process.stdout.write(`prompt: ${prompt}\ngenerated: ${prompt}`);
const ids = tok.encode(prompt);
const timing = tokenTimer();
for await (const t of gm.newSequence().generate(ids, {
  maxTokens: 64,
  temperature: 0.7,
  topK: 40,
  seed: 42,
  stopTokens: [...tok.eos],
})) {
  timing.token();
  if (tok.eos.includes(t)) break;
  process.stdout.write(decode(t));
}
console.log(`\n\n${timing.line(ids.length)} on ${gpu.fallback ? 'SwiftShader' : a.description}`);
gm.destroy();
process.exit(0);

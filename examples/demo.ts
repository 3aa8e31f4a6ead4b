/**
 * The main demo: compile a Jamba-style hybrid spec (7 Mamba-1 : 1 attention, dense
 * and MoE FFNs alternating) into a bundle, load it on WebGPU and stream generated text.
 * Weights are seeded random, so the text is noise: the demo shows the pipeline
 * (parse → IR → fused WGSL → bundle → GPU generation), not a trained model.
 */
import { loadSpec } from '../src/spec/load.ts';
import { layerTable } from '../src/spec/table.ts';
import { compileModel } from '../codegen/compile.ts';
import { writeBundle } from '../codegen/bundle.ts';
import { randomWeights } from '../src/import/random-init.ts';
import { report } from '../src/cli/report.ts';
import { acquire } from '../runtime/node/webgpu-node.ts';
import { openBundle } from '../runtime/node/bundle-node.ts';
import { GpuModel } from '../runtime/model.ts';
import { byteTokenizer } from '../runtime/tokenizer.ts';
import { terminalProgress } from '../src/cli/progress.ts';

const specPath = process.argv[2] ?? 'specs/demo-hybrid.strata';
const outDir = 'out/demo-hybrid.bundle';

const model = await loadSpec(specPath);
console.log(`spec ${specPath}\n${layerTable(model)}\n`);

const gpu = await acquire();
const a = gpu.adapterInfo;
console.log(
  `WebGPU adapter: ${a.vendor} ${a.description}${gpu.fallback ? ' (SwiftShader CPU fallback)' : ''}`,
);

const compiled = compileModel(model, { caps: gpu.caps, maxT: 32, capacity: 256 });
const r = report(compiled);
console.log(
  `compiled: ${r.kernels} kernels, ${r.dispatchesPerDecodeToken} dispatches per decode token, ` +
    `${r.parameters.toLocaleString('en')} parameters, KV ${r.kvBytesPerToken} B/token`,
);
await writeBundle(compiled, randomWeights(model, 1), outDir, terminalProgress());
console.log(`bundle written to ${outDir}\n`);

const gm = await GpuModel.load(gpu, await openBundle(outDir), terminalProgress());
const tok = byteTokenizer(gm.vocab);
const prompt = 'The quick brown fox';
process.stdout.write(`prompt: ${prompt}\ngenerated: `);
const seq = gm.newSequence();
const t0 = performance.now();
let n = 0;
for await (const t of seq.generate(tok.encode(prompt), {
  maxTokens: 32,
  temperature: 0.8,
  topK: 40,
  seed: 42,
})) {
  // Random weights emit arbitrary bytes, mostly not UTF-8: print ASCII as text, the rest as \xNN.
  process.stdout.write(
    t >= 32 && t < 127 ? String.fromCharCode(t) : `\\x${t.toString(16).padStart(2, '0')}`,
  );
  n++;
}
const secs = (performance.now() - t0) / 1000;
console.log(
  `\n\n${n} tokens in ${secs.toFixed(2)} s (${(n / secs).toFixed(1)} tokens/s on ${gpu.fallback ? 'SwiftShader' : a.description})`,
);
gm.destroy();
process.exit(0);

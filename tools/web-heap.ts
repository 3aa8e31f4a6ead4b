/**
 * Peak JS memory (V8 heap + ArrayBuffers) while loadModel() streams a 177 MiB bundle over HTTP
 * in Node, against its largest tensor (62.5 MiB): issue 14 asks for less than twice the largest
 * tensor. Run: node --expose-gc --import tsx tools/web-heap.ts (a few minutes on SwiftShader).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadSpec } from '../src/spec/load.ts';
import { compileModel } from '../codegen/compile.ts';
import { writeBundle } from '../codegen/bundle.ts';
import { randomWeights } from '../src/import/random-init.ts';
import { loadModel } from '../runtime/web.ts';
import { startServer } from '../src/cli/serve-cmd.ts';
import { acquire } from '../runtime/node/webgpu-node.ts';
import { dtypeBytes } from '../src/graph/dtype.ts';
import { numel } from '../formats/safetensors.ts';
import { HEAP_PROBE_SPEC as SPEC } from './heap-probe.ts';
const gpu = await acquire();
const tmp = mkdtempSync(join(tmpdir(), 'heap-'));
writeFileSync(join(tmp, 'probe.strata'), SPEC);
const model = loadSpec(join(tmp, 'probe.strata'));
const c = compileModel(model, { caps: gpu.caps, maxT: 16, capacity: 64 });
const dir = join(tmp, 'b');
await writeBundle(c, randomWeights(model, 1), dir);
const s = await startServer(dir, { port: 0 });
const gc = (globalThis as { gc?: () => void }).gc!;
gc();
gc();
const mem = () => {
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
};
const base = mem();
let peak = base;
let total = 0;
const m = await loadModel(`${s.url}bundle/`, {
  gpu,
  onProgress: (p) => {
    peak = Math.max(peak, mem());
    if (p.stage === 'weights') total = p.total;
  },
});
const largest = Math.max(...m.manifest.tensors.map((t) => dtypeBytes(t.dtype, numel(t.shape))));
const MB = (x: number) => (x / 2 ** 20).toFixed(1) + ' MiB';
console.log(
  `weights file ${MB(total)}, largest tensor ${MB(largest)}, peak heap+arrayBuffers over baseline ${MB(peak - base)}`,
);
m.dispose();
await s.close();
rmSync(tmp, { recursive: true, force: true });

/**
 * Peak JS memory in headless Chromium while `strata serve`'s page loads a 177 MiB bundle (largest
 * tensor 62.5 MiB): V8's used heap plus ArrayBuffer backing stores, polled through the DevTools
 * protocol (Runtime.getHeapUsage) while the weights stream. Run after tools/setup.sh:
 * npx tsx tools/web-heap-browser.ts (a minute or two on SwiftShader).
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { loadSpec } from '../src/spec/load.ts';
import { compileModel } from '../codegen/compile.ts';
import { writeBundle } from '../codegen/bundle.ts';
import { randomWeights } from '../src/import/random-init.ts';
import { startServer } from '../src/cli/serve-cmd.ts';
import { acquire } from '../runtime/node/webgpu-node.ts';
import { dtypeBytes, type WeightType } from '../src/graph/dtype.ts';
import { numel } from '../formats/safetensors.ts';
import { HEAP_PROBE_SPEC as SPEC } from './heap-probe.ts';

const tmp = mkdtempSync(join(tmpdir(), 'heap-'));
writeFileSync(join(tmp, 'probe.strata'), SPEC);
const model = loadSpec(join(tmp, 'probe.strata'));
const c = compileModel(model, { caps: (await acquire()).caps, maxT: 16, capacity: 64 });
await writeBundle(c, randomWeights(model, 1), join(tmp, 'b'));
const { tensors } = JSON.parse(readFileSync(join(tmp, 'b', 'manifest.json'), 'utf8')) as {
  tensors: { dtype: WeightType; shape: number[] }[];
};
const largest = Math.max(...tensors.map((t) => dtypeBytes(t.dtype, numel(t.shape))));
const s = await startServer(join(tmp, 'b'), { port: 0 });
const ctx = await chromium.launchPersistentContext(join(tmp, 'profile'), {
  executablePath: process.env.STRATA_CHROMIUM ?? '/usr/bin/chromium',
  headless: false,
  args: ['--headless=new', '--enable-unsafe-webgpu', '--no-sandbox', '--no-first-run'],
});
const page = await ctx.newPage();
const cdp = await ctx.newCDPSession(page);
const usage = async () => {
  const u = (await cdp.send('Runtime.getHeapUsage')) as {
    usedSize: number;
    backingStorageSize?: number;
  };
  return u.usedSize + (u.backingStorageSize ?? 0);
};
await page.goto(s.url);
let base = Infinity;
let peak = 0;
for (;;) {
  const state = await page.evaluate(() => document.body.dataset.state);
  const m = await usage();
  if (state === 'starting' || state === 'loading') base = Math.min(base, m);
  peak = Math.max(peak, m);
  if (state !== 'starting' && state !== 'loading') {
    console.log(
      `state ${state}: ${await page.textContent(state === 'ready' ? '#load' : '#error')}`,
    );
    break;
  }
  await new Promise((r) => setTimeout(r, 25));
}
const MB = (x: number) => (x / 2 ** 20).toFixed(1) + ' MiB';
console.log(
  `largest tensor ${MB(largest)}; JS heap + ArrayBuffers during the load: lowest ${MB(base)}, peak ${MB(peak)}, peak over lowest ${MB(peak - base)}`,
);
await ctx.close();
await s.close();
rmSync(tmp, { recursive: true, force: true });

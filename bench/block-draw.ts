/**
 * Block diffusion's draw at LLaDA's vocab (126,464, mask id 126,336): the GPU kernel
 * (codegen/kernels/block-draw.ts, GPU timestamps, median of its samples) against the host's
 * drawToken (src/ops/block-diffusion.ts, wall time on this machine's CPU) on the same random rows,
 * at temperature 0, at 1 without a cut, and at 1 with bd3lms's nucleus 0.9; 1 and 16 rows (a
 * first-hitting step draws one, a ddpm step up to a block). The kernel's tokens are checked
 * against the host's on every row.
 *   tsx bench/block-draw.ts [--gpu-flags fast] [--out FILE]
 */
import { parseArgs } from 'node:util';
import { blockDrawKernel } from '../codegen/kernels/block-draw.ts';
import { acquire } from '../runtime/node/webgpu-node.ts';
import { drawToken } from '../src/ops/block-diffusion.ts';
import { median, timeLaunches } from './gpu-timer.ts';
import { writeResult } from './args.ts';

const { values } = parseArgs({
  options: { 'gpu-flags': { type: 'string' }, out: { type: 'string' } },
});
const VOCAB = 126464;
const MASK = 126336;
const gpu = await acquire({ flags: values['gpu-flags']?.split(',') });
const log = (m: string) => process.stderr.write(m + '\n');
log(`device: ${gpu.adapterInfo.description}`);

/** Seeded logits with a spread like a model's (a few large, most small). */
function logits(rows: number, seed: number): Float32Array {
  const out = new Float32Array(rows * VOCAB);
  let s = seed >>> 0;
  for (let i = 0; i < out.length; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    const u = (s >>> 8) / 16777216;
    out[i] = 4 * Math.log(u / (1 - u + 1e-7) + 1e-7);
  }
  return out;
}

const rows: Record<string, unknown>[] = [];
for (const R of [1, 16]) {
  const l = logits(R, 7 + R);
  const positions = Uint32Array.from({ length: R }, (_, r) => 64 + r);
  // bd3lms's setting first: a cut run keeps it.
  for (const [temperature, nucleusP] of [
    [1, 0.9],
    [1, 1],
    [0, 1],
  ] as const) {
    const sampling = { seed: 1, draw: 3, temperature, topK: 0, topP: nucleusP };
    const t = await timeLaunches(
      gpu,
      [blockDrawKernel(VOCAB, MASK, gpu.caps.maxInvocationsPerWorkgroup)],
      { logits: l.byteLength, positions: 4 * R, picks: 4 * R },
      { T: R, pos: 0, L: 1 },
      {
        reps: 5,
        samples: 5,
        init: { logits: l, positions },
        readBack: ['picks'],
        sampling,
      },
    );
    const host: number[] = [];
    const want: number[] = [];
    // One host pass for 16 rows (about half a second on the H100's host), three for one.
    for (let k = 0; k < (R === 1 ? 3 : 1); k++) {
      const t0 = performance.now();
      want.length = 0;
      for (let r = 0; r < R; r++)
        want.push(
          drawToken(l, r, VOCAB, {
            seed: 1,
            step: 3,
            position: positions[r],
            temperature,
            nucleusP,
            maskId: MASK,
          }),
        );
      host.push(performance.now() - t0);
    }
    const got = Array.from(new Uint32Array(t.outputs.picks.buffer));
    const agree = got.filter((x, r) => x === want[r]).length;
    const row = {
      rows: R,
      temperature,
      nucleusP,
      gpuMs: t.gpuMs,
      wallMs: t.wallMs,
      hostMs: median(host),
      agree: `${agree}/${R}`,
    };
    rows.push(row);
    // Written after every row, so a cut run keeps what it measured.
    writeResult(values.out, 'bench/block-draw.ts', {
      device: gpu.adapterInfo.description,
      vocab: VOCAB,
      rows,
    });
    log(
      `${R} row(s), T ${temperature}, nucleus ${nucleusP}: GPU ${t.gpuMs?.toFixed(3) ?? '—'} ms (wall ${t.wallMs.toFixed(3)}), host ${median(host).toFixed(1)} ms; tokens agree ${agree}/${R}`,
    );
  }
}
process.exit(0);

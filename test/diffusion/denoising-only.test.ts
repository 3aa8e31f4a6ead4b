/**
 * Denoising-only nodes (GraphNode.denoising, src/passes/denoising-only.ts): the emitter counts
 * their launches' rows in grid symbol D (no workgroups when keys = 0), and refuses a graph where
 * a node that runs in every step reads their output (except as a phased add's b), where one
 * writes state or the logits, or where one's grid has no dimension that D can empty; inspect's
 * report counts them.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { GraphBuilder } from '../../src/graph/builder.ts';
import type { Graph } from '../../src/graph/ir.ts';
import { plainMatmul } from '../../src/graph/ops.ts';
import { checkDenoisingOnly } from '../../src/passes/denoising-only.ts';
import { emitPhase } from '../../codegen/emit.ts';
import { resolveGridDim } from '../../codegen/kernel-ir.ts';
import { BASELINE_CAPS } from '../../src/target.ts';
import { compileModel } from '../../codegen/compile.ts';
import { report } from '../../src/cli/report.ts';
import {
  diffusionGemmaModel,
  readDiffusionGemmaConfig,
} from '../../src/import/hf-diffusion-gemma.ts';
import { parseSpec } from '../../src/spec/load.ts';

const W = 4;

/** e = a state's rows, sc = e·w (denoising-only, when marked), out = e + sc. */
function graph(o: { marked: boolean; phased: boolean; rows?: 'T' | 'L'; maxT?: number }): Graph {
  const maxT = o.maxT ?? 4;
  const b = new GraphBuilder(maxT === 1 ? 'decode' : 'prefill', maxT, 8);
  const ids = b.tensor('ids', ['T'], 'input', 'u32');
  const table = b.param('table', [16, W]);
  const e = b.op(
    { op: 'state_rows', rows: maxT, width: W },
    'e',
    { state: b.state('s', [maxT, W]) },
    { out: { name: 'e', shape: ['T', W] } },
  ).out;
  b.denoising = o.marked;
  const sc = b.op(
    { ...plainMatmul(W, W, o.rows ?? 'T') },
    'sc',
    { x: e, w: b.param('w', [W, W]) },
    { out: { name: 'sc', shape: [o.rows ?? 'T', W] } },
  ).out;
  b.denoising = false;
  const sum = b.op(
    { op: 'add', width: W, scale: 1, ...(o.phased ? { phased: true } : {}) },
    'sum',
    { a: e, b: sc },
    { out: { name: 'sum', shape: ['T', W] } },
  ).out;
  const logits = b.op(
    plainMatmul(16, W, 'L'),
    'head',
    { x: sum, w: table },
    { out: { name: 'logits', shape: ['L', 16] } },
  ).out;
  const token = b.tensor('token', [1], 'activation', 'u32');
  return b.finish(ids, logits, token);
}

describe('denoising-only nodes', () => {
  it("empty their launches' grids in encoding steps", () => {
    const p = emitPhase(graph({ marked: true, phased: true }), BASELINE_CAPS, new Map());
    const sc = p.dispatches.find((d) => d.label === 'sc')!;
    const sum = p.dispatches.find((d) => d.label === 'sum')!;
    const grid = (g: typeof sc.grid, keys: number) =>
      g.map((d) => resolveGridDim(d, { T: 3, pos: 0, L: 3, keys }));
    expect(grid(sc.grid, 0)).toContain(0);
    expect(grid(sc.grid, 5)).not.toContain(0);
    expect(grid(sum.grid, 0)).not.toContain(0);
  });

  it('refuses a reader that runs in every step, naming both nodes', () => {
    expect(() => checkDenoisingOnly(graph({ marked: true, phased: false }))).toThrow(
      "node 'sum' runs in every step but reads 'sc' (input 'b') from 'sc', which runs in denoising steps only",
    );
    expect(() => checkDenoisingOnly(graph({ marked: false, phased: false }))).not.toThrow();
  });

  it('refuses a denoising-only node that writes state, or whose grid D cannot empty', () => {
    const g = graph({ marked: true, phased: true });
    const head = g.nodes.find((n) => n.label === 'head')!;
    expect(() =>
      checkDenoisingOnly({
        ...g,
        nodes: g.nodes.map((n) => (n === head ? { ...n, denoising: true } : n)),
      }),
    ).toThrow("node 'head' runs in denoising steps only but writes the graph's logits");
    // Rows counted in L: no dimension scales with T.
    expect(() =>
      emitPhase(graph({ marked: true, phased: true, rows: 'L' }), BASELINE_CAPS, new Map()),
    ).toThrow(
      /node 'sc'\) runs in denoising steps only, but no dimension of its grid .* is 0 when T is/,
    );
  });

  it("inspect's report counts the denoising-only launches of a phase, and only where there are some", () => {
    const config = JSON.parse(
      readFileSync('test/fixtures/hf/diffusion_gemma/config.json', 'utf8'),
    ) as object;
    const model = diffusionGemmaModel(readDiffusionGemmaConfig(config, 'fixture'), 'dg');
    const c = compileModel(model, { caps: BASELINE_CAPS, maxT: 16, capacity: 64 });
    // The self-conditioning branch: the probabilities' rows, the soft embedding, the MLP with
    // its norm fused into gate+up, and its down projection.
    const labels = c.phases.prefill.dispatches.map((d) => d.label);
    const branch = [
      'self_condition probs',
      'self_condition soft embedding',
      'self_condition gelu_tanh-glu (gate+up fused) (norm fused)',
      'self_condition.down',
    ];
    for (const l of branch) expect(labels).toContain(l);
    // The phased add after it runs in every step.
    expect(labels).toContain('self_condition residual');
    expect(report(c).prefill.denoisingOnlyDispatches).toBe(branch.length);
    const plain = compileModel(parseSpec(readFileSync('specs/tiny-llama.strata', 'utf8'), 't'), {
      caps: BASELINE_CAPS,
      maxT: 16,
      capacity: 64,
    });
    expect(report(plain).prefill.denoisingOnlyDispatches).toBeUndefined();
  });
});

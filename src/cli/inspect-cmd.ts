import { parseArgs } from 'node:util';
import type { Command } from './command.ts';
import { UserError } from './command.ts';
import { report } from './report.ts';
import type { Graph } from '../graph/ir.ts';
import {
  COMMON_COMPILE_HELP,
  COMMON_COMPILE_OPTIONS,
  compileWithOptions,
  gpuFlags,
  intOption,
  kvOption,
  targetCaps,
} from './compile-cmd.ts';
import { loadModelInput } from './model-input.ts';
import { browserBudgets, budgetLines } from './browser-budgets.ts';
import { describeDiffusion } from '../spec/kinds/diffusion.ts';
import { autoregressiveCost, diffusionScheduleCost } from './diffusion-cost.ts';
import { diffusionRunOptions } from './diffusion-run.ts';
import { blockDiffusionRunOptions, modelAttentionBlock } from './block-diffusion-run.ts';
import { blockScheduleCost } from './block-diffusion-cost.ts';
import { humanBytes as bytes, humanCount, humanFlops, layerList } from './units.ts';

export function formatGraph(g: Graph): string {
  const name = (id: number) => g.tensors[id].name;
  return g.nodes
    .map((n) => {
      const ins = Object.entries(n.inputs)
        .map(([k, v]) => `${k}=${name(v)}`)
        .join(' ');
      const outs = Object.entries(n.outputs)
        .map(([k, v]) => `${k}=${name(v)}`)
        .join(' ');
      return `  ${String(n.id).padStart(3)} ${n.attrs.op.padEnd(9)} ${n.label}\n        ${ins} -> ${outs}`;
    })
    .join('\n');
}

export const inspectCommand: Command = {
  name: 'inspect',
  summary:
    'Report dispatches, FLOPs, bytes, parameters and memory of a compiled spec; show the passes',
  usage: `usage: strata inspect <spec|hf-folder|ORG/NAME[@REV]> [--json] [--passes] [--phase prefill|decode] [options]

  --json             machine-readable report
  --passes           print the graph before and after each pass
  --phase P          the phase --passes shows (default decode)
  --storage-buffers N  cost kernels that may bind N storage buffers (a device's
                     maxStorageBuffersPerShaderStage, WebGPU's minimum 8) on the --target's
                     other limits: decode fusions that need more than the target allows (RWKV-7's
                     time mix) keep separate dispatches, so the counts follow this budget
  --browser          whether the model fits a browser tab at each precision (WebGPU's default
                     limits, a 4 GiB tab): compiles it four times
  diffusion models: the cost per generated token of a schedule (the spec's, or --gen-length,
  --block-length, --steps, --cache, --threshold, and for bd3lm --sampler, as strata run takes
  them) for a prompt of
  --prompt-length N tokens (default 0), beside an autoregressive model of the same weights

inspect opens no GPU unless asked: its --target defaults to nominal (WebGPU's baseline kernels
with unbounded buffers, so nothing is split); --target device compiles for this machine's adapter.
${COMMON_COMPILE_HELP}`,
  async run(argv) {
    const { values, positionals } = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        ...COMMON_COMPILE_OPTIONS,
        json: { type: 'boolean' },
        passes: { type: 'boolean' },
        phase: { type: 'string' },
        browser: { type: 'boolean' },
        'storage-buffers': { type: 'string' },
        'prompt-length': { type: 'string' },
        'gen-length': { type: 'string' },
        'block-length': { type: 'string' },
        steps: { type: 'string' },
        cache: { type: 'string' },
        threshold: { type: 'string' },
        sampler: { type: 'string' },
      },
    });
    if (positionals.length !== 1) throw new UserError('inspect takes one spec (see --help)');
    // Before the model is read: --phase picks what --passes prints, and alone it would do nothing.
    const phase = values.phase ?? 'decode';
    if (phase !== 'prefill' && phase !== 'decode')
      throw new UserError(`--phase must be prefill or decode, got '${phase}'`);
    if (values.phase !== undefined && !values.passes)
      throw new UserError('--phase goes with --passes (it picks the phase whose passes are shown)');
    const input = await loadModelInput(positionals[0], {
      seed: 0,
      hf: values.hf,
      weightsFile: values.weights,
      offline: values.offline,
      // Costs come from the config: a checkpoint's (or a Hub model's) weights are not needed.
      configOnly: true,
    });
    // Only the model is needed: a spec's --weights checkpoint was checked against it at load.
    await input.close();
    const target = values.target ?? 'nominal';
    const targeted = await targetCaps(target, gpuFlags(values['gpu-flags']));
    const storage = intOption(values['storage-buffers'], 'storage-buffers', undefined, 8);
    const caps = storage ? { ...targeted, maxStorageBuffersPerStage: storage } : targeted;
    const compiled = compileWithOptions(input.model, caps, values);
    const r = report(compiled);
    if (values.passes) {
      for (const entry of compiled.passLog[phase]) {
        console.log(`== after ${entry.pass}: ${entry.graph.nodes.length} nodes ==`);
        console.log(formatGraph(entry.graph));
      }
    }
    const budgets = values.browser
      ? browserBudgets(input.model, {
          maxT: compiled.maxT,
          capacity: compiled.capacity,
          kv: kvOption(values.kv),
          fuse: compiled.fused,
        })
      : null;
    if (values.json) {
      console.log(JSON.stringify(budgets ? { ...r, browser: budgets } : r, null, 2));
      return 0;
    }
    const byType = Object.entries(r.parameterBytesByType)
      .map(([t, b]) => `${bytes(b)} ${t}`)
      .join(' + ');
    // Said when inspect chose the target itself: a user who gave --target knows.
    if (values.target === undefined)
      console.log(
        `target ${target}: no GPU opened (--target device compiles for this machine's adapter)`,
      );
    console.log(
      `model ${r.name}: ${humanCount(r.parameters)} parameters (${r.parameters.toLocaleString('en')}); weights at precision ${r.precision}: ` +
        `${bytes(r.parameterBytes)}${Object.keys(r.parameterBytesByType).length > 1 ? ` (${byType})` : ''}`,
    );
    if (r.activeParameters !== r.parameters) {
      console.log(
        `active parameters per token: ${humanCount(r.activeParameters)} ` +
          `(${((100 * r.activeParameters) / r.parameters).toFixed(1)}% of all; MoE layers count their top-k experts)`,
      );
    }
    console.log(`FLOPs per decoded token: ${humanFlops(r.flopsPerToken)} (active experts only)`);
    // Layers with the same MoE settings and cost on one line.
    const moeGroups = new Map<string, number[]>();
    for (const f of r.ffn.filter((x) => x.kind === 'moe')) {
      const key = `${f.experts} experts, top ${f.topK}: ${humanFlops(f.flopsPerToken)} per token`;
      moeGroups.set(key, [...(moeGroups.get(key) ?? []), f.layer]);
    }
    for (const [what, layers] of moeGroups) {
      const each = layers.length > 1 ? ' each' : '';
      console.log(
        `  moe layer${layers.length > 1 ? 's' : ''} ${layerList(layers)}: ${what}${each}`,
      );
    }
    const model = input.model;
    if (model.diffusion?.kind === 'bd3lm') {
      const prompt = intOption(values['prompt-length'], 'prompt-length', 0, 0)!;
      const run = blockDiffusionRunOptions(values, model.diffusion, modelAttentionBlock(model), 0);
      const g = compiled.graphs;
      const per = (c: { flops: number; bytesRead: number }) =>
        `${humanFlops(c.flops / run.genLength)}, read ${bytes(Math.round(c.bytesRead / run.genLength))} per generated token`;
      const s = blockScheduleCost(g.prefill, prompt, run);
      // LLaDA's exact sampler on the same weights: a full forward a step, steps = gen length.
      const whole = run.genLength % run.blockLength === 0 ? run.blockLength : run.genLength;
      const llada = diffusionScheduleCost(g.prefill, prompt, {
        genLength: run.genLength,
        blockLength: whole,
        steps: run.genLength,
        remasking: 'low_confidence',
        temperature: 0,
        cfgScale: 0,
        maskId: run.maskId,
        seed: 0,
      });
      const ar = autoregressiveCost(g.prefill, g.decode, prompt, run.genLength);
      console.log(describeDiffusion(model.diffusion));
      console.log(
        `  schedule: gen length ${run.genLength}, blocks of ${run.blockLength}, ${run.sampler} (${run.sampler === 'ddpm' ? `at most ${run.steps} steps a block` : 'a step a token'}), prompt ${prompt}: ` +
          `${s.forwards} forwards over ${s.rows} rows (each block against the exact cache of the ones before); ${per(s.total)}`,
      );
      console.log(
        `  LLaDA's sampler, same weights (steps = gen length, blocks of ${whole}, no cache): ${llada.forwards} forwards over ${llada.rows} rows; ${per(llada.total)}`,
      );
      console.log(
        `  autoregressive, same weights: ${per(ar)} (block diffusion: ${(s.total.flops / ar.flops).toFixed(1)}x the FLOPs, ${(s.total.bytesRead / ar.bytesRead).toFixed(1)}x the bytes)`,
      );
    } else if (model.diffusion?.kind === 'entropy_bound') {
      // Its steps (encode the context, denoise each canvas) have no schedule cost model yet.
      console.log(describeDiffusion(model.diffusion));
    } else if (model.diffusion) {
      const prompt = intOption(values['prompt-length'], 'prompt-length', 0, 0)!;
      const run = diffusionRunOptions(values, model.diffusion, 0);
      const g = compiled.graphs;
      const s = diffusionScheduleCost(g.prefill, prompt, run);
      const ar = autoregressiveCost(g.prefill, g.decode, prompt, run.genLength);
      const per = (c: { flops: number; bytesRead: number }) =>
        `${humanFlops(c.flops / run.genLength)}, read ${bytes(Math.round(c.bytesRead / run.genLength))} per generated token`;
      const blocks = run.genLength / run.blockLength;
      console.log(
        `${describeDiffusion(model.diffusion)}; each step is one bidirectional forward over the whole canvas, or with a cache its span`,
      );
      console.log(
        `  schedule: gen length ${run.genLength} in ${blocks} block${blocks === 1 ? '' : 's'} of ${run.blockLength}, ${run.steps} steps, cache ${run.cache ?? 'none'}` +
          `${run.threshold ? `, threshold ${run.threshold} (at most these steps)` : ''}, prompt ${prompt}: ` +
          `${s.forwards} forwards over ${s.rows} rows; ${per(s.total)}`,
      );
      console.log(
        `  autoregressive, same weights: prefill of the prompt, then a decode step a token: ${per(ar)} ` +
          `(the schedule: ${(s.total.flops / ar.flops).toFixed(1)}x the FLOPs, ${(s.total.bytesRead / ar.bytesRead).toFixed(1)}x the bytes)`,
      );
    }
    console.log(`fusion ${r.fused ? 'on' : 'off'}; ${r.kernels} distinct kernels`);
    // The budget the fusions were chosen under: another device's may fuse more (--storage-buffers).
    const budget = ` (kernels binding at most ${r.storageBuffersPerKernel} storage buffers)`;
    console.log(
      r.batch > 1
        ? `dispatches per decode step (a token of each of ${r.batch} sequences): ${r.dispatchesPerDecodeToken}${budget}`
        : `dispatches per decode token: ${r.dispatchesPerDecodeToken}${budget}`,
    );
    for (const p of [r.prefill, r.decode]) {
      const which = p === r.prefill ? 'prefill' : 'decode';
      console.log(
        `${which.padEnd(7)} T=${p.tokens} pos=${p.pos}: ${p.dispatches} dispatches` +
          (p.denoisingOnlyDispatches
            ? ` (${p.denoisingOnlyDispatches} in denoising steps only, skipped when encoding)`
            : '') +
          `, ${humanFlops(p.flops)}, ` +
          `read ${bytes(p.bytesRead)}, write ${bytes(p.bytesWritten)}, activations ${bytes(p.activationBytes)} ` +
          `(${bytes(p.activationBytesWithoutReuse)} without reuse)`,
      );
    }
    console.log(
      `KV cache: ${bytes(r.kvBytesPerToken)} per token; ${bytes(r.stateBytesPerSequence)} per sequence at capacity ${r.capacity}`,
    );
    const rings = r.layers.filter((l) => l.kvRows !== null);
    if (rings.length > 0) {
      const rows = [...new Set(rings.map((l) => l.kvRows))].join(', ');
      console.log(
        `  ${rings.length} streaming, global-token or H2O-evicting layers keep caches of ${rows} rows: their KV stops growing there`,
      );
    }
    const sparse = r.layers.filter((l) => l.attentionDensity !== undefined);
    if (sparse.length > 0) {
      const pct = [...new Set(sparse.map((l) => `${(100 * l.attentionDensity!).toFixed(1)}%`))];
      console.log(
        `  ${sparse.length} block-sparse layers keep every KV row (a later query block may keep any earlier block); ` +
          `a token decoded at capacity ${r.capacity} does ${pct.join(', ')} of their dense attention FLOPs`,
      );
    }
    // What batching can hold: the smaller a sequence's caches, the more sequences share the
    // weights read by one batched decode step (compile --batch).
    const memory = Object.keys(r.batchFit[0]?.maxBatch ?? {});
    console.log(
      `batch memory (weights + B x (KV at context + recurrent state)), largest B within ${memory.join(' / ')}: ` +
        r.batchFit
          .map(
            (f) =>
              `${f.context.toLocaleString('en')}: ${bytes(f.bytesPerSequence)} a sequence, B ${memory.map((b) => f.maxBatch[b].toLocaleString('en')).join(' / ')}`,
          )
          .join('; '),
    );
    if (r.batch > 1)
      console.log(
        `batched decode: ${r.batch} sequences a step (memory above is per sequence); each prompt ` +
          `is prefilled into its own slot first, ${r.prefill.tokens} tokens a step (the prefill line): ` +
          `a prompt of T tokens takes ceil(T / ${r.prefill.tokens}) prefill steps, not T batched steps`,
      );
    console.log(
      `KV memory against context: ${r.kvBytesByContext.map((k) => `${k.context.toLocaleString('en')}: ${bytes(k.bytes)}`).join('; ')}`,
    );
    if (r.recurrentStateBytes > 0) {
      console.log(
        `recurrent state: ${bytes(r.recurrentStateBytes)} per sequence, at any context length`,
      );
      // Per mixer kind; --json lists every layer.
      for (const kind of [...new Set(r.layers.map((l) => l.mixer))]) {
        const ls = r.layers.filter((l) => l.mixer === kind);
        const range = (f: (l: (typeof ls)[number]) => number, fmt: (n: number) => string) => {
          const lo = Math.min(...ls.map(f));
          const hi = Math.max(...ls.map(f));
          return lo === hi ? fmt(lo) : `${fmt(lo)} to ${fmt(hi)}`;
        };
        const held = ls.some((l) => l.kvBytesPerToken > 0)
          ? `KV ${range((l) => l.kvBytesPerToken, bytes)} per token each`
          : ls.some((l) => l.stateBytes > 0)
            ? `state ${range((l) => l.stateBytes, bytes)} each`
            : 'no state';
        console.log(`  ${kind.padEnd(9)} ${String(ls.length).padStart(3)} layers: ${held}`);
      }
    }
    if (budgets) for (const line of budgetLines(budgets, compiled.capacity)) console.log(line);
    return 0;
  },
};

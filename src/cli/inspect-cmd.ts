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

function mib(b: number): string {
  return `${(b / 2 ** 20).toFixed(2)} MiB`;
}

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
  --browser          whether the model fits a browser tab at each precision (WebGPU's default
                     limits, a 4 GiB tab): compiles it four times
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
      },
    });
    if (positionals.length !== 1) throw new UserError('inspect takes one spec (see --help)');
    const input = await loadModelInput(positionals[0], {
      seed: 0,
      hf: values.hf,
      weightsFile: values.weights,
      offline: values.offline,
      // Costs come from the config: a checkpoint's (or a Hub model's) weights are not needed.
      configOnly: true,
    });
    const caps = await targetCaps(values.target, gpuFlags(values['gpu-flags']));
    const compiled = compileWithOptions(input.model, caps, values);
    const r = report(compiled);
    if (values.passes) {
      const phase = values.phase ?? 'decode';
      if (phase !== 'prefill' && phase !== 'decode')
        throw new UserError(`--phase must be prefill or decode, got '${phase}'`);
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
      .map(([t, b]) => `${mib(b)} ${t}`)
      .join(' + ');
    console.log(
      `model ${r.name}: ${r.parameters.toLocaleString('en')} parameters; weights at precision ${r.precision}: ` +
        `${mib(r.parameterBytes)}${Object.keys(r.parameterBytesByType).length > 1 ? ` (${byType})` : ''}`,
    );
    if (r.activeParameters !== r.parameters) {
      console.log(
        `active parameters per token: ${r.activeParameters.toLocaleString('en')} ` +
          `(${((100 * r.activeParameters) / r.parameters).toFixed(1)}% of all; MoE layers count their top-k experts)`,
      );
    }
    console.log(
      `FLOPs per decoded token: ${(r.flopsPerToken / 1e6).toFixed(3)} MFLOP (active experts only)`,
    );
    for (const f of r.ffn.filter((x) => x.kind === 'moe')) {
      console.log(
        `  layer ${String(f.layer).padStart(3)} moe: ${f.experts} experts, top ${f.topK}: ` +
          `${(f.flopsPerToken / 1e6).toFixed(3)} MFLOP per token`,
      );
    }
    const model = input.model;
    if (model.diffusion) {
      // Per-token cost of the chosen schedule beside an autoregressive model is issue 16's next step.
      console.log(
        `${describeDiffusion(model.diffusion)}; each step is one bidirectional forward over the whole canvas`,
      );
    }
    console.log(`fusion ${r.fused ? 'on' : 'off'}; ${r.kernels} distinct kernels`);
    console.log(`dispatches per decode token: ${r.dispatchesPerDecodeToken}`);
    for (const p of [r.prefill, r.decode]) {
      const which = p === r.prefill ? 'prefill' : 'decode';
      console.log(
        `${which.padEnd(7)} T=${p.tokens} pos=${p.pos}: ${p.dispatches} dispatches, ${(p.flops / 1e9).toFixed(3)} GFLOP, ` +
          `read ${mib(p.bytesRead)}, write ${mib(p.bytesWritten)}, activations ${mib(p.activationBytes)} ` +
          `(${mib(p.activationBytesWithoutReuse)} without reuse)`,
      );
    }
    console.log(
      `KV cache: ${r.kvBytesPerToken} bytes per token; ${mib(r.stateBytesPerSequence)} per sequence at capacity ${r.capacity}`,
    );
    const rings = r.layers.filter((l) => l.kvRows !== null);
    if (rings.length > 0) {
      const rows = [...new Set(rings.map((l) => l.kvRows))].join(', ');
      console.log(
        `  ${rings.length} streaming or H2O-evicting layers keep caches of ${rows} rows: their KV stops growing there`,
      );
    }
    console.log(
      `KV memory against context: ${r.kvBytesByContext.map((k) => `${k.context.toLocaleString('en')}: ${mib(k.bytes)}`).join('; ')}`,
    );
    if (r.recurrentStateBytes > 0) {
      console.log(
        `recurrent state: ${mib(r.recurrentStateBytes)} per sequence, at any context length`,
      );
      // Per mixer kind; --json lists every layer.
      const kib = (b: number) => `${(b / 1024).toFixed(1)} KiB`;
      for (const kind of [...new Set(r.layers.map((l) => l.mixer))]) {
        const ls = r.layers.filter((l) => l.mixer === kind);
        const range = (f: (l: (typeof ls)[number]) => number, fmt: (n: number) => string) => {
          const lo = Math.min(...ls.map(f));
          const hi = Math.max(...ls.map(f));
          return lo === hi ? fmt(lo) : `${fmt(lo)} to ${fmt(hi)}`;
        };
        const held = ls.some((l) => l.kvBytesPerToken > 0)
          ? `KV ${range((l) => l.kvBytesPerToken, String)} bytes per token each`
          : ls.some((l) => l.stateBytes > 0)
            ? `state ${range((l) => l.stateBytes, kib)} each`
            : 'no state';
        console.log(`  ${kind.padEnd(9)} ${String(ls.length).padStart(3)} layers: ${held}`);
      }
    }
    if (budgets) for (const line of budgetLines(budgets, compiled.capacity)) console.log(line);
    return 0;
  },
};

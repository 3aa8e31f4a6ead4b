import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { parseArgs } from 'node:util';
import type { Command } from './command.ts';
import { UserError, oneOf } from './command.ts';
import { intOption, kvOption } from './compile-cmd.ts';
import { PRECISIONS, type Precision } from '../passes/precision.ts';
import { parseSpec } from '../spec/load.ts';
import { SpecError } from '../spec/errors.ts';
import { deepEqual } from '../spec/equal.ts';
import type { ModelIR } from '../spec/model.ts';
import { checkName, checkValue, designText, letSites } from './explore/design.ts';
import { placements } from './explore/placement.ts';
import { parseVary, product, readSweepFile, type Axis } from './explore/sweep.ts';
import { compileFigures } from './explore/metrics.ts';
import { DEVICES, presetForAdapter, type Roofline } from './explore/roofline.ts';
import type { PhaseProfile } from '../../runtime/dispatch-profile.ts';
import { table, toCsv, type DesignResult, type Results } from './explore/results.ts';
import { plotSpecs, renderSvg, reportHtml } from './explore/plots.ts';
import { MEMORY_BUDGETS } from './report.ts';
import {
  MEASURE_FILLS,
  isMeasurement,
  measureCached,
  type MeasureFill,
} from './explore/measure.ts';
import { nodeGpu } from '../../runtime/node/webgpu-node.ts';
import { gpuFlags } from './compile-cmd.ts';

const CONTEXTS = [4096, 32768, 131072, 1048576];
const BUDGETS = MEMORY_BUDGETS;

function positive(v: string | undefined, name: string, dflt: number): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!(n > 0) || !Number.isFinite(n))
    throw new UserError(`--${name} must be a positive number, got '${v}'`);
  return n;
}

interface RooflineFlags {
  device?: string;
  bandwidth?: string;
  flops?: string;
  'dispatch-us'?: string;
}

/** "31% mamba dt+scan (fused), 18% mlp.down+residual, 12% ...": a profile's largest roles. */
function topRoles(p: PhaseProfile, n: number): string {
  return p.roles
    .slice(0, n)
    .map((r) => `${((100 * r.ms) / p.dispatchSumMs).toFixed(0)}% ${r.role}`)
    .join(', ');
}

function roofline(values: RooflineFlags, adapterPreset: string | null = null): Roofline {
  const name = values.device ?? adapterPreset ?? 'h200';
  const base = DEVICES[name];
  if (!base)
    throw new UserError(
      `--device must be one of ${Object.keys(DEVICES).join(', ')}, got '${name}'`,
    );
  const given = (['bandwidth', 'flops', 'dispatch-us'] as const).filter(
    (k) => values[k] !== undefined,
  );
  return {
    name: given.length ? `${name} (${given.map((k) => `--${k} ${values[k]}`).join(' ')})` : name,
    bandwidth: positive(values.bandwidth, 'bandwidth', base.bandwidth / 1e9) * 1e9,
    flops: positive(values.flops, 'flops', base.flops / 1e12) * 1e12,
    dispatch: positive(values['dispatch-us'], 'dispatch-us', base.dispatch * 1e6) / 1e6,
    source: given.length ? `given on the command line, else ${base.source}` : base.source,
  };
}

function precisions(v: string | undefined): Precision[] {
  const list = (v ?? 'f32').split(',');
  for (const p of list) {
    if (!(PRECISIONS as readonly string[]).includes(p))
      throw new UserError(`--precision must list some of ${PRECISIONS.join(', ')}, got '${p}'`);
  }
  return list as Precision[];
}

function fileName(values: Record<string, string>): string {
  const parts = Object.entries(values).map(([k, v]) => `${k}-${v.replace(/[[\]\s]/g, '')}`);
  return (parts.join('_') || 'base').replace(/[^A-Za-z0-9._-]+/g, '.').replace(/^\.+|\.+$/g, '');
}

/** Refuses to write into a folder that holds anything, unless forced. */
function prepareOut(dir: string, force: boolean): void {
  if (existsSync(dir)) {
    const entries = readdirSync(dir);
    if (entries.length > 0 && !force)
      throw new UserError(
        `-o ${dir}: the folder exists and is not empty (${entries.length} entries); pass --force to write into it`,
      );
  }
  mkdirSync(join(dir, 'designs'), { recursive: true });
}

export const exploreCommand: Command = {
  name: 'explore',
  summary:
    'Sweep let parameters and attention placements of a spec; cost figures, CSV/JSON, HTML plots',
  usage: `usage: strata explore <spec.strata> --vary NAME=V1,V2,... [--vary ...] -o DIR [options]

  --vary NAME=V,...  values for a 'let NAME = ...' of the spec (numbers, names, [i, j] lists);
                     several --vary give every combination
  --sweep FILE       a YAML sweep: { vary: { NAME: [values] }, placement, keep, precision }
  --placement S      where the attention layers go, set through a list-valued let (see
                     --place-param): even, front, back, middle, indices:I,J,..., or all (every
                     C(n, k) placement up to --cap, a seeded sample beyond it)
  --place-param NAME the list-valued let that --placement sets (default: the spec's only one)
  --keep K           how many layers keep attention (default: that let's current length)
  --cap N            most placements 'all' writes (default 64); --seed S for the sample (default 0)
  -o, --out DIR      output folder: designs/*.strata, results.json, results.csv, report.html,
                     plots/*.svg (each plot alone), table.txt (the terminal table)
  --force            write into DIR even when it holds files
  --precision LIST   weight precisions to compare, e.g. f32,f16,q4 (default f32)
  --kv T             attention KV cache type f32 (default) or f16
  --capacity N       KV rows the compile sizes (default min(max_context, 2048)); --max-t N prefill tokens (default 64)
  --batch B          sequences held at once for memory and budgets (default 1)
  --context C        context of the Pareto plot and the table (default 32768)
  --device D         roofline preset: h200 (default, datasheet), h100 (strata's measured
                     rates there) or laptop; with --measure, the preset of the adapter's GPU
                     where there is one; override with --bandwidth GB/s,
                     --flops TFLOP/s, --dispatch-us µs (the presets' sources are in results.json)
  --measure          also compile each design for this machine's GPU with random weights and
                     time it: prefill of --max-t tokens, and --steps decode tokens (default 32)
                     once the cache holds --context tokens; shown beside the estimates with
                     their ratio, and where a decode token's GPU time goes by role
                     (results.json decodeProfile; needs timestamp queries). Kept in
                     DIR/measure-cache/ by a hash of the design, settings and adapter, so a
                     rerun or an interrupted sweep measures only what is new
  --fill F           how --measure brings the cache to --context before timing decode:
                     prefill (default: a real prefill of --context tokens) or zeros (a jump
                     to that position over zeroed caches: the same decode work, no fill; for
                     a serial policy such as H2O, whose 32k fill outlasted a 10-minute call)
  --gpu-flags LIST   Dawn toggles for --measure ('fast' = skip robustness checks)

Figures come from the cost model at --target nominal (no GPU): each design's equal
'strata inspect --target nominal --json' on its written spec with the same options.`,
  async run(argv) {
    const { values, positionals } = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        vary: { type: 'string', multiple: true },
        sweep: { type: 'string' },
        placement: { type: 'string' },
        'place-param': { type: 'string' },
        keep: { type: 'string' },
        cap: { type: 'string' },
        seed: { type: 'string' },
        out: { type: 'string', short: 'o' },
        force: { type: 'boolean' },
        precision: { type: 'string' },
        kv: { type: 'string' },
        capacity: { type: 'string' },
        'max-t': { type: 'string' },
        batch: { type: 'string' },
        context: { type: 'string' },
        device: { type: 'string' },
        bandwidth: { type: 'string' },
        flops: { type: 'string' },
        'dispatch-us': { type: 'string' },
        measure: { type: 'boolean' },
        steps: { type: 'string' },
        fill: { type: 'string' },
        'gpu-flags': { type: 'string' },
      },
    });
    if (positionals.length !== 1)
      throw new UserError('explore takes one .strata spec (see --help)');
    const specPath = positionals[0]!;
    if (!values.out) throw new UserError('explore needs -o DIR for its outputs');
    const text = readFileSync(specPath, 'utf8');
    const sites = letSites(text, specPath);
    const base = parseSpec(text, specPath);

    const file = values.sweep ? readSweepFile(values.sweep) : null;
    const axes: Axis[] = [...(file?.axes ?? []), ...(values.vary ?? []).map(parseVary)];
    for (const a of axes) {
      const option = file?.axes.includes(a) ? `--sweep ${values.sweep}` : '--vary';
      checkName(option, a.name, sites);
      for (const v of a.values) checkValue(option, a.name, v);
    }
    const strategy = values.placement ?? file?.placement;
    if (strategy) {
      const lists = [...sites.values()].filter((s) => s.isList);
      const param = values['place-param'] ?? (lists.length === 1 ? lists[0]!.name : null);
      if (param === null)
        throw new UserError(
          `--placement needs --place-param: the spec has ${lists.length} list-valued lets (write e.g. 'let keep = [4, 12]' and 'attn at keep')`,
        );
      const site = checkName('--place-param', param, sites);
      if (axes.some((a) => a.name === param))
        throw new UserError(`--placement sets '${param}': do not vary it as well`);
      const current = site.shown === 'a list' ? site.written.split(',').length : 1;
      const k = intOption(values.keep, 'keep', file?.keep ?? current)!;
      const n = base.layers.length;
      const sets = placements(strategy, {
        n,
        k,
        cap: intOption(values.cap, 'cap', 64)!,
        seed: intOption(values.seed, 'seed', 0)!,
      });
      axes.push({ name: param, values: sets.map((s) => `[${s.indices.join(', ')}]`) });
    }
    if (axes.length === 0) throw new UserError('explore needs --vary, --sweep or --placement');

    const precs = precisions(values.precision ?? file?.precision?.join(','));
    const kv = kvOption(values.kv);
    const capacity = intOption(values.capacity, 'capacity', undefined);
    const maxT = intOption(values['max-t'], 'max-t', undefined);
    const batch = intOption(values.batch, 'batch', 1)!;
    const paretoContext = intOption(values.context, 'context', 32768)!;
    const contexts = [...new Set([...CONTEXTS, paretoContext])].sort((a, b) => a - b);
    // Checked before anything is written; --measure may then pick the adapter's preset.
    let rf = roofline(values);

    const steps = intOption(values.steps, 'steps', 32)!;
    if (values.steps !== undefined && !values.measure)
      throw new UserError('--steps goes with --measure');
    const fill: MeasureFill = oneOf('fill', MEASURE_FILLS, values.fill ?? 'prefill');
    if (values.fill !== undefined && !values.measure)
      throw new UserError('--fill goes with --measure');
    const out = values.out;
    prepareOut(out, values.force ?? false);
    const gpu = values.measure ? await nodeGpu({ flags: gpuFlags(values['gpu-flags']) }) : null;
    if (gpu?.fallback)
      process.stderr.write(
        'explore --measure: no GPU adapter, measuring on SwiftShader (the CPU): slow, and not what a GPU does\n',
      );
    // Measuring on a GPU with a preset of its own: estimate for that GPU unless told otherwise.
    const adapterPreset = gpu ? presetForAdapter(gpu.adapterInfo) : null;
    if (gpu && values.device === undefined) {
      rf = roofline(values, adapterPreset);
      const adapter = gpu.adapterInfo.device || gpu.adapterInfo.description;
      process.stderr.write(
        adapterPreset
          ? `explore --measure: roofline ${adapterPreset}, the preset for this adapter (${adapter}); --device to choose another\n`
          : `explore --measure: no roofline preset matches this adapter (${adapter}): the estimates are h200's; give --device, or --bandwidth, --flops and --dispatch-us\n`,
      );
    }
    const combos = product(axes);
    const designs: DesignResult[] = [];
    const failed: string[] = [];
    // Designs whose model equals an earlier one's: a varied let that reaches no layer, or values
    // that meet in the same model (said at the end; both rows stay, as asked for).
    const models: { model: ModelIR; name: string; combo: Record<string, string> }[] = [];
    const same: string[] = [];
    const started = Date.now();
    for (const [i, combo] of combos.entries()) {
      const name = fileName(combo);
      const rel = join('designs', `${name}.strata`);
      const shown = Object.entries(combo)
        .map(([k, v]) => `${k}=${v}`)
        .join(' ');
      // The base's comments may describe its own numbers; say what this design changed.
      const header = `# strata explore: ${basename(specPath)} with ${shown}\n`;
      const designSource = header + designText(text, sites, combo);
      writeFileSync(join(out, rel), designSource);
      let model;
      try {
        model = parseSpec(designSource, join(out, rel));
      } catch (e) {
        if (!(e instanceof SpecError)) throw e;
        failed.push(`design ${name} (${shown}):\n${e.message}`);
        process.stderr.write(`[${i + 1}/${combos.length}] ${shown}: invalid, skipped\n`);
        continue;
      }
      const twin = models.find((m) => deepEqual(m.model, model));
      if (twin) {
        const differ = Object.keys(combo)
          .filter((k) => combo[k] !== twin.combo[k])
          .map((k) => `${k}=${twin.combo[k]} vs ${k}=${combo[k]}`);
        same.push(`designs ${twin.name} and ${name} are the same model (${differ.join(', ')})`);
      } else models.push({ model, name, combo });
      const figures = precs.map((precision) =>
        compileFigures(
          model,
          { precision, kv, capacity, maxT },
          { contexts, batch, budgets: BUDGETS, roofline: rf },
        ),
      );
      const measured = [];
      if (gpu) {
        for (const f of figures) {
          const { m, cached } = await measureCached(
            gpu,
            model,
            designSource,
            {
              precision: f.precision,
              kv,
              maxT: f.prefill.tokens,
              context: paretoContext,
              steps,
              seed: 0,
              fill,
            },
            join(out, 'measure-cache'),
          );
          measured.push(m);
          if (!isMeasurement(m)) {
            process.stderr.write(`  ${shown} ${f.precision}: not measured: ${m.refused}\n`);
            continue;
          }
          process.stderr.write(
            `  ${shown} ${f.precision}: prefill ${m.prefillTokensPerSecond.toFixed(0)} tok/s, decode at ${paretoContext}${fill === 'zeros' ? ' (zeroed cache)' : ''} ${m.decodeTokensPerSecond.toFixed(1)} tok/s (steps ${m.decodeStepMs.median.toFixed(2)} ms median, ${m.decodeStepMs.min.toFixed(2)}-${m.decodeStepMs.max.toFixed(2)})${cached ? ' (cached)' : ''}\n`,
          );
          if (m.decodeProfile)
            process.stderr.write(`    decode GPU time: ${topRoles(m.decodeProfile, 3)}\n`);
        }
      }
      designs.push({
        name,
        values: combo,
        spec: rel,
        layers: model.layers.length,
        pattern: model.layers.map((l) => ({ name: l.mixerName, kind: l.mixer?.kind ?? 'none' })),
        figures,
        ...(gpu ? { measured } : {}),
      });
      const elapsed = (Date.now() - started) / 1000;
      const eta = (elapsed / (i + 1)) * (combos.length - i - 1);
      process.stderr.write(
        `[${i + 1}/${combos.length}] ${shown}: ${model.layers.length} layers, ${elapsed.toFixed(1)} s, about ${eta.toFixed(0)} s left\n`,
      );
    }
    const flags = [
      `--precision P`,
      `--kv ${kv}`,
      capacity ? `--capacity ${capacity}` : '',
      maxT ? `--max-t ${maxT}` : '',
    ]
      .filter(Boolean)
      .join(' ');
    const results: Results = {
      base: basename(specPath),
      batch,
      contexts,
      paretoContext,
      budgets: BUDGETS,
      roofline: rf,
      inspect: `strata inspect designs/NAME.strata --target nominal --json ${flags}`,
      designs,
    };
    writeFileSync(join(out, 'results.json'), JSON.stringify(results, null, 2) + '\n');
    writeFileSync(join(out, 'results.csv'), toCsv(results));
    const tableText = table(results);
    const specs = plotSpecs(results);
    const svgs: Record<string, string> = {};
    for (const [k, spec] of Object.entries(specs)) svgs[k] = await renderSvg(spec);
    writeFileSync(join(out, 'report.html'), reportHtml(results, svgs, tableText));
    // Each plot also on its own, for a README or a paper (the HTML inlines the same SVG).
    mkdirSync(join(out, 'plots'), { recursive: true });
    for (const [k, svg] of Object.entries(svgs)) writeFileSync(join(out, 'plots', `${k}.svg`), svg);
    writeFileSync(join(out, 'table.txt'), tableText + '\n');
    console.log(tableText);
    console.log(
      `wrote ${designs.length} designs, results.json, results.csv, report.html, plots/*.svg and table.txt to ${out}`,
    );
    if (same.length) {
      for (const line of same) console.error(line);
      console.error(
        'the values that differ between them change nothing in this spec: is each varied let used where it should be?',
      );
    }
    if (failed.length) {
      for (const f of failed) console.error(f);
      throw new UserError(
        `${failed.length} of ${combos.length} designs are invalid (above); the others were written`,
      );
    }
    return 0;
  },
};

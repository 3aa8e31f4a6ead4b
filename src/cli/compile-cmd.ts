import { parseArgs } from 'node:util';
import type { Command } from './command.ts';
import { UserError, oneOf } from './command.ts';
import { compileModel, type CompiledModel } from '../../codegen/compile.ts';
import type { ModelIR } from '../spec/model.ts';
import { writeBundle } from '../../codegen/bundle.ts';
import { nodeGpu } from '../../runtime/node/webgpu-node.ts';
import { BASELINE_CAPS, NOMINAL_CAPS, type DeviceCaps } from '../target.ts';
import { loadModelInput } from './model-input.ts';
import { BundleTargetError, checkBundleTarget } from '../../codegen/bundle-target.ts';
import { terminalProgress } from './progress.ts';
import { PRECISIONS, type Precision } from '../passes/precision.ts';
import type { KvType } from '../graph/ops.ts';

export const COMMON_COMPILE_OPTIONS = {
  'max-t': { type: 'string' },
  capacity: { type: 'string' },
  'no-fuse': { type: 'boolean' },
  precision: { type: 'string' },
  kv: { type: 'string' },
  batch: { type: 'string' },
  seed: { type: 'string' },
  weights: { type: 'string' },
  hf: { type: 'boolean' },
  'gpu-flags': { type: 'string' },
  target: { type: 'string' },
  offline: { type: 'boolean' },
} as const;

export const COMMON_COMPILE_HELP = `  --max-t N          tokens per prefill step (default 64; longer prompts run in chunks)
  --capacity N       KV cache rows per sequence (default min(max_context, 2048))
  --no-fuse          skip the fusion passes
  --precision P      how weights are stored: f32, f16, q8 (int8, f16 scale per 32) or q4
                     (4-bit, f16 scale per 32). Default: f16 on a device with shader-f16, else
                     f32. Matmul, expert and embedding weights take it; norms, biases,
                     routers, SSM/recurrence parameters, activations and states stay f32;
                     all sums accumulate in f32
  --kv T             attention KV cache type: f32 (default) or f16 (half the bytes per token;
                     scores and sums stay f32)
  --batch B          sequences one decode step advances together (default 1): the weights are
                     read once per step for all B, and every KV cache and recurrent state
                     holds B sequences (run such a bundle with run --prompts); each prompt
                     is prefilled into its own slot in steps of --max-t tokens
  --seed S           seed for random weights when no --weights is given (default 0)
  --weights FILE     real weights (.safetensors with strata's canonical names)
  --hf               treat the input as a HuggingFace folder (config.json + safetensors)
  --offline          a Hub name uses the Hugging Face cache only, downloading nothing (also
                     HF_HUB_OFFLINE=1); what the cache lacks is named

A model may be named as on the Hugging Face Hub, ORG/NAME or ORG/NAME@REVISION (a path that
exists always wins over a Hub name). It is read from the Hugging Face cache ($HF_HUB_CACHE, else
$HF_HOME/hub, else ~/.cache/huggingface/hub), so a model transformers downloaded is used as it is;
missing files (config, tokenizer, safetensors weights) are downloaded into that cache from
$HF_ENDPOINT (default https://huggingface.co), resuming interrupted downloads; gated models need
HF_TOKEN.  --target T         'device' (default: this machine's adapter limits), 'baseline' (WebGPU
                     minimums) or 'nominal' (baseline with a large GPU's 2 GiB bindings: costs
                     of big models without a device)
  --gpu-flags LIST   Dawn flags for the device ('fast' = speed toggles)`;

/** Plain decimal digits only: Number() would also take '0x10', '1e3', ' 5' and ''. */
const DECIMAL = /^(0|[1-9][0-9]*)$/;

/**
 * A whole-number option: decimal digits, at least `min` (1 unless said otherwise; seeds may be 0)
 * and a safe integer. `--seed` is the one option whose 0 is meaningful.
 */
export function intOption(
  v: string | undefined,
  name: string,
  dflt: number | undefined,
  min = name === 'seed' ? 0 : 1,
): number | undefined {
  if (v === undefined) return dflt;
  const what = min === 0 ? 'a non-negative integer' : `an integer >= ${min}`;
  if (!DECIMAL.test(v)) throw new UserError(`--${name} must be ${what} in decimal, got '${v}'`);
  const n = Number(v);
  if (!Number.isSafeInteger(n))
    throw new UserError(`--${name} is '${v}', over the limit ${Number.MAX_SAFE_INTEGER}`);
  if (n < min) throw new UserError(`--${name} must be ${what}, got '${v}'`);
  return n;
}

export async function targetCaps(target: string | undefined, flags: string[]): Promise<DeviceCaps> {
  if (target === 'baseline') return BASELINE_CAPS;
  if (target === 'nominal') return NOMINAL_CAPS;
  if (target && target !== 'device')
    throw new UserError(`--target must be 'device', 'baseline' or 'nominal', got '${target}'`);
  return (await nodeGpu({ flags })).caps;
}

export function gpuFlags(v: string | undefined): string[] {
  return v ? v.split(',').filter(Boolean) : [];
}

/**
 * `--precision`, or the device's default: f16 weights halve what decode reads wherever WebGPU
 * runs (they unpack with core WGSL), but only a device with shader-f16 is taken as a real GPU
 * that is meant to run fast; elsewhere (SwiftShader, `--target baseline`) f32 keeps results
 * equal to the f32 references.
 */
export function precisionOption(v: string | undefined, caps: DeviceCaps): Precision {
  if (v === undefined) return caps.shaderF16 ? 'f16' : 'f32';
  return oneOf('precision', PRECISIONS, v);
}

export function kvOption(v: string | undefined): KvType {
  if (v === undefined || v === 'f32' || v === 'f16') return v ?? 'f32';
  throw new UserError(`--kv must be f32 or f16, got '${v}'`);
}

/** Compile with the shared --max-t / --capacity / --no-fuse / --precision options. */
export function compileWithOptions(
  model: ModelIR,
  caps: DeviceCaps,
  values: {
    'max-t'?: string;
    capacity?: string;
    'no-fuse'?: boolean;
    precision?: string;
    kv?: string;
    batch?: string;
  },
): CompiledModel {
  // A batched build's prefill fills one sequence's slot in chunks of --max-t (codegen/compile.ts).
  const batch = intOption(values.batch, 'batch', undefined);
  return compileModel(model, {
    caps,
    maxT: intOption(values['max-t'], 'max-t', undefined),
    capacity: intOption(values.capacity, 'capacity', undefined),
    fuse: !values['no-fuse'],
    precision: precisionOption(values.precision, caps),
    kv: kvOption(values.kv),
    batch,
  });
}

export const compileCommand: Command = {
  name: 'compile',
  summary: 'Compile a spec (or a HuggingFace model) into a bundle folder',
  usage: `usage: strata compile <spec|hf-folder|ORG/NAME[@REV]> -o <bundle-dir> [options]

${COMMON_COMPILE_HELP}
  -o, --out DIR      the bundle folder to write: created if absent or empty; an existing
                     bundle is replaced only by a complete one; anything else is refused
  --force            replace what is at --out even when it is not a bundle (a folder, a
                     file, a link); never the compile's own spec, weights or HF folder,
                     nor the current folder, your home folder or /`,
  async run(argv) {
    const { values, positionals } = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        ...COMMON_COMPILE_OPTIONS,
        out: { type: 'string', short: 'o' },
        force: { type: 'boolean' },
      },
    });
    if (positionals.length !== 1)
      throw new UserError('compile takes one spec or HuggingFace folder (see --help)');
    if (!values.out) throw new UserError('compile needs -o <bundle-dir>');
    const input = await loadModelInput(positionals[0], {
      seed: intOption(values.seed, 'seed', 0) ?? 0,
      weightsFile: values.weights,
      hf: values.hf,
      offline: values.offline,
    });
    const target = { force: values.force, inputs: input.inputs };
    const out = values.out;
    // Refused before compiling, so a bad -o costs no compile time; writeBundle checks again.
    const writing = async <T>(f: () => T | Promise<T>): Promise<T> => {
      try {
        return await f();
      } catch (e) {
        if (e instanceof BundleTargetError) throw new UserError(e.message);
        throw e;
      }
    };
    try {
      await writing(() => checkBundleTarget(out, target));
      const caps = await targetCaps(values.target, gpuFlags(values['gpu-flags']));
      const compiled = compileWithOptions(input.model, caps, values);
      await writing(() =>
        writeBundle(compiled, input.weights, out, terminalProgress(), target, input.tokenizer),
      );
      console.log(
        `compiled ${input.describe} → ${out}: ${compiled.kernels.length} kernels, ` +
          `${compiled.phases.decode.dispatches.length} dispatches per decode token`,
      );
    } finally {
      await input.close();
    }
    return 0;
  },
};

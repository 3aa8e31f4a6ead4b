import { parseArgs } from 'node:util';
import { writeFile } from 'node:fs/promises';
import type { Command } from './command.ts';
import { UserError } from './command.ts';
import { memorySource } from '../../codegen/bundle.ts';
import { acquire } from '../../runtime/node/webgpu-node.ts';
import { openBundle } from '../../runtime/node/bundle-node.ts';
import { GpuModel, type BundleSource, type Sequence } from '../../runtime/model.ts';
import { expertLoad, type ExpertLoad } from '../ops/moe.ts';
import { byteTokenizer } from '../../runtime/tokenizer.ts';
import { serializeSafetensors } from '../../runtime/safetensors.ts';
import type { SamplingParams } from '../../codegen/kernel-ir.ts';
import {
  COMMON_COMPILE_HELP,
  COMMON_COMPILE_OPTIONS,
  compileWithOptions,
  gpuFlags,
  intOption,
} from './compile-cmd.ts';
import { isBundleDir, loadModelInput } from './model-input.ts';
import { terminalProgress } from './progress.ts';

function numberOption(
  v: string | undefined,
  name: string,
  dflt: number,
  min: number,
  max: number,
): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isFinite(n) || n < min || n > max)
    throw new UserError(`--${name} must be a number in [${min}, ${max}], got '${v}'`);
  return n;
}

function parseIds(s: string, vocab: number): number[] {
  const ids = s
    .split(',')
    .map((x) => x.trim())
    .filter(Boolean)
    .map(Number);
  const bad = ids.find((x) => !Number.isInteger(x) || x < 0 || x >= vocab);
  if (bad !== undefined || ids.length === 0) {
    throw new UserError(
      `--prompt-ids must be comma-separated integers in [0, ${vocab}), got '${s}'`,
    );
  }
  return ids;
}

/** Each MoE layer's routed-token counts, read back from the sequence's load counters. */
export async function expertLoads(seq: Sequence): Promise<{ layer: number; load: ExpertLoad }[]> {
  const out: { layer: number; load: ExpertLoad }[] = [];
  for (const s of seq.model.manifest.state) {
    const m = /^moe\.load\.(\d+)$/.exec(s.name);
    if (!m) continue;
    const counts = new Uint32Array(await seq.readState(s.name));
    out.push({ layer: Number(m[1]), load: expertLoad(counts) });
  }
  return out.sort((a, b) => a.layer - b.layer);
}

async function printExpertLoad(seq: Sequence): Promise<void> {
  const loads = await expertLoads(seq);
  if (loads.length === 0) {
    console.log('stats: the model has no MoE layers');
    return;
  }
  console.log('expert load (tokens routed to each expert over the run):');
  for (const { layer, load } of loads) {
    console.log(
      `  layer ${String(layer).padStart(3)}: ${load.counts.length} experts, ${load.total} routed, ` +
        `max/mean ${load.maxOverMean.toFixed(2)}: [${load.counts.join(' ')}]`,
    );
  }
}

export const runCommand: Command = {
  name: 'run',
  summary: 'Run a bundle or a spec on WebGPU and stream generated text',
  usage: `usage: strata run <bundle-dir|spec|hf-folder> [--prompt TEXT | --prompt-ids 5,17,3] [options]

  --prompt TEXT        prompt text (byte-level tokenizer)
  --prompt-ids LIST    prompt as comma-separated token ids
  --max-tokens N       tokens to generate (default 32)
  --temperature T      0 = greedy (default 0)
  --top-k K            keep the K most likely tokens (0 = off)
  --top-p P            nucleus sampling threshold (1 = off)
  --seed S             sampling seed and random-weight seed (default 0)
  --dump-logits FILE   write prefill_logits [T, vocab], decode_tokens [S], decode_logits [S, vocab]
                       (safetensors) for comparison with any outside reference
  --ids                print generated token ids instead of text
  --stats              after the run, print each MoE layer's expert load (tokens routed to each
                       expert, and the busiest expert's load over the mean)
(spec inputs are compiled in memory first:)
${COMMON_COMPILE_HELP}`,
  async run(argv) {
    const { values, positionals } = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        ...COMMON_COMPILE_OPTIONS,
        prompt: { type: 'string' },
        'prompt-ids': { type: 'string' },
        'max-tokens': { type: 'string' },
        temperature: { type: 'string' },
        'top-k': { type: 'string' },
        'top-p': { type: 'string' },
        'dump-logits': { type: 'string' },
        ids: { type: 'boolean' },
        stats: { type: 'boolean' },
      },
    });
    if (positionals.length !== 1)
      throw new UserError('run takes one bundle folder, spec or HuggingFace folder (see --help)');
    if (values.prompt !== undefined && values['prompt-ids'] !== undefined) {
      throw new UserError('give either --prompt or --prompt-ids, not both');
    }
    const seed = intOption(values.seed, 'seed', 0) ?? 0;
    const gpu = await acquire({ flags: gpuFlags(values['gpu-flags']) });
    const progress = terminalProgress();
    let source: BundleSource;
    if (isBundleDir(positionals[0])) {
      source = await openBundle(positionals[0]);
    } else {
      const input = await loadModelInput(positionals[0], {
        seed,
        weightsFile: values.weights,
        hf: values.hf,
      });
      const compiled = compileWithOptions(input.model, gpu.caps, values);
      source = memorySource(compiled, input.weights);
    }
    const model = await GpuModel.load(gpu, source, progress);
    const vocab = model.vocab;
    const tok =
      source.manifest.tokenizer.kind === 'bytes' && vocab >= 256 ? byteTokenizer(vocab) : null;
    let prompt: number[];
    if (values['prompt-ids'] !== undefined) prompt = parseIds(values['prompt-ids'], vocab);
    else if (tok) prompt = tok.encode(values.prompt ?? 'Hello');
    else throw new UserError(`this model (vocab ${vocab}) has no tokenizer: use --prompt-ids`);
    if (prompt.length === 0) throw new UserError('the prompt is empty');
    const maxTokens = intOption(values['max-tokens'], 'max-tokens', 32) ?? 32;
    const sampling: SamplingParams = {
      seed,
      draw: 0,
      temperature: numberOption(values.temperature, 'temperature', 0, 0, 100),
      topK: numberOption(values['top-k'], 'top-k', 0, 0, vocab),
      topP: numberOption(values['top-p'], 'top-p', 1, 0, 1),
    };
    const seq = model.newSequence();
    if (values['dump-logits']) {
      const first = await seq.forward(prompt, sampling);
      const tokens: number[] = [];
      const decodeLogits = new Float32Array(maxTokens * vocab);
      let token = first.token;
      for (let i = 0; i < maxTokens; i++) {
        tokens.push(token);
        const r = await seq.next([token], sampling, true);
        decodeLogits.set(r.logits!, i * vocab);
        token = r.token;
      }
      const file = serializeSafetensors({
        prompt_ids: { dtype: 'I32', shape: [prompt.length], data: Int32Array.from(prompt) },
        prefill_logits: { dtype: 'F32', shape: [prompt.length, vocab], data: first.logits },
        decode_tokens: { dtype: 'I32', shape: [tokens.length], data: Int32Array.from(tokens) },
        decode_logits: { dtype: 'F32', shape: [tokens.length, vocab], data: decodeLogits },
      });
      await writeFile(values['dump-logits'], new Uint8Array(file));
      console.log(
        `wrote ${values['dump-logits']}: prefill_logits [${prompt.length}, ${vocab}], ${tokens.length} decode steps`,
      );
      console.log(`decode tokens: ${tokens.join(',')}`);
      if (values.stats) await printExpertLoad(seq);
      return 0;
    }
    const decode = tok?.decodeStream();
    const out: number[] = [];
    for await (const t of seq.generate(prompt, { maxTokens, ...sampling })) {
      out.push(t);
      if (values.ids || !decode) process.stdout.write(`${t} `);
      else process.stdout.write(decode(t));
    }
    process.stdout.write('\n');
    if (values.stats) await printExpertLoad(seq);
    return 0;
  },
};

import { parseArgs } from 'node:util';
import { createInterface } from 'node:readline';
import type { Command } from './command.ts';
import { UserError } from './command.ts';
import { memorySource } from '../../codegen/bundle.ts';
import { nodeGpu } from '../../runtime/node/webgpu-node.ts';
import type { GpuContext } from '../../runtime/gpu.ts';
import { openBundle } from '../../runtime/node/bundle-node.ts';
import { GpuModel, NonFiniteError } from '../../runtime/model.ts';
import { type BundleSource } from '../../codegen/manifest.ts';
import type { Tokenizer } from '../../runtime/tokenizer.ts';
import type { ChatTemplate } from '../../runtime/chat.ts';
import { chatLoop } from './chat.ts';
import { tokenTimer } from './speed.ts';
import type { SamplingParams } from '../../codegen/kernel-ir.ts';
import {
  COMMON_COMPILE_HELP,
  COMMON_COMPILE_OPTIONS,
  compileWithOptions,
  gpuFlags,
  intOption,
} from './compile-cmd.ts';
import { isBundleDir, loadModelInput, type ModelInput } from './model-input.ts';
import { terminalProgress } from './progress.ts';
import {
  DIFFUSION_HELP,
  diffusionRunOptions,
  refuseAutoregressiveFlags,
  DIFFUSION_FLAGS,
  givenFlags,
  runDiffusion,
} from './diffusion-run.ts';
import type { DiffusionRun } from '../ops/diffusion.ts';
import type { BlockDiffusionRun } from '../ops/block-diffusion.ts';
import {
  BLOCK_DIFFUSION_HELP,
  blockDiffusionRunOptions,
  modelAttentionBlock,
  runBlockDiffusion,
} from './block-diffusion-run.ts';
import type { DiffusionPick } from '../../runtime/diffusion.ts';
import {
  ENTROPY_BOUND_HELP,
  entropyBoundRunOptions,
  runEntropyBound,
  type EntropyPick,
} from './entropy-run.ts';
import type { EntropyBoundRun } from '../ops/diffusion-entropy.ts';
import { checkRunFits, runPrompt } from './run-prompt.ts';
import { describeSite, dumpLogits, printExpertLoad } from './run-report.ts';
import { runBatch } from './run-batch.ts';
import { batchOverflow } from '../../runtime/batch.ts';

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

function parseRunArgs(argv: string[]) {
  return parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      ...COMMON_COMPILE_OPTIONS,
      prompt: { type: 'string' },
      'prompt-ids': { type: 'string' },
      prompts: { type: 'string' },
      'max-tokens': { type: 'string' },
      temperature: { type: 'string' },
      'top-k': { type: 'string' },
      'top-p': { type: 'string' },
      'dump-logits': { type: 'string' },
      ids: { type: 'boolean' },
      stats: { type: 'boolean' },
      'check-finite': { type: 'boolean' },
      'ignore-eos': { type: 'boolean' },
      chat: { type: 'boolean' },
      system: { type: 'string' },
      'gen-length': { type: 'string' },
      'block-length': { type: 'string' },
      steps: { type: 'string' },
      remasking: { type: 'string' },
      threshold: { type: 'string' },
      cache: { type: 'string' },
      pick: { type: 'string' },
      'cfg-scale': { type: 'string' },
      sampler: { type: 'string' },
      'nucleus-p': { type: 'string' },
    },
  });
}

type RunValues = ReturnType<typeof parseRunArgs>['values'];

export const runCommand: Command = {
  name: 'run',
  summary: 'Run a bundle or a spec on WebGPU and stream generated text',
  usage: `usage: strata run <bundle-dir|spec|hf-folder|ORG/NAME[@REV]> [--prompt TEXT | --prompt-ids 5,17,3] [options]

  --prompt TEXT        prompt text, through the model's tokenizer.json (a bundle's copy, or a
                       HuggingFace folder's); specs without one use UTF-8 bytes as ids
  --ignore-eos         keep generating past the model's EOS token (default: stop there)
  --chat               a conversation: each stdin line is a user turn, rendered with the model's
                       chat_template; the sequence keeps its state between turns and feeds only
                       what is new (--max-tokens is per reply)
  --system TEXT        with --chat: a system message first
  --prompt-ids LIST    prompt as comma-separated decimal token ids, each below the vocab
  --prompts FILE       several prompts, one a line (token ids, comma-separated, for a model
                       without a tokenizer), decoded together as one batch: a bundle compiled
                       with --batch B takes up to B; a spec is compiled with --batch (default:
                       the number of prompts). Each output is printed as "[i] text"
  --max-tokens N       tokens to generate (default 32). The prompt and the generated tokens
                       must fit in the KV cache (the bundle's --capacity): a run that would not
                       is refused before the model loads, with the largest --max-tokens that fits
  --temperature T      0 = greedy (default 0)
  --top-k K            keep the K most likely tokens (0 = off)
  --top-p P            nucleus sampling threshold (1 = off)
  --seed S             sampling seed and random-weight seed (default 0)
  --dump-logits FILE   write prefill_logits [T, vocab], decode_tokens [S], decode_logits [S, vocab]
                       (safetensors) for comparison with any outside reference
  --ids                print generated token ids instead of text
  --stats              after the run, print each MoE layer's expert load (tokens routed to each
                       expert, and the busiest expert's load over the mean)
  --check-finite       when the logits turn NaN or Inf (the run stops with an error naming the
                       step either way), replay it dispatch by dispatch and name the first
                       dispatch, buffer and layer whose output went non-finite (slow; debugging)

${DIFFUSION_HELP}

${BLOCK_DIFFUSION_HELP}

${ENTROPY_BOUND_HELP}

Errors (non-finite logits, WebGPU validation/out-of-memory errors, a lost device) go to stderr
and the exit status is 1; stdout holds only generated tokens. After a run, stderr gets the time
to the first token and the tokens per second after it.
(spec inputs are compiled in memory first:)
${COMMON_COMPILE_HELP}`,
  async run(argv) {
    const { values, positionals } = parseRunArgs(argv);
    if (positionals.length !== 1)
      throw new UserError('run takes one bundle folder, spec or HuggingFace folder (see --help)');
    if (values.prompt !== undefined && values['prompt-ids'] !== undefined) {
      throw new UserError('give either --prompt or --prompt-ids, not both');
    }
    const seed = intOption(values.seed, 'seed', 0) ?? 0;
    const maxTokens = intOption(values['max-tokens'], 'max-tokens', 32) ?? 32;
    // Everything the host can check runs before the GPU is acquired and the weights loaded: the
    // model's vocab and capacity come from the manifest (or the spec), not from the device.
    let source: BundleSource | null = null;
    let input: ModelInput | null = null;
    if (isBundleDir(positionals[0])) {
      // A bundle is already compiled: an option that would change it must not pass unnoticed.
      const given = (
        [
          'max-t',
          'capacity',
          'no-fuse',
          'precision',
          'kv',
          'batch',
          'weights',
          'hf',
          'target',
        ] as const
      )
        .filter((k) => values[k] !== undefined)
        .map((k) => `--${k}`);
      if (given.length > 0)
        throw new UserError(
          `${given.join(', ')}: compile options, but ${positionals[0]} is a compiled bundle; recompile it with them instead`,
        );
      source = await openBundle(positionals[0]);
    } else
      input = await loadModelInput(positionals[0], {
        seed,
        weightsFile: values.weights,
        hf: values.hf,
        offline: values.offline,
      });
    // The bundle or checkpoint stays open until its weights are on the GPU (GpuModel.load closes
    // the source it is given, memorySource's closing the checkpoint); every way out before that
    // closes it here.
    let ready: ReadyRun;
    try {
      ready = await prepareRun(positionals[0], values, source, input, seed, maxTokens);
    } catch (e) {
      if (source) await source.close?.();
      else await input?.close();
      throw e;
    }
    const model = await GpuModel.load(ready.gpu, ready.source, terminalProgress());
    // The device outlives this command (nodeGpu shares it): free the weights when done.
    try {
      return await generate(model, ready.plan, values);
    } finally {
      model.destroy();
    }
  },
};

/** What a run needs to load its weights: the device, the bundle (or compiled spec), the plan. */
interface ReadyRun {
  gpu: GpuContext;
  source: BundleSource;
  plan: RunPlan;
}

/**
 * Everything between opening the input and loading its weights: the generation mode and its
 * options, the prompt, the fit in the cache, the device, and for a spec or checkpoint its
 * compilation (the checkpoint's close passes to the source made from it). Throws before the load.
 */
async function prepareRun(
  where: string,
  values: RunValues,
  opened: BundleSource | null,
  input: ModelInput | null,
  seed: number,
  maxTokens: number,
): Promise<ReadyRun> {
  let source = opened;
  const dump = values['dump-logits'] !== undefined;
  const ir = source ? source.manifest.model : input!.model;
  const vocab = ir.vocab;
  const diffusionFlags = givenFlags(values, DIFFUSION_FLAGS);
  if (!ir.diffusion && diffusionFlags) {
    throw new UserError(
      `${diffusionFlags}: diffusion sampler options, but ${where} is an autoregressive model (its spec has no diffusion setting)`,
    );
  }
  let diffusion: DiffusionRun | null = null;
  let block: BlockDiffusionRun | null = null;
  let entropy: EntropyBoundRun | null = null;
  if (ir.diffusion) {
    refuseAutoregressiveFlags(values);
    if (ir.diffusion.kind === 'entropy_bound') {
      // The tokenizer's eos ends generation after its canvas (read once the prompt is).
      entropy = entropyBoundRunOptions(values, ir.diffusion, vocab, [], seed);
    } else if (ir.diffusion.kind === 'bd3lm')
      block = blockDiffusionRunOptions(values, ir.diffusion, modelAttentionBlock(ir), seed);
    else {
      const bad = givenFlags(values, ['sampler', 'nucleus-p']);
      if (bad)
        throw new UserError(
          `${bad}: block-diffusion (bd3lm) sampler options, but the model is a LLaDA diffusion model`,
        );
      diffusion = diffusionRunOptions(values, ir.diffusion, seed);
    }
  }
  const sampling = samplingOptions(values, seed, vocab);
  // --prompts (or a batched bundle): several sequences a step (run-batch.ts).
  const bundleBatch = source?.manifest.compile.batch ?? 1;
  if (values.prompts !== undefined || bundleBatch > 1) {
    if (values.prompts === undefined)
      throw new UserError(
        `${where} decodes ${bundleBatch} sequences a step: give its prompts with --prompts FILE`,
      );
    if (values.prompt !== undefined || values['prompt-ids'] !== undefined || values.chat)
      throw new UserError('--prompts takes every prompt: drop --prompt, --prompt-ids, --chat');
    if (diffusion || block || entropy || dump || values['check-finite'])
      throw new UserError(
        '--prompts runs autoregressive decode without --dump-logits or --check-finite',
      );
  }
  const {
    prompt,
    tok,
    template,
    batch: batchPrompts,
  } = await runPrompt(source, input, where, vocab, values);
  // A bundle's batch is fixed: more prompts than its slots fail here, before the weights load.
  const over = source && batchPrompts && batchOverflow(batchPrompts.length, bundleBatch);
  if (over) throw new UserError(over);
  if (entropy) entropy = { ...entropy, eos: [...(tok?.eos ?? [])] };
  if (source && !diffusion && !block && !entropy)
    checkRunFits(prompt.length, maxTokens, source.manifest.compile.capacity, ir.maxContext, dump);
  const gpu = await nodeGpu({ flags: gpuFlags(values['gpu-flags']) });
  if (!source) {
    // A diffusion step is one forward over the whole canvas: by default, size the prefill
    // chunk and the cache to hold it.
    const gen = diffusion ?? block ?? entropy;
    const canvas = gen ? String(prompt.length + gen.genLength) : undefined;
    const compiled = compileWithOptions(
      input!.model,
      gpu.caps,
      gen
        ? { ...values, 'max-t': values['max-t'] ?? canvas, capacity: values.capacity ?? canvas }
        : batchPrompts
          ? { ...values, batch: values.batch ?? String(batchPrompts.length) }
          : values,
    );
    if (!gen) checkRunFits(prompt.length, maxTokens, compiled.capacity, ir.maxContext, dump);
    source = memorySource(compiled, input!.weights, input!.tokenizer, () => input!.close());
  }
  return {
    gpu,
    source,
    plan: {
      prompt,
      tok,
      template,
      batchPrompts,
      entropy,
      block,
      diffusion,
      sampling,
      maxTokens,
    },
  };
}

/** What run settled before the weights loaded: the prompt, its tokenizer and the generation mode. */
interface RunPlan {
  prompt: number[];
  tok: Tokenizer | null;
  template: ChatTemplate | null;
  batchPrompts: number[][] | null;
  entropy: EntropyBoundRun | null;
  block: BlockDiffusionRun | null;
  diffusion: DiffusionRun | null;
  /** The autoregressive sampler's settings (diffusion samplers take theirs in their run). */
  sampling: SamplingParams;
  maxTokens: number;
}

/** --temperature, --top-k and --top-p, checked against the model's vocab before any load. */
function samplingOptions(values: RunValues, seed: number, vocab: number): SamplingParams {
  const topK = intOption(values['top-k'], 'top-k', 0, 0) ?? 0;
  if (topK > vocab)
    throw new UserError(`--top-k must be at most the vocab (${vocab}), got '${values['top-k']}'`);
  return {
    seed,
    draw: 0,
    temperature: numberOption(values.temperature, 'temperature', 0, 0, 100),
    topK,
    topP: numberOption(values['top-p'], 'top-p', 1, 0, 1),
  };
}

/** Generate with a loaded model as the plan says, printing to stdout; returns the exit status. */
async function generate(model: GpuModel, run: RunPlan, values: RunValues): Promise<number> {
  const { prompt, tok, template, batchPrompts, entropy, block, diffusion, sampling, maxTokens } =
    run;
  if (entropy) {
    await runEntropyBound(model.newSequence(), prompt, entropy, {
      tok,
      ids: values.ids === true,
      dump: values['dump-logits'],
      pick: values.pick as EntropyPick | undefined,
    });
    return 0;
  }
  if (block) {
    await runBlockDiffusion(model.newSequence(), prompt, block, {
      tok,
      ids: values.ids === true,
      dump: values['dump-logits'],
      pick: values.pick,
    });
    return 0;
  }
  if (diffusion) {
    await runDiffusion(model.newSequence(), prompt, diffusion, {
      pick: values.pick as DiffusionPick | undefined,
      tok,
      ids: values.ids === true,
      dump: values['dump-logits'],
    });
    return 0;
  }
  if (batchPrompts) {
    await runBatch(model, batchPrompts, {
      maxTokens,
      sampling,
      stopTokens: values['ignore-eos'] ? [] : [...(tok?.eos ?? [])],
      tok,
      ids: values.ids === true,
    });
    return 0;
  }
  // Tokens fed after the prompt so far: what --check-finite replays to reach the failing step.
  const fed: number[] = [];
  const seq = model.newSequence();
  if (template && tok) {
    const interactive = process.stdin.isTTY === true;
    const lines = createInterface({ input: process.stdin, terminal: false });
    await chatLoop(seq, tok, template, lines, {
      system: values.system,
      maxTokens,
      sampling,
      ignoreEos: values['ignore-eos'] === true,
      write: (s) => process.stdout.write(s),
      note: (s) => process.stderr.write(`strata run: ${s}\n`),
      ready: interactive ? () => process.stdout.write('> ') : undefined,
    });
    return 0;
  }
  try {
    if (values['dump-logits']) {
      await dumpLogits(seq, prompt, maxTokens, sampling, values['dump-logits'], fed);
      if (values.stats) await printExpertLoad(seq);
      return 0;
    }
    const decode = tok?.decodeStream();
    let started = false;
    const timing = tokenTimer();
    try {
      // The model's EOS ends generation (and is not printed), unless --ignore-eos.
      const stopTokens = values['ignore-eos'] ? [] : [...(tok?.eos ?? [])];
      for await (const t of seq.generate(prompt, { maxTokens, stopTokens, ...sampling })) {
        timing.token();
        if (stopTokens.includes(t)) break;
        // generate() feeds every token it yields (the step that fails comes after them).
        fed.push(t);
        started = true;
        if (values.ids || !decode) process.stdout.write(`${t} `);
        else process.stdout.write(decode(t));
      }
    } finally {
      // End the line of tokens already printed, so an error starts on a line of its own.
      if (started) process.stdout.write('\n');
    }
    if (seq.lastStop === 'capacity' && fed.length < maxTokens) {
      // checkRunFits refuses such runs up front; should a bundle disagree with itself, say so.
      throw new Error(
        `stopped after ${fed.length} tokens: the KV cache capacity ${seq.capacity} is full ` +
          `(recompile with --capacity ${prompt.length + maxTokens - 1})`,
      );
    }
    if (!started) process.stdout.write('\n');
    // On stderr, so that stdout stays the generated text.
    process.stderr.write(`strata run: ${timing.line(prompt.length)}\n`);
    if (values.stats) await printExpertLoad(seq);
    return 0;
  } catch (e) {
    if (!(e instanceof NonFiniteError)) throw e;
    if (!values['check-finite']) {
      throw new Error(
        `${e.message} (rerun with --check-finite to find the first dispatch that produced it)`,
      );
    }
    process.stderr.write(`strata run: ${e.message}; replaying dispatch by dispatch ...\n`);
    const site = await model.findFirstNonFinite(prompt, fed);
    throw new Error(`${e.message}\n${describeSite(site)}`);
  }
}

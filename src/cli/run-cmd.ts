import { parseArgs } from 'node:util';
import { writeFile } from 'node:fs/promises';
import type { Command } from './command.ts';
import { UserError } from './command.ts';
import { memorySource } from '../../codegen/bundle.ts';
import { acquire } from '../../runtime/node/webgpu-node.ts';
import { openBundle } from '../../runtime/node/bundle-node.ts';
import {
  GpuModel,
  NonFiniteError,
  type NonFiniteSite,
  type Sequence,
} from '../../runtime/model.ts';
import { type BundleSource } from '../../codegen/manifest.ts';
import { expertLoad, type ExpertLoad } from '../ops/moe.ts';
import {
  byteTokenizer,
  hfTokenizer,
  type Tokenizer,
  type TokenizerFiles,
} from '../../runtime/tokenizer.ts';
import { chatTemplate, type ChatTemplate } from '../../runtime/chat.ts';
import { chatLoop } from './chat.ts';
import { tokenTimer } from './speed.ts';
import { createInterface } from 'node:readline';
import { serializeSafetensors } from '../../formats/safetensors.ts';
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
  runDiffusion,
} from './diffusion-run.ts';
import type { DiffusionRun } from '../ops/diffusion.ts';

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

/**
 * `--prompt-ids`: comma-separated token ids, each strictly decimal (no hex, exponents, signs
 * or empty items: Number() would take '0x10' as 16) and below the model's vocab. Runs before
 * the GPU is acquired, so a typo fails at once.
 */
export function parsePromptIds(s: string, vocab: number): number[] {
  const items = s.split(',').map((x) => x.trim());
  const ids: number[] = [];
  for (const x of items) {
    if (!/^(0|[1-9][0-9]*)$/.test(x)) {
      throw new UserError(
        `--prompt-ids must be comma-separated decimal token ids in [0, ${vocab}), got '${x}' in '${s}'`,
      );
    }
    const id = Number(x);
    if (id >= vocab) {
      throw new UserError(
        `--prompt-ids: token id ${x} is outside the model's vocab (ids are in [0, ${vocab}))`,
      );
    }
    ids.push(id);
  }
  return ids;
}

/**
 * Refuse a run whose prompt, or prompt plus the tokens asked for, does not fit in the KV
 * cache, before the model is loaded: `strata run` has no stop tokens, so generating past the
 * capacity would always end short of --max-tokens.
 */
export function checkRunFits(
  promptLength: number,
  maxTokens: number,
  capacity: number,
  maxContext: number,
  /** --dump-logits feeds the last token too (it records the logits after it). */
  feedsLast = false,
): void {
  const fix = (need: number) =>
    need <= maxContext
      ? `recompile with --capacity ${need}`
      : `the model's max_context ${maxContext} cannot hold ${need}`;
  if (promptLength > capacity) {
    throw new UserError(
      `prompt of ${promptLength} tokens exceeds the KV cache capacity ${capacity} (${fix(promptLength)})`,
    );
  }
  // Generation does not feed its last token back, so prompt + maxTokens - 1 positions are used.
  const slack = feedsLast ? 0 : 1;
  const need = promptLength + maxTokens - slack;
  if (need > capacity) {
    throw new UserError(
      `prompt of ${promptLength} tokens + --max-tokens ${maxTokens} needs ${need} KV cache positions, ` +
        `over the capacity ${capacity}: use --max-tokens ${capacity - promptLength + slack} or less, or ${fix(need)}`,
    );
  }
}

/** The --check-finite report: where the replay first saw a NaN or an Inf. */
function describeSite(site: NonFiniteSite | null): string {
  if (!site)
    return '--check-finite: replaying dispatch by dispatch, every output stayed finite (the failure did not reproduce)';
  const layer = site.layer === null ? 'outside the layers' : `layer ${site.layer}`;
  return (
    `--check-finite: the first non-finite value comes from ${layer}: ${site.step}, ` +
    `dispatch ${site.dispatch} '${site.label}' (kernel ${site.kernel}) wrote ${site.value} ` +
    `to its '${site.binding}' buffer (${site.buffer}) at element ${site.index}`
  );
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

/**
 * The tokenizer text goes through: the bundle's or the checkpoint's tokenizer files; UTF-8 bytes
 * for a spec (or a bundle compiled from one) with a vocab of at least 256; otherwise none, and a
 * text prompt is refused rather than fed as bytes.
 */
async function textTokenizer(
  source: BundleSource | null,
  input: ModelInput | null,
  where: string,
  vocab: number,
): Promise<{ tok: Tokenizer | null; files: TokenizerFiles | null }> {
  const files = source ? await source.tokenizer() : input!.tokenizer;
  if (files !== null && typeof files === 'object') return { tok: hfTokenizer(files, where), files };
  const kind = source ? source.manifest.tokenizer.kind : files;
  return { tok: kind === 'bytes' && vocab >= 256 ? byteTokenizer(vocab) : null, files: null };
}

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

Errors (non-finite logits, WebGPU validation/out-of-memory errors, a lost device) go to stderr
and the exit status is 1; stdout holds only generated tokens. After a run, stderr gets the time
to the first token and the tokens per second after it.
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
        'check-finite': { type: 'boolean' },
        'ignore-eos': { type: 'boolean' },
        chat: { type: 'boolean' },
        system: { type: 'string' },
        'gen-length': { type: 'string' },
        'block-length': { type: 'string' },
        steps: { type: 'string' },
        remasking: { type: 'string' },
      },
    });
    if (positionals.length !== 1)
      throw new UserError('run takes one bundle folder, spec or HuggingFace folder (see --help)');
    if (values.prompt !== undefined && values['prompt-ids'] !== undefined) {
      throw new UserError('give either --prompt or --prompt-ids, not both');
    }
    const seed = intOption(values.seed, 'seed', 0) ?? 0;
    const maxTokens = intOption(values['max-tokens'], 'max-tokens', 32) ?? 32;
    const dump = values['dump-logits'] !== undefined;
    // Everything the host can check runs before the GPU is acquired and the weights loaded: the
    // model's vocab and capacity come from the manifest (or the spec), not from the device.
    let source: BundleSource | null = null;
    let input: ModelInput | null = null;
    if (isBundleDir(positionals[0])) {
      // A bundle is already compiled: an option that would change it must not pass unnoticed.
      const given = (
        ['max-t', 'capacity', 'no-fuse', 'precision', 'kv', 'weights', 'hf', 'target'] as const
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
    const ir = source ? source.manifest.model : input!.model;
    const vocab = ir.vocab;
    const diffusionFlags = (['gen-length', 'block-length', 'steps', 'remasking'] as const).filter(
      (k) => values[k] !== undefined,
    );
    if (!ir.diffusion && diffusionFlags.length) {
      await source?.close?.();
      throw new UserError(
        `${diffusionFlags.map((k) => `--${k}`).join(', ')}: diffusion sampler options, but ${positionals[0]} is an autoregressive model (its spec has no diffusion setting)`,
      );
    }
    let diffusion: DiffusionRun | null = null;
    if (ir.diffusion) {
      try {
        refuseAutoregressiveFlags(values);
        diffusion = diffusionRunOptions(values, ir.diffusion, seed);
      } catch (e) {
        await source?.close?.();
        throw e;
      }
    }
    let prompt: number[];
    let tok: Tokenizer | null;
    let template: ChatTemplate | null = null;
    try {
      const t = await textTokenizer(source, input, positionals[0], vocab);
      tok = t.tok;
      if (values.system !== undefined && !values.chat)
        throw new UserError('--system goes with --chat');
      if (values.chat) {
        template =
          t.files && chatTemplate(t.files.config, `${positionals[0]} tokenizer_config.json`);
        if (!tok || !template)
          throw new UserError(
            `--chat needs the model's tokenizer.json and a chat_template in tokenizer_config.json; ${positionals[0]} has ${tok ? 'no chat_template' : 'no tokenizer strata reads'}`,
          );
        if (values.prompt !== undefined || values['prompt-ids'] !== undefined || dump)
          throw new UserError(
            '--chat reads the conversation from stdin: drop --prompt, --prompt-ids and --dump-logits',
          );
      }
      // A conversation's turns come from stdin; one token stands for them in the capacity check.
      if (values.chat) prompt = [0];
      else if (values['prompt-ids'] !== undefined)
        prompt = parsePromptIds(values['prompt-ids'], vocab);
      else if (tok) prompt = tok.encode(values.prompt ?? 'Hello');
      else
        throw new UserError(
          `${positionals[0]} has no tokenizer strata reads (a HuggingFace folder needs tokenizer.json; ` +
            `GGUF tokenizers are not read yet): give the prompt as --prompt-ids`,
        );
      if (prompt.length === 0) throw new UserError('the prompt is empty');
      if (source && !diffusion)
        checkRunFits(
          prompt.length,
          maxTokens,
          source.manifest.compile.capacity,
          ir.maxContext,
          dump,
        );
    } catch (e) {
      await source?.close?.();
      throw e;
    }
    const gpu = await acquire({ flags: gpuFlags(values['gpu-flags']) });
    if (!source) {
      // A diffusion step is one forward over the whole canvas: by default, size the prefill
      // chunk and the cache to hold it.
      const canvas = diffusion ? String(prompt.length + diffusion.genLength) : undefined;
      const compiled = compileWithOptions(
        input!.model,
        gpu.caps,
        diffusion
          ? { ...values, 'max-t': values['max-t'] ?? canvas, capacity: values.capacity ?? canvas }
          : values,
      );
      if (!diffusion)
        checkRunFits(prompt.length, maxTokens, compiled.capacity, ir.maxContext, dump);
      source = memorySource(compiled, input!.weights, input!.tokenizer);
    }
    const model = await GpuModel.load(gpu, source, terminalProgress());
    if (diffusion) {
      await runDiffusion(model.newSequence(), prompt, diffusion, {
        tok,
        ids: values.ids === true,
        dump: values['dump-logits'],
      });
      return 0;
    }
    const sampling: SamplingParams = {
      seed,
      draw: 0,
      temperature: numberOption(values.temperature, 'temperature', 0, 0, 100),
      topK: numberOption(values['top-k'], 'top-k', 0, 0, vocab),
      topP: numberOption(values['top-p'], 'top-p', 1, 0, 1),
    };
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
        const first = await seq.forward(prompt, sampling);
        const tokens: number[] = [];
        const decodeLogits = new Float32Array(maxTokens * vocab);
        let token = first.token;
        for (let i = 0; i < maxTokens; i++) {
          tokens.push(token);
          fed.push(token);
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
  },
};

/**
 * `strata run` on a diffusion model (a spec with `diffusion llada(...)`): the sampler flags over
 * the spec's defaults, checked with the reference's rules in the flags' own names; the canvas
 * shown filling in (in place on a TTY, a line per step when piped); --dump-logits.
 */
import { writeDump } from './run-report.ts';
import {
  DIFFUSION_PICKS,
  diffusionGenerateGpu,
  type DiffusionPick,
} from '../../runtime/diffusion.ts';
import type { Sequence } from '../../runtime/model.ts';
import type { Tokenizer } from '../../runtime/tokenizer.ts';
import { canvasView } from '../../runtime/canvas-view.ts';
import {
  fastIssues,
  REMASKINGS,
  scheduleIssues,
  scheduleOfSpec,
  type DiffusionCache,
  type DiffusionRun,
  type DiffusionSchedule,
} from '../ops/diffusion.ts';
import type { DiffusionSpec } from '../spec/model.ts';

/** The schedule settings a spec's diffusion kind fixes (transfer, eps, shiftLogits). */
function kindSettings(
  d: DiffusionSpec,
): Pick<DiffusionSchedule, 'transfer' | 'eps' | 'shiftLogits'> {
  const { transfer, eps, shiftLogits } = scheduleOfSpec(d);
  return {
    ...(transfer !== undefined ? { transfer } : {}),
    ...(eps !== undefined ? { eps } : {}),
    ...(shiftLogits ? { shiftLogits } : {}),
  };
}
import { UserError, oneOf } from './command.ts';
import { intOption } from './compile-cmd.ts';

/** Every diffusion sampler flag of `run` (an autoregressive model refuses them all). */
export const DIFFUSION_FLAGS = [
  'gen-length',
  'block-length',
  'steps',
  'remasking',
  'threshold',
  'cache',
  'pick',
  'cfg-scale',
  'sampler',
  'nucleus-p',
] as const;

/** Those of `names` given on the command line, as `--a, --b` for an error ('' when none). */
export function givenFlags(values: Record<string, unknown>, names: readonly string[]): string {
  return names
    .filter((k) => values[k] !== undefined)
    .map((k) => `--${k}`)
    .join(', ');
}

export const DIFFUSION_HELP = `diffusion models (a spec with diffusion llada(...) or dream(...)); defaults from the spec:
  --gen-length N       tokens generated (the canvas holds the prompt and N masks)
  --block-length N     decoded in blocks of N, left to right; must divide --gen-length
  --steps N            forwards in all; a multiple of the number of blocks
  --remasking MODE     low_confidence (commit the most probable), random, margin (top-1 minus
                       top-2 probability) or entropy (the least uncertain rows): the last two
                       are Dream's topk_margin and entropy
  --temperature T      Gumbel noise scale (0 = argmax); --seed seeds the noise
  --cfg-scale S        classifier-free guidance (0 = off): a second forward with the prompt
                       masked, un + (S + 1)·(cond − un); with --cache none and --pick host
  --threshold τ        Fast-dLLM parallel decoding: each step also commits every token whose
                       confidence is above τ, in (0, 1] (1 or unset: the exact schedule)
  --cache MODE         none (exact), prefix or dual: Fast-dLLM's approximate KV reuse inside a
                       block (prefix: rows before the block; dual: before and after it)
  --pick WHERE         host (default: logits read back each step) or gpu (a kernel picks,
                       two words a row come back); --dump-logits needs host
  --dump-logits FILE   write prompt_ids, canvas_logits [prompt + gen length, vocab] of the first
                       step (the model's rows, before Dream's shift), and decode_tokens
                       [gen length] (safetensors)`;

const FLAG: Record<keyof DiffusionSchedule, string> = {
  genLength: '--gen-length',
  blockLength: '--block-length',
  steps: '--steps',
  remasking: '--remasking',
  temperature: '--temperature',
  cfgScale: '--cfg-scale',
  // Set by the spec's diffusion kind (dream), not by flags.
  transfer: 'the diffusion kind',
  eps: 'eps',
  shiftLogits: 'shift_logits',
};

function divisors(n: number): number[] {
  const out: number[] = [];
  for (let d = 1; d <= n && out.length < 12; d++) if (n % d === 0) out.push(d);
  return out;
}

/** The run's settings: flags over the spec's defaults, refused with the flag and its range. */
export function diffusionRunOptions(
  values: Record<string, string | boolean | undefined>,
  d: DiffusionSpec,
  seed: number,
): DiffusionRun {
  const str = (k: string) => values[k] as string | undefined;
  const genLength = intOption(str('gen-length'), 'gen-length', d.genLength)!;
  const remasking = oneOf('remasking', REMASKINGS, str('remasking') ?? d.remasking);
  const t = str('temperature');
  const temperature = t === undefined ? d.temperature : Number(t);
  if (!Number.isFinite(temperature) || temperature < 0)
    throw new UserError(`--temperature must be a number of at least 0, got '${t}'`);
  const th = str('threshold');
  const threshold = th === undefined ? null : Number(th);
  const cache = (str('cache') ?? 'none') as DiffusionCache;
  const run: DiffusionRun = {
    threshold,
    cache,
    genLength,
    // A spec's block longer than a shorter --gen-length becomes the whole answer.
    blockLength:
      intOption(str('block-length'), 'block-length', undefined) ??
      (genLength % d.blockLength === 0 ? d.blockLength : genLength),
    steps: intOption(str('steps'), 'steps', undefined) ?? (str('gen-length') ? genLength : d.steps),
    remasking,
    temperature,
    cfgScale: str('cfg-scale') === undefined ? d.cfgScale : Number(str('cfg-scale')),
    maskId: d.maskId,
    seed,
    // What the spec's kind fixes (Dream's counts and eps, shifted logits): no flags for these.
    ...kindSettings(d),
  };
  const issue = scheduleIssues(run)[0];
  if (issue) {
    const range =
      issue.field === 'blockLength'
        ? ` (allowed: a divisor of ${run.genLength}: ${divisors(run.genLength).join(', ')}${divisors(run.genLength).length === 12 ? ', ...' : ''})`
        : issue.field === 'steps'
          ? ` (allowed: ${run.genLength / run.blockLength}, ${(2 * run.genLength) / run.blockLength}, ... )`
          : '';
    throw new UserError(issue.message((f) => FLAG[f]) + range);
  }
  if (run.shiftLogits && run.cache !== 'none')
    throw new UserError(
      `--cache ${run.cache} on a model with shifted logits (Dream): a cached step does not recompute the row before its block, which predicts the block's first token (allowed: --cache none)`,
    );
  if (run.cfgScale > 0 && run.cache !== 'none')
    throw new UserError(
      `--cfg-scale ${run.cfgScale} with --cache ${run.cache}: classifier-free guidance runs full forwards only (allowed: --cache none, or --cfg-scale 0)`,
    );
  const fast = fastIssues(run)[0];
  if (fast) {
    const given = fast.field === 'threshold' ? `'${th}'` : `'${cache}'`;
    throw new UserError(fast.message((f) => `--${f}`).replace(/, got .*$/, `, got ${given}`));
  }
  return run;
}

/** Flags of autoregressive sampling that mean nothing to the diffusion sampler. */
export function refuseAutoregressiveFlags(values: Record<string, unknown>): void {
  const given = givenFlags(values, [
    'max-tokens',
    'top-k',
    'top-p',
    'chat',
    'system',
    'ignore-eos',
  ]);
  if (given)
    throw new UserError(
      `${given}: autoregressive sampling options, but the model is a diffusion model (use --gen-length, --block-length, --steps, --remasking, --temperature, --threshold, --cache)`,
    );
}

/** Where a diffusion sampler's draws run (--pick), refused where --dump-logits needs the logits. */
export function pickOption(pick: string | undefined, dump: string | undefined): DiffusionPick {
  const p = oneOf('pick', DIFFUSION_PICKS, pick ?? 'host');
  if (p === 'gpu' && dump)
    throw new UserError(
      '--pick gpu reads no logits back, but --dump-logits writes them: use --pick host (the default)',
    );
  return p;
}

/** Run the sampler, showing the canvas as it fills in; writes the dump when asked. */
export async function runDiffusion(
  seq: Sequence,
  prompt: number[],
  run: DiffusionRun,
  o: { tok: Tokenizer | null; ids: boolean; dump?: string; pick?: DiffusionPick },
): Promise<void> {
  const pick = pickOption(o.pick, o.dump);
  if (pick === 'gpu' && run.cfgScale > 0)
    throw new UserError(
      `--pick gpu with --cfg-scale ${run.cfgScale}: guidance combines two forwards' logits on the host (allowed: --pick host, or --cfg-scale 0)`,
    );
  const tty = process.stdout.isTTY === true && !o.dump;
  const P = prompt.length;
  const view = canvasView(P, run.maskId, o);
  let canvasLogits: Float32Array | null = null;
  const total = run.steps;
  let forwards = 0;
  const out = await diffusionGenerateGpu(
    seq,
    prompt,
    run,
    (c, canvas, logits) => {
      forwards++;
      if (c.step === 0 && logits) canvasLogits = logits.slice();
      if (o.dump) return;
      const line = view.line(canvas);
      if (tty) process.stdout.write(`\r\x1b[K${line}`);
      else process.stdout.write(`step ${c.step + 1}/${total}: ${line}\n`);
    },
    pick,
  );
  const tokens = out.slice(P);
  if (o.dump) {
    await writeDump(
      o.dump,
      prompt,
      tokens,
      {
        canvas_logits: {
          dtype: 'F32',
          shape: [out.length, seq.model.vocab],
          data: canvasLogits!,
        },
      },
      `canvas_logits [${out.length}, ${seq.model.vocab}], ${forwards} steps`,
    );
    return;
  }
  if (tty) process.stdout.write('\n');
  else console.log(view.answer(tokens));
}

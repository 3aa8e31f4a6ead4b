/**
 * `strata run` on a block-diffusion model (a spec with `diffusion bd3lm(...)`): the sampler
 * flags over the spec's defaults, checked in the flags' own names; the canvas shown filling in
 * (in place on a TTY, a line per step when piped); --dump-logits.
 */
import { idsTensor, writeDump } from './run-report.ts';
import { blockDiffusionGenerateGpu } from '../../runtime/block-diffusion.ts';
import type { Sequence } from '../../runtime/model.ts';
import type { Tokenizer } from '../../runtime/tokenizer.ts';
import {
  BLOCK_SAMPLERS,
  blockScheduleIssues,
  type BlockDiffusionRun,
  type BlockSampler,
  type BlockSettings,
} from '../ops/block-diffusion.ts';
import type { BlockDiffusionSpec, ModelIR } from '../spec/model.ts';
import { UserError } from './command.ts';
import { intOption } from './compile-cmd.ts';
import { givenFlags, pickOption } from './diffusion-run.ts';
import { canvasView } from '../../runtime/canvas-view.ts';

export const BLOCK_DIFFUSION_HELP = `block-diffusion models (a spec with diffusion bd3lm(...)); defaults from the spec:
  --gen-length N       tokens generated after the prompt
  --block-length N     blocks of N (aligned at position 0), a multiple of the model's
                       block_causal; each is denoised against the exact KV cache of the ones before
  --steps N            steps a block may take (first_hitting: at least --block-length) or takes
                       (ddpm)
  --sampler S          first_hitting (one token a step, at a uniformly chosen masked position)
                       or ddpm (each mask stays with probability s/t)
  --temperature T      0 = argmax; above, a seeded draw (--seed) from softmax(logits / T)
  --nucleus-p P        keep the most probable tokens up to mass P, in (0, 1]
  --pick WHERE         host (default: each committed row's logits read back and drawn there)
                       or gpu (a kernel draws next to the logits; only tokens come back)
  --dump-logits FILE   write prompt_ids, step_positions and step_logits (the positions the first
                       step commits and their logits) and decode_tokens (safetensors)`;

const FLAG: Record<keyof BlockSettings, string> = {
  genLength: '--gen-length',
  blockLength: '--block-length',
  steps: '--steps',
  sampler: '--sampler',
  temperature: '--temperature',
  nucleusP: '--nucleus-p',
};

/** The model's attention block (every layer's block_causal; the spec checks they agree). */
export function modelAttentionBlock(m: ModelIR): number | null {
  const l = m.layers.find((x) => x.mixer?.kind === 'attention');
  return l?.mixer?.kind === 'attention' ? (l.mixer.blockCausal ?? null) : null;
}

/** The run's settings: flags over the spec's defaults, refused with the flag and its range. */
export function blockDiffusionRunOptions(
  values: Record<string, string | boolean | undefined>,
  d: BlockDiffusionSpec,
  attnBlock: number | null,
  seed: number,
): BlockDiffusionRun {
  const str = (k: string) => values[k] as string | undefined;
  const llada = givenFlags(values, ['remasking', 'threshold', 'cache', 'cfg-scale']);
  if (llada)
    throw new UserError(
      `${llada}: LLaDA sampler options, but the model is a block-diffusion model (bd3lm; use --gen-length, --block-length, --steps, --sampler, --temperature, --nucleus-p, --pick)`,
    );
  const num = (k: string, dflt: number): number => {
    const v = str(k);
    if (v === undefined) return dflt;
    const x = Number(v);
    if (v.trim() === '' || !Number.isFinite(x))
      throw new UserError(`--${k} must be a number, got '${v}'`);
    return x;
  };
  const blockLength = intOption(str('block-length'), 'block-length', d.blockLength)!;
  const run: BlockDiffusionRun = {
    genLength: intOption(str('gen-length'), 'gen-length', d.genLength)!,
    blockLength,
    // A --block-length longer than the spec's steps gets as many (first hitting needs them).
    steps:
      intOption(str('steps'), 'steps', undefined) ??
      (str('block-length') ? Math.max(d.steps, blockLength) : d.steps),
    sampler: (str('sampler') ?? d.sampler) as BlockSampler,
    temperature: num('temperature', d.temperature),
    nucleusP: num('nucleus-p', d.nucleusP),
    maskId: d.maskId,
    seed,
  };
  // Checked here too, before the model loads.
  pickOption(str('pick'), str('dump-logits'));
  const issue = blockScheduleIssues(run, attnBlock)[0];
  if (issue) {
    const given = issue.field === 'sampler' ? ` (allowed: ${BLOCK_SAMPLERS.join(', ')})` : '';
    throw new UserError(issue.message((f) => FLAG[f]) + given);
  }
  return run;
}

/** Run the sampler, showing the canvas as it fills in; writes the dump when asked. */
export async function runBlockDiffusion(
  seq: Sequence,
  prompt: number[],
  run: BlockDiffusionRun,
  o: { tok: Tokenizer | null; ids: boolean; dump?: string; pick?: string },
): Promise<void> {
  const pick = pickOption(o.pick, o.dump);
  const tty = process.stdout.isTTY === true && !o.dump;
  const P = prompt.length;
  const view = canvasView(P, run.maskId, o);
  // The first step that ran a forward: its positions and their logits.
  let first: { positions: number[]; logits: Float32Array } | null = null;
  let steps = 0;
  let forwards = 0;
  const out = await blockDiffusionGenerateGpu(
    seq,
    prompt,
    run,
    (c, canvas, logits) => {
      steps++;
      if (c.forward) forwards++;
      if (logits && !first) first = { positions: c.positions, logits: logits.slice() };
      if (o.dump) return;
      const line = view.line(canvas);
      if (tty) process.stdout.write(`\r\x1b[K${line}`);
      else process.stdout.write(`step ${c.step + 1} (block ${c.block}): ${line}\n`);
    },
    pick,
  );
  const tokens = out.slice(P);
  if (o.dump) {
    const vocab = seq.model.vocab;
    const f = first!;
    const rows = f.positions.length;
    await writeDump(
      o.dump,
      prompt,
      tokens,
      {
        step_positions: idsTensor(f.positions),
        step_logits: { dtype: 'F32', shape: [rows, vocab], data: f.logits },
      },
      `step_logits [${rows}, ${vocab}] (the first forward's committed positions), ${steps} steps, ${forwards} forwards`,
    );
    return;
  }
  if (tty) process.stdout.write('\n');
  else console.log(view.answer(tokens));
}

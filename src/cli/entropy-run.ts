/**
 * `strata run` on an entropy_bound diffusion model (DiffusionGemma, a spec with
 * `diffusion entropy_bound(...)`): the spec's sampler defaults with --gen-length, --steps and
 * --temperature 0 (greedy) over them, each canvas printed as it is committed.
 */
import { idsTensor, writeDump } from './run-report.ts';
import { entropyBoundOnSequence } from '../../runtime/entropy-diffusion.ts';
import type { Sequence } from '../../runtime/model.ts';
import type { Tokenizer } from '../../runtime/tokenizer.ts';
import {
  entropyBoundGenerate,
  entropyBoundIssues,
  entropyBoundRunOf,
  type BlockDiffusionModel,
  type EntropyBoundField,
  type EntropyBoundRun,
} from '../ops/diffusion-entropy.ts';
import type { EntropyBoundSpec } from '../spec/model.ts';
import { UserError } from './command.ts';
import { intOption } from './compile-cmd.ts';
import { DIFFUSION_FLAGS, givenFlags } from './diffusion-run.ts';

export const ENTROPY_BOUND_HELP = `entropy_bound diffusion models (DiffusionGemma, a spec with diffusion entropy_bound(...)); defaults from the spec:
  --gen-length N       tokens generated after the prompt, whole canvases of canvas_length
  --steps N            denoising steps a canvas may take (max_denoising_steps)
  --temperature 0      greedy: every step takes the argmax (t_min and t_max 0); other
                       temperatures come from the spec's t_min / t_max
  --pick WHERE         gpu (default: a kernel reduces each denoising step's logits to a few
                       words a row, and the host recomputes only rows whose f32 bounds could
                       change a decision: the same tokens) or host (every step's logits read
                       back)
  --dump-logits FILE   write prompt_ids, canvas_ids and canvas_logits [canvas_length, vocab]
                       (the first denoising step: the first canvas, after the prompt is
                       encoded, without self-conditioning) and decode_tokens, as safetensors`;

const FLAG: Partial<Record<EntropyBoundField, string>> = {
  genLength: '--gen-length',
  maxSteps: '--steps',
  tMin: '--temperature',
  tMax: '--temperature',
};

/** Where each denoising step's rows are reduced (--pick): a GPU kernel, or the host. */
export type EntropyPick = 'gpu' | 'host';

/** The run's settings: flags over the spec's defaults, refused with the flag and its range. */
export function entropyBoundRunOptions(
  values: Record<string, string | boolean | undefined>,
  d: EntropyBoundSpec,
  vocab: number,
  eos: readonly number[],
  seed: number,
): EntropyBoundRun {
  const str = (k: string) => values[k] as string | undefined;
  // Every sampler flag but those entropy_bound takes.
  const other = givenFlags(
    values,
    DIFFUSION_FLAGS.filter((k) => k !== 'gen-length' && k !== 'steps' && k !== 'pick'),
  );
  if (other)
    throw new UserError(
      `${other}: options of other diffusion samplers, but the model is an entropy_bound diffusion model (use --gen-length, --steps, --temperature 0, --pick)`,
    );
  const pick = str('pick');
  if (pick !== undefined && pick !== 'gpu' && pick !== 'host')
    throw new UserError(`--pick must be gpu or host, got '${pick}'`);
  const t = str('temperature');
  if (t !== undefined && Number(t) !== 0)
    throw new UserError(
      `--temperature ${t}: an entropy_bound model takes --temperature 0 (greedy) or its spec's t_min ${d.tMin} / t_max ${d.tMax}`,
    );
  const run = entropyBoundRunOf(d, {
    genLength: intOption(str('gen-length'), 'gen-length', d.genLength),
    maxSteps: intOption(str('steps'), 'steps', d.maxSteps),
    greedy: t !== undefined,
    eos,
    seed,
  });
  const issue = entropyBoundIssues(run, vocab)[0];
  if (issue) throw new UserError(issue.message((f) => FLAG[f] ?? f));
  return run;
}

/** Run the sampler, a line per committed canvas; the answer (text, or ids) at the end. */
export async function runEntropyBound(
  seq: Sequence,
  prompt: number[],
  run: EntropyBoundRun,
  // pick: checked with the other flags (entropyBoundRunOptions), before the model loads.
  o: { tok: Tokenizer | null; ids: boolean; dump?: string; pick?: EntropyPick },
): Promise<void> {
  const pick = o.pick ?? 'gpu';
  const show = (ids: ArrayLike<number>) =>
    o.ids || !o.tok ? Array.from(ids).join(' ') : o.tok.decode(Array.from(ids));
  const model = entropyBoundOnSequence(seq);
  // The first denoising step's canvas and logits, for --dump-logits.
  let first: { canvas: Uint32Array; logits: Float32Array } | null = null;
  // Only --dump-logits reads a step's logits back (the first step's); every other step of the
  // device path reads its row statistics alone.
  const watched: BlockDiffusionModel = {
    ...model,
    async denoise(canvas, sc, t) {
      // The same array goes back to the sampler: the model knows its own logits by it.
      const logits = await model.denoise(canvas, sc, t);
      if (o.dump) first ??= { canvas: canvas.slice(), logits: logits.slice() };
      return logits;
    },
    async denoiseRows(canvas, sc, t, noise, withLogits) {
      const want = o.dump !== undefined && first === null;
      const rows = await model.denoiseRows!(canvas, sc, t, noise, withLogits || want);
      if (want) first = { canvas: canvas.slice(), logits: rows.logits!.slice() };
      return rows;
    },
  };
  let steps = 0;
  const out = await entropyBoundGenerate(watched, prompt, run, {
    deviceRows: pick === 'gpu',
    onStep: (s) => {
      steps++;
      if (s.stopped || s.remaining === 0)
        process.stderr.write(`strata run: canvas ${s.block} after ${steps} steps\n`);
    },
  });
  if (o.dump) {
    const f = first as { canvas: Uint32Array; logits: Float32Array } | null;
    if (!f) throw new Error('the sampler ran no denoising step: nothing to dump');
    const C = f.canvas.length;
    const vocab = model.vocab;
    await writeDump(
      o.dump,
      prompt,
      out,
      {
        canvas_ids: idsTensor(f.canvas),
        canvas_logits: { dtype: 'F32', shape: [C, vocab], data: f.logits },
      },
      `canvas_logits [${C}, ${vocab}], ${steps} steps`,
    );
    return;
  }
  console.log(show(out));
}

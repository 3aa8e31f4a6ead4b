/**
 * `strata run` on an entropy_bound diffusion model (DiffusionGemma, a spec with
 * `diffusion entropy_bound(...)`): the spec's sampler defaults with --gen-length, --steps and
 * --temperature 0 (greedy) over them, each canvas printed as it is committed.
 */
import { entropyBoundOnSequence } from '../../runtime/entropy-diffusion.ts';
import type { Sequence } from '../../runtime/model.ts';
import type { Tokenizer } from '../../runtime/tokenizer.ts';
import {
  entropyBoundGenerate,
  entropyBoundIssues,
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
                       temperatures come from the spec's t_min / t_max`;

const FLAG: Partial<Record<EntropyBoundField, string>> = {
  genLength: '--gen-length',
  maxSteps: '--steps',
  tMin: '--temperature',
  tMax: '--temperature',
};

/** The run's settings: flags over the spec's defaults, refused with the flag and its range. */
export function entropyBoundRunOptions(
  values: Record<string, string | boolean | undefined>,
  d: EntropyBoundSpec,
  vocab: number,
  eos: readonly number[],
  seed: number,
): EntropyBoundRun {
  const str = (k: string) => values[k] as string | undefined;
  // Every sampler flag but the two entropy_bound takes.
  const other = givenFlags(
    values,
    DIFFUSION_FLAGS.filter((k) => k !== 'gen-length' && k !== 'steps'),
  );
  if (other)
    throw new UserError(
      `${other}: options of other diffusion samplers, but the model is an entropy_bound diffusion model (use --gen-length, --steps, --temperature 0)`,
    );
  const t = str('temperature');
  if (t !== undefined && Number(t) !== 0)
    throw new UserError(
      `--temperature ${t}: an entropy_bound model takes --temperature 0 (greedy) or its spec's t_min ${d.tMin} / t_max ${d.tMax}`,
    );
  const greedy = t !== undefined;
  const run: EntropyBoundRun = {
    canvasLength: d.canvasLength,
    genLength: intOption(str('gen-length'), 'gen-length', d.genLength)!,
    maxSteps: intOption(str('steps'), 'steps', d.maxSteps)!,
    tMin: greedy ? 0 : d.tMin,
    tMax: greedy ? 0 : d.tMax,
    entropyBound: d.entropyBound,
    stabilityThreshold: d.stabilityThreshold,
    confidenceThreshold: d.confidenceThreshold,
    eos,
    pad: null,
    seed,
  };
  const issue = entropyBoundIssues(run, vocab)[0];
  if (issue) throw new UserError(issue.message((f) => FLAG[f] ?? f));
  return run;
}

/** Run the sampler, a line per committed canvas; the answer (text, or ids) at the end. */
export async function runEntropyBound(
  seq: Sequence,
  prompt: number[],
  run: EntropyBoundRun,
  o: { tok: Tokenizer | null; ids: boolean },
): Promise<void> {
  const show = (ids: ArrayLike<number>) =>
    o.ids || !o.tok ? Array.from(ids).join(' ') : o.tok.decode(Array.from(ids));
  let steps = 0;
  const out = await entropyBoundGenerate(entropyBoundOnSequence(seq), prompt, run, {
    onStep: (s) => {
      steps++;
      if (s.stopped || s.remaining === 0)
        process.stderr.write(`strata run: canvas ${s.block} after ${steps} steps\n`);
    },
  });
  console.log(show(out));
}

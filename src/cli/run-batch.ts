/**
 * `strata run --prompts FILE`: several prompts decoded together in one batched bundle
 * (compile --batch B; runtime/batch.ts), each output printed on its own line once all are done.
 * Each prompt is prefilled into its own batch slot first (maxT tokens a step, a progress bar
 * for long ones on stderr), then the batched steps generate for all of them.
 */
import type { Tokenizer } from '../../runtime/tokenizer.ts';
import type { GpuModel } from '../../runtime/model.ts';
import { BatchSequence } from '../../runtime/batch.ts';
import type { SamplingParams } from '../../codegen/kernel-ir.ts';
import { terminalProgress } from './progress.ts';

/** Decode `prompts` as one batch and print each output, `[s] text`, in the order given. */
export async function runBatch(
  model: GpuModel,
  prompts: number[][],
  opts: {
    maxTokens: number;
    sampling: SamplingParams;
    stopTokens: number[];
    tok: Tokenizer | null;
    ids: boolean;
  },
): Promise<void> {
  const batch = new BatchSequence(model);
  const t0 = performance.now();
  const progress = terminalProgress();
  // Only prompts of several prefill steps draw a bar (the progress itself stays quiet < 2 s).
  const long = (total: number) => total > batch.maxT;
  let firstToken = 0;
  const out = await batch.generate(prompts, {
    maxTokens: opts.maxTokens,
    stopTokens: opts.stopTokens,
    ...opts.sampling,
    onPrefill: (slot, done, total) => {
      if (long(total)) progress(`prefill prompt ${slot}`, done, total);
      if (done === total && slot === batch.batch - 1) firstToken = performance.now();
    },
  });
  const seconds = (performance.now() - t0) / 1000;
  let generated = 0;
  for (const [s, tokens] of out.tokens.entries()) {
    const shown = tokens.filter((t) => !opts.stopTokens.includes(t));
    generated += tokens.length;
    const text =
      opts.ids || !opts.tok
        ? shown.join(' ')
        : (() => {
            const d = opts.tok!.decodeStream();
            return shown.map(d).join('');
          })();
    process.stdout.write(`[${s}] ${text}\n`);
  }
  process.stderr.write(
    `strata run: ${prompts.length} sequences (batch ${batch.batch}), ${prompts.reduce((n, p) => n + p.length, 0)} prompt tokens ` +
      `prefilled in ${((firstToken - t0) / 1000).toFixed(2)} s, then ${batch.steps} batched steps: ` +
      `${generated} tokens in ${seconds.toFixed(2)} s (${(generated / seconds).toFixed(1)} tok/s, prompts included in the time)\n`,
  );
  batch.destroy();
}

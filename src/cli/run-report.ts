/**
 * What `strata run` reports besides the generated text: the logits dump (--dump-logits), the
 * MoE expert loads (--stats) and where a non-finite value first appeared (--check-finite).
 */
import { writeFile } from 'node:fs/promises';
import type { NonFiniteSite, Sequence } from '../../runtime/model.ts';
import type { SamplingParams } from '../../codegen/kernel-ir.ts';
import { expertLoad, type ExpertLoad } from '../ops/moe.ts';
import { serializeSafetensors, type TensorToWrite } from '../../formats/safetensors.ts';

/** The --check-finite report: where the replay first saw a NaN or an Inf. */
export function describeSite(site: NonFiniteSite | null): string {
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

export async function printExpertLoad(seq: Sequence): Promise<void> {
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

/** Token ids as an I32 tensor [n]. */
export function idsTensor(ids: ArrayLike<number>): TensorToWrite {
  return { dtype: 'I32', shape: [ids.length], data: Int32Array.from(ids) };
}

/**
 * Writes a --dump-logits file, every runner's layout: prompt_ids, the runner's own logits (and
 * positions), decode_tokens; then says what it wrote (`what`) and prints the generated tokens.
 */
export async function writeDump(
  file: string,
  prompt: ArrayLike<number>,
  tokens: ArrayLike<number>,
  tensors: Record<string, TensorToWrite>,
  what: string,
): Promise<void> {
  const bytes = serializeSafetensors({
    prompt_ids: idsTensor(prompt),
    ...tensors,
    decode_tokens: idsTensor(tokens),
  });
  await writeFile(file, new Uint8Array(bytes));
  console.log(`wrote ${file}: ${what}`);
  console.log(`decode tokens: ${Array.from(tokens).join(',')}`);
}

/**
 * --dump-logits: prefill the prompt, then feed maxTokens greedy-or-sampled tokens one at a time,
 * and write every position's logits as safetensors (the golden fixtures' layout). Each fed token
 * is pushed onto `fed`, which --check-finite replays.
 */
export async function dumpLogits(
  seq: Sequence,
  prompt: number[],
  maxTokens: number,
  sampling: SamplingParams,
  file: string,
  fed: number[],
): Promise<void> {
  const vocab = seq.model.manifest.model.vocab;
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
  await writeDump(
    file,
    prompt,
    tokens,
    {
      prefill_logits: { dtype: 'F32', shape: [prompt.length, vocab], data: first.logits },
      decode_logits: { dtype: 'F32', shape: [tokens.length, vocab], data: decodeLogits },
    },
    `prefill_logits [${prompt.length}, ${vocab}], ${tokens.length} decode steps`,
  );
}

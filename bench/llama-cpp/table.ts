/**
 * The llama.cpp comparison table of bench/RESULTS.md: strata's e2e rows (prefill of 512 tokens
 * and batch-1 decode, per weight precision) beside llama-bench's pp512 and tg128 on CUDA and on
 * Vulkan, on GGUF files written from the same weights (bench/llama-cpp/run.sh, collect.py).
 */
interface Row {
  [k: string]: unknown;
}

/** What collect.py writes. */
export interface LlamaCppResults {
  date?: string;
  device?: string | null;
  llamaCpp?: { via?: string; commit?: string | null; number?: number | null };
  args?: string;
  rows: {
    backend: string;
    precision: string;
    test: string;
    tokensPerSecond: number;
    meanTokensPerSecond?: number;
    stddevTokensPerSecond?: number;
    reps?: number;
  }[];
  errors?: { backend: string; precision: string; error: string }[];
}

/** The GGUF type each strata precision's file holds (q4 keeps the head at Q8_0, as strata does). */
const GGUF_OF: Record<string, string> = {
  f32: 'F32',
  f16: 'F16',
  q8: 'Q8_0',
  q4: 'Q4_0 (head Q8_0)',
};

const f = (x: unknown, d = 0) => (typeof x === 'number' ? x.toFixed(d) : '—');
const ratio = (a: unknown, b: unknown) =>
  typeof a === 'number' && typeof b === 'number' ? `${(a / b).toFixed(2)}×` : '—';

/** Markdown lines of the section; `e2e` is strata's e2e suite (one row per precision). */
export function llamaCppSection(e2e: Row[], lc: LlamaCppResults, e2eFrom: string): string[] {
  const pick = (backend: string, precision: string, test: string) => {
    const r = lc.rows.find(
      (x) => x.backend === backend && x.precision === precision && x.test === test,
    );
    if (r) return r.tokensPerSecond;
    const e = lc.errors?.find((x) => x.backend === backend && x.precision === precision);
    return e ? 'failed' : undefined;
  };
  const cell = (v: unknown) => (v === 'failed' ? 'failed' : f(v));
  const build = lc.llamaCpp?.commit ? ` (llama.cpp ${lc.llamaCpp.commit})` : '';
  const lines = [
    `## end to end vs llama.cpp${build}: same weights as GGUF, CUDA and Vulkan backends`,
    '',
    `strata: the e2e rows (${e2eFrom}), prefill of 512 tokens and batch-1 decode, tokens/s. llama.cpp: llama-bench \`${lc.args ?? ''}\` (flash attention on, every layer on the GPU) on GGUF files written from the same weights at each precision by bench/llama-cpp/write-gguf.ts (Q8_0/Q4_0 blocks hold strata's own codes and scales), median tokens/s over the repetitions${lc.device ? `; ${lc.device}` : ''}${lc.date ? `, ${lc.date}` : ''}. tg128 generates 128 tokens from an empty context; strata's decode follows its prompt. Ratios are strata ÷ llama.cpp, prefill / decode: above 1× strata is faster.`,
    '',
    '| weights | strata pp512 | strata tg128 | llama.cpp CUDA pp512 | tg128 | Vulkan pp512 | tg128 | strata ÷ CUDA | strata ÷ Vulkan |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- |',
  ];
  for (const p of ['f32', 'f16', 'q8', 'q4']) {
    const s = e2e.find((r) => (r.precision ?? 'f32') === p);
    const sp = ((s?.prefill ?? []) as Row[]).find((x) => x.tokens === 512)?.tokensPerSecond;
    const sd = (s?.decode as Row | undefined)?.tokensPerSecond;
    const [cp, ct, vp, vt] = [
      pick('cuda', p, 'pp512'),
      pick('cuda', p, 'tg128'),
      pick('vulkan', p, 'pp512'),
      pick('vulkan', p, 'tg128'),
    ];
    if (s === undefined && [cp, ct, vp, vt].every((v) => v === undefined)) continue;
    lines.push(
      `| ${p} / ${GGUF_OF[p]} | ${f(sp)} | ${f(sd, 1)} | ${cell(cp)} | ${cell(ct)} | ${cell(vp)} | ${cell(vt)} | ${ratio(sp, cp)} / ${ratio(sd, ct)} | ${ratio(sp, vp)} / ${ratio(sd, vt)} |`,
    );
  }
  for (const e of lc.errors ?? [])
    lines.push('', `llama.cpp ${e.backend} ${e.precision} failed: ${e.error}`);
  lines.push('');
  return lines;
}

/**
 * The README's table of examples/explore's study, from study/results.json: memory against
 * context, the roofline's decode estimate at 4k and 128k, and the longest context that fits a
 * 24 GiB GPU and a 4 GiB browser tab. Writes study/summary.md.
 *   npx tsx examples/explore/summarize.ts
 */
import { readFileSync, writeFileSync } from 'node:fs';
import type { Results } from '../../src/cli/explore/results.ts';
import { humanBytes } from '../../src/cli/units.ts';

const dir = 'examples/explore/study';
const r = JSON.parse(readFileSync(`${dir}/results.json`, 'utf8')) as Results;
const k = (n: number) => (n >= 1 << 20 ? `${n / (1 << 20)}M` : `${n / 1024}k`);
const ctx = (n: number | null) =>
  n === null ? '—' : n >= 1e6 ? `${(n / 1e6).toFixed(2)}M` : `${Math.round(n / 1000)}k`;
const head = [
  'linear',
  'ratio',
  'params',
  'KV / token',
  'state',
  ...r.contexts.map((c) => `memory @ ${k(c)}`),
  'decode tok/s @ 4k',
  'decode tok/s @ 128k',
  'max context in 24 GiB',
  'in 4 GiB',
];
const rows = r.designs.map((d) => {
  const f = d.figures[0];
  return [
    String(d.values.linear),
    `${d.values.ratio}:1`,
    `${(f.parameters / 1e9).toFixed(2)}B`,
    humanBytes(f.kvBytesPerToken),
    humanBytes(f.recurrentStateBytes),
    ...r.contexts.map((c) => humanBytes(f.memoryAt[c])),
    f.decodeAt[4096].tokensPerSecond.toFixed(0),
    f.decodeAt[131072].tokensPerSecond.toFixed(0),
    ctx(f.maxContext['24GiB']),
    ctx(f.maxContext['4GiB']),
  ];
});
const md = [head, head.map(() => '---'), ...rows].map((c) => `| ${c.join(' | ')} |`).join('\n');
writeFileSync(`${dir}/summary.md`, md + '\n');
console.log(md);

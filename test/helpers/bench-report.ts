/**
 * bench/report.ts run as a user runs it, in a scratch folder: a strata results file holding
 * `strataE2e`, an empty peers file and one peer's results file; gives RESULTS.md and the results
 * JSON it saved. Shared by the peer table tests (ONNX Runtime, llama.cpp).
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

export function runReport<Saved>(
  strataE2e: unknown,
  peerFile: string,
  peer: unknown,
): { md: string; saved: Saved } {
  const work = mkdtempSync(join(tmpdir(), 'strata-report-'));
  try {
    mkdirSync(join(work, 'bench/results'), { recursive: true });
    const strata = {
      date: '2026-12-05T10:00:00.000Z',
      device: 'nvidia h200',
      dawnFlags: [],
      features: [],
      e2e: [strataE2e],
    };
    writeFileSync(join(work, 'strata.json'), JSON.stringify(strata));
    writeFileSync(join(work, 'peers.json'), JSON.stringify({ device: 'NVIDIA H200', e2e: {} }));
    writeFileSync(join(work, peerFile), JSON.stringify(peer));
    execFileSync(
      resolve('node_modules/.bin/tsx'),
      [resolve('bench/report.ts'), 'strata.json', 'peers.json', 'the command', peerFile],
      { cwd: work, stdio: 'pipe' },
    );
    const md = readFileSync(join(work, 'bench/RESULTS.md'), 'utf8');
    const [file] = readdirSync(join(work, 'bench/results'));
    const saved = JSON.parse(readFileSync(join(work, 'bench/results', file), 'utf8')) as Saved;
    return { md, saved };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

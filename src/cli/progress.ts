import type { Progress } from '../../codegen/manifest.ts';
import { humanBytes } from './units.ts';

/**
 * Progress of the stages of a compile or a load (tensors written, weights uploaded, pipelines
 * created), on stderr. A terminal gets a bar redrawn in place. Elsewhere (a log, a pipe, CI) a
 * stage prints plain lines: one every 5 s while it runs, and one when it ends if it took 2 s or
 * more, so that quick stages stay silent and a slow one shows it is alive.
 */
export function terminalProgress(
  tty = process.stderr.isTTY === true,
  write: (s: string) => void = (s) => void process.stderr.write(s),
  now: () => number = Date.now,
): Progress {
  let lastStage = '';
  let lastDraw = 0;
  let stageStart = 0;
  return (stage, done, total) => {
    const t = now();
    if (stage !== lastStage) {
      lastStage = stage;
      stageStart = t;
      lastDraw = tty ? -Infinity : t;
    }
    if (!tty) {
      const secs = (t - stageStart) / 1000;
      if (done >= total) {
        if (secs >= 2) write(`${stage}: ${done}/${total} done in ${humanDuration(secs)}\n`);
      } else if (t - lastDraw >= 5000) {
        lastDraw = t;
        write(`${stage}: ${done}/${total} after ${humanDuration(secs)}\n`);
      }
      return;
    }
    if (done < total && t - lastDraw < 100) return;
    lastDraw = t;
    const width = 30;
    const filled = Math.round((done / Math.max(1, total)) * width);
    write(
      `\r${stage.padEnd(18)} [${'#'.repeat(filled)}${' '.repeat(width - filled)}] ${done}/${total}`,
    );
    if (done >= total) write('\n');
  };
}

/** Seconds as 42s, 3m05s or 1h02m. */
export function humanDuration(s: number): string {
  if (!Number.isFinite(s)) return '?';
  const t = Math.max(0, Math.round(s));
  if (t < 60) return `${t}s`;
  const m = Math.floor(t / 60);
  if (m < 60) return `${m}m${String(t % 60).padStart(2, '0')}s`;
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`;
}

export interface ByteProgress {
  /** `done` bytes of the total are now in place. */
  update(done: number): void;
  /** The transfer ended (complete or not): finish the line. */
  end(): void;
}

/**
 * Progress of one transfer in bytes, with its rate and ETA. On a terminal a bar redrawn in place
 * (at most ten times a second); otherwise (a log, a pipe, CI) a plain line every few seconds, so
 * that a long download shows it is alive without flooding the log. `start` bytes were already
 * there (a resumed download): the rate counts only what this run moved.
 */
export function byteProgress(
  label: string,
  total: number,
  start = 0,
  opts: { tty?: boolean; write?: (s: string) => void; now?: () => number } = {},
): ByteProgress {
  const tty = opts.tty ?? process.stderr.isTTY === true;
  const write = opts.write ?? ((s: string) => void process.stderr.write(s));
  const now = opts.now ?? Date.now;
  const t0 = now();
  // A terminal shows the bar at once; a log gets its first line after 5 s, so a small file
  // costs one line (the summary).
  let last = tty ? -Infinity : t0;
  let done = start;
  const line = (): string => {
    const secs = Math.max(1e-3, (now() - t0) / 1000);
    const rate = (done - start) / secs;
    const eta = rate > 0 ? humanDuration((total - done) / rate) : '?';
    const pct = total > 0 ? Math.floor((100 * done) / total) : 100;
    const amount = `${humanBytes(done)} / ${humanBytes(total)}`;
    const tail = `${amount}  ${humanBytes(Math.round(rate))}/s  ETA ${eta}`;
    if (!tty) return `${label}: ${pct}% (${tail})`;
    const width = 24;
    const filled = total > 0 ? Math.round((done / total) * width) : width;
    return `${label} [${'#'.repeat(filled)}${' '.repeat(width - filled)}] ${String(pct).padStart(3)}%  ${tail}`;
  };
  return {
    update(n) {
      done = n;
      const t = now();
      if (t - last < (tty ? 100 : 5000)) return;
      last = t;
      write(tty ? `\r${line()}\x1b[K` : `${line()}\n`);
    },
    end() {
      const secs = (now() - t0) / 1000;
      const rate = humanBytes(Math.round((done - start) / Math.max(1e-3, secs)));
      const what =
        done >= total ? 'done' : `stopped at ${humanBytes(done)} of ${humanBytes(total)}`;
      const summary = `${label}: ${what}, ${humanBytes(done - start)} in ${humanDuration(secs)} (${rate}/s)`;
      write(tty ? `\r${summary}\x1b[K\n` : `${summary}\n`);
    },
  };
}

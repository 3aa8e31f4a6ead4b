/** Byte progress: bytes, rate and ETA; a bar redrawn in place on a terminal, plain lines elsewhere. */
import { describe, expect, it } from 'vitest';
import { byteProgress, humanDuration, terminalProgress } from '../../src/cli/progress.ts';
import { humanBytes, humanCount, humanFlops, layerList } from '../../src/cli/units.ts';
import { tokenTimer } from '../../src/cli/speed.ts';

function clocked(tty: boolean, start = 0) {
  let t = 0;
  const out: string[] = [];
  const p = byteProgress('w.safetensors', 100 * 2 ** 20, start, {
    tty,
    write: (s) => void out.push(s),
    now: () => t,
  });
  return { p, out, at: (ms: number) => (t = ms) };
}

describe('byteProgress', () => {
  it('on a terminal, redraws one line with bytes, rate and ETA', () => {
    const { p, out, at } = clocked(true);
    at(1000);
    p.update(10 * 2 ** 20);
    at(1050);
    p.update(11 * 2 ** 20); // within 100 ms of the last draw: skipped
    at(2000);
    p.update(20 * 2 ** 20);
    p.end();
    expect(out).toHaveLength(3);
    expect(out[0]).toMatch(
      /^\rw\.safetensors \[##\s+\]\s+10%\s+10\.0 MiB \/ 100 MiB\s+10\.0 MiB\/s\s+ETA 9s/,
    );
    expect(out[1]).toMatch(/20\.0 MiB \/ 100 MiB {2}10\.0 MiB\/s {2}ETA 8s/);
    expect(out[2]).toMatch(
      /stopped at 20\.0 MiB of 100 MiB, 20\.0 MiB in 2s \(10\.0 MiB\/s\)\x1b\[K\n$/,
    );
  });

  it('elsewhere, writes a plain line every 5 s and a summary, counting only this run for the rate', () => {
    const { p, out, at } = clocked(false, 50 * 2 ** 20);
    at(1000);
    p.update(60 * 2 ** 20); // before 5 s: no line
    at(5000);
    p.update(70 * 2 ** 20);
    at(10000);
    p.update(100 * 2 ** 20);
    p.end();
    expect(out).toEqual([
      'w.safetensors: 70% (70.0 MiB / 100 MiB  4.00 MiB/s  ETA 8s)\n',
      'w.safetensors: 100% (100 MiB / 100 MiB  5.00 MiB/s  ETA 0s)\n',
      'w.safetensors: done, 50.0 MiB in 10s (5.00 MiB/s)\n',
    ]);
    expect(out.join('')).not.toMatch(/\r|\x1b/);
  });

  it('formats sizes and durations for people', () => {
    expect(humanBytes(512)).toBe('512 B');
    expect(humanBytes(1536)).toBe('1.50 KiB');
    expect(humanBytes(4.07 * 2 ** 30)).toBe('4.07 GiB');
    expect(humanDuration(42)).toBe('42s');
    expect(humanDuration(185)).toBe('3m05s');
    expect(humanDuration(3720)).toBe('1h02m');
  });
});

describe('tokenTimer', () => {
  it('reports time to first token and the rate of the tokens after it', () => {
    let t = 1000;
    const timer = tokenTimer(() => t);
    t = 1250;
    timer.token(); // first token after 250 ms
    for (let i = 0; i < 10; i++) {
      t += 20;
      timer.token();
    }
    expect(timer.line(7)).toBe(
      '11 tokens; first token after 250 ms (prompt of 7 tokens), then 50.0 tokens/s',
    );
    const one = tokenTimer(() => 0);
    one.token();
    expect(one.line(3)).toBe('1 token; first token after 0 ms (prompt of 3 tokens)');
  });
});

describe('terminalProgress off a terminal', () => {
  it('prints a plain line every 5 s of a slow stage and when it ends; quick stages stay silent', () => {
    let t = 0;
    const out: string[] = [];
    const p = terminalProgress(
      false,
      (s) => void out.push(s),
      () => t,
    );
    for (let i = 1; i <= 10; i++) p('write weights', i, 10); // all at t = 0: quick
    for (let i = 1; i <= 12; i++) {
      t += 1000;
      p('upload weights', i, 12);
    }
    expect(out).toEqual([
      'upload weights: 6/12 after 5s\n',
      'upload weights: 11/12 after 10s\n',
      'upload weights: 12/12 done in 11s\n',
    ]);
  });

  it('counts, FLOPs and layer lists as people read them', () => {
    expect(humanCount(950)).toBe('950');
    expect(humanCount(9_233_488)).toBe('9.23M');
    expect(humanCount(70_553_706_496)).toBe('70.6B');
    expect(humanFlops(512)).toBe('512 FLOP');
    expect(humanFlops(1.5e6)).toBe('1.50 MFLOP');
    expect(humanFlops(2.469e12)).toBe('2.47 TFLOP');
    expect(layerList([0, 1, 2, 3, 5, 6, 8])).toBe('0–3, 5, 6, 8');
    expect(layerList([7, 1, 3, 5])).toBe('1, 3, …, 7 (every 2nd)');
    expect(layerList([3, 11, 19, 27, 35])).toBe('3, 11, …, 35 (every 8th)');
    expect(layerList([2, 4, 6])).toBe('2, 4, 6');
    expect(layerList([4])).toBe('4');
  });
});

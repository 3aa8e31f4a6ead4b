/** Numbers as people read them in the CLI's text output (--json keeps raw numbers). */

/** Bytes in binary units: 512 B, 1.50 KiB, 12.3 MiB, 4.07 GiB. */
export function humanBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${v} B` : `${v.toFixed(v >= 100 ? 0 : v >= 10 ? 1 : 2)} ${units[i]}`;
}

/** Three significant digits with a decimal prefix: 950, 1.23K, 45.6M, 7.00B (counts). */
function decimal(n: number, prefixes: readonly string[]): string {
  let v = n;
  let i = 0;
  while (Math.abs(v) >= 1000 && i < prefixes.length - 1) {
    v /= 1000;
    i++;
  }
  const digits = i === 0 && Number.isInteger(v) ? 0 : v >= 100 ? 0 : v >= 10 ? 1 : 2;
  return `${v.toFixed(digits)}${prefixes[i]}`;
}

/** A count of things: 950, 1.23K, 45.6M, 7.00B. */
export function humanCount(n: number): string {
  return decimal(n, ['', 'K', 'M', 'B', 'T']);
}

/** Floating-point operations: 950 FLOP, 1.23 MFLOP, 4.50 GFLOP, 1.20 TFLOP. */
export function humanFlops(n: number): string {
  return `${decimal(n, ['', 'k', 'M', 'G', 'T', 'P'])
    .replace(/([kMGTP])$/, ' $1')
    .replace(/^([\d.]+)$/, '$1 ')}FLOP`;
}

/**
 * Layer indices compactly: runs of consecutive layers as ranges (0–6, 8–14), and an evenly
 * spaced set of four or more as its ends and step (1, 3, …, 31: every 2nd).
 */
export function layerList(layers: readonly number[]): string {
  const xs = [...layers].sort((a, b) => a - b);
  if (xs.length >= 4) {
    const step = xs[1] - xs[0];
    if (step > 1 && xs.every((x, i) => x === xs[0] + i * step))
      return `${xs[0]}, ${xs[1]}, …, ${xs[xs.length - 1]} (every ${ordinal(step)})`;
  }
  const runs: string[] = [];
  for (let i = 0; i < xs.length;) {
    let j = i;
    while (j + 1 < xs.length && xs[j + 1] === xs[j] + 1) j++;
    runs.push(j === i ? `${xs[i]}` : j === i + 1 ? `${xs[i]}, ${xs[j]}` : `${xs[i]}–${xs[j]}`);
    i = j + 1;
  }
  return runs.join(', ');
}

function ordinal(n: number): string {
  const tail = n % 100 >= 11 && n % 100 <= 13 ? 'th' : (['th', 'st', 'nd', 'rd'][n % 10] ?? 'th');
  return `${n}${tail}`;
}

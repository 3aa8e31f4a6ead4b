/**
 * Layer patterns and ffn schedules to one entry per layer. Names stay unresolved (as written, with
 * their spans) so the resolver can report unknown ones where they appear.
 */
import type {
  FfnRef,
  FfnSchedule,
  Ident,
  LayerGroup,
  LayersStmt,
  NumberLit,
  Placement,
} from '../../grammar/ast.ts';
import type { Span } from '../../grammar/diagnostics.ts';
import type { Fail } from './kind.ts';
import { MAX_LAYERS, tooManyLayers } from './limits.ts';

export interface ExpandedLayers {
  /** The mixer reference of each layer of the statement. */
  mixers: Ident[];
  /** The ffn of each layer; null when the statement has no `with ffn` clause. */
  ffns: FfnRef[] | null;
}

function integer(n: NumberLit, what: string, min: number, fail: Fail): number {
  if (!Number.isSafeInteger(n.value) || n.value < min) {
    fail(`${what} must be an integer of at least ${min}, got ${n.text}`, n.span);
  }
  return n.value;
}

function index(n: NumberLit, size: number, fail: Fail): number {
  const i = integer(n, 'a layer index', 0, fail);
  if (i >= size) {
    fail(
      `layer index ${i} is out of range: this statement has ${size} layers (0..${size - 1})`,
      n.span,
    );
  }
  return i;
}

function checkSize(total: number, at: NumberLit | null, span: Span, fail: Fail): void {
  if (total > MAX_LAYERS) {
    fail(tooManyLayers(total), at?.span ?? span);
  }
}

/** `[3 local : 1 attn at 3]` or `[a, b, a]` to its sequence of mixer references. */
function expandGroup(group: LayerGroup, fail: Fail): Ident[] {
  if (group.type === 'sequence') return group.items;
  const counts = group.parts.map((p) => integer(p.count, 'a ratio count', 1, fail));
  const size = counts.reduce((a, b) => a + b, 0);
  checkSize(size, null, group.span, fail);
  const slots: (Ident | null)[] = new Array<Ident | null>(size).fill(null);
  group.parts.forEach((part, k) => {
    if (!part.at) return;
    const start = integer(part.at, 'a group offset', 0, fail);
    const count = counts[k]!;
    if (start + count > size) {
      const what = count === 1 ? `offset ${start}` : `offsets ${start}..${start + count - 1}`;
      fail(
        `'${part.name.name}' at ${what} does not fit in a group of ${size} layers (0..${size - 1})`,
        part.at.span,
      );
    }
    for (let i = start; i < start + count; i++) {
      const taken = slots[i];
      if (taken)
        fail(`'${part.name.name}' at ${start} overlaps '${taken.name}' at offset ${i}`, part.span);
      slots[i] = part.name;
    }
  });
  let next = 0;
  group.parts.forEach((part, k) => {
    if (part.at) return;
    for (let c = 0; c < counts[k]!; c++) {
      while (slots[next]) next++;
      slots[next] = part.name;
    }
  });
  return slots as Ident[];
}

function place(layers: Ident[], placements: Placement[], fail: Fail): void {
  const placedBy = new Map<number, Placement>();
  for (const p of placements) {
    for (const n of p.indices) {
      const i = index(n, layers.length, fail);
      const earlier = placedBy.get(i);
      if (earlier)
        fail(`layer ${i} is placed twice (also by '${earlier.name.name} at ...')`, n.span);
      placedBy.set(i, p);
      layers[i] = p.name;
    }
  }
}

function repeat<T>(unit: readonly T[], times: number): T[] {
  return Array.from({ length: unit.length * times }, (_, i) => unit[i % unit.length]!);
}

function expandMixers(stmt: LayersStmt, fail: Fail): Ident[] {
  const p = stmt.pattern;
  switch (p.type) {
    case 'pattern':
      // The resolver expands pattern strings itself (pattern.ts): their symbols need definitions.
      throw new Error('expandLayers cannot expand a pattern string');
    case 'repeat': {
      const times = p.count ? integer(p.count, 'a repeat count', 1, fail) : 1;
      const unit = p.unit.type === 'name' ? [p.unit.name] : expandGroup(p.unit, fail);
      checkSize(unit.length * times, p.count, p.span, fail);
      const layers = repeat(unit, times);
      place(layers, p.placements, fail);
      return layers;
    }
    case 'total': {
      const total = integer(p.count, 'a layer count', 1, fail);
      checkSize(total, p.count, p.span, fail);
      const group = expandGroup(p.group, fail);
      if (total % group.length !== 0) {
        fail(
          `${total} layers do not divide into groups of ${group.length}; use a multiple of ${group.length}`,
          p.count.span,
        );
      }
      const layers = repeat(group, total / group.length);
      place(layers, p.placements, fail);
      return layers;
    }
  }
}

function expandFfns(schedule: FfnSchedule, size: number, fail: Fail): FfnRef[] {
  const base = schedule.base;
  const refs = base.type === 'single' ? [base.ref] : base.refs;
  const ffns = Array.from({ length: size }, (_, i) => refs[i % refs.length]!);
  for (const m of schedule.modifiers) {
    switch (m.type) {
      case 'first': {
        const k = integer(m.count, "'first'", 1, fail);
        if (k > size) fail(`first ${k} exceeds the ${size} layers of this statement`, m.count.span);
        ffns.fill(m.ref, 0, k);
        break;
      }
      case 'every': {
        const every = integer(m.every, "'every'", 1, fail);
        const offset = m.offset ? integer(m.offset, "'offset'", 0, fail) : 0;
        if (offset >= every) {
          fail(`offset ${offset} must be less than every ${every}`, m.offset?.span ?? m.span);
        }
        for (let i = offset; i < size; i += every) ffns[i] = m.ref;
        break;
      }
      case 'at':
        for (const n of m.indices) ffns[index(n, size, fail)] = m.ref;
        break;
    }
  }
  return ffns;
}

export function expandLayers(stmt: LayersStmt, fail: Fail): ExpandedLayers {
  const mixers = expandMixers(stmt, fail);
  return { mixers, ffns: stmt.ffn ? expandFfns(stmt.ffn, mixers.length, fail) : null };
}

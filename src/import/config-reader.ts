/**
 * Typed, tracked access to a config.json object. Every key an importer reads is marked
 * used; `finish` then rejects whatever is left that is not on the harmless list, so an
 * architecture key strata does not understand fails loudly instead of being ignored.
 */

import { SpecError, type Span } from '../../grammar/diagnostics.ts';
import {
  expertsTotalMessage,
  FIELD_CAPS,
  MAX_EXPERTS_TOTAL,
  MAX_LAYERS,
  overCap,
} from '../spec/limits.ts';
import { showValue } from '../spec/show.ts';

export type ConfigObject = Record<string, unknown>;

/**
 * Where config.json was read from: errors then name the file and, when the key can be found,
 * its line and column.
 */
export interface ConfigOrigin {
  file: string;
  text: string;
  /**
   * Where a (dotted) key is written; for a key the file lacks, its nearest parent or the whole
   * object ('' names the object).
   */
  locate(key: string): Span;
}

/**
 * Config keys whose values size arrays the importers build before the ModelIR is checked: each
 * is capped (src/spec/limits.ts) as it is read. Every other integer is held to the largest
 * field cap, and the model the import makes is then checked field by field like any spec.
 */
const KEY_CAPS: Readonly<Record<string, { what: 'layers' | 'experts'; cap: number }>> = {
  num_hidden_layers: { what: 'layers', cap: MAX_LAYERS },
  num_local_experts: { what: 'experts', cap: FIELD_CAPS.experts! },
  num_experts: { what: 'experts', cap: FIELD_CAPS.experts! },
  n_routed_experts: { what: 'experts', cap: FIELD_CAPS.experts! },
};

/** No size in a model reaches this (it is the largest cap in limits.ts). */
const MAX_CONFIG_INT = Math.max(...Object.values(FIELD_CAPS), MAX_LAYERS);

export function isConfigObject(v: unknown): v is ConfigObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export class ConfigReader {
  private readonly used = new Set<string>();

  /** `where` prefixes every message (e.g. "meta-llama/Llama-3.2-1B config"). */
  private readonly sizes: { layers?: number; experts?: number } = {};

  /**
   * `written` maps a key of `config` to the (dotted) key config.json writes it under: the
   * identity, except for a reader of a config assembled from parts of the file (see `derived`).
   */
  constructor(
    private readonly config: ConfigObject,
    readonly where: string,
    readonly origin: ConfigOrigin | null = null,
    private readonly written: (key: string) => string = (key) => key,
  ) {}

  /**
   * A reader of a config object assembled from parts of this one (Gemma 3 reads each layer
   * type's RoPE dict as if it were a whole config's rope_parameters). `written` maps its keys to
   * the keys of this config they came from, so that its errors name and locate them as this
   * reader's own errors do.
   */
  derived(config: ConfigObject, where: string, written: (key: string) => string): ConfigReader {
    return new ConfigReader(config, where, this.origin, (key) => this.written(written(key)));
  }

  /** A SpecError about the config, at key's place in config.json when that is known. */
  error(reason: string, key?: string): SpecError {
    if (!this.origin) return new SpecError(reason, this.where);
    const at = key === undefined ? '' : this.written(key);
    return new SpecError(reason, this.origin.locate(at), this.origin.text);
  }

  /** True when the key is present with a non-null value (HF treats null as "use the default"). */
  has(key: string): boolean {
    return this.config[key] !== undefined && this.config[key] !== null;
  }

  /** The raw value (undefined when absent), marked used. */
  raw(key: string): unknown {
    this.used.add(key);
    return this.config[key];
  }

  /** Marks keys as understood without reading them (e.g. read by another path). */
  ignore(...keys: string[]): void {
    for (const k of keys) this.used.add(k);
  }

  fail(key: string, message: string): never {
    throw this.error(`config key '${this.written(key)}' ${message}`, key);
  }

  private value(key: string, fallback: unknown, kind: string): unknown {
    const v = this.raw(key);
    if (v === undefined || v === null) {
      if (fallback === undefined) this.fail(key, `is required (${kind})`);
      return fallback;
    }
    // Python's json writes NaN and Infinity; no size or scale strata reads may be either.
    if (typeof v === 'number' && !Number.isFinite(v)) {
      throw this.error(`${show(v)} is not a valid value for ${this.written(key)}`, key);
    }
    return v;
  }

  int(key: string, fallback?: number): number {
    const v = this.value(key, fallback, 'an integer');
    if (typeof v !== 'number' || !Number.isSafeInteger(v))
      this.fail(key, `must be an integer, got ${show(v)}`);
    this.checkCap(key, v);
    return v;
  }

  /** Caps sizes before an importer builds an array of that length (or of their product). */
  private checkCap(key: string, v: number): void {
    const capped = Object.hasOwn(KEY_CAPS, key) ? KEY_CAPS[key] : undefined;
    const cap = capped?.cap ?? MAX_CONFIG_INT;
    if (v > cap) throw this.error(overCap(this.written(key), v, cap), key);
    if (!capped) return;
    this.sizes[capped.what] = v;
    const { layers, experts } = this.sizes;
    // Every layer may route to every expert: the tensor list grows with the product.
    if (layers !== undefined && experts !== undefined && layers * experts > MAX_EXPERTS_TOTAL) {
      throw this.error(
        `${expertsTotalMessage(layers * experts)} (${layers} layers × ${experts} experts)`,
        key,
      );
    }
  }

  positiveInt(key: string, fallback?: number): number {
    const v = this.int(key, fallback);
    if (v <= 0) this.fail(key, `must be positive, got ${v}`);
    return v;
  }

  /** An integer, or null when absent or null. */
  optInt(key: string): number | null {
    if (this.has(key)) return this.int(key);
    this.ignore(key);
    return null;
  }

  /** A number, or null when absent or null. */
  optNum(key: string): number | null {
    if (this.has(key)) return this.num(key);
    this.ignore(key);
    return null;
  }

  num(key: string, fallback?: number): number {
    const v = this.value(key, fallback, 'a number');
    if (typeof v !== 'number') this.fail(key, `must be a number, got ${show(v)}`);
    return v;
  }

  bool(key: string, fallback?: boolean): boolean {
    const v = this.value(key, fallback, 'true or false');
    if (typeof v !== 'boolean') this.fail(key, `must be true or false, got ${show(v)}`);
    return v;
  }

  str(key: string, fallback?: string): string {
    const v = this.value(key, fallback, 'a string');
    if (typeof v !== 'string') this.fail(key, `must be a string, got ${show(v)}`);
    return v;
  }

  /** An object, or null when absent or null. */
  optObject(key: string): ConfigObject | null {
    const v = this.raw(key);
    if (v === undefined || v === null) return null;
    if (!isConfigObject(v)) this.fail(key, `must be an object, got ${show(v)}`);
    return v;
  }

  /** A list of strings, or null when absent or null. */
  optStringList(key: string): string[] | null {
    const v = this.raw(key);
    if (v === undefined || v === null) return null;
    if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) {
      this.fail(key, `must be a list of strings, got ${show(v)}`);
    }
    return v as string[];
  }

  /** Throws naming every key that was neither read nor listed as harmless. */
  finish(harmless: ReadonlySet<string>, family: string): void {
    const unknown = Object.keys(this.config).filter((k) => !this.used.has(k) && !harmless.has(k));
    if (unknown.length === 0) return;
    const list = unknown.map((k) => `'${k}'`).join(', ');
    throw this.error(
      `config key${unknown.length > 1 ? 's' : ''} ${list} ${unknown.length > 1 ? 'are' : 'is'} not understood by strata's ${family} importer and may change the architecture; refusing to guess (add ${unknown.length > 1 ? 'them' : 'it'} to the importer, or to the harmless-key list in src/import/hf-keys.ts if ${unknown.length > 1 ? 'they do' : 'it does'} not affect inference)`,
      unknown[0],
    );
  }
}

export function show(v: unknown): string {
  const s = v === undefined ? 'undefined' : showValue(v);
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}

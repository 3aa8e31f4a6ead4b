/**
 * Typed, tracked access to a config.json object. Every key an importer reads is marked
 * used; `finish` then rejects whatever is left that is not on the harmless list, so an
 * architecture key strata does not understand fails loudly instead of being ignored.
 */

export type ConfigObject = Record<string, unknown>;

export function isConfigObject(v: unknown): v is ConfigObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export class ConfigReader {
  private readonly used = new Set<string>();

  /** `where` prefixes every message (e.g. "meta-llama/Llama-3.2-1B config"). */
  constructor(
    private readonly config: ConfigObject,
    readonly where: string,
  ) {}

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
    throw new Error(`${this.where}: config key '${key}' ${message}`);
  }

  private value(key: string, fallback: unknown, kind: string): unknown {
    const v = this.raw(key);
    if (v === undefined || v === null) {
      if (fallback === undefined) this.fail(key, `is required (${kind})`);
      return fallback;
    }
    return v;
  }

  int(key: string, fallback?: number): number {
    const v = this.value(key, fallback, 'an integer');
    if (typeof v !== 'number' || !Number.isSafeInteger(v))
      this.fail(key, `must be an integer, got ${show(v)}`);
    return v;
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
    if (typeof v !== 'number' || Number.isNaN(v))
      this.fail(key, `must be a number, got ${show(v)}`);
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
    throw new Error(
      `${this.where}: config key${unknown.length > 1 ? 's' : ''} ${list} ${unknown.length > 1 ? 'are' : 'is'} not understood by strata's ${family} importer and may change the architecture; refusing to guess (add ${unknown.length > 1 ? 'them' : 'it'} to the importer, or to the harmless-key list in src/import/hf-keys.ts if ${unknown.length > 1 ? 'they do' : 'it does'} not affect inference)`,
    );
  }
}

export function show(v: unknown): string {
  const s = JSON.stringify(v);
  return s === undefined ? String(v) : s.length > 80 ? `${s.slice(0, 77)}...` : s;
}

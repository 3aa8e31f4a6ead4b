/**
 * Read a bundle's weights.safetensors from a byte stream (a fetch body, a cached Response), in
 * file order, handing each tensor on in pieces as they arrive. Nothing holds a tensor, let alone
 * the file, whole: a piece is a view of the chunk the stream delivered, so the JS heap holds about
 * one network chunk at a time whatever the model's size. Browser-safe.
 */
import { storedEntry, type BundleManifest } from '../codegen/manifest.ts';
import { parseHeaderJson, readHeaderLength } from '../formats/safetensors.ts';
import { BundleError } from './manifest-check.ts';

/**
 * Receives tensor `name`'s stored bytes piece by piece: `offset` into the tensor, both it and the
 * piece's length multiples of 4 (what GPUQueue.writeBuffer accepts), the last piece zero-padded to
 * a whole word. `bytes` is only valid during the call (it views the stream's chunk).
 */
export type TensorSink = (name: string, offset: number, bytes: Uint8Array) => void;

/** Pulls exact byte counts out of a stream of arbitrary chunks. */
class ByteReader {
  private chunk: Uint8Array = new Uint8Array(0);
  private at = 0;
  /** Bytes consumed from the start of the stream. */
  pos = 0;

  constructor(
    private readonly reader: ReadableStreamDefaultReader<Uint8Array>,
    private readonly onBytes: (n: number) => void,
  ) {}

  /** The next up to `max` bytes (a view; at least 1), or null at the end of the stream. */
  async next(max: number): Promise<Uint8Array | null> {
    while (this.at >= this.chunk.byteLength) {
      const r = await this.reader.read();
      if (r.done) return null;
      this.chunk = r.value;
      this.at = 0;
      this.onBytes(r.value.byteLength);
    }
    const n = Math.min(max, this.chunk.byteLength - this.at);
    const out = this.chunk.subarray(this.at, this.at + n);
    this.at += n;
    this.pos += n;
    return out;
  }

  /** Exactly `n` bytes copied into one array (the header only: small). */
  async exact(n: number, what: () => string): Promise<Uint8Array> {
    const out = new Uint8Array(n);
    for (let got = 0; got < n;) {
      const piece = await this.next(n - got);
      if (!piece) throw new BundleError(what());
      out.set(piece, got);
      got += piece.byteLength;
    }
    return out;
  }

  /** Deliver the next `n` bytes to `each` in pieces; false when the stream ends first. */
  async pieces(n: number, each: (piece: Uint8Array) => void): Promise<boolean> {
    for (let left = n; left > 0;) {
      const piece = await this.next(left);
      if (!piece) return false;
      each(piece);
      left -= piece.byteLength;
    }
    return true;
  }

  cancel(): Promise<void> {
    return this.reader.cancel().catch(() => undefined);
  }
}

/**
 * Cuts a tensor's byte pieces at word boundaries for the sink: whole words pass through as views,
 * the 1–3 bytes left over wait (copied) for the next piece, and end() zero-pads the last word.
 * Every weight upload goes through it, streamed or whole.
 */
export function wordAligner(name: string, sink: TensorSink) {
  const carry = new Uint8Array(4);
  let held = 0;
  let offset = 0;
  return {
    push(piece: Uint8Array): void {
      let p = piece;
      if (held > 0) {
        const take = Math.min(4 - held, p.byteLength);
        carry.set(p.subarray(0, take), held);
        held += take;
        p = p.subarray(take);
        if (held < 4) return;
        sink(name, offset, carry);
        offset += 4;
        held = 0;
      }
      const whole = p.byteLength - (p.byteLength % 4);
      if (whole > 0) {
        sink(name, offset, p.subarray(0, whole));
        offset += whole;
      }
      carry.set(p.subarray(whole));
      held = p.byteLength - whole;
    },
    end(): void {
      if (held === 0) return;
      carry.fill(0, held);
      sink(name, offset, carry);
      held = 0;
    },
  };
}

/**
 * Stream the manifest's tensors out of a safetensors byte stream into `sink`. Every manifest
 * tensor is checked against the header (present, stored dtype and shape) before any byte of
 * data is read; tensors the manifest does not name are skipped; a stream that ends early names
 * the tensor it cut. `source` names the file in errors; `fileBytes`, when known (Content-Length),
 * lets the header check that offsets stay inside the file. `onBytes` counts bytes received;
 * `onFileBytes` gets the file's length as the header gives it (its last tensor's end), for
 * progress where the transfer did not say (a compressed or chunked response).
 */
export async function streamSafetensors(
  body: ReadableStream<Uint8Array>,
  source: string,
  tensors: BundleManifest['tensors'],
  sink: TensorSink,
  opts: {
    fileBytes?: number | null;
    onBytes?: (n: number) => void;
    onFileBytes?: (n: number) => void;
    signal?: AbortSignal;
  } = {},
): Promise<void> {
  const r = new ByteReader(body.getReader(), opts.onBytes ?? (() => undefined));
  try {
    const short = () => `${source}: ends after ${r.pos} bytes, inside the safetensors header`;
    const len = readHeaderLength(await r.exact(8, short), source);
    const json = await r.exact(len, short);
    const dataStart = 8 + len;
    const dataBytes = opts.fileBytes == null ? null : opts.fileBytes - dataStart;
    let header;
    try {
      header = parseHeaderJson(json, dataStart, dataBytes, source);
    } catch (e) {
      throw new BundleError((e as Error).message);
    }
    opts.onFileBytes?.(dataStart + header.tensors.reduce((m, t) => Math.max(m, t.end), 0));
    const byName = new Map(header.tensors.map((t) => [t.name, t]));
    const wanted = new Set<string>();
    tensors.forEach((t, i) => {
      const stored = byName.get(t.name);
      if (!stored)
        throw new BundleError(`${source}: tensor '${t.name}' (manifest tensors[${i}]) is missing`);
      const want = storedEntry(t.dtype, t.shape);
      if (stored.dtype !== want.dtype || stored.shape.join() !== want.shape.join())
        throw new BundleError(
          `${source}: tensor '${t.name}' is stored as ${stored.dtype} [${stored.shape}], the manifest's tensors[${i}] (${t.dtype} [${t.shape}]) needs ${want.dtype} [${want.shape}]`,
        );
      wanted.add(t.name);
    });
    let left = wanted.size;
    for (const t of header.tensors) {
      if (left === 0) break;
      opts.signal?.throwIfAborted();
      const cut = () =>
        new BundleError(
          `${source}: ends after ${r.pos} bytes, inside tensor '${t.name}' (file bytes ${dataStart + t.begin}..${dataStart + t.end}): truncated or corrupted`,
        );
      // Gaps between tensors (none in strata's files, allowed by the format) and skipped tensors.
      const skip = dataStart + (wanted.has(t.name) ? t.begin : t.end) - r.pos;
      if (skip > 0 && !(await r.pieces(skip, () => undefined))) throw cut();
      if (!wanted.has(t.name)) continue;
      const a = wordAligner(t.name, sink);
      if (!(await r.pieces(t.end - t.begin, (p) => a.push(p)))) throw cut();
      a.end();
      left--;
    }
  } finally {
    await r.cancel();
  }
}

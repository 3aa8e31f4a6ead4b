/**
 * AST to ModelIR: settings, definitions, the layer list, then overrides. Every error is a
 * SpecError pointing at the text responsible.
 */
import type {
  Arg,
  BlockRole,
  CallValue,
  DefinitionStmt,
  FfnRef,
  Ident,
  LayersStmt,
  ModelAst,
  OverrideEntry,
  OverrideStmt,
} from '../../grammar/ast.ts';
import { SpecError, type Span } from '../../grammar/diagnostics.ts';
import { didYouMean } from '../../grammar/suggest.ts';
import { dslNames, modelNameIssue } from './checks.ts';
import { expandLayers } from './expand.ts';
import { substituteLets } from './lets.ts';
import { expandPattern } from './pattern.ts';
import { findKind, type Env, type Family, type Kind } from './kind.ts';
import { FFNS, MIXERS } from './kinds/index.ts';
import { SHARED_BLOCKS, type SharedBlockBody } from './kinds/shared.ts';
import {
  MODEL_IR_VERSION,
  type FfnSpec,
  type LayerSpec,
  type MixerSpec,
  type ModelIR,
} from './model.ts';
import { expertsTotalCrossing, expertsTotalMessage, MAX_LAYERS, tooManyLayers } from './limits.ts';
import { modelSettings } from './settings.ts';
import { diffusionModelIssues } from './kinds/diffusion.ts';
import { describeValue } from './values.ts';

/**
 * `mixer NAME = none`: layers that use it have no mixer sublayer, only their ffn (Nemotron-H's
 * MLP layers). It has no parameters, so a field override on it is an error.
 */
export const NO_MIXER: Kind<MixerSpec | null> = {
  name: 'none',
  paramNames: [],
  supported: true,
  resolve(args, _at, env) {
    const arg = args[0];
    if (arg) env.fail('a mixer defined as none has no parameters to set', arg.span);
    return null;
  },
  check: () => [],
  toArgs: () => null,
};

/** The mixer name of a pattern's ffn-only layers when the spec defines no `mixer NAME = none`. */
export const IMPLICIT_NO_MIXER = 'no_mixer';

interface Definition<T> {
  name: Ident;
  role: BlockRole;
  kind: Kind<T>;
  call: CallValue;
  spec: T;
}

/** A layer's block: its definition, and the arguments it resolves with when an override changed them. */
interface Slot<T> {
  def: Definition<T>;
  args: readonly Arg[] | null;
}

interface LayerState {
  mixer: Slot<MixerSpec | null>;
  ffn: Slot<FfnSpec> | null;
  /** The shared block the layer runs before its mixer (set by `override ... { shared: NAME }`). */
  shared: Definition<SharedBlockBody> | null;
}

class Resolver {
  private readonly env: Env;
  private readonly mixers = new Map<string, Definition<MixerSpec | null>>();
  private readonly ffns = new Map<string, Definition<FfnSpec>>();
  private readonly shared = new Map<string, Definition<SharedBlockBody>>();

  constructor(text: string) {
    const fail = (message: string, span: Span): never => {
      throw new SpecError(message, span, text);
    };
    this.env = { fail, ctx: { dim: 0 } };
  }

  private fail(message: string, span: Span): never {
    return this.env.fail(message, span);
  }

  resolve(written: ModelAst): ModelIR {
    const ast = substituteLets(written, this.env.fail);
    const nameIssue = modelNameIssue(ast.name.value);
    if (nameIssue) this.fail(nameIssue, ast.name.span);
    const settingArgs: Arg[] = [];
    for (const s of ast.statements) {
      if (s.type === 'setting') settingArgs.push({ name: s.key, value: s.value, span: s.span });
    }
    const settings = modelSettings.resolve(settingArgs, ast.name.span, this.env);
    this.env.ctx = { dim: settings.dim };

    for (const s of ast.statements) if (s.type === 'definition') this.define(s);

    const layers: LayerState[] = [];
    for (const s of ast.statements) {
      if (s.type !== 'layers') continue;
      if (s.pattern.type === 'pattern') {
        layers.push(...this.patternLayers(s));
      } else {
        const expanded = expandLayers(s, this.env.fail);
        const ffns = expanded.ffns ?? this.defaultFfns(s.span, expanded.mixers.length);
        expanded.mixers.forEach((ref, i) => {
          layers.push({
            mixer: { def: this.mixerRef(ref), args: null },
            ffn: this.ffnSlot(ffns[i]!),
            shared: null,
          });
        });
      }
      // Each statement is capped on its own; several together must not pass the cap either.
      if (layers.length > MAX_LAYERS) this.fail(tooManyLayers(layers.length), s.span);
    }
    if (layers.length === 0) {
      this.fail("the model has no layers: add one such as 'layers 16 x attn'", ast.name.span);
    }
    for (const s of ast.statements) if (s.type === 'override') this.override(s, layers);
    layers.forEach((l, i) => {
      if (l.mixer.def.spec === null && l.ffn === null) {
        this.fail(
          `layer ${i} has neither a mixer ('${l.mixer.def.name.name}' is none) nor an ffn`,
          l.mixer.def.call.span,
        );
      }
      if (l.shared && l.mixer.def.spec === null) {
        this.fail(
          `layer ${i} uses shared block '${l.shared.name.name}' but has no mixer for it to feed`,
          l.shared.name.span,
        );
      }
    });
    const shared = [...this.shared.values()];
    const built = layers.map((l, index): LayerSpec => ({
      index,
      mixerName: l.mixer.def.name.name,
      mixer: this.build(l.mixer),
      ffnName: l.ffn ? l.ffn.def.name.name : null,
      ffn: l.ffn ? this.build(l.ffn) : null,
      ...(l.shared ? { shared: l.shared.name.name } : {}),
    }));
    this.checkExpertsTotal(layers, built);

    const model: ModelIR = {
      version: MODEL_IR_VERSION,
      name: ast.name.value,
      vocab: settings.vocab,
      dim: settings.dim,
      norm: settings.norm,
      postNorms: settings.postNorms,
      tieEmbeddings: settings.tieEmbeddings,
      embeddingScale: settings.embeddingScale,
      residualScale: settings.residualScale,
      logitScale: settings.logitScale,
      logitSoftcap: settings.logitSoftcap,
      maxContext: settings.maxContext,
      ...(settings.diffusion ? { diffusion: settings.diffusion } : {}),
      ...(settings.layerScalars ? { layerScalars: true } : {}),
      ...(settings.headBias ? { headBias: true } : {}),
      // Both fields are left out of models that define no shared block, as before they existed.
      ...(shared.length
        ? { sharedBlocks: shared.map((d) => ({ ...structuredClone(d.spec), name: d.name.name })) }
        : {}),
      layers: built,
    };
    const issue = diffusionModelIssues(model, dslNames)[0];
    if (issue) {
      // Blamed on the diffusion setting, or the mixer definition the first bad layer uses.
      const at =
        issue.path[0] === 'layers' ? layers[issue.path[1] as number]!.mixer.def.call.span : null;
      const setting = ast.statements.find(
        (s) => s.type === 'setting' && s.key.name === 'diffusion',
      );
      this.fail(issue.message, at ?? setting!.span);
    }
    return model;
  }

  /** Blames the moe definition of the layer where the routed experts pass their total cap. */
  private checkExpertsTotal(layers: readonly LayerState[], built: readonly LayerSpec[]): void {
    const over = expertsTotalCrossing(built);
    if (over) this.fail(expertsTotalMessage(over.total), layers[over.index]!.ffn!.def.call.span);
  }

  private define(s: DefinitionStmt): void {
    const name = s.name.name;
    const earlier = this.mixers.get(name) ?? this.ffns.get(name) ?? this.shared.get(name);
    if (earlier) {
      const at = earlier.name.span;
      this.fail(
        `'${name}' is already defined as ${article(earlier.role)} at ${at.line}:${at.col}`,
        s.name.span,
      );
    }
    if (s.role === 'mixer' && s.value.type === 'none') {
      const call: CallValue = {
        type: 'call',
        kind: { name: 'none', span: s.value.span },
        args: null,
        span: s.value.span,
      };
      this.mixers.set(name, { name: s.name, role: s.role, kind: NO_MIXER, call, spec: null });
      return;
    }
    if (s.role === 'shared') {
      if (s.value.type !== 'call') {
        this.fail(
          `shared block '${name}' must be ${SHARED_BLOCKS.example}, got ${describeValue(s.value)}`,
          s.value.span,
        );
      }
      const kind = findKind(SHARED_BLOCKS, s.value, this.env);
      const spec = kind.resolve(s.value.args ?? [], s.value.kind.span, this.env);
      this.shared.set(name, { name: s.name, role: s.role, kind, call: s.value, spec });
      return;
    }
    if (s.value.type !== 'call') {
      const family = s.role === 'mixer' ? MIXERS : FFNS;
      this.fail(
        `${s.role} '${name}' must be ${family.example}, got ${describeValue(s.value)}`,
        s.value.span,
      );
    }
    if (s.role === 'mixer') {
      this.mixers.set(name, this.definition<MixerSpec | null>(s, s.value, MIXERS, FFNS));
    } else this.ffns.set(name, this.definition(s, s.value, FFNS, MIXERS));
  }

  private definition<T>(
    s: DefinitionStmt,
    call: CallValue,
    family: Family<T>,
    other: Family<unknown>,
  ): Definition<T> {
    if (
      other.kinds.some((k) => k.name === call.kind.name) &&
      !family.kinds.some((k) => k.name === call.kind.name)
    ) {
      this.fail(
        `'${call.kind.name}' is ${article(other.noun)} kind, not ${article(family.noun)} kind`,
        call.kind.span,
      );
    }
    const kind = findKind(family, call, this.env);
    const spec = kind.resolve(call.args ?? [], call.kind.span, this.env);
    return { name: s.name, role: s.role, kind, call, spec };
  }

  /** Without `with ffn`, a statement uses the only ffn defined, or none when there is none. */
  private defaultFfns(span: Span, size: number): FfnRef[] {
    const defs = [...this.ffns.values()];
    if (defs.length > 1) {
      const names = defs.map((d) => d.name.name).join(', ');
      this.fail(`which ffn? ${defs.length} are defined (${names}): add 'with ffn NAME'`, span);
    }
    const ref: FfnRef = defs[0] ? defs[0].name : { type: 'none', span };
    return new Array<FfnRef>(size).fill(ref);
  }

  /** A pattern string's layers: a mixer symbol gives no ffn, an ffn symbol no mixer. */
  private patternLayers(s: LayersStmt): LayerState[] {
    const defs = [...this.mixers.values(), ...this.ffns.values()].map((d) => ({
      name: d.name,
      kind: d.kind.name,
    }));
    return expandPattern(s, defs, this.env.fail).map(({ name, at }) => {
      const mixer = this.mixers.get(name.name);
      if (mixer) return { mixer: { def: mixer, args: null }, ffn: null, shared: null };
      const ffn = this.ffns.get(name.name);
      if (ffn)
        return {
          mixer: { def: this.noMixer(at), args: null },
          ffn: { def: ffn, args: null },
          shared: null,
        };
      const names = [...this.mixers.keys(), ...this.ffns.keys()];
      return this.fail(
        `unknown definition '${name.name}'${didYouMean(name.name, names)}`,
        name.span,
      );
    });
  }

  /**
   * The mixer of a pattern's ffn-only layers: the one `mixer NAME = none` defined, else an
   * implicit one named no_mixer (ModelIR names every layer's mixer; printSpec writes it out).
   */
  private noMixer(at: Span): Definition<MixerSpec | null> {
    const nones = [...this.mixers.values()].filter((d) => d.kind === NO_MIXER);
    if (nones.length === 1) return nones[0]!;
    if (nones.length > 1) {
      const names = nones.map((d) => d.name.name).join(', ');
      this.fail(
        `which mixer-less definition for this ffn-only layer? ${nones.length} are defined (${names}): keep one`,
        at,
      );
    }
    const name = IMPLICIT_NO_MIXER;
    if (this.mixers.has(name) || this.ffns.has(name)) {
      this.fail(
        `'${name}' is taken, so this ffn-only layer has no mixer to name: define 'mixer NAME = none'`,
        at,
      );
    }
    const call: CallValue = {
      type: 'call',
      kind: { name: 'none', span: at },
      args: null,
      span: at,
    };
    const def: Definition<MixerSpec | null> = {
      name: { name, span: at },
      role: 'mixer',
      kind: NO_MIXER,
      call,
      spec: null,
    };
    this.mixers.set(name, def);
    return def;
  }

  private mixerRef(ref: Ident): Definition<MixerSpec | null> {
    const def = this.mixers.get(ref.name);
    if (def) return def;
    if (this.ffns.has(ref.name)) this.fail(`'${ref.name}' is an ffn, not a mixer`, ref.span);
    return this.fail(
      `unknown mixer '${ref.name}'${didYouMean(ref.name, this.mixers.keys())}`,
      ref.span,
    );
  }

  private sharedRef(ref: Ident): Definition<SharedBlockBody> {
    const def = this.shared.get(ref.name);
    if (def) return def;
    return this.fail(
      `unknown shared block '${ref.name}'${didYouMean(ref.name, this.shared.keys())}`,
      ref.span,
    );
  }

  private ffnSlot(ref: FfnRef): Slot<FfnSpec> | null {
    if ('type' in ref) return null;
    const def = this.ffns.get(ref.name);
    if (def) return { def, args: null };
    if (this.mixers.has(ref.name)) this.fail(`'${ref.name}' is a mixer, not an ffn`, ref.span);
    return this.fail(
      `unknown ffn '${ref.name}'${didYouMean(ref.name, this.ffns.keys())}`,
      ref.span,
    );
  }

  private build<T>(slot: Slot<T>): T {
    if (!slot.args) return structuredClone(slot.def.spec);
    return slot.def.kind.resolve(slot.args, slot.def.call.kind.span, this.env);
  }

  private override(s: OverrideStmt, layers: LayerState[]): void {
    const seen = new Set<number>();
    for (const n of s.layers) {
      const i = n.value;
      if (!Number.isSafeInteger(i) || i < 0) {
        this.fail(`a layer index must be an integer of at least 0, got ${n.text}`, n.span);
      }
      if (i >= layers.length) {
        this.fail(
          `layer ${i} is out of range: the model has ${layers.length} layers (0..${layers.length - 1})`,
          n.span,
        );
      }
      if (seen.has(i)) this.fail(`layer ${i} is listed twice`, n.span);
      seen.add(i);
      for (const e of s.entries) this.apply(e, i, layers[i]!);
    }
  }

  private apply(e: OverrideEntry, i: number, layer: LayerState): void {
    const target = e.target.name;
    if (!e.field) {
      if (target === 'mixer') {
        if (e.value.type === 'none') {
          this.fail(
            "a layer without a mixer uses a definition 'mixer NAME = none': write 'mixer: NAME'",
            e.value.span,
          );
        }
        layer.mixer = { def: this.mixerRef(this.nameIn(e.value, 'mixer')), args: null };
      } else if (target === 'ffn') {
        layer.ffn = this.ffnSlot(e.value.type === 'none' ? e.value : this.nameIn(e.value, 'ffn'));
      } else if (target === 'shared') {
        layer.shared =
          e.value.type === 'none' ? null : this.sharedRef(this.nameIn(e.value, 'shared'));
      } else {
        this.fail(
          `'${target}: ...' sets nothing: write '${target}.FIELD: value', or 'mixer: NAME' / 'ffn: NAME' to swap a block`,
          e.target.span,
        );
      }
      return;
    }
    if (target === 'shared' || this.shared.has(target)) {
      this.fail(
        "a shared block is the same at every layer that uses it: define another 'shared NAME = ...' to change it",
        e.span,
      );
    }
    const field: Arg = { name: e.field, value: e.value, span: e.span };
    if (target === 'mixer' || this.mixers.has(target)) {
      if (target !== 'mixer' && layer.mixer.def.name.name !== target) {
        this.fail(
          `layer ${i} uses mixer '${layer.mixer.def.name.name}', not '${target}'`,
          e.target.span,
        );
      }
      layer.mixer = {
        def: layer.mixer.def,
        args: withArg(layer.mixer.args ?? layer.mixer.def.call.args ?? [], field),
      };
      return;
    }
    if (target === 'ffn' || this.ffns.has(target)) {
      const ffn = layer.ffn;
      if (!ffn) return this.fail(`layer ${i} has no ffn`, e.target.span);
      if (target !== 'ffn' && ffn.def.name.name !== target) {
        this.fail(`layer ${i} uses ffn '${ffn.def.name.name}', not '${target}'`, e.target.span);
      }
      layer.ffn = { def: ffn.def, args: withArg(ffn.args ?? ffn.def.call.args ?? [], field) };
      return;
    }
    const names = [...this.mixers.keys(), ...this.ffns.keys(), 'mixer', 'ffn'];
    this.fail(`unknown definition '${target}'${didYouMean(target, names)}`, e.target.span);
  }

  private nameIn(v: OverrideEntry['value'], role: BlockRole): Ident {
    if (v.type === 'call' && v.args === null) return v.kind;
    const alt = role === 'mixer' ? '' : ' or none';
    return this.fail(
      `${role} must name ${article(role)} definition${alt}, got ${describeValue(v)}`,
      v.span,
    );
  }
}

function article(noun: string): string {
  return /^([aeiou]|ffn)/.test(noun) ? `an ${noun}` : `a ${noun}`;
}

/** args with `field` set, replacing an earlier value of the same parameter. */
function withArg(args: readonly Arg[], field: Arg): Arg[] {
  const name = field.name!.name;
  const out = args.filter((a) => a.name?.name !== name);
  out.push(field);
  return out;
}

/** Resolves a parsed model; text is its source, quoted in error messages. */
export function resolveModel(ast: ModelAst, text: string): ModelIR {
  return new Resolver(text).resolve(ast);
}

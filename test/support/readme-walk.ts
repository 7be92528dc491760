/**
 * The README's runnable examples as data, for test/readme-walkthrough.e2e.test.ts: the fenced blocks
 * marked with an HTML comment on the line before the fence (invisible on GitHub), split into
 * commands, and how a command's output is checked against what the README shows.
 *
 * - `<!-- walkthrough -->` before a ```sh block: run each command, in order. A trailing
 *   `# {…}` comment is the command's JSON answer (grpcurl's): equal to it, or containing it where
 *   the comment elides with `...`; a trailing one-word comment (`# lease-c762c53f-1`) is the output's
 *   shape (its hex and decimal runs stand for any).
 * - `<!-- walkthrough -->` before a ```text block: a transcript; each `$ ` line is run and the lines
 *   after it must appear in its output in that order (`…` stands for anything).
 * - `<!-- walkthrough: output -->` before a ```text block: the same check against the output of the
 *   latest run of each `$ ` command in an earlier block (it is not run again).
 */
import { spawnSync } from 'node:child_process';

export type BlockKind = 'run' | 'transcript' | 'output';

export interface Command {
  /** The command as bash runs it (continuation lines included). */
  readonly text: string;
  /** The JSON answer a `# {…}` comment shows, and whether it elides (`...`: a subset). */
  readonly json?: { readonly value: unknown; readonly partial: boolean };
  /** A one-word result comment, as a pattern. */
  readonly shape?: RegExp;
  /** Transcript lines the output must contain, in order. */
  readonly lines?: readonly string[];
}

export interface Block {
  readonly kind: BlockKind;
  /** 1-based line of the fence in README.md. */
  readonly line: number;
  readonly commands: readonly Command[];
}

const MARK = /^<!-- walkthrough(?:: (output))? -->$/;

/** Every marked block of `readme`, in order. */
export function walkthroughBlocks(readme: string): Block[] {
  const lines = readme.split('\n');
  const blocks: Block[] = [];
  for (let i = 0; i < lines.length; i++) {
    const mark = MARK.exec(lines[i]!.trim());
    if (mark === null) continue;
    const fence = /^```(\w+)$/.exec(lines[i + 1] ?? '');
    if (fence === null) throw new Error(`README.md:${i + 1}: a walkthrough mark must be followed by a fence`);
    const end = lines.findIndex((l, j) => j > i + 1 && l === '```');
    if (end < 0) throw new Error(`README.md:${i + 2}: unclosed fence`);
    const body = lines.slice(i + 2, end);
    const line = i + 2;
    if (fence[1] === 'sh') {
      if (mark[1] !== undefined) throw new Error(`README.md:${line}: an output mark needs a text block`);
      blocks.push({ kind: 'run', line, commands: splitCommands(body).map(withResult) });
    } else if (fence[1] === 'text') {
      blocks.push({ kind: mark[1] === 'output' ? 'output' : 'transcript', line, commands: transcript(body) });
    } else throw new Error(`README.md:${line}: a walkthrough block is sh or text, not ${fence[1]}`);
    i = end;
  }
  return blocks;
}

/** Whole commands: lines joined until bash finds the text complete (a `\`, a `|`, an open quote or `$(` continue it). */
function splitCommands(body: readonly string[]): string[] {
  const out: string[] = [];
  let acc: string[] = [];
  for (const l of body) {
    if (acc.length === 0 && (l.trim() === '' || l.trim().startsWith('#'))) continue;
    acc.push(l);
    const text = acc.join('\n');
    if (spawnSync('bash', ['-n', '-c', text], { stdio: 'ignore' }).status === 0 && !/\\$/.test(l)) {
      out.push(text);
      acc = [];
    }
  }
  if (acc.length > 0) throw new Error(`an incomplete command: ${acc.join('\n')}`);
  return out;
}

/** A trailing `# …` comment outside quotes on the command's last line that shows a result. */
function withResult(text: string): Command {
  const last = text.split('\n').at(-1)!;
  const m = /\s#\s+(.*)$/.exec(last);
  const comment = m?.[1]?.trim();
  if (comment === undefined || quotesOpenBefore(last, m!.index)) return { text };
  if (comment.startsWith('{')) {
    const json = /^(\{.*\})/.exec(comment)?.[1];
    if (json !== undefined) {
      const partial = json.includes('...');
      const value: unknown = JSON.parse(json.replace(/,\s*\.\.\./g, '').replace(/\.\.\.\s*,\s*/g, ''));
      return { text, json: { value, partial } };
    }
  }
  if (/^[\w.-]+$/.test(comment) && /\d/.test(comment)) return { text, shape: shapeOf(comment) };
  return { text };
}

function quotesOpenBefore(line: string, at: number): boolean {
  let single = false;
  let double = false;
  for (const c of line.slice(0, at)) {
    if (c === "'" && !double) single = !single;
    else if (c === '"' && !single) double = !double;
  }
  return single || double;
}

const escape = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
/** `lease-c762c53f-1`: any 8 hex digits, any number. */
const shapeOf = (word: string): RegExp => new RegExp(`^${escape(word).replace(/[0-9a-f]{8}|\d+/g, (m) => (m.length === 8 ? '[0-9a-f]{8}' : '\\d+'))}$`, 'm');

/** `$ cmd` lines (with `\`-continued ones) and the output lines after each. */
function transcript(body: readonly string[]): Command[] {
  const out: { text: string; lines: string[] }[] = [];
  for (let i = 0; i < body.length; i++) {
    const l = body[i]!;
    if (l.startsWith('$ ')) {
      const cmd = [l.slice(2)];
      while (/\\$/.test(cmd.at(-1)!) && i + 1 < body.length) cmd.push(body[++i]!);
      out.push({ text: cmd.join('\n'), lines: [] });
    } else if (out.length === 0) throw new Error(`a transcript starts with a $ line, not ${l}`);
    else if (l.trim() !== '') out.at(-1)!.lines.push(l);
  }
  return out;
}

const squash = (s: string): string => s.trim().replace(/\s+/g, ' ');

/** The transcript lines not found in `output` in order (whitespace runs equal, `…` any text); empty when all are. */
export function missingLines(expected: readonly string[], output: string): string[] {
  const got = output.split('\n').map(squash);
  let at = 0;
  const missing: string[] = [];
  for (const e of expected) {
    const re = new RegExp(`^${squash(e).split('…').map(escape).join('.*')}$`);
    const i = got.findIndex((g, j) => j >= at && re.test(g));
    if (i < 0) missing.push(e);
    else at = i + 1;
  }
  return missing;
}

/** `want` within `got`: equal, or (partial) every key of `want` present with a value within (arrays element by element). */
export function jsonWithin(got: unknown, want: unknown, partial: boolean): boolean {
  if (!partial) return JSON.stringify(got) === JSON.stringify(want) || deepEqual(got, want);
  if (Array.isArray(want)) return Array.isArray(got) && want.every((w, i) => jsonWithin(got[i], w, true));
  if (typeof want === 'object' && want !== null) {
    if (typeof got !== 'object' || got === null) return false;
    return Object.entries(want).every(([k, v]) => jsonWithin((got as Record<string, unknown>)[k], v, true));
  }
  return got === want;
}

function deepEqual(a: unknown, b: unknown): boolean {
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return a === b;
  const ka = Object.keys(a);
  const kb = Object.keys(b);
  return ka.length === kb.length && ka.every((k) => deepEqual((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]));
}

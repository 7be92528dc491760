/**
 * What a command prints (issue 11 item 7, `--output json` for scripts). In text mode a command prints
 * tables and lines for people; in JSON mode it prints exactly one JSON document on stdout (the proto3
 * JSON of what the service answered, as grpcurl would show it), progress goes to stderr, and a refusal
 * is one JSON object on stderr (call.ts). The exit codes are the same in both modes.
 */

export type OutputFormat = 'text' | 'json';

export const OUTPUT_FORMATS: readonly OutputFormat[] = ['text', 'json'];

let format: OutputFormat = 'text';

export function setOutputFormat(f: OutputFormat): void {
  format = f;
}

export const jsonOutput = (): boolean => format === 'json';

/** uint64 fields as decimal strings (proto3 JSON), anything else as JSON has it. */
const bigintAsString = (_: string, v: unknown): unknown => (typeof v === 'bigint' ? v.toString() : v);

/** The command's result: `json` in JSON mode, else `text()` prints it. */
export function emit(json: unknown, text: () => void): void {
  if (format === 'json') process.stdout.write(`${JSON.stringify(json, bigintAsString)}\n`);
  else text();
}

/** A progress line (what is happening while a call runs): stdout for people, stderr under --output json. */
export function progress(line: string): void {
  (format === 'json' ? process.stderr : process.stdout).write(`${line}\n`);
}

/** A JSON object on stderr (a refusal under --output json). */
export function jsonError(value: unknown): void {
  process.stderr.write(`${JSON.stringify(value, bigintAsString)}\n`);
}

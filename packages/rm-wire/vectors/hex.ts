/**
 * Hand-written wire bytes: hex pairs, whitespace ignored, `//` comments to the end of the line, so a
 * vector reads like the spec's field table, one field per line.
 */
export function hex(strings: TemplateStringsArray, ...values: unknown[]): Uint8Array {
  const text = strings.raw.reduce((acc, s, i) => acc + s + (i < values.length ? String(values[i]) : ''), '');
  const digits = text
    .split('\n')
    .map((line) => line.replace(/\/\/.*$/, ''))
    .join('')
    .replace(/\s+/g, '');
  if (!/^([0-9a-fA-F]{2})*$/.test(digits)) throw new Error(`bad hex vector: ${digits}`);
  return Uint8Array.from(digits.match(/../g) ?? [], (b) => parseInt(b, 16));
}

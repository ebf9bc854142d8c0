// Command-line options of the `senv` commands: every option known, every
// value present, or a UsageError that says which.

/** A usage error: the command prints it with the usage text and exits with status 2. */
export class UsageError extends Error {}

/**
 * Parses `argv` against `spec` (option name -> 'flag', 'value' or 'values'); a
 * 'value' option given twice keeps the last, a 'values' option keeps each, in
 * order, as a list. Throws UsageError for an unknown option or a value option
 * without a value.
 */
export function parseOptions(argv: readonly string[], spec: Readonly<Record<string, 'flag' | 'value' | 'values'>>, command: string): Map<string, string | string[] | true> {
  const out = new Map<string, string | string[] | true>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const kind = Object.hasOwn(spec, a) ? spec[a] : undefined;
    if (!kind) throw new UsageError(`${command}: unknown option '${a}' (${Object.keys(spec).join(', ')})`);
    if (kind === 'flag') {
      out.set(a, true);
      continue;
    }
    const v = argv[++i];
    if (v === undefined || v.startsWith('--')) throw new UsageError(`${command}: ${a} needs a value`);
    out.set(a, kind === 'values' ? [...((out.get(a) as string[] | undefined) ?? []), v] : v);
  }
  return out;
}

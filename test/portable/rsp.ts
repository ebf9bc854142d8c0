// Parser for NIST CAVP .rsp files: bracketed section headers such as
// "[L = 32]" or "[Keylen = 128]" followed by blank-line separated records of
// "NAME = value" lines. Consecutive header lines accumulate into one section.
// Flag lines without "=" (e.g. "FAIL") become NAME = "".

export interface RspRecord {
  /** Header values of the enclosing section, e.g. { L: '32' }. */
  section: Record<string, string>;
  fields: Record<string, string>;
  /** Every line in file order, for records that repeat a name (DRBG AdditionalInput). */
  entries: [string, string][];
}

export function parseRsp(text: string): RspRecord[] {
  const records: RspRecord[] = [];
  let section: Record<string, string> = {};
  let headerRun = false; // the previous non-blank line was a header
  let fields: Record<string, string> | undefined;
  let entries: [string, string][] = [];
  const flush = () => {
    if (fields) records.push({ section, fields, entries });
    fields = undefined;
    entries = [];
  };
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (line.startsWith('#')) continue;
    if (line === '') {
      flush();
      continue;
    }
    const header = /^\[(.*)\]$/.exec(line);
    if (header) {
      flush();
      if (!headerRun) section = {};
      section = { ...section };
      for (const part of header[1]!.split(',')) {
        const m = /^\s*([^=]+?)\s*(?:=\s*(.*?))?\s*$/.exec(part);
        if (m) section[m[1]!] = m[2] ?? '';
      }
      headerRun = true;
      continue;
    }
    headerRun = false;
    const m = /^([^=]+?)\s*=\s*(.*)$/.exec(line);
    fields ??= {};
    if (m) fields[m[1]!] = m[2]!;
    else fields[line] = '';
    entries.push(m ? [m[1]!, m[2]!] : [line, '']);
  }
  flush();
  return records;
}

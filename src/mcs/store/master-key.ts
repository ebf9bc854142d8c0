// The master key that seals secrets at rest: given directly, read from a key
// file, or taken from an environment variable (SENV_MASTER_KEY by default).
// Accepted encodings: 32 raw bytes (file only, and not all printable: that
// is text), 64 hex digits, or base64 of 32 bytes.
import { secretBytes, secretCopy } from '../../core/bytes.ts';
import { failureKind, InvalidInputError, LengthError, StateError } from '../../core/errors.ts';
import { bytesArg } from '../../core/args.ts';
import { granted, refusalOf } from '../../core/permissions.ts';
import { hexValue, keyFromBase64 } from '../codec.ts';
import { openFiles } from './files.ts';

/** Where a data directory's master key comes from: one of the three, or SENV_MASTER_KEY when none is given. */
export interface MasterKeyOptions {
  /** The 32-byte key itself (copied; the caller may wipe its array once the call resolved). */
  masterKey?: Uint8Array | undefined;
  /** A file holding the key: 32 raw bytes, 64 hex digits or the base64 of 32 bytes. */
  masterKeyFile?: string | undefined;
  /** Name of the environment variable; default SENV_MASTER_KEY. */
  masterKeyEnv?: string | undefined;
}

export async function resolveMasterKey(o: MasterKeyOptions): Promise<Uint8Array> {
  // A copy, read through its typed-array slots: the engine zeroizes the key it was given once the store has derived its own.
  if (o.masterKey) return check(secretCopy(bytesArg(o.masterKey, 'masterKey')), 'masterKey', '');
  if (o.masterKeyFile) {
    const raw = await (await openFiles()).read(o.masterKeyFile, 'key').catch((e: unknown) => {
      // A directory, no permission, ...: the code of what failed, typed (the path is the caller's own).
      throw new StateError(`the master key file ${o.masterKeyFile} cannot be read (${refusalOf(e, `--allow-read=${o.masterKeyFile}`, `--allow-fs-read=${o.masterKeyFile}`)})`);
    });
    // Named, here and when its content is refused: `senv rotate-master-key` reads two key files, and either may be the wrong one.
    if (!raw) throw new StateError(`the master key file ${o.masterKeyFile} does not exist`);
    if (raw.length !== 32) {
      // The text is the key too, decoded from its bytes (a string could not be zeroized): only the decoded copy,
      // which the engine zeroizes after use, may outlive this call.
      try {
        return decode(raw, `the master key file ${o.masterKeyFile}`);
      } finally {
        raw.fill(0);
      }
    }
    // 32 bytes of text are no raw key but an encoding too short for one (32 hex digits, base64 of 24 bytes, a passphrase and a newline),
    // a UTF-8 byte order mark and what follows it too.
    const bom = raw[0] === 0xef && raw[1] === 0xbb && raw[2] === 0xbf ? 3 : 0;
    if (raw.subarray(bom).every((b) => (b >= 0x20 && b < 0x7f) || b === 0x09 || b === 0x0a || b === 0x0d)) {
      raw.fill(0);
      throw new StateError(`the master key file ${o.masterKeyFile} holds 32 bytes of text, which is ambiguous: write the key as 64 hex digits or as base64 of 32 bytes (or as 32 raw binary bytes)`);
    }
    return raw;
  }
  const name = o.masterKeyEnv ?? 'SENV_MASTER_KEY';
  const text = env(name);
  if (text === undefined) {
    throw new StateError(`a data directory needs a master key: pass masterKey or masterKeyFile, or set ${name}`);
  }
  return decode(text, name);
}

function env(name: string): string | undefined {
  const g = globalThis as {
    Deno?: { env: { get(n: string): string | undefined } };
    process?: { env: Record<string, string | undefined> };
  };
  if (!g.Deno) return g.process?.env[name];
  const refused = (kind: string) => new StateError(`the master key variable ${name} cannot be read (${kind}; on Deno: --allow-env=${name})`);
  try {
    // Asked first: in a terminal, Deno would stop at a prompt for what is not granted. A name Deno
    // refuses ("A=B") is a TypeError of either call.
    if (!granted({ name: 'env', variable: name })) throw refused('NotCapable');
    return g.Deno.env.get(name);
  } catch (e) {
    throw e instanceof StateError ? e : refused(failureKind(e));
  }
}


/**
 * The key `text` (a string, or a file's bytes) holds as hex or base64, checked; white space around
 * it is ignored as String.prototype.trim ignores it, and a file's UTF-8 byte order mark too.
 */
function decode(input: string | Uint8Array, what: string): Uint8Array {
  let text: string | Uint8Array;
  if (typeof input === 'string') text = input.trim();
  else {
    text = input.subarray(input[0] === 0xef && input[1] === 0xbb && input[2] === 0xbf ? 3 : 0);
    // Non-ASCII around the key (a no-break space): such a file alone is read as a string, to trim it as one.
    if (text.some((b) => b >= 0x80)) return decode(new TextDecoder().decode(text), what);
  }
  const at = (i: number) => (typeof text === 'string' ? text.charCodeAt(i) : text[i]!);
  let from = 0, to = text.length;
  while (from < to && isSpace(at(from))) from++;
  while (to > from && isSpace(at(to - 1))) to--;
  // Every character looked at, whatever it is: where the first that is no hex digit stands is the key's.
  let digits = 0;
  for (let i = from; i < to; i++) digits |= hexValue(at(i));
  const hex = to - from === 64 && digits >= 0;
  if (!hex) return check(keyFromBase64(typeof text === 'string' ? text.slice(from, to) : text.subarray(from, to)), what, TEXT_FORMS);
  const key = secretBytes(32);
  for (let i = 0; i < 32; i++) key[i] = (hexValue(at(from + 2 * i)) << 4) | hexValue(at(from + 2 * i + 1));
  return check(key, what, TEXT_FORMS);
}

/** White space as String.prototype.trim removes it from a key's ASCII text. */
const isSpace = (c: number) => c === 0x20 || (c >= 0x09 && c <= 0x0d);

const TEXT_FORMS = ' (64 hex digits or base64)';

/**
 * The key (resolveMasterKey's caller zeroizes it after use); one of the wrong length is zeroized before it is refused.
 * `forms` names the encodings a text may use: none for bytes given as such, which no encoding would mend.
 */
function check(key: Uint8Array | undefined, what: string, forms: string): Uint8Array {
  if (!key) throw new InvalidInputError(`${what} must hold a 32-byte AES-256 key${forms}`);
  if (key.length !== 32) {
    key.fill(0);
    throw new LengthError(`${what} must hold a 32-byte AES-256 key${forms}`);
  }
  return key;
}

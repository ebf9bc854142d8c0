// The few file operations the journal needs, on Node (node:fs) and Deno
// (Deno.*), loaded only when a data directory is used, so the engine stays
// importable in browsers. They are one small interface so that a caller can
// put its own in between (McsEngineOptions.files): to watch the I/O, or to
// make writes fail the way a full or failing disk does (the tests of
// docs/mcs.md "Failed writes").

export interface Files {
  /** The whole file, or undefined when it does not exist. */
  read(path: string): Promise<Uint8Array | undefined>;
  /** Appends and flushes to stable storage before resolving. */
  append(path: string, data: Uint8Array): Promise<void>;
  /** Writes a new file and flushes it (the caller renames it into place). */
  writeDurable(path: string, data: Uint8Array): Promise<void>;
  rename(from: string, to: string): Promise<void>;
  /** Cuts the file to `length` bytes and flushes it; a missing file has nothing to cut. */
  truncate(path: string, length: number): Promise<void>;
  remove(path: string): Promise<void>;
  mkdir(path: string): Promise<void>;
  /** Flushes a directory entry change (rename, create) to stable storage. */
  syncDir(path: string): Promise<void>;
}

interface DenoFile { write(p: Uint8Array): Promise<number>; sync(): Promise<void>; truncate(n: number): Promise<void>; close(): void }
interface DenoApi {
  readFile(p: string): Promise<Uint8Array>;
  open(p: string, o: Record<string, boolean>): Promise<DenoFile>;
  rename(a: string, b: string): Promise<void>;
  remove(p: string): Promise<void>;
  mkdir(p: string, o: { recursive: boolean }): Promise<void>;
  errors: { NotFound: new () => Error };
}

export async function openFiles(): Promise<Files> {
  const deno = (globalThis as { Deno?: DenoApi }).Deno;
  return deno ? denoFiles(deno) : nodeFiles();
}

/** Runs op; a file that does not exist counts as done (truncating or removing it). */
async function unlessMissing(missing: (e: unknown) => boolean, op: () => Promise<unknown>): Promise<void> {
  try {
    await op();
  } catch (e) {
    if (!missing(e)) throw e;
  }
}

async function nodeFiles(): Promise<Files> {
  const fs = await import('node:fs/promises');
  const missing = (e: unknown) => (e as { code?: string }).code === 'ENOENT';
  const withFile = async (path: string, flags: string, fn: (f: Awaited<ReturnType<typeof fs.open>>) => Promise<void>) => {
    const f = await fs.open(path, flags);
    try {
      await fn(f);
    } finally {
      await f.close();
    }
  };
  return {
    read: async (path) => {
      try {
        return new Uint8Array(await fs.readFile(path));
      } catch (e) {
        if (missing(e)) return undefined;
        throw e;
      }
    },
    append: (path, data) => withFile(path, 'a', async (f) => {
      await f.writeFile(data);
      await f.datasync();
    }),
    writeDurable: (path, data) => withFile(path, 'w', async (f) => {
      await f.writeFile(data);
      await f.sync();
    }),
    rename: (a, b) => fs.rename(a, b),
    truncate: (path, n) => unlessMissing(missing, () => withFile(path, 'r+', async (f) => {
      await f.truncate(n);
      await f.sync();
    })),
    remove: (path) => unlessMissing(missing, () => fs.unlink(path)),
    mkdir: async (path) => void (await fs.mkdir(path, { recursive: true })),
    syncDir: (path) => withFile(path, 'r', (f) => f.sync()),
  };
}

function denoFiles(deno: DenoApi): Files {
  const missing = (e: unknown) => e instanceof deno.errors.NotFound;
  const withFile = async (path: string, o: Record<string, boolean>, fn: (f: DenoFile) => Promise<void>) => {
    const f = await deno.open(path, o);
    try {
      await fn(f);
    } finally {
      f.close();
    }
  };
  const writeAll = async (f: DenoFile, data: Uint8Array) => {
    for (let off = 0; off < data.length;) off += await f.write(data.subarray(off));
  };
  return {
    read: async (path) => {
      try {
        return await deno.readFile(path);
      } catch (e) {
        if (missing(e)) return undefined;
        throw e;
      }
    },
    append: (path, data) => withFile(path, { append: true, create: true }, async (f) => {
      await writeAll(f, data);
      await f.sync();
    }),
    writeDurable: (path, data) => withFile(path, { write: true, create: true, truncate: true }, async (f) => {
      await writeAll(f, data);
      await f.sync();
    }),
    rename: (a, b) => deno.rename(a, b),
    truncate: (path, n) => unlessMissing(missing, () => withFile(path, { read: true, write: true }, async (f) => {
      await f.truncate(n);
      await f.sync();
    })),
    remove: (path) => unlessMissing(missing, () => deno.remove(path)),
    mkdir: (path) => deno.mkdir(path, { recursive: true }),
    syncDir: (path) => withFile(path, { read: true }, (f) => f.sync()),
  };
}

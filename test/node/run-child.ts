// Runs a child process to its end for a test: its output collected, and a
// time limit, past which it is killed, so that a child held for good (what
// many of these tests guard against) fails the test instead of outliving it.
import { spawn, type ChildProcess } from 'node:child_process';

export interface ChildRun {
  code: number | null;
  /** 'SIGKILL' when the time limit killed it. */
  signal: NodeJS.Signals | null;
  out: string;
  err: string;
  /** From start to exit. */
  ms: number;
}

export interface ChildOptions {
  /** Added to this process's environment, whose NODE_OPTIONS (vitest's) the child does not get. */
  env?: Record<string, string>;
  cwd?: string;
  /** 30 s unless given. */
  killMs?: number;
  /** Called with the whole standard output so far, at each piece of it. */
  onOutput?: (out: string) => void;
}

export function runChild(command: string, args: readonly string[], opts: ChildOptions = {}): Promise<ChildRun> {
  return new Promise((resolve) => {
    const t0 = Date.now();
    const child = spawn(command, args, {
      cwd: opts.cwd,
      env: { ...process.env, NODE_OPTIONS: '', ...opts.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      opts.onOutput?.(out);
    });
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const killer = setTimeout(() => child.kill('SIGKILL'), opts.killMs ?? 30_000);
    child.on('close', (code, signal) => {
      clearTimeout(killer);
      resolve({ code, signal, out, err, ms: Date.now() - t0 });
    });
  });
}

/**
 * `command` run in a terminal of its own, which script(1) gives it: where a prompt would wait for an
 * answer (Deno asking for a permission), the run waits too, until `killMs`.
 */
export function runInTerminal(command: string, args: readonly string[], opts?: ChildOptions): Promise<ChildRun> {
  return runChild('script', ['-qec', [command, ...args].map((a) => `'${a}'`).join(' '), '/dev/null'], opts);
}

/** Node running `script` as an ES module. */
export function runModule(script: string, opts?: ChildOptions): Promise<ChildRun> {
  return runChild(process.execPath, ['--input-type=module', '-e', script], opts);
}

/** Calls `line` with each whole line the child writes to its standard output, as it comes (the kill -9 harnesses' protocol). */
export function onLines(child: ChildProcess, line: (words: string[]) => void): void {
  let buf = '';
  child.stdout!.on('data', (d: Buffer) => {
    buf += d.toString();
    for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
      const text = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      line(text.split(' '));
    }
  });
}

// The `senv` command.
import { selftest } from '../core/selftest.ts';
import { initSync, coreBuilds, type CoreBuild } from '../core/loader.ts';

const USAGE = `usage: senv <command> [options]

commands:
  selftest [--build relaxed|simd|scalar|all]
                                       known-answer test of every core algorithm on this runtime
                                       (all: every build the runtime takes)
  bench [--quick] [--only m1,m2] [--filter regex] [--out file]
                                       senv against its peers (needs a source checkout with devDependencies)
  virtual-card [--slot 0|1] [--store FILE] [--no-extended] [--verbose]
                                       a senv card in pcscd's vpcd reader (docs/pcsc.md)
`;

function runSelftest(argv: string[]): number {
  const i = argv.indexOf('--build');
  const which = i >= 0 ? argv[i + 1] : 'all';
  const builds: CoreBuild[] = which === 'all' ? coreBuilds() : [which as CoreBuild];
  let failed = 0;
  for (const build of builds) {
    initSync({ build });
    const r = selftest();
    for (const t of r.results) {
      console.log(`${t.ok ? 'pass' : 'FAIL'}  ${build.padEnd(6)}  ${t.name}${t.error ? `: ${t.error}` : ''}`);
      if (!t.ok) failed++;
    }
  }
  console.log(failed ? `selftest: ${failed} failed` : 'selftest: all passed');
  return failed ? 1 : 0;
}

async function runBenchCommand(argv: string[]): Promise<number> {
  let mod: typeof import('../../bench/run.ts');
  try {
    mod = await import('../../bench/run.ts');
  } catch (e) {
    console.error(`senv bench needs the bench/ sources and devDependencies of a senv checkout (${(e as Error).message})`);
    return 2;
  }
  await mod.runBench(mod.parseBenchArgs(argv));
  return 0;
}

export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  switch (cmd) {
    case 'selftest':
      return runSelftest(rest);
    case 'bench':
      return runBenchCommand(rest);
    case 'virtual-card':
      return (await import('../virtual-card/cli.ts')).runVirtualCard(rest);
    case undefined:
    case '-h':
    case '--help':
    case 'help':
      console.log(USAGE);
      return cmd === undefined ? 2 : 0;
    default:
      console.error(`senv: unknown command '${cmd}'\n${USAGE}`);
      return 2;
  }
}

// The `senv` command.
import { selftest } from '../core/selftest.ts';
import { initSync, coreBuilds, CORE_BUILDS, type CoreBuild } from '../core/loader.ts';
import { parseOptions, UsageError } from './args.ts';
import { SENV_VERSION } from '../version.ts';

const USAGE = `usage: senv <command> [options]    (senv --version: the package's version)

commands:
  selftest [--build all|relaxed|simd|scalar]
                                       known answers of every core algorithm family, both directions,
                                       on each build the runtime takes (all, the default) or on one
  bench [--quick] [--only m1,m2] [--filter regex] [--out file] [--reader name]... [--backend module]...
                                       senv against its peers (needs a source checkout with devDependencies);
                                       modules sha2, aes, dudect-aes, ecdsa, dudect-ec, drbg, mcs, apdu, backend.
                                       The apdu module starts pcscd with a virtual card, installing the
                                       PC/SC packages with apt when run as root; --reader names instead
                                       a reader of the running pcscd with a senv-profile card in it.
                                       --backend names an ES module (a file, or a package specifier) whose
                                       default export or createBackend gives a SecureEnvironmentBackend of
                                       your own. Each may be given several times, and together: the
                                       backend module measures every SE named (modules, then cards) in one
                                       engine, a row each beside the software SE; the apdu module times
                                       each card's round trips and GET CHALLENGE
  virtual-card [--slot N] [--host H] [--port P] [--store FILE] [--no-extended] [--verbose]
                                       a senv card in pcscd's vpcd reader (docs/pcsc.md)
  rotate-master-key --data-dir DIR (--new-key-file F | --new-key-env V) [--key-file F | --key-env V]
                    [--rollback-anchor module]
                                       moves a data directory no engine has open to a new master key
                                       (docs/mcs.md "Rotating the master key"). Keys come from files or
                                       variables as McsEngine.create reads them (the current one from
                                       SENV_MASTER_KEY by default), never from the command line. A
                                       directory kept with a rollback anchor needs it: an ES module whose
                                       default export or createRollbackAnchor gives the RollbackAnchor

exit status:
  0    success; virtual-card: stopped by SIGINT, SIGTERM or SIGHUP, its store given up
  1    failure: a known answer that failed, a bench run that failed (a --backend module that gives
       no backend, an operation answering an error), a store refused or not given up, output not written,
       a rotation refused or failed (its message says which key the directory is under)
  2    usage error
  3    not available here: a build the runtime does not take, bench outside a source checkout
  141  the reader of its output went away (EPIPE), as for a process SIGPIPE ends
  selftest and bench end as a signal ends a process (a shell reports 128 + its number: 130, Ctrl-C)
`;

/** Exit status 3: the command is right, but this runtime or installation cannot run it. */
const UNAVAILABLE = 3;


function runSelftest(argv: string[]): number {
  const which = (parseOptions(argv, { '--build': 'value' }, 'selftest').get('--build') as string | undefined) ?? 'all';
  if (which !== 'all' && !(CORE_BUILDS as readonly string[]).includes(which)) {
    throw new UsageError(`selftest: --build takes all, ${CORE_BUILDS.join(', ')}, not '${which}'`);
  }
  const taken = coreBuilds();
  if (which !== 'all' && !taken.includes(which as CoreBuild)) {
    console.error(`selftest: this runtime does not take the ${which} build (it takes ${taken.join(', ')}${which === 'relaxed' ? '; on Node 20 run node --experimental-wasm-relaxed-simd' : ''})`);
    return UNAVAILABLE;
  }
  const builds: CoreBuild[] = which === 'all' ? taken : [which as CoreBuild];
  const width = Math.max(...builds.map((b) => b.length));
  let failed = 0;
  for (const build of builds) {
    initSync({ build });
    const r = selftest();
    for (const t of r.results) {
      console.log(`${t.ok ? 'pass' : 'FAIL'}  ${build.padEnd(width)}  ${t.name}${t.error ? `: ${t.error}` : ''}`);
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
    return UNAVAILABLE;
  }
  await mod.runBench(mod.parseBenchArgs(argv));
  return 0;
}

export async function main(argv: string[]): Promise<number> {
  try {
    return await command(argv);
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    console.error(`senv: ${e.message}\n${USAGE}`);
    return 2;
  }
}

// The commands, once: dispatch and the per-command --help both look here.
const COMMANDS: Readonly<Record<string, (args: string[]) => number | Promise<number>>> = {
  selftest: runSelftest,
  bench: runBenchCommand,
  'virtual-card': async (args) => (await import('../virtual-card/cli.ts')).runVirtualCard(args),
  'rotate-master-key': async (args) => (await import('./rotate-master-key.ts')).runRotateMasterKey(args),
};

async function command(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  const run = cmd !== undefined && Object.hasOwn(COMMANDS, cmd) ? COMMANDS[cmd] : undefined;
  if (run) {
    // Every command's help is the one usage text (an unknown command stays a usage error).
    if (rest.includes('--help') || rest.includes('-h')) {
      console.log(USAGE);
      return 0;
    }
    return run(rest);
  }
  switch (cmd) {
    case undefined:
      // No command is a usage error: its text goes where errors go.
      console.error(USAGE);
      return 2;
    case '-h':
    case '--help':
    case 'help':
      // `senv help <command>` asks for that command's help, which is the one usage text.
      if (rest.length > 1 || (rest.length === 1 && !Object.hasOwn(COMMANDS, rest[0]!))) {
        throw new UsageError(`${cmd} takes a command's name or nothing, not '${rest.join(' ')}'`);
      }
      console.log(USAGE);
      return 0;
    case '--version':
      if (rest.length) throw new UsageError(`--version takes nothing more, not '${rest.join(' ')}'`);
      console.log(SENV_VERSION);
      return 0;
    default:
      console.error(`senv: unknown command '${cmd}'\n${USAGE}`);
      return 2;
  }
}

// The Mcs conformance suites on the PC/SC SE under Deno, through the native
// bridge (Node-API, loaded with --allow-ffi) and pcscd to the senv virtual
// card: the cases test/node/pcsc-backend.test.ts runs on Node. Needs the
// card's reader in SENV_DENO_PCSC_READER; test/node/pcsc-deno.test.ts brings
// up the stack, inserts the card and runs this file:
//   deno test --allow-ffi --allow-read --allow-env test/deno-pcsc
import { initSync, type SecureEnvironmentBackend } from '../../src/index.ts';
import { PcscBackend } from '../../src/backends/pcsc/index.ts';
import { mcsCases } from '../portable/mcs.ts';
import { mcsCipherCases } from '../portable/mcs-cipher.ts';
import { mcsRuleCases } from '../portable/mcs-rules.ts';

declare const Deno: {
  test(t: { name: string; fn: () => Promise<void> }): void;
  env: { get(name: string): string | undefined };
};

const reader = Deno.env.get('SENV_DENO_PCSC_READER');
if (!reader) throw new Error('SENV_DENO_PCSC_READER names no reader: run this through test/node/pcsc-deno.test.ts');
initSync();

// The cases create one engine each and never close it; their backends share the card (each call
// a PC/SC transaction) and are closed after each case.
const open: SecureEnvironmentBackend[] = [];
const factory = () => {
  const b = new PcscBackend({ reader, share: 'shared' });
  open.push(b);
  return b;
};

for (const c of [...mcsCases(factory), ...mcsCipherCases(factory), ...mcsRuleCases(factory)]) {
  Deno.test({
    name: c.name,
    async fn() {
      try {
        await c.run(async () => '');
      } finally {
        for (const b of open.splice(0)) await b.close();
      }
    },
  });
}

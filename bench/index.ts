// Every benchmark module, by name (`senv bench --only <name>` runs one).
import type { BenchModule } from './harness.ts';
import { sha2Bench } from './sha2.ts';
import { ecdsaBench } from './ecdsa.ts';
import { drbgBench } from './drbg.ts';
import { aesBench } from './aes.ts';
import { dudectAesBench } from './dudect-aes.ts';
import { dudectEcBench } from './dudect-ec.ts';
import { mcsBench } from './mcs.ts';
import { apduBench } from './apdu.ts';
import { backendBench } from './backend.ts';

export const benchModules: Record<string, BenchModule> = {
  sha2: sha2Bench,
  aes: aesBench,
  'dudect-aes': dudectAesBench,
  ecdsa: ecdsaBench,
  'dudect-ec': dudectEcBench,
  drbg: drbgBench,
  mcs: mcsBench,
  apdu: apduBench,
  backend: backendBench,
};

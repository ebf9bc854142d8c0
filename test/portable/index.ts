// Every portable suite, by name; each runner (Node, Deno, Chromium) runs them all.
import type { PortableCase } from './harness.ts';
import { sha2Cases } from './sha2.ts';
import { errorCases } from './errors.ts';
import { aesCases } from './aes.ts';
import { drbgCases } from './drbg.ts';
import { ecdsaCases } from './ecdsa.ts';
import { mcsSuite } from './mcs.ts';
import { mcsCipherSuite } from './mcs-cipher.ts';
import { mcsRuleSuite } from './mcs-rules.ts';
import { mcsQuotaCases } from './mcs-quota.ts';
import { mcsClientOptionCases } from './mcs-client-options.ts';
import { mcsBackendContractCases } from './mcs-backend-contract.ts';
import { wycheproofCases, wycheproofMcsCases } from './wycheproof.ts';

export const suites: Record<string, PortableCase[]> = {
  sha2: sha2Cases,
  'hash errors': errorCases,
  aes: aesCases,
  drbg: drbgCases,
  ecdsa: ecdsaCases,
  wycheproof: wycheproofCases,
  mcs: mcsSuite,
  'mcs cipher': mcsCipherSuite,
  'mcs rules': mcsRuleSuite,
  'mcs quota': mcsQuotaCases,
  'mcs client options': mcsClientOptionCases,
  'mcs backend contract': mcsBackendContractCases,
  'mcs wycheproof': wycheproofMcsCases,
};

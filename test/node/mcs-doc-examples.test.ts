// docs/mcs.md "Procedures, worked" says every request and response there was
// produced by this engine, in order. This replays them on a software SE with
// the same unique ID and clock and holds the engine to the page: the same
// status, content and messages. What differs per run by design (resource IDs,
// generated keys, random numbers) is matched by shape and then followed: a
// value first seen in a response must come back the same wherever the page
// repeats it, and a later request that uses it gets this run's value.
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { McsEngine, SoftwareBackend } from '../../src/index.ts';

const PAGE = readFileSync(new URL('../../docs/mcs.md', import.meta.url), 'utf8');
const UNIQUE_ID = '0f1e2d3c4b5a69788796a5b4c3d2e1f0';
const CLOCK = Date.UTC(2026, 10, 22, 12);
/** Attributes whose values the engine draws at random: resource IDs (and parents naming them), generated keys, random data. */
const DRAWN = new Set(['ri', 'pi', 'kDt', 'kInf', 'rndD']);
/** The page abbreviates the one oversized message; the request carries that many base64 characters. */
const ABBREVIATED = /"<(\d+) base64 characters>"/;

interface Step {
  heading: string;
  request: string;
  response: string;
}

function workedSteps(): Step[] {
  const start = PAGE.indexOf('\n## Procedures, worked');
  const end = PAGE.indexOf('\n## ', start + 1);
  const section = PAGE.slice(start, end < 0 ? undefined : end);
  const steps: Step[] = [];
  let heading = '';
  const blocks: string[] = [];
  const re = /^#### (.*)$|^```json\n([\s\S]*?)^```$/gm;
  for (let m = re.exec(section); m; m = re.exec(section)) {
    if (m[1] !== undefined) {
      heading = m[1];
      continue;
    }
    blocks.push(m[2]!.trim());
    if (blocks.length === 2) steps.push({ heading, request: blocks.shift()!, response: blocks.shift()! });
  }
  expect(blocks, 'every request has its response').toEqual([]);
  return steps;
}

/** `page` with this run's drawn values in place of the page's, learning new ones from `actual` where the page draws them. */
function follow(page: unknown, actual: unknown, seen: Map<string, string>, where: string): unknown {
  if (Array.isArray(page)) return page.map((v, i) => follow(v, Array.isArray(actual) ? actual[i] : undefined, seen, `${where}[${i}]`));
  if (page === null || typeof page !== 'object') return page;
  const out: Record<string, unknown> = {};
  const got = (actual ?? {}) as Record<string, unknown>;
  for (const [k, v] of Object.entries(page)) {
    if (typeof v === 'string' && seen.has(v)) out[k] = seen.get(v);
    else if (typeof v === 'string' && DRAWN.has(k) && typeof got[k] === 'string') {
      const mine = got[k] as string;
      expect(mine.length, `${where}.${k}: a value of the page's length`).toBe(v.length);
      expect([...seen.values()], `${where}.${k}: drawn afresh`).not.toContain(mine);
      seen.set(v, mine);
      out[k] = mine;
    } else out[k] = follow(v, got[k], seen, `${where}.${k}`);
  }
  return out;
}

describe('docs/mcs.md "Procedures, worked"', () => {
  it('is what the engine answers, request by request, on a software SE with the same unique ID and clock', async () => {
    const steps = workedSteps();
    expect(steps.length, 'the page has its worked procedures').toBeGreaterThan(50);
    // The last one needs a PC/SC SE beside the software one (the page says so): pcsc-backend.test.ts runs it.
    const pcsc = steps.filter((s) => s.request.includes('"to":"2-'));
    expect(pcsc.map((s) => s.heading)).toEqual([expect.stringMatching(/PC\/SC SE/)]);
    const engine = await McsEngine.create({ backends: [new SoftwareBackend({ uniqueId: UNIQUE_ID })], clock: () => CLOCK });
    try {
      expect(engine.seIds).toEqual([`4-${UNIQUE_ID}`]);
      const seen = new Map<string, string>();
      for (const step of steps.filter((s) => !pcsc.includes(s))) {
        let text = step.request.replace(ABBREVIATED, (_, n: string) => JSON.stringify('A'.repeat(Number(n))));
        for (const [page, mine] of seen) text = text.split(page).join(mine);
        const actual = JSON.parse(JSON.stringify(await engine.send(JSON.parse(text))));
        expect(actual, step.heading).toEqual(follow(JSON.parse(step.response), actual, seen, step.heading));
      }
      expect(seen.size, 'resource IDs, keys and random data were followed').toBeGreaterThan(10);
    } finally {
      await engine.close();
    }
  });
});

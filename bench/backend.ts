// The SEs a run names (`senv bench --backend <module>`, `--reader <name>`, each as often as
// wanted: bench/ses.ts) measured side by side with the Mcs workload senv's own SEs run
// (se-workload.ts), beside the software SE in one engine: a row per SE in each operation's table,
// each with its ratio to the software SE's. A card's lines say the APDUs each operation costs it.
import { selects, type BenchModule } from './harness.ts';
import { opTitles, perOperation, workloadGroups } from './se-workload.ts';

export const backendBench: BenchModule = async (opts) => {
  const named = opts.ses;
  if (named === undefined) {
    console.log('\nbackend: skipped, no --backend module or --reader given');
    return [];
  }
  if (!opTitles().some((t) => selects(opts, t))) return [];
  const list = named.ses.map((se) => `${se.name} (${se.record.description.manufacturer} ${se.record.description.model})`).join(', ');
  console.log(`\nMcs operations on ${list} beside the software SE (RETRIEVE of the virtual resource)`);
  const bySeId = new Map(named.ses.map((se) => [se.seId, se]));
  const finding = (seId: string, operation: string, more: Record<string, unknown>) =>
    opts.finding?.('backend', { check: 'operation', se: bySeId.get(seId)!.record, operation, ...more });
  const subjects = named.ses.map((se) => ({ seId: se.seId, impl: se.name, where: se.name }));
  return workloadGroups(opts, named.engine, subjects, named.softwareId, {
    async prepared(op, subject, retrieve) {
      const card = bySeId.get(subject.seId)!.card;
      if (card === undefined) {
        console.log(`  ${op.name.padEnd(28)} offered by ${subject.where}, timed below`);
        finding(subject.seId, op.name, { offered: true });
        return;
      }
      const apdus = await perOperation(() => card.backend.apdus, retrieve);
      console.log(`  ${op.name.padEnd(28)} offered by ${subject.where}, ${apdus.toFixed(1)} APDUs, timed below`);
      finding(subject.seId, op.name, { offered: true, apdus });
    },
    notOffered: (op, subject, reason) => finding(subject.seId, op.name, { offered: false, reason }),
  });
};

// <sensitiveDataObject> contents kept on the card: PUT DATA / GET DATA of data
// objects 01-FD. Mcs ids are strings, the card numbers its objects, so a
// directory (object FE: E0 { 80 id, 81 number } per entry) maps one to the
// other and survives host restarts with the card.
import { DO, INS } from '../../apdu/profile.ts';
import { hex } from '../../apdu/apdu.ts';
import { decodeTlvs, findTlv, tlvs } from '../../apdu/tlv.ts';
import { constantTimeEqual } from '../../core/compare.ts';
import { DeviceFullError, InvalidInputError, StateError } from '../../core/errors.ts';
import { ApduError } from '../../apdu/errors.ts';
import type { ObjectStore } from '../backend.ts';
import { answeredBy, exactly, mayHaveWritten, roomRefused, type CardSession } from './session.ts';

const DIRECTORY = 0xfe;
const ENTRY = 0xe0;
/** Object IDs are the engine's resource IDs (about 20 characters); the bound keeps the directory's size known. */
const MAX_ID = 64;
/** The directory at its fullest (every object 01-FD named, IDs of MAX_ID bytes): E0 { 80 id, 81 n } per entry, one-byte TLV lengths while MAX_ID < 123. */
const DIRECTORY_MOST = (DIRECTORY - 1) * (2 + 2 + MAX_ID + 3);
const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder();

export class CardObjectStore implements ObjectStore {
  /** The card's directory as this store last read or wrote it: what load() gives in exclusive mode. */
  private directory: Map<string, number> | undefined;
  /**
   * IDs the card's directory may still name though their objects were deleted (the directory's
   * write failed): left out of every directory read, which is written again before the next change.
   */
  private readonly unsaved = new Set<string>();
  /**
   * Numbers of new objects whose write failed and whose deletion failed too: their bytes may be on
   * the card with nothing naming them. Not handed out again, deleted before the next change and
   * at close (sweep()), which reports those that stay.
   */
  private readonly orphans = new Set<number>();

  /**
   * `shared`: other applications use the card between this store's calls (share 'shared'), another
   * senv engine's objects among them, so the directory is read again in each call (one PC/SC
   * transaction): a remembered one would hand out numbers they took since and write their entries over.
   */
  constructor(private readonly session: CardSession, private readonly shared: boolean) {}

  write(id: string, data: Uint8Array): Promise<void> {
    return this.session.run(async () => {
      const dir = await this.load();
      await this.catchUp(dir);
      let n = dir.get(id);
      if (n === undefined) {
        if (utf8.encode(id).length > MAX_ID) throw new InvalidInputError(`a data object ID has at most ${MAX_ID} bytes`);
        const used = new Set([...dir.values(), ...this.orphans]);
        n = [...Array(DIRECTORY - 1).keys()].map((i) => i + 1).find((i) => !used.has(i));
        if (n === undefined) throw new DeviceFullError('the card has no room for another data object (every object number is in use)');
        try {
          await this.put(DO.OBJECT, n, data);
          dir.set(id, n);
          await this.save(dir);
        } catch (e) {
          // The object may be on the card with no directory entry naming it (an answer lost, or the
          // directory's write failed): its bytes go now if the card lets them, else later (orphans),
          // and the directory drops the ID again.
          await this.deleteObject(n).catch(() => this.orphans.add(n!));
          await this.drop(dir, id);
          throw e;
        }
      } else {
        await this.replace(n, data);
      }
    });
  }

  /**
   * Writes new contents over object n. An answer that leaves the write in doubt (lost, garbled,
   * "memory may have changed") is settled by asking the card: the new contents there make the write
   * done; otherwise it failed and the old contents stand, as the host's record says.
   */
  private async replace(n: number, data: Uint8Array): Promise<void> {
    try {
      await this.put(DO.OBJECT, n, data);
    } catch (e) {
      if (e instanceof DeviceFullError || (answeredBy(e, INS.PUT_DATA, (DO.OBJECT << 8) | n) && !mayHaveWritten(e.sw))) throw e;
      if (!(await this.holds(n, data))) throw e;
    }
  }

  /** Whether object n holds exactly `data` (false when the card cannot say). */
  private async holds(n: number, data: Uint8Array): Promise<boolean> {
    const held = await this.get(n, data.length).catch(() => undefined);
    if (!held) return false;
    try {
      return held.length === data.length && constantTimeEqual(held, data);
    } finally {
      held.fill(0);
    }
  }

  read(id: string, length?: number): Promise<Uint8Array> {
    return this.session.run(async () => {
      const n = (await this.load()).get(id);
      // The host holds data of this ID on the card: a directory without it, or an object the card says
      // is not there (6A88 as the GET DATA's own answer), was deleted from the card since (a wiped card,
      // another application): as a key gone from its slot, the resource's state (StateError, 4005), named.
      const gone = (why: string) => new StateError(`the card holds no data object '${id.slice(0, 80)}' any more: ${why}`);
      if (n === undefined) throw gone('its directory does not name it (deleted since)');
      try {
        if (length === undefined) return await this.get(n);
        // What was written is what comes back: a card that sends more is stopped at the first piece beyond it.
        return exactly(await this.get(n, length), length, `data object '${id.slice(0, 80)}'`);
      } catch (e) {
        if (answeredBy(e, INS.GET_DATA, (DO.OBJECT << 8) | n) && e.sw === 0x6a88) throw gone(`object ${hex(Uint8Array.of(n))}, which its directory names, was deleted since`);
        throw e;
      }
    });
  }

  remove(id: string): Promise<void> {
    return this.session.run(async () => {
      const dir = await this.load();
      await this.deleteOrphans(dir);
      const n = dir.get(id);
      if (n === undefined) return;
      await this.deleteObject(n);
      // The data is gone: the removal stands.
      await this.drop(dir, id);
    });
  }

  /**
   * Writes the directory without `id`. One the card did not take still names the ID (its number
   * stays taken there): it is written again before the next change (unsaved), never thrown, so the
   * caller's outcome stands.
   */
  private async drop(dir: Map<string, number>, id: string): Promise<void> {
    dir.delete(id);
    await this.save(dir).then(() => this.unsaved.clear(), () => void this.unsaved.add(id));
  }

  /**
   * At close: what catchUp() would do before a next change that will not come. Returns the numbers
   * of objects the card still keeps (the caller must hear of them); a directory that still names a
   * removed object holds no data, and a later engine's change writes it again.
   */
  async sweep(): Promise<number[]> {
    // Nothing to do takes no turn of the session (which would connect again after a reset took it).
    if (this.orphans.size || this.unsaved.size) await this.session.run(async () => this.catchUp(await this.load())).catch(() => undefined);
    return [...this.orphans];
  }

  /** What earlier calls left to do: the orphans (each tried, never thrown), then the directory the card did not take (a failure fails the caller). */
  private async catchUp(dir: Map<string, number>): Promise<void> {
    await this.deleteOrphans(dir);
    if (this.unsaved.size) {
      await this.save(dir);
      this.unsaved.clear();
    }
  }

  private async deleteOrphans(dir: Map<string, number>): Promise<void> {
    const named = new Set(dir.values());
    for (const n of [...this.orphans]) {
      // Shared mode: a number the directory names now is another engine's object, written since.
      if (named.has(n)) this.orphans.delete(n);
      else await this.deleteObject(n).then(() => this.orphans.delete(n), () => undefined);
    }
  }

  private async deleteObject(n: number): Promise<void> {
    await this.put(DO.DELETE_OBJECT, n, new Uint8Array(0)).catch((e: unknown) => {
      // Nothing there (6A88 as the deletion's own answer): an earlier deletion whose answer was lost did it.
      if (!(answeredBy(e, INS.PUT_DATA, (DO.DELETE_OBJECT << 8) | n) && e.sw === 0x6a88)) throw e;
    });
  }

  private async load(): Promise<Map<string, number>> {
    if (this.directory && !this.shared) return this.directory;
    const dir = new Map<string, number>();
    try {
      // The host writes the directory, so it knows how large it can be: a card that sends more is stopped there.
      const entries = decodeTlvs(await this.get(DIRECTORY, DIRECTORY_MOST)).filter((e) => e.tag === ENTRY);
      for (const [i, e] of entries.entries()) {
        const t = decodeTlvs(e.value);
        const idBytes = findTlv(t, 0x80);
        const n = findTlv(t, 0x81);
        const id = idBytes && fromUtf8.decode(idBytes);
        const number = n?.length === 1 ? n[0]! : undefined;
        const object = `object ${hex(Uint8Array.of(number ?? 0))}`;
        // Each entry is taken as the host writes it or not at all: a number outside 01-FD (FE would
        // put an object's bytes over the directory), or one named twice, hands one object's contents
        // to another resource. The message names the entry, never an ID (data of the card).
        const wrong = id === undefined || number === undefined ? 'lacks its ID (80) or its one-byte number (81)'
          : number < 1 || number >= DIRECTORY ? `names ${object}, outside 01-FD`
          : [...dir.values()].includes(number) ? `names ${object}, which an earlier entry names`
          : dir.has(id) ? 'names an ID an earlier entry names'
          : undefined;
        if (wrong !== undefined) throw new ApduError(`the card's data-object directory (object FE) is not one the host wrote: entry ${i + 1} ${wrong}`);
        dir.set(id!, number!);
      }
    } catch (e) {
      // 6A88 means no directory yet only as the GET DATA's own answer (not a GET RESPONSE's: a lost
      // directory would hand out data objects other resources hold).
      if (!(answeredBy(e, INS.GET_DATA) && e.sw === 0x6a88)) throw e;
    }
    for (const id of this.unsaved) dir.delete(id);
    this.directory = dir;
    return dir;
  }

  private save(dir: Map<string, number>): Promise<void> {
    const entries = [...dir].map(([id, n]) => [ENTRY, tlvs([0x80, utf8.encode(id)], [0x81, [n]])] as [number, Uint8Array]);
    return this.put(DO.OBJECT, DIRECTORY, tlvs(...entries));
  }

  private async put(p1: number, p2: number, data: Uint8Array): Promise<void> {
    try {
      await this.session.channel0.transmit({ cla: 0, ins: INS.PUT_DATA, p1, p2, data, secret: true });
    } catch (e) {
      throw roomRefused(e, INS.PUT_DATA, `${data.length} bytes of data`);
    }
  }

  private async get(n: number, most?: number): Promise<Uint8Array> {
    return (await this.session.channel0.transmit({ cla: 0, ins: INS.GET_DATA, p1: DO.OBJECT, p2: n, ne: 65536, most, secret: true })).data;
  }
}

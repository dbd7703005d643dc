import { COLLECT_EVERY_BYTES, TransferGc, exposedMinorGc } from './transfer-gc';

describe('TransferGc', () => {
  it('asks for a collection each time another COLLECT_EVERY_BYTES has passed, never for less', () => {
    let collections = 0;
    const gc = new TransferGc(() => collections++);
    gc.count(COLLECT_EVERY_BYTES - 1);
    expect(collections).toBe(0);
    gc.count(1);
    expect(collections).toBe(1);
    for (let i = 0; i < 64; i++) gc.count(64 * 1024); // 4 MiB more
    expect(collections).toBe(3);
    gc.count(5 * COLLECT_EVERY_BYTES); // one big chunk: one collection
    expect(collections).toBe(4);
  });

  it("uses the process's collector only when it is exposed (--expose-gc), and does nothing without one", () => {
    const exposed = typeof (globalThis as { gc?: unknown }).gc === 'function';
    expect(typeof exposedMinorGc()).toBe(exposed ? 'function' : 'undefined');
    expect(() => new TransferGc(undefined).count(10 * COLLECT_EVERY_BYTES)).not.toThrow();
  });
});

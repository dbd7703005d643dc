import { JsonDiverter, JsonStringBytes, JsonSyntaxError, type JsonPath, type StringSink } from './json-divert';

/** The images[*].image rule the HTTP door uses. */
const wantsImage = (path: JsonPath) =>
  path.length >= 3 && path.at(-1) === 'image' && typeof path.at(-2) === 'number' && path.at(-3) === 'images';

/** A sink that keeps the raw content it was given, and is replaced by {kept: <raw>}. */
class KeepSink implements StringSink {
  raw: Buffer[] = [];
  aborted = false;
  write(raw: Buffer): void {
    this.raw.push(raw);
  }
  async end(): Promise<unknown> {
    return { kept: JSON.parse(`"${Buffer.concat(this.raw).toString('utf8')}"`) as unknown };
  }
  abort(): void {
    this.aborted = true;
  }
}

async function run(
  text: string,
  piece: number,
  minBytes = 6,
  divert: (path: JsonPath, head: Buffer) => StringSink | undefined = () => new KeepSink(),
): Promise<{ value: unknown; diverted: JsonPath[]; rest: string }> {
  const diverted: JsonPath[] = [];
  const diverter = new JsonDiverter({
    wants: wantsImage,
    divert: (path, head) => {
      const sink = divert(path, head);
      if (sink) diverted.push(path);
      return sink;
    },
    minBytes,
  });
  const raw = Buffer.from(text, 'utf8');
  for (let i = 0; i < raw.length; i += piece) await diverter.feed(raw.subarray(i, i + piece));
  const { text: rest, attach } = await diverter.finish();
  const value = JSON.parse(rest) as unknown;
  attach(value);
  return { value, diverted, rest };
}

/** What JSON.parse gives, with every long images[*].image replaced as the sink would. */
function expected(text: string, minBytes = 6): unknown {
  const walk = (value: unknown, path: JsonPath): unknown => {
    // (The samples' wanted strings are clearly shorter or longer than minBytes, escaped or not.)
    if (typeof value === 'string' && wantsImage(path) && Buffer.byteLength(value) > minBytes) return { kept: value };
    if (Array.isArray(value)) return value.map((v, i) => walk(v, [...path, i]));
    if (typeof value === 'object' && value !== null) {
      for (const key of Object.keys(value))
        (value as Record<string, unknown>)[key] = walk((value as Record<string, unknown>)[key], [...path, key]);
    }
    return value;
  };
  return walk(JSON.parse(text), []);
}

const SAMPLES = [
  '{"workflow": {"1": {"class_type": "X", "inputs": {"a": 1.5e3, "b": [true, false, null], "c": "q\\"uote\\\\"}}}, "images": [{"name": "a.png", "image": "aGVsbG8gd29ybGQ="}]}',
  '{"input": {"images": [{"image": "AAAAAAAA", "name": "x"}, {"name": "y", "image": "short"}, {"name": "z", "image": "aGVs\\/bG8\\n"}]}}',
  '{"payload": {"input": {"images": [{"name": "n", "image": "data:image/png;base64,iVBORw0KGgo"}]}}, "auth_data": {"cost": 100.0}}',
  '  {"images": [{"image": "not here", "nested": {"images": [{"image": "deeper one"}]}}], "image": "top level is not wanted"}  ',
  '{"images": {"0": {"image": "an object, not an array"}}, "list": ["images", "image", {"images": [1, {"image": "AAAAAAAAAA"}]}]}',
  '{"im\\u0061ges": [{"\\u0069mage": "escaped keys still name the place"}]}',
  '{"images": [{"image": "first"}], "images": [{"image": "the duplicate key wins"}]}',
  '{"__proto__": {"polluted": true}, "images": [{"image": "ünïcödé ✓ 😀 text"}]}',
  '[{"images": [{"image": "a root array"}]}, "x", 1, [[], {}]]',
  '{"k": "a string with {[,:]} and \\"images\\": [{\\"image\\": \\"no\\"}]", "images": [{"image": "yes, this one"}]}',
];

describe('JsonDiverter: the same value as JSON.parse, long images[*].image strings diverted', () => {
  test.each([1, 2, 3, 7, 64, 100000])('in pieces of %i bytes', async (piece) => {
    for (const text of SAMPLES) {
      const { value } = await run(text, piece);
      expect(value).toEqual(expected(text));
    }
  });

  test('__proto__ stays an own property, as JSON.parse makes it', async () => {
    const { value } = await run(SAMPLES[7]!, 3);
    expect(Object.getPrototypeOf(value)).toBe(Object.prototype);
    expect(Object.keys(value as object)).toContain('__proto__');
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  test('only the diverted content leaves the text; short strings and URLs stay in it', async () => {
    const text =
      '{"images": [{"image": "tiny"}, {"image": "http://example.com/long/enough/url"}, {"image": "QUJDREVGR0hJSktMTU5PUA=="}]}';
    const { value, diverted, rest } = await run(text, 5, 8, (_path, head) =>
      head.toString().startsWith('http') ? undefined : new KeepSink(),
    );
    expect(diverted).toEqual([['images', 2, 'image']]);
    expect(rest).not.toContain('QUJD');
    expect(value).toEqual({
      images: [
        { image: 'tiny' },
        { image: 'http://example.com/long/enough/url' },
        { image: { kept: 'QUJDREVGR0hJSktMTU5PUA==' } },
      ],
    });
  });

  test('length is counted as in the text: escapes count whole', async () => {
    const { value } = await run('{"images": [{"image": "\\u0041\\u0041"}]}', 1);
    expect(value).toEqual({ images: [{ image: { kept: 'AA' } }] });
  });

  test('malformed text stays malformed', async () => {
    for (const bad of [
      '{"images": [{"image": "AAAAAAAAAAAA"}]',
      '{"images": [{"image": "AAAAAAAAAAAA}]}',
      '{"a": 1,}',
      '{"images": [{"image": "AAAAAAAA" "x"}]}',
    ]) {
      await expect(run(bad, 3)).rejects.toThrow(SyntaxError);
    }
  });

  test('abort lets go of the string being diverted', async () => {
    const sink = new KeepSink();
    const diverter = new JsonDiverter({ wants: wantsImage, divert: () => sink, minBytes: 2 });
    await diverter.feed(Buffer.from('{"images": [{"image": "AAAAAAAA'));
    diverter.abort();
    expect(sink.aborted).toBe(true);
  });
});

describe('JsonStringBytes', () => {
  const bytesOf = (raw: string, piece: number) => {
    const reader = new JsonStringBytes();
    const parts: Buffer[] = [];
    const buf = Buffer.from(raw, 'utf8');
    for (let i = 0; i < buf.length; i += piece) parts.push(reader.push(buf.subarray(i, i + piece)));
    reader.end();
    return Buffer.concat(parts).toString('latin1');
  };

  test.each([1, 2, 5, 100])('decodes escapes cut anywhere (pieces of %i bytes)', (piece) => {
    expect(bytesOf('ab\\/cd\\n\\r\\t\\u0041\\u00e9\\"\\\\ ', piece)).toBe('ab/cd\n\r\tA\x80"\\ ');
    expect(bytesOf('é', piece)).toBe('\x80\x80');
  });

  test.each(['a\\x', 'a\\u12G4', 'a\u0001b', 'a\\'])('%j breaks JSON: a syntax error', (raw) => {
    expect(() => bytesOf(raw, 1)).toThrow(JsonSyntaxError);
  });
});

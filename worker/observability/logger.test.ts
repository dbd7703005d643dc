import { createLogger, redactLine } from './logger';

/** A logger writing into an array of parsed lines. */
function capture(): { lines: Array<Record<string, unknown>>; logger: ReturnType<typeof createLogger> } {
  const lines: Array<Record<string, unknown>> = [];
  const logger = createLogger('info', { write: (line: string) => void lines.push(JSON.parse(line)) });
  return { lines, logger };
}

describe('log redaction', () => {
  it('censors secret values at any depth and in any letter case, keeping the rest', () => {
    const { lines, logger } = capture();
    logger.info(
      {
        jobId: 'j1',
        secret: 'top-secret-1',
        s3: { accessKeyId: 'AKIA-2', config: { headers: { Authorization: 'Bearer tok-3', accept: 'json' } } },
        list: [{ API_KEY_COMFY_ORG: 'comfy-4' }, { mtoken: 5 }],
        quoted: { signature: 'a"b\\c-6' },
        headers: { 'X-Api-Key': 'hdr-10', Cookie: 'sid=cookie-11' },
      },
      'done',
    );
    const text = JSON.stringify(lines[0]);
    for (const leaked of ['top-secret-1', 'AKIA-2', 'tok-3', 'comfy-4', '"mtoken":5', 'a\\"b', '-6', 'hdr-10', 'cookie-11'])
      expect(text).not.toContain(leaked);
    expect(lines[0]).toMatchObject({
      jobId: 'j1',
      msg: 'done',
      secret: '[redacted]',
      s3: { accessKeyId: '[redacted]', config: { headers: { Authorization: '[redacted]', accept: 'json' } } },
      list: [{ API_KEY_COMFY_ORG: '[redacted]' }, { mtoken: '[redacted]' }],
      quoted: { signature: '[redacted]' },
    });
  });

  it('censors a secret whose value is an object, inside a serialized error, and in child bindings', () => {
    const { lines, logger } = capture();
    const err = Object.assign(new Error('upload failed'), { config: { headers: { authorization: 'Basic creds-7' } } });
    logger.child({ apiKey: 'child-8' }).error({ err, secretAccessKey: { nested: 'obj-9' } }, 'failed');
    const text = JSON.stringify(lines[0]);
    for (const leaked of ['creds-7', 'child-8', 'obj-9']) expect(text).not.toContain(leaked);
    expect(lines[0]).toMatchObject({
      apiKey: '[redacted]',
      secretAccessKey: '[redacted]',
      err: { message: 'upload failed', config: { headers: { authorization: '[redacted]' } } },
    });
  });

  it('changes nothing but the secret values: repeated keys and large integers stay as written', () => {
    const line = '{"jobId":"A","jobId":"B","n":12345678901234567890123,"secret":{"a":[1,"}]\\"",{"b":2}]},"after":true}\n';
    expect(redactLine(line)).toBe('{"jobId":"A","jobId":"B","n":12345678901234567890123,"secret":"[redacted]","after":true}\n');
    expect(redactLine('{"mtoken":-1.5e3,"x":[{"apiKey":null}]}\n')).toBe(
      '{"mtoken":"[redacted]","x":[{"apiKey":"[redacted]"}]}\n',
    );
  });

  it('censors a very long secret, and a line cut short, without throwing', () => {
    const long = `{"secret":"${'x'.repeat(9_000_000)}","msg":"m"}\n`;
    expect(redactLine(long)).toBe('{"secret":"[redacted]","msg":"m"}\n');
    expect(redactLine('{"secret":"unterminated\n')).toBe('{"secret":"[redacted]"\n');
  });

  it('leaves a line without secrets as it is, and keys that merely contain a secret word', () => {
    const line = '{"level":30,"jobId":"x","secrets":"kept","has_secret":true,"msg":"the \\"secret\\": word in text"}\n';
    expect(redactLine(line)).toBe(line);
  });
});

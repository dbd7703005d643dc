import { guardedLookup } from './address-guard';
import { serve } from '../../test/support/http-server';
import { checkRedirect, createOutboundClient, download, proxyApplies } from './outbound';

describe('redirects', () => {
  test('to a private IP literal or a non-http scheme are refused; public ones pass', () => {
    expect(() => checkRedirect({ protocol: 'http:', hostname: '169.254.169.254' }, false)).toThrow(
      'private address 169.254.169.254',
    );
    expect(() => checkRedirect({ protocol: 'http:', hostname: '[::1]' }, false)).toThrow('private address ::1');
    expect(() => checkRedirect({ protocol: 'file:', hostname: '' }, false)).toThrow('redirect to a file: URL refused');
    expect(() => checkRedirect({ protocol: 'https:', hostname: '8.8.8.8' }, false)).not.toThrow();
    expect(() => checkRedirect({ protocol: 'http:', hostname: '10.0.0.1' }, true)).not.toThrow();
  });
});

test('the connect-time lookup refuses names that resolve to private addresses', async () => {
  const err = await new Promise<NodeJS.ErrnoException | null>((resolve) => guardedLookup('localhost', {}, (e) => resolve(e)));
  expect(err?.code).toBe('EPRIVATEADDRESS');
});

test('HTTP(S)_PROXY applies unless NO_PROXY names the host', () => {
  const env = { HTTPS_PROXY: 'http://proxy:3128', NO_PROXY: 'internal.example,.corp' };
  expect(proxyApplies(new URL('https://api.example.com/x'), env)).toBe(true);
  expect(proxyApplies(new URL('https://internal.example/x'), env)).toBe(false);
  expect(proxyApplies(new URL('https://s3.corp/x'), env)).toBe(false);
  expect(proxyApplies(new URL('http://api.example.com/x'), env)).toBe(false); // no HTTP_PROXY
});

test('a proxy named by a private host name is used (only the target is judged, and the proxy sees it)', async () => {
  const seen: string[] = [];
  const proxy = await serve((req, res) => {
    seen.push(req.url ?? '');
    res.writeHead(200, { 'content-type': 'image/png' });
    res.end('via-proxy');
  });
  const port = new URL(proxy.url).port;
  const saved = process.env.HTTP_PROXY;
  process.env.HTTP_PROXY = `http://localhost:${port}`;
  try {
    const client = createOutboundClient({ allowPrivate: false });
    const { bytes } = await download(client, 'http://images.example/cat.png', { maxBytes: 1000, timeoutMs: 2000 });
    expect(bytes.toString()).toBe('via-proxy');
    expect(seen).toEqual(['http://images.example/cat.png']);
  } finally {
    if (saved === undefined) delete process.env.HTTP_PROXY;
    else process.env.HTTP_PROXY = saved;
    await proxy.close();
  }
});

test('through a proxy redirects are not followed (the worker cannot check where they lead)', async () => {
  const proxy = await serve((_req, res) => {
    res.writeHead(302, { location: 'http://localhost:9/internal' });
    res.end();
  });
  const saved = process.env.HTTP_PROXY;
  process.env.HTTP_PROXY = `http://localhost:${new URL(proxy.url).port}`;
  try {
    const client = createOutboundClient({ allowPrivate: false });
    await expect(download(client, 'http://images.example/moved.png', { maxBytes: 1000, timeoutMs: 2000 })).rejects.toThrow(
      'answered HTTP 302',
    );
  } finally {
    if (saved === undefined) delete process.env.HTTP_PROXY;
    else process.env.HTTP_PROXY = saved;
    await proxy.close();
  }
});

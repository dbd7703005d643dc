import { assertPublicHttpUrl, isPrivateAddress } from './address-guard';

describe('isPrivateAddress', () => {
  test.each([
    '127.0.0.1',
    '10.1.2.3',
    '172.16.0.1',
    '172.31.255.255',
    '192.168.1.1',
    '169.254.169.254',
    '100.64.0.1',
    '0.0.0.0',
    '::1',
    '::',
    'fe80::1',
    'fd00::1',
    '::ffff:127.0.0.1',
    '::ffff:10.0.0.1',
    'not-an-ip',
  ])('%s is private', (address) => expect(isPrivateAddress(address)).toBe(true));
  test.each([
    '8.8.8.8',
    '1.1.1.1',
    '172.32.0.1',
    '2606:4700:4700::1111',
    '::ffff:8.8.8.8',
    '64:ff9b::808:808',
    '2002:808:808::1',
  ])('%s is public', (address) => expect(isPrivateAddress(address)).toBe(false));
});

describe('assertPublicHttpUrl', () => {
  const deny = { allowPrivate: false };
  test('refuses non-http schemes, naming the field', async () => {
    await expect(assertPublicHttpUrl('file:///etc/passwd', 'input.images[0].image', deny)).rejects.toMatchObject({
      status: 400,
      field: 'input.images[0].image',
      message: expect.stringContaining('must be an http or https URL'),
    });
  });
  test('refuses loopback, metadata and localhost names', async () => {
    for (const url of [
      'http://127.0.0.1/x.png',
      'http://169.254.169.254/latest',
      'http://localhost:8188/view',
      'http://[::1]/',
    ]) {
      await expect(assertPublicHttpUrl(url, 'f', deny)).rejects.toMatchObject({
        status: 400,
        message: expect.stringContaining('private'),
      });
    }
  });
  test('ALLOW_PRIVATE_URLS lets them through', async () => {
    await expect(assertPublicHttpUrl('http://127.0.0.1/x.png', 'f', { allowPrivate: true })).resolves.toBeInstanceOf(URL);
  });
  test('public IP literal passes', async () => {
    await expect(assertPublicHttpUrl('https://8.8.8.8/a.png', 'f', deny)).resolves.toBeInstanceOf(URL);
  });
});

import { JobEvents } from './events';
import type { JobRecord } from './types';

test('a listener that throws does not stop the others, and is reported; once-listeners fire once', () => {
  const failures: string[] = [];
  const events = new JobEvents((_err, event) => failures.push(event));
  const seen: string[] = [];
  events.on('finished', () => {
    throw new Error('broken observer');
  });
  events.on('finished', (job) => seen.push(`on:${job.id}`));
  events.once('finished', (job) => seen.push(`once:${job.id}`));
  events.emit('finished', { id: 'a' } as JobRecord);
  events.emit('finished', { id: 'b' } as JobRecord);
  expect(seen).toEqual(['on:a', 'once:a', 'on:b']);
  expect(failures).toEqual(['finished', 'finished']);
});

// Starts the HTTP door on API_HOST:API_PORT.
import type { StartDoor } from '../door';
import { ANSWER_DRAIN_MS, close, listen } from '../listen';
import { createHttpServer } from './app';

export const startHttpDoor: StartDoor = async (core) => {
  const server = createHttpServer(core);
  const url = await listen(server, core.config.http.host, core.config.http.port, 'API_HOST/API_PORT');
  return { url, stop: () => close(server, ANSWER_DRAIN_MS) };
};

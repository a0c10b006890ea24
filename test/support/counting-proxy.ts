// A loopback HTTP proxy in front of the back office that counts the GETs under one path: how often the
// gates asked for something (one sync for many lanes, one fare-table fetch per round).
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export async function countingProxy(target: string, countedPath: string): Promise<{ url: string; count: () => number; server: Server }> {
  let n = 0;
  const to = new URL(target);
  const server = createServer((req, res) => {
    if (req.method === 'GET' && req.url?.startsWith(countedPath)) n++;
    const up = request({ host: to.hostname, port: to.port, method: req.method, path: req.url, headers: req.headers }, (r) => {
      res.writeHead(r.statusCode ?? 502, r.headers);
      r.pipe(res);
    });
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, count: () => n, server };
}

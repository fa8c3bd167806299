// A TCP proxy on 127.0.0.1 in front of a tickcast, for the browser tests: it can drop every
// connection through it (a player's network going away) and delay each direction (a player far
// away). The page is loaded through it, so its WebSocket goes through it too.
import net from "node:net";

/** Starts a proxy to `targetUrl` (http://HOST:PORT); resolves to { url, drop(), setDelay(),
 * setTarget(), close() }. `delayMs` is added to every chunk, each way, in order. */
export async function startProxy(targetUrl, { delayMs = 0 } = {}) {
  let target = new URL(targetUrl);
  const open = new Set();
  const server = net.createServer((client) => {
    const upstream = net.connect(Number(target.port), target.hostname);
    for (const socket of [client, upstream]) {
      open.add(socket);
      socket.on("close", () => open.delete(socket));
      socket.on("error", () => {});
    }
    const pipe = (from, to) => {
      const later = (f) => (delayMs > 0 ? setTimeout(f, delayMs) : f());
      from.on("data", (chunk) => later(() => to.destroyed || to.write(chunk)));
      from.on("close", () => later(() => to.destroy()));
    };
    pipe(client, upstream);
    pipe(upstream, client);
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    /** Cuts every connection through the proxy; new ones are served as before. */
    drop: () => open.forEach((socket) => socket.destroy()),
    /** From now on, every chunk waits `ms` each way. */
    setDelay: (ms) => {
      delayMs = ms;
    },
    /** New connections go to `url` (a restarted server); open ones stay where they are. */
    setTarget: (url) => {
      target = new URL(url);
    },
    close: () => {
      open.forEach((socket) => socket.destroy());
      server.close();
    },
  };
}

// A TCP proxy for the interop scripts (scenario.mjs, delta.mjs).
import net from "node:net";

// A TCP proxy that can drop every connection abruptly and refuse new ones for a while.
export function flakyProxy(targetPort) {
  const sockets = new Set();
  let refusing = false;
  let accepted = 0;
  const server = net.createServer((downstream) => {
    if (refusing) return downstream.destroy();
    accepted += 1;
    const upstream = net.connect(targetPort, "127.0.0.1");
    for (const s of [downstream, upstream]) {
      sockets.add(s);
      s.on("error", () => {});
      s.on("close", () => sockets.delete(s));
    }
    downstream.pipe(upstream);
    upstream.pipe(downstream);
    downstream.on("close", () => upstream.destroy());
    upstream.on("close", () => downstream.destroy());
  });
  return new Promise((resolve) =>
    server.listen(0, "127.0.0.1", () =>
      resolve({
        port: server.address().port,
        get accepted() {
          return accepted;
        },
        cut() {
          refusing = true;
          for (const s of sockets) s.resetAndDestroy ? s.resetAndDestroy() : s.destroy();
        },
        restore() {
          refusing = false;
        },
        close() {
          this.cut();
          server.close();
        },
      }),
    ),
  );
}

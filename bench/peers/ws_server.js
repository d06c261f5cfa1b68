// Baseline: Node's `ws`, same message convention as aiohttp_server.py.
//   node ws_server.js PORT
"use strict";
const { WebSocketServer } = require("ws");

const wss = new WebSocketServer({ host: "127.0.0.1", port: Number(process.argv[2]), perMessageDeflate: false });
const rooms = new Map();

wss.on("connection", (ws) => {
  const joined = [];
  ws.on("message", (raw, isBinary) => {
    if (isBinary) return;
    const data = raw.toString();
    const head = data[0];
    if (head === "E") {
      ws.send(data);
    } else if (head === "S") {
      const room = data.slice(1);
      if (!rooms.has(room)) rooms.set(room, new Set());
      rooms.get(room).add(ws);
      joined.push(room);
      ws.send("ok");
    } else if (head === "R") {
      const space = data.indexOf(" ");
      const members = rooms.get(data.slice(1, space));
      const body = data.slice(space + 1);
      if (members) for (const member of members) member.send(body);
    } else {
      for (const client of wss.clients) client.send(data);
    }
  });
  ws.on("close", () => {
    for (const room of joined) rooms.get(room).delete(ws);
  });
});

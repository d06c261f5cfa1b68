// Fossil deltas made by hubbub, applied by centrifuge-js (npm, unchanged) exactly as it
// applies the ones it receives: through the codec of each build (a client that never
// connects lends it; the codec is not exported on its own).
// Usage: node fossil.mjs < cases.json
//   cases: [{source, delta, json}], source and delta in base64; json: the delta goes as the
//   JSON protocol sends it (a JSON string, which the SDK encodes to UTF-8), else as bytes.
// Prints a JSON list: per case {target} (base64) or {error}.
import { Centrifuge as JsonCentrifuge } from "centrifuge";
import { Centrifuge as ProtobufCentrifuge } from "centrifuge/build/protobuf";

const codecs = {
  json: new JsonCentrifuge("ws://127.0.0.1:9/connection/websocket")._codec,
  protobuf: new ProtobufCentrifuge("ws://127.0.0.1:9/connection/websocket")._codec,
};
const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const cases = JSON.parse(Buffer.concat(chunks).toString("utf-8"));
const decoder = new TextDecoder("utf-8", { fatal: true });
const out = cases.map(({ source, delta, json }) => {
  const base = new Uint8Array(Buffer.from(source, "base64"));
  const bytes = new Uint8Array(Buffer.from(delta, "base64"));
  try {
    if (json) {
      // The JSON protocol: the delta as a string (the server's JSON string, parsed).
      const pub = JSON.parse(JSON.stringify({ delta: true, data: decoder.decode(bytes) }));
      const { newPrevValue } = codecs.json.applyDeltaIfNeeded(pub, base);
      return { target: Buffer.from(newPrevValue).toString("base64") };
    }
    const { newPrevValue } = codecs.protobuf.applyDeltaIfNeeded({ delta: true, data: bytes }, base);
    return { target: Buffer.from(newPrevValue).toString("base64") };
  } catch (err) {
    return { error: String(err) };
  }
});
console.log(JSON.stringify(out));

#!/usr/bin/env node
// MQTT.js (Node.js) over WebSocket, driven by a script on the command line, for
// tests/integration/test_websocket.py.
//
//   node mqttjs_client.mjs [options] URL CLIENT_ID VERSION STEP...
//
// URL is ws://HOST:PORT/PATH or wss://HOST:PORT/PATH; VERSION is 4 (MQTT 3.1.1) or 5. Options:
//   --ca FILE        trust this CA certificate (wss)
//   --insecure       do not verify the server's certificate (wss)
//   --timeout S      bound for the whole run, connection included (default 20)
//   --keepalive S    the CONNECT keep-alive (default 30)
//   --print-max N    print the payload (base64) of received messages up to N bytes (default 65536;
//                    a message's size and SHA-256 are always printed)
// Steps, run in order after the CONNACK:
//   sub FILTER QOS              subscribe, wait for the SUBACK
//   unsub FILTER                unsubscribe, wait for the UNSUBACK
//   pub TOPIC QOS PAYLOAD       publish a UTF-8 payload; wait for PUBACK / PUBCOMP at QoS 1 / 2
//   pub-file TOPIC QOS FILE     publish the bytes of FILE
//   pub-many TOPIC QOS N PREFIX publish N messages PREFIX0 ... PREFIX<N-1>, one after the other
//   recv M                      wait until M messages have been received since the start
//   sleep MS                    wait MS milliseconds (e.g. to see nothing more arrives)
//
// stdout: one JSON object per line, as things happen: {"event":"connected",...},
// {"event":"subscribed",...}, {"event":"published",...}, {"event":"message","topic",...,"qos",
// "retain","size","sha256","payload_b64"}, and last {"event":"done","received":N}. Received
// messages are printed whenever they arrive, whatever step runs. Exit status: 0 when every step
// ran and the client disconnected cleanly; 1 on an error (a message on stderr); 2 on bad usage;
// 3 on the timeout.

import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import mqtt from "mqtt";

const ARITY = { sub: 2, unsub: 1, pub: 3, "pub-file": 3, "pub-many": 4, recv: 1, sleep: 1 };

function usage(message) {
  process.stderr.write(`mqttjs_client: ${message}\n` +
    "usage: node mqttjs_client.mjs [--ca FILE] [--insecure] [--timeout S] [--keepalive S] " +
    "[--print-max N] URL CLIENT_ID VERSION STEP...\n");
  process.exit(2);
}

function parseArgs(argv) {
  const options = { ca: null, insecure: false, timeout: 20, keepalive: 30, printMax: 65536 };
  const positional = [];
  let i = 0;
  while (i < argv.length && positional.length < 3) {
    const arg = argv[i++];
    const value = () => (i < argv.length ? argv[i++] : usage(`${arg} needs a value`));
    if (arg === "--ca") options.ca = value();
    else if (arg === "--insecure") options.insecure = true;
    else if (arg === "--timeout") options.timeout = Number(value());
    else if (arg === "--keepalive") options.keepalive = Number(value());
    else if (arg === "--print-max") options.printMax = Number(value());
    else if (arg.startsWith("--")) usage(`unknown option ${arg}`);
    else positional.push(arg);
  }
  if (positional.length < 3) usage("URL, CLIENT_ID and VERSION are required");
  const [url, clientId, version] = positional;
  if (!/^wss?:\/\//.test(url)) usage(`not a ws:// or wss:// URL: ${url}`);
  if (version !== "4" && version !== "5") usage(`VERSION must be 4 or 5, not ${version}`);
  if (!(options.timeout > 0)) usage("--timeout must be a positive number");
  const steps = [];
  while (i < argv.length) {
    const name = argv[i++];
    if (!(name in ARITY)) usage(`unknown step ${name}`);
    const args = argv.slice(i, i + ARITY[name]);
    if (args.length < ARITY[name]) usage(`step ${name} needs ${ARITY[name]} arguments`);
    i += ARITY[name];
    steps.push({ name, args });
  }
  return { url, clientId, version: Number(version), options, steps };
}

function qosOf(text) {
  const qos = Number(text);
  if (![0, 1, 2].includes(qos)) usage(`QoS must be 0, 1 or 2, not ${text}`);
  return qos;
}

function emit(object) {
  process.stdout.write(`${JSON.stringify(object)}\n`);  // synchronous on a pipe (Linux)
}

function fail(message, status = 1) {
  process.stderr.write(`mqttjs_client: ${message}\n`);
  process.exit(status);
}

const { url, clientId, version, options, steps } = parseArgs(process.argv.slice(2));
let waitingFor = "the CONNACK";
let received = 0;
const receivedWaiters = [];
let finished = false;

setTimeout(() => fail(`timed out after ${options.timeout} s waiting for ${waitingFor} ` +
                      `(received ${received} messages)`, 3), options.timeout * 1000);

const connectOptions = {
  clientId,
  protocolVersion: version,
  clean: true,
  keepalive: options.keepalive,
  reconnectPeriod: 0,  // one connection: a lost one is an error
  connectTimeout: options.timeout * 1000,
};
if (options.ca) connectOptions.ca = readFileSync(options.ca);
if (options.insecure) connectOptions.rejectUnauthorized = false;

const client = mqtt.connect(url, connectOptions);

client.on("error", (error) => fail(`error while waiting for ${waitingFor}: ${error.message}`));
client.on("close", () => {
  if (!finished) fail(`connection closed while waiting for ${waitingFor}`);
});
client.on("disconnect", (packet) => {
  fail(`the server sent DISCONNECT (reason ${packet.reasonCode}) while waiting for ${waitingFor}`);
});
client.on("message", (topic, payload, packet) => {
  received += 1;
  const message = {
    event: "message", topic, qos: packet.qos, retain: packet.retain, size: payload.length,
    sha256: createHash("sha256").update(payload).digest("hex"),
  };
  if (payload.length <= options.printMax) message.payload_b64 = payload.toString("base64");
  emit(message);
  while (receivedWaiters.length && receivedWaiters[0].count <= received) {
    receivedWaiters.shift().resolve();
  }
});

function receivedAtLeast(count) {
  if (received >= count) return Promise.resolve();
  return new Promise((resolve) => {
    receivedWaiters.push({ count, resolve });
    receivedWaiters.sort((a, b) => a.count - b.count);
  });
}

async function publish(topic, qos, payload) {
  await client.publishAsync(topic, payload, { qos });
  emit({ event: "published", topic, qos, size: payload.length,
         sha256: createHash("sha256").update(payload).digest("hex") });
}

async function run(step) {
  const [a, b, c, d] = step.args;
  waitingFor = `step ${step.name} ${step.args.join(" ")}`.slice(0, 200);
  switch (step.name) {
    case "sub": {
      const granted = await client.subscribeAsync(a, { qos: qosOf(b) });
      emit({ event: "subscribed", filter: a, granted: granted.map((g) => g.qos) });
      break;
    }
    case "unsub":
      await client.unsubscribeAsync(a);
      emit({ event: "unsubscribed", filter: a });
      break;
    case "pub":
      await publish(a, qosOf(b), Buffer.from(c, "utf8"));
      break;
    case "pub-file":
      await publish(a, qosOf(b), readFileSync(c));
      break;
    case "pub-many": {
      const qos = qosOf(b);
      const count = Number(c);
      for (let n = 0; n < count; n++) await publish(a, qos, Buffer.from(`${d}${n}`, "utf8"));
      break;
    }
    case "recv":
      await receivedAtLeast(Number(a));
      break;
    case "sleep":
      await new Promise((resolve) => setTimeout(resolve, Number(a)));
      break;
    default:
      throw new Error(`unknown step ${step.name}`);
  }
}

client.on("connect", async (connack) => {
  emit({ event: "connected", url, version, sessionPresent: connack.sessionPresent,
         reasonCode: connack.reasonCode ?? connack.returnCode ?? 0 });
  try {
    for (const step of steps) await run(step);
    waitingFor = "the end of the connection";
    finished = true;
    await client.endAsync();
    emit({ event: "done", received });
    process.exit(0);
  } catch (error) {
    fail(`${waitingFor}: ${error.message}`);
  }
});

#!/usr/bin/env node
// Opens tests/js/browser/index.html in Debian's headless Chromium (/usr/bin/chromium, driven by
// playwright-core: no browser is downloaded), for tests/integration/test_websocket.py.
//
//   node browser_driver.mjs --ws URL --sub FILTER --pub TOPIC [--payload TEXT] --expect TEXT
//                           [--version 4|5] [--id CLIENT_ID] [--timeout S] [--chromium PATH]
//
// It serves the page and MQTT.js's browser bundle (node_modules/mqtt/dist/mqtt.min.js) from a
// static HTTP server of its own on 127.0.0.1 (a free port), opens the page with the query
// parameters, and waits until the page has subscribed to FILTER and published PAYLOAD to TOPIC
// (its #status says "subscribed", its #published is filled): then it prints
// {"event":"subscribed",...} on stdout. Then it waits until the page lists (in #received) a
// message whose payload is TEXT, prints {"event":"received","messages":[{topic,payload}...]} and
// exits 0. On a page error, a timeout (default 20 s for the whole run) or a browser that does not
// start, it prints what it has on stderr and exits 1 (2: bad usage). Chromium runs with a fresh
// temporary profile, without network services of its own (the machine has no network), and is
// closed, and the profile removed, before exit.

import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const HERE = dirname(fileURLToPath(import.meta.url));
const FILES = {
  "/": ["browser/index.html", "text/html; charset=utf-8"],
  "/index.html": ["browser/index.html", "text/html; charset=utf-8"],
  "/mqtt.min.js": ["node_modules/mqtt/dist/mqtt.min.js", "text/javascript; charset=utf-8"],
};
const CHROMIUM_ARGS = [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
  "--disable-default-apps", "--disable-extensions", "--no-default-browser-check",
  "--disable-features=MediaRouter,OptimizationHints,Translate",
];

function usage(message) {
  process.stderr.write(`browser_driver: ${message}\n` +
    "usage: node browser_driver.mjs --ws URL --sub FILTER --pub TOPIC [--payload TEXT] " +
    "--expect TEXT [--version 4|5] [--id CLIENT_ID] [--timeout S] [--chromium PATH]\n");
  process.exit(2);
}

function parseArgs(argv) {
  const options = { payload: "hello from the browser", version: "4", timeout: 20,
                    chromium: "/usr/bin/chromium", id: null };
  const names = { "--ws": "ws", "--sub": "sub", "--pub": "pub", "--payload": "payload",
                  "--expect": "expect", "--version": "version", "--id": "id",
                  "--timeout": "timeout", "--chromium": "chromium" };
  for (let i = 0; i < argv.length; i += 2) {
    const key = names[argv[i]];
    if (!key) usage(`unknown argument ${argv[i]}`);
    if (i + 1 >= argv.length) usage(`${argv[i]} needs a value`);
    options[key] = argv[i + 1];
  }
  for (const key of ["ws", "sub", "pub", "expect"]) {
    if (!options[key]) usage(`--${key} is required`);
  }
  options.timeout = Number(options.timeout);
  if (!(options.timeout > 0)) usage("--timeout must be a positive number");
  return options;
}

function emit(object) {
  process.stdout.write(`${JSON.stringify(object)}\n`);
}

function serve() {
  const server = createServer((request, response) => {
    const path = new URL(request.url, "http://127.0.0.1").pathname;
    const file = FILES[path];
    if (request.method !== "GET" || !file) {
      response.writeHead(404, { "content-type": "text/plain" }).end("not found\n");
      return;
    }
    try {
      const body = readFileSync(join(HERE, file[0]));
      response.writeHead(200, { "content-type": file[1], "cache-control": "no-store" }).end(body);
    } catch (error) {
      response.writeHead(500, { "content-type": "text/plain" }).end(`${error.message}\n`);
    }
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve(server));
  });
}

async function pageState(page) {
  return page.evaluate(() => ({
    status: document.getElementById("status")?.textContent ?? "(no #status)",
    published: document.getElementById("published")?.textContent ?? "",
    received: [...document.querySelectorAll("#received li")].map(
      (li) => ({ topic: li.dataset.topic, payload: li.dataset.payload })),
  }));
}

// Polls the page until `done(state)` is true; throws on a page error or at `deadline`.
async function waitFor(page, what, deadline, done) {
  for (;;) {
    const state = await pageState(page);
    if (state.status.startsWith("error") || state.status === "closed") {
      throw new Error(`the page says "${state.status}" while waiting for ${what}; ` +
                      `received ${JSON.stringify(state.received)}`);
    }
    if (done(state)) return state;
    if (Date.now() >= deadline) {
      throw new Error(`timed out waiting for ${what}: status "${state.status}", published ` +
                      `"${state.published}", received ${JSON.stringify(state.received)}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

const options = parseArgs(process.argv.slice(2));
const deadline = Date.now() + options.timeout * 1000;
let server = null;
let context = null;
const profile = mkdtempSync(join(tmpdir(), "tinymq-chromium-"));
let status = 1;

// A last-resort bound, should the browser itself hang: the profile then stays behind in /tmp.
setTimeout(() => {
  process.stderr.write(`browser_driver: still running ${options.timeout + 10} s after the start\n`);
  process.exit(1);
}, (options.timeout + 10) * 1000).unref();

try {
  server = await serve();
  const base = `http://127.0.0.1:${server.address().port}`;
  context = await chromium.launchPersistentContext(profile, {
    executablePath: options.chromium,
    headless: true,
    args: CHROMIUM_ARGS,
    timeout: Math.max(1000, deadline - Date.now()),
  });
  const page = context.pages()[0] ?? await context.newPage();
  page.on("console", (message) => process.stderr.write(`page console: ${message.text()}\n`));
  page.on("pageerror", (error) => process.stderr.write(`page error: ${error.message}\n`));
  // Only the local server and the broker: anything else would be a request to the outside.
  await page.route((url) => url.hostname !== "127.0.0.1" && url.protocol.startsWith("http"),
                   (route) => route.abort());
  const query = new URLSearchParams({ ws: options.ws, sub: options.sub, pub: options.pub,
                                      payload: options.payload, version: options.version });
  if (options.id) query.set("id", options.id);
  await page.goto(`${base}/index.html?${query}`, { timeout: Math.max(1000, deadline - Date.now()) });
  const subscribed = await waitFor(page, "the subscription and the publish", deadline,
                                   (s) => s.status === "subscribed" && s.published !== "");
  emit({ event: "subscribed", status: subscribed.status, published: subscribed.published });
  const state = await waitFor(page, `a message "${options.expect}"`, deadline,
                              (s) => s.received.some((m) => m.payload === options.expect));
  emit({ event: "received", messages: state.received });
  status = 0;
} catch (error) {
  process.stderr.write(`browser_driver: ${error.message}\n`);
} finally {
  try {
    if (context) await context.close();
  } catch (error) {
    process.stderr.write(`browser_driver: closing the browser: ${error.message}\n`);
  }
  if (server) server.close();
  rmSync(profile, { recursive: true, force: true });
}
process.exit(status);

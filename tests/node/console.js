#!/usr/bin/env node
// The web console and its demos in a real Chromium, as a person uses them:
//
//   node tests/node/console.js http://127.0.0.1:8199 [SCREENSHOT_DIR]
//
// Checks: the console shows the host the browser used in its URLs and has a
// favicon; its counters and charts move under traffic (pubsub subscribers and
// messages, pairing channels); the pubsub test page relays a message, and its
// history panel replays and recovers what it missed (a /feed/ channel); the
// pairing demo creates a channel in one pane, joins it from the other and
// exchanges messages both ways; every page holds at 390 px wide (no
// horizontal scrolling). Screenshots go to SCREENSHOT_DIR when given.
//
// Environment: SWITCHBOARD_CHROMIUM (default /usr/bin/chromium; Playwright
// never downloads a browser here). Exit status: 0 when all checks pass, 1 when
// one failed (the reason on stderr), 2 on bad usage. The last stdout line is
// `console: OK {json}` on success.
"use strict";

const path = require("path");
const { chromium } = require("playwright-core");

const STEP_TIMEOUT_MS = 20_000;
const WHOLE_RUN_TIMEOUT_MS = 150_000;

function log(...parts) {
  console.error(new Date().toISOString().slice(11, 23), ...parts);
}

function check(cond, what) {
  if (!cond) throw new Error("check failed: " + what);
}

async function text(page, selector) {
  return (await page.textContent(selector)).trim();
}

async function waitForNumber(page, selector, pred, what) {
  await page.waitForFunction(
    ([sel, src]) => {
      const el = document.querySelector(sel);
      const n = el ? Number(el.textContent) : NaN;
      return !Number.isNaN(n) && new Function("n", "return " + src)(n);
    },
    [selector, pred],
    { timeout: STEP_TIMEOUT_MS, polling: 100 },
  ).catch((e) => {
    throw new Error(`waiting for ${what} (${selector} where ${pred}): ${e.message}`);
  });
}

async function noHorizontalScroll(page, what) {
  const widths = await page.evaluate(() => ({
    scroll: document.documentElement.scrollWidth,
    client: document.documentElement.clientWidth,
  }));
  check(widths.scroll <= widths.client + 1, `${what} fits 390 px (scrollWidth ${widths.scroll} > ${widths.client})`);
}

async function main() {
  const base = process.argv[2];
  const shots = process.argv[3] || null;
  if (!base) {
    console.error("usage: node console.js http://HOST:PORT [SCREENSHOT_DIR]");
    process.exit(2);
  }
  const host = new URL(base).host;
  const browser = await chromium.launch({
    executablePath: process.env.SWITCHBOARD_CHROMIUM || "/usr/bin/chromium",
    args: ["--no-sandbox", "--headless", "--disable-gpu", "--no-first-run", "--disable-background-networking"],
  });
  const summary = {};
  try {
    const desktop = await browser.newContext({ viewport: { width: 1200, height: 900 } });
    const consolePage = await desktop.newPage();
    await consolePage.goto(base + "/");
    // The real host in the URLs, and a favicon.
    const urls = await consolePage.$$eval("code.url", (els) => els.map((e) => e.textContent));
    check(urls.some((u) => u === `ws://${host}/pubsub/<channel>`), `pubsub URL shows the host: ${urls}`);
    check(urls.some((u) => u === `ws://${host}/v1/ws/`), `pairing URL shows the host: ${urls}`);
    check(!urls.some((u) => u.includes("HOST")), `no placeholder host: ${urls}`);
    const icon = await consolePage.evaluate(async () => {
      const link = document.querySelector("link[rel=icon]");
      const r = await fetch(link.href);
      return { status: r.status, type: r.headers.get("content-type") };
    });
    check(icon.status === 200 && icon.type === "image/svg+xml", `favicon: ${JSON.stringify(icon)}`);
    summary.urls = urls;
    // The links to the ops endpoints point at the bound ops listener and work.
    const opsLinks = await consolePage.$$eval("a[href$='/metrics'], a[href$='/healthz']", (els) => els.map((e) => e.href));
    check(opsLinks.length === 2, `links to /metrics and /healthz: ${opsLinks}`);
    for (const link of opsLinks) {
      const r = await fetch(link);
      const body = await r.text();
      check(r.status === 200 && (body.startsWith("ok") || body.includes("# HELP switchboard_")), `${link} answers: ${r.status}`);
    }
    summary.ops = opsLinks;
    await waitForNumber(consolePage, "#connections", "n === 0", "no connections yet");

    // Traffic: the pubsub test page (a subscriber) plus messages sent from it.
    const pubsub = await desktop.newPage();
    await pubsub.goto(base + "/pubsub/demo");
    await pubsub.waitForFunction(() => document.getElementById("status").textContent === "subscribed", null, {
      timeout: STEP_TIMEOUT_MS,
    });
    for (let i = 0; i < 5; i++) {
      await pubsub.fill("#msg", "hello " + i);
      await pubsub.press("#msg", "Enter");
    }
    await pubsub.waitForFunction(() => document.getElementById("log").textContent.includes("hello 4"), null, {
      timeout: STEP_TIMEOUT_MS,
    });
    log("pubsub test page relayed its messages");
    await waitForNumber(consolePage, "#connections", "n >= 1", "the connection counter");
    await waitForNumber(consolePage, "#svc-pubsub-subscribers", "n >= 1", "pubsub subscribers");
    await waitForNumber(consolePage, "#svc-pubsub-channels", "n >= 1", "pubsub channels");
    await waitForNumber(consolePage, "#svc-pubsub-messages", "n >= 5", "pubsub messages");
    // A burst over several seconds (not awaited) so the messages/s reading and the chart move.
    await pubsub.evaluate(() => {
      const ws = new WebSocket(location.href.replace(/^http/, "ws"));
      ws.onopen = async () => {
        for (let i = 0; i < 120; i++) {
          ws.send("burst " + i);
          await new Promise((r) => setTimeout(r, 50));
        }
      };
    });
    await waitForNumber(consolePage, "#rate", "n > 0", "messages/s");
    await consolePage.waitForFunction(
      () => document.querySelector("#chart-connections polyline").getAttribute("points").split(" ").length >= 2,
      null,
      { timeout: STEP_TIMEOUT_MS },
    );
    summary.afterPubsub = await consolePage.evaluate(() => ({
      connections: document.getElementById("connections").textContent,
      rate: document.getElementById("rate").textContent,
      messages: document.getElementById("svc-pubsub-messages").textContent,
    }));
    log("console counters moved:", JSON.stringify(summary.afterPubsub));

    // The pairing demo: create in one pane, join from the other, talk both ways.
    const pairing = await desktop.newPage();
    await pairing.goto(base + "/demo/pairing");
    await pairing.click("#create");
    await pairing.waitForFunction(() => document.getElementById("creator-state").textContent.startsWith("in channel "), null, {
      timeout: STEP_TIMEOUT_MS,
    });
    const id = await pairing.inputValue("#join-id");
    check(/^[A-Za-z0-9_-]{22}$/.test(id), `the channel id is filled in: ${id}`);
    await pairing.click("#join");
    await pairing.waitForFunction(
      (cid) => document.getElementById("joiner-state").textContent === "in channel " + cid,
      id,
      { timeout: STEP_TIMEOUT_MS },
    );
    await pairing.fill("#creator-text", "hello from A");
    await pairing.press("#creator-text", "Enter");
    await pairing.waitForFunction(() => document.getElementById("joiner-log").textContent.includes("← hello from A"), null, {
      timeout: STEP_TIMEOUT_MS,
    });
    await pairing.fill("#joiner-text", "hello from B");
    await pairing.click("#joiner-send");
    await pairing.waitForFunction(() => document.getElementById("creator-log").textContent.includes("← hello from B"), null, {
      timeout: STEP_TIMEOUT_MS,
    });
    log("pairing demo exchanged messages in channel", id);
    await waitForNumber(consolePage, "#svc-pairing-channels", "n === 1", "pairing channels");
    await waitForNumber(consolePage, "#svc-pairing-connections", "n === 2", "pairing connections");
    summary.pairingChannel = id;
    if (shots) {
      await consolePage.screenshot({ path: path.join(shots, "console.png"), fullPage: true });
      await pairing.screenshot({ path: path.join(shots, "pairing-demo.png"), fullPage: true });
    }

    // The history panel of a channel that keeps history (/feed/ in the test's config):
    // connect with last and envelopes, drop, publish, reconnect with since.
    const hist = await desktop.newPage();
    await hist.goto(base + "/pubsub/feed/demo");
    await hist.waitForFunction(() => document.getElementById("status").textContent === "subscribed", null, {
      timeout: STEP_TIMEOUT_MS,
    });
    for (const m of ["one", "two"]) {
      await hist.fill("#msg", m);
      await hist.press("#msg", "Enter");
    }
    await hist.waitForFunction(() => document.getElementById("log").textContent.includes("two"), null, {
      timeout: STEP_TIMEOUT_MS,
    });
    await hist.fill("#h-last", "5");
    await hist.click("#h-connect");
    await hist.waitForFunction(
      () => {
        const t = document.getElementById("h-log").textContent;
        return t.includes("2 replayed") && /#\d+  two/.test(t);
      },
      null,
      { timeout: STEP_TIMEOUT_MS },
    );
    await hist.click("#h-drop");
    check((await text(hist, "#h-status")) === "disconnected", "the history connection dropped");
    await hist.fill("#msg", "three");
    await hist.press("#msg", "Enter");
    await hist.waitForFunction(() => document.getElementById("log").textContent.includes("three"), null, {
      timeout: STEP_TIMEOUT_MS,
    });
    await hist.click("#h-since");
    await hist.waitForFunction(
      () => {
        const t = document.getElementById("h-log").textContent;
        return t.includes("1 replayed") && /#\d+  three/.test(t);
      },
      null,
      { timeout: STEP_TIMEOUT_MS },
    );
    summary.historyPosition = await text(hist, "#h-pos");
    log("pubsub history panel recovered the missed message at", summary.historyPosition);
    if (shots) await hist.screenshot({ path: path.join(shots, "pubsub-history.png"), fullPage: true });

    // 390 px wide (a phone): nothing scrolls sideways.
    const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 1 });
    const small = await phone.newPage();
    await small.goto(base + "/");
    await waitForNumber(small, "#connections", "n >= 1", "the phone console's counters");
    await noHorizontalScroll(small, "the console");
    if (shots) await small.screenshot({ path: path.join(shots, "console-390.png"), fullPage: true });
    const smallPairing = await phone.newPage();
    await smallPairing.goto(base + "/demo/pairing");
    await noHorizontalScroll(smallPairing, "the pairing demo");
    if (shots) await smallPairing.screenshot({ path: path.join(shots, "pairing-demo-390.png"), fullPage: true });
    summary.phone = "fits 390 px";
  } finally {
    await browser.close();
  }
  console.log("console: OK " + JSON.stringify(summary));
}

const timer = setTimeout(() => {
  console.error("console.js: the whole run took longer than " + WHOLE_RUN_TIMEOUT_MS + " ms");
  process.exit(1);
}, WHOLE_RUN_TIMEOUT_MS);
main().then(
  () => {
    clearTimeout(timer);
    process.exit(0);
  },
  (e) => {
    console.error("console.js:", e && e.stack ? e.stack : e);
    process.exit(1);
  },
);

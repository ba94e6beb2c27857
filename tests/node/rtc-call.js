#!/usr/bin/env node
// A real video call between two Chromium pages through Switchboard's rtc
// service, as a person would make it on the demo call page:
//
//   node tests/node/rtc-call.js http://127.0.0.1:8199
//
// Two browser contexts (so two cookie jars, two users) open <base>/rtc/call,
// each registers a name, one hosts, the other joins by the host's name. The
// call passes when both RTCPeerConnections reach "connected" and each side's
// remote <video> presents frames (requestVideoFrameCallback fires and getStats
// shows framesDecoded > 0). Chromium's fake camera and microphone stand in
// for real devices.
//
// Environment: SWITCHBOARD_CHROMIUM (default /usr/bin/chromium; Playwright
// never downloads a browser here), SWITCHBOARD_RTC_PREFIX (default /rtc).
// Exit status: 0 on success, 1 when the call failed, 2 on bad usage.
"use strict";

const { chromium } = require("playwright-core");

const STEP_TIMEOUT_MS = 30_000;
const WHOLE_RUN_TIMEOUT_MS = 120_000;
const FLAGS = [
  "--use-fake-ui-for-media-stream",
  "--use-fake-device-for-media-stream",
  "--no-sandbox",
  "--headless",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

function log(...parts) {
  console.error(new Date().toISOString().slice(11, 23), ...parts);
}

async function register(page, name) {
  await page.waitForSelector("#register-box:not([hidden])", { timeout: STEP_TIMEOUT_MS });
  await page.fill("#name", name);
  await page.click("#register");
  await page.waitForFunction((n) => document.getElementById("me").textContent === n, name, {
    timeout: STEP_TIMEOUT_MS,
  });
  const cookie = await page.evaluate(() => document.cookie);
  if (!cookie.includes("user_username=" + name)) {
    throw new Error(`the identity cookie is not readable from JavaScript: ${JSON.stringify(cookie)}`);
  }
}

async function connected(page, who) {
  await page.waitForFunction(
    () => window.switchboardCall.pc && window.switchboardCall.pc.connectionState === "connected",
    null,
    { timeout: STEP_TIMEOUT_MS, polling: 100 },
  );
  log(who, "peer connection connected");
}

/// Waits for the remote <video> to present a frame; returns its metadata.
async function remoteFrame(page) {
  return page.evaluate(
    (timeoutMs) =>
      new Promise((resolve, reject) => {
        const v = document.getElementById("remote");
        const timer = setTimeout(() => reject(new Error("no remote video frame presented")), timeoutMs);
        v.requestVideoFrameCallback((_now, meta) => {
          clearTimeout(timer);
          resolve({ width: meta.width, height: meta.height, presentedFrames: meta.presentedFrames });
        });
      }),
    STEP_TIMEOUT_MS,
  );
}

/// Polls getStats until the inbound video has decoded frames; returns how many.
async function framesDecoded(page) {
  const deadline = Date.now() + STEP_TIMEOUT_MS;
  for (;;) {
    const n = await page.evaluate(async () => {
      const stats = await window.switchboardCall.pc.getStats();
      let decoded = 0;
      stats.forEach((r) => {
        if (r.type === "inbound-rtp" && r.kind === "video") decoded = Math.max(decoded, r.framesDecoded || 0);
      });
      return decoded;
    });
    if (n > 0) return n;
    if (Date.now() > deadline) throw new Error("getStats shows no decoded video frames");
    await new Promise((r) => setTimeout(r, 250));
  }
}

async function main(base) {
  const prefix = process.env.SWITCHBOARD_RTC_PREFIX ?? "/rtc";
  const url = base.replace(/\/+$/, "") + prefix + "/call";
  const executablePath = process.env.SWITCHBOARD_CHROMIUM || "/usr/bin/chromium";
  // Playwright gives the browser a fresh temporary user-data-dir of its own.
  const browser = await chromium.launch({ executablePath, headless: true, args: FLAGS, timeout: STEP_TIMEOUT_MS });
  try {
    log("chromium", browser.version(), "→", url);
    const stamp = Date.now().toString(36) + Math.random().toString(36).slice(2, 6);
    const names = { host: "host-" + stamp, guest: "guest-" + stamp };
    const pages = {};
    for (const who of ["host", "guest"]) {
      const context = await browser.newContext(); // its own cookie jar
      const page = await context.newPage();
      page.setDefaultTimeout(STEP_TIMEOUT_MS);
      page.on("console", (m) => log(`[${who}] ${m.type()}: ${m.text()}`));
      page.on("pageerror", (e) => log(`[${who}] page error: ${e}`));
      await page.goto(url);
      await register(page, names[who]);
      pages[who] = page;
    }
    log("registered", names.host, "and", names.guest);

    await pages.host.click("#host");
    await pages.host.waitForFunction(() => document.body.dataset.phase === "waiting");
    await pages.guest.fill("#peer", names.host);
    await pages.guest.click("#join");

    await Promise.all([connected(pages.host, "host"), connected(pages.guest, "guest")]);
    const frames = await Promise.all([remoteFrame(pages.host), remoteFrame(pages.guest)]);
    const decoded = await Promise.all([framesDecoded(pages.host), framesDecoded(pages.guest)]);
    const peers = await Promise.all(
      [pages.host, pages.guest].map((p) => p.evaluate(() => window.switchboardCall.peer)),
    );
    if (peers[0] !== names.guest || peers[1] !== names.host) {
      throw new Error(`each side should be in a call with the other: ${JSON.stringify(peers)}`);
    }
    const summary = {
      host: { peer: peers[0], remoteFrame: frames[0], framesDecoded: decoded[0] },
      guest: { peer: peers[1], remoteFrame: frames[1], framesDecoded: decoded[1] },
    };
    console.log("rtc-call: OK " + JSON.stringify(summary));
  } finally {
    await browser.close();
  }
}

const base = process.argv[2];
if (!base || !/^https?:\/\//.test(base)) {
  console.error("usage: node rtc-call.js <base-url, e.g. http://127.0.0.1:8199>");
  process.exit(2);
}
const guard = setTimeout(() => {
  console.error(`rtc-call: FAILED: no result within ${WHOLE_RUN_TIMEOUT_MS} ms`);
  process.exit(1);
}, WHOLE_RUN_TIMEOUT_MS);
main(base).then(
  () => {
    clearTimeout(guard);
    process.exit(0);
  },
  (e) => {
    console.error("rtc-call: FAILED:", (e && e.stack) || e);
    process.exit(1);
  },
);

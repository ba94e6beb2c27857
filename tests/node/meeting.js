#!/usr/bin/env node
// A meeting end to end in a real browser: three members (one admin) on
// Switchboard's meeting page, driven through Playwright as people would use it:
//
//   node tests/node/meeting.js '{"alice":"http://…/meeting/1/KEY","bob":"…","carol":"…"}'
//
// Alice (admin) opens the meeting, everyone chats, Alice posts a poll, all
// three vote (the live tally moves), the poll completes with its results in
// the log, Alice kicks Carol, Bob comes back on a new page (his old page is
// replaced; the new one replays the history), and Alice finishes the meeting.
//
// Environment: SWITCHBOARD_CHROMIUM (default /usr/bin/chromium; Playwright
// never downloads a browser here). Exit status: 0 on success, 1 on failure,
// 2 on bad usage. The last stdout line is "meeting: OK {…}" on success.
"use strict";

const { chromium } = require("playwright-core");

const STEP = 20_000;
const WHOLE_RUN_TIMEOUT_MS = 150_000;
const FLAGS = ["--no-sandbox", "--headless", "--disable-gpu", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync"];

function log(...parts) {
  console.error(new Date().toISOString().slice(11, 23), ...parts);
}

/** Waits until the page shows a chat line with exactly `text`. */
async function sees(page, who, text) {
  await page.waitForFunction(
    (t) => [...document.querySelectorAll("#lines tr.line td.x")].some((td) => td.textContent === t),
    text,
    { timeout: STEP, polling: 50 },
  );
  log(who, "sees", JSON.stringify(text));
}

async function state(page, who, want) {
  await page.waitForFunction((w) => document.getElementById("state").textContent === w, want, {
    timeout: STEP,
    polling: 50,
  });
  log(who, "state", want);
}

async function members(page) {
  return page.$$eval("#members li.member span:first-child", (els) => els.map((e) => e.textContent));
}

async function say(page, text) {
  await page.fill("#text", text);
  await page.press("#text", "Enter");
}

async function main(urls) {
  const executablePath = process.env.SWITCHBOARD_CHROMIUM || "/usr/bin/chromium";
  const browser = await chromium.launch({ executablePath, headless: true, args: FLAGS, timeout: STEP });
  const summary = {};
  try {
    const open = async (who) => {
      const page = await (await browser.newContext()).newPage();
      page.on("console", (m) => log(who, "console:", m.text()));
      await page.goto(urls[who]);
      await state(page, who, "pending");
      return page;
    };
    const alice = await open("alice");
    const bob = await open("bob");
    const carol = await open("carol");
    for (const [who, page] of [["alice", alice], ["bob", bob], ["carol", carol]]) {
      await page.waitForFunction(() => document.querySelectorAll("#members li.member").length === 3, null, { timeout: STEP });
      log(who, "lists", (await members(page)).join(", "));
    }
    if (await bob.isVisible("#admin")) throw new Error("a member sees the admin controls");
    if (!(await alice.isVisible("#admin"))) throw new Error("the admin does not see the controls");

    // Chat.
    await say(bob, "Hello from Bob");
    for (const [w, p] of [["alice", alice], ["bob", bob], ["carol", carol]]) await sees(p, w, "Hello from Bob");

    // Open the meeting.
    await alice.click("#open");
    for (const [w, p] of [["alice", alice], ["bob", bob], ["carol", carol]]) await state(p, w, "open");
    await sees(carol, "carol", "This meeting is now open");

    // A poll everyone votes on.
    await alice.fill("#q", "Approve the budget?");
    const answers = await alice.$$("#admin input.a");
    await answers[0].fill("Yes");
    await answers[1].fill("No");
    await alice.fill("#minutes", "5");
    await alice.click("#newpoll");
    for (const [w, p] of [["alice", alice], ["bob", bob], ["carol", carol]]) {
      await p.waitForSelector("#poll-answers button.vote", { timeout: STEP });
      log(w, "sees the poll");
    }
    await bob.click("#poll-answers button.vote[data-i='0']");
    await alice.waitForFunction(() => document.getElementById("poll-count").textContent.startsWith("1 of 3"), null, { timeout: STEP });
    await alice.waitForSelector(`#members li.has-voted`, { timeout: STEP });
    summary.tallyAfterOne = await alice.textContent("#poll-count");
    await carol.click("#poll-answers button.vote[data-i='1']");
    await alice.waitForFunction(() => document.getElementById("poll-count").textContent.startsWith("2 of 3"), null, { timeout: STEP });
    await alice.click("#poll-answers button.vote[data-i='0']");
    for (const [w, p] of [["alice", alice], ["bob", bob], ["carol", carol]]) {
      await sees(p, w, "All attendees have voted, poll has completed.");
      await sees(p, w, 'Answer "Yes": 2 votes');
      await sees(p, w, 'Answer "No": 1 vote');
      await p.waitForSelector("#poll", { state: "hidden", timeout: STEP });
    }

    // Kick Carol.
    await alice.click("#members li.member:has-text('Carol') button.kick");
    await sees(carol, "carol", "You have been forcibly disconnected from this meeting");
    await state(carol, "carol", "disconnected");
    await alice.waitForFunction(() => document.querySelectorAll("#members li.member").length === 2, null, { timeout: STEP });
    await sees(bob, "bob", "User Carol has been disconnected by Alice Admin");

    // Bob comes back on a new page: the old one is replaced, the new one replays the history.
    const bob2 = await (await browser.newContext()).newPage();
    await bob2.goto(urls.bob);
    await sees(bob, "old bob", "You have connected from a different session. This session is disconnected.");
    await state(bob2, "new bob", "open");
    for (const t of ["Hello from Bob", "Bob voted Yes", 'Answer "Yes": 2 votes']) await sees(bob2, "new bob", t);
    await sees(bob2, "new bob", "Member Bob re-joined the meeting");
    summary.replayedLines = await bob2.$$eval("#lines tr.line", (r) => r.length);

    // Finish.
    await alice.click("#finish");
    await state(bob2, "new bob", "finished");
    await sees(bob2, "new bob", "This meeting is now finished");
    summary.aliceMembers = await members(alice);
    console.log("meeting: OK " + JSON.stringify(summary));
  } finally {
    await browser.close();
  }
}

if (process.argv.length !== 3) {
  console.error("usage: node meeting.js '{\"alice\":URL,\"bob\":URL,\"carol\":URL}'");
  process.exit(2);
}
const timer = setTimeout(() => {
  console.error("meeting: the run took longer than " + WHOLE_RUN_TIMEOUT_MS + " ms");
  process.exit(1);
}, WHOLE_RUN_TIMEOUT_MS);
main(JSON.parse(process.argv[2])).then(
  () => {
    clearTimeout(timer);
    process.exit(0);
  },
  (e) => {
    console.error("meeting: FAILED", e && e.stack ? e.stack : e);
    process.exit(1);
  },
);

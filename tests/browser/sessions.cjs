// Real-browser check of the dashboard's sessions panel (stream ownership
// mode), driven by the Rust test `dashboard::browser_sessions_move`: six
// sessions started from the page are owned by the three workers; killing
// the one owning most moves its sessions to the others (the moves table
// names it), and every session finishes. Screenshot at SCREENSHOT.
//
// usage: node sessions.cjs URL SCREENSHOT
// env:   PLAYWRIGHT_MODULES (node_modules holding playwright-core), CHROMIUM (default /usr/bin/chromium)
"use strict";
const { withPage, step } = require("./page.cjs");

const [url, screenshot] = process.argv.slice(2);
if (!url || !screenshot || !process.env.PLAYWRIGHT_MODULES) {
  console.error("usage: PLAYWRIGHT_MODULES=DIR node sessions.cjs URL SCREENSHOT");
  process.exit(2);
}

withPage(async (page) => {
  await page.goto(url);
  await page.waitForFunction(() => !document.querySelector("#sessions-panel").hidden
    && document.querySelectorAll("#sessions-workers button").length === 3);
  step("the sessions panel shows three workers");

  await page.click("#sessions-start");
  await page.waitForFunction(() => {
    const rows = [...document.querySelectorAll("#sessions tr")];
    return rows.length === 6 && rows.every((row) => /^session-\d$/.test(row.children[1].textContent));
  });
  const owners = await page.$$eval("#sessions tr", (rows) => rows.map((row) => row.children[1].textContent));
  const counts = {};
  for (const owner of owners) counts[owner] = (counts[owner] || 0) + 1;
  const victim = Object.keys(counts).sort((a, b) => counts[b] - counts[a])[0];
  step(`six sessions owned (${JSON.stringify(counts)}); killing ${victim}`);

  await page.click(`#sessions-workers button:text-is("kill ${victim}")`);
  await page.waitForFunction((victim) => {
    const rows = [...document.querySelectorAll("#sessions tr")];
    const moved = [...document.querySelectorAll("#sessions-moves tr")].some((row) => row.children[2].textContent === victim);
    return moved && rows.every((row) => row.children[1].textContent !== victim);
  }, victim);
  await page.screenshot({ path: screenshot, fullPage: true });
  step(`${victim}'s sessions moved to the other workers`);

  await page.waitForFunction(() => document.querySelectorAll("#sessions tr").length === 0
    && /^6 sessions finished/.test(document.querySelector("#sessions-finished").textContent), null, { timeout: 60_000 });
  step("every session finished");
});

// Real-browser check of the `host demo` dashboard, driven by the Rust test
// `dashboard::browser_produce_crash_claim` (tests/tests/it/dashboard.rs):
// headless Debian Chromium via playwright-core. It loads the page, sees a
// POST without the run's token refused (the page's own calls carry it), produces 20
// events, sees both groups process them, crashes worker-a's next 3
// deliveries, waits past the claim threshold, claims them to worker-b, and
// sees pending return to 0 (the analytics panel's totals matching the stream
// throughout); flips the notifications sink down, produces, sees retries,
// flips it up and sees every order notified; then drops NEW_BUILD over the notifications
// plugin's FILE and sees NEW_VERSION in the plugins panel; then saves a
// screenshot.
//
// usage: node dashboard.cjs URL SCREENSHOT.png CLAIM_IDLE_MS FILE NEW_BUILD NEW_VERSION
// env:   PLAYWRIGHT_MODULES (node_modules holding playwright-core), CHROMIUM (default /usr/bin/chromium)
"use strict";
const fs = require("fs");
const { withPage, step } = require("./page.cjs");

const [url, screenshot, claimIdleMs, pluginFile, newBuild, newVersion] = process.argv.slice(2);
const modules = process.env.PLAYWRIGHT_MODULES;
if (!url || !screenshot || !claimIdleMs || !pluginFile || !newBuild || !newVersion || !modules) {
  console.error("usage: PLAYWRIGHT_MODULES=DIR node dashboard.cjs URL SCREENSHOT CLAIM_IDLE_MS FILE NEW_BUILD NEW_VERSION");
  process.exit(2);
}

// A consumer row's number cell, read in the page.
const cell = (group, consumer, field) =>
  `document.querySelector('#group-${group} tr[data-consumer="${consumer}"] [data-field="${field}"]')?.textContent`;
const groupField = (group, field) => `document.querySelector('#group-${group} [data-field="${field}"]')?.textContent`;

withPage(async (page) => {
  await page.goto(url);
  await page.waitForFunction(() => document.querySelector("#status")?.textContent.startsWith("live"));
  await page.waitForSelector('#group-notifications tr[data-consumer="worker-a"]');
  await page.waitForSelector('#group-analytics tr[data-consumer="worker-c"]');
  step("page is live with both groups");

  const tokenless = await page.evaluate(async () => (await fetch("/api/reset", { method: "POST" })).status);
  if (tokenless !== 403) throw new Error(`a POST without the token got HTTP ${tokenless}, not 403`);
  step("a POST without the token is refused");

  await page.fill("#produce-count", "20");
  await page.selectOption("#produce-kind", "order.placed");
  await page.click("#produce");
  await page.waitForFunction(`Number(${cell("analytics", "worker-c", "processed")}) === 20
    && Number(${cell("notifications", "worker-a", "processed")}) + Number(${cell("notifications", "worker-b", "processed")}) === 20
    && ${groupField("notifications", "pending")} === "0" && ${groupField("analytics", "pending")} === "0"
    && ${groupField("notifications", "lag")} === "0" && ${groupField("analytics", "lag")} === "0"`);
  step("both groups processed the 20 events");
  await page.waitForFunction(() => document.querySelector("#analytics-verdict")?.textContent === "match"
    && document.querySelector('#analytics tr[data-key="order.placed"] .c')?.textContent === "20"
    && document.querySelector('#analytics tr[data-key="order.placed"] .ec')?.textContent === "20");
  step("the analytics panel counts 20 placed orders, matching the stream");

  const crash = '#group-notifications tr[data-consumer="worker-a"]';
  await page.fill(`${crash} input.crash-count`, "3");
  await page.click(`${crash} button.crash`);
  await page.waitForFunction(`document.querySelector('${crash} .badges')?.textContent.includes("crash: 3 due")`);
  step("worker-a will drop its next 3 deliveries");

  // Produce until worker-a has taken (and dropped) its 3 deliveries: Redis
  // decides which consumer of the group gets each entry.
  await page.fill("#produce-count", "4");
  for (let round = 0; ; round++) {
    if (round === 30) throw new Error("worker-a never received 3 deliveries");
    await page.click("#produce");
    await page.waitForTimeout(1200);
    const due = await page.evaluate(`document.querySelector('${crash} .badges')?.textContent`);
    if (!due.includes("crash:")) break;
  }
  await page.waitForFunction(`${groupField("notifications", "pending")} === "3" && ${cell("notifications", "worker-a", "pending")} === "3"`);
  step("worker-a holds 3 unacked entries");

  // Past the idle threshold, then claim them to the healthy worker-b.
  await page.waitForTimeout(Number(claimIdleMs) + 500);
  await page.click('#group-notifications tr[data-consumer="worker-b"] button.claim');
  await page.waitForFunction(() => /worker-b claimed 3 entries/.test(document.querySelector("#messages")?.textContent));
  await page.waitForFunction(`${groupField("notifications", "pending")} === "0" && ${groupField("analytics", "pending")} === "0"`);
  step("worker-b claimed 3 entries and pending is back to 0");
  await page.waitForFunction(() => document.querySelector("#analytics-verdict")?.textContent === "match");
  step("the analytics totals still match");

  // The notifications sink down: new orders are retried (the sink counts
  // the 503s it answered), and once it is up again every order is notified.
  const sinkCount = (name) => `Number((document.querySelector("#sink-counts")?.textContent.match(/${name} (\\d+)/) || [])[1])`;
  await page.check("#sink-down");
  await page.waitForFunction(() => document.querySelector("#sink-state")?.textContent === "down");
  await page.fill("#produce-count", "5");
  await page.click("#produce");
  await page.waitForFunction(`${sinkCount("retries while down")} >= 5`);
  step("with the sink down the notifier retried");
  await page.uncheck("#sink-down");
  // This demo's reaper is off (claims are the test's): the retries come back by a claim.
  await page.waitForTimeout(Number(claimIdleMs) + 500);
  await page.click('#group-notifications tr[data-consumer="worker-b"] button.claim');
  await page.waitForFunction(`${sinkCount("received")} === Number(document.querySelector("#stream-length")?.textContent)
    && ${groupField("notifications", "pending")} === "0" && ${groupField("notifications", "lag")} === "0"`);
  const received = await page.evaluate(sinkCount("received"));
  step(`sink up again: every order notified (${received})`);

  // A new build dropped over the plugin file the way deploy tools do it: written beside it, then renamed.
  fs.copyFileSync(newBuild, `${pluginFile}.tmp`);
  fs.renameSync(`${pluginFile}.tmp`, pluginFile);
  const plugin = '#plugins tr[data-group="notifications"]';
  await page.waitForFunction(`document.querySelector('${plugin} .v')?.textContent === "${newVersion}"
    && document.querySelector('${plugin} .r')?.textContent.startsWith("ok")`);
  step(`the plugins panel shows version ${newVersion}`);

  await page.screenshot({ path: screenshot, fullPage: true });
  step(`screenshot saved to ${screenshot}`);
});

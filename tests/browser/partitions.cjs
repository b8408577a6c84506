// Real-browser check of the dashboard of `host demo --partitions N`, driven
// by the Rust test `dashboard::browser_shows_partitions`: the partitions
// panel is shown with one row per partition (stream STREAM:{p} and its
// slot), 12 orders produced from the page spread over the partitions, their
// per-partition counts add up to the stream's length at the top, both
// groups drain them, and the analytics totals match.
//
// usage: node partitions.cjs URL PARTITIONS
// env:   PLAYWRIGHT_MODULES (node_modules holding playwright-core), CHROMIUM (default /usr/bin/chromium)
"use strict";
const { withPage, step } = require("./page.cjs");

const [url, partitions] = process.argv.slice(2);
const modules = process.env.PLAYWRIGHT_MODULES;
if (!url || !partitions || !modules) {
  console.error("usage: PLAYWRIGHT_MODULES=DIR node partitions.cjs URL PARTITIONS");
  process.exit(2);
}

withPage(async (page) => {
  await page.goto(url);
  await page.waitForFunction((n) => !document.querySelector("#partitions-panel").hidden
    && document.querySelectorAll("#partitions tr").length === n, Number(partitions));
  step(`the partitions panel shows ${partitions} partitions`);

  await page.fill("#produce-count", "12");
  await page.selectOption("#produce-kind", "order.placed");
  await page.click("#produce");
  await page.waitForFunction(() => {
    const rows = [...document.querySelectorAll("#partitions tr")];
    const sum = rows.reduce((n, row) => n + Number(row.children[2].textContent), 0);
    const busy = rows.filter((row) => Number(row.children[2].textContent) > 0).length;
    return document.querySelector("#stream-length").textContent === "12" && sum === 12 && busy >= 2
      && rows.every((row) => /\{\d+\}$/.test(row.children[0].textContent) && row.children[1].textContent !== "");
  });
  step("12 orders spread over the partitions, adding up to the stream's length");
  await page.waitForFunction(() => document.querySelector("#analytics-verdict")?.textContent === "match"
    && document.querySelector('#analytics tr[data-key="order.placed"] .c')?.textContent === "12"
    && [...document.querySelectorAll("#partitions tr")].every((row) => /notifications 0 \/ 0 · analytics 0 \/ 0|analytics 0 \/ 0 · notifications 0 \/ 0/.test(row.children[3].textContent)));
  step("both groups drained every partition and the analytics totals match");
});

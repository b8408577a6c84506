// What the dashboard's browser checks share: headless Debian Chromium
// (or $CHROMIUM) through playwright-core from $PLAYWRIGHT_MODULES, one page
// with a 30 s timeout whose script errors fail the check, closed at the end.
"use strict";
const path = require("path");

// Runs `check(page)` on a fresh page; exits 1 with the error when it throws.
function withPage(check) {
  const { chromium } = require(path.join(process.env.PLAYWRIGHT_MODULES, "playwright-core"));
  (async () => {
    const browser = await chromium.launch({
      executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
      args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    });
    try {
      const page = await browser.newPage({ viewport: { width: 1500, height: 1250 } });
      page.setDefaultTimeout(30_000);
      page.on("pageerror", (error) => { console.error(`page error: ${error.message}`); process.exitCode = 1; });
      await check(page);
    } finally {
      await browser.close();
    }
  })().catch((error) => {
    console.error(`browser: FAILED: ${error.stack || error}`);
    process.exit(1);
  });
}

const step = (what) => console.log(`browser: ${what}`);

module.exports = { withPage, step };

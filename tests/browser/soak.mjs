// Keeps a dashboard page open on a live run and samples memory on both sides once a minute:
// the page's JS heap and DOM node count (Chrome DevTools Protocol), the dashboard server's
// resident memory (/proc/PID/status). One JSON line per sample. Not a test (it takes as long
// as it is told): the measurement behind "a page open for 30 minutes holds steady memory".
//   node soak.mjs URL SERVER_PID MINUTES
import { readFileSync } from "node:fs";
import { chromium } from "playwright-core";

const [url, pid, minutes] = process.argv.slice(2);
const rss = p => Number((readFileSync(`/proc/${p}/status`, "utf8").match(/VmRSS:\s+(\d+)/) || [0, 0])[1]);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"],
});
const page = await browser.newPage({ viewport: { width: 1400, height: 2000 } });
await page.goto(url);
await page.waitForSelector('body[data-loaded="1"]');
const cdp = await page.context().newCDPSession(page);
await cdp.send("Performance.enable");
const t0 = Date.now();
for (let i = 0; i <= Number(minutes); i++) {
  await cdp.send("HeapProfiler.collectGarbage");
  const m = Object.fromEntries((await cdp.send("Performance.getMetrics")).metrics.map(x => [x.name, x.value]));
  const version = await page.evaluate(() => document.body.getAttribute("data-version"));
  console.log(JSON.stringify({ minute: i, page_js_heap_mb: +(m.JSHeapUsedSize / 1e6).toFixed(2), page_dom_nodes: m.Nodes,
    server_rss_mb: +(rss(pid) / 1024).toFixed(1), page_version: Number(version), elapsed_s: Math.round((Date.now() - t0) / 1000) }));
  if (i < Number(minutes)) await page.waitForTimeout(60000);
}
await browser.close();

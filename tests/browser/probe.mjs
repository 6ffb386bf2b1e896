// Loads a dashboard page in Debian's headless Chromium (through playwright-core, which
// downloads no browser), waits until the page has drawn its data — and, with --until EXPR,
// until EXPR (evaluated in the page) is true, without reloading: the live updates must bring
// it — then prints what the page shows as one JSON line and saves a screenshot.
//   node probe.mjs URL SCREENSHOT.png [--until EXPR] [--timeout MS]
import { chromium } from "playwright-core";

const [url, shot, ...rest] = process.argv.slice(2);
const opt = (name, dflt) => { const i = rest.indexOf(name); return i >= 0 ? rest[i + 1] : dflt; };
const until = opt("--until", "true");
const timeout = Number(opt("--timeout", "60000"));

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
let code = 0;
try {
  const page = await browser.newPage({ viewport: { width: 1400, height: 2000 } });
  const outside = [];
  page.on("request", r => { if (!r.url().startsWith(new URL(url).origin)) outside.push(r.url()); });
  const errors = [];
  page.on("pageerror", e => errors.push(String(e)));
  const t0 = Date.now();
  await page.goto(url);
  await page.waitForSelector('body[data-loaded="1"]', { timeout });
  const loadMs = Date.now() - t0;
  const firstVersion = await page.evaluate(() => document.body.getAttribute("data-version"));
  console.error("loaded");
  await page.waitForFunction(until, null, { timeout, polling: 250 });
  const facts = await page.evaluate(() => {
    const attr = (sel, a) => [...document.querySelectorAll(sel)].map(e => e.getAttribute(a));
    const points = {};
    for (const c of document.querySelectorAll(".chart")) points[c.id] = Number(c.getAttribute("data-points") || 0);
    return {
      version: document.body.getAttribute("data-version"),
      state: document.getElementById("state").textContent,
      points,
      canvases: document.querySelectorAll(".chart canvas").length,
      roles: [...document.querySelectorAll("#roles tbody tr[data-role]")].map(r => ({
        role: r.dataset.role, version: r.dataset.version, generation: r.dataset.generation, source: r.dataset.source })),
      nodes: [...document.querySelectorAll("#nodes tbody tr[data-node]")].map(r => ({ node: r.dataset.node, up: r.dataset.up === "true" })),
      timeline: attr("#timeline li[data-kind]", "data-kind"),
      group_rollouts: document.querySelectorAll("#group-rollouts tr[data-rollout]").length,
      question: (document.getElementById("group-question") || {}).textContent || null,
    };
  });
  await page.screenshot({ path: shot, fullPage: true });
  console.log(JSON.stringify(Object.assign(facts, { load_ms: loadMs, first_version: firstVersion, outside_requests: outside, page_errors: errors })));
} catch (e) {
  console.error(String(e));
  code = 1;
} finally {
  await browser.close();
}
process.exit(code);

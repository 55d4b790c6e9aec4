// The dashboard in a real browser (headless Chromium driven by playwright-core).
//
//   node tests/ui/dashboard.mjs                 the test (exit 0 = passed)
//   SCREENSHOTS=docs/ui node tests/ui/dashboard.mjs   also writes a screenshot of each page
//
// Env: SCANVAULT_URL (the service, auth enabled, a fleet loaded), ADMIN_KEY, READER_KEY,
// CHROMIUM (default /usr/bin/chromium), UI_TOOLS (where playwright-core and axe-core are
// installed: its node_modules).
import { createRequire } from "node:module";
import { readFileSync, mkdirSync } from "node:fs";
import path from "node:path";

const tools = process.env.UI_TOOLS;
const require = createRequire(tools ? path.join(tools, "node_modules", "x.js") : import.meta.url);
const { chromium } = require("playwright-core");
const axeSource = readFileSync(require.resolve("axe-core/axe.min.js"), "utf8");

const base = process.env.SCANVAULT_URL ?? "http://127.0.0.1:18300";
const adminKey = process.env.ADMIN_KEY;
const readerKey = process.env.READER_KEY;
const shots = process.env.SCREENSHOTS;
if (!adminKey || !readerKey) throw new Error("ADMIN_KEY and READER_KEY are required");
if (shots) mkdirSync(shots, { recursive: true });

let failures = 0;
function check(cond, what) {
  if (cond) {
    console.log(`ok   ${what}`);
  } else {
    failures++;
    console.log(`FAIL ${what}`);
  }
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-dev-shm-usage"],
});
const context = await browser.newContext({ viewport: { width: 1366, height: 900 } });
const page = await context.newPage();

// Every console error, uncaught exception and failed request of every page is a failure.
const problems = [];
page.on("console", (m) => {
  if (m.type() === "error") problems.push(`console: ${m.text()}`);
});
page.on("pageerror", (e) => problems.push(`exception: ${e.message}`));
// A request the browser abandons because the test navigated on (the icon, typically) is
// not a failure of the page.
page.on("requestfailed", (r) => {
  if (r.failure()?.errorText !== "net::ERR_ABORTED") problems.push(`request failed: ${r.url()} (${r.failure()?.errorText})`);
});
page.on("response", (r) => {
  if (r.status() >= 400 && !r.url().includes("/ui/login")) problems.push(`HTTP ${r.status()}: ${r.url()}`);
});

/** Opens a page, checks it loaded cleanly and passes axe's WCAG 2 A/AA rules. */
async function visit(url, name) {
  problems.length = 0;
  const res = await page.goto(base + url);
  check(res.status() === 200, `${name}: ${url} answers 200 (got ${res.status()})`);
  const h1 = await page.locator("h1").first().textContent();
  check(h1 && h1.trim().length > 0, `${name}: has a heading (${h1?.trim()})`);
  await page.evaluate(axeSource);
  const axe = await page.evaluate(() =>
    // eslint-disable-next-line no-undef
    axe.run(document, { runOnly: { type: "tag", values: ["wcag2a", "wcag2aa"] } }),
  );
  const serious = axe.violations.filter((v) => ["serious", "critical"].includes(v.impact));
  check(
    serious.length === 0,
    `${name}: no serious accessibility violations${serious.map((v) => `\n       ${v.id}: ${v.help} (${v.nodes.length}× e.g. ${v.nodes[0]?.target})`).join("")}`,
  );
  check(problems.length === 0, `${name}: no console errors or failed requests ${problems.join("; ")}`);
  if (shots) await page.screenshot({ path: path.join(shots, `${name}.png`) });
}

async function signIn(key) {
  await page.goto(base + "/ui/");
  check(page.url().includes("/ui/login"), "signed out, a page sends to the sign-in form");
  if (shots && key === adminKey) await page.screenshot({ path: path.join(shots, "sign-in.png") });
  await page.fill("#key", key);
  await page.click("form button[type=submit]");
  await page.waitForURL(/\/ui\/(\?.*)?$/);
  check(new URL(page.url()).pathname === "/ui/", "signing in opens the fleet page");
}

/** The number in a stat box of the current page. */
async function stat(label) {
  const box = page.locator(".stat", { has: page.locator(".label", { hasText: new RegExp(`^${label}$`) }) });
  const text = await box.locator(".value").textContent();
  return Number(text.replace(/[^0-9.]/g, ""));
}

// ---------------------------------------------------------------- an admin's session
await signIn(adminKey);
const cookies = await context.cookies();
const session = cookies.find((c) => c.name === "scanvault_session");
check(session && session.httpOnly && session.sameSite === "Strict", "the session cookie is HttpOnly and SameSite=Strict");
check(session && session.expires === -1, "the session cookie is a browser-session cookie");

await visit("/ui/", "fleet");
const line = page.locator("figure.chart svg polyline").first();
const box = await line.boundingBox();
check(box && box.width > 100, `the trend chart draws (a line ${Math.round(box?.width ?? 0)} px wide)`);
const points = (await line.getAttribute("points")).trim().split(/\s+/).length;
check(points > 1, `the trend line has ${points} points`);
await visit("/ui/?interval=week&from=2020-01-01&order=risk", "fleet-weekly-by-risk");

// The CVE to triage: the first of the top vulnerabilities.
const cveId = (await page.locator("#top-h + p + table tbody tr td a").first().textContent()).trim();
check(/^(CVE|GHSA)-/.test(cveId), `the top vulnerabilities list one (${cveId})`);

// Search it.
await page.fill("#q", cveId.toLowerCase());
await page.press("#q", "Enter");
await page.waitForURL(/\/ui\/cve\//);
check(decodeURIComponent(page.url()).endsWith(`/ui/cve/${cveId}`), `searching ${cveId.toLowerCase()} opens its page`);
await visit(`/ui/cve/${encodeURIComponent(cveId)}`, "cve");
const imagesBefore = await stat("Images");
check(imagesBefore > 0, `${cveId} is in ${imagesBefore} images`);
const severityWord = (await page.locator("#ci-h ~ table tbody tr td .sev").first().textContent()).trim();

// Open the first image that carries it.
const imageLink = page.locator("#ci-h ~ table tbody tr td a").first();
const imageHref = await imageLink.getAttribute("href");
await imageLink.click();
await page.waitForURL(/\/ui\/image\?/);
await visit(imageHref, "image");
const label = severityWord[0] + severityWord.slice(1).toLowerCase();
const countBefore = await stat(label);
const rowsOfCve = await page.locator("#find-h ~ table tbody tr", { has: page.locator(`a:text-is("${cveId}")`) }).count();
check(rowsOfCve > 0, `the image lists ${rowsOfCve} ${label} finding(s) of ${cveId}`);
check((await page.locator("figure.chart svg polyline").count()) >= 1, "the image's history chart draws");

// Sorted by critical findings (as scanned: before the suppression below changes counts).
await visit("/ui/images?sort=critical", "images-by-critical");
const crit = await page.locator("table tbody tr td:nth-child(4)").allTextContents();
const sorted = crit.map(Number);
check(sorted.every((v, i) => i === 0 || sorted[i - 1] >= v), "images sorted by critical findings are in descending order");

// Suppress the CVE from its page.
await page.goto(base + `/ui/cve/${encodeURIComponent(cveId)}`);
await page.fill("#s-reason", "not reachable in our images (browser test)");
await page.selectOption("#s-state", "not_affected");
await page.click("#sup-h ~ form button[type=submit]");
await page.waitForURL(/\/ui\/cve\//);
const imagesAfter = await stat("Images");
check(imagesAfter === 0, `after suppressing, ${cveId} counts in ${imagesAfter} images (was ${imagesBefore})`);
await page.goto(base + imageHref);
const countAfter = await stat(label);
check(
  countAfter === countBefore - rowsOfCve,
  `the image's ${label} count drops from ${countBefore} to ${countAfter} (by its ${rowsOfCve} finding(s) of ${cveId})`,
);
const marked = await page.locator("#find-h ~ table tbody tr", { has: page.locator(`a:text-is("${cveId}")`) }).locator(".badge").count();
check(marked === rowsOfCve, "its findings are marked suppressed");

// The other pages.
await visit("/ui/images", "images");
// Request a scan (no worker runs here: it stays queued), see its page, cancel it.
await page.goto(base + "/ui/jobs");
await page.fill("#j-image", "registry.invalid/team/app:1.0");
await page.click("form[action='/ui/jobs'] button[type=submit]");
await page.waitForURL(/\/ui\/jobs\/[0-9a-f-]+$/);
const jobUrl = new URL(page.url()).pathname;
await visit(jobUrl, "job");
check((await page.locator("dl.facts").textContent()).includes("queued"), "the requested job is queued");
await page.click("button:text-is('Cancel')");
await page.waitForURL(new RegExp(jobUrl + "$"));
check((await page.locator("dl.facts").textContent()).includes("cancelled"), "cancelling it from its page works");
check((await page.locator("table tbody tr").count()) >= 2, "its audit trail lists the request and the cancel");
await visit("/ui/jobs", "jobs");
check((await page.locator("table.queue tbody tr:has(th:text-is('adhoc')) td").nth(5).textContent()).trim() === "1", "the queue counts the cancelled ad-hoc job");
await visit("/ui/suppressions", "suppressions");
check((await page.locator("table tbody tr", { hasText: cveId }).count()) === 1, "the suppression is listed");
await visit("/ui/policies", "policies");
await visit("/ui/compliance", "compliance");

// Keyboard: the skip link is the first stop and leads to the content.
await page.goto(base + "/ui/");
await page.keyboard.press("Tab");
check((await page.evaluate(() => document.activeElement?.textContent)) === "Skip to content", "the first Tab stop is the skip link");

// Sign out.
await page.click("text=Sign out");
await page.waitForURL(/\/ui\/login/);
await page.goto(base + "/ui/images");
check(page.url().includes("/ui/login"), "after signing out, pages ask to sign in again");

// ---------------------------------------------------------------- a reader's session
await signIn(readerKey);
await page.goto(base + `/ui/cve/${encodeURIComponent(cveId)}`);
check((await page.locator("#sup-h").count()) === 0, "a reader sees no suppression form");
const csrf = await page.locator("form[action='/ui/logout'] input[name=csrf]").getAttribute("value");
const forged = await page.request.post(base + "/ui/suppressions", {
  form: { csrf, vulnerability: cveId, state: "not_affected", reason: "reader tries" },
  maxRedirects: 0,
});
check(forged.status() === 403, `a reader's suppression is refused with 403 (got ${forged.status()})`);
const noToken = await page.request.post(base + "/ui/logout", { form: { csrf: "wrong" }, maxRedirects: 0 });
check(noToken.status() === 403, `a form without its CSRF token is refused with 403 (got ${noToken.status()})`);
await page.goto(base + "/ui/suppressions");
check((await page.locator("button", { hasText: "Lift" }).count()) === 0, "a reader cannot lift suppressions");

await browser.close();
if (failures > 0) {
  console.log(`${failures} check(s) failed`);
  process.exit(1);
}
console.log("dashboard: every check passed");

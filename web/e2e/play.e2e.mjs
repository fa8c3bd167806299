// The player page end to end in real headless Chromium (Debian's /usr/bin/chromium, driven by
// playwright-core): a real `tickcast up` serving web/dist. Run by scripts/test.sh after the Rust
// build: `npm run e2e` with TICKCAST_BIN set to the tickcast binary.
import { test, after, before } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { createInterface } from "node:readline";
import { chromium } from "playwright-core";

const web = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
const repo = path.dirname(web);
const artifacts = path.join(repo, "target", "web-e2e");
let server;
let base;
let browser;

before(async () => {
  const bin = process.env.TICKCAST_BIN ?? path.join(repo, "target", "debug", "tickcast");
  const data = mkdtempSync(path.join(tmpdir(), "tickcast-web-"));
  server = spawn(bin, ["up", "--listen", "127.0.0.1:0", "--data-dir", data, "--web-dir", path.join(web, "dist")], {
    env: { ...process.env, RUST_LOG: "warn" },
    stdio: ["ignore", "pipe", "inherit"],
  });
  base = await new Promise((resolve, reject) => {
    const lines = createInterface({ input: server.stdout });
    lines.on("line", (line) => {
      const m = line.match(/open\s+(http:\/\/\S+?)\/?$/);
      if (m) resolve(m[1]);
    });
    server.on("exit", (code) => reject(new Error(`tickcast up exited (${code})`)));
  });
  browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: ["--no-sandbox"] });
  mkdirSync(artifacts, { recursive: true });
});

after(async () => {
  await browser?.close();
  server?.kill("SIGTERM");
});

const stepOf = (page) => page.locator("[data-testid=step]").innerText().then(Number);

test("start a game, share it, watch it tick, drop the connection and resume without a hole", async () => {
  const alice = await (await browser.newContext()).newPage();
  await alice.goto(base + "/");
  await alice.getByRole("button", { name: "Start Game" }).click();
  await alice.locator("[data-testid=countdown]").waitFor({ timeout: 10_000 });
  await alice.waitForFunction(() => Number(document.querySelector("[data-testid=step]")?.textContent) >= 5, null, { timeout: 20_000, polling: 100 });

  // A second player, in a context of its own, joins through the share link.
  const link = await alice.locator("[data-testid=share-link]").getAttribute("href");
  const bob = await (await browser.newContext()).newPage();
  await bob.goto(link);
  await bob.waitForFunction(() => Number(document.querySelector("[data-testid=step]")?.textContent) >= 10, null, { timeout: 20_000, polling: 100 });
  assert.ok(Math.abs((await stepOf(alice)) - (await stepOf(bob))) <= 3, "both players see the same game");

  // Drop Alice's connection: the page reconnects, resumes from its last step, shows no hole.
  const before = await stepOf(alice);
  await alice.evaluate(() => window.tickcastSocket.close());
  await alice.waitForFunction((s) => Number(document.querySelector("[data-testid=step]")?.textContent) >= s + 10, before, { timeout: 20_000, polling: 100 });
  const latency = alice.locator("[data-testid=latency]");
  assert.equal(await latency.getAttribute("data-missing"), "0", "no step missing after the resume");
  assert.equal(await latency.getAttribute("data-first-step"), "0", "the chart starts at step 0");
  assert.match(await latency.innerText(), /RTT \d+ ms/);
  assert.ok(Number(await alice.locator("[data-testid=chart]").getAttribute("data-points")) > 10);
  await alice.screenshot({ path: path.join(artifacts, "play.png"), fullPage: true });
});

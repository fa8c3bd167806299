// The player page end to end in real headless Chromium (Debian's /usr/bin/chromium, driven by
// playwright-core): a real `tickcast up` serving web/dist. Run by scripts/test.sh after the Rust
// build: `npm run e2e` with TICKCAST_BIN set to the tickcast binary.
import { test, after, before } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { createInterface } from "node:readline";
import { chromium } from "playwright-core";
import { startProxy } from "./proxy.mjs";

const web = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
const repo = path.dirname(web);
const artifacts = path.join(repo, "target", "web-e2e");
let server;
let base;
let browser;
let bin;
let data;

/** Starts `tickcast up ARGS` on `dir` (a fresh data directory by default); resolves to the
 * process, its URL and the directory. */
async function startServer(args = [], dir = mkdtempSync(path.join(tmpdir(), "tickcast-web-"))) {
  const proc = spawn(bin, ["up", "--listen", "127.0.0.1:0", "--data-dir", dir, "--web-dir", path.join(web, "dist"), ...args], {
    env: { ...process.env, RUST_LOG: "warn" },
    stdio: ["ignore", "pipe", "inherit"],
  });
  const url = await new Promise((resolve, reject) => {
    createInterface({ input: proc.stdout }).on("line", (line) => {
      const m = line.match(/open\s+(http:\/\/\S+?)\/?$/);
      if (m) resolve(m[1]);
    });
    proc.on("exit", (code) => reject(new Error(`tickcast up exited (${code})`)));
  });
  return { proc, url, dir };
}

before(async () => {
  bin = process.env.TICKCAST_BIN ?? path.join(repo, "target", "debug", "tickcast");
  ({ proc: server, url: base, dir: data } = await startServer());
  browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: ["--no-sandbox"] });
  mkdirSync(artifacts, { recursive: true });
});

after(async () => {
  await browser?.close();
  server?.kill("SIGTERM");
});

const stepOf = (page) => page.locator("[data-testid=step]").innerText().then(Number);

test("start a game, share it, watch it tick, drop the connection and resume without a hole", async () => {
  // Alice plays through a proxy, so the test can take her network away.
  const aliceNetwork = await startProxy(base);
  // Closed whatever happens: an open proxy would keep the test process alive.
  try {
    const alice = await (await browser.newContext()).newPage();
    await alice.goto(aliceNetwork.url + "/");
    await alice.getByRole("button", { name: "Start Game" }).click();
    await alice.locator("[data-testid=countdown]").waitFor({ timeout: 10_000 });
    await alice.waitForFunction(() => Number(document.querySelector("[data-testid=step]")?.textContent) >= 5, null, { timeout: 20_000, polling: 100 });

    // A second player, in a context of its own, joins through the share link.
    const link = await alice.locator("[data-testid=share-link]").getAttribute("href");
    const bob = await (await browser.newContext()).newPage();
    await bob.goto(link.replace(aliceNetwork.url, base));
    await bob.waitForFunction(() => Number(document.querySelector("[data-testid=step]")?.textContent) >= 25, null, { timeout: 20_000, polling: 100 });
    // Each sees both players.
    for (const page of [alice, bob]) {
      await page.waitForFunction(() => (document.querySelector("[data-testid=players]")?.textContent ?? "").includes(","), null, { timeout: 10_000, polling: 100 });
    }
    // Both see the same steps with the same values.
    const recent = async (page) =>
      new Map((await page.locator("[data-testid=chart]").getAttribute("data-recent")).split(" ").map((t) => [t.split(":")[0], t]));
    const [seenByAlice, seenByBob] = [await recent(alice), await recent(bob)];
    const common = [...seenByBob.keys()].filter((step) => seenByAlice.has(step));
    assert.ok(common.length >= 5, `both players saw the same recent steps (${common.length} in common)`);
    for (const step of common) assert.equal(seenByBob.get(step), seenByAlice.get(step), `step ${step}`);

    // Drop Alice's connection: the page reconnects, resumes from its last step, shows no hole.
    const before = await stepOf(alice);
    aliceNetwork.drop();
    await alice.waitForFunction((s) => Number(document.querySelector("[data-testid=step]")?.textContent) >= s + 10, before, { timeout: 20_000, polling: 100 });
    const latency = alice.locator("[data-testid=latency]");
    assert.equal(await latency.getAttribute("data-missing"), "0", "no step missing after the resume");
    assert.equal(await latency.getAttribute("data-first-step"), "0", "the chart starts at step 0");
    assert.match(await latency.innerText(), /RTT \d+ ms/);
    assert.ok(Number(await alice.locator("[data-testid=chart]").getAttribute("data-points")) > 10);
    await alice.screenshot({ path: path.join(artifacts, "play.png"), fullPage: true });
  } finally {
    aliceNetwork.close();
  }
});

/** Polls `check` every 100 ms until it returns a value, or fails after `ms`. */
async function eventually(what, check, ms = 30_000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

test("a spectator watches a recorded game re-broadcast by replay serve, verified at the end", async () => {
  const started = await fetch(base + "/edge/game/start", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ userId: "rec", tickMs: 20, countdownMs: 0, maxRounds: 1, minBreakSteps: 20, maxBreakSteps: 30 }),
  }).then((r) => r.json());
  await eventually("the recorded game's end", () => {
    const out = execFileSync(bin, ["replay", "sessions", "--log", `embedded://${data}`, "--json"]).toString();
    return out.split("\n").some((l) => l.includes(started.gameId) && l.includes('"endReason":"max_rounds"'));
  });
  const replay = spawn(bin, ["replay", "serve", "--log", `embedded://${data}`, "--session", started.gameId, "--speed", "2", "--listen", "127.0.0.1:0"], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  try {
    const ws = await new Promise((resolve, reject) => {
      createInterface({ input: replay.stdout }).on("line", (line) => {
        const m = line.match(/on (ws:\/\/\S+)/);
        if (m) resolve(m[1]);
      });
      replay.on("exit", (code) => reject(new Error(`replay serve exited (${code})`)));
    });
    const page = await (await browser.newContext()).newPage();
    await page.goto(`${base}/?watch=${encodeURIComponent(ws)}`);
    await page.locator("[data-testid=ended]").waitFor({ timeout: 30_000 });
    await page.waitForFunction(() => !document.querySelector("[data-testid=verdict]")?.textContent?.includes("verifying"), null, { timeout: 10_000, polling: 100 });
    assert.match(await page.locator("[data-testid=verdict]").innerText(), /^verified/);
    assert.equal(await page.locator("[data-testid=latency]").getAttribute("data-missing"), "0");
    await page.screenshot({ path: path.join(artifacts, "spectator.png"), fullPage: true });
  } finally {
    replay.kill("SIGTERM");
  }
});

test("an adaptive game slows to a far player's round trips: the page shows the pace, marks the change, checks every scheduledAt", async () => {
  // The page plays 60 ms away each way (a 120 ms round trip): the game goes to about 240 ms a step.
  const far = await startProxy(base, { delayMs: 60 });
  try {
    const started = await fetch(base + "/edge/game/start", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ userId: "host", tickMs: 100, maxTickMs: 400, countdownMs: 1000, maxRounds: 5, minBreakSteps: 10, maxBreakSteps: 15 }),
    }).then((r) => r.json());
    assert.equal(started.maxTickMs, 400);
    const page = await (await browser.newContext()).newPage();
    await page.goto(`${far.url}/?join=${encodeURIComponent(started.gameId)}`);
    await page.waitForFunction(() => (document.querySelector("[data-testid=chart]")?.getAttribute("data-pace-changes") ?? "") !== "", null, { timeout: 30_000, polling: 100 });
    const pace = page.locator("[data-testid=pace]");
    const shown = Number((await pace.innerText()).match(/\d+/)[0]);
    assert.ok(shown >= 200 && shown <= 300, `the pace shown: ${shown} ms`);
    assert.match(await pace.locator("..").innerText(), /adaptive, 100–400 ms/);
    // Marked on the chart once its first step is drawn (its frame comes before that step's tick).
    await page.locator("[data-testid=chart] .pace-change").first().waitFor({ state: "attached", timeout: 10_000 });
    await page.locator("[data-testid=ended]").waitFor({ timeout: 90_000 });
    await page.waitForFunction(() => !document.querySelector("[data-testid=verdict]")?.textContent?.includes("verifying"), null, { timeout: 10_000, polling: 100 });
    assert.match(await page.locator("[data-testid=verdict]").innerText(), /^verified: .* and every scheduledAt follows the game's [2-9] pace\(s\)$/);
    assert.equal(await page.locator("[data-testid=latency]").getAttribute("data-missing"), "0");
    await page.screenshot({ path: path.join(artifacts, "pace.png"), fullPage: true });
  } finally {
    far.close();
  }
});

test("two players find a match: each page measures the regions, shows its search, and both play the game they were matched into", async () => {
  const pages = [];
  for (let i = 0; i < 2; i++) {
    const page = await (await browser.newContext()).newPage();
    await page.goto(base + "/");
    pages.push(page);
  }
  await pages[0].getByRole("button", { name: "Find a match" }).click();
  const searching = pages[0].locator("[data-testid=searching]");
  await searching.waitFor({ timeout: 10_000 });
  assert.match(await searching.innerText(), /^searching… \(\d+ s\)$/);
  // The other page's lobby counts the player searching, per region.
  await pages[1].locator("[data-testid=searching-counts]").waitFor({ timeout: 10_000 });
  assert.match(await pages[1].locator("[data-testid=searching-counts]").innerText(), /Searching for a match: .*\d/);
  await pages[1].getByRole("button", { name: "Find a match" }).click();
  for (const page of pages) {
    await page.waitForFunction(() => Number(document.querySelector("[data-testid=step]")?.textContent) >= 3, null, { timeout: 30_000, polling: 100 });
    await page.waitForFunction(() => (document.querySelector("[data-testid=players]")?.textContent ?? "").includes(","), null, { timeout: 10_000, polling: 100 });
  }
  const [first, second] = pages.map((page) => new URL(page.url()).searchParams.get("join"));
  assert.ok(first && first === second, `one game for both (${first}, ${second})`);
  await pages[1].screenshot({ path: path.join(artifacts, "match.png"), fullPage: true });
});

test("client-side tick mode: the page computes the ticks from the seed the edge returned", async () => {
  const local = await startServer(["--use-tick-broadcaster", "false"]);
  try {
    const page = await (await browser.newContext()).newPage();
    await page.goto(local.url + "/");
    await page.getByRole("button", { name: "Start Game" }).click();
    await page.locator("[data-testid=local-mode]").waitFor({ timeout: 10_000 });
    await page.waitForFunction(() => Number(document.querySelector("[data-testid=step]")?.textContent) >= 10, null, { timeout: 20_000, polling: 100 });
    const latency = page.locator("[data-testid=latency]");
    assert.equal(await latency.getAttribute("data-missing"), "0");
    assert.equal(await latency.getAttribute("data-first-step"), "0");
  } finally {
    local.proc.kill("SIGTERM");
  }
});


test("a slow connection: the page shows the warning, then the kick, plainly", async () => {
  // 60 ms each way: a 120 ms round trip, between the warning (100) and the kick (150).
  const network = await startProxy(base, { delayMs: 60 });
  try {
    const page = await (await browser.newContext()).newPage();
    await page.goto(network.url + "/");
    await page.getByRole("button", { name: "Start Game" }).click();
    const latency = page.locator("[data-testid=latency]");
    // Deadlines, not paces: samples taken while the debug server lags are not judged.
    await page.locator("[data-testid=latency].latency-warning").waitFor({ timeout: 60_000 });
    assert.match(await latency.innerText(), /warning: your connection is slow/);
    assert.equal(await page.locator("[data-testid=phase]").innerText(), "running", "warned, still playing");
    network.setDelay(250);
    await page.locator("[data-testid=latency].latency-kicked").waitFor({ timeout: 60_000 });
    assert.match(await latency.innerText(), /removed from the game \(latency too high/);
    assert.equal(await page.locator("[data-testid=phase]").innerText(), "kicked");
    await page.screenshot({ path: path.join(artifacts, "kicked.png"), fullPage: true });
  } finally {
    network.close();
  }
});

test("after a restart of tickcast up the page resumes the game by itself, without a missing step", async () => {
  const first = await startServer();
  const network = await startProxy(first.url);
  let second;
  try {
    const page = await (await browser.newContext()).newPage();
    await page.goto(network.url + "/");
    await page.getByRole("button", { name: "Start Game" }).click();
    await page.waitForFunction(() => Number(document.querySelector("[data-testid=step]")?.textContent) >= 10, null, { timeout: 20_000, polling: 100 });
    // The same data directory, no secret configured: the page's ticket stays valid.
    first.proc.kill("SIGTERM");
    await new Promise((resolve) => first.proc.on("exit", resolve));
    const before = await stepOf(page);
    second = await startServer([], first.dir);
    network.setTarget(second.url);
    await page.waitForFunction((s) => Number(document.querySelector("[data-testid=step]")?.textContent) >= s + 20, before, { timeout: 30_000, polling: 100 });
    const latency = page.locator("[data-testid=latency]");
    assert.equal(await latency.getAttribute("data-missing"), "0", "no step missing across the restart");
    assert.equal(await latency.getAttribute("data-first-step"), "0");
    assert.equal(await page.locator("[role=alert]").count(), 0, "no error shown");
  } finally {
    network.close();
    second?.proc.kill("SIGTERM");
  }
});

test("the lobby lists the games waiting and running, and one click joins one", async () => {
  const startGame = (userId) =>
    fetch(`${base}/edge/game/start`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ userId, countdownMs: 20000 }),
    }).then((r) => r.json());
  const first = await startGame("lobby-ann");
  const second = await startGame("lobby-ben");
  const page = await (await browser.newContext()).newPage();
  await page.goto(base + "/");
  const row = (game) => page.locator(`[data-testid=lobby-game][data-game-id="${game.gameId}"]`);
  for (const game of [first, second]) await row(game).waitFor({ timeout: 20_000 });
  assert.match(await row(first).innerText(), /waiting/);
  assert.match(await row(first).innerText(), /lobby-ann/);
  await row(second).getByRole("button", { name: "Join" }).click();
  await page.locator("[data-testid=countdown]").waitFor({ timeout: 10_000 });
  assert.ok(page.url().includes(`join=${second.gameId}`), page.url());
  // The lobby, refreshed, shows the player now in that game.
  const other = await (await browser.newContext()).newPage();
  await other.goto(base + "/");
  await other.waitForFunction(
    (id) => (document.querySelector(`[data-testid=lobby-game][data-game-id="${id}"]`)?.textContent ?? "").includes("playing:"),
    second.gameId,
    { timeout: 20_000, polling: 200 },
  );
  await page.screenshot({ path: path.join(artifacts, "lobby-joined.png") });
  await other.screenshot({ path: path.join(artifacts, "lobby.png") });
});

test("a game drained while the page plays it moves to another region and ends on the page, verified, with no step missing", async () => {
  const token = "e2e-admin";
  const drained = await startServer(["--regions", "eu-west-1,eu-central-1", "--admin-token", token]);
  try {
    const started = await fetch(drained.url + "/edge/game/start", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ userId: "host", preferredRegion: "eu-west-1", tickMs: 50, countdownMs: 0, maxRounds: 3, minBreakSteps: 30, maxBreakSteps: 40 }),
    }).then((r) => r.json());
    assert.equal(started.region, "eu-west-1");
    const page = await (await browser.newContext()).newPage();
    await page.goto(`${drained.url}/?join=${started.gameId}`);
    await page.waitForFunction(() => Number(document.querySelector("[data-testid=step]")?.textContent) >= 10, null, { timeout: 20_000, polling: 100 });
    const answer = await fetch(drained.url + "/admin/regions/eu-west-1/drain", { method: "POST", headers: { authorization: `Bearer ${token}` } });
    assert.equal(answer.status, 200);
    assert.equal((await answer.json()).sessionsMoving, 1);
    await page.locator("[data-testid=ended]").waitFor({ timeout: 30_000 });
    await page.waitForFunction(() => !document.querySelector("[data-testid=verdict]")?.textContent?.includes("verifying"), null, { timeout: 10_000, polling: 100 });
    assert.match(await page.locator("[data-testid=verdict]").innerText(), /^verified/);
    const latency = page.locator("[data-testid=latency]");
    assert.equal(await latency.getAttribute("data-missing"), "0", "no step missing across the move");
    assert.equal(await latency.getAttribute("data-first-step"), "0");
    const regions = await fetch(drained.url + "/edge/regions").then((r) => r.json());
    assert.equal(regions.states["eu-west-1"], "drained");
  } finally {
    drained.proc.kill("SIGTERM");
  }
});

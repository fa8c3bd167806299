// @tickcast/client against a real `tickcast up` (TICKCAST_BIN), installed from its packed
// tarball as a user installs it (test/pack-and-run.mjs). Node 20 runs it with
// --experimental-websocket; Node 22 has the global WebSocket.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { createInterface } from "node:readline";
import { TickcastClient } from "@tickcast/client";

const bin = process.env.TICKCAST_BIN;
assert.ok(bin, "set TICKCAST_BIN to the tickcast binary");

/** `tickcast up` on `dir`, listening on `listen`; resolves to { proc, url }. */
function up(dir, listen = "127.0.0.1:0") {
  const proc = spawn(bin, ["up", "--listen", listen, "--data-dir", dir], {
    env: { ...process.env, RUST_LOG: "warn", TICKCAST_GAME_RATE_PER_IP: "0" },
    stdio: ["ignore", "pipe", "inherit"],
  });
  return new Promise((resolve, reject) => {
    createInterface({ input: proc.stdout }).on("line", (line) => {
      const m = line.match(/open\s+(http:\/\/\S+?)\/?$/);
      if (m) resolve({ proc, url: m[1] });
    });
    proc.on("exit", (code) => reject(new Error(`tickcast up exited (${code})`)));
  });
}

/** Records what a game tells its application. */
function watch(game, who = game.gameId) {
  const seen = { states: [], steps: [] };
  game
    .on("state", (s, reason) => {
      seen.states.push(s);
      // What a timed-out run needs to be understood.
      console.log(`# ${who}: ${s}${reason ? ` (${reason})` : ""} after step ${seen.steps.at(-1) ?? "none"}`);
    })
    .on("tick", (t) => seen.steps.push(t.step));
  return seen;
}

// Each test fails on its own deadline, with the states its games went through printed above.
test("two clients play through a kill -9 and restart of tickcast up: every step once, verified", { timeout: 90_000 }, async () => {
  const dir = mkdtempSync(path.join(tmpdir(), "tickcast-client-"));
  let server = await up(dir);
  const address = new URL(server.url).host;
  try {
    // A game that cannot come back within a minute fails (and says why) before the deadline.
    const alice = new TickcastClient({ edgeUrl: server.url, userId: "alice", giveUpAfterMs: 60_000 });
    const bob = new TickcastClient({ edgeUrl: server.url, userId: "bob", giveUpAfterMs: 60_000 });
    const first = await alice.startGame({ tickMs: 100, countdownMs: 1000, maxRounds: 3, minBreakSteps: 25, maxBreakSteps: 35 });
    // Watched from the start: its ticks flow while bob joins.
    const a = watch(first, "alice");
    const second = await bob.joinGame(first.gameId);
    const b = watch(second, "bob");
    assert.equal(second.seedHash, first.seedHash);
    // Mid-game: past step 15 (however far it got while bob joined).
    while ((a.steps.at(-1) ?? -1) < 15) await new Promise((r) => setTimeout(r, 20));
    server.proc.kill("SIGKILL");
    await new Promise((r) => server.proc.once("exit", r));
    server = await up(dir, address);
    const [endA, endB] = await Promise.all([first.ended, second.ended]);
    for (const [who, end, seen] of [["alice", endA, a], ["bob", endB, b]]) {
      assert.deepEqual(seen.steps, [...Array(end.lastStep + 1).keys()], `${who}: every step once, in order`);
      assert.deepEqual(end.verified, { seedHash: true, ticks: true, mismatches: [] }, who);
      assert.ok(seen.states.includes("reconnecting"), `${who} saw reconnecting: ${seen.states}`);
      assert.equal(seen.states.at(-1), "ended");
    }
    assert.ok(first.rtt().samples > 0);
  } finally {
    server.proc.kill("SIGTERM");
  }
});

/** A TCP proxy to `target` (HOST:PORT) that delays every chunk by `delayMs` each way. */
async function delayingProxy(target, delayMs) {
  const [host, port] = target.split(":");
  const server = net.createServer((client) => {
    const upstream = net.connect(Number(port), host);
    for (const [from, to] of [[client, upstream], [upstream, client]]) {
      from.on("data", (chunk) => setTimeout(() => to.destroyed || to.write(chunk), delayMs));
      from.on("close", () => setTimeout(() => to.destroy(), delayMs));
      from.on("error", () => {});
    }
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  return { address: `127.0.0.1:${server.address().port}`, close: () => server.close() };
}

test("a client 500 ms away is kicked: its state says so and it stops", { timeout: 90_000 }, async () => {
  const dir = mkdtempSync(path.join(tmpdir(), "tickcast-client-"));
  const server = await up(dir);
  const proxy = await delayingProxy(new URL(server.url).host, 250);
  try {
    const far = new TickcastClient({
      edgeUrl: server.url,
      userId: "far",
      // Its WebSocket goes through the proxy.
      endpoint: (ticket) => ticket.wsEndpoint.replace(new URL(server.url).host, proxy.address),
      livenessMs: 10_000,
    });
    const game = await far.startGame({ countdownMs: 0 });
    const seen = watch(game);
    await assert.rejects(game.ended, /kicked/);
    assert.equal(game.state, "kicked");
    assert.ok(!seen.states.includes("reconnecting"), `no reconnecting after a kick: ${seen.states}`);
  } finally {
    proxy.close();
    server.proc.kill("SIGTERM");
  }
});

